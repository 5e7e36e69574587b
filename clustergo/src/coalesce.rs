//! A writer that joins small writes with the next one: yamux writes each frame's
//! 12-byte header and its body in two calls, which on a plain socket cost two
//! syscalls (and two TCP segments). Held bytes go out with the following write in
//! one vectored write, or on flush (yamux flushes after every frame), so nothing
//! waits for more data.
//!
//! Stream sessions over TLS hold nothing (`hold` 0): the TLS writer (`tls/io.rs`)
//! queues sealed records until the flush itself, so the header and its body go out
//! in one write there too; the header gets a small record of its own, which costs
//! less than copying it in front of the body (with rustls, joining cost more CPU
//! than it saved; BENCHMARKS.md).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes up to this size are held for the next write or flush (plain sockets).
pub(crate) const HOLD: usize = 1024;

/// An [`AsyncWrite`] that holds small writes until the next write or a flush;
/// reads pass through.
#[derive(Debug)]
pub(crate) struct Coalesce<W> {
    inner: W,
    /// Bytes to hold at most (0: every write passes straight through).
    hold: usize,
    /// Accepted bytes not yet written to `inner` (at most `hold`).
    held: Vec<u8>,
}

impl<W> Coalesce<W> {
    /// A writer holding up to `hold` bytes (0: none).
    pub(crate) fn new(inner: W, hold: usize) -> Self {
        Self {
            inner,
            hold,
            held: Vec::with_capacity(hold),
        }
    }
}

impl<W: AsyncWrite + Unpin> Coalesce<W> {
    /// Writes what is held, and as much of `buf` as the writer takes with it.
    /// `Ready(n)` counts bytes of `buf` only; it is `Ready(0)` once the held bytes
    /// are out and `buf` is empty.
    fn poll_write_with(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        while !self.held.is_empty() {
            let n = if buf.is_empty() {
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?
            } else {
                let bufs = [IoSlice::new(&self.held), IoSlice::new(buf)];
                ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &bufs))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if n <= self.held.len() {
                self.held.drain(..n);
            } else {
                let of_buf = n - self.held.len();
                self.held.clear();
                return Poll::Ready(Ok(of_buf));
            }
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Coalesce<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.held.len() + buf.len() <= this.hold {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        this.poll_write_with(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_with(cx, &[]))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_with(cx, &[]))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<W: AsyncRead + Unpin> AsyncRead for Coalesce<W> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_io::{Recorder, WriteCase, bytes};

    /// Writes `writes` in order (each with `write_all`), then flushes; returns the
    /// inner writer's calls, and checks the bytes arrived whole and in order.
    async fn run(limits: &[usize], writes: &[usize]) -> Vec<Vec<usize>> {
        use tokio::io::AsyncWriteExt;
        let mut w = Coalesce::new(Recorder::taking(limits), HOLD);
        let mut want = Vec::new();
        for (i, &n) in writes.iter().enumerate() {
            let b = bytes(n, i as u8);
            w.write_all(&b).await.unwrap();
            want.extend_from_slice(&b);
        }
        w.flush().await.unwrap();
        assert_eq!(w.inner.out, want, "limits {limits:?}, writes {writes:?}");
        assert!(w.held.is_empty());
        assert_eq!(w.inner.flushes, 1);
        w.inner.writes
    }

    #[tokio::test]
    async fn holding_nothing_passes_every_write_through() {
        use tokio::io::AsyncWriteExt;
        let mut w = Coalesce::new(Recorder::taking(&[]), 0);
        for n in [12, 65536, 12] {
            w.write_all(&bytes(n, 0)).await.unwrap();
        }
        assert_eq!(w.inner.writes, [vec![12], vec![65536], vec![12]]);
    }

    #[tokio::test]
    async fn joins_small_writes_with_the_next() {
        // (what the inner writer takes per call, writes, the inner writer's calls)
        let cases: &[WriteCase] = &[
            // A header and its body: one vectored write.
            (&[], &[12, 65536], &[&[12, 65536]]),
            // Two headers, then a body.
            (&[], &[12, 12, 4096], &[&[24, 4096]]),
            // Small writes only: written on flush.
            (&[], &[12, 12], &[&[24]]),
            // A big write with nothing held goes straight through.
            (&[], &[65536, 12], &[&[65536], &[12]]),
            // The writer takes part of the held bytes: the rest goes first.
            (&[10], &[12, 1030], &[&[12, 1030], &[2, 1030]]),
            // The writer takes the held bytes and part of the body.
            (&[1000], &[12, 3000], &[&[12, 3000], &[2012]]),
            // Exactly HOLD is still held; one more is not.
            (&[], &[HOLD, 1], &[&[HOLD, 1]]),
        ];
        for (limits, writes, want) in cases {
            let got = run(limits, writes).await;
            let got: Vec<&[usize]> = got.iter().map(Vec::as_slice).collect();
            assert_eq!(&got, want, "limits {limits:?}, writes {writes:?}");
        }
    }
}
