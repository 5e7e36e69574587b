//! Link counters: bumped by peers and the receive path, read as a [`Metrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a node's links, for monitoring and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    links_established: AtomicU64,
    links_lost: AtomicU64,
    frames_expired: AtomicU64,
    frames_forged: AtomicU64,
    handshakes_shed: AtomicU64,
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

    /// A frame was dropped because its sender cannot be who it claims.
    pub(crate) fn frame_forged(&self) {
        self.frames_forged.fetch_add(1, Ordering::Relaxed);
    }

    /// An unauthenticated connection was closed: too many handshakes pending.
    pub(crate) fn handshake_shed(&self) {
        self.handshakes_shed.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub(super) fn snapshot(&self) -> Metrics {
        Metrics {
            links_established: self.links_established.load(Ordering::Relaxed),
            links_lost: self.links_lost.load(Ordering::Relaxed),
            frames_expired: self.frames_expired.load(Ordering::Relaxed),
            frames_forged: self.frames_forged.load(Ordering::Relaxed),
            handshakes_shed: self.handshakes_shed.load(Ordering::Relaxed),
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
    /// Frames dropped because their sender cannot be who it claims: a `from` the
    /// link it came on cannot carry, or a reply from another node than the call's
    /// target.
    pub frames_forged: u64,
    /// Inbound connections closed before authenticating because
    /// [`Config::max_pending_handshakes`](crate::Config::max_pending_handshakes)
    /// were pending: shed on arrival, or evicted as the oldest.
    pub handshakes_shed: u64,
}
