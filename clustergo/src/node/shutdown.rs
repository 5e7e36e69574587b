//! Stopping a node: the shutdown protocol, run once.
//!
//! 1. `stopping` is set: new RPC requests are answered `ServiceUnavailable` and
//!    inbound connections are refused. Sends still work, so that replies to the
//!    requests being drained get out;
//! 2. `accepting` is cancelled: the listener and the membership task end;
//! 3. in-flight requests (`inflight`) and served streaming calls (`Streams::calls`)
//!    are waited for, up to `drain_timeout` (counted from `leave`'s drain if the
//!    node is leaving), so their replies are queued; streaming
//!    calls still running then end `ServiceUnavailable("node stopped")`, as pending
//!    calls do at step 4, and their `end` frames get `write_stall_timeout` to go out;
//! 4. `links` is cancelled: every peer writes what is queued (within
//!    `write_stall_timeout`) and closes, and from
//!    here new sends fail with [`SendError::Stopped`](super::SendError::Stopped);
//!    calls still pending fail with `ServiceUnavailable`;
//! 5. `tasks` is waited for (at most `write_stall_timeout + handshake_timeout`), then
//!    `stopped` is set and [`Node::wait`](super::Node::wait) returns. So stop takes
//!    at most `drain_timeout` plus that bound (plus `write_stall_timeout` when
//!    streaming calls outlived the drain), whatever peers do.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::NodeInner;

impl NodeInner {
    /// Begins the shutdown protocol (see the module docs); a second call does nothing.
    pub(super) fn stop(self: &Arc<Self>) {
        // SeqCst: pairs with `Inflight::enter` (see there).
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(run) = self.run.get() else {
            self.stopped.send_replace(true);
            return;
        };
        tracing::info!(node = %run.local, "stopping");
        let inner = self.clone();
        run.handle.spawn(async move {
            inner.accepting.cancel();
            if !inner.drain().await {
                tracing::warn!(
                    "stop: requests or streaming calls still unanswered after the drain timeout"
                );
            }
            inner
                .streams()
                .calls
                .end_all(inner.config.write_stall_timeout)
                .await;
            inner.links.cancel();
            inner.peers.write().clear();
            inner.rpc_client.fail_all(super::SendError::Stopped.into());
            inner.tasks.close();
            // Links flush within the stall bound and dials within the handshake
            // timeout; the bound here holds whatever a task is stuck on.
            let bound = inner.config.write_stall_timeout + inner.config.handshake_timeout;
            if tokio::time::timeout(bound, inner.tasks.wait())
                .await
                .is_err()
            {
                tracing::warn!("stop: tasks still running after the close bound");
            }
            inner.stopped.send_replace(true);
        });
    }

    /// Waits for the requests and streaming calls being served, until
    /// `drain_timeout` after the first drain began (`leave` drains before its
    /// stop, which drains again: together they wait one `drain_timeout`);
    /// whether they all finished.
    pub(super) async fn drain(&self) -> bool {
        let deadline = *self.drain_deadline.get_or_init(|| {
            let now = tokio::time::Instant::now();
            // A timeout too long for the clock waits for good (30 years).
            now.checked_add(self.config.drain_timeout)
                .unwrap_or_else(|| now + std::time::Duration::from_secs(30 * 365 * 86_400))
        });
        let all = async {
            self.inflight.wait_idle().await;
            self.streams().calls.wait_idle().await;
        };
        tokio::time::timeout_at(deadline, all).await.is_ok()
    }
}
