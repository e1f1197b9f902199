//! A loopback stand-in for the Anthropic Messages API, for the real Claude Code and
//! opencode CLIs (its tool calls use whichever tool names the request offers).
//!
//! It answers `POST /v1/messages` (streaming as server-sent events, or one JSON
//! body) from a script written in the conversation's newest user prompt, one line per
//! step: `stand-in: write PATH TEXT` (a Write tool call), `stand-in: bash COMMAND` (a
//! Bash tool call), `stand-in: tokens N` (report N input tokens on that turn) and
//! `stand-in: hang` (wait before the next answer, so orch must stop the agent).
//! `stand-in: first-only ...` applies a step only to a first attempt,
//! `stand-in: retry-only ...` only to a retry (resumed, or saying why the last one
//! failed). When the script is done, it replies "Done.". It can be told to answer
//! the next N requests with 429. It records every request, so a test can see what
//! Claude sent: resumed histories, tool results, permission answers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Reply, Request, Server, listen};
use crate::script::{self, Step};

/// How long `stand-in: hang` waits at most: a test's agent is stopped before.
const HANG: Duration = Duration::from_secs(30);

/// The server; dropped, it stops.
pub struct StandIn {
    /// Where it listens: `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub url: String,
    state: Arc<State>,
    _server: Server,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Value>>,
    limited: AtomicU32,
}

impl StandIn {
    /// Starts the server on a loopback port, on a thread of its own.
    pub fn start() -> StandIn {
        let state = Arc::new(State::default());
        let st = state.clone();
        let server = listen(move |r| answer(r, &st));
        StandIn {
            url: server.url.clone(),
            state,
            _server: server,
        }
    }

    /// Answers the next `n` message requests with 429 rate_limit_error.
    pub fn rate_limit_next(&self, n: u32) {
        self.state.limited.store(n, Ordering::SeqCst);
    }

    /// Every message request so far, as sent.
    pub fn requests(&self) -> Vec<Value> {
        self.state.requests.lock().unwrap().clone()
    }
}

/// Answers one request.
fn answer(r: Request, st: &State) -> Reply {
    // Claude Code adds `/v1` to its base URL; opencode (the AI SDK) takes it as given.
    let path = r.path.as_str();
    if r.method != "POST" || !(path.starts_with("/v1/messages") || path.starts_with("/messages")) {
        return Reply::ok("application/json", "{}");
    }
    if path.contains("count_tokens") {
        return Reply::ok("application/json", "{\"input_tokens\":10}");
    }
    let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    st.requests.lock().unwrap().push(req.clone());
    let limited = st
        .limited
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if limited {
        let b = json!({"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}});
        return Reply {
            status: 429,
            content_type: "application/json",
            body: b.to_string().into_bytes(),
            headers: vec![("retry-after", "0".to_owned())],
        };
    }
    let turn = next_turn(&req);
    if turn.hang_first {
        std::thread::sleep(HANG);
    }
    let model = req["model"]
        .as_str()
        .unwrap_or("claude-stand-in")
        .to_owned();
    if req["stream"].as_bool() == Some(true) {
        Reply::ok("text/event-stream", stream(&model, &turn))
    } else {
        let mut m = message(&model, &turn);
        m["content"] = Value::Array(turn.content.clone());
        Reply::ok("application/json", m.to_string())
    }
}

/// The assistant's next turn: a tool call from the script, or the final reply.
struct Turn {
    content: Vec<Value>,
    stop: &'static str,
    input_tokens: u64,
    hang_first: bool,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A user message that is a prompt with a script (not a tool result, nor only
/// Claude's own reminders).
fn is_prompt(m: &Value) -> bool {
    let no_results = match &m["content"] {
        Value::String(_) => true,
        Value::Array(parts) => !parts.iter().any(|p| p["type"] == "tool_result"),
        _ => false,
    };
    m["role"] == "user" && no_results && text_of(&m["content"]).contains("stand-in: ")
}

/// As orch's planner (Claude with `--json-schema` has a StructuredOutput tool): claim
/// the claimable tasks whose body says `stand-in: plan-first` first, then the rest in
/// the scheduler's order, up to the free slots.
fn planner_turn(req: &Value) -> Option<Turn> {
    let tools = req["tools"].as_array()?;
    if !tools.iter().any(|t| t["name"] == "StructuredOutput") {
        return None;
    }
    let msgs = req["messages"].as_array()?;
    let last = msgs.last()?;
    let answered = last["content"]
        .as_array()
        .is_some_and(|p| p.iter().any(|x| x["type"] == "tool_result"));
    if answered {
        return Some(Turn {
            content: vec![json!({"type":"text","text":"Planned."})],
            stop: "end_turn",
            input_tokens: 300,
            hang_first: false,
        });
    }
    let prompt = text_of(&msgs.iter().find(|m| m["role"] == "user")?["content"]);
    let block = prompt.split("```json\n").nth(1)?.split("\n```").next()?;
    let request: Value = serde_json::from_str(block).ok()?;
    let mut tasks: Vec<&Value> = request["claimable"].as_array()?.iter().collect();
    tasks.sort_by_key(|t| {
        !t["body"]
            .as_str()
            .unwrap_or("")
            .contains("stand-in: plan-first")
    });
    let slots = request["free_slots"].as_u64().unwrap_or(1) as usize;
    let proposals: Vec<Value> = tasks
        .iter()
        .take(slots)
        .map(|t| json!({"action":"claim","task":t["id"],"note":"the stand-in planner chose this"}))
        .collect();
    Some(Turn {
        content: vec![json!({
            "type": "tool_use",
            "id": format!("toolu_plan_{}", msgs.len()),
            "name": "StructuredOutput",
            "input": {"proposals": proposals},
        })],
        stop: "tool_use",
        input_tokens: 300,
        hang_first: false,
    })
}

fn next_turn(req: &Value) -> Turn {
    if let Some(t) = planner_turn(req) {
        return t;
    }
    let msgs = req["messages"].as_array().cloned().unwrap_or_default();
    let tools: Vec<&str> = req["tools"]
        .as_array()
        .map(|t| t.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    // A side request with no tools (opencode titles its session): a short answer.
    if tools.is_empty() {
        return Turn {
            content: vec![json!({"type":"text","text":"A title"})],
            stop: "end_turn",
            input_tokens: 10,
            hang_first: false,
        };
    }
    // opencode names its tools in lower case, with its own argument names.
    let lower = tools.contains(&"write");
    // The newest prompt (not a tool result) holds the script; what came after it is
    // how far the script has got.
    let at = msgs.iter().rposition(is_prompt).unwrap_or(0);
    let prompt = msgs
        .get(at)
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    // A retry: a resumed conversation, or a new one whose prompt says why.
    let retry = msgs[..at].iter().any(|m| m["role"] == "assistant") || script::says_retry(&prompt);
    let done = msgs[at..]
        .iter()
        .filter(|m| m["role"] == "assistant")
        .count();
    let sc = script::parse(&prompt, retry);
    let (tokens, hang_after) = (sc.tokens, sc.hang_after);
    let steps: Vec<Value> = sc
        .steps
        .iter()
        .map(|s| match (s, lower) {
            (Step::Write { path, text }, true) => {
                json!({"name":"write","input":{"filePath":path,"content":format!("{text}\n")}})
            }
            (Step::Write { path, text }, false) => {
                json!({"name":"Write","input":{"file_path":path,"content":format!("{text}\n")}})
            }
            (Step::Bash(cmd), lower) => {
                let name = if lower { "bash" } else { "Bash" };
                json!({"name":name,"input":{"command":cmd,"description":"run the gate"}})
            }
        })
        .collect();
    let hang_first = hang_after.is_some_and(|h| done >= h && done > 0);
    match steps.get(done) {
        Some(s) => Turn {
            content: vec![json!({
                "type": "tool_use",
                "id": format!("toolu_{done}_{}", msgs.len()),
                "name": s["name"],
                "input": s["input"],
            })],
            stop: "tool_use",
            input_tokens: tokens,
            hang_first,
        },
        None => Turn {
            content: vec![json!({"type":"text","text":"Done."})],
            stop: "end_turn",
            input_tokens: tokens,
            hang_first,
        },
    }
}

fn message(model: &str, t: &Turn) -> Value {
    json!({
        "id": format!("msg_{}", rand_id()),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": t.stop,
        "stop_sequence": null,
        "usage": {"input_tokens": t.input_tokens, "output_tokens": 20,
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0},
    })
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

fn stream(model: &str, t: &Turn) -> String {
    crate::http::sse(&events(model, t))
}

fn events(model: &str, t: &Turn) -> Vec<(&'static str, Value)> {
    let mut start = message(model, t);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    let mut ev = vec![(
        "message_start",
        json!({"type":"message_start","message":start}),
    )];
    for (i, c) in t.content.iter().enumerate() {
        if c["type"] == "text" {
            ev.push(("content_block_start", json!({"type":"content_block_start","index":i,"content_block":{"type":"text","text":""}})));
            ev.push(("content_block_delta", json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":c["text"]}})));
        } else {
            ev.push(("content_block_start", json!({"type":"content_block_start","index":i,"content_block":{"type":"tool_use","id":c["id"],"name":c["name"],"input":{}}})));
            ev.push(("content_block_delta", json!({"type":"content_block_delta","index":i,"delta":{"type":"input_json_delta","partial_json":c["input"].to_string()}})));
        }
        ev.push((
            "content_block_stop",
            json!({"type":"content_block_stop","index":i}),
        ));
    }
    ev.push(("message_delta", json!({"type":"message_delta","delta":{"stop_reason":t.stop,"stop_sequence":null},
        "usage":{"input_tokens":t.input_tokens,"output_tokens":20,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}})));
    ev.push(("message_stop", json!({"type":"message_stop"})));
    ev
}
