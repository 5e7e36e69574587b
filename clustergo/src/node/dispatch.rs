//! Frames that arrive: handled here, or relayed on by a harbor; and the loop that
//! delivers frames a node sends to itself.
//!
//! Who sent a frame is checked before anything else: on a link, its `from` must be
//! plausible for that link ([`plausible_from`]); a response must come from its
//! call's target (`rpc::client`). Frames failing either are dropped, counted in
//! [`Metrics::frames_forged`](super::Metrics::frames_forged) and logged at most once
//! a second per link. Self-sent frames are trusted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::route::plausible_from;
use super::throttle::Throttle;
use super::{NodeInner, SendError};
use crate::addr::LogicAddr;
use crate::codec::{Arrived, Frame, FrameKind};
use crate::rpc::{self, RpcError};

/// How often a link may log a forged frame.
const FORGED_LOG_EVERY: Duration = Duration::from_secs(1);

/// The receive side of one link: whose frames it carries, the throttle of its
/// warnings about forged ones, and the traffic not yet added to the node's
/// counters. Owned by the link's reader; no lock, no allocation.
#[derive(Debug)]
pub(crate) struct Arrivals {
    peer: LogicAddr,
    warn: Throttle,
    /// Frames and body bytes read, and frames relayed, since the last
    /// [`flush`](Self::flush): the shared counters are bumped once per socket read,
    /// not once per frame (two contended atomics per frame cost the one-way path
    /// measurably).
    frames: u64,
    bytes: u64,
    relayed: u64,
}

impl Arrivals {
    /// The receive side of a link from `peer`.
    pub(crate) fn new(peer: LogicAddr) -> Self {
        Self {
            peer,
            warn: Throttle::new(FORGED_LOG_EVERY),
            frames: 0,
            bytes: 0,
            relayed: 0,
        }
    }

    /// Adds what was read since the last flush to the node's counters. The reader
    /// calls it when its buffer is drained (before it waits for the socket again)
    /// and when the link ends.
    pub(crate) fn flush(&mut self, node: &NodeInner) {
        if self.frames > 0 {
            node.counters.received(self.frames, self.bytes);
            (self.frames, self.bytes) = (0, 0);
        }
        if self.relayed > 0 {
            node.counters.frames_relayed(self.relayed);
            self.relayed = 0;
        }
    }
}

impl NodeInner {
    /// Handles a frame read from the link of `arrivals`: dropped if its sender is
    /// not plausible for that link, else handled here or relayed as it came.
    pub(crate) fn dispatch_arrived(self: &Arc<Self>, arrivals: &mut Arrivals, arrived: Arrived) {
        let Some(run) = self.run.get() else { return };
        let Arrived { frame, wire } = arrived;
        arrivals.frames += 1;
        arrivals.bytes += frame.body.len() as u64;
        if plausible_from(run.local, arrivals.peer, frame.from) {
            match wire {
                Some(wire) if frame.to != run.local => {
                    if self.relay(frame, wire, run.local) {
                        arrivals.relayed += 1;
                    }
                }
                _ => self.dispatch(frame),
            }
            return;
        }
        self.counters.frame_forged();
        if let Some(dropped) = arrivals.warn.hit(Instant::now()) {
            tracing::warn!(peer = %arrivals.peer, from = %frame.from, to = %frame.to,
                kind = ?frame.kind, dropped, "dropping frames whose sender this link cannot carry");
        }
    }

    /// Handles a frame that arrived from a peer (its sender checked) or from this
    /// node itself.
    pub(crate) fn dispatch(self: &Arc<Self>, frame: Frame) {
        let Some(run) = self.run.get() else { return };
        if frame.to != run.local {
            let wire = frame.to_bytes();
            if self.relay(frame, wire, run.local) {
                self.counters.frames_relayed(1);
            }
            return;
        }
        match frame.kind {
            FrameKind::Pb => self.messages.dispatch_pb(frame.from, frame.cmd, frame.body),
            FrameKind::Binary => self
                .messages
                .dispatch_bin(frame.from, frame.cmd, frame.body),
            FrameKind::RpcRequest => rpc::server::dispatch(self, frame.from, frame.body),
            FrameKind::RpcResponse => {
                if !self
                    .rpc_client
                    .complete(self.rpc_form(), frame.from, frame.body)
                {
                    self.counters.frame_forged();
                    tracing::debug!(from = %frame.from, "dropping a reply to a call to another node");
                }
            }
            FrameKind::Keepalive => {} // consumed by the link's reader
        }
    }

    /// Forwards a frame addressed to another node (harbors only), on the path its
    /// origin's pair picks (so a reply retraces its request). The body is not
    /// decoded. `wire` is the whole frame as it arrived: it is queued as is, so the
    /// body is never copied on the way (the link's writer sends big ones from their
    /// own buffer, `batch.rs`). A frame that cannot be forwarded is counted and
    /// logged (rate-limited); an RPC request among them is answered with an error in
    /// the name of its target: a reply must come from the call's target. Its queue
    /// deadline is now + `send_timeout`, read from the link reader's lent clock
    /// reading (`clock.rs`) when called from a reader. Whether it was forwarded; the
    /// caller counts forwarded frames.
    fn relay(self: &Arc<Self>, frame: Frame, wire: Bytes, local: LogicAddr) -> bool {
        let span = rpc::trace::relay_span(&frame, self.rpc_form());
        let _entered = span.enter();
        let result = if local.is_harbor() {
            self.route_from(frame.from, frame.to)
                .and_then(|route| self.send_on(&route, wire, None))
        } else {
            Err(SendError::Unreachable(frame.to))
        };
        // A disabled span still looks a field up by name on `record`.
        let traced = !span.is_disabled();
        let e = match result {
            Ok(()) => {
                if traced {
                    span.record("outcome", "relayed");
                }
                return true;
            }
            Err(e) => e,
        };
        if traced {
            span.record("outcome", tracing::field::display(&e));
        }
        if let Some(dropped) = self.counters.relay_dropped() {
            tracing::warn!(to = %frame.to, from = %frame.from, kind = ?frame.kind, error = %e,
                dropped, "cannot relay frame (dropped since the last such line)");
        }
        if frame.kind == FrameKind::RpcRequest {
            let err = match e {
                SendError::Busy => RpcError::Busy,
                _ => RpcError::Unreachable(frame.to),
            };
            rpc::server::reject(self, frame.from, frame.to, &frame.body, err);
        }
        false
    }
}

/// Delivers frames a node sends to itself, in order, without a socket.
pub(super) async fn local_loop(inner: Arc<NodeInner>, mut rx: mpsc::Receiver<Bytes>) {
    loop {
        let raw = tokio::select! {
            biased;
            raw = rx.recv() => match raw { Some(raw) => raw, None => break },
            _ = inner.links.cancelled() => break,
        };
        match Frame::parse(raw, inner.config.max_frame) {
            Ok(frame) => inner.dispatch(frame),
            Err(e) => tracing::error!(error = %e, "malformed self-sent frame"),
        }
    }
}
