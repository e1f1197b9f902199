//! `orch config show`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::ctx::Ctx;
use crate::output;

/// `orch config show`: every key, its value, and the layer it came from.
pub(super) fn show(ctx: &Ctx) -> Result<()> {
    let (repo, mut loaded) = ctx.load()?;
    // A database password is never printed.
    loaded.config.database_url = orch_store::redact(&loaded.config.database_url);
    let mut entries = loaded.entries();
    for e in &mut entries {
        if e.key == "database_url"
            && let Some(url) = e.value.as_str()
        {
            e.value = serde_json::Value::String(orch_store::redact(url));
        }
    }
    let agent = orch_engine::run::setup::agent_command(&loaded.config);
    let env = agent
        .as_deref()
        .map(|a| orch_engine::run::setup::agent_env_allow(&loaded.config, a))
        .unwrap_or_default();
    if ctx.json {
        return output::print_json(&json!({
            "config": loaded.config,
            "agent_command": agent,
            "agent_env": env,
            "sources": entries.iter().map(|e| (e.key.clone(), json!(e.source))).collect::<serde_json::Map<_, _>>(),
        }));
    }
    let user = orch_engine::repo::user_file()
        .map(|p| describe_file(&p))
        .unwrap_or_else(|| "(no HOME)".into());
    println!(
        "# layers, lowest first: defaults < {user} < {} < ORCH_* environment < -c flags",
        describe_file(&repo.root.join("orch.toml"))
    );
    let rendered: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                format!("{} = {}", e.key, toml_value(&e.value)),
                e.source.clone(),
            )
        })
        .collect();
    // Align the source comments, except after the odd very long value.
    let w = rendered
        .iter()
        .map(|(l, _)| l.chars().count())
        .filter(|n| *n <= 48)
        .max()
        .unwrap_or(0);
    for (line, source) in rendered {
        println!("{}  # {source}", output::pad(&line, w));
    }
    if let Some(a) = agent {
        println!("# the agent runs (with sh -c, in its worktree): {a}");
        println!(
            "# it sees these variables of orch's environment: {}",
            env.join(", ")
        );
    }
    Ok(())
}

fn describe_file(p: &Path) -> String {
    if p.exists() {
        p.display().to_string()
    } else {
        format!("{} (absent)", p.display())
    }
}

/// A JSON leaf written as a TOML value.
fn toml_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(toml_value).collect::<Vec<_>>().join(", ")
            )
        }
        other => other.to_string(),
    }
}
