//! The `jobs` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub run_id: String,
    pub task_id: i64,
    pub attempt: i64,
    pub spec: String,
    pub labels: String,
    pub state: String,
    pub epoch: i64,
    pub worker: Option<String>,
    pub lease_until: Option<i64>,
    pub result: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
