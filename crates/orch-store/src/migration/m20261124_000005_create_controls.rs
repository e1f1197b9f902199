//! Creates `controls`: requests posted to a running engine from elsewhere (another
//! terminal, a dashboard), such as a cancel. The engine polls and marks them handled.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Controls {
    Table,
    Id,
    RunId,
    Kind,
    TaskId,
    CreatedAt,
    HandledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Controls::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Controls::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Controls::RunId).string().not_null())
                    .col(ColumnDef::new(Controls::Kind).string().not_null())
                    .col(ColumnDef::new(Controls::TaskId).big_integer().null())
                    .col(ColumnDef::new(Controls::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Controls::HandledAt).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Controls::Table).to_owned())
            .await
    }
}
