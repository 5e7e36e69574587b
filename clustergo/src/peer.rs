//! One remote node: the link to it and the queue of frames waiting for it.
//!
//! A peer is created on the first send. Its *driver* task owns the pending queue
//! (bounded; each frame has a deadline) and the connection:
//!
//! 1. idle until a frame is queued or the remote dials us;
//! 2. dial and handshake, retrying with backoff while frames wait (expired ones are
//!    dropped, never sent late); an inbound connection adopted meanwhile wins;
//! 3. write: drain the queue into one buffer per write; a reader task hands inbound
//!    frames to the node;
//! 4. on loss, pending calls through this peer fail at once and the driver returns
//!    to step 1.
//!
//! Which connection is used when both nodes dial at once, or the remote restarts,
//! is decided by the pure [`LinkState`] (`link.rs`); the driver only carries out its
//! transitions. No frame is written before the verdict, so a losing dial carries
//! nothing. Dials go through the node's one dial path (`NodeInner::dial`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::conn::Conn;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::addr::LogicAddr;
use crate::backoff::Backoff;
use crate::codec::FrameCodec;
use crate::handshake::{ConnKind, HandshakeError, Refusal};
use crate::link::{LinkState, Moved};
use crate::node::{Arrivals, Counters, NodeInner, SendError};

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Frames taken from the queue for one write.
const BATCH: usize = 512;

/// A frame waiting to be written.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) frame: Bytes,
    pub(crate) deadline: Instant,
}

/// An inbound connection accepted for this peer.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) stream: Conn,
    pub(crate) incarnation: u64,
}

/// The link's state and the handle to end its live connection, under one lock.
#[derive(Debug)]
struct Shared {
    link: LinkState,
    /// Cancels the live connection (address change).
    kill: Option<CancellationToken>,
}

/// A remote node as seen by the local one.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Unique per peer object: a pending call remembers the peer its request left
    /// through, which outlives the address (a removed member's peer keeps serving
    /// replies while a new one may exist for its restarted successor).
    id: u64,
    remote: LogicAddr,
    tx: mpsc::Sender<Outgoing>,
    inbound_tx: mpsc::UnboundedSender<Inbound>,
    state: Mutex<Shared>,
    closed: CancellationToken,
}

enum Ended {
    Closed,
    Lost,
    Replaced(Inbound),
}

impl Peer {
    /// Creates the peer and starts its driver.
    pub(crate) fn spawn(node: &Arc<NodeInner>, remote: LogicAddr, net: SocketAddr) -> Arc<Peer> {
        let (tx, rx) = mpsc::channel(node.config().pending_queue.max(1));
        let (inbound_tx, inbound_rx) = mpsc::unbounded_channel();
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let peer = Arc::new(Peer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            remote,
            tx,
            inbound_tx,
            state: Mutex::new(Shared {
                link: LinkState::new(net),
                kill: None,
            }),
            closed: node.links().child_token(),
        });
        let driver = Driver {
            peer: peer.clone(),
            node: node.clone(),
            rx,
            inbound_rx,
            carry: None,
        };
        node.spawn(driver.run());
        peer
    }

    /// Queues a frame. Never blocks: a full queue is [`SendError::Busy`].
    pub(crate) fn send(&self, frame: Bytes, deadline: Instant) -> Result<(), SendError> {
        self.tx
            .try_send(Outgoing { frame, deadline })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SendError::Busy,
                mpsc::error::TrySendError::Closed(_) => SendError::Stopped,
            })
    }

    /// The remote node.
    pub(crate) fn remote(&self) -> LogicAddr {
        self.remote
    }

    /// This peer object's id (never 0, which stands for "no peer": a local call).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Closes the link for good (peer removed, or node stopping).
    pub(crate) fn close(&self) {
        self.closed.cancel();
    }

    /// Membership moved the peer: drop the live connection and dial `net` from now on.
    pub(crate) fn set_net(&self, net: SocketAddr) {
        let mut st = self.state.lock();
        if st.link.moved(net) == Moved::Redirected
            && let Some(kill) = st.kill.take()
        {
            kill.cancel();
        }
    }

    /// Decides whether to accept an inbound connection from `incarnation` of the
    /// remote, reserving the link if so ([`LinkState::offer`]).
    pub(crate) fn offer_inbound(&self, incarnation: u64, local: LogicAddr) -> Result<(), Refusal> {
        self.state
            .lock()
            .link
            .offer(incarnation, local < self.remote)
    }

    /// Hands an accepted connection to the driver, or releases the reservation made
    /// by [`offer_inbound`](Self::offer_inbound) if the handshake failed after all.
    pub(crate) fn adopt(&self, inbound: Result<Inbound, u64>) {
        match inbound {
            Ok(inbound) => {
                let _ = self.inbound_tx.send(inbound);
            }
            Err(incarnation) => self.state.lock().link.offer_lost(incarnation),
        }
    }
}

struct Driver {
    peer: Arc<Peer>,
    node: Arc<NodeInner>,
    rx: mpsc::Receiver<Outgoing>,
    inbound_rx: mpsc::UnboundedReceiver<Inbound>,
    /// A frame taken from the queue before a connection was there to write it.
    carry: Option<Outgoing>,
}

impl Driver {
    async fn run(mut self) {
        let mut next: Option<Inbound> = None;
        loop {
            let conn = match next.take() {
                Some(inbound) => (inbound.stream, inbound.incarnation),
                None => match self.connect().await {
                    Some(conn) => conn,
                    None => break,
                },
            };
            match self.serve(conn.0, conn.1).await {
                Ended::Closed => break,
                Ended::Lost => {}
                Ended::Replaced(inbound) => next = Some(inbound),
            }
        }
        tracing::debug!(peer = %self.peer.remote, "peer driver ended");
    }

    /// Step 1 and 2: wait for work, then dial until connected or adopted. `None`
    /// means the peer is closed.
    async fn connect(&mut self) -> Option<(Conn, u64)> {
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        loop {
            self.drop_expired();
            if self.carry.is_none() {
                tokio::select! {
                    biased;
                    _ = self.peer.closed.cancelled() => return None,
                    inbound = self.inbound_rx.recv() => {
                        let inbound = inbound?;
                        return Some((inbound.stream, inbound.incarnation));
                    }
                    out = self.rx.recv() => self.carry = Some(out?),
                }
                continue;
            }
            let result = tokio::select! {
                biased;
                _ = self.peer.closed.cancelled() => return None,
                inbound = self.inbound_rx.recv() => {
                    let inbound = inbound?;
                    return Some((inbound.stream, inbound.incarnation));
                }
                r = dial(&self.peer, &self.node) => r,
            };
            match result {
                Ok(conn) => return Some(conn),
                Err(HandshakeError::Refused(Refusal::Duplicate)) => {
                    tracing::debug!(peer = %self.peer.remote, "dial lost the tie-break; waiting for the inbound link");
                }
                Err(e) => {
                    tracing::debug!(peer = %self.peer.remote, error = %e, "dial failed; retrying");
                }
            }
            tokio::select! {
                biased;
                _ = self.peer.closed.cancelled() => return None,
                inbound = self.inbound_rx.recv() => {
                    let inbound = inbound?;
                    return Some((inbound.stream, inbound.incarnation));
                }
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Drops the carried frame and queued ones at the head whose deadline passed.
    fn drop_expired(&mut self) {
        let now = Instant::now();
        let mut dropped = 0usize;
        loop {
            match &self.carry {
                Some(out) if out.deadline < now => {
                    self.carry = None;
                    dropped += 1;
                }
                Some(_) => break,
                None => match self.rx.try_recv() {
                    Ok(out) => self.carry = Some(out),
                    Err(_) => break,
                },
            }
        }
        if dropped > 0 {
            self.node.counters().frames_expired(dropped);
            tracing::debug!(peer = %self.peer.remote, dropped, "dropped expired frames while unconnected");
        }
    }
}

/// Dials the peer through the node's dial path; the link state decides whether
/// the connection is used.
async fn dial(peer: &Peer, node: &NodeInner) -> Result<(Conn, u64), HandshakeError> {
    let net = peer.state.lock().link.dial_started();
    let _dialing = Dialing(&peer.state);
    let (stream, id) = node.dial(ConnKind::Frames, peer.remote, net).await?;
    peer.state
        .lock()
        .link
        .dialed(id.incarnation)
        .map_err(HandshakeError::Refused)?;
    Ok((stream, id.incarnation))
}

impl Driver {
    /// Step 3: run one connection until it ends.
    async fn serve(&mut self, stream: Conn, incarnation: u64) -> Ended {
        let remote = self.peer.remote;
        let dead = CancellationToken::new();
        {
            let mut st = self.peer.state.lock();
            st.link.up(incarnation);
            st.kill = Some(dead.clone());
        }
        tracing::debug!(peer = %remote, "link up");
        self.node.counters().link_established();
        let (rd, mut wr) = stream.into_split();
        let reader = {
            let node = self.node.clone();
            let dead = dead.clone();
            let max = node.config().max_frame;
            // Ends at EOF or bad input, or is aborted when the writer side ends.
            tokio::spawn(async move {
                let mut frames = FramedRead::new(rd, FrameCodec::new(max));
                let mut arrivals = Arrivals::new(remote);
                while let Some(next) = frames.next().await {
                    match next {
                        Ok(frame) => node.dispatch_arrived(&mut arrivals, frame),
                        Err(e) => {
                            tracing::warn!(peer = %remote, error = %e, "closing link: bad input");
                            break;
                        }
                    }
                }
                dead.cancel();
            })
        };

        let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        batch.extend(self.carry.take());
        let counters = self.node.counters();
        let ended = loop {
            if dead.is_cancelled() {
                break Ended::Lost;
            }
            if self.peer.closed.is_cancelled() {
                // Closing: what is queued still goes out, then the link closes.
                while let Ok(out) = self.rx.try_recv() {
                    batch.push(out);
                }
                fill(&mut buf, &mut batch, counters);
                let _ = wr.write_all(&buf).await;
                let _ = wr.flush().await;
                let _ = wr.shutdown().await;
                break Ended::Closed;
            }
            // While frames keep coming, take them without arming the select below.
            while batch.len() < BATCH {
                match self.rx.try_recv() {
                    Ok(out) => batch.push(out),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                tokio::select! {
                    biased;
                    _ = dead.cancelled() => continue,
                    _ = self.peer.closed.cancelled() => continue,
                    inbound = self.inbound_rx.recv() => match inbound {
                        Some(inbound) => break Ended::Replaced(inbound),
                        None => break Ended::Closed,
                    },
                    n = self.rx.recv_many(&mut batch, BATCH) => if n == 0 { break Ended::Closed },
                }
            }
            fill(&mut buf, &mut batch, counters);
            if buf.is_empty() {
                continue;
            }
            tokio::select! {
                biased;
                _ = dead.cancelled() => break Ended::Lost,
                // TLS may keep what the socket did not take: flush before going idle
                // (a no-op on plain TCP).
                r = async { wr.write_all(&buf).await?; wr.flush().await } => if let Err(e) = r {
                    tracing::debug!(peer = %remote, error = %e, "write failed");
                    break Ended::Lost;
                },
            }
            if buf.capacity() > 1024 * 1024 {
                buf = BytesMut::with_capacity(64 * 1024);
            }
        };
        dead.cancel();
        reader.abort();
        {
            let mut st = self.peer.state.lock();
            st.link.down(incarnation);
            st.kill = None;
        }
        if !matches!(ended, Ended::Closed) {
            tracing::debug!(peer = %remote, "link lost");
            self.node.counters().link_lost();
        }
        self.node.link_lost(&self.peer);
        ended
    }
}

/// Clears the `dialing` mark however the dial ends (done, failed, or abandoned).
struct Dialing<'a>(&'a Mutex<Shared>);

impl Drop for Dialing<'_> {
    fn drop(&mut self) {
        self.0.lock().link.dial_ended();
    }
}

/// Moves the batch's unexpired frames into `buf` (cleared first).
fn fill(buf: &mut BytesMut, batch: &mut Vec<Outgoing>, counters: &Counters) {
    buf.clear();
    let now = Instant::now();
    let mut expired = 0usize;
    for out in batch.drain(..) {
        if out.deadline >= now {
            buf.extend_from_slice(&out.frame);
        } else {
            expired += 1;
        }
    }
    if expired > 0 {
        counters.frames_expired(expired);
        tracing::debug!(expired, "dropped expired frames");
    }
}
