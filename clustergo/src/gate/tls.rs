//! TLS for the TCP and WebSocket transports (rustls): the stream halves a transport
//! reads and writes, plain or encrypted.
//!
//! Plain connections keep tokio's owned TCP halves (no lock between reader and
//! writer, as before TLS existed); a TLS stream is one state machine, so its halves
//! share it through `tokio::io::split`. KCP has no TLS: see the module docs of
//! [`super`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
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

impl AsyncRead for GateRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GateRead::Plain(r) => Pin::new(r).poll_read(cx, buf),
            GateRead::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for GateWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            GateWrite::Plain(w) => Pin::new(w).poll_write(cx, buf),
            GateWrite::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GateWrite::Plain(w) => Pin::new(w).poll_flush(cx),
            GateWrite::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    /// Plain: FIN. TLS: a `close_notify` alert, then FIN.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            GateWrite::Plain(w) => Pin::new(w).poll_shutdown(cx),
            GateWrite::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            GateWrite::Plain(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            GateWrite::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            GateWrite::Plain(w) => w.is_write_vectored(),
            GateWrite::Tls(w) => w.is_write_vectored(),
        }
    }
}
