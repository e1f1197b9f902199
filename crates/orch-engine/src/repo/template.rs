//! The commented `orch.toml` that `orch init` writes.

/// Every key of the schema with its default, commented out.
pub const ORCH_TOML: &str = r#"# orch configuration for this repository.
# Layers, lowest first: built-in defaults, ~/.config/orch/config.toml, this file,
# ORCH_* environment variables (ORCH_AGENT__TIMEOUT=5s sets agent.timeout), -c KEY=VALUE.
# `orch config show` prints the merged result and where each value came from.
# Every line below is a default; uncomment and change what you need.

# database_url = ""              # empty: <repo>/.orch/orch.db (SQLite); or postgres://...

[run]
# concurrency = 4
# mode = "parallel"              # or "incremental"
# base = "HEAD"                  # a branch, tag, commit, or origin/<branch>
# offline = "use-cached"         # or "fail"
# merge_style = "merge"          # or "squash"
# finish = "leave"               # or "fast-forward" (the target, by compare-and-swap), "push", "fast-forward+push"
# integration = "auto"           # or "fixed": depth and batch as set, 1 where not
# integration_depth = 0          # batches gated at once, stacked on the head (1-16); 0: auto's choice
# integration_batch = 0          # attempts per batch, a failing one bisected (1-16); 0: auto's choice
# integration_branch = "orch/integration"  # the line every run builds on; or "per-run"
# target = ""                    # the branch finish lands on; empty: the branch run.base names
# remote = "origin"              # where finish = "push" pushes, and workers share branches
# executors = "local"            # or "workers": orch worker on any machine (PostgreSQL; docs/scale-out.md)
# update_checkout = false        # a fast-forward may update your clean checkout of the target
# commit_template = ""           # a task commit's first lines: {title} {body} {key} {task_id} {run} {attempt}
# planner = ""                   # empty: the built-in scheduler; else a command
# lease_ttl = "30s"              # a crashed orch's run is taken over after this
# store_patience = "2m"          # a busy or unreachable database is waited out this long
# watch = false                  # when nothing is left, wait for more work until canceled

[agent]
# preset = ""                    # claude | codex | gemini | aider | opencode
# command = ""                   # a command template; overrides the preset
# timeout = "30m"
# env_allow = ["PATH", "HOME", "LANG", "TERM", "USER"]  # names or globs; a preset adds its CLI's
# env_extra = []                 # more names or globs, added to env_allow
# output = ""                    # empty: the preset's; or claude-stream-json, codex-json, ...
# resume_session = true          # a retry resumes the previous attempt's session
# sandbox = "none"               # or "bwrap": read-only but its worktree (needs bubblewrap)
# prompt_template = ""           # a file; empty: the built-in template

[validate]
# worker = []                    # commands run in the task worktree
# integration = []               # commands run on the merge commit
# timeout = "20m"
# integration_retries = 0        # reruns of a failing integration gate; a later pass is "flaky"
# reuse = true                   # a tree that passed a gate is not gated again
# integration_stands_in = false  # same worker and integration commands: gate once, on the merge
# slots = 0                      # gates (worker and integration) run at once; 0: the cores, more while the CPU idles
# integration_slots = 0          # integration gates run at once under run.integration = "auto"; 0: as many as the gate slots may be

[policy]
# max_attempts = 2
# retry_on = ["agent-error", "timeout", "worker-validation", "integration-validation", "conflict", "infrastructure"]
# backoff = "5s"
# stale_retries = 3              # failures on a stale head that spend no attempt
# on_revert = "retry"            # undoing landed work: retry told what to keep, or "block", "allow"
# on_conflict = "retry"          # or "block", "ask" (a person resolves it: orch task resolve), "halt"
# empty_diff = "fail"            # or "done-if-valid"
# quota_backoff = "1m"           # after a rate limit: the wait before one probe (doubling)
# quota_max_wait = "1h"          # the quota breaker open this long halts the run
# quota_patterns = ["rate_limit_error", "overloaded_error", "insufficient_quota", "RESOURCE_EXHAUSTED", "usage limit"]
# symlinks = "inside"            # or "allow": symlinks out of the repository land

[worktrees]
# root = ""                      # empty: $XDG_DATA_HOME/orch/worktrees/<repo-key>
# cleanup = "on-success"         # or "always", "never"
# keep_failed = "7d"             # orch cleanup keeps failed attempts this long
# submodules = true              # check out submodules in worktrees (from .git/modules when there)
# reuse = true                   # a pool of worktrees reused across attempts and runs
# pool = 0                       # idle attempt worktrees kept; 0: concurrency + the integration depth
# pool_max = 0                   # most pooled worktrees at once; 0: no cap
# max_bytes = "0B"               # past this on disk, the largest idle worktrees go; 0: no cap
# keep = []                      # ignored paths kept as caches (["target/"]: also copied into new worktrees); empty: every ignored path
# scrub = []                     # ignored paths removed before each reuse all the same
# include = []                   # ignored files copied from your checkout, like ".env"
# setup = []                     # commands run when a worktree is made, like "npm ci"
# port_base = 41000              # ORCH_PORT = port_base + ORCH_SLOT * ports_per_slot
# ports_per_slot = 10

[artifacts]
# keep_runs = 20
# max_bytes = "2GiB"
# log_cap = "16MiB"

[notify]                         # when a run ends, a task fails or is blocked, work waits for review, the quota breaker opens
# command = ""                   # a shell command, the event as JSON on its stdin
# webhook = ""                   # an http:// URL the event is POSTed to as JSON

[budget]                         # what agents report spending; 0 means no cap
# run_usd = 0.0                  # the run stops claiming once spent
# task_usd = 0.0                 # a task's live attempt past it is stopped
# run_tokens = 0
# task_tokens = 0

[review]                         # a person's review before work lands: orch review
# required = "none"              # or "all", "labels"
# labels = []                    # with required = "labels": the labels that need review
# max_rounds = 3                 # rounds of requested changes an agent gets

[board]                          # where the tasks come from: docs/boards.md
# source = "orch"                # or "backlog.md", "taskmaster": read and written back
# path = ""                      # the source's place; "": backlog/ or .taskmaster/tasks/tasks.json
# tag = ""                       # Taskmaster's tag; "": master

[worker]                         # orch worker, with run.executors = "workers"
# lease_ttl = "30s"              # a silent worker's job goes to another after this
# poll = "500ms"                 # how often idle workers and coordinators look
"#;

#[cfg(test)]
mod tests {
    use orch_core::config::Config;

    /// The template must describe the real defaults: uncommented, it parses to them,
    /// and as written (all commented) it is an empty, valid config.
    #[test]
    fn template_matches_the_schema_defaults() {
        let uncommented: String = super::ORCH_TOML
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: Config = toml::from_str(&uncommented).expect("uncommented template parses");
        assert_eq!(parsed, Config::default());
        let as_is: Config = toml::from_str(super::ORCH_TOML).expect("template parses");
        assert_eq!(as_is, Config::default());
    }
}
