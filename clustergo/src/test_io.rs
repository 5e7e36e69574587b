//! A scripted writer for unit tests of the write paths (`batch.rs`, `coalesce.rs`).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// Takes at most the next of `limits` bytes per write (all, once they are used
/// up) and records the buffer lengths of each write call.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) limits: VecDeque<usize>,
    /// Buffer lengths of each write call, in order.
    pub(crate) writes: Vec<Vec<usize>>,
    /// The bytes taken.
    pub(crate) out: Vec<u8>,
    pub(crate) flushes: usize,
}

impl Recorder {
    pub(crate) fn taking(limits: &[usize]) -> Self {
        Self {
            limits: limits.iter().copied().collect(),
            ..Default::default()
        }
    }
}

/// A table row of a write-path test: (sizes written, what the [`Recorder`] takes
/// per write, the buffer lengths of each write it sees).
pub(crate) type WriteCase = (
    &'static [usize],
    &'static [usize],
    &'static [&'static [usize]],
);

/// `n` bytes counting up from `seed`, so that misplaced bytes show.
pub(crate) fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

impl AsyncWrite for Recorder {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes.push(bufs.iter().map(|b| b.len()).collect());
        let limit = this.limits.pop_front().unwrap_or(usize::MAX);
        let mut left = limit;
        for b in bufs {
            let n = b.len().min(left);
            this.out.extend_from_slice(&b[..n]);
            left -= n;
        }
        Poll::Ready(Ok(limit - left))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().flushes += 1;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
