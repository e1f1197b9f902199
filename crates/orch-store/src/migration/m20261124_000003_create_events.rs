//! Creates `events`: the append-only audit log. It has no foreign keys on purpose: a
//! removed task's history stays.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Seq,
    At,
    RunId,
    TaskId,
    Attempt,
    Kind,
    Reason,
    Actor,
    Payload,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Events::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Events::At).big_integer().not_null())
                    .col(ColumnDef::new(Events::RunId).string().null())
                    .col(ColumnDef::new(Events::TaskId).big_integer().null())
                    .col(ColumnDef::new(Events::Attempt).big_integer().null())
                    .col(ColumnDef::new(Events::Kind).string().not_null())
                    .col(ColumnDef::new(Events::Reason).text().not_null())
                    .col(ColumnDef::new(Events::Actor).string().not_null())
                    .col(ColumnDef::new(Events::Payload).text().not_null())
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_events_task", Events::TaskId),
            ("idx_events_run", Events::RunId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Events::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}
