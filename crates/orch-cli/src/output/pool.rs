//! `orch pool`'s output: a line per pooled worktree, or its `--json` shape.

use orch_engine::core::pool::SlotState;
use orch_engine::core::units::ByteSize;
use orch_engine::upkeep::pool::PoolEntry;
use serde::Serialize;

/// `orch pool --json`: one object per pooled worktree.
#[derive(Serialize)]
struct EntryJson<'a> {
    slot: u32,
    kind: String,
    path: String,
    state: &'static str,
    run: Option<&'a str>,
    holder: Option<&'a str>,
    last_holder: Option<&'a str>,
    last_used: String,
    set_up: bool,
    bytes: u64,
    exists: bool,
}

/// Prints the pool.
pub fn print(entries: &[PoolEntry], json: bool) -> anyhow::Result<()> {
    if json {
        let rows: Vec<EntryJson<'_>> = entries
            .iter()
            .map(|e| {
                let held = match &e.slot.state {
                    SlotState::Leased(h) => Some(h),
                    _ => None,
                };
                EntryJson {
                    slot: e.slot.slot,
                    kind: e.slot.kind.to_string(),
                    path: e.slot.path.display().to_string(),
                    state: e.slot.state.name(),
                    run: held.map(|h| h.run.as_str()),
                    holder: held.map(|h| h.holder.as_str()),
                    last_holder: e.slot.last_holder.as_deref(),
                    last_used: e.slot.last_used.to_string(),
                    set_up: e.slot.set_up,
                    bytes: e.bytes,
                    exists: e.exists,
                }
            })
            .collect();
        return super::print_json(&rows);
    }
    if entries.is_empty() {
        println!("The worktree pool is empty: a run makes worktrees as it needs them.");
        return Ok(());
    }
    println!(
        "{:<5} {:<12} {:<20} {:>10}  path (last used by)",
        "slot", "kind", "state", "size"
    );
    let mut total = 0;
    for e in entries {
        total += e.bytes;
        let state = match &e.slot.state {
            SlotState::Leased(h) => format!("leased {}", h.holder),
            s => s.name().to_owned(),
        };
        let missing = if e.exists { "" } else { " (missing)" };
        let last = e
            .slot
            .last_holder
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        println!(
            "{:<5} {:<12} {:<20} {:>10}  {}{missing}{last}",
            e.slot.slot,
            e.slot.kind.to_string(),
            state,
            ByteSize(e.bytes).approx(),
            e.slot.path.display()
        );
    }
    println!(
        "{} worktrees, {} on disk; `orch cleanup --pool` removes them",
        entries.len(),
        ByteSize(total).approx()
    );
    Ok(())
}
