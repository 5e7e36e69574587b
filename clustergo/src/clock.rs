//! One clock reading shared by the frames of one socket read.
//!
//! A request's deadline, its reply's queue deadline and the timeout of a call made
//! from a reply callback each read the clock; on this VM `clock_gettime` was 3–7 %
//! of the call and message profiles. A link's reader handles the frames of one
//! socket read back to back without waiting, so it reads the clock once for up to
//! [`REUSE`] of them and lends that reading to the code it runs ([`lend`]);
//! [`now`] returns it there, and reads the clock everywhere else.
//!
//! The reading is taken before the frames are handled, so a deadline computed from
//! it is at most the handling time of [`REUSE`] frames early (microseconds), never
//! late. It is tokio's clock (`tokio::time::Instant`), so paused test time holds:
//! the reader does not yield while it lends a reading, and paused time only moves
//! when every task waits.

use std::cell::Cell;

use tokio::time::Instant;

/// Frames handled with one reading before the reader reads the clock again: bounds
/// how stale a reading gets when a socket read brings many frames.
pub(crate) const REUSE: u32 = 64;

thread_local! {
    static LENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The current time: the reading lent to this thread by a link's reader, or the
/// clock.
#[inline]
pub(crate) fn now() -> Instant {
    LENT.with(Cell::get).unwrap_or_else(Instant::now)
}

/// Runs `f` with [`now`] answering `at`. `f` must not wait (it is synchronous).
#[inline]
pub(crate) fn lend<R>(at: Instant, f: impl FnOnce() -> R) -> R {
    /// Restores the previous reading however `f` ends (a panic included).
    struct Restore(Option<Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            LENT.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(LENT.with(|c| c.replace(Some(at))));
    f()
}

/// The reader's side: a reading reused for up to [`REUSE`] frames, dropped as soon
/// as the reader had to wait for the socket.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    at: Option<Instant>,
    uses: u32,
}

impl Reading {
    /// The reading for the next frame, read anew after a wait or [`REUSE`] frames.
    pub(crate) fn next(&mut self) -> Instant {
        match self.at {
            Some(at) if self.uses < REUSE => {
                self.uses += 1;
                at
            }
            _ => {
                let at = Instant::now();
                (self.at, self.uses) = (Some(at), 1);
                at
            }
        }
    }

    /// The reader waited: time went on.
    pub(crate) fn waited(&mut self) {
        self.at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn lent_reading_is_scoped_and_reused_boundedly() {
        let t0 = Instant::now();
        let lent = t0 - Duration::from_secs(1);
        assert_eq!(lend(lent, now), lent);
        // Restored after, also after a panic inside.
        assert_eq!(now(), t0);
        let _ = std::panic::catch_unwind(|| lend(lent, || panic!("inside")));
        assert_eq!(now(), t0);
        // Nested: the inner reading wins, the outer comes back.
        assert_eq!(lend(lent, || (lend(t0, now), now())), (t0, lent));

        let mut r = Reading::default();
        let first = r.next();
        tokio::time::advance(Duration::from_millis(1)).await;
        // Reused until REUSE frames used it ...
        for _ in 1..REUSE {
            assert_eq!(r.next(), first);
        }
        // ... then read anew.
        assert_eq!(r.next(), first + Duration::from_millis(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        // After a wait, read anew at once.
        r.waited();
        assert_eq!(r.next(), first + Duration::from_millis(2));
    }
}
