//! Creates `leases`: who drives a run. One row per run; the owner renews `expires_at`
//! with a heartbeat, and another process may take the row over only once it expired
//! (or its owner is proven dead). Every change is a conditional update, so the table
//! works as a lock on SQLite and on PostgreSQL across machines alike.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Leases {
    Table,
    RunId,
    Owner,
    AcquiredAt,
    HeartbeatAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Leases::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Leases::RunId)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Leases::Owner).string().not_null())
                    .col(ColumnDef::new(Leases::AcquiredAt).big_integer().not_null())
                    .col(ColumnDef::new(Leases::HeartbeatAt).big_integer().not_null())
                    .col(ColumnDef::new(Leases::ExpiresAt).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Leases::Table).to_owned())
            .await
    }
}
