//! The planner's protocol: the typed request it gets on its stdin, and its answer
//! parsed into proposals, which the core judges. Running it is `exec::planner`'s.

use serde::Serialize;

/// One candidate task, as the planner sees it.
#[derive(Debug, Serialize)]
pub struct Candidate {
    /// Id.
    pub id: i64,
    /// Key.
    pub key: String,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Priority.
    pub priority: i32,
    /// Dependencies.
    pub depends_on: Vec<i64>,
    /// Labels.
    pub labels: Vec<String>,
    /// Paths it expects to change.
    pub touches: Vec<String>,
}

/// What the planner gets on stdin.
#[derive(Debug, Serialize)]
pub struct Request {
    /// The run.
    pub run: String,
    /// The request id.
    pub request: u64,
    /// How many attempts may start.
    pub free_slots: u32,
    /// The tasks the scheduler could claim now, in its order.
    pub claimable: Vec<Candidate>,
}

/// Reads a planner's answer: a JSON list of proposals, or `{"proposals": [...]}`.
pub fn parse_proposals(stdout: &[u8]) -> Result<Vec<orch_core::run::Proposal>, String> {
    let v: serde_json::Value = serde_json::from_slice(stdout).map_err(|e| {
        format!("the planner printed invalid JSON ({e}); expected a list of proposals such as [{{\"action\": \"claim\", \"task\": 3}}]")
    })?;
    let list = match v {
        serde_json::Value::Object(mut o) if o.contains_key("proposals") => {
            o.remove("proposals").unwrap_or_default()
        }
        other => other,
    };
    serde_json::from_value(list).map_err(|e| {
        format!("the planner's proposals are not understood ({e}); each is {{\"action\": \"claim\", \"task\": ID, \"note\"?}}, {{\"action\": \"defer\", \"task\": ID, \"reason\"}} or {{\"action\": \"stop_claiming\", \"reason\"}}")
    })
}
