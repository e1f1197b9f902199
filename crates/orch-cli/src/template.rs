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
# finish = "leave"               # or "fast-forward" (main, by compare-and-swap)
# planner = ""                   # empty: the built-in scheduler; else a command
# lease_ttl = "30s"              # a crashed orch's run is taken over after this
# store_patience = "2m"          # a busy or unreachable database is waited out this long

[agent]
# preset = ""                    # claude | codex | gemini | aider | opencode
# command = ""                   # a command template; overrides the preset
# timeout = "30m"
# env_allow = ["PATH", "HOME", "LANG", "TERM", "USER"]
# prompt_template = ""           # a file; empty: the built-in template

[validate]
# worker = []                    # commands run in the task worktree
# integration = []               # commands run on the merge commit
# timeout = "20m"

[policy]
# max_attempts = 2
# retry_on = ["agent-error", "timeout", "worker-validation", "integration-validation", "conflict", "infrastructure"]
# backoff = "5s"
# on_conflict = "retry"          # or "block", "halt"
# empty_diff = "fail"            # or "done-if-valid"

[worktrees]
# root = ""                      # empty: $XDG_DATA_HOME/orch/worktrees/<repo-key>
# cleanup = "on-success"         # or "always", "never"
# keep_failed = "7d"             # orch cleanup keeps failed attempts this long

[artifacts]
# keep_runs = 20
# max_bytes = "2GiB"
# log_cap = "16MiB"
"#;

#[cfg(test)]
mod tests {
    use orch_engine::core::config::Config;

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
