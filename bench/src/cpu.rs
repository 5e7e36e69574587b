//! CPU accounting from `/proc`, so a run shows how busy the rest of the machine was.
//!
//! `/proc/stat` counts jiffies summed over all cores and `/proc/self/stat` counts this
//! process's jiffies summed over its threads, both in `USER_HZ`, so their ratio is a
//! share of the whole machine (100 % = every core busy).

use std::fs;

/// One reading of the machine's and this process's CPU counters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuSnap {
    busy: u64,
    total: u64,
    own: u64,
}

/// CPU use between two snapshots, in percent of the whole machine.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuUse {
    /// Every process, including this one.
    pub(crate) machine_pct: f64,
    /// This process.
    pub(crate) own_pct: f64,
    /// Everyone else: `machine_pct - own_pct`, at least 0.
    pub(crate) other_pct: f64,
}

impl CpuSnap {
    /// Reads the counters; `None` where `/proc` is missing or unreadable.
    pub(crate) fn now() -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().next()?;
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let v: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
        if v.len() < 8 {
            return None;
        }
        let total: u64 = v.iter().sum();
        let idle = v[3] + v[4];

        let me = fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may contain spaces; fields resume after the last ')'.
        let rest = &me[me.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After ')': state is field 3, so utime (14) is index 11 and stime (15) index 12.
        let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;

        Some(Self {
            busy: total - idle,
            total,
            own,
        })
    }

    /// CPU use from `self` to `later`.
    pub(crate) fn until(&self, later: &CpuSnap) -> CpuUse {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return CpuUse::default();
        }
        let pct = |x: u64| x as f64 * 100.0 / total as f64;
        let machine_pct = pct(later.busy.saturating_sub(self.busy));
        let own_pct = pct(later.own.saturating_sub(self.own));
        CpuUse {
            machine_pct,
            own_pct,
            other_pct: (machine_pct - own_pct).max(0.0),
        }
    }
}

/// `model name` from `/proc/cpuinfo`.
pub(crate) fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Number of CPUs this process may use.
pub(crate) fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
