//! Creates `gate_verdicts`: gates that passed, by the tree they passed on and their
//! recipe (the commands and the named environment, hashed), so a tree that passed a
//! gate is not gated again (`validate.reuse`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GateVerdicts {
    Table,
    Tree,
    Recipe,
    PassedBy,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GateVerdicts::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(GateVerdicts::Tree).string().not_null())
                    .col(ColumnDef::new(GateVerdicts::Recipe).string().not_null())
                    .col(ColumnDef::new(GateVerdicts::PassedBy).string().not_null())
                    .col(
                        ColumnDef::new(GateVerdicts::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(GateVerdicts::Tree)
                            .col(GateVerdicts::Recipe),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(GateVerdicts::Table).to_owned())
            .await
    }
}
