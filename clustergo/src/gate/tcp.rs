//! TCP transport: `u32 BE length | payload` per packet.

use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::{
    Decoder, Encoder, FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError,
};

use super::conn::{ClientConn, CloseReason, Confirm};
use super::io::{PacketRead, PacketWrite};
use super::{GateConfig, GateError, Transport};

/// The packet codec of TCP (and, wrapped, of KCP): a 4-byte big-endian length, then the
/// payload. The limit is checked on the length field, before any buffer is reserved.
#[derive(Debug)]
pub(crate) struct PacketCodec {
    inner: LengthDelimitedCodec,
    /// Whether `inner` has consumed a length field and waits for its payload.
    in_payload: bool,
}

/// Bytes of the length field.
const HEAD_LEN: usize = 4;

impl PacketCodec {
    pub(crate) fn new(max_packet_size: usize) -> Self {
        Self {
            inner: LengthDelimitedCodec::builder()
                .length_field_type::<u32>()
                .big_endian()
                .max_frame_length(max_packet_size)
                .new_codec(),
            in_payload: false,
        }
    }

    /// Whether the next bytes start a length field (KCP looks for its close marker there).
    #[cfg_attr(not(feature = "kcp"), allow(dead_code))]
    pub(crate) fn at_head(&self) -> bool {
        !self.in_payload
    }
}

impl Decoder for PacketCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, io::Error> {
        // With a whole length field present, `inner` consumes it even if the payload
        // has not arrived yet.
        let head_taken = self.in_payload || src.len() >= HEAD_LEN;
        let frame = self.inner.decode(src)?;
        self.in_payload = frame.is_none() && head_taken;
        Ok(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, io::Error> {
        match self.decode(src)? {
            None if self.in_payload || !src.is_empty() => Err(eof_in_packet()),
            frame => Ok(frame),
        }
    }
}

impl Encoder<Bytes> for PacketCodec {
    type Error = io::Error;

    fn encode(&mut self, packet: Bytes, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.inner.encode(packet, dst)
    }
}

/// The error for a stream that ends inside a packet (tokio-util's default `decode_eof`
/// would say `Other("bytes remaining on stream")`).
pub(crate) fn eof_in_packet() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed in the middle of a packet",
    )
}

/// Maps a [`PacketCodec`] read error to the gate's error.
pub(crate) fn read_error(err: io::Error, max_packet_size: usize) -> GateError {
    if err
        .get_ref()
        .is_some_and(|e| e.is::<LengthDelimitedCodecError>())
    {
        return GateError::IncomingTooLarge {
            max: max_packet_size,
        };
    }
    GateError::Io(err)
}

/// Reads and drops everything until EOF or an error. Callers bound the time.
pub(crate) async fn discard_until_eof(mut input: impl AsyncRead + Unpin) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = input.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Read half of a TCP connection.
#[derive(Debug)]
pub(crate) struct TcpReader {
    framed: FramedRead<OwnedReadHalf, PacketCodec>,
    max_packet_size: usize,
}

impl PacketRead for TcpReader {
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GateError>> {
        self.framed.poll_next_unpin(cx).map(|next| match next {
            Some(Ok(frame)) => Ok(Some(frame.freeze())),
            Some(Err(err)) => Err(read_error(err, self.max_packet_size)),
            None => Ok(None),
        })
    }
}

/// Write half of a TCP connection.
#[derive(Debug)]
pub(crate) struct TcpWriter {
    framed: FramedWrite<OwnedWriteHalf, PacketCodec>,
}

impl PacketWrite for TcpWriter {
    type Reader = TcpReader;

    async fn feed(&mut self, packet: Bytes) -> Result<(), GateError> {
        Ok(self.framed.feed(packet).await?)
    }

    async fn flush(&mut self) -> Result<(), GateError> {
        Ok(SinkExt::<Bytes>::flush(&mut self.framed).await?)
    }

    /// Flushes and sends FIN; then, holding the read half, discards input until the
    /// peer closes too. TCP has no close codes: `after_error` changes nothing.
    async fn close(
        mut self,
        _after_error: Option<CloseReason>,
        reader: Option<TcpReader>,
        mut confirm: Confirm,
    ) -> Result<(), GateError> {
        SinkExt::<Bytes>::close(&mut self.framed).await?;
        confirm.done();
        if let Some(reader) = reader {
            discard_until_eof(reader.framed.into_inner()).await;
        }
        Ok(())
    }
}

/// Wraps an established TCP stream (accepted or connected) as a [`ClientConn`].
pub(crate) fn wrap(stream: TcpStream, peer_addr: SocketAddr, config: &GateConfig) -> ClientConn {
    // Game traffic is many small packets: do not let Nagle hold them back. Failure only
    // costs latency.
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let reader = TcpReader {
        framed: FramedRead::new(read, PacketCodec::new(config.max_packet_size)),
        max_packet_size: config.max_packet_size,
    };
    let writer = TcpWriter {
        framed: FramedWrite::new(write, PacketCodec::new(config.max_packet_size)),
    };
    ClientConn::new(reader, writer, None, peer_addr, Transport::Tcp, config)
}

/// Client side: connects (bounded by the handshake timeout) and wraps.
pub(crate) async fn connect(
    addr: impl ToSocketAddrs,
    config: &GateConfig,
) -> Result<ClientConn, GateError> {
    let stream = tokio::time::timeout(config.handshake_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| GateError::HandshakeTimeout(config.handshake_timeout))??;
    let peer_addr = stream.peer_addr()?;
    Ok(wrap(stream, peer_addr, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// End of input at every point of a packet: clean at the boundary, otherwise an
    /// `UnexpectedEof` error recognised by its kind.
    #[test]
    fn eof_inside_a_packet_is_unexpected_eof() {
        let mut wire = BytesMut::new();
        PacketCodec::new(64)
            .encode(Bytes::from_static(b"hello"), &mut wire)
            .unwrap();
        for cut in 0..=wire.len() {
            let mut codec = PacketCodec::new(64);
            let mut buf = BytesMut::from(&wire[..cut]);
            let got = codec.decode_eof(&mut buf);
            match cut {
                0 => assert!(matches!(got, Ok(None))),
                9 => assert_eq!(got.unwrap().unwrap(), &b"hello"[..]),
                _ => {
                    let err = got.unwrap_err();
                    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
                    assert!(read_error(err, 64).is_disconnect());
                }
            }
        }
    }
}
