//! `orch config show`, `orch config get KEY`, `orch config set KEY VALUE`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::ctx::Ctx;
use crate::error::BadInput;
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

/// `orch config get KEY`: the merged value of a key, or of every key in a section,
/// with where it came from.
pub(super) fn get(ctx: &Ctx, key: &str) -> Result<()> {
    let (_, loaded) = ctx.load()?;
    let section = format!("{key}.");
    let mut found: Vec<_> = loaded
        .entries()
        .into_iter()
        .filter(|e| e.key == key || e.key.starts_with(&section))
        .collect();
    if found.is_empty() {
        return Err(BadInput(format!(
            "{key}: unknown key; `orch config show` lists every key"
        ))
        .into());
    }
    for e in &mut found {
        if e.key == "database_url"
            && let Some(url) = e.value.as_str()
        {
            e.value = serde_json::Value::String(orch_store::redact(url));
        }
    }
    if ctx.json {
        return match found.as_slice() {
            [one] if one.key == key => output::print_json(&one),
            all => output::print_json(&all),
        };
    }
    match found.as_slice() {
        [one] if one.key == key => println!("{}", toml_value(&one.value)),
        all => {
            for e in all {
                println!("{} = {}  # {}", e.key, toml_value(&e.value), e.source);
            }
        }
    }
    Ok(())
}

/// `orch config set KEY VALUE`: into the repository's `orch.toml`, comments kept.
pub(super) fn set(ctx: &Ctx, key: &str, value: &str) -> Result<()> {
    let repo = ctx.repo()?;
    let out = orch_engine::repo::set_setting(&repo.root, key, value)?;
    if ctx.json {
        return output::print_json(&out);
    }
    match &out.before {
        Some(b) if *b == out.after => println!("{key} is {} already", out.after),
        Some(b) => println!("{key} = {} (was {b}) in {}", out.after, out.path.display()),
        None => println!("{key} = {} in {}", out.after, out.path.display()),
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
