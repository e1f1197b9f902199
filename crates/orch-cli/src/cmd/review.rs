//! `orch review`, `orch review show/approve/changes/reject`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use orch_engine::core::review::{Comment, Decision};
use orch_engine::repo::{ReviewDetail, Waiting};

use crate::cli::{ReviewArgs, ReviewCommand};
use crate::ctx::Ctx;
use crate::error::BadInput;
use crate::output::{self, TaskJson};

/// Runs `orch review` or one of its subcommands.
pub(super) async fn review(ctx: &Ctx, args: ReviewArgs) -> Result<()> {
    let repo = ctx.open().await?;
    let who = repo.actor();
    let decision = match args.command {
        None => {
            let waiting = repo.reviews().await?;
            list(&waiting, ctx.json)?;
            return Ok(repo.close().await?);
        }
        Some(ReviewCommand::Show { id }) => {
            let detail = repo.review_of(id).await?;
            show(&detail, ctx.json)?;
            return Ok(repo.close().await?);
        }
        Some(ReviewCommand::Approve { id, message }) => (
            id,
            Decision::Approve {
                text: message.unwrap_or_default(),
            },
        ),
        Some(ReviewCommand::Changes {
            id,
            message,
            file,
            at,
        }) => {
            let text = match (message, file) {
                (Some(m), _) => m,
                (None, Some(f)) => super::task::read_input(&f)?,
                (None, None) => String::new(),
            };
            let comments = at
                .chunks(2)
                .map(|p| Comment::parse(&p[0], p.get(1).map_or("", String::as_str)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| BadInput(format!("--at: {e}")))?;
            (id, Decision::Changes { text, comments })
        }
        Some(ReviewCommand::Reject { id, message, again }) => (
            id,
            Decision::Reject {
                text: message,
                again,
            },
        ),
    };
    let (id, decision) = decision;
    let done = repo.review(&who, id, decision).await?;
    if ctx.json {
        output::print_json(&serde_json::json!({
            "task": TaskJson::from(&done.task),
            "reason": done.reason,
        }))?;
    } else {
        println!("#{} {}: {}", done.task.id, done.task.title, done.reason);
    }
    Ok(repo.close().await?)
}

fn list(waiting: &[Waiting], json: bool) -> Result<()> {
    if json {
        return output::print_json(&waiting);
    }
    if waiting.is_empty() {
        println!("nothing waits for review");
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for w in waiting {
        let r = &w.review;
        let verdict = match (&r.verdict, &r.note) {
            (orch_engine::core::review::Verdict::Approved, _) => "approved, lands in the next run",
            (_, Some(_)) => "waiting (rounds spent)",
            _ => "waiting",
        };
        println!(
            "#{} {}  round {}  {verdict}  for {}  {}  worker gate: {}",
            w.task.id,
            output::printable(&w.task.title),
            r.round,
            age(now - w.since.0),
            w.usage.summary(),
            gates(w),
        );
    }
    println!("  next: orch review show ID, then orch review approve|changes|reject ID");
    Ok(())
}

/// The worker gate in a few words.
fn gates(w: &Waiting) -> String {
    let failed = w.gates.iter().filter(|g| g.exit_code != Some(0)).count();
    match (w.gates.len(), failed) {
        (0, _) => "none run (reused or not configured)".into(),
        (n, 0) => format!("passed ({n} command{})", if n == 1 { "" } else { "s" }),
        (n, f) => format!("{f} of {n} failed"),
    }
}

fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d", s / 86400),
    }
}

fn show(d: &ReviewDetail, json: bool) -> Result<()> {
    if json {
        return output::print_json(d);
    }
    let (w, r) = (&d.waiting, &d.waiting.review);
    println!("#{} {}", w.task.id, output::printable(&w.task.title));
    println!(
        "  round {}: {} at {} (attempt #{}.{} of run {}), on {}",
        r.round,
        r.work.branch,
        r.work.head.short(),
        w.task.id,
        r.work.attempt,
        r.work.run,
        r.work.base.short()
    );
    if let Some(n) = &r.note {
        println!("  note: {n}");
    }
    println!("  cost: {}", w.usage.summary());
    println!("  worker gate: {}", gates(w));
    for g in &w.gates {
        println!("    $ {}  ({})", output::printable(&g.command), g.outcome);
        for l in g.tail.iter().rev().take(3).rev() {
            println!("      {}", output::printable(l));
        }
    }
    if !d.history.is_empty() {
        println!("  history:");
    }
    for e in &d.history {
        let who = e.actor.strip_prefix("human:").unwrap_or(&e.actor);
        println!("    {} {who}: {}", e.kind, output::printable(&e.reason));
        if let Some(text) = e.payload.pointer("/decision/text").and_then(|t| t.as_str())
            && !text.trim().is_empty()
        {
            println!("      \"{}\"", output::printable(text.trim()));
        }
        let comments = e
            .payload
            .pointer("/decision/comments")
            .and_then(|c| c.as_array());
        for c in comments.into_iter().flatten() {
            println!(
                "      {}:{}: {}",
                c["path"].as_str().unwrap_or(""),
                c["line"],
                output::printable(c["text"].as_str().unwrap_or(""))
            );
        }
    }
    println!();
    print!("{}", d.diff);
    Ok(())
}
