//! Creates `merges`: one row per in-memory merge: clean (with its commit) or conflicted (with its paths).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Merges {
    Table,
    Id,
    RunId,
    TaskId,
    Attempt,
    Onto,
    MergeCommit,
    Conflicts,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Merges::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Merges::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Merges::RunId).string().not_null())
                    .col(ColumnDef::new(Merges::TaskId).big_integer().not_null())
                    .col(ColumnDef::new(Merges::Attempt).integer().not_null())
                    .col(ColumnDef::new(Merges::Onto).string().null())
                    .col(ColumnDef::new(Merges::MergeCommit).string().null())
                    .col(ColumnDef::new(Merges::Conflicts).text().null())
                    .col(ColumnDef::new(Merges::At).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_merges_run")
                    .table(Merges::Table)
                    .col(Merges::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Merges::Table).to_owned())
            .await
    }
}
