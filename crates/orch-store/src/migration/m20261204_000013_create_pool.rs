//! Creates `pool`: the repository's pooled worktrees, one row each, whoever holds it
//! (`run_id`, `holder`) written before the worktree is touched.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Pool {
    Table,
    Slot,
    Kind,
    Path,
    State,
    RunId,
    Holder,
    SetUp,
    LastHolder,
    LastUsed,
    Bytes,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Pool::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Pool::Slot)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Pool::Kind).string().not_null())
                    .col(ColumnDef::new(Pool::Path).string().not_null().unique_key())
                    .col(ColumnDef::new(Pool::State).string().not_null())
                    .col(ColumnDef::new(Pool::RunId).string().null())
                    .col(ColumnDef::new(Pool::Holder).string().null())
                    .col(ColumnDef::new(Pool::SetUp).boolean().not_null())
                    .col(ColumnDef::new(Pool::LastHolder).string().null())
                    .col(ColumnDef::new(Pool::LastUsed).big_integer().not_null())
                    .col(ColumnDef::new(Pool::Bytes).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Pool::Table).to_owned())
            .await
    }
}
