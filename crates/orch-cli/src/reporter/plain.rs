//! One line per event on stderr, for logs and pipes: each with the time of day and
//! the time since the run started, a failure's output lines indented below it, and
//! every 10 s while agents work, a line saying which attempts are running and for how
//! long.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orch_engine::core::run::{AttemptId, Journaled, RunEvent};
use orch_engine::{RunUpdate, Subscription};

use super::lines::Words;

/// How often the status line is printed while attempts are live.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// `12:53:20 +4.2s`: the entry's time of day (UTC) and the time since the run began.
fn stamp(j: &Journaled, started: Instant) -> String {
    let at = j.at.to_string();
    let clock = at.get(11..19).unwrap_or(&at);
    format!("{clock} +{:.1}s", started.elapsed().as_secs_f64())
}

pub(super) async fn report(mut sub: Subscription, mut words: Words) {
    let started = Instant::now();
    let mut live: BTreeMap<AttemptId, (String, Instant)> = BTreeMap::new();
    let mut tick = tokio::time::interval(STATUS_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            u = sub.next() => match u {
                None => return,
                Some(RunUpdate::Journal(j)) => {
                    if let RunEvent::AttemptMoved { attempt, to, .. } = &j.event {
                        if to.is_terminal() {
                            live.remove(attempt);
                        } else {
                            let phase = format!("{:?}", to.phase()).to_lowercase();
                            live.insert(*attempt, (phase, Instant::now()));
                        }
                    }
                    words.learn(&j.event).await;
                    if let Some(line) = words.line(&j.event) {
                        let text = super::lines::short_shas(&line.text);
                        eprintln!("{} {:>9} {text}", stamp(&j, started), line.verb);
                        for l in &line.tail {
                            eprintln!("{:>26}| {l}", "");
                        }
                    }
                }
                Some(_) => {}
            },
            _ = tick.tick() => {
                if !live.is_empty() {
                    let who: Vec<String> = live
                        .iter()
                        .map(|(a, (phase, since))| {
                            format!("{} {phase} {}s", words.attempt(*a), since.elapsed().as_secs())
                        })
                        .collect();
                    eprintln!("+{:.0}s still working: {}", started.elapsed().as_secs_f64(), who.join(", "));
                }
            }
        }
    }
}
