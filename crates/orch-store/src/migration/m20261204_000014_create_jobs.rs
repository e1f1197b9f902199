//! Creates `jobs`: the queue of attempts run by `orch worker`s (`run.executors =
//! "workers"`). One row per attempt; a worker claims it under a lease on the
//! database's clock, and every claim bumps `epoch`, which fences the one before.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    RunId,
    TaskId,
    Attempt,
    Spec,
    Labels,
    State,
    Epoch,
    Worker,
    LeaseUntil,
    Result,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let big = |c: Jobs| ColumnDef::new(c).big_integer().not_null().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Jobs::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Jobs::RunId).string().not_null())
                    .col(big(Jobs::TaskId))
                    .col(big(Jobs::Attempt))
                    .col(ColumnDef::new(Jobs::Spec).text().not_null())
                    .col(ColumnDef::new(Jobs::Labels).string().not_null())
                    .col(ColumnDef::new(Jobs::State).string().not_null())
                    .col(big(Jobs::Epoch))
                    .col(ColumnDef::new(Jobs::Worker).string().null())
                    .col(ColumnDef::new(Jobs::LeaseUntil).big_integer().null())
                    .col(ColumnDef::new(Jobs::Result).text().null())
                    .col(big(Jobs::CreatedAt))
                    .col(big(Jobs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_attempt")
                    .table(Jobs::Table)
                    .col(Jobs::RunId)
                    .col(Jobs::TaskId)
                    .col(Jobs::Attempt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("jobs_state")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await
    }
}
