//! Schema migrations, one per file (`DeriveMigrationName` names each after its file).
//! They run on open, on SQLite and PostgreSQL alike. Never edit a released migration:
//! add a new file.

use sea_orm_migration::prelude::*;

mod m20261124_000001_create_tasks;
mod m20261124_000002_create_task_deps;
mod m20261124_000003_create_events;
mod m20261124_000004_create_runs;
mod m20261124_000005_create_controls;
mod m20261124_000006_create_attempts;
mod m20261124_000007_create_merges;
mod m20261124_000008_create_proposals;
mod m20261124_000009_create_validations;
mod m20261124_000010_create_artifacts;
mod m20261125_000011_create_leases;
mod m20261201_000012_attempt_usage;
mod m20261204_000013_create_pool;
mod m20261204_000014_create_jobs;
mod m20261204_000015_create_attempt_logs;
mod m20261205_000016_create_gate_verdicts;
mod m20261206_000017_task_review;

/// Applies every migration in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_tasks::Migration),
            Box::new(m20261124_000002_create_task_deps::Migration),
            Box::new(m20261124_000003_create_events::Migration),
            Box::new(m20261124_000004_create_runs::Migration),
            Box::new(m20261124_000005_create_controls::Migration),
            Box::new(m20261124_000006_create_attempts::Migration),
            Box::new(m20261124_000007_create_merges::Migration),
            Box::new(m20261124_000008_create_proposals::Migration),
            Box::new(m20261124_000009_create_validations::Migration),
            Box::new(m20261124_000010_create_artifacts::Migration),
            Box::new(m20261125_000011_create_leases::Migration),
            Box::new(m20261201_000012_attempt_usage::Migration),
            Box::new(m20261204_000013_create_pool::Migration),
            Box::new(m20261204_000014_create_jobs::Migration),
            Box::new(m20261204_000015_create_attempt_logs::Migration),
            Box::new(m20261205_000016_create_gate_verdicts::Migration),
            Box::new(m20261206_000017_task_review::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "orch_migrations".into_iden()
    }
}
