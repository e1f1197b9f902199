//! An agent's structured output as a transcript people can read: messages, tool calls
//! and their results, retries and the final result, one line each. The shapes are
//! Claude Code's `stream-json`, Codex's `exec --json`, Gemini CLI's `stream-json` and
//! opencode's `run --format json`; a line that is not JSON is kept as it is.

use serde_json::Value;

/// Longest text kept from one message or tool result.
const CUT: usize = 400;

fn cut(s: &str) -> String {
    let one = s.trim().replace('\n', " ⏎ ");
    let short: String = one.chars().take(CUT).collect();
    let text = if short.len() < one.len() {
        format!("{short}…")
    } else {
        short
    };
    super::printable(&text)
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `Write(file_path=a.txt, content=…)`: a tool call's name and its arguments, short.
fn call(name: &str, input: &Value) -> String {
    let args = match input.as_object() {
        Some(o) => o
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                format!("{k}={}", cut(&v.chars().take(60).collect::<String>()))
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => String::new(),
    };
    format!("tool: {name}({args})")
}

/// The transcript lines for one output line; `None` for a line with nothing to show.
pub fn render(line: &str) -> Option<Vec<String>> {
    let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
        return Some(vec![super::printable(line)]);
    };
    let out = match str_of(&v, "type") {
        "system" => system(&v),
        "assistant" | "user" => claude_message(&v),
        "result" => vec![result(&v)],
        "item.completed" => codex_item(&v["item"]),
        "turn.completed" => vec![format!(
            "turn done: {} tokens in, {} out",
            v["usage"]["input_tokens"], v["usage"]["output_tokens"]
        )],
        "turn.failed" | "error" => vec![format!(
            "error: {}",
            cut(&v["error"]["message"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_owned))
        )],
        "message" if str_of(&v, "role") == "assistant" => {
            vec![format!("assistant: {}", cut(str_of(&v, "content")))]
        }
        "tool_use" if v.get("tool_name").is_some() => {
            vec![call(str_of(&v, "tool_name"), &v["parameters"])]
        }
        "tool_result" => vec![format!(
            "  -> {}: {}",
            str_of(&v, "status"),
            cut(str_of(&v, "output"))
        )],
        "text" => vec![format!("assistant: {}", cut(str_of(&v["part"], "text")))],
        "tool_use" => vec![call(
            str_of(&v["part"], "tool"),
            &v["part"]["state"]["input"],
        )],
        "step_finish" => vec![format!("step done: {} tokens", v["part"]["tokens"])],
        _ => Vec::new(),
    };
    (!out.is_empty()).then_some(out)
}

fn system(v: &Value) -> Vec<String> {
    match str_of(v, "subtype") {
        "init" => vec![format!(
            "session {} ({}, {} mode)",
            str_of(v, "session_id"),
            str_of(v, "model"),
            str_of(v, "permissionMode")
        )],
        "api_retry" => vec![format!(
            "api retry {} of {}: {} {}",
            v["attempt"],
            v["max_retries"],
            v["error_status"],
            str_of(v, "error")
        )],
        _ => Vec::new(),
    }
}

fn claude_message(v: &Value) -> Vec<String> {
    let Some(parts) = v["message"]["content"].as_array() else {
        return Vec::new();
    };
    parts
        .iter()
        .filter_map(|p| match str_of(p, "type") {
            "text" => Some(format!("assistant: {}", cut(str_of(p, "text")))),
            "thinking" => Some(format!("thinking: {}", cut(str_of(p, "thinking")))),
            "tool_use" => Some(call(str_of(p, "name"), &p["input"])),
            "tool_result" => {
                let content = match &p["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let how = if p["is_error"] == true { "error" } else { "ok" };
                Some(format!("  -> {how}: {}", cut(&content)))
            }
            _ => None,
        })
        .collect()
}

fn result(v: &Value) -> String {
    let mut s = format!("result: {}", str_of(v, "subtype"));
    if v["is_error"] == true {
        s.push_str(&format!(" (error: {})", cut(str_of(v, "result"))));
    }
    if let Some(c) = v["total_cost_usd"].as_f64() {
        s.push_str(&format!(", ${c:.4}"));
    }
    if let Some(n) = v["num_turns"].as_u64() {
        s.push_str(&format!(", {n} turns"));
    }
    if let Some(d) = v["permission_denials"].as_array().filter(|d| !d.is_empty()) {
        let names: Vec<&str> = d.iter().map(|x| str_of(x, "tool_name")).collect();
        s.push_str(&format!(", denied: {}", names.join(", ")));
    }
    if let Some(stats) = v.get("stats") {
        s.push_str(&format!(", {} tokens", stats["total_tokens"]));
    }
    s
}

fn codex_item(item: &Value) -> Vec<String> {
    match str_of(item, "type") {
        "agent_message" => vec![format!("assistant: {}", cut(str_of(item, "text")))],
        "reasoning" => vec![format!("thinking: {}", cut(str_of(item, "text")))],
        "command_execution" => vec![format!(
            "tool: shell({}) -> exit {}",
            cut(str_of(item, "command")),
            item["exit_code"]
        )],
        "file_change" => vec![format!("tool: edit({})", item["changes"])],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_stream_json_reads_as_a_transcript() {
        let text = include_str!("../../../orch-engine/tests/fixtures/claude-2.1.332-write.jsonl");
        let lines: Vec<String> = text.lines().filter_map(render).flatten().collect();
        assert!(lines[0].starts_with("session 52e67b07"), "{lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("tool: Write(file_path=hello.txt")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("  -> ok: File created")),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l == "assistant: Done."), "{lines:?}");
        assert_eq!(lines.last().unwrap(), "result: success, $0.0016, 2 turns");
        assert_eq!(
            render("plain \x1b[31mtext").unwrap(),
            vec!["plain \\x1b[31mtext"]
        );
    }

    #[test]
    fn the_other_clis_read_as_transcripts_too() {
        let all =
            |text: &str| -> Vec<String> { text.lines().filter_map(render).flatten().collect() };
        let o = all(include_str!(
            "../../../orch-engine/tests/fixtures/opencode-1.18.33-write.jsonl"
        ));
        assert!(o.iter().any(|l| l.starts_with("tool: write(")), "{o:?}");
        assert!(o.contains(&"assistant: Done.".to_owned()), "{o:?}");
        let g = all(include_str!(
            "../../../orch-engine/tests/fixtures/gemini-0.61.0-write.jsonl"
        ));
        assert!(
            g.iter().any(|l| l.starts_with("tool: write_file(")),
            "{g:?}"
        );
        assert!(g.iter().any(|l| l.starts_with("result: ")), "{g:?}");
        let c = all(include_str!(
            "../../../orch-engine/tests/fixtures/codex-0.171.0-exec.jsonl"
        ));
        assert!(c.contains(&"assistant: Done.".to_owned()), "{c:?}");
        assert!(
            c.iter().any(|l| l.starts_with("turn done: 200 tokens in")),
            "{c:?}"
        );
    }
}
