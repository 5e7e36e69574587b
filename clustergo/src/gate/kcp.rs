//! KCP transport: `u32 BE length | payload` per packet over a KCP stream, and the
//! length `0xFFFF_FFFF` as close marker (KCP has no FIN). Servers run the gate's own
//! front end ([`kcp_server`]); clients use tokio_kcp.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use std::{fmt, io};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::ToSocketAddrs;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_kcp::KcpStream;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};
use tracing::{debug, info, warn};

use super::conn::{ClientConn, CloseReason, Confirm};
use super::io::{PacketRead, PacketWrite, next_packet};
use super::kcp_server::{self, ServerStream};
use super::listener::{ACCEPT_BACKLOG, ListenerStats};
use super::pending::Pending;
use super::{GateConfig, GateError, Transport, tcp};

/// The length-field value that announces a clean close.
pub(crate) const CLOSE_MARKER: u32 = u32::MAX;

/// KCP header bytes per segment (MSS = MTU - overhead).
const KCP_OVERHEAD: usize = 24;

/// One item of the KCP packet stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KcpFrame {
    Packet(Bytes),
    Close,
}

/// [`tcp::PacketCodec`] plus the close marker, recognised only where a length field
/// starts.
#[derive(Debug)]
pub(crate) struct KcpCodec {
    inner: tcp::PacketCodec,
}

impl KcpCodec {
    pub(crate) fn new(max_packet_size: usize) -> Self {
        Self {
            inner: tcp::PacketCodec::new(max_packet_size),
        }
    }
}

impl Decoder for KcpCodec {
    type Item = KcpFrame;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<KcpFrame>, io::Error> {
        if self.inner.at_head() && src.starts_with(&CLOSE_MARKER.to_be_bytes()) {
            src.advance(4);
            return Ok(Some(KcpFrame::Close));
        }
        Ok(self
            .inner
            .decode(src)?
            .map(|frame| KcpFrame::Packet(frame.freeze())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<KcpFrame>, io::Error> {
        match self.decode(src)? {
            None if !self.inner.at_head() || !src.is_empty() => Err(tcp::eof_in_packet()),
            frame => Ok(frame),
        }
    }
}

impl Encoder<KcpFrame> for KcpCodec {
    type Error = io::Error;

    fn encode(&mut self, item: KcpFrame, dst: &mut BytesMut) -> Result<(), io::Error> {
        match item {
            KcpFrame::Packet(p) => self.inner.encode(p, dst),
            KcpFrame::Close => {
                dst.put_u32(CLOSE_MARKER);
                Ok(())
            }
        }
    }
}

/// A KCP conversation's byte stream: tokio_kcp's client stream, or the gate's own
/// server stream ([`ServerStream`]).
pub(crate) trait KcpSide:
    AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug + 'static
{
    /// Whether everything written has been acknowledged by the peer.
    fn all_acked(&mut self) -> bool;

    /// Sends the acknowledgements KCP has queued now rather than on its next tick. A
    /// session ends the moment its stream is dropped, so without this a peer's close
    /// marker read just before the drop would never be acknowledged, and the peer would
    /// retransmit it until its own timeout.
    fn flush_acks(&mut self);
}

impl KcpSide for KcpStream {
    fn all_acked(&mut self) -> bool {
        self.session().kcp_socket().lock().can_close()
    }

    fn flush_acks(&mut self) {
        // tokio_kcp's flush is synchronous: it never returns Pending.
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let _ = Pin::new(self).poll_flush(&mut cx);
    }
}

impl KcpSide for ServerStream {
    fn all_acked(&mut self) -> bool {
        ServerStream::all_acked(self)
    }

    fn flush_acks(&mut self) {
        ServerStream::flush_acks(self);
    }
}

/// The stream both halves of a KCP connection share; each poll holds the lock briefly.
/// (Not `tokio::io::split`: the writer must also reach the session to see acks.)
#[derive(Debug)]
struct SharedKcp<S>(Arc<parking_lot::Mutex<S>>);

/// Read half of the shared stream.
#[derive(Debug)]
struct KcpReadHalf<S>(SharedKcp<S>);

impl<S: KcpSide> KcpReadHalf<S> {
    fn flush_acks(&self) {
        self.0.0.lock().flush_acks();
    }
}

impl<S: KcpSide> AsyncRead for KcpReadHalf<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut stream = self.0.0.lock();
        Pin::new(&mut *stream).poll_read(cx, buf)
    }
}

/// Write half of the shared stream. Writes are cut into pieces KCP accepts:
/// `ikcp_send` refuses a buffer of 128 segments or more.
#[derive(Debug)]
struct KcpWriteHalf<S> {
    shared: SharedKcp<S>,
    max_write: usize,
}

impl<S: KcpSide> KcpWriteHalf<S> {
    fn all_acked(&self) -> bool {
        self.shared.0.lock().all_acked()
    }
}

impl<S: KcpSide> AsyncWrite for KcpWriteHalf<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(self.max_write);
        let mut stream = self.shared.0.lock();
        Pin::new(&mut *stream).poll_write(cx, &buf[..n])
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = self.shared.0.lock();
        Pin::new(&mut *stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut stream = self.shared.0.lock();
        Pin::new(&mut *stream).poll_shutdown(cx)
    }
}

/// Read half of a KCP connection.
#[derive(Debug)]
pub(crate) struct KcpReader<S> {
    framed: FramedRead<KcpReadHalf<S>, KcpCodec>,
    max_packet_size: usize,
}

impl<S: KcpSide> KcpReader<S> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<KcpFrame, GateError>> {
        self.framed.poll_next_unpin(cx).map(|next| match next {
            Some(Ok(frame)) => Ok(frame),
            Some(Err(err)) => Err(tcp::read_error(err, self.max_packet_size)),
            // EOF only comes when the session was closed underneath us: on a server,
            // after `session_expire` without traffic, when a new conversation from the
            // same address replaced it, or when the listener was dropped.
            None => Err(GateError::SessionExpired),
        })
    }

    async fn next_frame(&mut self) -> Result<KcpFrame, GateError> {
        std::future::poll_fn(|cx| self.poll_frame(cx)).await
    }
}

impl<S: KcpSide> PacketRead for KcpReader<S> {
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GateError>> {
        self.poll_frame(cx).map_ok(|frame| match frame {
            KcpFrame::Packet(p) => Some(p),
            KcpFrame::Close => {
                self.framed.get_ref().flush_acks();
                None
            }
        })
    }
}

/// How often a closing writer checks whether the peer acknowledged everything.
const LINGER_POLL: Duration = Duration::from_millis(5);

/// Write half of a KCP connection.
#[derive(Debug)]
pub(crate) struct KcpWriter<S> {
    framed: FramedWrite<KcpWriteHalf<S>, KcpCodec>,
}

impl<S: KcpSide> PacketWrite for KcpWriter<S> {
    type Reader = KcpReader<S>;

    async fn feed(&mut self, packet: Bytes) -> Result<(), GateError> {
        Ok(self.framed.feed(KcpFrame::Packet(packet)).await?)
    }

    async fn flush(&mut self) -> Result<(), GateError> {
        Ok(self.framed.flush().await?)
    }

    /// Sends the close marker (also in reply to the peer's), then waits until the peer
    /// has acknowledged everything: tokio_kcp ends a session as soon as its stream is
    /// dropped, unacknowledged data included (the server side lingers by itself, but
    /// one rule for both is simpler). With the read half handed back, it then
    /// waits for the peer's reply marker, so the session outlives the whole exchange
    /// (a reply reaching a dropped session would open a phantom one). The caller bounds
    /// the wait. After a read error the stream is mid-packet: no close handshake then.
    async fn close(
        mut self,
        after_error: Option<CloseReason>,
        reader: Option<KcpReader<S>>,
        mut confirm: Confirm,
    ) -> Result<(), GateError> {
        self.framed.send(KcpFrame::Close).await?;
        confirm.done();
        while !self.framed.get_ref().all_acked() {
            tokio::time::sleep(LINGER_POLL).await;
        }
        if let (Some(mut reader), None) = (reader, after_error) {
            while let Ok(Some(_)) = next_packet(&mut reader).await {}
        }
        Ok(())
    }
}

fn split<S: KcpSide>(stream: S, config: &GateConfig) -> (KcpReader<S>, KcpWriter<S>) {
    let mss = config.kcp.mtu.saturating_sub(KCP_OVERHEAD).max(1);
    let shared = Arc::new(parking_lot::Mutex::new(stream));
    let reader = KcpReader {
        framed: FramedRead::new(
            KcpReadHalf(SharedKcp(shared.clone())),
            KcpCodec::new(config.max_packet_size),
        ),
        max_packet_size: config.max_packet_size,
    };
    let write_half = KcpWriteHalf {
        shared: SharedKcp(shared),
        max_write: (mss * 64).min(64 * 1024),
    };
    let writer = KcpWriter {
        framed: FramedWrite::new(write_half, KcpCodec::new(config.max_packet_size)),
    };
    (reader, writer)
}

/// Server side: binds the UDP socket and starts the accept task.
pub(crate) async fn bind(
    addr: impl ToSocketAddrs,
    config: GateConfig,
    stats: ListenerStats,
) -> Result<(SocketAddr, mpsc::Receiver<ClientConn>, JoinHandle<()>), GateError> {
    let udp = Arc::new(UdpSocket::bind(addr).await?);
    let local_addr = udp.local_addr()?;
    let (sessions_tx, sessions_rx) = mpsc::channel(ACCEPT_BACKLOG);
    tokio::spawn(kcp_server::receive_loop(
        udp,
        config.kcp,
        sessions_tx,
        stats.clone(),
    ));
    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
    let task = tokio::spawn(accept_loop(sessions_rx, config, tx, stats));
    Ok((local_addr, rx, task))
}

/// Takes new sessions from the receive loop ([`kcp_server`]) and waits, each in its
/// own task, for their first packet. Ends when the [`super::Listener`] is dropped, which
/// also ends every session of this listener (they share its UDP socket and its receive
/// loop).
///
/// The receive loop opens a session only for a datagram that starts a conversation,
/// but such a datagram can still be forged (UDP sources can be spoofed). So sessions
/// that have not yet delivered a first packet are capped
/// ([`GateConfig::kcp_max_pending`], oldest dropped first, see [`Pending`]) and given
/// only [`GateConfig::kcp_first_packet_timeout`]. Dropping one drops its stream, which
/// ends the session. A real client evicted by a flood retransmits its first segment,
/// which opens a new session.
async fn accept_loop(
    mut sessions: mpsc::Receiver<(ServerStream, SocketAddr)>,
    config: GateConfig,
    tx: mpsc::Sender<ClientConn>,
    stats: ListenerStats,
) {
    let config = Arc::new(config);
    let mut pending = Pending::new(config.kcp_max_pending, stats.clone());
    loop {
        tokio::select! {
            accepted = sessions.recv() => match accepted {
                Some((stream, peer_addr)) => {
                    pending.spawn(first_packet(stream, peer_addr, config.clone(), tx.clone(), stats.clone()));
                }
                None => {
                    warn!(transport = %Transport::Kcp, "gate: KCP receive loop stopped");
                    break;
                }
            },
            () = pending.join_next() => {}
            () = tx.closed() => break,
        }
    }
}

async fn first_packet(
    stream: ServerStream,
    peer_addr: SocketAddr,
    config: Arc<GateConfig>,
    tx: mpsc::Sender<ClientConn>,
    stats: ListenerStats,
) {
    let (mut reader, writer) = split(stream, &config);
    let wait = config.kcp_first_packet_timeout;
    let error = match tokio::time::timeout(wait, reader.next_frame()).await {
        Ok(Ok(KcpFrame::Packet(first))) => {
            let conn = ClientConn::new(
                reader,
                writer,
                Some(first),
                peer_addr,
                Transport::Kcp,
                &config,
            );
            // Proven: no longer pending (and no longer subject to eviction) while it
            // waits for the application's `accept`. Bounded by the handshake timeout;
            // past it the connection closes on drop.
            let deliver = tokio::time::timeout(config.handshake_timeout, async move {
                let _ = tx.send(conn).await;
            });
            tokio::spawn(deliver);
            return;
        }
        Ok(Ok(KcpFrame::Close)) => {
            // The tail of an earlier conversation from the same address.
            debug!(peer = %peer_addr, "gate: KCP session closed before its first packet");
            return;
        }
        Ok(Err(err)) => err,
        Err(_) => GateError::HandshakeTimeout(wait),
    };
    stats.add_failure();
    if matches!(error, GateError::HandshakeTimeout(_)) {
        // Spoofed datagrams end here, possibly thousands at a time: not worth an info line.
        debug!(peer = %peer_addr, transport = %Transport::Kcp, %error, "gate: KCP session dropped before its first packet");
    } else {
        info!(peer = %peer_addr, transport = %Transport::Kcp, %error, "gate: KCP session dropped before its first packet");
    }
    if matches!(error, GateError::IncomingTooLarge { .. }) {
        // A real client that broke the rules: tell it, as an accepted one would be told.
        let close = writer.close(None, None, Confirm::default());
        let _ = tokio::time::timeout(config.close_timeout, close).await;
    }
}

/// Client side: a new UDP socket and KCP session towards `addr`.
pub(crate) async fn connect(
    addr: SocketAddr,
    config: &GateConfig,
) -> Result<ClientConn, GateError> {
    let stream = KcpStream::connect(&config.kcp, addr)
        .await
        .map_err(io::Error::from)?;
    let (reader, writer) = split(stream, config);
    Ok(ClientConn::new(
        reader,
        writer,
        None,
        addr,
        Transport::Kcp,
        config,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut KcpCodec, buf: &mut BytesMut) -> Result<Vec<KcpFrame>, io::Error> {
        let mut out = Vec::new();
        while let Some(frame) = codec.decode(buf)? {
            out.push(frame);
        }
        Ok(out)
    }

    #[test]
    fn packets_and_close_marker_round_trip() {
        let mut codec = KcpCodec::new(1024);
        let mut buf = BytesMut::new();
        for frame in [
            KcpFrame::Packet(Bytes::from_static(b"hello")),
            KcpFrame::Packet(Bytes::new()),
            KcpFrame::Close,
        ] {
            codec.encode(frame, &mut buf).unwrap();
        }
        assert_eq!(&buf[..9], b"\0\0\0\x05hello");
        let frames = decode_all(&mut codec, &mut buf).unwrap();
        assert_eq!(
            frames,
            vec![
                KcpFrame::Packet(Bytes::from_static(b"hello")),
                KcpFrame::Packet(Bytes::new()),
                KcpFrame::Close
            ]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn marker_bytes_inside_a_payload_are_data() {
        // A payload starting with ff ff ff ff, delivered one byte at a time.
        let mut codec = KcpCodec::new(1024);
        let mut wire = BytesMut::new();
        codec
            .encode(KcpFrame::Packet(Bytes::from_static(&[0xff; 6])), &mut wire)
            .unwrap();
        codec.encode(KcpFrame::Close, &mut wire).unwrap();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            frames.extend(decode_all(&mut codec, &mut buf).unwrap());
        }
        assert_eq!(
            frames,
            vec![
                KcpFrame::Packet(Bytes::from_static(&[0xff; 6])),
                KcpFrame::Close
            ]
        );
    }

    #[test]
    fn oversize_length_is_an_error_before_the_payload_arrives() {
        let mut codec = KcpCodec::new(16);
        let mut buf = BytesMut::from(&17u32.to_be_bytes()[..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(
            tcp::read_error(err, 16),
            GateError::IncomingTooLarge { max: 16 }
        ));
    }
}
