//! The worktree pool's rows: who holds each pooled worktree. A lease is written (in
//! one write transaction, as a conditional update) before the engine touches the
//! worktree, so a crash at any point leaves a row that says whose it was; what to take
//! and what to retire is the core's `orch_core::pool` policy, applied here.

use std::path::{Path, PathBuf};

use orch_core::Timestamp;
use orch_core::pool::{self, Choice, Holder, PoolKind, PoolLimits, PoolSlot, SlotState};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::entity::pool_slot;
use crate::{Store, StoreError, now};

/// A pooled worktree leased to a holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLease {
    /// Its slot (`ORCH_SLOT`).
    pub slot: u32,
    /// Its directory.
    pub path: PathBuf,
    /// A new slot: the worktree is to be made, not switched.
    pub fresh: bool,
    /// `worktrees.setup` ran in it to the end.
    pub set_up: bool,
}

fn to_slot(m: pool_slot::Model) -> Option<PoolSlot> {
    let state = match (m.state.as_str(), m.run_id, m.holder) {
        ("free", ..) => SlotState::Free,
        ("leased", Some(run), Some(holder)) => SlotState::Leased(Holder { run, holder }),
        ("retired", ..) => SlotState::Retired,
        _ => return None,
    };
    Some(PoolSlot {
        slot: u32::try_from(m.slot).ok()?,
        kind: PoolKind::parse(&m.kind)?,
        path: PathBuf::from(m.path),
        state,
        set_up: m.set_up,
        last_holder: m.last_holder,
        last_used: Timestamp(m.last_used),
        bytes: u64::try_from(m.bytes).unwrap_or(0),
    })
}

async fn read_all(db: &impl ConnectionTrait) -> Result<Vec<PoolSlot>, StoreError> {
    let rows = pool_slot::Entity::find()
        .order_by_asc(pool_slot::Column::Slot)
        .all(db)
        .await
        .map_err(|e| StoreError::from_db(e, "reading the worktree pool"))?;
    Ok(rows.into_iter().filter_map(to_slot).collect())
}

impl Store {
    /// Every pooled worktree, by slot.
    pub async fn pool_slots(&self) -> Result<Vec<PoolSlot>, StoreError> {
        read_all(&self.db).await
    }

    /// Leases a worktree of `kind` to `holder`, as the core's `pool::choose` says: the
    /// warmest free one, or a new slot under `root`. A holder that already holds one of
    /// that kind gets it again (a resumed attempt). [`StoreError::PoolFull`] when
    /// every worktree is held at `limits.max`. A slot another process took between
    /// the read and the write is chosen again.
    pub async fn lease_pool_slot(
        &self,
        kind: PoolKind,
        holder: &Holder,
        limits: &PoolLimits,
        root: &Path,
    ) -> Result<PoolLease, StoreError> {
        let mut tries = 0;
        loop {
            match self.try_lease(kind, holder, limits, root).await {
                Err(StoreError::Busy | StoreError::Database { .. }) if tries < 5 => tries += 1,
                r => return r,
            }
        }
    }

    async fn try_lease(
        &self,
        kind: PoolKind,
        holder: &Holder,
        limits: &PoolLimits,
        root: &Path,
    ) -> Result<PoolLease, StoreError> {
        let txn = self.write().await?;
        let slots = read_all(&txn).await?;
        let held = SlotState::Leased(holder.clone());
        // The holder's own lease again (a resume), in this pool only: another pool's
        // lease of the same attempt is another machine's (a worker that died with it).
        let again = |s: &&PoolSlot| s.kind == kind && s.state == held && pool::is_under(s, root);
        if let Some(s) = slots.iter().find(again) {
            return Ok(PoolLease {
                slot: s.slot,
                path: s.path.clone(),
                fresh: false,
                set_up: s.set_up,
            });
        }
        let at = now().as_millis();
        let lease = match pool::choose(&slots, kind, limits, root) {
            Choice::Full { held } => {
                return Err(StoreError::PoolFull {
                    held,
                    max: limits.max,
                });
            }
            Choice::Reuse(slot) => {
                take_free(&txn, slot, holder, at).await?;
                let s = slots
                    .iter()
                    .find(|s| s.slot == slot)
                    .expect("choose picks a slot it was given");
                PoolLease {
                    slot,
                    path: s.path.clone(),
                    fresh: false,
                    set_up: s.set_up,
                }
            }
            Choice::Create(slot, path) => {
                pool_slot::ActiveModel {
                    slot: Set(slot as i64),
                    kind: Set(kind.to_string()),
                    path: Set(path.display().to_string()),
                    state: Set("leased".into()),
                    run_id: Set(Some(holder.run.clone())),
                    holder: Set(Some(holder.holder.clone())),
                    set_up: Set(false),
                    last_holder: Set(None),
                    last_used: Set(at),
                    bytes: Set(0),
                }
                .insert(&txn)
                .await
                .map_err(|e| StoreError::from_db(e, "adding a pooled worktree"))?;
                PoolLease {
                    slot,
                    path,
                    fresh: true,
                    set_up: false,
                }
            }
        };
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "leasing a pooled worktree"))?;
        Ok(lease)
    }

    /// Marks `slot`'s setup done.
    pub async fn pool_set_up(&self, slot: u32) -> Result<(), StoreError> {
        pool_slot::Entity::update_many()
            .col_expr(pool_slot::Column::SetUp, Expr::value(true))
            .filter(pool_slot::Column::Slot.eq(slot as i64))
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "recording a worktree's setup"))?;
        Ok(())
    }

    /// Gives `slot` back to the pool if `holder` holds it, with its size on disk when
    /// measured. Returns whether it did.
    pub async fn release_pool_slot(
        &self,
        slot: u32,
        holder: &Holder,
        bytes: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut update = pool_slot::Entity::update_many()
            .col_expr(pool_slot::Column::State, Expr::value("free"))
            .col_expr(pool_slot::Column::RunId, Expr::value(None::<String>))
            .col_expr(pool_slot::Column::Holder, Expr::value(None::<String>))
            .col_expr(
                pool_slot::Column::LastHolder,
                Expr::value(format!("{}/{}", holder.run, holder.holder)),
            )
            .col_expr(pool_slot::Column::LastUsed, Expr::value(now().as_millis()));
        if let Some(b) = bytes {
            update = update.col_expr(
                pool_slot::Column::Bytes,
                Expr::value(i64::try_from(b).unwrap_or(i64::MAX)),
            );
        }
        let done = update
            .filter(pool_slot::Column::Slot.eq(slot as i64))
            .filter(pool_slot::Column::State.eq("leased"))
            .filter(pool_slot::Column::RunId.eq(holder.run.clone()))
            .filter(pool_slot::Column::Holder.eq(holder.holder.clone()))
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "releasing a pooled worktree"))?;
        Ok(done.rows_affected == 1)
    }

    /// Marks as retired the idle worktrees the core's `pool::to_retire` names, plus
    /// `also` (a worktree its holder could not make clean), and returns them: the
    /// caller removes each from disk and then [`Store::forget_pool_slot`]s it.
    pub async fn retire_pool_slots(
        &self,
        limits: &PoolLimits,
        also: Option<(u32, &Holder)>,
        root: &Path,
    ) -> Result<Vec<PoolSlot>, StoreError> {
        let txn = self.write().await?;
        let slots = read_all(&txn).await?;
        let mut chosen = pool::to_retire(&slots, limits, root);
        if let Some((slot, h)) = also
            && slots
                .iter()
                .any(|s| s.slot == slot && s.state == SlotState::Leased(h.clone()))
        {
            chosen.push(slot);
        }
        retire(&txn, &chosen).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "retiring pooled worktrees"))?;
        Ok(slots
            .into_iter()
            .filter(|s| chosen.contains(&s.slot))
            .map(|s| PoolSlot {
                state: SlotState::Retired,
                ..s
            })
            .collect())
    }

    /// Marks every worktree of the pool under `root` that no live run holds as retired
    /// (`orch cleanup --pool`), where `live` says which runs are live; returns those
    /// retired (and those retired before) for removal, and the ones kept. Other pools
    /// (other machines', clones', workers') are left alone.
    pub async fn retire_whole_pool(
        &self,
        live: impl Fn(&str) -> bool,
        root: &Path,
    ) -> Result<(Vec<PoolSlot>, Vec<PoolSlot>), StoreError> {
        let txn = self.write().await?;
        let slots = read_all(&txn).await?;
        let (kept, gone): (Vec<PoolSlot>, Vec<PoolSlot>) = slots
            .into_iter()
            .filter(|s| pool::is_under(s, root))
            .partition(|s| matches!(&s.state, SlotState::Leased(h) if live(&h.run)));
        let numbers: Vec<u32> = gone.iter().map(|s| s.slot).collect();
        retire(&txn, &numbers).await?;
        txn.commit()
            .await
            .map_err(|e| StoreError::from_db(e, "retiring the worktree pool"))?;
        Ok((gone, kept))
    }

    /// Forgets a retired worktree once it is gone from disk.
    pub async fn forget_pool_slot(&self, slot: u32) -> Result<(), StoreError> {
        pool_slot::Entity::delete_many()
            .filter(pool_slot::Column::Slot.eq(slot as i64))
            .filter(pool_slot::Column::State.eq("retired"))
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "forgetting a pooled worktree"))?;
        Ok(())
    }
}

/// Leases free `slot` to `holder`, if it is still free (else `Busy`, to choose again).
async fn take_free(
    db: &impl ConnectionTrait,
    slot: u32,
    holder: &Holder,
    at: i64,
) -> Result<(), StoreError> {
    let done = pool_slot::Entity::update_many()
        .col_expr(pool_slot::Column::State, Expr::value("leased"))
        .col_expr(pool_slot::Column::RunId, Expr::value(holder.run.clone()))
        .col_expr(
            pool_slot::Column::Holder,
            Expr::value(holder.holder.clone()),
        )
        .col_expr(pool_slot::Column::LastUsed, Expr::value(at))
        .filter(pool_slot::Column::Slot.eq(slot as i64))
        .filter(pool_slot::Column::State.eq("free"))
        .exec(db)
        .await
        .map_err(|e| StoreError::from_db(e, "leasing a pooled worktree"))?;
    match done.rows_affected {
        1 => Ok(()),
        _ => Err(StoreError::Busy),
    }
}

async fn retire(db: &impl ConnectionTrait, slots: &[u32]) -> Result<(), StoreError> {
    if slots.is_empty() {
        return Ok(());
    }
    pool_slot::Entity::update_many()
        .col_expr(pool_slot::Column::State, Expr::value("retired"))
        .col_expr(pool_slot::Column::RunId, Expr::value(None::<String>))
        .col_expr(pool_slot::Column::Holder, Expr::value(None::<String>))
        .filter(pool_slot::Column::Slot.is_in(slots.iter().map(|s| *s as i64)))
        .exec(db)
        .await
        .map_err(|e| StoreError::from_db(e, "retiring pooled worktrees"))?;
    Ok(())
}
