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

/// Streams the remote may hold open on one session (plus the receive queue's
/// bound, `serve`), as yamux's cap does for the native dialect (`stream.rs`): past
/// it, a new stream is closed at once. smux v1
/// has no limit of its own, and each stream accepted runs a handler task.
const MAX_STREAMS: usize = 4096;

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
    let counter = opener.clone();
    let node = inner.clone();
    let closed = inner.links().clone();
    inner.spawn(async move {
        tokio::select! {
            end = worker => if let Err(e) = end {
                tracing::debug!(%peer, error = %e, "smux session ended");
            },
            _ = serve(acceptor, &counter, MAX_STREAMS + MAX_RX_FRAMES, |s| {
                crate::stream::hand_over_smux(&node, peer, s)
            }) => {}
            _ = closed.cancelled() => {}
        }
        on_end();
    });
    opener
}

/// Hands each stream the remote opens to `take` (the node's handler), while the
/// session has at most `max` open; a stream past that is dropped, which closes it.
/// `counter` counts the open streams, the new one and those not yet accepted
/// included (these are bounded by the receive queue: the caller adds its bound).
async fn serve<T>(
    mut acceptor: MuxAcceptor<T>,
    counter: &MuxConnector<T>,
    max: usize,
    mut take: impl FnMut(async_smux::MuxStream<T>),
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    while let Some(stream) = acceptor.accept().await {
        if counter.get_num_streams() > max {
            tracing::debug!("smux session at its stream limit; closing a new stream");
            continue;
        }
        take(stream);
    }
    // The acceptor ends with the session: wait for the worker's verdict.
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A remote that opens more streams than the cap gets the extra ones closed,
    /// and those it closes make room again.
    #[tokio::test]
    async fn streams_past_the_cap_are_closed() {
        const MAX: usize = 3;
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (client, _, client_worker) = MuxBuilder::client().with_connection(a).build();
        let (server, acceptor, server_worker) = MuxBuilder::server().with_connection(b).build();
        tokio::spawn(client_worker);
        tokio::spawn(server_worker);
        let (tx, mut held) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            serve(acceptor, &server, MAX, |s| drop(tx.send(s))).await;
        });
        let wait = Duration::from_secs(5);
        let mut kept = Vec::new();
        for _ in 0..MAX {
            let mut s = client.connect().unwrap();
            s.write_all(b"x").await.unwrap();
            kept.push(
                tokio::time::timeout(wait, held.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        // Past the cap a stream reads end-of-stream: the server closed it.
        for _ in 0..2 {
            let mut s = client.connect().unwrap();
            s.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            let n = tokio::time::timeout(wait, s.read(&mut b)).await.unwrap();
            assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
        }
        assert!(
            held.try_recv().is_err(),
            "no stream past the cap was handed over"
        );
        // Streams the server's handlers drop make room again.
        drop(kept);
        let mut s = client.connect().unwrap();
        s.write_all(b"y").await.unwrap();
        assert!(
            tokio::time::timeout(wait, held.recv())
                .await
                .unwrap()
                .is_some()
        );
    }
}
