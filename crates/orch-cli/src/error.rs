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
            // chain; it classifies its own.
            || e.downcast_ref::<orch_engine::EngineError>()
                .is_some_and(orch_engine::EngineError::is_refusal)
            || e.downcast_ref::<orch_engine::OpenError>()
                .is_some_and(orch_engine::OpenError::is_refusal)
            || e.downcast_ref::<orch_engine::repo::SetError>()
                .is_some_and(orch_engine::repo::SetError::is_refusal)
    });
    if refused { 2 } else { 1 }
}
