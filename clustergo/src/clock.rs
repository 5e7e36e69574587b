//! One clock reading shared by the frames of one socket read.
//!
//! A request's deadline, its reply's queue deadline and the timeout of a call made
//! from a reply callback each read the clock; on this VM `clock_gettime` was 3–7 %
//! of the call and message profiles. A link's reader handles the frames of one
//! socket read back to back without waiting, so it reads the clock once for up to
//! [`REUSE`] of them, when first asked, and lends that reading to the code it runs
//! ([`Reading::lend`]); [`now`] returns it there, and reads the clock everywhere
//! else.
//!
//! The reading is taken before the frames are handled, so a deadline computed from
//! it is at most the handling time of [`REUSE`] frames early (microseconds), never
//! late. It is tokio's clock (`tokio::time::Instant`), so paused test time holds:
//! the reader does not yield while it lends a reading, and paused time only moves
//! when every task waits.

use std::cell::Cell;

use futures::{Stream, StreamExt};
use tokio::time::Instant;

/// Frames handled with one reading before the reader reads the clock again: bounds
/// how stale a reading gets when a socket read brings many frames.
pub(crate) const REUSE: u32 = 64;

/// What [`now`] answers on this thread.
#[derive(Debug, Clone, Copy)]
enum Lent {
    /// No reader here: read the clock.
    No,
    /// A reader's turn whose reading is not taken yet: the first [`now`] takes it.
    Lazy,
    At(Instant),
}

thread_local! {
    static LENT: Cell<Lent> = const { Cell::new(Lent::No) };
}

/// The current time: the reading lent to this thread by a link's reader, or the
/// clock.
#[inline]
pub(crate) fn now() -> Instant {
    LENT.with(|lent| match lent.get() {
        Lent::At(at) => at,
        Lent::No => Instant::now(),
        Lent::Lazy => {
            let at = Instant::now();
            lent.set(Lent::At(at));
            at
        }
    })
}

/// The reader's side: a reading reused for up to [`REUSE`] frames, dropped as soon
/// as the reader had to wait for the socket. Taken only when something asks
/// ([`now`]): frames that need no time (messages) cost no reading.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    at: Option<Instant>,
    uses: u32,
}

impl Reading {
    /// Runs `f` (the handling of one frame, synchronous) with [`now`] answering
    /// this reading.
    pub(crate) fn lend<R>(&mut self, f: impl FnOnce() -> R) -> R {
        /// Takes back the reading (taken inside, maybe) and restores what was
        /// lent before, however `f` ends (a panic included).
        struct Back<'a> {
            reading: &'a mut Reading,
            prev: Lent,
        }
        impl Drop for Back<'_> {
            fn drop(&mut self) {
                if let Lent::At(at) = LENT.with(|c| c.replace(self.prev)) {
                    let r = &mut *self.reading;
                    if r.at.is_none() {
                        (r.at, r.uses) = (Some(at), 0);
                    }
                    r.uses += 1;
                }
            }
        }
        if self.uses >= REUSE {
            self.at = None;
        }
        let lent = self.at.map_or(Lent::Lazy, Lent::At);
        let prev = LENT.with(|c| c.replace(lent));
        let _back = Back {
            reading: self,
            prev,
        };
        f()
    }

    /// The next item of `frames`; a wait for it (the stream was not ready) drops
    /// the reading and runs `on_wait` first: everything read so far is handled.
    pub(crate) async fn next_of<S: Stream + Unpin>(
        &mut self,
        frames: &mut S,
        mut on_wait: impl FnMut(),
    ) -> Option<S::Item> {
        std::future::poll_fn(|cx| {
            let next = frames.poll_next_unpin(cx);
            if next.is_pending() {
                self.at = None;
                on_wait();
            }
            next
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_reading_is_lent_lazily_scoped_and_reused_boundedly() {
        let ms = Duration::from_millis;
        let t0 = Instant::now();
        let mut r = Reading::default();
        // Nothing asks: no reading is taken.
        r.lend(|| {});
        assert!(r.at.is_none());
        // Taken on first use, then lent as it was, time going on or not.
        assert_eq!(r.lend(now), t0);
        tokio::time::advance(ms(1)).await;
        assert_eq!(r.lend(|| (now(), now())), (t0, t0));
        // Outside the reader's turn: the clock.
        assert_eq!(now(), t0 + ms(1));
        // Restored after a panic too.
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.lend(|| panic!("inside"))));
        assert_eq!(now(), t0 + ms(1));
        // Reused for REUSE frames in all, then read anew.
        let used = r.uses;
        for _ in used..REUSE {
            assert_eq!(r.lend(now), t0);
        }
        assert_eq!(r.lend(now), t0 + ms(1));
        // After a wait for the socket: read anew at once.
        tokio::time::advance(ms(1)).await;
        let mut waits = futures::stream::pending::<()>();
        let mut waited = 0;
        assert!(futures::FutureExt::now_or_never(r.next_of(&mut waits, || waited += 1)).is_none());
        assert_eq!(waited, 1, "the reader's wait is announced");
        assert_eq!(r.lend(now), t0 + ms(2));
        // A ready item is no wait.
        let mut ready = futures::stream::iter([1]);
        let next = r.next_of(&mut ready, || waited += 1);
        assert_eq!(futures::FutureExt::now_or_never(next), Some(Some(1)));
        assert_eq!(waited, 1);
    }
}
