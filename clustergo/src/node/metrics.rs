//! Link and traffic counters: bumped by peers and the receive path, read as a [`Metrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::throttle::Throttle;

/// A relay drop is logged at most this often; the line carries the count since.
const RELAY_LOG_EVERY: Duration = Duration::from_secs(1);

/// Counters of a node's links, for monitoring and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    links_established: AtomicU64,
    links_lost: AtomicU64,
    frames_expired: AtomicU64,
    frames_dropped: AtomicU64,
    links_stalled: AtomicU64,
    links_silent: AtomicU64,
    frames_forged: AtomicU64,
    handshakes_shed: AtomicU64,
    frames_relayed: AtomicU64,
    relay_dropped: AtomicU64,
    dials_failed: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_received: AtomicU64,
    handlers_cancelled: AtomicU64,
    relay_log: RelayLog,
}

/// Rate limit of the relay-drop log line: a stopping or cut-off relay may drop many.
#[derive(Debug)]
struct RelayLog(Mutex<Throttle>);

impl Default for RelayLog {
    fn default() -> Self {
        Self(Mutex::new(Throttle::new(RELAY_LOG_EVERY)))
    }
}

impl Counters {
    /// A connection came up (dialed or accepted).
    pub(crate) fn link_established(&self) {
        self.links_established.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection went down other than by stop or removal.
    pub(crate) fn link_lost(&self) {
        self.links_lost.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` frames were dropped because their deadline passed.
    pub(crate) fn frames_expired(&self, n: usize) {
        self.frames_expired.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` queued frames were dropped unsent: their link stalled or the peer is down.
    pub(crate) fn frames_dropped(&self, n: usize) {
        self.frames_dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A link was declared dead because the peer stopped reading.
    pub(crate) fn link_stalled(&self) {
        self.links_stalled.fetch_add(1, Ordering::Relaxed);
    }

    /// A link or stream session was declared dead because nothing arrived in time.
    pub(crate) fn link_silent(&self) {
        self.links_silent.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame was dropped because its sender cannot be who it claims.
    pub(crate) fn frame_forged(&self) {
        self.frames_forged.fetch_add(1, Ordering::Relaxed);
    }

    /// An unauthenticated connection was closed: too many handshakes pending.
    pub(crate) fn handshake_shed(&self) {
        self.handshakes_shed.fetch_add(1, Ordering::Relaxed);
    }

    /// A dial or its handshake failed; the peer retries with backoff.
    pub(crate) fn dial_failed(&self) {
        self.dials_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// `frames` frames of `bytes` bytes in all were written to a link.
    pub(crate) fn sent(&self, frames: usize, bytes: usize) {
        self.frames_sent.fetch_add(frames as u64, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `frames` frames with `bytes` body bytes in total arrived from a link.
    pub(crate) fn received(&self, frames: u64, bytes: u64) {
        self.frames_received.fetch_add(frames, Ordering::Relaxed);
        self.bytes_received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A harbor forwarded `n` frames.
    pub(crate) fn frames_relayed(&self, n: u64) {
        self.frames_relayed.fetch_add(n, Ordering::Relaxed);
    }

    /// A harbor could not forward a frame. Returns the drops to report if a log
    /// line is due (rate-limited: a stopping or cut-off relay may drop many).
    pub(crate) fn relay_dropped(&self) -> Option<u64> {
        self.relay_dropped.fetch_add(1, Ordering::Relaxed);
        self.relay_log.0.lock().hit(Instant::now())
    }

    /// An async handler's future was dropped: deadline passed or caller's link lost.
    pub(crate) fn handler_cancelled(&self) {
        self.handlers_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub(crate) fn snapshot(&self) -> Metrics {
        Metrics {
            links_established: self.links_established.load(Ordering::Relaxed),
            links_lost: self.links_lost.load(Ordering::Relaxed),
            frames_expired: self.frames_expired.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            links_stalled: self.links_stalled.load(Ordering::Relaxed),
            links_silent: self.links_silent.load(Ordering::Relaxed),
            frames_forged: self.frames_forged.load(Ordering::Relaxed),
            handshakes_shed: self.handshakes_shed.load(Ordering::Relaxed),
            frames_relayed: self.frames_relayed.load(Ordering::Relaxed),
            relay_dropped: self.relay_dropped.load(Ordering::Relaxed),
            dials_failed: self.dials_failed.load(Ordering::Relaxed),
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            handlers_cancelled: self.handlers_cancelled.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of a node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metrics {
    /// Node-to-node connections that came up (dialed or accepted).
    pub links_established: u64,
    /// Connections that went down other than by stop or removal.
    pub links_lost: u64,
    /// Frames dropped because their deadline passed before they could be written.
    pub frames_expired: u64,
    /// Queued frames dropped unsent because their link stalled or the peer was
    /// found down.
    pub frames_dropped: u64,
    /// Links declared dead because a write made no progress in time.
    pub links_stalled: u64,
    /// Links and stream sessions declared dead because nothing arrived in time.
    pub links_silent: u64,
    /// Frames dropped because their sender cannot be who it claims: a `from` the
    /// link it came on cannot carry, or a reply from another node than the call's
    /// target.
    pub frames_forged: u64,
    /// Inbound connections closed before authenticating because
    /// [`Config::max_pending_handshakes`](crate::Config::max_pending_handshakes)
    /// were pending: shed on arrival, or evicted as the oldest.
    pub handshakes_shed: u64,
    /// Frames this node forwarded as a harbor.
    pub frames_relayed: u64,
    /// Frames this node was asked to forward and could not (no route, queue full,
    /// stopping). A request among them is answered with an error when possible.
    pub relay_dropped: u64,
    /// Dials (or their handshakes) that failed and are retried with backoff.
    pub dials_failed: u64,
    /// Frames written to node-to-node links.
    pub frames_sent: u64,
    /// Bytes written to node-to-node links (frame headers included).
    pub bytes_sent: u64,
    /// Frames read from node-to-node links.
    pub frames_received: u64,
    /// Body bytes of the frames read from node-to-node links.
    pub bytes_received: u64,
    /// Async handlers whose future was dropped unfinished: the caller's deadline
    /// passed, or the link its request came through was lost.
    pub handlers_cancelled: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn relay_drops_are_counted_and_logged_rate_limited() {
        let c = Counters::default();
        assert_eq!(c.relay_dropped(), Some(1), "the first drop is logged");
        assert_eq!(c.relay_dropped(), None, "then at most once per interval");
        assert_eq!(c.relay_dropped(), None);
        tokio::time::advance(RELAY_LOG_EVERY).await;
        assert_eq!(
            c.relay_dropped(),
            Some(3),
            "the next line counts the quiet ones"
        );
        assert_eq!(c.snapshot().relay_dropped, 4);
    }
}
