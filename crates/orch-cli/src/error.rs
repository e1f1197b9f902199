//! CLI error classification: bad input exits 2, everything else 1.

use std::fmt;

use orch_store::StoreError;

/// Input the user can fix: a bad argument, file or config value. Exits with code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// Exit code for a command that failed with `err`.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let refused = err.chain().any(|e| {
        e.is::<BadInput>()
            || e.downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_refusal)
            // The engine wraps store errors transparently, which hides them from the
            // chain, and a run that cannot be resumed as it is needs the user.
            || e.downcast_ref::<orch_engine::EngineError>().is_some_and(|e| match e {
                orch_engine::EngineError::Store(s) => s.is_refusal(),
                orch_engine::EngineError::Unresumable(_) | orch_engine::EngineError::Config(_) => true,
                _ => false,
            })
    });
    if refused { 2 } else { 1 }
}
