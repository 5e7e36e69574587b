//! A socket that gives its worker thread up after moving a fixed number of bytes.
//!
//! A stream session's driver does its socket's TLS work (encrypt on one side,
//! decrypt on the other). tokio keeps a chain of tasks that wake each other on one
//! worker (the LIFO slot), so a sender's and a receiver's session on the same runtime
//! ran on one core while the other idled (`perf sched timehist`: 388 ms against
//! 10 ms). A task that wakes itself and returns `Pending` is rescheduled as a
//! *yield*: to the back of the run queue, with an idle worker notified to steal.
//! After [`BUDGET`] bytes the socket does that once, like tokio's own cooperative
//! budget but counted in bytes, so the crypto of the two sides spreads over cores.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read and written between two yields (two 64 KiB frames each way).
pub(crate) const BUDGET: usize = 256 * 1024;

/// An I/O object that returns `Pending` (waking itself) once per `budget` bytes moved.
#[derive(Debug)]
pub(crate) struct Yielding<S> {
    inner: S,
    /// Bytes to move between yields (0: never yield).
    budget: usize,
    /// Bytes moved since the last yield.
    moved: usize,
}

impl<S> Yielding<S> {
    /// A socket that yields every `budget` bytes (0: never).
    pub(crate) fn new(inner: S, budget: usize) -> Self {
        Self {
            inner,
            budget,
            moved: 0,
        }
    }

    /// `Pending` (with the task woken again) if the budget is spent.
    fn spent(&mut self, cx: &mut Context<'_>) -> bool {
        if self.budget == 0 || self.moved < self.budget {
            return false;
        }
        self.moved = 0;
        cx.waker().wake_by_ref();
        true
    }

    fn count<T>(&mut self, r: &Poll<io::Result<T>>, n: impl FnOnce(&T) -> usize) {
        if let Poll::Ready(Ok(v)) = r {
            self.moved += n(v);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Yielding<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.spent(cx) {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.count(&r, |_| n);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Yielding<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.spent(cx) {
            return Poll::Pending;
        }
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.count(&r, |n| *n);
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.spent(cx) {
            return Poll::Pending;
        }
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.count(&r, |n| *n);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::task::{ArcWake, waker};

    use super::*;
    use crate::test_io::Recorder;

    /// A waker that counts its wakes.
    struct Count(AtomicUsize);

    impl ArcWake for Count {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Polls `op` once per step; returns which steps yielded, checking that a
    /// yield (and only a yield) woke the task.
    fn steps<S>(
        s: &mut Yielding<S>,
        n: usize,
        mut op: impl FnMut(&mut Yielding<S>, &mut Context<'_>, usize) -> bool,
    ) -> Vec<bool> {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let w = waker(count.clone());
        let mut cx = Context::from_waker(&w);
        (0..n)
            .map(|i| {
                let before = count.0.load(Ordering::Relaxed);
                let pending = op(s, &mut cx, i);
                assert_eq!(
                    count.0.load(Ordering::Relaxed) - before,
                    pending as usize,
                    "step {i}"
                );
                pending
            })
            .collect()
    }

    #[test]
    fn writes_yield_once_per_budget() {
        // (budget, write sizes, which writes yield)
        let cases: &[(usize, &[usize], &[bool])] = &[
            (0, &[300_000, 300_000, 300_000], &[false, false, false]),
            (1000, &[999, 1, 5, 5], &[false, false, true, false]),
            (
                1000,
                &[400, 400, 400, 10, 2000, 10],
                &[false, false, false, true, false, true],
            ),
        ];
        for (budget, sizes, want) in cases {
            let mut s = Yielding::new(Recorder::taking(&[]), *budget);
            let got = steps(&mut s, sizes.len(), |s, cx, i| {
                Pin::new(s).poll_write(cx, &vec![7; sizes[i]]).is_pending()
            });
            assert_eq!(&got, want, "budget {budget}, writes {sizes:?}");
            // A refused write took nothing; the others went through whole.
            let taken: usize = sizes
                .iter()
                .zip(*want)
                .filter(|(_, y)| !**y)
                .map(|(n, _)| n)
                .sum();
            assert_eq!(s.inner.out.len(), taken);
        }
    }

    #[test]
    fn reads_yield_once_per_budget_and_lose_nothing() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut s = Yielding::new(&data[..], 2500);
        let mut out = Vec::new();
        let got = steps(&mut s, 7, |s, cx, _| {
            let mut buf = [0u8; 1000];
            let mut rb = ReadBuf::new(&mut buf);
            let pending = Pin::new(s).poll_read(cx, &mut rb).is_pending();
            out.extend_from_slice(rb.filled());
            pending
        });
        // 1000 + 1000 + 1000 moved, then a yield; again.
        assert_eq!(got, [false, false, false, true, false, false, false]);
        assert_eq!(out, data[..6000]);
    }
}
