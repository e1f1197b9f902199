//! Creates `proposals`: one row per planner proposal, with the core's verdict and its reason.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Proposals {
    Table,
    Id,
    RunId,
    TaskId,
    Proposal,
    Verdict,
    Reason,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Proposals::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Proposals::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Proposals::RunId).string().not_null())
                    .col(ColumnDef::new(Proposals::TaskId).big_integer().null())
                    .col(ColumnDef::new(Proposals::Proposal).text().not_null())
                    .col(ColumnDef::new(Proposals::Verdict).string().not_null())
                    .col(ColumnDef::new(Proposals::Reason).text().not_null())
                    .col(ColumnDef::new(Proposals::At).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_proposals_run")
                    .table(Proposals::Table)
                    .col(Proposals::RunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Proposals::Table).to_owned())
            .await
    }
}
