//! The accept side: the listener loop, and authenticating each inbound connection
//! before it is handed to its peer (frames) or to a stream session. Connections
//! still authenticating are capped (`admission.rs`): past the cap one is closed at
//! once, unread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::NodeInner;
use super::admission::{Admit, Pending};
use super::throttle::Throttle;
use crate::handshake::{self, AcceptorId, ConnKind, Refusal};
use crate::peer::Inbound;

/// The node's pending handshakes, and the throttle of its warnings about shedding.
#[derive(Debug)]
pub(super) struct Admission {
    pending: Pending<CancellationToken>,
    warn: Throttle,
}

impl Admission {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            pending: Pending::new(cap),
            warn: Throttle::new(Duration::from_secs(1)),
        }
    }
}

/// A slot among the pending handshakes; frees it when dropped.
struct Ticket {
    inner: Arc<NodeInner>,
    id: u64,
    /// Cancelled when a newcomer evicts this handshake.
    evicted: CancellationToken,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.inner.admission.lock().pending.done(self.id);
    }
}

/// Admits a new connection among the pending handshakes, or sheds it (`None`).
fn admit(inner: &Arc<NodeInner>) -> Option<Ticket> {
    let evicted = CancellationToken::new();
    let now = Instant::now();
    let mut adm = inner.admission.lock();
    let (ticket, shed) = match adm.pending.admit(now, evicted.clone()) {
        Admit::Admitted { id, evicted: old } => {
            let shed = old.map(|old| old.cancel()).is_some();
            let ticket = Ticket {
                inner: inner.clone(),
                id,
                evicted,
            };
            (Some(ticket), shed)
        }
        Admit::Shed => (None, true),
    };
    if shed {
        inner.counters.handshake_shed();
        if let Some(shed) = adm.warn.hit(now) {
            tracing::warn!(
                shed,
                cap = adm.pending.cap(),
                "too many inbound handshakes pending: closing unauthenticated connections"
            );
        }
    }
    ticket
}

/// Accepts connections until stop begins.
pub(super) async fn accept_loop(inner: Arc<NodeInner>, listener: TcpListener) {
    loop {
        tokio::select! {
            biased;
            _ = inner.accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                // Shed: dropped unread.
                Ok((stream, from)) => if let Some(ticket) = admit(&inner) {
                    let _ = stream.set_nodelay(true);
                    inner.spawn(accept_one(inner.clone(), stream, from, ticket));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Authenticates one inbound connection and hands it to its peer. Only the wait
/// for the dialer's proof can be evicted; the verdict and the hand-over cannot.
async fn accept_one(
    inner: Arc<NodeInner>,
    mut stream: TcpStream,
    from: SocketAddr,
    ticket: Ticket,
) {
    let Some(run) = inner.running() else { return };
    let me = AcceptorId {
        logic: run.local,
        incarnation: inner.incarnation,
    };
    let timeout = inner.config.handshake_timeout;
    let secret = inner.config.secret.expose();
    let accepted = tokio::select! {
        biased;
        _ = ticket.evicted.cancelled() => {
            tracing::debug!(%from, "inbound handshake evicted: too many pending");
            return;
        }
        accepted = handshake::accept(&mut stream, secret, me, timeout) => accepted,
    };
    drop(ticket);
    let pending = match accepted {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%from, error = %e, "inbound handshake failed");
            return;
        }
    };
    let hello = pending.hello;
    let verdict = check_hello(&inner, &hello, from);
    let verdict = verdict.and_then(|net| match hello.kind {
        ConnKind::Frames => {
            let peer = inner.peer_or_spawn(hello.logic, net);
            peer.offer_inbound(hello.incarnation, run.local)
                .map(|()| Some(peer))
        }
        ConnKind::Streams => Ok(None),
    });
    let answered =
        handshake::answer(&mut stream, verdict.as_ref().map(|_| ()).map_err(|r| *r)).await;
    match (verdict, answered) {
        (Ok(Some(peer)), Ok(())) => peer.adopt(Ok(Inbound {
            stream,
            incarnation: hello.incarnation,
        })),
        (Ok(None), Ok(())) => crate::stream::accept_session(&inner, hello.logic, stream),
        (Ok(None), Err(e)) => {
            tracing::debug!(%from, error = %e, "inbound stream handshake lost at the verdict")
        }
        (Ok(Some(peer)), Err(e)) => {
            tracing::debug!(%from, error = %e, "inbound handshake lost at the verdict");
            peer.adopt(Err(hello.incarnation));
        }
        (Err(refusal), _) => {
            tracing::debug!(%from, node = %hello.logic, %refusal, "inbound connection refused");
        }
    }
}

/// Checks an authenticated hello against membership; returns the member's address.
fn check_hello(
    inner: &NodeInner,
    hello: &handshake::Hello,
    from: SocketAddr,
) -> Result<SocketAddr, Refusal> {
    if inner.stopping.load(Ordering::Acquire) {
        return Err(Refusal::Stopping);
    }
    let view = inner.view.read();
    let member = view.get(hello.logic).ok_or(Refusal::UnknownNode)?;
    if member.addr.net != hello.listen || member.addr.net.ip() != from.ip() {
        tracing::warn!(node = %hello.logic, claimed = %hello.listen, %from, listed = %member.addr.net,
            "inbound connection does not match membership");
        return Err(Refusal::AddrMismatch);
    }
    Ok(member.addr.net)
}
