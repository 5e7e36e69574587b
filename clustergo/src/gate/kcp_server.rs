//! The KCP server front end: one UDP socket, a stateless admission check, and sessions
//! driven by the `kcp` crate (in place of `tokio_kcp::KcpListener`).
//!
//! tokio_kcp's listener opens a session (three tasks and about 90 KiB) for every
//! KCP-sized datagram from a new address, and UDP sources can be spoofed: one datagram
//! per port pinned memory and CPU for as long as sessions lived. Here a datagram from an
//! unknown address opens a session only if it carries the start of a conversation
//! ([`opens_session`]: a data segment with sequence number 0 that holds a packet length
//! field); anything else is dropped with no state kept. A session costs one small task
//! (its timer) and the KCP buffers.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::kcp::{Error as KcpError, Kcp};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_kcp::KcpConfig;
use tracing::{debug, warn};

use super::ListenerStats;

/// KCP segment header bytes.
const HEADER: usize = 24;
/// KCP command of a data segment.
const CMD_PUSH: u8 = 81;

/// Whether a datagram from an address with no session may open one: it must hold a data
/// segment with sequence number 0 whose data starts with a packet length field (not the
/// close marker: that is the tail of a conversation, not its start). A pure check on
/// the bytes; nothing is stored for datagrams that fail it.
pub(crate) fn opens_session(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    while rest.len() >= HEADER {
        let u32_at =
            |i: usize| u32::from_le_bytes([rest[i], rest[i + 1], rest[i + 2], rest[i + 3]]);
        let (cmd, sn, len) = (rest[4], u32_at(12), u32_at(20) as usize);
        let Some(data) = rest[HEADER..].get(..len) else {
            return false;
        };
        if cmd == CMD_PUSH && sn == 0 {
            return data.len() >= 4 && data[..4] != super::kcp::CLOSE_MARKER.to_be_bytes();
        }
        rest = &rest[HEADER + len..];
    }
    false
}

pub(crate) fn conv_of(datagram: &[u8]) -> u32 {
    u32::from_le_bytes([datagram[0], datagram[1], datagram[2], datagram[3]])
}

/// Writes `conv` into every segment of a datagram (a client that sent conv 0 asks the
/// server for one, and learns it from the server's segments).
pub(crate) fn set_conv(datagram: &mut [u8], conv: u32) {
    let mut at = 0;
    while datagram.len() - at >= HEADER {
        datagram[at..at + 4].copy_from_slice(&conv.to_le_bytes());
        let len = conv_of(&datagram[at + 20..]) as usize;
        at = at.saturating_add(HEADER).saturating_add(len);
        if at > datagram.len() {
            break;
        }
    }
}

fn now_millis() -> u32 {
    // KCP clocks are u32 milliseconds that wrap; only differences matter.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u32)
}

/// Where a session's segments go: the shared socket, without waiting. A datagram the
/// socket cannot take now is lost like any other; KCP retransmits it.
struct Output {
    udp: Arc<UdpSocket>,
    peer: SocketAddr,
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.udp.try_send_to(buf, self.peer) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct State {
    kcp: Kcp<Output>,
    /// Set when the stream is dropped (then the session lingers until everything sent
    /// is acknowledged) or the session expired (reads then see EOF).
    closed: bool,
    last_input: Instant,
    reader: Option<Waker>,
    writer: Option<Waker>,
    flush_write: bool,
    /// Whether the client has used the conversation id we gave it. Until then its
    /// segments may still carry conv 0 (tokio_kcp clients ask the server for an id).
    conv_confirmed: bool,
}

impl State {
    fn window_full(&self) -> bool {
        let waiting = self.kcp.wait_snd();
        waiting >= usize::from(self.kcp.snd_wnd()) || waiting >= usize::from(self.kcp.rmt_wnd())
    }

    fn wake(&mut self) {
        if !self.window_full() {
            if let Some(w) = self.writer.take() {
                w.wake();
            }
        }
        if self.kcp.peeksize().is_ok() || self.closed {
            if let Some(w) = self.reader.take() {
                w.wake();
            }
        }
    }
}

/// One conversation, shared by its stream, its timer task and the receive loop.
struct Session {
    state: Mutex<State>,
    timer: Notify,
}

impl Session {
    fn input(&self, datagram: &[u8]) {
        let mut st = self.state.lock();
        if st.kcp.input(datagram).is_ok() {
            st.last_input = Instant::now();
            // Acks now rather than on the next tick (the writer may be lingering).
            let _ = st.kcp.flush_ack();
            st.wake();
        }
    }
}

/// The server side of one KCP conversation (`AsyncRead + AsyncWrite`). Dropping it
/// ends the session once the peer has acknowledged what was written.
pub(crate) struct ServerStream {
    session: Arc<Session>,
    /// A received segment larger than the caller's buffer, partly handed out.
    pending: Vec<u8>,
    pending_pos: usize,
}

impl std::fmt::Debug for ServerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStream").finish_non_exhaustive()
    }
}

impl ServerStream {
    /// Whether everything written has been acknowledged by the peer.
    pub(crate) fn all_acked(&self) -> bool {
        self.session.state.lock().kcp.wait_snd() == 0
    }

    /// Sends queued acknowledgements now.
    pub(crate) fn flush_acks(&self) {
        let _ = self.session.state.lock().kcp.flush_ack();
    }
}

impl Drop for ServerStream {
    fn drop(&mut self) {
        self.session.state.lock().closed = true;
        self.session.timer.notify_one();
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending_pos < this.pending.len() {
            let n = (this.pending.len() - this.pending_pos).min(buf.remaining());
            buf.put_slice(&this.pending[this.pending_pos..this.pending_pos + n]);
            this.pending_pos += n;
            return Poll::Ready(Ok(()));
        }
        let mut st = this.session.state.lock();
        loop {
            let Ok(size) = st.kcp.peeksize() else {
                if st.closed {
                    return Poll::Ready(Ok(())); // EOF
                }
                st.reader = Some(cx.waker().clone());
                return Poll::Pending;
            };
            if size == 0 {
                let _ = st.kcp.recv(&mut []);
                continue;
            }
            if size <= buf.remaining() {
                let n = st
                    .kcp
                    .recv(buf.initialize_unfilled())
                    .map_err(io::Error::other)?;
                buf.advance(n);
            } else {
                this.pending.resize(size, 0);
                let n = st.kcp.recv(&mut this.pending).map_err(io::Error::other)?;
                this.pending.truncate(n);
                let first = n.min(buf.remaining());
                buf.put_slice(&this.pending[..first]);
                this.pending_pos = first;
            }
            // Reading opened the receive window: let the timer tell the peer.
            this.session.timer.notify_one();
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.session.state.lock();
        if st.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if st.window_full() {
            st.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = st.kcp.send(buf).map_err(|e| match e {
            KcpError::IoError(e) => e,
            other => io::Error::other(other),
        })?;
        if st.flush_write || st.window_full() {
            let _ = st.kcp.flush();
        }
        drop(st);
        self.session.timer.notify_one();
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.session.state.lock().kcp.flush();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<Session>>>>;

/// Drives one session's KCP clock until it is closed and acknowledged, or has heard
/// nothing for `expire` (then twice that, if unacknowledged data keeps it open).
async fn run_timer(session: Arc<Session>, peer: SocketAddr, sessions: Sessions, expire: Duration) {
    loop {
        let next = {
            let mut st = session.state.lock();
            let idle = st.last_input.elapsed();
            // A dropped stream's session ends once its data is acknowledged, or when
            // KCP gives up on the peer (a spoofed source never acknowledges: do not
            // keep retransmitting at it).
            let done = st.closed && (st.kcp.wait_snd() == 0 || st.kcp.is_dead_link());
            if done || idle > expire * 2 {
                break;
            }
            if idle > expire && !st.closed {
                st.closed = true;
                st.wake();
            }
            let now = now_millis();
            let _ = st.kcp.update(now);
            st.wake();
            // `check` says in how many milliseconds (at most one interval) to update.
            let wait = st.kcp.check(now_millis()).max(1);
            Instant::now() + Duration::from_millis(u64::from(wait))
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = session.timer.notified() => {}
        }
    }
    {
        let mut st = session.state.lock();
        st.closed = true;
        st.wake();
    }
    let mut map = sessions.lock();
    if map.get(&peer).is_some_and(|s| Arc::ptr_eq(s, &session)) {
        map.remove(&peer);
    }
}

/// The receive loop: feeds datagrams to their sessions, opens sessions for admissible
/// first datagrams, and hands new streams to `accepted`. Ends when `accepted` closes.
pub(crate) async fn receive_loop(
    udp: Arc<UdpSocket>,
    config: KcpConfig,
    accepted: mpsc::Sender<(ServerStream, SocketAddr)>,
    stats: ListenerStats,
) {
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; 64 * 1024];
    receive(&udp, &config, &accepted, &stats, &sessions, &mut buf).await;
    // The listener is gone: its connections end with it (they share this socket).
    for session in sessions.lock().values() {
        let mut st = session.state.lock();
        st.closed = true;
        st.wake();
    }
}

async fn receive(
    udp: &Arc<UdpSocket>,
    config: &KcpConfig,
    accepted: &mpsc::Sender<(ServerStream, SocketAddr)>,
    stats: &ListenerStats,
    sessions: &Sessions,
    buf: &mut [u8],
) {
    loop {
        let (n, peer) = tokio::select! {
            r = udp.recv_from(buf) => match r {
                Ok(r) => r,
                // Some systems (Windows) report an ICMP error for an earlier send here:
                // a fact about one peer, not about the socket.
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {
                    debug!(error = %err, "gate: KCP peer unreachable");
                    continue;
                }
                Err(err) => {
                    warn!(error = %err, "gate: KCP recv failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = accepted.closed() => break,
        };
        let datagram = &mut buf[..n];
        if n < HEADER {
            continue;
        }
        let known = sessions.lock().get(&peer).cloned();
        if let Some(session) = known {
            let conv = conv_of(datagram);
            let (ours, confirmed) = {
                let mut st = session.state.lock();
                st.conv_confirmed |= conv == st.kcp.conv();
                (st.kcp.conv(), st.conv_confirmed)
            };
            if conv == ours || (conv == 0 && !confirmed) {
                // conv 0: a client still waiting to learn the conversation we gave it.
                set_conv(datagram, ours);
                session.input(datagram);
                continue;
            }
            if !opens_session(datagram) {
                continue;
            }
            // A new conversation from the same address: the old session ends.
            let mut st = session.state.lock();
            st.closed = true;
            st.wake();
        } else if !opens_session(datagram) {
            stats.add_refused();
            continue;
        }
        let mut conv = conv_of(datagram);
        while conv == 0 {
            conv = fastrand::u32(..);
        }
        set_conv(datagram, conv);
        let mut kcp = if config.stream {
            Kcp::new_stream(
                conv,
                Output {
                    udp: udp.clone(),
                    peer,
                },
            )
        } else {
            Kcp::new(
                conv,
                Output {
                    udp: udp.clone(),
                    peer,
                },
            )
        };
        config.apply_config(&mut kcp);
        let _ = kcp.update(now_millis());
        let session = Arc::new(Session {
            state: Mutex::new(State {
                kcp,
                closed: false,
                last_input: Instant::now(),
                reader: None,
                writer: None,
                flush_write: config.flush_write,
                conv_confirmed: false,
            }),
            timer: Notify::new(),
        });
        session.input(datagram);
        let stream = ServerStream {
            session: session.clone(),
            pending: Vec::new(),
            pending_pos: 0,
        };
        if accepted.try_send((stream, peer)).is_err() {
            // Backlog full: the stream's drop ends the session.
            stats.add_failure();
            continue;
        }
        sessions.lock().insert(peer, session.clone());
        tokio::spawn(run_timer(
            session,
            peer,
            sessions.clone(),
            config.session_expire,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(conv: u32, cmd: u8, sn: u32, data: &[u8]) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&conv.to_le_bytes());
        s.push(cmd);
        s.push(0); // frg
        s.extend_from_slice(&256u16.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes()); // ts
        s.extend_from_slice(&sn.to_le_bytes());
        s.extend_from_slice(&0u32.to_le_bytes()); // una
        s.extend_from_slice(&(data.len() as u32).to_le_bytes());
        s.extend_from_slice(data);
        s
    }

    #[test]
    fn only_the_start_of_a_conversation_opens_a_session() {
        let login = [&5u32.to_be_bytes()[..], b"hello"].concat();
        let two = [segment(0, 82, 0, &[]), segment(0, CMD_PUSH, 0, &login)].concat();
        let cases: [(&str, Vec<u8>, bool); 10] = [
            ("first data segment", segment(0, CMD_PUSH, 0, &login), true),
            ("with a conv", segment(9, CMD_PUSH, 0, &login), true),
            ("empty packet", segment(0, CMD_PUSH, 0, &[0; 4]), true),
            ("after another segment", two, true),
            ("bare header", segment(0, CMD_PUSH, 0, &[]), false),
            ("no length field", segment(0, CMD_PUSH, 0, &[0; 3]), false),
            ("later segment", segment(0, CMD_PUSH, 1, &login), false),
            ("ack", segment(0, 82, 0, &login), false),
            ("close marker", segment(0, CMD_PUSH, 0, &[0xff; 4]), false),
            (
                "truncated",
                segment(0, CMD_PUSH, 0, &login)[..30].to_vec(),
                false,
            ),
        ];
        for (what, datagram, want) in cases {
            assert_eq!(opens_session(&datagram), want, "{what}");
        }
        assert!(!opens_session(&[0; 10]));
    }
}
