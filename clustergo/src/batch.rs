//! What a link's writer sends in one go: the frames taken from its queue, in
//! order. Small frames are copied together into one buffer (one iovec entry for
//! hundreds of RPCs); a frame of [`BY_REFERENCE`] bytes or more is sent from its
//! own buffer, so a big body (a relayed frame's above all, forwarded as it arrived)
//! is never copied on its way to the socket. The batch is written vectored.

use std::io::{self, IoSlice};
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Frames at least this long are written from their own buffer instead of copied.
pub(crate) const BY_REFERENCE: usize = 4 * 1024;

/// Buffers handed to one vectored write at most.
const MAX_IOV: usize = 64;

/// The joining buffer is kept while its capacity is at most this; a bigger one
/// (after a burst) is let go. It starts empty and grows as batches need it, so an
/// idle link holds none.
const MAX_STAGING: usize = 1024 * 1024;

/// The bytes of one write, as buffers in order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Sealed buffers, in order, the first possibly part-written.
    chunks: Vec<Bytes>,
    /// Small frames being joined into the next chunk.
    staging: BytesMut,
    /// Bytes held in `chunks` and `staging`.
    len: usize,
}

impl Batch {
    /// Adds a whole encoded frame.
    pub(crate) fn push(&mut self, frame: Bytes) {
        if frame.len() >= BY_REFERENCE {
            self.len += frame.len();
            self.seal();
            self.chunks.push(frame);
        } else {
            self.push_slice(&frame);
        }
    }

    /// Adds bytes by copying them.
    pub(crate) fn push_slice(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        self.staging.extend_from_slice(bytes);
    }

    /// Bytes not yet written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ends the chunk being joined.
    fn seal(&mut self) {
        if !self.staging.is_empty() {
            self.chunks.push(self.staging.split().freeze());
        }
    }

    /// Writes everything, failing with `TimedOut` if a write makes no progress for
    /// `stall`, then flushes within the same bound (TLS may hold back what the
    /// socket did not take). Empty afterwards, unless it failed.
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        wr: &mut W,
        stall: Duration,
    ) -> io::Result<()> {
        if self.chunks.is_empty() {
            // Small frames only (the usual case): one buffer, written in place.
            while self.len > 0 {
                let at = self.staging.len() - self.len;
                self.len -= bounded(stall, wr.write(&self.staging[at..])).await?;
            }
            self.staging.clear();
        } else {
            self.seal();
            while !self.chunks.is_empty() {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = self.chunks.len().min(MAX_IOV);
                for (slot, chunk) in iov.iter_mut().zip(&self.chunks) {
                    *slot = IoSlice::new(chunk);
                }
                let wrote = bounded(stall, wr.write_vectored(&iov[..n])).await?;
                self.consume(wrote);
            }
        }
        if self.staging.capacity() > MAX_STAGING {
            self.staging = BytesMut::new();
        }
        within(stall, wr.flush()).await
    }

    /// Drops the first `n` bytes, written.
    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        let mut done = 0;
        for chunk in &mut self.chunks {
            if n < chunk.len() {
                chunk.advance(n);
                break;
            }
            n -= chunk.len();
            done += 1;
        }
        self.chunks.drain(..done);
    }
}

/// One write that must make progress within `stall`: a write of nothing is
/// `WriteZero`, none within `stall` is `TimedOut`.
async fn bounded(
    stall: Duration,
    write: impl Future<Output = io::Result<usize>>,
) -> io::Result<usize> {
    match within(stall, write).await {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        r => r,
    }
}

/// `op`, `TimedOut` unless it completes within `stall`. Polled once first: most
/// writes and flushes complete at once, and then no timer is armed and the clock
/// is not read (two readings per batch written, measurable on the call path).
async fn within<T>(stall: Duration, op: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    let mut op = std::pin::pin!(op);
    if let Poll::Ready(r) = std::future::poll_fn(|cx| Poll::Ready(op.as_mut().poll(cx))).await {
        return r;
    }
    match tokio::time::timeout(stall, op).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_io::{Recorder, WriteCase, bytes};

    fn frame(n: usize, seed: u8) -> Bytes {
        bytes(n, seed).into()
    }

    const BIG: usize = BY_REFERENCE;

    #[tokio::test]
    async fn small_frames_joined_big_ones_by_reference() {
        // (frame sizes, what the writer takes per write, the buffers of each write)
        let cases: &[WriteCase] = &[
            (&[10, 20, 30], &[], &[&[60]]),
            // Small frames only, part written: the rest from the same buffer.
            (&[10, 20, 30], &[25], &[&[60], &[35]]),
            (&[10, BIG, 20], &[], &[&[10, BIG, 20]]),
            (&[BIG, BIG], &[], &[&[BIG, BIG]]),
            (
                &[10, 20, BIG, BIG + 1, 5, 5],
                &[],
                &[&[30, BIG, BIG + 1, 10]],
            ),
            // Part of a buffer written: the rest goes first next time.
            (&[10, BIG, 20], &[5], &[&[10, BIG, 20], &[5, BIG, 20]]),
            (&[10, BIG, 20], &[10 + 7], &[&[10, BIG, 20], &[BIG - 7, 20]]),
            (
                &[10, BIG, 20],
                &[10 + BIG, 3],
                &[&[10, BIG, 20], &[20], &[17]],
            ),
        ];
        for (sizes, limits, want) in cases {
            let mut batch = Batch::default();
            let mut expect = Vec::new();
            let mut frames = Vec::new();
            for (i, &n) in sizes.iter().enumerate() {
                let f = frame(n, i as u8);
                expect.extend_from_slice(&f);
                frames.push(f.clone());
                batch.push(f);
            }
            assert_eq!(batch.len(), expect.len());
            let mut wr = Recorder::taking(limits);
            batch
                .write_to(&mut wr, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(wr.out, expect, "{sizes:?} {limits:?}");
            let got: Vec<&[usize]> = wr.writes.iter().map(Vec::as_slice).collect();
            assert_eq!(&got, want, "{sizes:?} {limits:?}");
            assert!(batch.is_empty() && batch.chunks.is_empty());
        }
    }

    #[tokio::test]
    async fn more_buffers_than_one_write_takes() {
        let mut batch = Batch::default();
        let mut expect = Vec::new();
        for i in 0..MAX_IOV + 10 {
            let f = frame(BIG, i as u8);
            expect.extend_from_slice(&f);
            batch.push(f);
        }
        let mut wr = Recorder::default();
        batch
            .write_to(&mut wr, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(wr.out, expect);
        let lens: Vec<usize> = wr.writes.iter().map(Vec::len).collect();
        assert_eq!(lens, [MAX_IOV, 10]);
    }

    #[tokio::test]
    async fn a_big_frame_is_written_from_its_own_buffer() {
        let big = frame(BIG, 1);
        let mut batch = Batch::default();
        batch.push(Bytes::from_static(b"head"));
        batch.push(big.clone());
        batch.seal();
        assert_eq!(batch.chunks.len(), 2);
        assert_eq!(batch.chunks[1].as_ptr(), big.as_ptr(), "not copied");
    }

    #[tokio::test]
    async fn a_writer_that_takes_nothing_fails_the_write() {
        let mut batch = Batch::default();
        batch.push(frame(10, 0));
        let mut wr = Recorder::taking(&[0]);
        let e = batch
            .write_to(&mut wr, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WriteZero);
    }
}
