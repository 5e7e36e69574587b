//! TLS for the TCP and WebSocket transports (rustls): the stream halves a transport
//! reads and writes, plain or encrypted.
//!
//! Plain connections keep tokio's owned TCP halves (no lock between reader and
//! writer, as before TLS existed); a TLS stream is one state machine, so its halves
//! share it through `tokio::io::split`. KCP has no TLS: see the module docs of
//! [`super`].

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::TlsStream;

use super::GateError;

/// The client side of gate TLS: which servers to trust, and under which name.
#[derive(Debug, Clone)]
pub struct TlsConnect {
    /// Trust anchors, protocol versions, optional client certificate.
    pub config: Arc<rustls::ClientConfig>,
    /// Name the server's certificate must carry. `None`: the host of a `wss://` URL,
    /// or the IP address connected to for TCP.
    pub server_name: Option<ServerName<'static>>,
}

impl TlsConnect {
    /// Trusts `config`'s roots; the server name comes from the address or URL.
    pub fn new(config: Arc<rustls::ClientConfig>) -> Self {
        Self {
            config,
            server_name: None,
        }
    }
}

/// Read half of a gate stream.
#[derive(Debug)]
pub(crate) enum GateRead {
    Plain(OwnedReadHalf),
    Tls(ReadHalf<TlsStream<TcpStream>>),
}

/// Write half of a gate stream.
#[derive(Debug)]
pub(crate) enum GateWrite {
    Plain(OwnedWriteHalf),
    Tls(WriteHalf<TlsStream<TcpStream>>),
}

/// Splits a plain TCP stream.
pub(crate) fn plain(stream: TcpStream) -> (GateRead, GateWrite) {
    let (r, w) = stream.into_split();
    (GateRead::Plain(r), GateWrite::Plain(w))
}

/// Splits an established TLS stream.
fn split_tls(stream: TlsStream<TcpStream>) -> (GateRead, GateWrite) {
    let (r, w) = tokio::io::split(stream);
    (GateRead::Tls(r), GateWrite::Tls(w))
}

/// Server side: the TLS handshake on an accepted socket (the caller bounds the time).
pub(crate) async fn accept(
    stream: TcpStream,
    config: &Arc<rustls::ServerConfig>,
) -> Result<(GateRead, GateWrite), GateError> {
    let tls = tokio_rustls::TlsAcceptor::from(config.clone())
        .accept(stream)
        .await
        .map_err(|e| GateError::Handshake(format!("TLS: {e}")))?;
    Ok(split_tls(TlsStream::Server(tls)))
}

/// Client side: the TLS handshake on a connected socket, checking the server's
/// certificate against `name` (default: the peer's IP address).
pub(crate) async fn connect(
    stream: TcpStream,
    tls: &TlsConnect,
    name: Option<ServerName<'static>>,
    peer: SocketAddr,
) -> Result<(GateRead, GateWrite), GateError> {
    let name = tls
        .server_name
        .clone()
        .or(name)
        .unwrap_or_else(|| ServerName::IpAddress(peer.ip().into()));
    let tls = tokio_rustls::TlsConnector::from(tls.config.clone())
        .connect(name, stream)
        .await
        .map_err(|e| GateError::Handshake(format!("TLS: {e}")))?;
    Ok(split_tls(TlsStream::Client(tls)))
}

// Shutdown of a write half: plain, FIN; TLS, a `close_notify` alert, then FIN.
crate::conn::delegate_io!(read GateRead);
crate::conn::delegate_io!(write GateWrite);
