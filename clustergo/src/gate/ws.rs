//! WebSocket transport (tokio-tungstenite): one binary message = one packet.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, WebSocketConfig};
use tracing::debug;

use super::conn::{ClientConn, CloseReason, Confirm};
use super::http_head::{self, Rewind};
use super::io::{PacketRead, PacketWrite, next_packet};
use super::tls::{self, GateWrite};
use super::{GateConfig, GateError, Transport, tcp};

/// Server streams replay the request head read before the upgrade; client streams
/// start with an empty [`Rewind`].
type WsStream = WebSocketStream<Rewind>;

/// Per-connection buffers: tungstenite's 128 KiB default is a lot for thousands of
/// mostly idle game clients.
const WS_BUFFER_SIZE: usize = 16 * 1024;

pub(crate) fn ws_config(config: &GateConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(WS_BUFFER_SIZE)
        .write_buffer_size(WS_BUFFER_SIZE)
        .max_message_size(Some(config.max_packet_size))
        .max_frame_size(Some(config.max_packet_size))
}

/// Maps a tungstenite read error to the gate's error; `None` = the connection is simply
/// over (close handshake already done).
fn read_error(err: WsError, max_packet_size: usize) -> Option<GateError> {
    Some(match err {
        WsError::ConnectionClosed | WsError::AlreadyClosed => return None,
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => GateError::IncomingTooLarge {
            max: max_packet_size,
        },
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            GateError::Io(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer closed without a WebSocket close",
            ))
        }
        WsError::Io(e) => GateError::Io(e),
        other => GateError::Protocol(other.to_string()),
    })
}

/// Read half of a WebSocket connection.
#[derive(Debug)]
pub(crate) struct WsReader {
    stream: SplitStream<WsStream>,
    max_packet_size: usize,
}

impl PacketRead for WsReader {
    fn poll_packet(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, GateError>> {
        loop {
            return Poll::Ready(match ready!(self.stream.poll_next_unpin(cx)) {
                Some(Ok(Message::Binary(packet))) => Ok(Some(packet)),
                Some(Ok(Message::Text(_))) => Err(GateError::TextMessage),
                // Pings are answered by tungstenite while reading; pongs need nothing.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Close(_))) | None => Ok(None),
                Some(Err(err)) => match read_error(err, self.max_packet_size) {
                    Some(err) => Err(err),
                    None => Ok(None),
                },
            });
        }
    }
}

/// Write half of a WebSocket connection.
#[derive(Debug)]
pub(crate) struct WsWriter {
    sink: SplitSink<WsStream, Message>,
}

fn write_error(err: WsError) -> GateError {
    match err {
        WsError::Io(e) => GateError::Io(e),
        WsError::ConnectionClosed | WsError::AlreadyClosed => GateError::Closed,
        other => GateError::Protocol(other.to_string()),
    }
}

impl PacketWrite for WsWriter {
    type Reader = WsReader;

    async fn feed(&mut self, packet: Bytes) -> Result<(), GateError> {
        self.sink
            .feed(Message::Binary(packet))
            .await
            .map_err(write_error)
    }

    async fn flush(&mut self) -> Result<(), GateError> {
        self.sink.flush().await.map_err(write_error)
    }

    /// Sends a close frame: code 1000, or the code for the read error that ended the
    /// connection. Then, if the receiver handed back the read half, finishes the close
    /// handshake: normally by reading (and dropping) messages until the peer's close
    /// frame; after a read error the stream may be mid-frame, so the socket is
    /// half-closed and raw input discarded until the peer closes.
    async fn close(
        mut self,
        after_error: Option<CloseReason>,
        reader: Option<WsReader>,
        mut confirm: Confirm,
    ) -> Result<(), GateError> {
        let (code, text) = match after_error.unwrap_or(CloseReason::Normal) {
            CloseReason::Normal => (CloseCode::Normal, ""),
            CloseReason::TooLarge => (CloseCode::Size, "packet too large"),
            CloseReason::Unsupported => (CloseCode::Unsupported, "text messages are not accepted"),
            CloseReason::Protocol => (CloseCode::Protocol, "protocol error"),
        };
        let frame = CloseFrame {
            code,
            reason: text.into(),
        };
        let sent = match self.sink.send(Message::Close(Some(frame))).await {
            Ok(()) => Ok(()),
            // The peer closed first: tungstenite queued the reply to its close frame while
            // reading; `close` (unlike `send`) flushes it out.
            Err(
                WsError::Protocol(ProtocolError::SendAfterClosing)
                | WsError::ConnectionClosed
                | WsError::AlreadyClosed,
            ) => match self.sink.close().await {
                Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
                Err(err) => Err(write_error(err)),
            },
            Err(err) => Err(write_error(err)),
        };
        if sent.is_ok() {
            confirm.done();
        }
        match (reader, after_error) {
            (Some(mut reader), None) => while let Ok(Some(_)) = next_packet(&mut reader).await {},
            (Some(reader), Some(_)) => {
                if let Ok(ws) = reader.stream.reunite(self.sink) {
                    let mut tcp = ws.into_inner();
                    let _ = tcp.shutdown().await;
                    tcp::discard_until_eof(tcp).await;
                }
            }
            (None, _) => {}
        }
        sent
    }
}

fn wrap(ws: WsStream, peer_addr: SocketAddr, config: &GateConfig) -> ClientConn {
    let (sink, stream) = ws.split();
    ClientConn::new(
        WsReader {
            stream,
            max_packet_size: config.max_packet_size,
        },
        WsWriter { sink },
        None,
        peer_addr,
        Transport::Ws,
        config,
    )
}

/// Answers a complete HTTP request that is not a WebSocket upgrade (a browser or `curl`
/// on the gate port, a health check) with `400 Bad Request`; tungstenite would just
/// drop the socket.
async fn reject_plain_http(stream: &mut GateWrite, head: &[u8]) -> GateError {
    let body = "This is a WebSocket endpoint: send an upgrade request.\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    let head = String::from_utf8_lossy(head);
    let first_line = head.lines().next().unwrap_or_default();
    GateError::Handshake(format!(
        "not a WebSocket upgrade request ({first_line:?}); answered 400"
    ))
}

/// Server side, run per accepted socket by the listener's background task (which
/// bounds the time): TLS first when [`GateConfig::tls`] is set (`wss://`), then the
/// request head, then the upgrade.
pub(crate) async fn accept(
    stream: TcpStream,
    peer_addr: SocketAddr,
    config: Arc<GateConfig>,
) -> Result<ClientConn, GateError> {
    tcp::no_delay(&stream);
    let (mut read_half, mut write_half) = match &config.tls {
        Some(server) => tls::accept(stream, server).await?,
        None => tls::plain(stream),
    };
    let (read, head_len) = http_head::read_head(&mut read_half).await?;
    if !http_head::is_upgrade(&read[..head_len]) {
        return Err(reject_plain_http(&mut write_half, &read[..head_len]).await);
    }
    let ws = tokio_tungstenite::accept_async_with_config(
        http_head::rewind(read, (read_half, write_half)),
        Some(ws_config(&config)),
    )
    .await
    .map_err(|e| GateError::Handshake(e.to_string()))?;
    Ok(wrap(ws, peer_addr, &config))
}

/// Client side: TCP connect plus WebSocket upgrade, bounded by the handshake timeout.
pub(crate) async fn connect(url: &str, config: &GateConfig) -> Result<ClientConn, GateError> {
    let request = url
        .into_client_request()
        .map_err(|e| GateError::InvalidConfig(format!("bad WebSocket URL {url:?}: {e}")))?;
    let uri = request.uri();
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(GateError::InvalidConfig(format!(
                "only ws:// and wss:// URLs are supported, got {url:?}"
            )));
        }
    };
    let tls_connect = match (secure, &config.tls_connect) {
        (false, _) => None,
        (true, Some(client)) => Some(client),
        (true, None) => {
            return Err(GateError::InvalidConfig(format!(
                "{url:?} needs GateConfig::tls_connect (trust anchors for the server)"
            )));
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| GateError::InvalidConfig(format!("no host in {url:?}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let setup = async {
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        tcp::no_delay(&stream);
        let peer_addr = stream.peer_addr()?;
        let halves = match tls_connect {
            Some(client) => {
                let name = ServerName::try_from(host.clone()).map_err(|e| {
                    GateError::InvalidConfig(format!("bad TLS server name {host:?}: {e}"))
                })?;
                tls::connect(stream, client, Some(name), peer_addr).await?
            }
            None => tls::plain(stream),
        };
        let (ws, _response) = tokio_tungstenite::client_async_with_config(
            request,
            http_head::rewind(BytesMut::new(), halves),
            Some(ws_config(config)),
        )
        .await
        .map_err(|e| match e {
            WsError::Io(e) => GateError::Io(e),
            other => GateError::Handshake(other.to_string()),
        })?;
        Ok::<_, GateError>((ws, peer_addr))
    };
    let (ws, peer_addr) = tokio::time::timeout(config.handshake_timeout, setup)
        .await
        .map_err(|_| GateError::HandshakeTimeout(config.handshake_timeout))??;
    debug!(peer = %peer_addr, "gate: WebSocket connected");
    Ok(wrap(ws, peer_addr, config))
}
