//! A fresh database on the PostgreSQL test server (`ORCH_TEST_DATABASE_URL`), made and
//! dropped with `psql`, PostgreSQL's own client, installed with the server.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The test server's admin URL, if the environment names one.
pub fn server() -> Option<String> {
    std::env::var("ORCH_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A database of its own for one test, dropped (with its connections) when this is.
#[derive(Debug)]
pub struct FreshDb {
    /// Its URL.
    pub url: String,
    name: String,
    admin: String,
}

fn psql(admin: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([admin, "-q", "-c", sql])
        .env("PGOPTIONS", "-c client_min_messages=warning")
        .status()
        .expect("psql, PostgreSQL's client, is installed with the server")
        .success()
}

impl FreshDb {
    /// Makes a database named after `prefix`, the process and a counter on the server
    /// at `admin`.
    pub fn new(admin: &str, prefix: &str) -> FreshDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "orch_{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        psql(admin, &format!("DROP DATABASE IF EXISTS {name}"));
        assert!(
            psql(admin, &format!("CREATE DATABASE {name}")),
            "creating database {name}"
        );
        let base = admin.split('?').next().expect("split yields one part");
        let url = format!("{}/{name}", &base[..base.rfind('/').expect("a URL path")]);
        FreshDb {
            url,
            name,
            admin: admin.to_owned(),
        }
    }
}

impl Drop for FreshDb {
    fn drop(&mut self) {
        // Best effort: a test that failed may still hold connections.
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
