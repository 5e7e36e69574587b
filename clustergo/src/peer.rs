//! One remote node: the link to it and the queue of frames waiting for it.
//!
//! A peer is created on the first send. Its *driver* task owns the pending queue
//! (bounded; each frame has a deadline) and the connection:
//!
//! 1. idle until a frame is queued or the remote dials us;
//! 2. dial and handshake, retrying with backoff while frames wait (expired ones are
//!    dropped when their deadline passes, never sent late); an inbound connection
//!    adopted meanwhile wins. A failed dial (a timed-out one only the third in a
//!    row: one alone is mostly load) makes the remote *known down*
//!    ([`LinkState::dial_failed`]): what is queued is dropped, calls through it end
//!    `Unreachable`, new sends fail at once, and the driver keeps probing;
//! 3. write: drain the queue into one batch per write (`batch.rs`: small frames
//!    copied together, big ones sent from their own buffers); a reader task hands
//!    inbound frames to the node. A write that makes no progress for `write_stall_timeout`
//!    ends the link and drops what is queued (the peer stopped reading). An idle
//!    writer sends a keepalive every `keepalive_interval`, and ends the link when
//!    nothing was read for `keepalive_timeout` (the network went silent;
//!    `keepalive.rs`);
//! 4. on loss, pending calls through this peer fail at once and the driver returns
//!    to step 1.
//!
//! The queue is bounded in frames (`pending_queue`) and bytes (`pending_bytes`),
//! both counted in one atomic word so a send checks them with one add.
//!
//! Which connection is used when both nodes dial at once, or the remote restarts,
//! is decided by the pure [`LinkState`] (`link.rs`); the driver only carries out its
//! transitions. No frame is written before the verdict, so a losing dial carries
//! nothing. Dials go through the node's one dial path (`NodeInner::dial`).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::addr::LogicAddr;
use crate::backoff::Backoff;
use crate::batch::Batch;
use crate::clock;
use crate::codec::{Frame, FrameKind, read_frames};
use crate::conn::Conn;
use crate::framebuf;
use crate::handshake::{ConnKind, HandshakeError, Refusal};
use crate::keepalive::{Heard, Tick, Watchdog};
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

impl Outgoing {
    /// The frame in an allocation of its own if it is small: it is about to wait for
    /// a connection (seconds, maybe), and a small frame may share its buffer with
    /// others (`framebuf.rs`, or a read buffer) that it would keep alive meanwhile.
    fn detached(self) -> Self {
        if self.frame.len() > framebuf::SMALL {
            return self;
        }
        Self {
            frame: Bytes::copy_from_slice(&self.frame),
            ..self
        }
    }
}

/// A connection to this peer, dialed or accepted.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) stream: Conn,
    pub(crate) incarnation: u64,
}

/// An accepted connection on its way to the driver. At most one waits: a newer
/// one replaces it (the remote restarted again; the older is closed). A channel
/// here cost ~2 KB per peer (its first block of slots), idle or not.
#[derive(Debug, Default)]
struct Handover {
    slot: Mutex<Option<Inbound>>,
    ready: Notify,
}

impl Handover {
    fn put(&self, inbound: Inbound) {
        *self.slot.lock() = Some(inbound);
        self.ready.notify_one();
    }

    /// The waiting connection, once there is one. Cancel-safe: nothing is taken
    /// unless returned.
    async fn take(&self) -> Inbound {
        loop {
            if let Some(inbound) = self.slot.lock().take() {
                return inbound;
            }
            self.ready.notified().await;
        }
    }
}

/// The link's state and the handle to end its live connection, under one lock.
#[derive(Debug)]
struct Shared {
    link: LinkState,
    /// Cancels the live connection (address change).
    kill: Option<CancellationToken>,
}

/// Bits of [`Queued`] that count bytes; the bits above count frames.
const BYTES_BITS: u32 = 40;
const BYTES_MASK: u64 = (1 << BYTES_BITS) - 1;
/// Most frames [`Queued`] can count.
const MAX_FRAMES: usize = (1 << (64 - BYTES_BITS)) - 1;

/// What a peer holds queued, frames and bytes in one word: a send checks both
/// limits with a single atomic add; the driver subtracts once per batch.
#[derive(Debug, Default)]
struct Queued(AtomicU64);

impl Queued {
    /// Counts a frame of `bytes` in, unless that would pass a limit. A frame alone
    /// in the queue is always taken, whatever its size.
    fn admit(&self, bytes: usize, max_frames: usize, max_bytes: usize) -> bool {
        let delta = (1 << BYTES_BITS) | bytes as u64;
        let prev = self.0.fetch_add(delta, Ordering::Relaxed);
        let (frames, held) = ((prev >> BYTES_BITS) as usize, prev & BYTES_MASK);
        if frames >= max_frames || (held > 0 && held + bytes as u64 > max_bytes as u64) {
            self.0.fetch_sub(delta, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Frames counted in now.
    fn frames(&self) -> usize {
        (self.0.load(Ordering::Relaxed) >> BYTES_BITS) as usize
    }

    /// Counts `frames` frames of `bytes` in total out.
    fn release(&self, frames: usize, bytes: usize) {
        if frames > 0 {
            let delta = ((frames as u64) << BYTES_BITS) | bytes as u64;
            self.0.fetch_sub(delta, Ordering::Relaxed);
        }
    }
}

/// A remote node as seen by the local one.
#[derive(Debug)]
pub(crate) struct Peer {
    /// Unique per peer object: a pending call remembers the peer its request left
    /// through, which outlives the address (a removed member's peer keeps serving
    /// replies while a new one may exist for its restarted successor).
    id: u64,
    remote: LogicAddr,
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: Queued,
    max_frames: usize,
    max_bytes: usize,
    /// Mirrors [`LinkState::known_down`] for senders, without the lock.
    down: AtomicBool,
    inbound: Handover,
    state: Mutex<Shared>,
    closed: CancellationToken,
}

enum Ended {
    Closed,
    Lost,
    /// The peer stopped reading: what is queued for it is dropped.
    Stalled,
    Replaced(Inbound),
}

/// How a wait of the unconnected driver ended.
enum Waited<T> {
    Closed,
    Inbound(Inbound),
    Done(T),
}

impl Peer {
    /// Creates the peer and starts its driver.
    pub(crate) fn spawn(node: &Arc<NodeInner>, remote: LogicAddr, net: SocketAddr) -> Arc<Peer> {
        let config = node.config();
        let (tx, rx) = mpsc::unbounded_channel();
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let peer = Arc::new(Peer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            remote,
            tx,
            queued: Queued::default(),
            max_frames: config.pending_queue.clamp(1, MAX_FRAMES),
            max_bytes: config.pending_bytes,
            down: AtomicBool::new(false),
            inbound: Handover::default(),
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
            queue: VecDeque::new(),
        };
        node.spawn(driver.run());
        peer
    }

    /// Queues a frame. Never blocks: a full queue is [`SendError::Busy`], a peer
    /// known down [`SendError::Unreachable`].
    pub(crate) fn send(&self, frame: Bytes, deadline: Instant) -> Result<(), SendError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(SendError::Unreachable(self.remote));
        }
        let len = frame.len();
        if !self.queued.admit(len, self.max_frames, self.max_bytes) {
            return Err(SendError::Busy);
        }
        self.tx.send(Outgoing { frame, deadline }).map_err(|_| {
            self.queued.release(1, len);
            SendError::Stopped
        })
    }

    /// The link's state in a word (`up`, `dialing`, `down`), for monitoring.
    pub(crate) fn link_label(&self) -> &'static str {
        self.state.lock().link.label()
    }

    /// Frames queued and not yet taken by the writer.
    pub(crate) fn queue_depth(&self) -> usize {
        self.queued.frames()
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
        if st.link.moved(net) == Moved::Redirected {
            self.down.store(st.link.known_down(), Ordering::Relaxed);
            if let Some(kill) = st.kill.take() {
                kill.cancel();
            }
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
                self.inbound.put(inbound);
            }
            Err(incarnation) => self.state.lock().link.offer_lost(incarnation),
        }
    }
}

struct Driver {
    peer: Arc<Peer>,
    node: Arc<NodeInner>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    /// Frames taken from the channel while no connection could write them.
    queue: VecDeque<Outgoing>,
}

impl Driver {
    async fn run(mut self) {
        let mut next: Option<Inbound> = None;
        loop {
            let conn = match next.take() {
                Some(conn) => conn,
                None => match self.connect().await {
                    Some(conn) => conn,
                    None => break,
                },
            };
            match self.serve(conn).await {
                Ended::Closed => break,
                Ended::Lost => {}
                Ended::Stalled => self.drop_queued(),
                Ended::Replaced(inbound) => next = Some(inbound),
            }
        }
        tracing::debug!(peer = %self.peer.remote, "peer driver ended");
    }

    /// Step 1 and 2: wait for work, then dial until connected or adopted. `None`
    /// means the peer is closed.
    async fn connect(&mut self) -> Option<Inbound> {
        let mut backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        let mut timeouts = 0;
        loop {
            if self.queue.is_empty() && !self.peer.down.load(Ordering::Relaxed) {
                tokio::select! {
                    biased;
                    _ = self.peer.closed.cancelled() => return None,
                    inbound = self.peer.inbound.take() => return Some(inbound),
                    out = self.rx.recv() => self.queue.push_back(out?.detached()),
                }
                continue;
            }
            let (peer, node) = (self.peer.clone(), self.node.clone());
            let result = match self.wait(async move { dial(&peer, &node).await }).await {
                Waited::Closed => return None,
                Waited::Inbound(inbound) => return Some(inbound),
                Waited::Done(result) => result,
            };
            match result {
                Ok(conn) => return Some(conn),
                Err(HandshakeError::Refused(Refusal::Duplicate)) => {
                    tracing::debug!(peer = %self.peer.remote, "dial lost the tie-break; waiting for the inbound link");
                }
                Err(e) => {
                    self.node.counters().dial_failed();
                    tracing::debug!(peer = %self.peer.remote, error = %e, "dial failed; retrying");
                    timeouts = if matches!(e, HandshakeError::Timeout) {
                        timeouts + 1
                    } else {
                        0
                    };
                    if means_down(&e, timeouts) {
                        self.dial_failed();
                    }
                }
            }
            match self.wait(tokio::time::sleep(backoff.next_delay())).await {
                Waited::Closed => return None,
                Waited::Inbound(inbound) => return Some(inbound),
                Waited::Done(()) => {}
            }
        }
    }

    /// Runs `fut` while unconnected, queueing frames that arrive meanwhile and
    /// dropping each one when its deadline passes (so a queue of expired frames
    /// never answers `Busy`). Frames for a peer known down are dropped at once.
    async fn wait<T>(&mut self, fut: impl Future<Output = T>) -> Waited<T> {
        tokio::pin!(fut);
        let mut expiry = self.queue.iter().map(|o| o.deadline).min();
        loop {
            let at = expiry.unwrap_or_else(|| Instant::now() + MAX_BACKOFF);
            tokio::select! {
                biased;
                _ = self.peer.closed.cancelled() => return Waited::Closed,
                inbound = self.peer.inbound.take() => return Waited::Inbound(inbound),
                r = &mut fut => return Waited::Done(r),
                out = self.rx.recv() => match out {
                    Some(out) => {
                        expiry = Some(expiry.map_or(out.deadline, |e| e.min(out.deadline)));
                        self.queue.push_back(out.detached());
                        if self.peer.down.load(Ordering::Relaxed) {
                            // Sent just before the peer was found down.
                            self.drop_queued();
                            self.node.link_unreachable(&self.peer);
                        }
                    }
                    None => return Waited::Closed,
                },
                _ = tokio::time::sleep_until(at), if expiry.is_some() => {
                    expiry = self.purge_expired();
                }
            }
        }
    }

    /// Drops queued frames whose deadline came; returns the next deadline.
    fn purge_expired(&mut self) -> Option<Instant> {
        let now = Instant::now();
        let before = self.queue.len();
        let mut bytes = 0;
        self.queue.retain(|out| {
            // Due now counts as expired: the timer fires at the deadline itself.
            let keep = out.deadline > now;
            if !keep {
                bytes += out.frame.len();
            }
            keep
        });
        let dropped = before - self.queue.len();
        if dropped > 0 {
            self.peer.queued.release(dropped, bytes);
            self.node.counters().frames_expired(dropped);
            tracing::debug!(peer = %self.peer.remote, dropped, "dropped expired frames while unconnected");
        }
        self.queue.iter().map(|o| o.deadline).min()
    }

    /// Drops everything queued, counted: the link stalled or the peer is down.
    fn drop_queued(&mut self) {
        let mut frames = 0;
        let mut bytes = 0;
        while let Some(out) = self.queue.pop_front().or_else(|| self.rx.try_recv().ok()) {
            frames += 1;
            bytes += out.frame.len();
        }
        if frames > 0 {
            self.peer.queued.release(frames, bytes);
            self.node.counters().frames_dropped(frames);
            tracing::debug!(peer = %self.peer.remote, frames, "dropped queued frames");
        }
    }

    /// A dial failed: the remote is known down unless a link is up
    /// ([`LinkState::dial_failed`]). What waits for it cannot be delivered.
    fn dial_failed(&mut self) {
        let down = {
            let mut st = self.peer.state.lock();
            st.link.dial_failed();
            st.link.known_down()
        };
        self.peer.down.store(down, Ordering::Relaxed);
        if down {
            self.drop_queued();
            self.node.link_unreachable(&self.peer);
        }
    }

    /// Moves up to a batch of frames, queued ones first, into `batch`.
    fn take(&mut self, batch: &mut Vec<Outgoing>) {
        while batch.len() < BATCH {
            match self.queue.pop_front() {
                Some(out) => batch.push(out),
                None => match self.rx.try_recv() {
                    Ok(out) => batch.push(out),
                    Err(_) => break,
                },
            }
        }
    }
}

/// Consecutive dial timeouts that make a remote known down. One timeout alone is
/// mostly load: dozens of nodes starting at once on a few cores (bench: a 64-node
/// mesh in one process) time out handshakes of live peers, and calling those down
/// failed their sends `Unreachable` until the next probe.
const TIMEOUTS_BEFORE_DOWN: u32 = 3;

/// Whether a failed dial, after `timeouts` consecutive dial timeouts (this one
/// included), means the remote is down. A remote that answered but does not list
/// us yet (or lists another address) is alive, and membership is still spreading:
/// frames keep waiting for the next attempt. So do they after a timeout, until
/// [`TIMEOUTS_BEFORE_DOWN`] in a row. A refused connection means down at once.
fn means_down(e: &HandshakeError, timeouts: u32) -> bool {
    if matches!(e, HandshakeError::Timeout) {
        return timeouts >= TIMEOUTS_BEFORE_DOWN;
    }
    !matches!(
        e,
        HandshakeError::Refused(Refusal::Duplicate | Refusal::UnknownNode | Refusal::AddrMismatch)
            | HandshakeError::Closed
    )
}

/// Dials the peer through the node's dial path; the link state decides whether
/// the connection is used.
async fn dial(peer: &Peer, node: &NodeInner) -> Result<Inbound, HandshakeError> {
    // An inbound connection being adopted holds the link: no dial (the driver
    // takes that connection from its handover instead).
    let net = peer
        .state
        .lock()
        .link
        .dial_started()
        .ok_or(HandshakeError::Refused(Refusal::Duplicate))?;
    let _dialing = Dialing(&peer.state);
    let (stream, id) = node.dial(ConnKind::Frames, peer.remote, net).await?;
    peer.state
        .lock()
        .link
        .dialed(id.incarnation)
        .map_err(HandshakeError::Refused)?;
    Ok(Inbound {
        stream,
        incarnation: id.incarnation,
    })
}

impl Driver {
    /// Step 3: run one connection until it ends.
    async fn serve(&mut self, conn: Inbound) -> Ended {
        let Inbound {
            stream,
            incarnation,
        } = conn;
        let remote = self.peer.remote;
        let dead = CancellationToken::new();
        {
            let mut st = self.peer.state.lock();
            st.link.up(incarnation);
            st.kill = Some(dead.clone());
            self.peer
                .down
                .store(st.link.known_down(), Ordering::Relaxed);
        }
        tracing::debug!(peer = %remote, "link up");
        self.node.counters().link_established();
        let config = self.node.config();
        let stall = config.write_stall_timeout;
        let (rd, mut wr) = stream.into_split();
        let heard = Arc::new(AtomicBool::new(false));
        let reader = {
            let node = self.node.clone();
            let dead = dead.clone();
            let rd = Heard::new(rd, heard.clone());
            let max = config.max_frame;
            // Links are served once the node runs; were it not, every frame would
            // merely keep its wire bytes.
            let local = self
                .node
                .running()
                .map_or(LogicAddr::from_raw(0), |r| r.local);
            // Ends at EOF or bad input, or is aborted when the writer side ends.
            tokio::spawn(async move {
                let mut frames = read_frames(rd, max, local);
                let mut arrivals = Arrivals::new(remote);
                // One clock reading for the frames of a socket read (`clock.rs`).
                let mut reading = clock::Reading::default();
                loop {
                    // Whenever the reader waits for the socket, what it handled is
                    // counted: once per read, and never left behind by a read that
                    // ended mid-frame.
                    let next = reading.next_of(&mut frames, || arrivals.flush(&node)).await;
                    match next {
                        None => break,
                        Some(Ok(arrived)) if arrived.frame.kind == FrameKind::Keepalive => {}
                        Some(Ok(arrived)) => {
                            reading.lend(|| node.dispatch_arrived(&mut arrivals, arrived))
                        }
                        Some(Err(e)) => {
                            tracing::warn!(peer = %remote, error = %e, "closing link: bad input");
                            break;
                        }
                    }
                }
                arrivals.flush(&node);
                dead.cancel();
            })
        };

        // Grows as the queue needs (an idle link holds none).
        let mut batch: Vec<Outgoing> = Vec::new();
        let mut buf = Batch::default();
        // Checked when the writer is idle: a busy writer on a silent network stalls.
        // The Go dialect has no keepalive frames: the Go side would close the link
        // on one, and sends none, so silence there means nothing.
        let mut watchdog = Watchdog::new(config);
        let keepalives = config.dialect.keepalives();
        let mut wrote = false;
        let node = self.node.clone();
        let counters = node.counters();
        let ended = loop {
            if dead.is_cancelled() {
                break Ended::Lost;
            }
            if self.peer.closed.is_cancelled() {
                // Closing: what is queued still goes out, all within the stall bound,
                // so that stop ends whatever the peer does.
                let flush = async {
                    for _ in 0..=self.peer.max_frames / BATCH {
                        self.take(&mut batch);
                        if batch.is_empty() {
                            break;
                        }
                        fill(&mut buf, &mut batch, counters, &self.peer.queued);
                        buf.write_to(&mut wr, stall).await?;
                    }
                    wr.flush().await?;
                    wr.shutdown().await
                };
                if tokio::time::timeout(stall, flush).await.is_err() {
                    tracing::warn!(peer = %remote, "closing link: final flush stalled");
                }
                break Ended::Closed;
            }
            // While frames keep coming, take them without arming the select below.
            self.take(&mut batch);
            let mut keepalive = false;
            if batch.is_empty() {
                tokio::select! {
                    biased;
                    _ = dead.cancelled() => continue,
                    _ = self.peer.closed.cancelled() => continue,
                    inbound = self.peer.inbound.take() => break Ended::Replaced(inbound),
                    n = self.rx.recv_many(&mut batch, BATCH) => if n == 0 { break Ended::Closed },
                    tick = watchdog.tick(&heard), if keepalives => match tick {
                        Tick::Silent => {
                            tracing::warn!(peer = %remote, "closing link: nothing heard within the keepalive timeout");
                            counters.link_silent();
                            break Ended::Lost;
                        }
                        // Nothing written for a whole interval: say we are alive.
                        Tick::Alive => keepalive = !std::mem::take(&mut wrote),
                    },
                }
            }
            fill(&mut buf, &mut batch, counters, &self.peer.queued);
            if buf.is_empty() && !keepalive {
                continue;
            }
            wrote |= !buf.is_empty();
            if keepalive {
                buf.push_slice(&Frame::KEEPALIVE);
            }
            // The write first: one that completes at once (the usual case) then
            // never registers with `dead`'s waiters (a lock each way). A dead link
            // is seen at the top of the loop.
            tokio::select! {
                biased;
                r = buf.write_to(&mut wr, stall) => match r {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        tracing::warn!(peer = %remote, "closing link: the peer stopped reading");
                        counters.link_stalled();
                        break Ended::Stalled;
                    }
                    Err(e) => {
                        tracing::debug!(peer = %remote, error = %e, "write failed");
                        break Ended::Lost;
                    }
                },
                _ = dead.cancelled() => break Ended::Lost,
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
            counters.link_lost();
        }
        node.link_lost(&self.peer);
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

/// Moves the taken frames' unexpired ones into `buf` (empty: the last write
/// completed) and counts all of them out of the queue.
fn fill(buf: &mut Batch, batch: &mut Vec<Outgoing>, counters: &Counters, queued: &Queued) {
    let now = Instant::now();
    let (frames, mut bytes, mut expired) = (batch.len(), 0usize, 0usize);
    for out in batch.drain(..) {
        bytes += out.frame.len();
        if out.deadline >= now {
            buf.push(out.frame);
        } else {
            expired += 1;
        }
    }
    queued.release(frames, bytes);
    counters.sent(frames - expired, buf.len());
    if expired > 0 {
        counters.frames_expired(expired);
        tracing::debug!(expired, "dropped expired frames");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to hand over, its incarnation as the mark.
    async fn inbound(incarnation: u64) -> Inbound {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        Inbound {
            stream: Conn::Plain(stream),
            incarnation,
        }
    }

    #[tokio::test]
    async fn handover_keeps_the_newest_and_wakes_a_waiting_driver() {
        let limit = Duration::from_secs(5);
        let h = Arc::new(Handover::default());
        h.put(inbound(1).await);
        h.put(inbound(2).await);
        let got = tokio::time::timeout(limit, h.take()).await.unwrap();
        assert_eq!(got.incarnation, 2, "the newer replaced the older");
        // A driver waiting (and its wait dropped once, as a select does) is woken.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), h.take())
                .await
                .is_err()
        );
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.take().await.incarnation }
        });
        tokio::task::yield_now().await;
        h.put(inbound(3).await);
        assert_eq!(
            tokio::time::timeout(limit, waiter).await.unwrap().unwrap(),
            3
        );
    }

    #[test]
    fn queued_bounds_frames_and_bytes() {
        // (frames already queued of 10 bytes each, size of the next, admitted)
        // with limits of 4 frames and 50 bytes.
        let cases = [
            (0, 10, true),
            (3, 10, true),
            (4, 10, false), // frame limit
            (2, 30, true),  // 50 bytes exactly
            (2, 31, false), // byte limit
            (0, 500, true), // alone in the queue: always taken
        ];
        for (held, size, want) in cases {
            let q = Queued::default();
            for _ in 0..held {
                assert!(q.admit(10, 4, 50));
            }
            assert_eq!(q.admit(size, 4, 50), want, "{held} queued, next {size}");
            q.release(held, held * 10);
            if want {
                q.release(1, size);
            }
            assert_eq!(q.0.load(Ordering::Relaxed), 0, "{held} queued, next {size}");
        }
    }

    #[test]
    fn a_waiting_small_frame_lets_its_shared_buffer_go() {
        let shared = Bytes::from(vec![5u8; 4 * framebuf::SMALL]);
        let deadline = Instant::now();
        let small = Outgoing {
            frame: shared.slice(..10),
            deadline,
        }
        .detached();
        assert_eq!(&small.frame[..], &[5u8; 10]);
        assert!(
            !shared.as_ptr_range().contains(&small.frame.as_ptr()),
            "copied"
        );
        let big = Outgoing {
            frame: shared.slice(..framebuf::SMALL + 1),
            deadline,
        }
        .detached();
        assert_eq!(
            big.frame.as_ptr(),
            shared.as_ptr(),
            "big frames stay as they are"
        );
    }

    #[test]
    fn which_failed_dials_mean_down() {
        let io = || HandshakeError::Io(io::ErrorKind::ConnectionRefused.into());
        let cases = [
            (io(), true),
            (HandshakeError::BadMac, true),
            (HandshakeError::Refused(Refusal::Stopping), true),
            (HandshakeError::Refused(Refusal::Unsupported), true),
            (HandshakeError::Refused(Refusal::Duplicate), false),
            (HandshakeError::Refused(Refusal::UnknownNode), false),
            (HandshakeError::Refused(Refusal::AddrMismatch), false),
            (HandshakeError::Closed, false),
        ];
        for (e, want) in cases {
            assert_eq!(means_down(&e, 0), want, "{e}");
        }
        // Timeouts: load first, down once they repeat.
        for (timeouts, want) in [(1, false), (2, false), (3, true), (4, true)] {
            let e = HandshakeError::Timeout;
            assert_eq!(means_down(&e, timeouts), want, "{timeouts} timeouts");
        }
    }
}
