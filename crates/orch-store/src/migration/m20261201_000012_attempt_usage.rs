//! Adds what an agent reported using to `attempts`: its usage as JSON (model, tokens
//! by kind, cost, turns, session, tools denied), and its total tokens and cost in
//! micro-dollars as columns, so runs and tasks sum in SQL. One column per statement:
//! SQLite alters a table one change at a time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Attempts {
    Table,
    Usage,
    Tokens,
    CostMicros,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let cols = [
            ColumnDef::new(Attempts::Usage).text().null().to_owned(),
            ColumnDef::new(Attempts::Tokens)
                .big_integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(Attempts::CostMicros)
                .big_integer()
                .null()
                .to_owned(),
        ];
        for mut c in cols {
            manager
                .alter_table(
                    Table::alter()
                        .table(Attempts::Table)
                        .add_column(&mut c)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for c in [Attempts::Usage, Attempts::Tokens, Attempts::CostMicros] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Attempts::Table)
                        .drop_column(c)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
