//! Run leases: the single-owner rule. A process drives a run only while it holds the
//! run's lease, renewing it with a heartbeat. Another process takes the lease over
//! only once it expired, or once the caller has proven the owner dead (a process on
//! this host that no longer exists); each acquisition and takeover is journaled.
//!
//! Every write is a conditional update inside one write transaction, so two
//! processes racing for the same lease cannot both win, on SQLite or PostgreSQL.

use std::time::Duration;

use orch_core::Timestamp;
use orch_core::run::RunId;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, NotSet, QueryFilter, Set};

use crate::entity::{event, lease};
use crate::{Store, StoreError, now};

/// The journal kind of a fresh acquisition (not a core `RunEvent`).
pub const LEASE_ACQUIRED: &str = "lease.acquired";
/// The journal kind of a takeover of another owner's lease (not a core `RunEvent`).
pub const LEASE_TAKEN_OVER: &str = "lease.taken_over";

/// Who holds a run's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The run.
    pub run: RunId,
    /// The owner's identity (`host:pid:nonce` for orch processes).
    pub owner: String,
    /// When this owner acquired it.
    pub acquired_at: Timestamp,
    /// Its last heartbeat.
    pub heartbeat_at: Timestamp,
    /// When it lapses without another heartbeat.
    pub expires_at: Timestamp,
}

impl Lease {
    /// True if it has lapsed at `at`.
    pub fn expired_at(&self, at: Timestamp) -> bool {
        self.expires_at.0 <= at.0
    }
}

/// How [`Store::acquire_lease`] got the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// Nobody held it.
    Fresh,
    /// The caller held it already; it was renewed.
    Renewed,
    /// It was taken over from `previous`, which had expired or was proven dead.
    TookOver {
        /// The lease as it was.
        previous: Lease,
        /// Why the takeover was allowed.
        why: String,
    },
}

fn to_lease(m: lease::Model) -> Lease {
    Lease {
        run: RunId(m.run_id),
        owner: m.owner,
        acquired_at: Timestamp(m.acquired_at),
        heartbeat_at: Timestamp(m.heartbeat_at),
        expires_at: Timestamp(m.expires_at),
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

impl Store {
    /// Takes `run`'s lease for `owner` for `ttl`. It succeeds if nobody holds it, if
    /// `owner` does, if the holder's lease has expired, or if the holder is
    /// `dead_owner` (which the caller has proven dead). Otherwise it fails with
    /// [`StoreError::LeaseHeld`].
    pub async fn acquire_lease(
        &self,
        run: &RunId,
        owner: &str,
        ttl: Duration,
        dead_owner: Option<&str>,
    ) -> Result<Acquired, StoreError> {
        let txn = self.write().await?;
        let at = now();
        let expires = at.as_millis().saturating_add(ttl_ms(ttl));
        let current = lease::Entity::find_by_id(run.0.clone())
            .one(&txn)
            .await
            .map_err(|e| StoreError::from_db(e, "reading a lease"))?
            .map(to_lease);
        let acquired = match current {
            None => {
                lease::ActiveModel {
                    run_id: Set(run.0.clone()),
                    owner: Set(owner.into()),
                    acquired_at: Set(at.as_millis()),
                    heartbeat_at: Set(at.as_millis()),
                    expires_at: Set(expires),
                }
                .insert(&txn)
                .await
                // Another process inserted it between our read and our write.
                .map_err(|_| StoreError::LeaseHeld {
                    run: run.0.clone(),
                    owner: "another process (it took the lease just now)".into(),
                    expires_in_ms: ttl_ms(ttl),
                })?;
                Acquired::Fresh
            }
            Some(l) if l.owner == owner => {
                bump(&txn, run, owner, &l.owner, expires, at).await?;
                Acquired::Renewed
            }
            Some(l) => {
                let why = if l.expired_at(at) {
                    format!(
                        "its lease expired {} ms ago without a heartbeat",
                        at.as_millis() - l.expires_at.0
                    )
                } else if dead_owner == Some(l.owner.as_str()) {
                    "its process no longer exists".to_owned()
                } else {
                    return Err(StoreError::LeaseHeld {
                        run: run.0.clone(),
                        owner: l.owner.clone(),
                        expires_in_ms: l.expires_at.0 - at.as_millis(),
                    });
                };
                bump(&txn, run, owner, &l.owner, expires, at).await?;
                Acquired::TookOver { previous: l, why }
            }
        };
        journal_acquisition(&txn, run, owner, &acquired, at).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "committing"))?;
        Ok(acquired)
    }

    /// The heartbeat: extends `owner`'s lease by `ttl`. Fails with
    /// [`StoreError::LeaseLost`] if `owner` no longer holds it.
    pub async fn renew_lease(
        &self,
        run: &RunId,
        owner: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let at = now();
        let done = lease::Entity::update_many()
            .col_expr(lease::Column::HeartbeatAt, Expr::value(at.as_millis()))
            .col_expr(
                lease::Column::ExpiresAt,
                Expr::value(at.as_millis().saturating_add(ttl_ms(ttl))),
            )
            .filter(lease::Column::RunId.eq(run.0.clone()))
            .filter(lease::Column::Owner.eq(owner))
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "renewing a lease"))?;
        if done.rows_affected == 1 {
            Ok(())
        } else {
            let holder = self.lease(run).await?.map(|l| l.owner);
            Err(StoreError::LeaseLost {
                run: run.0.clone(),
                holder: holder.unwrap_or_else(|| "nobody".into()),
            })
        }
    }

    /// Gives the lease up, if `owner` holds it.
    pub async fn release_lease(&self, run: &RunId, owner: &str) -> Result<(), StoreError> {
        lease::Entity::delete_many()
            .filter(lease::Column::RunId.eq(run.0.clone()))
            .filter(lease::Column::Owner.eq(owner))
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "releasing a lease"))?;
        Ok(())
    }

    /// Who holds `run`'s lease, if anyone (expired leases included).
    pub async fn lease(&self, run: &RunId) -> Result<Option<Lease>, StoreError> {
        Ok(lease::Entity::find_by_id(run.0.clone())
            .one(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading a lease"))?
            .map(to_lease))
    }
}

/// Moves the lease from `holder` to `owner` (a renewal when they are equal), only
/// if `holder` still holds it.
async fn bump(
    txn: &sea_orm::DatabaseTransaction,
    run: &RunId,
    owner: &str,
    holder: &str,
    expires: i64,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut update = lease::Entity::update_many()
        .col_expr(lease::Column::Owner, Expr::value(owner))
        .col_expr(lease::Column::HeartbeatAt, Expr::value(at.as_millis()))
        .col_expr(lease::Column::ExpiresAt, Expr::value(expires));
    if owner != holder {
        update = update.col_expr(lease::Column::AcquiredAt, Expr::value(at.as_millis()));
    }
    let done = update
        .filter(lease::Column::RunId.eq(run.0.clone()))
        .filter(lease::Column::Owner.eq(holder))
        .exec(txn)
        .await
        .map_err(|e| StoreError::from_db(e, "updating a lease"))?;
    if done.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseHeld {
            run: run.0.clone(),
            owner: "another process (it took the lease just now)".into(),
            expires_in_ms: 0,
        })
    }
}

/// Journals an acquisition or a takeover; a renewal is not journaled.
async fn journal_acquisition<C: sea_orm::ConnectionTrait>(
    txn: &C,
    run: &RunId,
    owner: &str,
    acquired: &Acquired,
    at: Timestamp,
) -> Result<(), StoreError> {
    let (kind, reason) = match acquired {
        Acquired::Fresh => (LEASE_ACQUIRED, format!("{owner} drives the run")),
        Acquired::Renewed => return Ok(()),
        Acquired::TookOver { previous, why } => (
            LEASE_TAKEN_OVER,
            format!("{owner} took the run over from {}: {why}", previous.owner),
        ),
    };
    event::ActiveModel {
        seq: NotSet,
        at: Set(at.as_millis()),
        run_id: Set(Some(run.0.clone())),
        task_id: Set(None),
        attempt: Set(None),
        kind: Set(kind.into()),
        reason: Set(reason),
        actor: Set(owner.into()),
        payload: Set(serde_json::json!({ "owner": owner }).to_string()),
    }
    .insert(txn)
    .await
    .map_err(|e| StoreError::from_db(e, "journaling a lease"))?;
    Ok(())
}
