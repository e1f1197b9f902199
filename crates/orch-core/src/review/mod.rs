//! Review: which tasks a person looks at before they land (`[review]`), where a
//! task's review stands, and what a person's decision does to it.
//!
//! A task that needs review stops after its worker gate, in the `review` column, with
//! its work kept on its branch ([`ReviewWork`]). A person approves it (the next claim
//! integrates that very work, with no agent), asks for changes (the next claim is a
//! new round: the agent's session resumed with the comments), or rejects it. The
//! store applies a [`Decided`] in one transaction with its event; runs read a task's
//! review off the board.

mod decide;
mod resolve;
mod state;

pub use decide::{Comment, Decided, Decision, ReviewRefused, decide, feedback};
pub use resolve::{ResolveRefused, check_blocked, handed_to_agent, resolved};
pub use state::{Review, ReviewWork, Verdict};
