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
        let verdict = w.verdict_words();
        println!(
            "#{} {}  round {}  {verdict}  for {}  {}  worker gate: {}",
            w.task.id,
            output::printable(&w.task.title),
            r.round,
            age(now - w.since.0),
            w.usage.summary(),
            w.gate_words(),
        );
    }
    println!("  next: orch review show ID, then orch review approve|changes|reject ID");
    Ok(())
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
    println!("  worker gate: {}", w.gate_words());
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
        let Some(decision) = Decision::recorded_in(&e.payload) else {
            continue;
        };
        if !decision.text().trim().is_empty() {
            println!("      \"{}\"", output::printable(decision.text().trim()));
        }
        for c in decision.comments() {
            println!(
                "      {}:{}: {}",
                c.path,
                c.line,
                output::printable(&c.text)
            );
        }
    }
    println!();
    print!("{}", d.diff);
    Ok(())
}
