//! Gate verdicts by tree (`validate.reuse`): a gate that passed on a tree, with a
//! recipe (its commands and named environment, hashed by the caller), is not run again
//! on the same tree. Only passes are kept: a failure is always run again (a flaky
//! gate may pass next time).

use sea_orm::{EntityTrait, Set};

use crate::entity::gate_verdict;
use crate::{Store, StoreError, now};

impl Store {
    /// Who earned a pass of the gate `recipe` on `tree`, if anyone did.
    pub async fn gate_verdict(
        &self,
        tree: &str,
        recipe: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = gate_verdict::Entity::find_by_id((tree.to_owned(), recipe.to_owned()))
            .one(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "reading a gate verdict"))?;
        Ok(row.map(|r| r.passed_by))
    }

    /// Records that `by` passed the gate `recipe` on `tree` (the first pass stays).
    pub async fn record_gate_pass(
        &self,
        tree: &str,
        recipe: &str,
        by: &str,
    ) -> Result<(), StoreError> {
        let row = gate_verdict::ActiveModel {
            tree: Set(tree.to_owned()),
            recipe: Set(recipe.to_owned()),
            passed_by: Set(by.to_owned()),
            created_at: Set(now().0),
        };
        gate_verdict::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec(&self.db)
            .await
            .map_err(|e| StoreError::from_db(e, "recording a gate verdict"))?;
        Ok(())
    }
}
