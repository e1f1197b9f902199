//! Leftover processes: finding and stopping the processes a dead orch left running.
//!
//! Every process orch starts for a run (agents, gates, the planner) carries
//! `ORCH_RUN_ID=<run>` in its environment and leads its own process group. After a
//! crash those groups outlive orch. [`tagged`] finds them by reading `/proc`, and
//! [`stop_groups`] ends each whole group (grandchildren included) with SIGTERM, a
//! grace period, then SIGKILL. A group is only signalled while one of its members
//! still carries the tag, so a recycled process-group id is never hit.
//!
//! A process an `orch worker` starts for a run's job carries `ORCH_PROCESS_TAG=<run>
//! @worker:<name>` too, which stands for its tag: a coordinator resumed on the same
//! machine stops its own dead predecessor's processes, not the workers'.
//!
//! This reads `/proc`, so it finds nothing on systems without it (macOS); there a
//! crash can leave agents running until they exit on their own.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The environment variable that tags a process with its run.
pub const RUN_TAG: &str = "ORCH_RUN_ID";
/// The variable that, when set, tags a process instead of [`RUN_TAG`] (a worker's).
pub const PROCESS_TAG: &str = "ORCH_PROCESS_TAG";

/// A process that carries a run tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedProcess {
    /// Its pid.
    pub pid: i32,
    /// Its process group.
    pub pgid: i32,
    /// The run it belongs to.
    pub run: String,
    /// Its command line, for reports.
    pub command: String,
}

/// Reads `/proc/<pid>/stat`'s process group (field 5, after the parenthesised name).
/// Field `n` of `/proc/<pid>/stat` after the command name: 0 state, 1 ppid, 2 pgrp.
fn stat_field(pid: i32, n: usize) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(n)?
        .parse()
        .ok()
}

fn pgid_of(pid: i32) -> Option<i32> {
    stat_field(pid, 2)
}

fn tag_of(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let value = |var: &str| {
        let prefix = format!("{var}=");
        env.split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    value(PROCESS_TAG).or_else(|| value(RUN_TAG))
}

fn command_of(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            c.split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Every process (of this user, which is all `/proc` lets us read) tagged with a run
/// for which `wanted` is true. Never includes this process or its group.
pub fn tagged(wanted: impl Fn(&str) -> bool) -> Vec<TaggedProcess> {
    let me = std::process::id() as i32;
    let my_group = pgid_of(me);
    let mut found: Vec<TaggedProcess> = all_pids()
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let run = tag_of(pid).filter(|r| wanted(r))?;
            let pgid = pgid_of(pid)?;
            (Some(pgid) != my_group).then(|| TaggedProcess {
                pid,
                pgid,
                run,
                command: command_of(pid),
            })
        })
        .collect();
    found.sort_by_key(|p| p.pid);
    found
}

/// What [`stop_groups`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Groups that ended after SIGTERM.
    pub terminated: Vec<i32>,
    /// Groups that needed SIGKILL.
    pub killed: Vec<i32>,
}

/// Ends every process group that holds a process tagged with a run `wanted` accepts:
/// SIGTERM to each group, up to `grace` for them to go, then SIGKILL to the rest.
/// Blocking (it sleeps while it waits); call it off the async runtime.
pub fn stop_groups(wanted: impl Fn(&str) -> bool, grace: Duration) -> Stopped {
    let groups: BTreeSet<i32> = tagged(&wanted).iter().map(|p| p.pgid).collect();
    let mut stopped = Stopped::default();
    for g in &groups {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
        // A group stopped with SIGSTOP would never see the SIGTERM.
        let _ = killpg(Pid::from_raw(*g), Signal::SIGCONT);
    }
    let deadline = Instant::now() + grace;
    let mut left: BTreeSet<i32> = groups.clone();
    loop {
        left.retain(|g| group_alive(*g));
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for g in &groups {
        if left.contains(g) {
            let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
            stopped.killed.push(*g);
        } else {
            stopped.terminated.push(*g);
        }
    }
    // SIGKILL is not instant: wait (briefly) until the kernel has reaped the groups.
    let until = Instant::now() + Duration::from_secs(2);
    while stopped.killed.iter().any(|g| group_alive(*g)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    stopped
}

/// True while any process is in group `pgid` (zombies included until reaped).
fn group_alive(pgid: i32) -> bool {
    // Signal 0 checks for existence without sending anything.
    killpg(Pid::from_raw(pgid), None::<Signal>).is_ok()
        && all_pids().any(|pid| pgid_of(pid) == Some(pgid) && !is_zombie(pid))
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 1..].to_owned();
            rest.split_whitespace().next().map(|st| st == "Z")
        })
        .unwrap_or(true)
}

/// True if a process with this pid exists (on this host).
pub fn pid_alive(pid: i32) -> bool {
    pid > 0 && !is_zombie(pid) && nix::sys::signal::kill(Pid::from_raw(pid), None::<Signal>).is_ok()
}

/// Makes this process a child subreaper: a process an agent starts and abandons
/// (`setsid`, a double fork) becomes this process's child instead of init's, so
/// [`stop_orphans`] finds it even without a run tag. False where the kernel refuses.
pub fn become_subreaper() -> bool {
    nix::sys::prctl::set_child_subreaper(true).is_ok()
}

/// Ends every process left as this process's child (with a subreaper, what agents
/// abandoned): SIGTERM, up to `grace`, then SIGKILL, and again for what they in turn
/// leave, a few rounds. Returns the pids it stopped. Call it when nothing of this
/// process's own should be running (a run has ended).
pub fn stop_orphans(grace: Duration) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut stopped = Vec::new();
    for _ in 0..4 {
        let children: Vec<i32> = all_pids()
            .filter(|p| stat_field(*p, 1) == Some(me) && !is_zombie(*p))
            .collect();
        if children.is_empty() {
            break;
        }
        for c in &children {
            let _ = nix::sys::signal::kill(Pid::from_raw(*c), Signal::SIGTERM);
            let _ = nix::sys::signal::kill(Pid::from_raw(*c), Signal::SIGCONT);
        }
        let deadline = Instant::now() + grace;
        while children.iter().any(|c| pid_alive(*c)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            reap();
        }
        for c in &children {
            if pid_alive(*c) {
                let _ = nix::sys::signal::kill(Pid::from_raw(*c), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        reap();
        stopped.extend(children);
    }
    stopped
}

/// Collects the exit status of any child that has ended, so it is not left a zombie.
fn reap() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(s) = waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

fn all_pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
}
