//! What the store's test files share: a fresh database on the PostgreSQL test server.

use std::sync::atomic::{AtomicU32, Ordering};

use orch_store::Location;
use sea_orm::{ConnectionTrait, Database};

static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh PostgreSQL database on the test server, dropped when the test ends.
pub async fn fresh_postgres(admin_url: &str) -> (Location, impl FnOnce() + use<>) {
    let name = format!(
        "orch_test_{}_{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let admin = Database::connect(admin_url).await.unwrap();
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = admin_url.split('?').next().unwrap();
    let url = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
    let admin_url = admin_url.to_owned();
    let drop = move || {
        // Best effort, on a runtime of its own: the test's runtime is shutting down.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if let Ok(db) = Database::connect(&admin_url).await {
                let _ = db
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    };
    (Location::Postgres(url), drop)
}
