//! How a discovery connection proves the cluster secret: the node handshake
//! ([`crate::handshake`]), run before the first frame, with a reserved identity.
//!
//! Both sides claim [`DISCOVERY_ID`] (`0.0.0`, type 0, which no node can have). The
//! handshake's MACs cover the claimed identities, so an exchange with the discovery
//! server cannot be relayed to a node or the other way round: a node dialing the
//! discovery port learns it reached `0.0.0` instead of the peer it wanted, and the
//! server refuses a hello that claims a node's address.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::addr::LogicAddr;
use crate::handshake::{self, AcceptorId, ConnKind, HandshakeError, Hello, Refusal};
use crate::node::Secret;

/// The identity both ends of a discovery connection claim in the handshake.
pub const DISCOVERY_ID: LogicAddr = LogicAddr::from_raw(0);

/// The secret of a default [`Config`](crate::Config): `CLUSTERGO_SECRET`, else the
/// development secret. So a node and its discovery client or server agree without set-up.
pub(crate) fn default_secret() -> Secret {
    crate::Config::default().secret
}

/// Client side: proves the secret and checks that the server knows it too.
/// `secrets`: current first, then older ones still accepted (rotation).
pub(crate) async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secrets: &[&[u8]],
    timeout: Duration,
) -> Result<(), HandshakeError> {
    let hello = Hello {
        kind: ConnKind::Frames,
        logic: DISCOVERY_ID,
        incarnation: 0,
        listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
    };
    handshake::dial_any(stream, secrets, &hello, DISCOVERY_ID, timeout)
        .await
        .map(drop)
}

/// Server side: the client must prove the secret within `timeout` and claim
/// [`DISCOVERY_ID`].
pub(crate) async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secrets: &[&[u8]],
    timeout: Duration,
) -> Result<(), HandshakeError> {
    let me = AcceptorId {
        logic: DISCOVERY_ID,
        incarnation: 0,
    };
    let pending = handshake::accept_any(stream, secrets, me, timeout).await?;
    let verdict = if pending.hello.logic == DISCOVERY_ID {
        Ok(())
    } else {
        Err(Refusal::Unsupported)
    };
    let answered = tokio::time::timeout(timeout, handshake::answer(stream, verdict))
        .await
        .map_err(|_| HandshakeError::Timeout)?;
    answered?;
    verdict.map_err(HandshakeError::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn same_secret_passes_and_a_wrong_one_fails_both_sides() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move { server(&mut b, &[b"k"], T).await });
        client(&mut a, &[b"k"], T).await.unwrap();
        srv.await.unwrap().unwrap();

        let (mut a, mut b) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move { server(&mut b, &[b"other"], T).await });
        let err = client(&mut a, &[b"k"], T).await.unwrap_err();
        assert!(matches!(err, HandshakeError::BadMac), "{err}");
        drop(a);
        assert!(srv.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_node_hello_is_refused_and_a_node_learns_it_reached_no_node() {
        let node_hello = Hello {
            kind: ConnKind::Frames,
            logic: "1.1.1".parse().unwrap(),
            incarnation: 5,
            listen: "127.0.0.1:4000".parse().unwrap(),
        };
        // A node dialing the discovery port for its peer 1.2.1.
        let (mut a, mut b) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move { server(&mut b, &[b"k"], T).await });
        let err = handshake::dial(&mut a, b"k", &node_hello, "1.2.1".parse().unwrap(), T)
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::WrongPeer { .. }), "{err}");
        drop(a);
        assert!(srv.await.unwrap().is_err());

        // A node hello that expects the discovery identity is still refused.
        let (mut a, mut b) = tokio::io::duplex(1024);
        let srv = tokio::spawn(async move { server(&mut b, &[b"k"], T).await });
        let err = handshake::dial(&mut a, b"k", &node_hello, DISCOVERY_ID, T)
            .await
            .unwrap_err();
        assert!(
            matches!(err, HandshakeError::Refused(Refusal::Unsupported)),
            "{err}"
        );
        assert!(srv.await.unwrap().is_err());
    }

    /// Rotation: a server holding `[new, old]` admits clients proving either; a
    /// client holding only `new` is refused by a server that knows only `old`.
    #[tokio::test]
    async fn a_server_rolling_its_secret_admits_both() {
        type Secrets = &'static [&'static str];
        let cases: [(Secrets, Secrets, bool); 4] = [
            (&["new", "old"], &["old"], true),
            (&["new", "old"], &["new"], true),
            (&["old"], &["new", "old"], true),
            (&["old"], &["new"], false),
        ];
        for (server_secrets, client_secrets, ok) in cases {
            let (mut a, mut b) = tokio::io::duplex(1024);
            let srv_secrets: Vec<&'static [u8]> =
                server_secrets.iter().map(|s| s.as_bytes()).collect();
            let srv = tokio::spawn(async move { server(&mut b, &srv_secrets, T).await });
            let mine: Vec<&[u8]> = client_secrets.iter().map(|s| s.as_bytes()).collect();
            let got = client(&mut a, &mine, T).await;
            drop(a);
            let served = srv.await.unwrap();
            assert_eq!(
                (got.is_ok(), served.is_ok()),
                (ok, ok),
                "server {server_secrets:?}, client {client_secrets:?}"
            );
        }
    }
}
