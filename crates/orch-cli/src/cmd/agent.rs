//! The hidden `orch scripted-agent`: runs the first ```sh block of the task's prompt,
//! so the demo and the tests do real work with no LLM.

use anyhow::{Context, Result};

use crate::error::BadInput;

/// The scripted agent: runs the first ```sh block of the prompt file with `sh`, in
/// the current directory. Exits with the script's code.
pub(super) fn scripted_agent() -> Result<u8> {
    let prompt_path = std::env::var("ORCH_PROMPT_FILE")
        .context("ORCH_PROMPT_FILE is not set: the scripted agent runs under orch")?;
    let prompt =
        std::fs::read_to_string(&prompt_path).with_context(|| format!("reading {prompt_path}"))?;
    let script = prompt
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or_else(|| {
            BadInput(format!(
                "{prompt_path} has no ```sh block for the scripted agent to run"
            ))
        })?;
    println!("scripted agent: running the task's script");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .status()
        .context("running sh")?;
    Ok(status.code().unwrap_or(1).clamp(0, 255) as u8)
}
