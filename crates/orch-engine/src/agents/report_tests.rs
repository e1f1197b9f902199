//! The readers against real output: Claude Code 2.1.332's stream-json, recorded
//! against the test suite's stand-in for the Messages API (a Write, then a reply; a
//! 429), and opencode 1.18.33, Codex 0.171.0 and Gemini CLI 0.61.0 recorded the same
//! way against stand-ins for their APIs (`tests/fixtures`).

use super::*;

fn read(format: AgentOutput, text: &str) -> OutputReader {
    let mut r = OutputReader::new(format);
    for l in text.lines() {
        r.line(l);
    }
    r
}

#[test]
fn claude_stream_json_gives_cost_tokens_turns_and_session() {
    let r = read(
        AgentOutput::ClaudeStreamJson,
        include_str!("../../tests/fixtures/claude-2.1.332-write.jsonl"),
    );
    let u = r.report().usage.expect("a result event");
    assert_eq!(u.input_tokens, 200);
    assert_eq!(u.output_tokens, 40);
    assert_eq!(u.cache_read_tokens, 10);
    assert_eq!(u.cost, Some(Usd(1602)));
    assert_eq!(u.turns, 2);
    assert_eq!(u.model, "claude-opus-5-5");
    assert_eq!(
        u.session_id.as_deref(),
        Some("52e67b07-55f1-470d-9707-d46a93bdef77")
    );
    assert!(r.report().quota.is_none());
}

#[test]
fn claude_live_usage_sums_messages_before_the_result() {
    let text = include_str!("../../tests/fixtures/claude-2.1.332-write.jsonl");
    let mut r = OutputReader::new(AgentOutput::ClaudeStreamJson);
    let mut changed = 0;
    for l in text.lines().filter(|l| !l.contains("\"type\":\"result\"")) {
        changed += r.line(l) as u32;
    }
    let u = r.report().usage.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens, u.turns), (200, 2, 2));
    assert!(changed >= 2);
}

#[test]
fn claude_rate_limits_are_quota_signals() {
    let r = read(
        AgentOutput::ClaudeStreamJson,
        include_str!("../../tests/fixtures/claude-2.1.332-429.jsonl"),
    );
    assert!(r.report().quota.unwrap().starts_with("429: API Error"));
    // Its own retries: the third in a row is a signal.
    let retry = |n: u32| {
        format!(
            r#"{{"type":"system","subtype":"api_retry","attempt":{n},"max_retries":10,"retry_delay_ms":530,"error_status":429,"error":"rate_limit","session_id":"s"}}"#
        )
    };
    let mut r = OutputReader::new(AgentOutput::ClaudeStreamJson);
    r.line(&retry(1));
    r.line(&retry(2));
    assert!(r.report().quota_signal().is_none());
    assert!(r.line(&retry(3)));
    assert!(
        r.report()
            .quota_signal()
            .unwrap()
            .contains("429 (rate_limit) 3 times")
    );
}

#[test]
fn permission_denials_are_kept() {
    let r = read(
        AgentOutput::ClaudeStreamJson,
        r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"session_id":"s","total_cost_usd":0.5,"usage":{"input_tokens":1,"output_tokens":2},"permission_denials":[{"tool_name":"Bash","tool_use_id":"t","tool_input":{"command":"cargo test"}}]}"#,
    );
    assert_eq!(r.report().usage.unwrap().denied_tools, vec!["Bash"]);
}

/// Codex 0.171.0's `exec --json` and Gemini CLI 0.61.0's `stream-json`, recorded
/// against stand-ins for their APIs (a reply; a write_file call, then a reply).
#[test]
fn codex_and_gemini_streams_give_their_usage() {
    let c = read(
        AgentOutput::CodexJson,
        include_str!("../../tests/fixtures/codex-0.171.0-exec.jsonl"),
    );
    let u = c.report().usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (190, 10, 40)
    );
    assert_eq!(
        u.session_id.as_deref(),
        Some("01a233d0-26e6-7bd0-968f-41117855fcff")
    );
    assert!(c.report().quota.is_none());
    let g = read(
        AgentOutput::GeminiStreamJson,
        include_str!("../../tests/fixtures/gemini-0.61.0-write.jsonl"),
    );
    let u = g.report().usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (285, 15, 60)
    );
    assert_eq!(u.model, "gemini-2.5-pro");
    assert!(u.session_id.is_some());
    // Their error events speak of limits in words.
    let q = read(
        AgentOutput::CodexJson,
        "{\"type\":\"turn.failed\",\"error\":{\"message\":\"exceeded retry limit, last status: 429 Too Many Requests\"}}",
    );
    assert!(q.report().quota.is_some());
}

#[test]
fn text_is_not_parsed_but_patterns_match() {
    let mut r = OutputReader::new(AgentOutput::Text);
    assert!(!r.line("{\"type\":\"result\"}"));
    assert!(r.report().usage.is_none());
    let pats = vec!["insufficient_quota".to_owned()];
    assert!(quota_pattern("Error: INSUFFICIENT_QUOTA for org", &pats).is_some());
    assert!(quota_pattern("all fine", &pats).is_none());
}

/// opencode 1.18.33's `run --format json`, recorded against the stand-in: a write
/// tool call, then a reply; two steps, each with tokens and cost.
#[test]
fn opencode_json_gives_tokens_cost_and_session() {
    let o = read(
        AgentOutput::OpencodeJson,
        include_str!("../../tests/fixtures/opencode-1.18.33-write.jsonl"),
    );
    let u = o.report().usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cache_read_tokens),
        (200, 40, 10)
    );
    assert_eq!(u.cost, Some(Usd(1204)));
    assert_eq!(u.turns, 2);
    assert_eq!(
        u.session_id.as_deref(),
        Some("ses_dcc4c51ecffe1kNX0X7Dznon15")
    );
}

/// A figure from JSON: whole numbers of any size and sign, fractions, and the
/// extremes (`u64::MAX`, `-1`, `1e308`).
fn figure() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}")),
        Just(u64::MAX.to_string()),
        Just("-1".to_owned()),
        Just("1e308".to_owned()),
        Just("-0.0".to_owned()),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever numbers a CLI prints, reading never panics, sums saturate instead of
    /// wrapping (a token budget is never slipped past by an overflow), and a cost that
    /// cannot be one never reaches the usage: it is reported as malformed.
    #[test]
    fn usage_from_random_and_extreme_numbers(
        figures in proptest::collection::vec(figure(), 10),
        format in 0usize..4,
    ) {
        let f = |i: usize| figures[i].as_str();
        let lines = match format {
            0 => vec![
                format!(r#"{{"type":"assistant","message":{{"id":"m1","usage":{{"input_tokens":{},"output_tokens":{}}}}}}}"#, f(0), f(1)),
                format!(r#"{{"type":"assistant","message":{{"id":"m2","usage":{{"input_tokens":{},"cache_read_input_tokens":{}}}}}}}"#, f(2), f(3)),
                format!(r#"{{"type":"result","usage":{{"input_tokens":{},"output_tokens":{},"cache_creation_input_tokens":{}}},"total_cost_usd":{},"num_turns":{}}}"#, f(4), f(5), f(6), f(7), f(8)),
            ],
            1 => (0..3).map(|i| format!(r#"{{"type":"turn.completed","usage":{{"input_tokens":{},"cached_input_tokens":{},"output_tokens":{}}}}}"#, f(i), f(i + 3), f(i + 6))).collect(),
            2 => vec![format!(r#"{{"type":"result","stats":{{"input_tokens":{},"cached":{},"output_tokens":{},"turns":{}}}}}"#, f(0), f(1), f(2), f(3))],
            _ => (0..3).map(|i| format!(r#"{{"type":"step_finish","part":{{"cost":{},"tokens":{{"input":{},"output":{},"reasoning":{},"cache":{{"read":{},"write":{}}}}}}}}}"#, f(i), f(i + 1), f(i + 2), f(i + 3), f(i + 4), f(i + 5))).collect(),
        };
        let format = [
            AgentOutput::ClaudeStreamJson,
            AgentOutput::CodexJson,
            AgentOutput::GeminiStreamJson,
            AgentOutput::OpencodeJson,
        ][format];
        let mut r = OutputReader::new(format);
        for l in &lines {
            r.line(l);
        }
        let report = r.report();
        let u = report.usage.unwrap_or_default();
        // The sum of the parts, saturating: never less than any one of them.
        let parts = [u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens];
        proptest::prop_assert!(parts.iter().all(|p| u.tokens() >= *p));
        let costs: Vec<f64> = lines
            .iter()
            .filter_map(|l| {
                let v: Value = serde_json::from_str(l).ok()?;
                v.get("total_cost_usd").or(v["part"].get("cost"))?.as_f64()
            })
            .collect();
        if costs.iter().any(|c| !c.is_finite() || *c < 0.0) {
            proptest::prop_assert!(report.malformed.is_some(), "{lines:?}");
        }
    }
}

#[test]
fn absurd_figures_saturate_and_a_negative_cost_is_refused() {
    let max = u64::MAX;
    let r = read(
        AgentOutput::ClaudeStreamJson,
        &format!(
            r#"{{"type":"result","usage":{{"input_tokens":{max},"output_tokens":{max},"cache_read_input_tokens":-5}},"total_cost_usd":-1,"num_turns":{max}}}"#
        ),
    );
    let report = r.report();
    let u = report.usage.unwrap();
    assert_eq!(u.tokens(), u64::MAX);
    assert_eq!(u.turns, u32::MAX);
    assert_eq!(u.cost, None);
    assert_eq!(
        report.malformed.as_deref(),
        Some(
            "cache_read_input_tokens -5 is not a token count: expected a whole number, at least 0"
        )
    );
}
