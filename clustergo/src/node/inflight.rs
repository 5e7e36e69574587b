//! The count of requests being served, so that stop can wait for their replies.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Requests being served; [`Node::stop`](crate::Node::stop) waits for zero.
#[derive(Debug, Default)]
pub(crate) struct Inflight {
    count: AtomicUsize,
    idle: Notify,
}

impl Inflight {
    /// A request started being served.
    ///
    /// `SeqCst`, like the `stopping` flag's store and load: a request counts
    /// itself, then checks `stopping`; stop sets `stopping`, then reads the
    /// count. Only sequential consistency rules out both missing each other
    /// (a request served after the drain saw zero).
    pub(crate) fn enter(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// A request was answered (or will never be).
    pub(crate) fn leave(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Requests being served now.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Returns when no request is being served.
    pub(crate) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_after_the_last_leave() {
        let inflight = std::sync::Arc::new(Inflight::default());
        inflight.wait_idle().await; // nothing in flight: at once
        inflight.enter();
        inflight.enter();
        let waiter = tokio::spawn({
            let inflight = inflight.clone();
            async move { inflight.wait_idle().await }
        });
        inflight.leave();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        inflight.leave();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiter)
            .await
            .expect("idle in time")
            .unwrap();
    }
}
