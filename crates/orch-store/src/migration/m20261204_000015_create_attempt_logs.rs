//! Creates `attempt_logs`: the tails of the logs of attempts run by `orch worker`s on
//! other machines, so `orch logs` and the dashboard show them from anywhere.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AttemptLogs {
    Table,
    Id,
    RunId,
    TaskId,
    Attempt,
    Name,
    Worker,
    Text,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AttemptLogs::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AttemptLogs::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AttemptLogs::RunId).string().not_null())
                    .col(ColumnDef::new(AttemptLogs::TaskId).big_integer().not_null())
                    .col(
                        ColumnDef::new(AttemptLogs::Attempt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(AttemptLogs::Name).string().not_null())
                    .col(ColumnDef::new(AttemptLogs::Worker).string().not_null())
                    .col(ColumnDef::new(AttemptLogs::Text).text().not_null())
                    .col(
                        ColumnDef::new(AttemptLogs::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("attempt_logs_task")
                    .table(AttemptLogs::Table)
                    .col(AttemptLogs::TaskId)
                    .col(AttemptLogs::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AttemptLogs::Table).to_owned())
            .await
    }
}
