//! Agent presets: command templates for known agent CLIs, for a non-interactive run
//! that may edit files in its worktree. Each flag was checked against the CLI's own
//! `--help` (versions in `docs/agents-and-safety.md`). orch commits what the agent
//! leaves, so presets turn the agents' own auto-commits off where they have them.

use orch_core::config::Preset;

/// The command template for `preset`, or `None` for no preset.
pub fn template(preset: Preset) -> Option<&'static str> {
    Some(match preset {
        Preset::None => return None,
        // Claude Code 2.1.331: -p/--print is non-interactive; acceptEdits lets it edit
        // files without asking (other tools stay denied unless configured).
        Preset::Claude => r#"claude -p "$(cat {prompt_file})" --permission-mode acceptEdits"#,
        // Codex CLI 0.169.0: `exec` is non-interactive, `-` reads the prompt from stdin,
        // the workspace-write sandbox allows edits inside the worktree only.
        Preset::Codex => "codex exec --sandbox workspace-write -C {worktree} - < {prompt_file}",
        // Gemini CLI 0.61.0: -p/--prompt is headless; auto_edit approves edit tools.
        Preset::Gemini => r#"gemini --approval-mode auto_edit -p "$(cat {prompt_file})""#,
        // aider 0.86.2: --message-file runs one message and exits; --yes-always answers
        // its questions; orch commits, so aider does not.
        Preset::Aider => "aider --message-file {prompt_file} --yes-always --no-auto-commits",
        // opencode 1.18.33: `run` is non-interactive, in the given directory.
        Preset::Opencode => r#"opencode run --dir {worktree} "$(cat {prompt_file})""#,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::render_command;

    /// What each preset runs, with the placeholders filled in.
    #[test]
    fn rendered_command_lines() {
        let mut out = String::new();
        for p in [
            Preset::Claude,
            Preset::Codex,
            Preset::Gemini,
            Preset::Aider,
            Preset::Opencode,
        ] {
            let t = template(p).expect("every named preset has a template");
            let line = render_command(
                t,
                "/data/art/r1/3/1/prompt.md",
                "/data/wt/r1/task-3-1",
                3,
                1,
            );
            out.push_str(&format!("{p}: {line}\n"));
        }
        assert_eq!(template(Preset::None), None);
        insta::assert_snapshot!(out);
    }
}
