//! Reconnect delays shared by peers and the networked membership backends.

use std::time::Duration;

/// Exponential backoff (a new one per outage) with jitter: `min`, doubling up to `max`, each delay
/// randomised to 50–100 % so that many clients do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            max: max.max(min),
            next: min,
        }
    }

    /// The delay to wait before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        for (d, cap) in delays.iter().zip([100u64, 200, 400, 800, 800, 800]) {
            assert!(*d <= Duration::from_millis(cap), "{d:?} > {cap}");
            assert!(*d >= Duration::from_millis(cap / 2), "{d:?} < {cap}/2");
        }
    }
}
