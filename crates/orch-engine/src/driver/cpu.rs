//! The machine's CPU load, sampled about once a second while a run goes, for gate
//! slots left to the machine (`validate.slots` not set): the core gives more slots
//! while every slot is taken and the CPU mostly idles. Where the process port cannot
//! read the CPU's times, no sample is taken and the slots stay at the cores.

/// Busy and total CPU time over all cores at the last sample.
#[derive(Debug, Default)]
pub(super) struct CpuLoad {
    last: Option<(u64, u64)>,
}

impl CpuLoad {
    /// The CPU's busy share of all cores since the last sample, in permille, given the
    /// busy and total times now; `None` at the first sample, or without times.
    pub(super) fn sample(&mut self, times: Option<(u64, u64)>) -> Option<u32> {
        let now = times?;
        let (busy0, total0) = self.last.replace(now)?;
        let total = now.1.checked_sub(total0).filter(|t| *t > 0)?;
        let busy = now.0.saturating_sub(busy0).min(total);
        Some((busy * 1000 / total) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_the_load_since_the_last() {
        let mut cpu = CpuLoad::default();
        assert_eq!(cpu.sample(Some((100, 1000))), None, "nothing to compare");
        assert_eq!(cpu.sample(Some((150, 1200))), Some(250));
        assert_eq!(cpu.sample(Some((150, 1200))), None, "no time passed");
        assert_eq!(cpu.sample(Some((350, 1400))), Some(1000));
        assert_eq!(cpu.sample(None), None);
    }
}
