//! Frames that arrive: handled here, or relayed on by a harbor; and the loop that
//! delivers frames a node sends to itself.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{NodeInner, SendError};
use crate::addr::LogicAddr;
use crate::codec::{Frame, FrameKind};
use crate::rpc::{self, RpcError};

impl NodeInner {
    /// Handles a frame that arrived from a peer or from this node itself.
    pub(crate) fn dispatch(self: &Arc<Self>, frame: Frame) {
        let Some(run) = self.run.get() else { return };
        if frame.to != run.local {
            self.relay(frame, run.local);
            return;
        }
        match frame.kind {
            FrameKind::Pb => self.messages.dispatch_pb(frame.from, frame.cmd, frame.body),
            FrameKind::Binary => self
                .messages
                .dispatch_bin(frame.from, frame.cmd, frame.body),
            FrameKind::RpcRequest => rpc::server::dispatch(self, frame.from, frame.body),
            FrameKind::RpcResponse => self.rpc_client.complete(frame.from, frame.body),
        }
    }

    /// Forwards a frame addressed to another node (harbors only), on the path its
    /// origin's pair picks (so a reply retraces its request). The body is not
    /// decoded. A frame that cannot be forwarded is counted and logged (rate-limited);
    /// an RPC request among them is answered with an error.
    fn relay(self: &Arc<Self>, frame: Frame, local: LogicAddr) {
        let result = if local.is_harbor() {
            self.route_from(frame.from, frame.to)
                .and_then(|route| self.send_on(&route, frame.to_bytes(), None))
        } else {
            Err(SendError::Unreachable(frame.to))
        };
        let e = match result {
            Ok(()) => return self.counters.frame_relayed(),
            Err(e) => e,
        };
        if let Some(dropped) = self.counters.relay_dropped() {
            tracing::warn!(to = %frame.to, from = %frame.from, kind = ?frame.kind, error = %e,
                dropped, "cannot relay frame (dropped since the last such line)");
        }
        if frame.kind == FrameKind::RpcRequest {
            let err = match e {
                SendError::Busy => RpcError::Busy,
                _ => RpcError::Unreachable(frame.to),
            };
            rpc::server::reject(self, frame.from, &frame.body, err);
        }
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
