//! The planner's protocol: the typed request it gets on its stdin, and its answer
//! parsed into proposals, which the core judges. Running it is `exec::ask_planner`'s.

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
    /// Why its last attempt failed, if it waits to retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
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

/// The JSON Schema of a planner's answer, for CLIs that enforce one.
pub const SCHEMA: &str = r#"{"type":"object","properties":{"proposals":{"type":"array","items":{"type":"object","properties":{"action":{"type":"string","enum":["claim","defer","stop_claiming"]},"task":{"type":"integer"},"note":{"type":"string"},"reason":{"type":"string"}},"required":["action"]}}},"required":["proposals"]}"#;

/// The prompt a planner preset's CLI gets: what orch asks, the rules it enforces, the
/// schema of the answer, and the request itself.
pub fn prompt(req: &Request) -> String {
    let mut s = String::from(
        "# Plan the next claims of an orch run\n\n\
         You are the planner of a run that hands coding tasks to agents. Below are the \
         tasks that can be claimed now (with their bodies, dependencies, the paths they \
         expect to touch, and why earlier attempts failed), and how many agents may start. \
         Decide which to start and in what order, which to defer (and why), or to stop \
         claiming. orch checks every proposal: a task that is not claimable, a claim past \
         the free slots, or two tasks whose touches overlap are refused.\n\n\
         Answer with JSON only, matching this schema:\n\n",
    );
    s.push_str(SCHEMA);
    s.push_str("\n\nFor example: {\"proposals\": [{\"action\": \"claim\", \"task\": 3, \"note\": \"start with the parser\"}]}\n\n## The request\n\n```json\n");
    s.push_str(&serde_json::to_string_pretty(req).expect("a planner request always serialises"));
    s.push_str("\n```\n");
    s
}

/// A planner preset's answer, as its CLI printed it: Claude's result event (its
/// `structured_output`, or JSON in its `result`), Codex's last agent message, Gemini's
/// `response`; else the output itself.
pub fn extract_answer(stdout: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stdout);
    let mut answer: Option<String> = None;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
            continue;
        };
        if let Some(o) = v.get("structured_output").filter(|o| !o.is_null()) {
            answer = Some(o.to_string());
        } else if let Some(r) = v.get("result").and_then(|r| r.as_str()) {
            answer.get_or_insert(r.to_owned());
        } else if let Some(r) = v.get("response").and_then(|r| r.as_str()) {
            answer = Some(r.to_owned());
        } else if v["type"] == "item.completed" && v["item"]["type"] == "agent_message" {
            answer = v["item"]["text"].as_str().map(str::to_owned);
        }
    }
    let a = answer.unwrap_or_else(|| text.into_owned());
    // A model may fence its JSON.
    let t = a.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .unwrap_or(t);
    t.strip_suffix("```")
        .unwrap_or(t)
        .trim()
        .as_bytes()
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_found_in_each_clis_output() {
        let claude = br#"{"type":"result","subtype":"success","result":"","structured_output":{"proposals":[{"action":"claim","task":2}]},"total_cost_usd":0.01}"#;
        let p = parse_proposals(&extract_answer(claude)).unwrap();
        assert_eq!(p.len(), 1);
        let codex = b"{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"[{\\\"action\\\":\\\"stop_claiming\\\",\\\"reason\\\":\\\"done\\\"}]\"}}\n";
        assert_eq!(parse_proposals(&extract_answer(codex)).unwrap().len(), 1);
        let gemini = br#"{"response":"```json\n{\"proposals\":[]}\n```","stats":{}}"#;
        assert!(parse_proposals(&extract_answer(gemini)).unwrap().is_empty());
        let plain = br#"[{"action":"claim","task":1}]"#;
        assert_eq!(parse_proposals(&extract_answer(plain)).unwrap().len(), 1);
    }
}
