//! WebSocket transport (tokio-tungstenite): one binary message = one packet.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Message, WebSocketConfig};
use tracing::{debug, info, warn};

use super::conn::{ClientConn, CloseReason, Confirm};
use super::io::{PacketRead, PacketWrite, next_packet};
use super::listener::ACCEPT_BACKOFF;
use super::{GateConfig, GateError, Transport, tcp};

type WsStream = WebSocketStream<TcpStream>;

/// Per-connection buffers: tungstenite's 128 KiB default is a lot for thousands of
/// mostly idle game clients.
const WS_BUFFER_SIZE: usize = 16 * 1024;

fn ws_config(config: &GateConfig) -> WebSocketConfig {
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

/// Server side: accepts TCP connections and upgrades each in its own task, so a slow
/// or hostile client only delays itself. Finishes when the listener is dropped.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    config: GateConfig,
    tx: mpsc::Sender<ClientConn>,
    failures: Arc<AtomicU64>,
) {
    let config = Arc::new(config);
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer_addr)) => {
                    handshakes.spawn(handshake(stream, peer_addr, config.clone(), tx.clone(), failures.clone()));
                }
                Err(err) => {
                    warn!(transport = %Transport::Ws, error = %err, "gate: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
            () = tx.closed() => break,
        }
    }
}

/// Largest HTTP request head looked at before the upgrade.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// How often a partial request head is looked at again.
const PEEK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(5);

/// Answers a complete HTTP request that is not a WebSocket upgrade (a browser or `curl`
/// on the gate port, a health check) with `400 Bad Request`; tungstenite would just
/// drop the socket. The head is peeked, not consumed, so a real upgrade request is left
/// for tungstenite. Returns the error when it rejected the request.
async fn reject_plain_http(stream: &mut TcpStream) -> Option<GateError> {
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    let head_len = loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if n == buf.len() {
            return None; // oversize head: tungstenite refuses it
        }
        tokio::time::sleep(PEEK_INTERVAL).await;
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    let is_upgrade = head.lines().any(|line| {
        line.split_once(':')
            .is_some_and(|(k, v)| k.trim() == "upgrade" && v.contains("websocket"))
    });
    if is_upgrade {
        return None;
    }
    // Consume the head first: closing with unread input would reset the connection and
    // lose the response.
    let _ = stream.read_exact(&mut buf[..head_len]).await;
    let body = "This is a WebSocket endpoint: send an upgrade request.\n";
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
    let first_line = head.lines().next().unwrap_or_default().to_owned();
    Some(GateError::Handshake(format!(
        "not a WebSocket upgrade request ({first_line:?}); answered 400"
    )))
}

async fn handshake(
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    config: Arc<GateConfig>,
    tx: mpsc::Sender<ClientConn>,
    failures: Arc<AtomicU64>,
) {
    let _ = stream.set_nodelay(true);
    let ws_config = ws_config(&config);
    let upgrade = async move {
        if let Some(rejected) = reject_plain_http(&mut stream).await {
            return Err(rejected);
        }
        tokio_tungstenite::accept_async_with_config(stream, Some(ws_config))
            .await
            .map_err(|e| GateError::Handshake(e.to_string()))
    };
    let error = match tokio::time::timeout(config.handshake_timeout, upgrade).await {
        Ok(Ok(ws)) => {
            let conn = wrap(ws, peer_addr, &config);
            // Fails only if the listener is gone; the connection then closes on drop.
            let _ = tx.send(conn).await;
            return;
        }
        Ok(Err(err)) => err,
        Err(_) => GateError::HandshakeTimeout(config.handshake_timeout),
    };
    failures.fetch_add(1, Ordering::Relaxed);
    info!(peer = %peer_addr, transport = %Transport::Ws, %error, "gate: handshake failed; connection dropped");
}

/// Client side: TCP connect plus WebSocket upgrade, bounded by the handshake timeout.
pub(crate) async fn connect(url: &str, config: &GateConfig) -> Result<ClientConn, GateError> {
    let request = url
        .into_client_request()
        .map_err(|e| GateError::InvalidConfig(format!("bad WebSocket URL {url:?}: {e}")))?;
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        return Err(GateError::InvalidConfig(format!(
            "only ws:// URLs are supported, got {url:?}"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| GateError::InvalidConfig(format!("no host in {url:?}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let setup = async {
        let stream = TcpStream::connect((host.as_str(), port)).await?;
        let _ = stream.set_nodelay(true);
        let peer_addr = stream.peer_addr()?;
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config(config)))
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
