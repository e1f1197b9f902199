//! The `attempts` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub run_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub task_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub number: i32,
    pub branch: String,
    pub base: String,
    pub head: Option<String>,
    pub merge_commit: Option<String>,
    pub state: String,
    pub failure: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub usage: Option<String>,
    pub tokens: i64,
    pub cost_micros: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
