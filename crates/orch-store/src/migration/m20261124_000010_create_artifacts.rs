//! Creates `artifacts`: one row per file an attempt left in its artifacts directory
//! (prompt, agent log, gate logs), with its size, recorded when the attempt ends.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Artifacts {
    Table,
    Id,
    RunId,
    TaskId,
    Attempt,
    Name,
    Path,
    Bytes,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Artifacts::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Artifacts::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Artifacts::RunId).string().not_null())
                    .col(ColumnDef::new(Artifacts::TaskId).big_integer().not_null())
                    .col(ColumnDef::new(Artifacts::Attempt).integer().not_null())
                    .col(ColumnDef::new(Artifacts::Name).string().not_null())
                    .col(ColumnDef::new(Artifacts::Path).text().not_null())
                    .col(ColumnDef::new(Artifacts::Bytes).big_integer().not_null())
                    .col(ColumnDef::new(Artifacts::At).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_artifacts_run")
                    .table(Artifacts::Table)
                    .col(Artifacts::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Artifacts::Table).to_owned())
            .await
    }
}
