//! The `validations` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "validations")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub task_id: i64,
    pub attempt: i32,
    pub stage: String,
    pub position: i32,
    pub command: String,
    pub outcome: String,
    pub exit_code: Option<i32>,
    pub duration_ms: i64,
    pub log_path: String,
    pub tail: String,
    pub at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
