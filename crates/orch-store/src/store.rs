//! The [`Store`] itself: opening a database (migrations run on open), its write
//! transactions, and the clock its writes are stamped with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orch_core::Timestamp;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::{Location, SQLITE_BUSY_TIMEOUT, StoreError};

/// The board and audit-log store.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    pub(crate) location: Location,
    /// The SQLite file's device and inode when it was opened: a file removed or
    /// replaced under an open store is noticed (`check_file`), not written past.
    pub(crate) file_id: Option<(u64, u64)>,
}

impl Store {
    /// Opens a database that exists: a SQLite file that is missing is
    /// [`StoreError::NotSetUp`], not a new empty board (only [`Store::open`] creates
    /// one, for `orch init`).
    pub async fn open_existing(location: &Location) -> Result<Store, StoreError> {
        if let Location::Sqlite(path) = location
            && !path.exists()
        {
            return Err(StoreError::NotSetUp(path.display().to_string()));
        }
        Store::open(location).await
    }

    /// Opens (creating if needed) the database and runs pending migrations.
    pub async fn open(location: &Location) -> Result<Store, StoreError> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            location: location.to_string(),
            message: e.to_string(),
        };
        let mut opts = match location {
            Location::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| open_err(&e))?;
                }
                let path = path.clone();
                // The URL only selects the driver; `filename` sets the real path, so paths
                // need no URL escaping. (A `:memory:` URL would leave sqlx in memory mode.)
                let mut o = ConnectOptions::new("sqlite://orch.db");
                o.max_connections(4)
                    .map_sqlx_sqlite_opts(move |o| {
                        o.filename(&path)
                            .create_if_missing(true)
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal)
                            .busy_timeout(SQLITE_BUSY_TIMEOUT)
                            .foreign_keys(true)
                    })
                    .map_sqlx_sqlite_pool_opts(|p| p.after_release(close_if_in_transaction));
                o
            }
            Location::Postgres(url) => {
                let mut o = ConnectOptions::new(url.clone());
                o.max_connections(8);
                o
            }
        };
        opts.sqlx_logging(false)
            .connect_timeout(Duration::from_secs(5));
        let db = Database::connect(opts).await.map_err(|e| open_err(&e))?;
        crate::migration::Migrator::up(&db, None)
            .await
            .map_err(|e| StoreError::from_db(e, "running migrations"))?;
        let file_id = match location {
            Location::Sqlite(path) => file_id(path),
            Location::Postgres(_) => None,
        };
        Ok(Store {
            db,
            location: location.clone(),
            file_id,
        })
    }

    /// Checks that the SQLite file is still the one opened: `Replaced` when it was
    /// removed or swapped for another (the writes would go to a file no one reads).
    pub fn check_file(&self) -> Result<(), StoreError> {
        let (Location::Sqlite(path), Some(opened)) = (&self.location, self.file_id) else {
            return Ok(());
        };
        match file_id(path) {
            Some(now) if now == opened => Ok(()),
            now => Err(StoreError::Replaced {
                path: path.clone(),
                what: if now.is_none() {
                    "removed"
                } else {
                    "replaced by another file"
                },
            }),
        }
    }

    /// Where this store lives.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Closes the connection pool.
    pub async fn close(self) -> Result<(), StoreError> {
        self.db
            .close()
            .await
            .map_err(|e| StoreError::from_db(e, "closing the database"))
    }

    /// Runs SQLite's `PRAGMA integrity_check` (PostgreSQL needs no such check) and
    /// returns its complaints, if any.
    pub async fn check_integrity(&self) -> Result<(), StoreError> {
        if !matches!(self.location, Location::Sqlite(_)) {
            return Ok(());
        }
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "PRAGMA integrity_check",
            ))
            .await
            .map_err(|e| StoreError::from_db(e, "checking integrity"))?;
        let msgs: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get_by_index::<String>(0).ok())
            .filter(|m| m != "ok")
            .collect();
        if msgs.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                table: "(database)",
                message: msgs.join("; "),
            })
        }
    }

    /// Begins a write transaction; on SQLite it takes the write lock at once.
    pub(crate) async fn write(&self) -> Result<DatabaseTransaction, StoreError> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
            .map_err(|e| StoreError::from_db(e, "starting a write"))
    }
}

/// A connection given back with its transaction still open (a COMMIT that failed for
/// want of space, whose ROLLBACK found nothing to roll back and left the driver's count
/// behind) would hold SQLite's write lock for every other writer, orch's own among
/// them, which then see "busy". It is closed instead of reused: closing rolls back
/// whatever it still holds.
fn close_if_in_transaction(
    conn: &mut sqlx::SqliteConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    let open = sqlx::Connection::is_in_transaction(conn);
    Box::pin(async move { Ok(!open) })
}

/// The wall clock, as the store stamps rows and events with it.
pub(crate) fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

/// A file's device and inode, if it exists.
fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}
