//! Link counters: bumped by peers, read as a [`Metrics`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of a node's links, for monitoring and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    links_established: AtomicU64,
    links_lost: AtomicU64,
    frames_expired: AtomicU64,
    frames_dropped: AtomicU64,
    links_stalled: AtomicU64,
    links_silent: AtomicU64,
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

    /// The current values.
    pub(super) fn snapshot(&self) -> Metrics {
        Metrics {
            links_established: self.links_established.load(Ordering::Relaxed),
            links_lost: self.links_lost.load(Ordering::Relaxed),
            frames_expired: self.frames_expired.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped.load(Ordering::Relaxed),
            links_stalled: self.links_stalled.load(Ordering::Relaxed),
            links_silent: self.links_silent.load(Ordering::Relaxed),
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
}
