//! Creates `task_deps`: one row per "task waits for depends_on" edge.

use sea_orm_migration::prelude::*;

use super::m20261124_000001_create_tasks::Tasks;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TaskDeps {
    Table,
    TaskId,
    DependsOn,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TaskDeps::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(TaskDeps::TaskId).big_integer().not_null())
                    .col(ColumnDef::new(TaskDeps::DependsOn).big_integer().not_null())
                    .primary_key(
                        Index::create()
                            .col(TaskDeps::TaskId)
                            .col(TaskDeps::DependsOn),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_task_deps_task")
                            .from(TaskDeps::Table, TaskDeps::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_task_deps_depends_on")
                            .from(TaskDeps::Table, TaskDeps::DependsOn)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_task_deps_depends_on")
                    .table(TaskDeps::Table)
                    .col(TaskDeps::DependsOn)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TaskDeps::Table).to_owned())
            .await
    }
}
