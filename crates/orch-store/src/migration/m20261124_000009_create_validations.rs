//! Creates `validations`: one row per validation command run: stage, outcome, exit code, duration, log and the tail of its output.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Validations {
    Table,
    Id,
    RunId,
    TaskId,
    Attempt,
    Stage,
    Position,
    Command,
    Outcome,
    ExitCode,
    DurationMs,
    LogPath,
    Tail,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Validations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Validations::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Validations::RunId).string().not_null())
                    .col(ColumnDef::new(Validations::TaskId).big_integer().not_null())
                    .col(ColumnDef::new(Validations::Attempt).integer().not_null())
                    .col(ColumnDef::new(Validations::Stage).string().not_null())
                    .col(ColumnDef::new(Validations::Position).integer().not_null())
                    .col(ColumnDef::new(Validations::Command).text().not_null())
                    .col(ColumnDef::new(Validations::Outcome).string().not_null())
                    .col(ColumnDef::new(Validations::ExitCode).integer().null())
                    .col(
                        ColumnDef::new(Validations::DurationMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Validations::LogPath).text().not_null())
                    .col(ColumnDef::new(Validations::Tail).text().not_null())
                    .col(ColumnDef::new(Validations::At).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_validations_run")
                    .table(Validations::Table)
                    .col(Validations::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Validations::Table).to_owned())
            .await
    }
}
