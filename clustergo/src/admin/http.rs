//! The smallest HTTP/1.1 the admin listener needs: one `GET` per connection, the
//! request head capped in size and time, the answer closes the connection. Enough
//! for Prometheus, health probes and a browser; not a web framework.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request head read; a longer one is refused (`431`).
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Time a client gets to send its request head, and to take the answer.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request head was refused, with the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not `METHOD TARGET HTTP/1.x`.
    BadRequest,
    /// Not `GET` (nor `HEAD`).
    MethodNotAllowed,
    /// The head exceeds [`MAX_HEAD`].
    TooLarge,
}

impl Refused {
    /// The status line's code and reason.
    pub(crate) fn status(self) -> (u16, &'static str) {
        match self {
            Self::BadRequest => (400, "Bad Request"),
            Self::MethodNotAllowed => (405, "Method Not Allowed"),
            Self::TooLarge => (431, "Request Header Fields Too Large"),
        }
    }
}

/// A parsed request: the path without its query, and whether the body is wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    pub(crate) path: &'a str,
    pub(crate) head_only: bool,
}

/// Parses the request line of a complete head (up to the blank line).
pub(crate) fn parse(head: &[u8]) -> Result<Request<'_>, Refused> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(Refused::BadRequest)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| Refused::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(Refused::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Refused::MethodNotAllowed),
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Ok(Request { path, head_only })
}

/// The end of the head (after the blank line) in `buf`, once it is all there.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// An answer to write.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) reason: &'static str,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// `200 OK` with `body`.
    pub(crate) fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            reason: "OK",
            content_type,
            body: body.into(),
        }
    }

    /// A plain-text answer with `status`.
    pub(crate) fn text(status: u16, reason: &'static str, body: &str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// Reads one request from `stream`, answers it with `route`, closes. Slow or
/// oversized clients are cut off; nothing here panics on input.
pub(crate) async fn serve_one(
    mut stream: TcpStream,
    route: impl FnOnce(&str) -> Response,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let read = tokio::time::timeout(IO_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = head_end(&buf) {
                return Ok::<_, std::io::Error>(Some(end));
            }
            if buf.len() >= MAX_HEAD {
                return Ok(None);
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?;
    let (response, head_only) = match read? {
        None => (refusal(Refused::TooLarge), false),
        Some(end) => match parse(&buf[..end]) {
            Ok(req) => (route(req.path), req.head_only),
            Err(r) => (refusal(r), false),
        },
    };
    let bytes = response.encode(head_only);
    tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

fn refusal(r: Refused) -> Response {
    let (status, reason) = r.status();
    Response::text(status, reason, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines() {
        let ok = |path, head_only| Ok(Request { path, head_only });
        let cases: &[(&[u8], Result<Request<'_>, Refused>)] = &[
            (b"GET / HTTP/1.1\r\n\r\n", ok("/", false)),
            (
                b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n",
                ok("/metrics", false),
            ),
            (
                b"GET /api/cluster?t=1 HTTP/1.1\r\n\r\n",
                ok("/api/cluster", false),
            ),
            (b"HEAD /healthz HTTP/1.1\r\n\r\n", ok("/healthz", true)),
            (b"POST / HTTP/1.1\r\n\r\n", Err(Refused::MethodNotAllowed)),
            (b"GET / HTTP/2\r\n\r\n", Err(Refused::BadRequest)),
            (b"GET  / HTTP/1.1\r\n\r\n", Err(Refused::BadRequest)),
            (b"GET http://x/ HTTP/1.1\r\n\r\n", Err(Refused::BadRequest)),
            (b"GET / HTTP/1.1", Err(Refused::BadRequest)),
            (b"\xff\xfe / HTTP/1.1\r\n\r\n", Err(Refused::BadRequest)),
            (b"\r\n\r\n", Err(Refused::BadRequest)),
        ];
        for (head, want) in cases {
            assert_eq!(&parse(head), want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    }

    #[tokio::test]
    async fn oversized_heads_are_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            serve_one(s, |_| Response::text(200, "OK", "no")).await
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut head = b"GET / HTTP/1.1\r\nX: ".to_vec();
        head.resize(MAX_HEAD, b'a'); // all of it is read: no reset on close
        c.write_all(&head).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(IO_TIMEOUT, c.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.starts_with(b"HTTP/1.1 431 "),
            "{}",
            String::from_utf8_lossy(&out)
        );
        server.await.unwrap().unwrap();
    }
}
