//! orch's one test harness, shared by every crate's tests and by xtask: a sandbox
//! that drives the `orch` binary against a throwaway repository ([`Sandbox`]), git run
//! with none of the caller's `GIT_*` variables ([`git()`]), a fresh database on the
//! PostgreSQL test server ([`postgres`]), processes a run tagged ([`tagged_with`]),
//! loopback stand-ins for the Anthropic, OpenAI Responses and Gemini APIs
//! ([`anthropic`], [`openai`], [`gemini`]), the real agent CLIs ([`clis`]) and the
//! WebDriver
//! client for the dashboard's browser tests ([`webdriver`]). Dev-only: it panics on
//! failure, as a test should.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a harness fails its test by panicking"
)]

pub mod anthropic;
pub mod clis;
pub mod gemini;
mod git;
mod http;
pub mod openai;
pub mod postgres;
mod procs;
mod sandbox;
mod script;
pub mod webdriver;

pub use git::{git, git_cmd, git_in};
pub use http::StandIn;
pub use procs::{Group, tagged_with};
pub use sandbox::{Run, Sandbox};

/// Polls `f` every 50 ms until it holds; panics naming `what` after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
