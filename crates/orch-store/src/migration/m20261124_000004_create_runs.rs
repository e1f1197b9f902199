//! Creates `runs`: one row per run, with its resolved configuration as JSON. The run's
//! journal is its rows in `events` (by `run_id`); `state` is a projection of it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
    State,
    Config,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Runs::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Runs::Id).string().not_null().primary_key())
                    .col(ColumnDef::new(Runs::State).string().not_null())
                    .col(ColumnDef::new(Runs::Config).text().not_null())
                    .col(ColumnDef::new(Runs::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Runs::UpdatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Runs::Table).to_owned())
            .await
    }
}
