//! Log lines about hostile or runaway input, at most one per interval: a flood must
//! not turn into a flood of logs.

use std::time::Duration;

use tokio::time::Instant;

/// Lets one line through per interval and counts the events it held back.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    unlogged: u64,
}

impl Throttle {
    /// At most one line per `every`.
    pub(crate) const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            unlogged: 0,
        }
    }

    /// Counts an event at `now`. If a line is due, returns how many events it
    /// reports (this one and those held back since the last line).
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_reporting_what_it_held_back() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = Throttle::new(Duration::from_secs(1));
        // (at ms, expected)
        let cases = [
            (0, Some(1)),
            (1, None),
            (999, None),
            (1000, Some(3)),
            (1500, None),
            (5000, Some(2)),
        ];
        for (at, want) in cases {
            assert_eq!(t.hit(ms(at)), want, "at {at} ms");
        }
    }
}
