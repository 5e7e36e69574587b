//! Authenticated connection setup between nodes.
//!
//! Both sides prove they know the cluster secret with HMAC-SHA256 over fresh nonces
//! and everything the dialer claims (logic address, listen address, connection kind,
//! process incarnation), so a replayed or altered hello fails. The acceptor also
//! checks the claim against membership. No frame flows before the acceptor's verdict,
//! which lets it refuse a duplicate connection without losing anything.
//!
//! ```text
//! dialer  -> hello     : magic "CGO1" | kind u8 | logic u32 | incarnation u64 | nonce [16] | listen (u16 len + utf-8)
//! acceptor-> challenge : logic u32 | incarnation u64 | nonce [16] | mac [32] × k  (proves the acceptor)
//! dialer  -> auth      : mac [32]                                                  (proves the dialer)
//! acceptor-> verdict   : u8 (0 accepted, else a Refusal)
//! ```
//! Every message is `u16 len | body`; bodies are at most [`MAX_MESSAGE`] bytes.
//!
//! **Secret rotation.** Each side holds a list of secrets, current first (at most
//! [`MAX_SECRETS`]). The acceptor sends one challenge MAC per secret it holds, in
//! its order; the dialer proves with the first of its own secrets that matches one
//! of them, and the acceptor accepts a proof under any of its secrets. So nodes
//! with `[new, old]` and `[old]` interoperate, `[new]` and `[old]` do not. With one
//! secret the challenge is byte for byte the one of older versions.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::addr::LogicAddr;

const MAGIC: &[u8; 4] = b"CGO1";
/// Largest handshake message body.
pub const MAX_MESSAGE: usize = 512;
pub(crate) const NONCE: usize = 16;
const MAC: usize = 32;
/// Most secrets one side uses (the challenge carries a MAC for each).
pub const MAX_SECRETS: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// What a connection will carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnKind {
    /// Frames: messages and RPC.
    Frames = 1,
    /// Multiplexed byte streams.
    Streams = 2,
}

/// Why an acceptor refused a dialer that proved the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[repr(u8)]
pub enum Refusal {
    /// Both sides dialed at once and the other connection won; use that one.
    #[error("duplicate connection")]
    Duplicate = 1,
    /// The claimed logic address is not in the acceptor's membership.
    #[error("unknown node")]
    UnknownNode = 2,
    /// The claimed listen address or source IP does not match membership.
    #[error("address mismatch")]
    AddrMismatch = 3,
    /// The acceptor is stopping.
    #[error("stopping")]
    Stopping = 4,
    /// The acceptor does not serve this connection kind.
    #[error("unsupported connection kind")]
    Unsupported = 5,
    /// The TLS client certificate does not name the claimed logic address.
    #[error("certificate does not match the claimed address")]
    BadCertificate = 6,
}

impl Refusal {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::Duplicate,
            2 => Self::UnknownNode,
            3 => Self::AddrMismatch,
            4 => Self::Stopping,
            5 => Self::Unsupported,
            6 => Self::BadCertificate,
            _ => return None,
        })
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The other side does not know the secret, or altered the exchange.
    #[error("authentication failed")]
    BadMac,
    /// The bytes are not a handshake.
    #[error("malformed handshake: {0}")]
    Malformed(&'static str),
    /// The acceptor refused.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The acceptor is not the node we meant to reach.
    #[error("expected {expected}, reached {actual}")]
    WrongPeer {
        /// Who we dialed.
        expected: LogicAddr,
        /// Who answered.
        actual: LogicAddr,
    },
    /// Too slow.
    #[error("handshake timed out")]
    Timeout,
    /// The acceptor closed the connection without an answer: how a Go seed node
    /// refuses (unknown node, address mismatch, duplicate connection), or a node of
    /// the other dialect. The acceptor is alive.
    #[error("closed by the acceptor without an answer")]
    Closed,
    /// The TLS handshake failed (bad or missing certificate, wrong peer, not TLS).
    #[error("tls: {0}")]
    Tls(std::io::Error),
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// What a dialer claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Connection kind.
    pub kind: ConnKind,
    /// Dialer's logic address.
    pub logic: LogicAddr,
    /// Dialer's process incarnation (random per start): tells a restarted peer
    /// from a second connection of the same process.
    pub incarnation: u64,
    /// Dialer's listen address.
    pub listen: SocketAddr,
}

/// The acceptor's identity, as the dialer learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptorId {
    /// Acceptor's logic address.
    pub logic: LogicAddr,
    /// Acceptor's incarnation.
    pub incarnation: u64,
}

/// A fresh nonce from the OS CSPRNG: an attacker who saw earlier nonces must not be
/// able to predict the next one (a predictable challenge lets a recorded proof be
/// replayed).
fn nonce() -> Result<[u8; NONCE], HandshakeError> {
    let mut n = [0u8; NONCE];
    getrandom::fill(&mut n)
        .map_err(|e| HandshakeError::Io(std::io::Error::other(e.to_string())))?;
    Ok(n)
}

pub(crate) fn encode_hello(h: &Hello, nonce: &[u8; NONCE]) -> BytesMut {
    let listen = h.listen.to_string();
    let mut b = BytesMut::with_capacity(64);
    b.put_slice(MAGIC);
    b.put_u8(h.kind as u8);
    b.put_u32(h.logic.raw());
    b.put_u64(h.incarnation);
    b.put_slice(nonce);
    b.put_u16(listen.len() as u16);
    b.put_slice(listen.as_bytes());
    b
}

pub(crate) fn decode_hello(mut b: &[u8]) -> Result<(Hello, [u8; NONCE]), HandshakeError> {
    if b.len() < 4 + 1 + 4 + 8 + NONCE + 2 || &b[..4] != MAGIC {
        return Err(HandshakeError::Malformed("bad hello"));
    }
    b.advance(4);
    let kind = match b.get_u8() {
        1 => ConnKind::Frames,
        2 => ConnKind::Streams,
        _ => return Err(HandshakeError::Malformed("bad connection kind")),
    };
    let logic = LogicAddr::from_raw(b.get_u32());
    let incarnation = b.get_u64();
    let mut n = [0u8; NONCE];
    b.copy_to_slice(&mut n);
    let len = b.get_u16() as usize;
    if b.len() != len {
        return Err(HandshakeError::Malformed("bad listen address length"));
    }
    let listen = std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(HandshakeError::Malformed("bad listen address"))?;
    Ok((
        Hello {
            kind,
            logic,
            incarnation,
            listen,
        },
        n,
    ))
}

/// HMAC over the role, the hello, the acceptor's identity and both nonces.
fn keyed(
    secret: &[u8],
    role: &[u8],
    hello: &[u8],
    acceptor: &AcceptorId,
    nonces: [&[u8]; 2],
) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("hmac takes keys of any length");
    m.update(role);
    m.update(hello);
    m.update(&acceptor.logic.raw().to_be_bytes());
    m.update(&acceptor.incarnation.to_be_bytes());
    m.update(nonces[0]);
    m.update(nonces[1]);
    m
}

fn mac(
    secret: &[u8],
    role: &[u8],
    hello: &[u8],
    acceptor: &AcceptorId,
    nonces: [&[u8]; 2],
) -> [u8; MAC] {
    keyed(secret, role, hello, acceptor, nonces)
        .finalize()
        .into_bytes()
        .into()
}

/// Constant-time check of `tag`.
fn verify(
    secret: &[u8],
    role: &[u8],
    hello: &[u8],
    acceptor: &AcceptorId,
    nonces: [&[u8]; 2],
    tag: &[u8],
) -> bool {
    keyed(secret, role, hello, acceptor, nonces)
        .verify_slice(tag)
        .is_ok()
}

async fn write_msg<S: AsyncWrite + Unpin>(s: &mut S, body: &[u8]) -> Result<(), HandshakeError> {
    let mut b = BytesMut::with_capacity(2 + body.len());
    b.put_u16(body.len() as u16);
    b.put_slice(body);
    s.write_all(&b).await?;
    // Over TLS the message may sit in the TLS buffer until flushed.
    s.flush().await?;
    Ok(())
}

async fn read_msg<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, HandshakeError> {
    let len = s.read_u16().await? as usize;
    if len > MAX_MESSAGE {
        return Err(HandshakeError::Malformed("message too long"));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok(body)
}

/// Dials side: proves the secret, checks the acceptor is `expected`, and returns the
/// acceptor's identity once it accepted.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &[u8],
    hello: &Hello,
    expected: LogicAddr,
    timeout: Duration,
) -> Result<AcceptorId, HandshakeError> {
    dial_any(stream, &[secret], hello, expected, timeout).await
}

/// [`dial`] for a node holding several secrets (current first): proves with the
/// first one the acceptor also holds.
pub async fn dial_any<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secrets: &[&[u8]],
    hello: &Hello,
    expected: LogicAddr,
    timeout: Duration,
) -> Result<AcceptorId, HandshakeError> {
    tokio::time::timeout(timeout, dial_inner(stream, secrets, hello, expected))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

pub(crate) async fn dial_inner<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secrets: &[&[u8]],
    hello: &Hello,
    expected: LogicAddr,
) -> Result<AcceptorId, HandshakeError> {
    let my_nonce = nonce()?;
    let hello_bytes = encode_hello(hello, &my_nonce);
    write_msg(stream, &hello_bytes).await?;

    let challenge = read_msg(stream).await?;
    let (acceptor, their_nonce, their_macs) = decode_challenge(&challenge)?;
    // The first of my secrets (current first) under which the acceptor proved itself.
    let secret = secrets
        .iter()
        .take(MAX_SECRETS)
        .find(|secret| {
            their_macs.chunks_exact(MAC).any(|their_mac| {
                verify(
                    secret,
                    b"acceptor",
                    &hello_bytes,
                    &acceptor,
                    [&my_nonce, their_nonce],
                    their_mac,
                )
            })
        })
        .ok_or(HandshakeError::BadMac)?;
    if acceptor.logic != expected {
        return Err(HandshakeError::WrongPeer {
            expected,
            actual: acceptor.logic,
        });
    }
    let tag = mac(
        secret,
        b"dialer",
        &hello_bytes,
        &acceptor,
        [their_nonce, &my_nonce],
    );
    write_msg(stream, &tag).await?;

    let verdict = read_msg(stream).await?;
    decode_verdict(&verdict)?;
    Ok(acceptor)
}

/// Splits the acceptor's challenge into its identity, its nonce and its MACs (one per
/// secret it holds).
pub(crate) fn decode_challenge(mut c: &[u8]) -> Result<(AcceptorId, &[u8], &[u8]), HandshakeError> {
    // One MAC per secret the acceptor holds (rotation), 1 to MAX_SECRETS of them.
    let macs = c.len().saturating_sub(4 + 8 + NONCE);
    if c.len() < 4 + 8 + NONCE + MAC || macs % MAC != 0 || macs / MAC > MAX_SECRETS {
        return Err(HandshakeError::Malformed("bad challenge"));
    }
    let acceptor = AcceptorId {
        logic: LogicAddr::from_raw(c.get_u32()),
        incarnation: c.get_u64(),
    };
    Ok((acceptor, &c[..NONCE], &c[NONCE..]))
}

/// Reads the acceptor's verdict: `Ok` if it accepted.
pub(crate) fn decode_verdict(v: &[u8]) -> Result<(), HandshakeError> {
    match v {
        [0] => Ok(()),
        [code] => Err(HandshakeError::Refused(
            Refusal::from_u8(*code).ok_or(HandshakeError::Malformed("bad verdict"))?,
        )),
        _ => Err(HandshakeError::Malformed("bad verdict")),
    }
}

/// A dialer that proved the secret, waiting for the acceptor's verdict.
#[derive(Debug)]
pub struct Pending {
    /// What the dialer claimed (authenticated).
    pub hello: Hello,
}

/// Accepting side, step one: reads the hello, proves the acceptor, checks the
/// dialer's proof. The caller then checks membership and calls [`answer`].
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &[u8],
    me: AcceptorId,
    timeout: Duration,
) -> Result<Pending, HandshakeError> {
    accept_any(stream, &[secret], me, timeout).await
}

/// [`accept`] for a node holding several secrets (current first): proves itself
/// under each, and accepts a proof under any.
pub async fn accept_any<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secrets: &[&[u8]],
    me: AcceptorId,
    timeout: Duration,
) -> Result<Pending, HandshakeError> {
    tokio::time::timeout(timeout, accept_inner(stream, secrets, me))
        .await
        .map_err(|_| HandshakeError::Timeout)?
}

pub(crate) async fn accept_inner<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secrets: &[&[u8]],
    me: AcceptorId,
) -> Result<Pending, HandshakeError> {
    let hello_bytes = read_msg(stream).await?;
    let (hello, their_nonce) = decode_hello(&hello_bytes)?;
    let my_nonce = nonce()?;
    let secrets = &secrets[..secrets.len().min(MAX_SECRETS)];
    let mut challenge = BytesMut::with_capacity(4 + 8 + NONCE + MAC * secrets.len());
    challenge.put_u32(me.logic.raw());
    challenge.put_u64(me.incarnation);
    challenge.put_slice(&my_nonce);
    for secret in secrets {
        let tag = mac(
            secret,
            b"acceptor",
            &hello_bytes,
            &me,
            [&their_nonce, &my_nonce],
        );
        challenge.put_slice(&tag);
    }
    write_msg(stream, &challenge).await?;

    let proof = read_msg(stream).await?;
    let proved = secrets.iter().any(|secret| {
        verify(
            secret,
            b"dialer",
            &hello_bytes,
            &me,
            [&my_nonce, &their_nonce],
            &proof,
        )
    });
    if !proved {
        return Err(HandshakeError::BadMac);
    }
    Ok(Pending { hello })
}

/// Accepting side, step two: sends the verdict.
pub async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    verdict: Result<(), Refusal>,
) -> Result<(), HandshakeError> {
    let code = match verdict {
        Ok(()) => 0,
        Err(r) => r as u8,
    };
    write_msg(stream, &[code]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            kind: ConnKind::Frames,
            logic: "1.1.1".parse().unwrap(),
            incarnation: 7,
            listen: "127.0.0.1:4000".parse().unwrap(),
        }
    }

    fn me() -> AcceptorId {
        AcceptorId {
            logic: "1.2.1".parse().unwrap(),
            incarnation: 9,
        }
    }

    const T: Duration = Duration::from_secs(1);

    #[test]
    fn nonces_do_not_repeat() {
        let nonces: std::collections::HashSet<_> = (0..1000).map(|_| nonce().unwrap()).collect();
        assert_eq!(nonces.len(), 1000);
    }

    #[tokio::test]
    async fn accepted() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move {
            let p = accept(&mut b, b"s3cret", me(), T).await.unwrap();
            answer(&mut b, Ok(())).await.unwrap();
            p.hello
        });
        let id = dial(&mut a, b"s3cret", &hello(), me().logic, T)
            .await
            .unwrap();
        assert_eq!(id, me());
        assert_eq!(server.await.unwrap(), hello());
    }

    #[tokio::test]
    async fn wrong_secret_fails_both_sides() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let server = tokio::spawn(async move { accept(&mut b, b"other", me(), T).await });
        let err = dial(&mut a, b"s3cret", &hello(), me().logic, T)
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::BadMac), "{err}");
        drop(a);
        assert!(server.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn refused_and_wrong_peer() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            accept(&mut b, b"k", me(), T).await.unwrap();
            answer(&mut b, Err(Refusal::Duplicate)).await.unwrap();
        });
        let err = dial(&mut a, b"k", &hello(), me().logic, T)
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Refused(Refusal::Duplicate)));

        let (mut a, mut b) = tokio::io::duplex(1024);
        tokio::spawn(async move { accept(&mut b, b"k", me(), T).await });
        let err = dial(&mut a, b"k", &hello(), "1.9.9".parse().unwrap(), T)
            .await
            .unwrap_err();
        assert!(matches!(err, HandshakeError::WrongPeer { .. }));
    }

    #[tokio::test]
    async fn garbage_and_silence() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0, 5, b'H', b'T', b'T', b'P', b'/'])
            .await
            .unwrap();
        let err = accept(&mut b, b"k", me(), T).await.unwrap_err();
        assert!(matches!(err, HandshakeError::Malformed(_)));

        let (mut a, mut b) = tokio::io::duplex(1024);
        a.write_all(&[0xff, 0xff]).await.unwrap();
        assert!(matches!(
            accept(&mut b, b"k", me(), T).await,
            Err(HandshakeError::Malformed("message too long"))
        ));

        tokio::time::pause();
        let (_a, mut b) = tokio::io::duplex(1024);
        assert!(matches!(
            accept(&mut b, b"k", me(), T).await,
            Err(HandshakeError::Timeout)
        ));
    }

    #[tokio::test]
    async fn rotation_needs_one_shared_secret() {
        const NEW: &[u8] = b"new";
        const OLD: &[u8] = b"old";
        const OTHER: &[u8] = b"other";
        type Secrets = &'static [&'static [u8]];
        let cases: &[(Secrets, Secrets, bool)] = &[
            (&[NEW, OLD], &[OLD], true),
            (&[OLD], &[NEW, OLD], true),
            (&[NEW, OLD], &[NEW, OLD], true),
            (&[OLD, NEW], &[NEW, OLD], true),
            (&[NEW], &[OLD], false),
            (&[OLD], &[NEW], false),
            (&[NEW, OTHER], &[OLD], false),
        ];
        for &(dialer, acceptor, ok) in cases {
            let (mut a, mut b) = tokio::io::duplex(1024);
            let acceptor = acceptor.to_vec();
            let server = tokio::spawn(async move {
                let r = accept_any(&mut b, &acceptor, me(), T).await;
                if r.is_ok() {
                    answer(&mut b, Ok(())).await.unwrap();
                }
                r.is_ok()
            });
            let dialed = dial_any(&mut a, dialer, &hello(), me().logic, T).await;
            drop(a);
            let accepted = server.await.unwrap();
            assert_eq!(dialed.is_ok(), ok, "{dialed:?}");
            assert_eq!(accepted, ok);
        }
    }
}
