//! A loopback stand-in for the Gemini API, for the real Gemini CLI (at
//! `GOOGLE_GEMINI_BASE_URL`, with an API key chosen in `$HOME/.gemini/settings.json`:
//! [`gemini_home`] writes one).
//!
//! Its model router's `generateContent` gets a low complexity score; each
//! `streamGenerateContent` answers from the script in the conversation's newest user
//! prompt (see `script`): a write is a `write_file` call; then "Done.". Earlier turns
//! of the model before the prompt, or a prompt saying why, make a retry. It records
//! every streamed request.

use std::path::Path;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::http::{Reply, Request, StandIn, sse};
use crate::script::{self, Step};

/// Starts the stand-in on a loopback port, on a thread of its own; it records every
/// streamed request.
pub fn start() -> StandIn {
    StandIn::start(answer)
}

/// Writes `home/.gemini/settings.json` choosing API-key auth.
pub fn gemini_home(home: &Path) {
    let dir = home.join(".gemini");
    std::fs::create_dir_all(&dir).expect("making ~/.gemini");
    let settings = r#"{"security":{"auth":{"selectedType":"gemini-api-key"}}}"#;
    std::fs::write(dir.join("settings.json"), settings).expect("writing settings.json");
}

fn text_of(content: &Value) -> String {
    script::texts(&content["parts"])
}

fn answer(r: Request, seen: &Mutex<Vec<Value>>) -> Reply {
    let usage =
        |t: u64| json!({"promptTokenCount":t,"candidatesTokenCount":20,"totalTokenCount":t + 20});
    let candidate = |parts: Value| {
        json!({"candidates":[{"content":{"role":"model","parts":parts},"finishReason":"STOP","index":0}],
               "usageMetadata":usage(100)})
    };
    if r.method != "POST" {
        return Reply {
            status: 404,
            ..Reply::ok("application/json", "{}")
        };
    }
    if r.path.contains(":generateContent") {
        // The CLI's model router asks how hard the task is.
        let score = json!({"complexity_reasoning":"a scripted task","complexity_score":10});
        let body = candidate(json!([{"text": score.to_string()}]));
        return Reply::ok("application/json", body.to_string());
    }
    let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    seen.lock().expect("never poisoned").push(req.clone());
    let contents = req["contents"].as_array().cloned().unwrap_or_default();
    let is_prompt = |c: &Value| c["role"] == "user" && text_of(c).contains("stand-in: ");
    let at = contents.iter().rposition(is_prompt).unwrap_or(0);
    let prompt = contents.get(at).map(text_of).unwrap_or_default();
    let earlier = contents[..at].iter().any(|c| c["role"] == "model");
    let sc = script::parse(&prompt, earlier || script::says_retry(&prompt));
    let done = contents[at..]
        .iter()
        .flat_map(|c| c["parts"].as_array().cloned().unwrap_or_default())
        .filter(|p| p.get("functionResponse").is_some())
        .count();
    let parts = match sc.steps.get(done) {
        Some(Step::Write { path, text }) => json!([{"functionCall":{"name":"write_file",
            "args":{"file_path":path,"content":format!("{text}\n")}}}]),
        Some(Step::Bash(cmd)) => json!([{"functionCall":{"name":"run_shell_command",
            "args":{"command":cmd}}}]),
        None => json!([{"text":"Done."}]),
    };
    let mut body = candidate(parts);
    body["usageMetadata"] = usage(sc.tokens);
    Reply::ok("text/event-stream", sse(&[("", body)]))
}
