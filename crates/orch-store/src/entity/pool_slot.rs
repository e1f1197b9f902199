//! The `pool` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pool")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub slot: i64,
    pub kind: String,
    pub path: String,
    pub state: String,
    pub run_id: Option<String>,
    pub holder: Option<String>,
    pub set_up: bool,
    pub last_holder: Option<String>,
    pub last_used: i64,
    pub bytes: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
