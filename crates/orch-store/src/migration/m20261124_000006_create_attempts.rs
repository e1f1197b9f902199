//! Creates `attempts`: one row per attempt, a projection of the run journal (its state, branch, commits, failure).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Attempts {
    Table,
    RunId,
    TaskId,
    Number,
    Branch,
    Base,
    Head,
    MergeCommit,
    State,
    Failure,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Attempts::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Attempts::RunId).string().not_null())
                    .col(ColumnDef::new(Attempts::TaskId).big_integer().not_null())
                    .col(ColumnDef::new(Attempts::Number).integer().not_null())
                    .col(ColumnDef::new(Attempts::Branch).string().not_null())
                    .col(ColumnDef::new(Attempts::Base).string().not_null())
                    .col(ColumnDef::new(Attempts::Head).string().null())
                    .col(ColumnDef::new(Attempts::MergeCommit).string().null())
                    .col(ColumnDef::new(Attempts::State).string().not_null())
                    .col(ColumnDef::new(Attempts::Failure).text().null())
                    .col(ColumnDef::new(Attempts::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Attempts::UpdatedAt).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(Attempts::RunId)
                            .col(Attempts::TaskId)
                            .col(Attempts::Number),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_attempts_run")
                    .table(Attempts::Table)
                    .col(Attempts::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Attempts::Table).to_owned())
            .await
    }
}
