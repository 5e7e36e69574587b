//! The TLS 1.3 handshake of a node link, run by rustls's unbuffered API over the
//! TCP stream; at its end rustls hands over the traffic keys and its key
//! schedule (`dangerous_into_kernel_connection`, the interface meant for kernel
//! TLS) and the link protects its records itself (`io.rs`).
//!
//! Both configurations send no session tickets and allow the keys out
//! (`NodeTls::build`); no early data is accepted.

use std::io;
use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{CipherSuite, ClientConfig, ExtractedSecrets, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::io::Kernel;
use super::record::RecordKey;

/// Handshake flights larger than this (certificate chains included) are refused.
const MAX_HANDSHAKE_BUFFER: usize = 256 * 1024;

/// A finished handshake: the keys of both directions and what was learnt.
pub(crate) struct Established {
    pub(crate) tx: RecordKey,
    pub(crate) rx: RecordKey,
    pub(crate) kernel: Kernel,
    /// The peer's first data, which rustls opened with the handshake's last flight.
    pub(crate) opened: Vec<u8>,
    /// Bytes read past the handshake and not opened (the peer's next records).
    pub(crate) received: Vec<u8>,
    /// The peer's close_notify came with its last flight: `opened` is all its
    /// data, and `received` is ignored.
    pub(crate) peer_closed: bool,
    pub(crate) suite: CipherSuite,
    /// The peer's certificate chain, leaf first (if it presented one).
    pub(crate) peer_certificates: Option<Vec<CertificateDer<'static>>>,
}

/// The two kinds of unbuffered rustls connection, for one handshake loop.
trait Side: Sized {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn facts(&self) -> (Option<CipherSuite>, Option<Vec<CertificateDer<'static>>>);
    fn into_kernel(self) -> Result<(ExtractedSecrets, Kernel), rustls::Error>;
}

macro_rules! side {
    ($conn:ty, $data:ty, $kernel:ident) => {
        impl Side for $conn {
            type Data = $data;
            fn process<'c, 'i>(
                &'c mut self,
                incoming: &'i mut [u8],
            ) -> UnbufferedStatus<'c, 'i, $data> {
                self.process_tls_records(incoming)
            }
            fn facts(&self) -> (Option<CipherSuite>, Option<Vec<CertificateDer<'static>>>) {
                (
                    self.negotiated_cipher_suite().map(|s| s.suite()),
                    self.peer_certificates().map(<[_]>::to_vec),
                )
            }
            fn into_kernel(self) -> Result<(ExtractedSecrets, Kernel), rustls::Error> {
                let (secrets, kernel) = self.dangerous_into_kernel_connection()?;
                Ok((secrets, Kernel::$kernel(kernel)))
            }
        }
    };
}
side!(UnbufferedClientConnection, ClientConnectionData, Client);
side!(UnbufferedServerConnection, ServerConnectionData, Server);

fn closed_during_handshake() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "tls: the peer closed during the handshake",
    )
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Runs the dialer's handshake with a node that must present a certificate for
/// `name`.
pub(crate) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    io: &mut S,
) -> io::Result<Established> {
    let conn = UnbufferedClientConnection::new(config, name).map_err(tls_error)?;
    drive(conn, io).await
}

/// Runs the acceptor's handshake.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    config: Arc<ServerConfig>,
    io: &mut S,
) -> io::Result<Established> {
    let conn = UnbufferedServerConnection::new(config).map_err(tls_error)?;
    drive(conn, io).await
}

/// What the handshake loop does after rustls has looked at the bytes so far.
enum Next {
    Send,
    Receive,
    Done,
}

async fn drive<C: Side, S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: C,
    io: &mut S,
) -> io::Result<Established> {
    let mut incoming = vec![0u8; 16 * 1024];
    let mut used = 0;
    let mut outgoing: Vec<u8> = Vec::new();
    let mut opened = Vec::new();
    let mut peer_closed = false;
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process(&mut incoming[..used]);
        let next = match state.map_err(tls_error)? {
            ConnectionState::EncodeTlsData(mut data) => {
                let at = outgoing.len();
                let need = match data.encode(&mut []) {
                    Err(EncodeError::InsufficientSize(e)) => e.required_size,
                    Err(e) => return Err(io::Error::other(format!("tls: {e}"))),
                    Ok(_) => 0,
                };
                outgoing.resize(at + need, 0);
                if need > 0 {
                    data.encode(&mut outgoing[at..])
                        .map_err(|e| io::Error::other(format!("tls: {e}")))?;
                }
                None
            }
            ConnectionState::TransmitTlsData(data) => {
                data.done();
                Some(Next::Send)
            }
            // Nothing the peer sends after its close_notify counts.
            ConnectionState::BlockedHandshake if peer_closed => {
                return Err(closed_during_handshake());
            }
            ConnectionState::BlockedHandshake => Some(Next::Receive),
            ConnectionState::WriteTraffic(_) => Some(Next::Done),
            ConnectionState::ReadTraffic(mut records) => {
                // The peer's first data, read with its last handshake flight.
                while let Some(record) = records.next_record() {
                    let record = record.map_err(tls_error)?;
                    discard += record.discard;
                    opened.extend_from_slice(record.payload);
                }
                None
            }
            // The peer's close_notify, after its first data if the handshake is
            // over (it may write and shut down at once): the end of its data.
            ConnectionState::PeerClosed => {
                peer_closed = true;
                None
            }
            ConnectionState::Closed => {
                return Err(closed_during_handshake());
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "tls: unexpected handshake state",
                ));
            }
        };
        incoming.copy_within(discard..used, 0);
        used -= discard;
        match next {
            None => {}
            Some(Next::Send) => {
                io.write_all(&outgoing).await?;
                io.flush().await?;
                outgoing.clear();
            }
            Some(Next::Receive) => {
                if used == incoming.len() {
                    if incoming.len() >= MAX_HANDSHAKE_BUFFER {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "tls: handshake message too large",
                        ));
                    }
                    incoming.resize(incoming.len() * 2, 0);
                }
                let n = io.read(&mut incoming[used..]).await?;
                if n == 0 {
                    return Err(closed_during_handshake());
                }
                used += n;
            }
            Some(Next::Done) => break,
        }
    }
    let (suite, peer_certificates) = conn.facts();
    let suite = suite.ok_or_else(|| io::Error::other("tls: no cipher suite"))?;
    let (secrets, kernel) = conn.into_kernel().map_err(tls_error)?;
    let (tx_seq, tx) = secrets.tx;
    let (rx_seq, rx) = secrets.rx;
    Ok(Established {
        tx: RecordKey::new(tx, tx_seq)?,
        rx: RecordKey::new(rx, rx_seq)?,
        kernel,
        opened,
        received: incoming[..used].to_vec(),
        peer_closed,
        suite,
        peer_certificates,
    })
}
