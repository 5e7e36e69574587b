//! The accept side: the listener loop, and authenticating each inbound connection
//! before it is handed to its peer (frames) or to a stream session. Connections
//! still authenticating are capped (`admission.rs`): past the cap one is closed at
//! once, unread. With TLS configured, the TLS handshake comes first and counts as
//! part of authenticating; in mutual mode the client certificate must name the
//! logic address the hello claims. In the Go seed's dialect the hello is the Go
//! one (read with a cap), its `NetAddr` must equal the member's address string,
//! and a refusal closes the connection unanswered, as the Go acceptor does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::admission::{Admit, Pending};
use super::throttle::Throttle;
use super::{Dialect, NodeInner};
use crate::conn::Conn;
use crate::handshake::{self, AcceptorId, ConnKind, HandshakeError, Refusal};
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
async fn accept_one(inner: Arc<NodeInner>, tcp: TcpStream, from: SocketAddr, ticket: Ticket) {
    let Some(run) = inner.running() else { return };
    let me = AcceptorId {
        logic: run.local,
        incarnation: inner.incarnation,
    };
    let timeout = inner.config.handshake_timeout;
    let secrets = inner.config.secrets();
    let dialect = &inner.config.dialect;
    dialect.prepare(&tcp);
    let authenticate = async {
        let mut stream = match inner.config.link_tls() {
            Some(tls) => tokio::time::timeout(timeout, tls.accept(tcp))
                .await
                .map_err(|_| HandshakeError::Timeout)?
                .map_err(HandshakeError::Tls)?,
            None => Conn::Plain(tcp),
        };
        let claim = match dialect {
            Dialect::Native => {
                let pending = handshake::accept_any(&mut stream, &secrets, me, timeout).await?;
                Claim {
                    hello: pending.hello,
                    net_addr: None,
                }
            }
            #[cfg(feature = "go-compat")]
            Dialect::GoSeed(go) => {
                let read = crate::gocompat::handshake::read_hello(&mut stream, &go.key);
                let hello = tokio::time::timeout(timeout, read)
                    .await
                    .map_err(|_| HandshakeError::Timeout)??;
                Claim::from_go(hello)
            }
        };
        Ok::<_, HandshakeError>((stream, claim))
    };
    let accepted = tokio::select! {
        biased;
        _ = ticket.evicted.cancelled() => {
            tracing::debug!(%from, "inbound handshake evicted: too many pending");
            return;
        }
        accepted = authenticate => accepted,
    };
    drop(ticket);
    let (mut stream, claim) = match accepted {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%from, error = %e, "inbound handshake failed");
            return;
        }
    };
    let hello = claim.hello;
    let verdict = check_certificate(&inner, &stream, &hello)
        .and_then(|()| check_hello(&inner, &hello, claim.net_addr.as_deref(), from));
    let verdict = verdict.and_then(|net| match hello.kind {
        ConnKind::Frames => {
            let peer = inner.peer_or_spawn(hello.logic, net);
            peer.offer_inbound(hello.incarnation, run.local)
                .map(|()| Some(peer))
        }
        ConnKind::Streams => Ok(None),
    });
    let answered = match dialect {
        Dialect::Native => {
            handshake::answer(&mut stream, verdict.as_ref().map(|_| ()).map_err(|r| *r)).await
        }
        // A refusal is the close below, unanswered.
        #[cfg(feature = "go-compat")]
        Dialect::GoSeed(_) => match &verdict {
            Ok(_) => crate::gocompat::handshake::accept(&mut stream).await,
            Err(_) => Ok(()),
        },
    };
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

/// What an inbound dialer claims, in either dialect.
struct Claim {
    hello: handshake::Hello,
    /// The Go dialer's `NetAddr`, to compare as a string (the seed's rule).
    net_addr: Option<String>,
}

#[cfg(feature = "go-compat")]
impl Claim {
    fn from_go(go: crate::gocompat::GoHello) -> Self {
        // An unparsable NetAddr cannot equal a member's address: it fails the check.
        let listen = go
            .net_addr
            .parse()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        Self {
            hello: handshake::Hello {
                kind: if go.is_stream {
                    ConnKind::Streams
                } else {
                    ConnKind::Frames
                },
                logic: go.logic,
                incarnation: super::dial::GO_INCARNATION,
                listen,
            },
            net_addr: Some(go.net_addr),
        }
    }
}

/// In mutual TLS, checks that the client certificate names the claimed address.
fn check_certificate(
    inner: &NodeInner,
    stream: &Conn,
    hello: &handshake::Hello,
) -> Result<(), Refusal> {
    let Some(tls) = inner.config.link_tls() else {
        return Ok(());
    };
    if !tls.is_mutual() {
        return Ok(());
    }
    let leaf = stream.peer_certificates().and_then(|c| c.first());
    if leaf.is_some_and(|leaf| crate::tls::cert_names(leaf, hello.logic)) {
        return Ok(());
    }
    tracing::warn!(node = %hello.logic, "inbound connection's certificate does not name the claimed address");
    Err(Refusal::BadCertificate)
}

/// Checks an authenticated hello against membership; returns the member's address.
/// A Go dialer's `net_addr` must equal the member's address string exactly (the
/// seed's rule); a native one's listen address and source IP must match it.
fn check_hello(
    inner: &NodeInner,
    hello: &handshake::Hello,
    net_addr: Option<&str>,
    from: SocketAddr,
) -> Result<SocketAddr, Refusal> {
    if inner.stopping.load(Ordering::Acquire) {
        return Err(Refusal::Stopping);
    }
    let view = inner.view.read();
    let member = view.get(hello.logic).ok_or(Refusal::UnknownNode)?;
    let matches = match net_addr {
        Some(claimed) => member.addr.net.to_string() == claimed,
        None => member.addr.net == hello.listen && member.addr.net.ip() == from.ip(),
    };
    if !matches {
        tracing::warn!(node = %hello.logic, claimed = %hello.listen, %from, listed = %member.addr.net,
            "inbound connection does not match membership");
        return Err(Refusal::AddrMismatch);
    }
    Ok(member.addr.net)
}
