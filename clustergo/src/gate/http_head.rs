//! The HTTP request head in front of a WebSocket upgrade: read once into a bounded
//! buffer, looked at (upgrade or plain HTTP?), then replayed to tungstenite.
//!
//! Reading (not peeking) matters: a peek returns at once while any byte is unread, so
//! waiting for the rest of a partial head meant polling. A read only wakes up for new
//! bytes, so a half-open client costs nothing until the handshake timeout ends it.

use std::io::Cursor;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, Chain, Join};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::GateError;

/// Largest HTTP request head accepted before the upgrade.
pub(crate) const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Reads until the end of the request head (`\r\n\r\n`). Returns everything read (the
/// head plus anything the client sent after it) and the head's length. Fails on EOF
/// before the head ends or a head above [`MAX_REQUEST_HEAD`]. The caller bounds the
/// time.
pub(crate) async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<(BytesMut, usize), GateError> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        // Only the new bytes (plus 3 for a terminator split across reads) are searched.
        let searched_from = buf.len().saturating_sub(3);
        let room = MAX_REQUEST_HEAD - buf.len();
        let n = (&mut *stream).take(room as u64).read_buf(&mut buf).await?;
        if let Some(end) = buf[searched_from..]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            let head_len = searched_from + end + 4;
            return Ok((buf, head_len));
        }
        if n == 0 {
            return Err(GateError::Handshake(if buf.len() == MAX_REQUEST_HEAD {
                format!("request head larger than {MAX_REQUEST_HEAD} bytes")
            } else {
                "connection closed inside the request head".into()
            }));
        }
    }
}

/// Whether a request head asks for a WebSocket upgrade (`Upgrade: websocket`).
pub(crate) fn is_upgrade(head: &[u8]) -> bool {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .lines()
        .any(|line| {
            line.split_once(':')
                .is_some_and(|(k, v)| k.trim() == "upgrade" && v.contains("websocket"))
        })
}

/// A TCP stream that first yields bytes already read from it (the request head), so
/// tungstenite sees the connection from its first byte.
pub(crate) type Rewind = Join<Chain<Cursor<BytesMut>, OwnedReadHalf>, OwnedWriteHalf>;

/// Puts `read` back in front of `stream`.
pub(crate) fn rewind(read: BytesMut, stream: TcpStream) -> Rewind {
    let (r, w) = stream.into_split();
    tokio::io::join(Cursor::new(read).chain(r), w)
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::io::{AsyncWriteExt, ReadBuf};

    use super::*;

    /// Counts how often the reader is polled.
    struct Counting<S> {
        inner: S,
        polls: Arc<AtomicUsize>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    /// A client that sends part of a head and then nothing: the reader is polled a
    /// few times, not every few milliseconds (the old peek loop polled 2000 times in
    /// 10 s).
    #[tokio::test(start_paused = true)]
    async fn a_partial_head_is_not_polled_while_idle() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let polls = Arc::new(AtomicUsize::new(0));
        let mut server = Counting {
            inner: server,
            polls: polls.clone(),
        };
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let reader = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(10), read_head(&mut server))
                .await
                .is_err()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after_data = polls.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(
            polls.load(Ordering::Relaxed),
            after_data,
            "polled while idle"
        );
        assert!(after_data <= 3, "{after_data} polls for one chunk");
        assert!(reader.await.unwrap(), "the handshake timeout ends the wait");
        drop(client);
    }

    #[tokio::test]
    async fn heads_split_anywhere_are_found_and_the_rest_is_kept() {
        let wire = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nFRAME";
        let head_len = wire.len() - 5;
        for cut in 1..wire.len() {
            let (mut client, mut server) = tokio::io::duplex(1024);
            let reader = tokio::spawn(async move { read_head(&mut server).await });
            client.write_all(&wire[..cut]).await.unwrap();
            tokio::task::yield_now().await;
            // The reader may be done (and gone) once the head is complete.
            let _ = client.write_all(&wire[cut..]).await;
            let (buf, len) = reader.await.unwrap().unwrap();
            assert_eq!(len, head_len, "cut at {cut}");
            assert!(is_upgrade(&buf[..len]));
            // Whatever was read beyond the head is replayed after it.
            let mut replay = Vec::new();
            Cursor::new(buf)
                .chain(tokio::io::empty())
                .read_to_end(&mut replay)
                .await
                .unwrap();
            assert!(replay.len() >= head_len);
            assert_eq!(&replay[..], &wire[..replay.len()]);
        }
    }

    #[tokio::test]
    async fn eof_and_oversize_heads_are_refused() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        drop(client);
        assert!(matches!(
            read_head(&mut server).await,
            Err(GateError::Handshake(_))
        ));

        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client
            .write_all(&[b'a'; MAX_REQUEST_HEAD + 10])
            .await
            .unwrap();
        let err = read_head(&mut server).await.unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn upgrade_header_is_recognised() {
        for (head, want) in [
            (&b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"[..], true),
            (b"GET / HTTP/1.1\r\nupgrade:  WebSocket\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false),
            (b"GET /upgrade:websocket HTTP/1.1\r\n\r\n", false),
        ] {
            assert_eq!(is_upgrade(head), want, "{}", String::from_utf8_lossy(head));
        }
    }
}
