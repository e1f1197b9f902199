//! `orch status` and `orch land`: their `--json` shapes and their lines.

use orch_engine::line::land::LandOutcome;
use orch_engine::line::status::{Behind, LineStatus};
use serde::Serialize;

#[derive(Serialize)]
struct BehindJson<'a> {
    name: &'a str,
    head: &'a str,
    ahead: u64,
    tasks: &'a [String],
}

#[derive(Serialize)]
struct StatusJson<'a> {
    integration_branch: &'a str,
    head: Option<&'a str>,
    base: Option<BehindJson<'a>>,
    target: Option<BehindJson<'a>>,
    /// Set when the line's head is not work orch put there.
    untrusted: Option<UntrustedJson<'a>>,
}

#[derive(Serialize)]
struct UntrustedJson<'a> {
    head: &'a str,
    last_validated: Option<&'a str>,
    message: String,
}

fn behind(b: &Option<Behind>) -> Option<BehindJson<'_>> {
    b.as_ref().map(|b| BehindJson {
        name: &b.name,
        head: &b.head.0,
        ahead: b.ahead,
        tasks: &b.tasks,
    })
}

/// Prints `orch status`.
pub fn print_status(s: &LineStatus, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(&StatusJson {
            integration_branch: &s.branch,
            head: s.head.as_ref().map(|h| h.0.as_str()),
            base: behind(&s.base),
            target: behind(&s.target),
            untrusted: s.untrusted.as_ref().map(|u| UntrustedJson {
                head: &u.head.0,
                last_validated: u.last_validated.as_ref().map(|c| c.0.as_str()),
                message: u.to_string(),
            }),
        });
    }
    let Some(head) = &s.head else {
        println!(
            "integration line: {} does not exist yet; `orch run` creates it at run.base",
            s.branch
        );
        return Ok(());
    };
    println!("integration line: {} at {}", s.branch, head.short());
    if let Some(u) = &s.untrusted {
        println!("  NOT VALIDATED: {u}");
        return Ok(());
    }
    if let Some(b) = &s.base {
        println!(
            "  ahead of the base ({} at {}): {} commit(s)",
            b.name,
            b.head.short(),
            b.ahead
        );
        if !b.tasks.is_empty() {
            println!("  holds: {}", b.tasks.join(", "));
        }
    }
    match &s.target {
        Some(t) if t.ahead == 0 => println!("  {} holds all of it: nothing waits to land", t.name),
        Some(t) => {
            println!(
                "  waiting to land on {}: {} commit(s){}; `orch land` fast-forwards it",
                t.name,
                t.ahead,
                if t.tasks.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", t.tasks.join(", "))
                }
            );
        }
        None => println!("  no target branch (run.base names none; set run.target)"),
    }
    Ok(())
}

/// Prints what `orch land` did, and what it did not (with the command to run).
pub fn print_landed(o: &LandOutcome, json: bool) -> anyhow::Result<()> {
    if json {
        return super::print_json(&serde_json::json!({
            "landed": o.landed,
            "not_landed": o.not_landed,
        }));
    }
    for n in &o.landed {
        println!("{n}");
    }
    for n in &o.not_landed {
        println!("not landed: {n}");
    }
    Ok(())
}
