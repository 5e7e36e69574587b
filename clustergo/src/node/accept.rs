//! The accept side: the listener loop, and authenticating each inbound connection
//! before it is handed to its peer (frames) or to a stream session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use super::NodeInner;
use crate::handshake::{self, AcceptorId, ConnKind, Refusal};
use crate::peer::Inbound;

/// Accepts connections until stop begins.
pub(super) async fn accept_loop(inner: Arc<NodeInner>, listener: TcpListener) {
    loop {
        tokio::select! {
            biased;
            _ = inner.accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let _ = stream.set_nodelay(true);
                    inner.spawn(accept_one(inner.clone(), stream, from));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Authenticates one inbound connection and hands it to its peer.
async fn accept_one(inner: Arc<NodeInner>, mut stream: TcpStream, from: SocketAddr) {
    let Some(run) = inner.running() else { return };
    let me = AcceptorId {
        logic: run.local,
        incarnation: inner.incarnation,
    };
    let timeout = inner.config.handshake_timeout;
    let secret = inner.config.secret.expose();
    let pending = match handshake::accept(&mut stream, secret, me, timeout).await {
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
