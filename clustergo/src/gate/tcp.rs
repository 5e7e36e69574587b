//! TCP transport: `u32 BE length | payload` per packet.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LengthDelimitedCodecError};

use super::conn::{ClientConn, Confirm, Reader, Writer};
use super::{GateConfig, GateError, Transport};

/// The packet codec of TCP (and, wrapped, of KCP): a 4-byte big-endian length, then the
/// payload. The limit is checked on the length field, before any buffer is reserved.
pub(crate) fn codec(max_packet_size: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .big_endian()
        .max_frame_length(max_packet_size)
        .new_codec()
}

/// Maps a [`LengthDelimitedCodec`] read error to the gate's error.
pub(crate) fn read_error(err: io::Error, max_packet_size: usize) -> GateError {
    if err
        .get_ref()
        .is_some_and(|e| e.is::<LengthDelimitedCodecError>())
    {
        return GateError::IncomingTooLarge {
            max: max_packet_size,
        };
    }
    // `FramedRead` reports EOF inside a frame as `Other("bytes remaining on stream")`.
    if err.kind() == io::ErrorKind::Other && err.to_string().contains("bytes remaining") {
        return GateError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the middle of a packet",
        ));
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
    framed: FramedRead<OwnedReadHalf, LengthDelimitedCodec>,
    max_packet_size: usize,
}

impl TcpReader {
    pub(crate) async fn next(&mut self) -> Result<Option<Bytes>, GateError> {
        match self.framed.next().await {
            Some(Ok(frame)) => Ok(Some(frame.freeze())),
            Some(Err(err)) => Err(read_error(err, self.max_packet_size)),
            None => Ok(None),
        }
    }
}

/// Write half of a TCP connection.
#[derive(Debug)]
pub(crate) struct TcpWriter {
    framed: FramedWrite<OwnedWriteHalf, LengthDelimitedCodec>,
}

impl TcpWriter {
    pub(crate) async fn feed(&mut self, packet: Bytes) -> Result<(), GateError> {
        Ok(self.framed.feed(packet).await?)
    }

    pub(crate) async fn flush(&mut self) -> Result<(), GateError> {
        Ok(SinkExt::<Bytes>::flush(&mut self.framed).await?)
    }

    /// Flushes and sends FIN; then, holding the read half, discards input until the
    /// peer closes too (see `Writer::close`).
    pub(crate) async fn close(
        mut self,
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
        framed: FramedRead::new(read, codec(config.max_packet_size)),
        max_packet_size: config.max_packet_size,
    };
    let writer = TcpWriter {
        framed: FramedWrite::new(write, codec(config.max_packet_size)),
    };
    ClientConn::new(
        Reader::Tcp(reader),
        Writer::Tcp(writer),
        None,
        peer_addr,
        Transport::Tcp,
        config,
    )
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
