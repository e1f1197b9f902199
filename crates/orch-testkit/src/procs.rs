//! Processes a run started, found by their tag; process groups stopped when dropped.

/// Pids of live processes whose environment tags them with `run`.
pub fn tagged_with(run: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|kv| kv == format!("ORCH_RUN_ID={run}").as_bytes())
            })
        })
        .filter(|pid| {
            // Zombies are dead.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        })
        .collect()
}

/// A child leading its own process group, which is killed (the whole group) when
/// dropped: no test leaves a process behind.
pub struct Group(pub std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}
