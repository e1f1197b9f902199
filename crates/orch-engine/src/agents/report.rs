//! Reading what an agent CLI prints: its structured output parsed, line by line, into
//! the attempt's usage (model, tokens, cost, turns, session, tools denied) and the
//! signs of a rate limit or an exhausted quota; and each line rendered for people, as
//! a transcript (`orch logs`). Text output is not parsed: only the quota patterns of a
//! failed agent apply to it.

use std::collections::BTreeMap;

use orch_core::config::AgentOutput;
use orch_core::run::{AgentReport, RateLimited};
use orch_core::usage::{Usage, Usd};
use serde_json::Value;

/// HTTP statuses that mean "rate limited" or "overloaded".
fn is_limit_status(s: u64) -> bool {
    s == 429 || s == 529
}

/// One agent's output, read as it comes.
#[derive(Debug, Clone)]
pub struct OutputReader {
    format: AgentOutput,
    usage: Usage,
    /// Per model message, its usage (a message may be printed in several parts).
    messages: BTreeMap<String, Usage>,
    /// Set once a final figure (a result event) replaced the running sum.
    final_usage: bool,
    seen_usage: bool,
    quota: Option<String>,
    /// The CLI's own retries of a rate-limited request (the core judges them).
    rate_limited: Option<RateLimited>,
    /// The first figure that could not be true, in words.
    malformed: Option<String>,
}

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

/// `v[k]` as a count of turns, capped at the largest.
fn turns(v: &Value, k: &str) -> u32 {
    u32::try_from(u(v, k)).unwrap_or(u32::MAX)
}

/// Checks a usage object's counts: each present one a whole number, at least 0.
fn bad_count(us: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| {
        let v = us.get(*k)?;
        (!v.is_null() && v.as_u64().is_none())
            .then(|| format!("{k} {v} is not a token count: expected a whole number, at least 0"))
    })
}

/// `v[k]` as a cost: `Ok(None)` when absent, an error for a figure that cannot be one.
fn cost(v: &Value, k: &str) -> Result<Option<Usd>, String> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_f64() {
            Some(d) if d.is_finite() && d >= 0.0 => Ok(Some(Usd::from_dollars(d))),
            _ => Err(format!(
                "{k} {x} is not a cost: expected dollars, at least 0"
            )),
        },
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

impl OutputReader {
    /// A reader for `format`.
    pub fn new(format: AgentOutput) -> OutputReader {
        OutputReader {
            format,
            usage: Usage::default(),
            messages: BTreeMap::new(),
            final_usage: false,
            seen_usage: false,
            quota: None,
            rate_limited: None,
            malformed: None,
        }
    }

    /// Reads one line; true when the report changed.
    pub fn line(&mut self, line: &str) -> bool {
        let Ok(v) = serde_json::from_str::<Value>(line.trim()) else {
            return false;
        };
        let before = (
            self.usage.clone(),
            self.quota.clone(),
            self.malformed.clone(),
            self.rate_limited.clone(),
        );
        match self.format {
            AgentOutput::ClaudeStreamJson => self.claude(&v),
            AgentOutput::CodexJson => self.codex(&v),
            AgentOutput::GeminiStreamJson => self.gemini(&v),
            AgentOutput::OpencodeJson => self.opencode(&v),
            AgentOutput::Auto | AgentOutput::Text => return false,
        }
        before
            != (
                self.usage.clone(),
                self.quota.clone(),
                self.malformed.clone(),
                self.rate_limited.clone(),
            )
    }

    /// What the agent reported so far.
    pub fn report(&self) -> AgentReport {
        AgentReport {
            usage: self.seen_usage.then(|| self.usage.clone()),
            quota: self.quota.clone(),
            hint: None,
            malformed: self.malformed.clone(),
            rate_limited: self.rate_limited.clone(),
            output_tail: None,
        }
    }

    /// Notes the first figure that could not be true.
    fn refuse(&mut self, why: Option<String>) {
        if let Some(why) = why {
            self.malformed.get_or_insert(why);
        }
    }

    /// The cost at `v[k]`, or none (and a note) for one that cannot be a cost.
    fn cost(&mut self, v: &Value, k: &str) -> Option<Usd> {
        cost(v, k).unwrap_or_else(|why| {
            self.refuse(Some(why));
            None
        })
    }

    /// Sets a quota signature found elsewhere (a pattern in a failed agent's output).
    pub fn set_quota(&mut self, signature: String) {
        self.quota.get_or_insert(signature);
    }

    fn sum_messages(&mut self) {
        if self.final_usage {
            return;
        }
        let (model, session, denied) = (
            std::mem::take(&mut self.usage.model),
            self.usage.session_id.take(),
            std::mem::take(&mut self.usage.denied_tools),
        );
        let mut total = Usage::default();
        for m in self.messages.values() {
            total.add(m);
        }
        total.turns = self.messages.len() as u32;
        total.model = model;
        total.session_id = session;
        total.denied_tools = denied;
        self.usage = total;
        self.seen_usage = true;
    }

    fn claude(&mut self, v: &Value) {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        let sub = v.get("subtype").and_then(Value::as_str).unwrap_or("");
        if let Some(id) = s(v, "session_id") {
            self.usage.session_id = Some(id);
        }
        match (ty, sub) {
            ("system", "init") => {
                if let Some(m) = s(v, "model") {
                    self.usage.model = m;
                }
            }
            ("system", "api_retry") => {
                let status = u(v, "error_status");
                if is_limit_status(status) {
                    self.rate_limited = Some(RateLimited {
                        status,
                        retries: u(v, "attempt"),
                        error: s(v, "error").unwrap_or_default(),
                    });
                }
            }
            ("assistant", _) => {
                let m = &v["message"];
                if let (Some(id), Some(us)) = (s(m, "id"), m.get("usage")) {
                    self.refuse(bad_count(us, CLAUDE_COUNTS));
                    self.messages.insert(id, claude_usage(us));
                    self.sum_messages();
                }
            }
            ("result", _) => {
                let mut total = v.get("usage").map(claude_usage).unwrap_or_default();
                self.refuse(v.get("usage").and_then(|us| bad_count(us, CLAUDE_COUNTS)));
                total.cost = self.cost(v, "total_cost_usd");
                total.turns = turns(v, "num_turns");
                total.session_id = s(v, "session_id").or(self.usage.session_id.take());
                total.model = v
                    .get("modelUsage")
                    .and_then(Value::as_object)
                    .and_then(|o| o.keys().next().cloned())
                    .unwrap_or(std::mem::take(&mut self.usage.model));
                if let Some(d) = v.get("permission_denials").and_then(Value::as_array) {
                    for t in d.iter().filter_map(|x| s(x, "tool_name")) {
                        if !total.denied_tools.contains(&t) {
                            total.denied_tools.push(t);
                        }
                    }
                }
                self.usage = total;
                self.final_usage = true;
                self.seen_usage = true;
                let status = u(v, "api_error_status");
                if v.get("is_error").and_then(Value::as_bool) == Some(true)
                    && is_limit_status(status)
                {
                    self.quota
                        .get_or_insert(format!("{status}: {}", s(v, "result").unwrap_or_default()));
                }
            }
            _ => {}
        }
    }

    fn codex(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "thread.started" => self.usage.session_id = s(v, "thread_id"),
            "turn.completed" => {
                let us = &v["usage"];
                self.refuse(bad_count(
                    us,
                    &["input_tokens", "cached_input_tokens", "output_tokens"],
                ));
                let n = self.messages.len();
                self.messages.insert(
                    format!("turn-{n:06}"),
                    Usage {
                        input_tokens: u(us, "input_tokens")
                            .saturating_sub(u(us, "cached_input_tokens")),
                        cache_read_tokens: u(us, "cached_input_tokens"),
                        output_tokens: u(us, "output_tokens"),
                        ..Usage::default()
                    },
                );
                self.sum_messages();
            }
            "turn.failed" | "error" => {
                let msg = s(&v["error"], "message")
                    .or(s(v, "message"))
                    .unwrap_or_default();
                if looks_like_limit(&msg) {
                    self.quota.get_or_insert(msg);
                }
            }
            _ => {}
        }
    }

    fn gemini(&mut self, v: &Value) {
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "init" => {
                self.usage.session_id = s(v, "session_id");
                if let Some(m) = s(v, "model") {
                    self.usage.model = m;
                }
            }
            "result" => {
                let st = &v["stats"];
                self.refuse(bad_count(st, &["input_tokens", "cached", "output_tokens"]));
                let cached = u(st, "cached");
                self.usage.input_tokens = u(st, "input_tokens").saturating_sub(cached);
                self.usage.cache_read_tokens = cached;
                self.usage.output_tokens = u(st, "output_tokens");
                self.usage.turns = turns(st, "turns").max(1);
                if let Some(m) = st["models"].as_object().and_then(|o| o.keys().next()) {
                    self.usage.model = m.clone();
                }
                self.seen_usage = true;
                let err = s(&v["error"], "message").unwrap_or_default();
                if looks_like_limit(&err) {
                    self.quota.get_or_insert(err);
                }
            }
            "error" => {
                let msg = s(v, "message").unwrap_or_default();
                if looks_like_limit(&msg) {
                    self.quota.get_or_insert(msg);
                }
            }
            _ => {}
        }
    }

    fn opencode(&mut self, v: &Value) {
        if let Some(id) = s(v, "sessionID") {
            self.usage.session_id = Some(id);
        }
        match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "step_finish" => {
                let p = &v["part"];
                let t = &p["tokens"];
                self.refuse(bad_count(t, &["input", "output", "reasoning"]));
                self.refuse(bad_count(&t["cache"], &["read", "write"]));
                let n = self.messages.len();
                let cost = self.cost(p, "cost");
                self.messages.insert(
                    format!("step-{n:06}"),
                    Usage {
                        input_tokens: u(t, "input"),
                        output_tokens: u(t, "output").saturating_add(u(t, "reasoning")),
                        cache_read_tokens: u(&t["cache"], "read"),
                        cache_write_tokens: u(&t["cache"], "write"),
                        cost,
                        ..Usage::default()
                    },
                );
                self.sum_messages();
            }
            "error" => {
                let msg = v["error"].to_string();
                if looks_like_limit(&msg) {
                    self.quota.get_or_insert(msg);
                }
            }
            _ => {}
        }
    }
}

/// The counts of a Claude Code usage object.
const CLAUDE_COUNTS: &[&str] = &[
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
];

fn claude_usage(us: &Value) -> Usage {
    Usage {
        input_tokens: u(us, "input_tokens"),
        output_tokens: u(us, "output_tokens"),
        cache_read_tokens: u(us, "cache_read_input_tokens"),
        cache_write_tokens: u(us, "cache_creation_input_tokens"),
        ..Usage::default()
    }
}

/// An error message that speaks of a rate limit or quota.
fn looks_like_limit(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "429",
        "rate limit",
        "rate_limit",
        "quota",
        "resource_exhausted",
        "overloaded",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// The first of `patterns` (case-insensitive) in `text`, as a quota signature.
pub fn quota_pattern(text: &str, patterns: &[String]) -> Option<String> {
    let lower = text.to_lowercase();
    patterns
        .iter()
        .find(|p| !p.is_empty() && lower.contains(&p.to_lowercase()))
        .map(|p| format!("{p:?} in the agent's output"))
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
