//! Keepalive for node links and stream sessions: telling a silent network from an
//! idle peer.
//!
//! Each side writes a keepalive when it wrote nothing for `keepalive_interval`, so a
//! live peer is heard at least once an interval. Reads are noted per read call on
//! the socket ([`Heard`]), never per frame, and checked once per interval by a
//! [`Watchdog`]: `keepalive_timeout` without a read (at least three intervals)
//! means the network stopped delivering.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::node::Config;

/// Sets `flag`, skipping the store when it is already set (no cache-line traffic
/// on a busy connection).
pub(crate) fn mark(flag: &AtomicBool) {
    if !flag.load(Ordering::Relaxed) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// A socket (or its read half) that sets `heard` on each read that delivers bytes;
/// writes pass through.
#[derive(Debug)]
pub(crate) struct Heard<R> {
    inner: R,
    heard: Arc<AtomicBool>,
}

impl<R> Heard<R> {
    pub(crate) fn new(inner: R, heard: Arc<AtomicBool>) -> Self {
        Self { inner, heard }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Heard<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            mark(&self.heard);
        }
        r
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Heard<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What a keepalive tick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Something was read lately, or not for long enough to tell.
    Alive,
    /// Nothing read for the keepalive timeout: the connection is dead.
    Silent,
}

/// Ticks once per keepalive interval and counts the intervals without a read.
#[derive(Debug)]
pub(crate) struct Watchdog {
    tick: Interval,
    idle: Idle,
}

impl Watchdog {
    /// A watchdog with the node's keepalive settings; the first tick is one
    /// interval from now, and late ticks do not pile up.
    pub(crate) fn new(config: &Config) -> Self {
        let interval = config.keepalive_interval.max(Duration::from_millis(1));
        let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            tick,
            idle: Idle::new(config.keepalive_timeout, interval),
        }
    }

    /// Waits for the next tick and takes `heard` (clearing it) into account.
    pub(crate) fn poll_tick(&mut self, cx: &mut Context<'_>, heard: &AtomicBool) -> Poll<Tick> {
        self.tick
            .poll_tick(cx)
            .map(|_| self.idle.observe(heard.swap(false, Ordering::Relaxed)))
    }

    /// [`poll_tick`](Self::poll_tick) as a future.
    pub(crate) async fn tick(&mut self, heard: &AtomicBool) -> Tick {
        std::future::poll_fn(|cx| self.poll_tick(cx, heard)).await
    }
}

/// The pure count behind [`Watchdog`]: consecutive intervals without a read.
#[derive(Debug)]
struct Idle {
    /// Intervals without a read that mean dead: the timeout in intervals, at least
    /// three (a peer idle itself writes once per interval, so one quiet interval
    /// is normal jitter).
    silent: u32,
    quiet: u32,
}

impl Idle {
    fn new(timeout: Duration, interval: Duration) -> Self {
        let n = timeout.as_nanos().div_ceil(interval.as_nanos().max(1));
        Self {
            silent: n.clamp(3, u32::MAX as u128) as u32,
            quiet: 0,
        }
    }

    /// One interval passed; `heard`: something was read during it.
    fn observe(&mut self, heard: bool) -> Tick {
        self.quiet = if heard { 0 } else { self.quiet + 1 };
        if self.quiet >= self.silent {
            Tick::Silent
        } else {
            Tick::Alive
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_after_the_timeout_in_intervals_at_least_three() {
        let ms = Duration::from_millis;
        // (timeout, interval, intervals heard (true) or quiet (false), last verdict)
        let cases: [(u64, u64, &[bool], Tick); 6] = [
            (5000, 1000, &[false; 4], Tick::Alive),
            (5000, 1000, &[false; 5], Tick::Silent),
            (5500, 1000, &[false; 5], Tick::Alive), // rounds up: 6 intervals
            (100, 1000, &[false; 3], Tick::Silent), // at least three
            (100, 1000, &[false, false], Tick::Alive),
            (3000, 1000, &[false, false, true, false, false], Tick::Alive), // a read resets
        ];
        for (timeout, interval, seen, want) in cases {
            let mut idle = Idle::new(ms(timeout), ms(interval));
            let last = seen.iter().map(|&h| idle.observe(h)).last().unwrap();
            assert_eq!(last, want, "{timeout} ms / {interval} ms, {seen:?}");
        }
    }
}
