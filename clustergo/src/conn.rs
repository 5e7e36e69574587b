//! A node-to-node connection: plain TCP, or TLS over TCP. An enum, not a boxed
//! trait object, so the plain path stays a direct call to the socket.

use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::tls::io::{TlsConn, TlsRead, TlsWrite};

/// One connection to another node.
#[derive(Debug)]
pub(crate) enum Conn {
    /// Plain TCP (no [`Config::tls`](crate::Config::tls)).
    Plain(TcpStream),
    /// TLS 1.3 over TCP (records protected by `tls/io.rs`).
    Tls(Box<TlsConn>),
}

/// The reading half of a [`Conn`].
#[derive(Debug)]
pub(crate) enum ConnRead {
    Plain(OwnedReadHalf),
    Tls(TlsRead<OwnedReadHalf>),
}

/// The writing half of a [`Conn`].
#[derive(Debug)]
pub(crate) enum ConnWrite {
    Plain(OwnedWriteHalf),
    Tls(TlsWrite<OwnedWriteHalf>),
}

impl Conn {
    /// Splits into halves for a reader task and a writer task.
    pub(crate) fn into_split(self) -> (ConnRead, ConnWrite) {
        match self {
            Conn::Plain(s) => {
                let (r, w) = s.into_split();
                (ConnRead::Plain(r), ConnWrite::Plain(w))
            }
            Conn::Tls(s) => {
                let (r, w) = s.into_split();
                (ConnRead::Tls(r), ConnWrite::Tls(w))
            }
        }
    }

    /// The certificate the other side presented (TLS with client auth), leaf first.
    pub(crate) fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => s.peer_certificates(),
        }
    }
}

/// Delegates the tokio I/O traits of an enum with `Plain` and `Tls` variants to
/// the stream in each (also the gate's halves, `gate/tls.rs`).
macro_rules! delegate_io {
    (read $ty:ident) => {
        // In a block of its own, so the names resolve wherever the macro is used.
        const _: () = {
            use std::io;
            use std::pin::Pin;
            use std::task::{Context, Poll};
            use tokio::io::{AsyncRead, ReadBuf};

            impl AsyncRead for $ty {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut ReadBuf<'_>,
                ) -> Poll<io::Result<()>> {
                    match self.get_mut() {
                        $ty::Plain(s) => Pin::new(s).poll_read(cx, buf),
                        $ty::Tls(s) => Pin::new(s).poll_read(cx, buf),
                    }
                }
            }
        };
    };
    (write $ty:ident) => {
        const _: () = {
            use std::io::{self, IoSlice};
            use std::pin::Pin;
            use std::task::{Context, Poll};
            use tokio::io::AsyncWrite;

            impl AsyncWrite for $ty {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    match self.get_mut() {
                        $ty::Plain(s) => Pin::new(s).poll_write(cx, buf),
                        $ty::Tls(s) => Pin::new(s).poll_write(cx, buf),
                    }
                }

                fn poll_write_vectored(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    bufs: &[IoSlice<'_>],
                ) -> Poll<io::Result<usize>> {
                    match self.get_mut() {
                        $ty::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                        $ty::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
                    }
                }

                fn is_write_vectored(&self) -> bool {
                    match self {
                        $ty::Plain(s) => s.is_write_vectored(),
                        $ty::Tls(s) => s.is_write_vectored(),
                    }
                }

                fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                    match self.get_mut() {
                        $ty::Plain(s) => Pin::new(s).poll_flush(cx),
                        $ty::Tls(s) => Pin::new(s).poll_flush(cx),
                    }
                }

                fn poll_shutdown(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                ) -> Poll<io::Result<()>> {
                    match self.get_mut() {
                        $ty::Plain(s) => Pin::new(s).poll_shutdown(cx),
                        $ty::Tls(s) => Pin::new(s).poll_shutdown(cx),
                    }
                }
            }
        };
    };
}
pub(crate) use delegate_io;

delegate_io!(read Conn);
delegate_io!(write Conn);
delegate_io!(read ConnRead);
delegate_io!(write ConnWrite);
