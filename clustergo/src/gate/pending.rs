//! Handshakes in progress (WebSocket upgrades, KCP sessions waiting for their first
//! packet): one task each, counted for [`super::ListenerStats`], optionally capped.
//!
//! At the cap the *oldest* pending handshake is dropped to make room, not the new one:
//! a legitimate client proves itself within a round trip, so under a flood of clients
//! that never do (UDP sources can be spoofed at no cost) it is the flood's entries that
//! reach the front of the queue, and new clients still get in.

use std::collections::VecDeque;
use std::future::Future;

use tokio::task::{AbortHandle, JoinSet};

use super::ListenerStats;

/// The pending handshakes of one listener.
#[derive(Debug)]
pub(crate) struct Pending {
    tasks: JoinSet<()>,
    /// Live (not finished, not evicted) handshakes, oldest first.
    order: VecDeque<AbortHandle>,
    cap: usize,
    /// `order.len()` goes to `pending_handshakes`; evictions count as failed handshakes.
    stats: ListenerStats,
}

impl Pending {
    pub(crate) fn new(cap: usize, stats: ListenerStats) -> Self {
        Self {
            tasks: JoinSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            stats,
        }
    }

    /// Starts a handshake, first dropping the oldest ones while at the cap.
    pub(crate) fn spawn(&mut self, handshake: impl Future<Output = ()> + Send + 'static) {
        self.order.retain(|h| !h.is_finished());
        while self.order.len() >= self.cap {
            if let Some(oldest) = self.order.pop_front() {
                oldest.abort();
                self.stats.add_failure();
            }
        }
        self.order.push_back(self.tasks.spawn(handshake));
        self.publish();
    }

    /// Waits for a handshake task to end (never, while there is none).
    pub(crate) async fn join_next(&mut self) {
        if self.tasks.is_empty() {
            return std::future::pending().await;
        }
        let _ = self.tasks.join_next().await;
        self.order.retain(|h| !h.is_finished());
        self.publish();
    }

    fn publish(&self) {
        self.stats.set_pending(self.order.len());
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.stats.set_pending(0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_oldest_is_evicted_at_the_cap_and_finished_ones_leave() {
        let stats = ListenerStats::default();
        let mut pending = Pending::new(3, stats.clone());
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..5u32 {
            let done = done_tx.clone();
            pending.spawn(async move {
                tokio::time::sleep(Duration::from_secs(10 + u64::from(i))).await;
                let _ = done.send(i);
            });
        }
        assert_eq!(stats.pending_handshakes(), 3);
        assert_eq!(stats.handshake_failures(), 2, "0 and 1 evicted");
        drop(done_tx);
        for want in 2..5 {
            pending.join_next().await;
            assert_eq!(done_rx.recv().await, Some(want), "only the newest ran");
        }
        while stats.pending_handshakes() > 0 {
            pending.join_next().await;
        }
        assert_eq!(done_rx.recv().await, None);
        assert_eq!(stats.handshake_failures(), 2);
    }
}
