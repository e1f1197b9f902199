//! Project automation, run as `cargo xtask <task>`.
//!
//! - `tidy`: repository rules that the compiler does not check: `orch-core` stays free
//!   of I/O dependencies and I/O calls, every Rust file opens with a `//!` doc, and
//!   library crates carry `#![warn(missing_docs)]` and `#![forbid(unsafe_code)]`.
//!   The same checks run as this crate's tests, so `cargo test --workspace` enforces them.

mod tidy;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("tidy") => {
            let problems = tidy::all()?;
            if problems.is_empty() {
                println!("tidy: ok");
                Ok(())
            } else {
                for p in &problems {
                    eprintln!("tidy: {p}");
                }
                bail!("{} tidy problem(s)", problems.len())
            }
        }
        Some(other) => bail!("unknown task {other:?}; available: tidy"),
        None => bail!("usage: cargo xtask <task>; available: tidy"),
    }
}
