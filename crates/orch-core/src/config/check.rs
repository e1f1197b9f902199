//! Checks of values that each parse alone but are wrong in what they mean: branch
//! names, port ranges, durations past their sane maximum, and the settings of the
//! parts a run uses. Every error names the key and what is allowed.

use super::{
    BadSetting, Config, Executors, MAX_INTEGRATION_DEPTH, PER_RUN, RunConfig, WorktreesConfig,
    check_branch_name,
};

const DAY: u64 = 24 * 3600;

impl Config {
    /// Checks everything a run relies on: what is wrong, naming the key and what is
    /// allowed.
    pub fn check(&self) -> Result<(), BadSetting> {
        self.check_durations()?;
        self.run.check_branches()?;
        self.worktrees.check()?;
        self.check_ports()?;
        self.notify.check()?;
        self.review.check()?;
        self.board.check()?;
        if self.run.executors == Executors::Workers {
            self.worker.check()?;
        }
        Ok(())
    }

    /// The ports of every slot a run uses (`worktrees.pool_max`, or when that is 0
    /// `run.concurrency` plus the integration depth) stay within 1 to 65535.
    pub fn check_ports(&self) -> Result<(), BadSetting> {
        let w = &self.worktrees;
        let slots = match w.pool_max {
            0 => self.run.concurrency.get() as u64 + crate::run::Shape::of(self).depth as u64,
            n => n as u64,
        };
        let last = w.port_base as u64 + w.ports_per_slot as u64 * slots - 1;
        if last > 65535 {
            return Err(BadSetting::new(
                "worktrees.port_base",
                format!(
                    "worktrees.port_base {} with worktrees.ports_per_slot {} gives {slots} slots (worktrees.pool_max, or run.concurrency + the integration depth when it is 0) ports up to {last}; allowed: ports within 1 to 65535, so lower one of them",
                    w.port_base, w.ports_per_slot
                ),
            ));
        }
        Ok(())
    }

    /// Every duration against its sane maximum: a day, or longer where the key
    /// means it (how long failed attempts are kept, how long a quota may hold a run).
    pub fn check_durations(&self) -> Result<(), BadSetting> {
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let limits: [(&str, std::time::Duration, u64); 10] = [
            ("run.lease_ttl", self.run.lease_ttl.0, DAY),
            ("run.store_patience", self.run.store_patience.0, DAY),
            ("agent.timeout", self.agent.timeout.0, 7 * DAY),
            ("validate.timeout", self.validate.timeout.0, DAY),
            ("policy.backoff", self.policy.backoff.0, DAY),
            ("policy.quota_backoff", self.policy.quota_backoff.0, DAY),
            (
                "policy.quota_max_wait",
                self.policy.quota_max_wait.0,
                7 * DAY,
            ),
            (
                "worktrees.keep_failed",
                self.worktrees.keep_failed.0,
                365 * DAY,
            ),
            ("worker.lease_ttl", self.worker.lease_ttl.0, DAY),
            ("worker.poll", self.worker.poll.0, 3600),
        ];
        for (key, value, max) in limits {
            if secs(value) > max as f64 {
                let max = super::Duration::from_secs(max);
                return Err(BadSetting::new(
                    key,
                    format!(
                        "{key} {} is too long: allowed up to {max}",
                        super::Duration(value)
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl RunConfig {
    /// Checks the branch names: what is wrong, naming the key and what is allowed.
    pub fn check_branches(&self) -> Result<(), BadSetting> {
        for (key, v) in [
            ("run.integration_depth", self.integration_depth),
            ("run.integration_batch", self.integration_batch),
        ] {
            if v > MAX_INTEGRATION_DEPTH {
                return Err(BadSetting::new(
                    key,
                    format!(
                        "{key} {v} is too large: allowed 1 to {MAX_INTEGRATION_DEPTH}, or 0 for run.integration's choice"
                    ),
                ));
            }
        }
        let line = self.integration_branch.trim();
        if line != PER_RUN {
            check_branch_name("run.integration_branch", line)
                .map_err(|e| BadSetting::new(e.key.clone(), format!("{e}, or \"{PER_RUN}\"")))?;
        }
        if !self.target.is_empty() {
            check_branch_name("run.target", &self.target)?;
            if self.target == line {
                return Err(BadSetting::new(
                    "run.target",
                    format!(
                        "run.target {:?} is the integration line itself; name the branch work lands on (for example \"main\")",
                        self.target
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl WorktreesConfig {
    /// Checks the pool's values: what is wrong, naming the key and what is allowed.
    pub fn check(&self) -> Result<(), BadSetting> {
        if self.ports_per_slot == 0 {
            return Err(BadSetting::new(
                "worktrees.ports_per_slot",
                "worktrees.ports_per_slot 0 is too small: allowed 1 or more".into(),
            ));
        }
        if !(1..=65535).contains(&self.port_base) {
            return Err(BadSetting::new(
                "worktrees.port_base",
                format!(
                    "worktrees.port_base {} is not a port: allowed 1 to 65535",
                    self.port_base
                ),
            ));
        }
        for g in &self.include {
            if g.trim().is_empty() || g.starts_with('/') || g.split('/').any(|c| c == "..") {
                return Err(BadSetting::new(
                    "worktrees.include",
                    format!(
                        "worktrees.include {g:?} is not a path inside the repository: use a relative glob such as \".env\" or \"config/*.local\""
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Delay, Duration};

    #[test]
    fn durations_past_their_maximum_are_refused_naming_the_key() {
        let mut c = Config::default();
        assert_eq!(c.check(), Ok(()));
        c.policy.backoff = "999999999999h".parse::<Delay>().unwrap();
        let e = c.check().unwrap_err().message;
        assert!(
            e.starts_with("policy.backoff 41666666666d15h is too long"),
            "{e}"
        );
        assert!(e.contains("allowed up to 1d"), "{e}");
        c.policy.backoff = Delay::from_secs(DAY);
        assert_eq!(c.check(), Ok(()), "a day is allowed");
        c.worktrees.keep_failed = Duration::from_secs(400 * DAY);
        assert!(
            c.check()
                .unwrap_err()
                .message
                .contains("worktrees.keep_failed")
        );
        c.worktrees.keep_failed = Duration::from_secs(30 * DAY);
        assert_eq!(c.check(), Ok(()), "a month of keeping failures is sane");
    }

    #[test]
    fn every_slots_ports_stay_within_the_port_range() {
        let mut c = Config::default();
        c.worktrees.port_base = 65530;
        let e = c.check().unwrap_err().message;
        assert!(e.contains("worktrees.port_base 65530"), "{e}");
        assert!(e.contains("ports up to 65579"), "{e}");
        // Five slots of one port each fit below 65536 exactly.
        c.worktrees.ports_per_slot = 1;
        assert_eq!(c.check(), Ok(()));
        c.worktrees.port_base = 1;
        c.worktrees.ports_per_slot = 16_000;
        c.worktrees.pool_max = 4;
        assert_eq!(c.check(), Ok(()));
        c.worktrees.pool_max = 5;
        assert!(c.check().unwrap_err().message.contains("ports up to 80000"));
    }
}
