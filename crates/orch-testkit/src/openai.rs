//! A loopback stand-in for the OpenAI Responses API, for the real Codex CLI (which
//! takes its URL from `model_providers.<name>.base_url` in `$CODEX_HOME/config.toml`,
//! not from `OPENAI_BASE_URL`: [`codex_home`] writes one).
//!
//! It answers `POST /v1/responses` as server-sent events, from the script in the
//! conversation's newest user message (see `script`): a write is an `exec_command`
//! call that prints the text into the file, a bash step an `exec_command` of its
//! command; then "Done.". A resumed session (earlier turns of the assistant before
//! the prompt) or a prompt saying why is a retry. It records every request.

use std::path::Path;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::http::{Reply, Request, StandIn, sse};
use crate::script::{self, Step};

/// Starts the stand-in on a loopback port, on a thread of its own; it records every
/// response request.
pub fn start() -> StandIn {
    StandIn::start(answer)
}

/// A fresh `CODEX_HOME` whose model provider is `api` (its key from
/// `OPENAI_API_KEY`, no retries). Codex will not put its helpers under the system's
/// temporary directory, so it is made under `prefer` (a test's target directory)
/// when that is outside it, else under `$HOME/.cache`; removed when dropped.
pub fn codex_home(api: &StandIn, prefer: &Path) -> tempfile::TempDir {
    let tmp = std::env::temp_dir();
    let parent = match std::env::var_os("HOME") {
        _ if !prefer.starts_with(&tmp) => prefer.to_path_buf(),
        Some(home) => Path::new(&home).join(".cache/orch-test"),
        None => prefer.to_path_buf(),
    };
    std::fs::create_dir_all(&parent).expect("making CODEX_HOME's parent");
    let dir = tempfile::tempdir_in(&parent).expect("making CODEX_HOME");
    let toml = format!(
        "model_provider = \"standin\"\nmodel = \"gpt-standin\"\n\n[model_providers.standin]\nname = \"standin\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\nenv_key = \"OPENAI_API_KEY\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
        api.url
    );
    std::fs::write(dir.path().join("config.toml"), toml).expect("writing config.toml");
    dir
}

fn text_of(item: &Value) -> String {
    script::texts(&item["content"])
}

fn answer(r: Request, seen: &Mutex<Vec<Value>>) -> Reply {
    if r.method != "POST" || !r.path.ends_with("/responses") {
        return Reply {
            status: 404,
            ..Reply::ok("application/json", "{}")
        };
    }
    let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    seen.lock().expect("never poisoned").push(req.clone());
    let input = req["input"].as_array().cloned().unwrap_or_default();
    let is_prompt = |i: &Value| i["role"] == "user" && text_of(i).contains("stand-in: ");
    let at = input.iter().rposition(is_prompt).unwrap_or(0);
    let prompt = input.get(at).map(text_of).unwrap_or_default();
    let earlier = input[..at]
        .iter()
        .any(|i| i["role"] == "assistant" || i["type"] == "function_call");
    let sc = script::parse(&prompt, earlier || script::says_retry(&prompt));
    let done = input[at..]
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .count();
    let item = match sc.steps.get(done) {
        Some(step) => {
            let cmd = match step {
                Step::Write { path, text } => format!("printf '%s\\n' '{text}' > '{path}'"),
                Step::Bash(c) => c.clone(),
            };
            json!({"type":"function_call","id":format!("fc_{done}"),"call_id":format!("call_{done}_{}", input.len()),
                   "name":"exec_command","arguments":json!({"cmd": cmd}).to_string()})
        }
        None => json!({"type":"message","id":"msg_done","role":"assistant",
                       "content":[{"type":"output_text","text":"Done.","annotations":[]}]}),
    };
    let id = format!("resp_{}_{done}", input.len());
    let usage = json!({"input_tokens":sc.tokens,"input_tokens_details":{"cached_tokens":0},
                       "output_tokens":20,"output_tokens_details":{"reasoning_tokens":0},
                       "total_tokens":sc.tokens + 20});
    let events = [
        (
            "response.created",
            json!({"type":"response.created","response":{"id":id}}),
        ),
        (
            "response.output_item.done",
            json!({"type":"response.output_item.done","output_index":0,"item":item}),
        ),
        (
            "response.completed",
            json!({"type":"response.completed","response":{"id":id,"usage":usage}}),
        ),
    ];
    Reply::ok("text/event-stream", sse(&events))
}
