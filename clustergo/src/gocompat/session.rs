//! Stream sessions in the Go seed's dialect: smux v1 over an `IsStream`
//! connection, on the `async_smux` crate (tokio, smux v1 framing, bounded receive
//! queue, NOP keepalives). The dialer is the smux client and the only side that
//! opens streams (the Go seed opens streams only on sessions it dialed), so each
//! node opens streams on the session it dialed and serves those of sessions it
//! accepted.
//!
//! Why a crate: `async_smux` is a maintained tokio implementation of exactly this
//! protocol (xtaci/smux v1). smux v1 has no per-stream window: the session's
//! receive queue is bounded (`MAX_RX_FRAMES` frames of at most 64 KiB), and a full
//! queue stops reading the socket, which holds the whole session back; that is v1's
//! flow control, the same as the Go side's.

use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::Arc;

use async_smux::{MuxAcceptor, MuxBuilder, MuxConnector};

use crate::addr::LogicAddr;
use crate::conn::Conn;
use crate::node::NodeInner;

/// Frames a session buffers before it stops reading its socket (each at most
/// 64 KiB: 16 MiB at worst per session).
const MAX_RX_FRAMES: usize = 256;
/// The Go side's smux defaults: a NOP every 10 s, a session silent for 30 s is dead.
const KEEPALIVE_INTERVAL_S: u64 = 10;
const KEEPALIVE_TIMEOUT_S: u64 = 30;

/// A session's opener (the client side of a dialed session).
pub(crate) type Opener = MuxConnector<Conn>;
/// One smux stream.
pub(crate) type SmuxStream = async_smux::MuxStream<Conn>;

/// Which end of a session this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Dialed it: opens streams (odd ids).
    Client,
    /// Accepted it: serves the streams the dialer opens.
    Server,
}

/// Starts an smux session on an authenticated connection: its driver runs until
/// the connection ends or the node stops, and inbound streams go to the node's
/// handler. `on_end` runs when it is over. Returns the opener.
pub(crate) fn start(
    inner: &Arc<NodeInner>,
    peer: LogicAddr,
    conn: Conn,
    role: Role,
    on_end: impl FnOnce() + Send + 'static,
) -> Opener {
    let mut builder = match role {
        Role::Client => MuxBuilder::client(),
        Role::Server => MuxBuilder::server(),
    };
    builder
        .with_keep_alive_interval(NonZeroU64::new(KEEPALIVE_INTERVAL_S).expect("not zero"))
        .with_keep_alive_timeout(NonZeroU64::new(KEEPALIVE_TIMEOUT_S).expect("not zero"))
        .with_max_rx_queue(NonZeroUsize::new(MAX_RX_FRAMES).expect("not zero"));
    let (opener, acceptor, worker) = builder.with_connection(conn).build();
    let node = inner.clone();
    let closed = inner.links().clone();
    inner.spawn(async move {
        tokio::select! {
            end = worker => if let Err(e) = end {
                tracing::debug!(%peer, error = %e, "smux session ended");
            },
            _ = serve(&node, peer, acceptor) => {}
            _ = closed.cancelled() => {}
        }
        on_end();
    });
    opener
}

/// Hands each stream the remote opens to the node's handler.
async fn serve(node: &Arc<NodeInner>, peer: LogicAddr, mut acceptor: MuxAcceptor<Conn>) {
    while let Some(stream) = acceptor.accept().await {
        crate::stream::hand_over_smux(node, peer, stream);
    }
    // The acceptor ends with the session: wait for the worker's verdict.
    std::future::pending::<()>().await
}
