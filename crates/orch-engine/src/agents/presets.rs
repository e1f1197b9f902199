//! Agent presets as data: for each known agent CLI, the command of a non-interactive
//! run that may edit files in its worktree (the prompt on stdin or in a file, never in
//! argv), the environment it reads, its structured output, how a retry resumes its
//! session, how it is allowed the gate commands, the flags a preflight checks, and
//! the versions it was checked at. orch commits what the agent leaves, so presets turn
//! the agents' own auto-commits off where they have them.

use orch_core::config::{AgentOutput, Preset};

/// Everything orch knows about one agent CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetSpec {
    /// The preset.
    pub preset: Preset,
    /// The program looked up on `PATH`.
    pub binary: &'static str,
    /// The command template. Besides `{prompt_file}`, `{worktree}`, `{task_id}`,
    /// `{attempt}` and `{artifacts}`, it may hold `{resume}` (the `resume` fragment
    /// on a retry that resumes, else nothing) and `{allowed_tools}` (the `allow`
    /// fragment over every worker gate command, else nothing).
    pub command: &'static str,
    /// How a retry resumes a session: `{session_id}` is the previous attempt's.
    pub resume: Option<&'static str>,
    /// How one gate command is allowed: `{tools}` becomes the quoted rules.
    pub allow: Option<&'static str>,
    /// The environment variables it reads, as names or globs; passed through.
    pub env: &'static [&'static str],
    /// Any one of these is a credential (checked by name, never printed).
    pub credentials: &'static [&'static str],
    /// Files under `$HOME` that hold a login instead.
    pub login_files: &'static [&'static str],
    /// Its structured output.
    pub output: AgentOutput,
    /// The help invocations (`--help`, `exec --help`) and the flags each must list.
    pub help: &'static [(&'static [&'static str], &'static [&'static str])],
    /// Paths it writes for itself in the worktree, kept out of the task's commit.
    pub scratch: &'static [&'static str],
    /// Run once before a run's first agent: a CLI that sets up its own state on first
    /// use, racing itself when several start at once.
    pub warm_up: &'static [&'static str],
    /// What to install, for messages and docs.
    pub install: &'static str,
    /// The versions the preset was checked at.
    pub checked: &'static str,
    /// The agent, as a `Co-authored-by:` trailer of its tasks' commits credits it.
    pub co_author: &'static str,
    /// Under `$HOME`, what its CLI must be able to write in the sandbox (its config,
    /// sessions, caches); created if missing.
    pub sandbox_dirs: &'static [&'static str],
}

const CLAUDE: PresetSpec = PresetSpec {
    preset: Preset::Claude,
    binary: "claude",
    // -p/--print is non-interactive and reads the prompt from stdin; stream-json
    // needs --verbose; acceptEdits lets it edit files (as root it refuses to skip
    // permissions). --allowedTools is variadic, so it comes last.
    command: "claude -p --output-format stream-json --verbose --permission-mode acceptEdits {resume} {allowed_tools} < {prompt_file}",
    resume: Some("--resume {session_id}"),
    allow: Some("--allowedTools {tools}"),
    env: &["ANTHROPIC_*", "CLAUDE_*"],
    credentials: &[
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "CLAUDE_CODE_OAUTH_TOKEN",
    ],
    login_files: &[".claude/.credentials.json"],
    output: AgentOutput::ClaudeStreamJson,
    help: &[(
        &["--help"],
        &[
            "--print",
            "--output-format",
            "--verbose",
            "--permission-mode",
            "--resume",
            "--allowedTools",
        ],
    )],
    scratch: &[],
    warm_up: &[],
    install: "npm install -g @anthropic-ai/claude-code",
    checked: "2.1.197, 2.1.332",
    co_author: "Claude <noreply@anthropic.com>",
    sandbox_dirs: &[".claude", ".cache/claude"],
};

const CODEX: PresetSpec = PresetSpec {
    preset: Preset::Codex,
    binary: "codex",
    // `exec` is non-interactive; `-` reads the prompt from stdin (it reads stdin
    // even with a prompt given); workspace-write allows edits inside the worktree.
    command: "codex exec {resume} --json --skip-git-repo-check -c sandbox_mode=\"workspace-write\" - < {prompt_file}",
    resume: Some("resume {session_id}"),
    allow: None,
    env: &["OPENAI_*", "CODEX_*"],
    credentials: &["OPENAI_API_KEY", "CODEX_API_KEY"],
    login_files: &[".codex/auth.json"],
    output: AgentOutput::CodexJson,
    help: &[
        (
            &["exec", "--help"],
            &["--json", "--skip-git-repo-check", "--config"],
        ),
        (&["exec", "resume", "--help"], &["--json", "--config"]),
    ],
    scratch: &[],
    warm_up: &[],
    install: "npm install -g @openai/codex",
    checked: "0.169.0, 0.171.0",
    co_author: "Codex <noreply@openai.com>",
    sandbox_dirs: &[".codex"],
};

const GEMINI: PresetSpec = PresetSpec {
    preset: Preset::Gemini,
    binary: "gemini",
    // Headless with -p, whose text is appended to stdin; every worktree is a new
    // folder, untrusted unless --skip-trust; auto_edit approves edit tools.
    command: "gemini --skip-trust --approval-mode auto_edit --output-format stream-json -p 'Do the task described above.' < {prompt_file}",
    resume: None,
    allow: None,
    env: &["GEMINI_*", "GOOGLE_*"],
    credentials: &[
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ],
    login_files: &[".gemini/oauth_creds.json"],
    output: AgentOutput::GeminiStreamJson,
    help: &[(
        &["--help"],
        &[
            "--skip-trust",
            "--approval-mode",
            "--output-format",
            "--prompt",
        ],
    )],
    scratch: &[],
    warm_up: &[],
    install: "npm install -g @google/gemini-cli",
    checked: "0.61.0",
    co_author: "Gemini CLI <gemini-cli@google.com>",
    sandbox_dirs: &[".gemini"],
};

const AIDER: PresetSpec = PresetSpec {
    preset: Preset::Aider,
    binary: "aider",
    // --message-file runs one message and exits; orch commits, so aider does not;
    // --no-gitignore keeps it from editing .gitignore, and its history goes to the
    // attempt's artifacts; its tag cache is kept out of the commit.
    command: "aider --message-file {prompt_file} --yes-always --no-auto-commits --no-gitignore --no-check-update --input-history-file {artifacts}/aider.input.history --chat-history-file {artifacts}/aider.chat.history.md",
    resume: None,
    allow: None,
    env: &[
        "OPENAI_*",
        "ANTHROPIC_*",
        "AIDER_*",
        "GEMINI_*",
        "OPENROUTER_*",
        "DEEPSEEK_*",
    ],
    credentials: &[
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "OPENROUTER_API_KEY",
        "DEEPSEEK_API_KEY",
    ],
    login_files: &[],
    output: AgentOutput::Text,
    help: &[(
        &["--help"],
        &[
            "--message-file",
            "--yes-always",
            "--no-auto-commits",
            "--no-gitignore",
            "--input-history-file",
            "--chat-history-file",
        ],
    )],
    scratch: &[".aider*"],
    warm_up: &[],
    install: "pip install aider-chat",
    checked: "0.86.2",
    co_author: "aider <aider@aider.chat>",
    sandbox_dirs: &[".aider", ".cache"],
};

const OPENCODE: PresetSpec = PresetSpec {
    preset: Preset::Opencode,
    binary: "opencode",
    // `run` is non-interactive; the task goes as an attached file, the message says
    // to do it (so nothing in argv starts with `-`).
    command: "opencode run 'Do the task described in the attached file.' --file {prompt_file} --format json --dir {worktree} {resume}",
    // Not `--session`: a session is bound to its directory, and in another worktree
    // opencode 1.18.33 waits for a permission that no one can give.
    resume: None,
    allow: None,
    env: &[
        "OPENCODE_*",
        "ANTHROPIC_*",
        "OPENAI_*",
        "GEMINI_*",
        "OPENROUTER_*",
    ],
    credentials: &[
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "OPENROUTER_API_KEY",
    ],
    login_files: &[".local/share/opencode/auth.json"],
    output: AgentOutput::OpencodeJson,
    help: &[(
        &["run", "--help"],
        &["--file", "--format", "--dir", "--session"],
    )],
    scratch: &[],
    // Its first start creates its database; two at once collide ("Failed query:
    // CREATE TABLE `workspace`") and one spins. Once, before the agents, it is set.
    warm_up: &["session", "list"],
    install: "npm install -g opencode-ai",
    checked: "1.18.33",
    co_author: "opencode <noreply@opencode.ai>",
    sandbox_dirs: &[
        ".local/share/opencode",
        ".config/opencode",
        ".cache/opencode",
        ".local/state/opencode",
    ],
};

/// A CLI as the run's planner (`run.planner = "claude"`): it gets the planner prompt
/// on stdin and must answer in the planner schema (`{schema}`, where the CLI can
/// enforce one); it may not edit anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannerSpec {
    /// The preset whose CLI it is.
    pub preset: Preset,
    /// The command; `{schema}` is the planner JSON Schema, shell-quoted.
    pub command: &'static str,
    /// Its output, for usage.
    pub output: AgentOutput,
}

/// The planner presets.
pub const PLANNERS: &[PlannerSpec] = &[
    PlannerSpec {
        preset: Preset::Claude,
        command: "claude -p --output-format json --json-schema {schema} --permission-mode plan",
        output: AgentOutput::ClaudeStreamJson,
    },
    PlannerSpec {
        preset: Preset::Codex,
        command: "codex exec --json --skip-git-repo-check -c sandbox_mode=\"read-only\" -",
        output: AgentOutput::CodexJson,
    },
    PlannerSpec {
        preset: Preset::Gemini,
        command: "gemini --skip-trust --approval-mode plan --output-format json -p 'Answer with the JSON described above.'",
        output: AgentOutput::GeminiStreamJson,
    },
];

/// The planner preset `run.planner` names, if it names one.
pub fn planner(setting: &str) -> Option<&'static PlannerSpec> {
    PLANNERS
        .iter()
        .find(|p| p.preset.as_str() == setting.trim())
}

/// Every preset, in the order of the docs.
pub const ALL: &[PresetSpec] = &[CLAUDE, CODEX, GEMINI, AIDER, OPENCODE];

/// The spec of `preset`, or `None` for no preset.
pub fn spec(preset: Preset) -> Option<&'static PresetSpec> {
    ALL.iter().find(|s| s.preset == preset)
}

/// The command template for `preset`, or `None` for no preset.
pub fn template(preset: Preset) -> Option<&'static str> {
    spec(preset).map(|s| s.command)
}

/// How orch reads the output of a run with this configuration's agent.
pub fn output_format(preset: Preset, configured: AgentOutput, custom_command: bool) -> AgentOutput {
    match configured {
        AgentOutput::Auto if custom_command => AgentOutput::Text,
        AgentOutput::Auto => spec(preset).map_or(AgentOutput::Text, |s| s.output),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_preset_puts_the_prompt_in_argv() {
        for p in ALL {
            assert!(!p.command.contains("$(cat"), "{}", p.preset);
            assert!(p.command.contains("{prompt_file}"), "{}", p.preset);
        }
    }
}
