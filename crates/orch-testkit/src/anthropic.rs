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

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// How long `stand-in: hang` waits at most: a test's agent is stopped before.
const HANG: Duration = Duration::from_secs(30);

/// The server; dropped, it stops.
pub struct StandIn {
    /// Where it listens: `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub url: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<Value>>,
    limited: AtomicU32,
}

impl StandIn {
    /// Starts the server on a loopback port, on a thread of its own.
    pub fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let st = st.clone();
                        std::thread::spawn(move || {
                            let _ = serve(conn, &st);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        StandIn { url, state, stop }
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

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One HTTP/1.1 exchange; the connection closes after it.
fn serve(conn: TcpStream, st: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (mut len, mut chunked) = (0usize, false);
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut r)?
    } else {
        let mut b = vec![0; len];
        r.read_exact(&mut b)?;
        b
    };
    let mut w = conn;
    // Claude Code adds `/v1` to its base URL; opencode (the AI SDK) takes it as given.
    if method != "POST" || !(path.starts_with("/v1/messages") || path.starts_with("/messages")) {
        return respond(&mut w, 200, "application/json", b"{}", &[]);
    }
    if path.contains("count_tokens") {
        return respond(
            &mut w,
            200,
            "application/json",
            b"{\"input_tokens\":10}",
            &[],
        );
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.requests.lock().unwrap().push(req.clone());
    let limited = st
        .limited
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if limited {
        let b = json!({"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}});
        return respond(
            &mut w,
            429,
            "application/json",
            b.to_string().as_bytes(),
            &[("retry-after", "0")],
        );
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
        let sse = stream(&model, &turn);
        respond(&mut w, 200, "text/event-stream", sse.as_bytes(), &[])
    } else {
        let mut m = message(&model, &turn);
        m["content"] = Value::Array(turn.content.clone());
        respond(
            &mut w,
            200,
            "application/json",
            m.to_string().as_bytes(),
            &[],
        )
    }
}

/// A chunked request body (Bun's fetch sends one).
fn read_chunked(r: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        r.read_line(&mut size)?;
        let n =
            usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if n == 0 {
            let mut end = String::new();
            r.read_line(&mut end)?;
            return Ok(body);
        }
        let mut chunk = vec![0; n + 2];
        r.read_exact(&mut chunk)?;
        body.extend_from_slice(&chunk[..n]);
    }
}

fn respond(
    w: &mut TcpStream,
    status: u16,
    ty: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    let reason = if status == 200 {
        "OK"
    } else {
        "Too Many Requests"
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {ty}\r\ncontent-length: {}\r\nconnection: close\r\nrequest-id: req_standin\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
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
    // A retry: a resumed conversation, or a new one whose prompt says why the last
    // attempt failed.
    let retry = msgs[..at].iter().any(|m| m["role"] == "assistant")
        || prompt.contains("The previous attempt failed");
    let done = msgs[at..]
        .iter()
        .filter(|m| m["role"] == "assistant")
        .count();
    let mut steps = Vec::new();
    let mut tokens = 100;
    let mut hang_after = None;
    for l in prompt.lines() {
        // opencode shows an attached file with line numbers (`3: stand-in: ...`).
        let Some(at) = l.find("stand-in: ") else {
            continue;
        };
        let rest = l[at + "stand-in: ".len()..].trim_end();
        let rest = if let Some(r) = rest.strip_prefix("first-only ") {
            if retry {
                continue;
            }
            r
        } else if let Some(r) = rest.strip_prefix("retry-only ") {
            if !retry {
                continue;
            }
            r
        } else {
            rest
        };
        if let Some(n) = rest.strip_prefix("tokens ") {
            tokens = n.trim().parse().unwrap_or(100);
        } else if rest.trim() == "hang" {
            hang_after = Some(steps.len());
        } else if let Some(w) = rest.strip_prefix("write ") {
            let (path, text) = w.split_once(' ').unwrap_or((w, ""));
            let content = format!("{text}\n");
            steps.push(if lower {
                json!({"name":"write","input":{"filePath":path,"content":content}})
            } else {
                json!({"name":"Write","input":{"file_path":path,"content":content}})
            });
        } else if let Some(cmd) = rest.strip_prefix("bash ") {
            let name = if lower { "bash" } else { "Bash" };
            steps.push(json!({"name":name,"input":{"command":cmd,"description":"run the gate"}}));
        }
    }
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
    ev.iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect()
}
