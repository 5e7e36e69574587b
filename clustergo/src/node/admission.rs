//! Admission of inbound connections that have not authenticated yet.
//!
//! At most `cap` handshakes are pending at once, so a flood of connections that
//! never speak cannot take every descriptor, task and timer of the node. Past the
//! cap, a new connection evicts the oldest pending handshake if that one has waited
//! at least [`EVICT_AFTER`], and is shed at once, unread, otherwise. A real
//! handshake ends within a round trip or two; a silent one only at its timeout. So
//! a flood cycles through the slots instead of holding them for a whole
//! `handshake_timeout`, a legitimate dialer still gets a slot during it, and a
//! handshake in progress keeps its slot for at least `EVICT_AFTER`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// How long a pending handshake keeps its slot before a newcomer may take it.
pub(crate) const EVICT_AFTER: Duration = Duration::from_millis(100);

/// What to do with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit<T> {
    /// Run its handshake as `id`; close `evicted`, the oldest pending one, if any.
    Admitted { id: u64, evicted: Option<T> },
    /// Too many handshakes pending, none old enough to evict: close it unread.
    Shed,
}

/// The pending handshakes, oldest first, each with a handle to end it.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    cap: usize,
    next_id: u64,
    slots: VecDeque<(u64, Instant, T)>,
}

impl<T> Pending<T> {
    /// At most `cap` (at least 1) handshakes pending.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            next_id: 0,
            slots: VecDeque::new(),
        }
    }

    /// The most handshakes pending at once.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Decides on a connection arriving at `now`, to be ended through `handle`.
    pub(crate) fn admit(&mut self, now: Instant, handle: T) -> Admit<T> {
        let mut evicted = None;
        if self.slots.len() >= self.cap {
            match self.slots.front() {
                Some((_, since, _)) if now.duration_since(*since) >= EVICT_AFTER => {
                    evicted = self.slots.pop_front().map(|(_, _, h)| h);
                }
                _ => return Admit::Shed,
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.slots.push_back((id, now, handle));
        Admit::Admitted { id, evicted }
    }

    /// Handshake `id` ended (authenticated, failed, or evicted): frees its slot.
    pub(crate) fn done(&mut self, id: u64) {
        // Ids grow with arrival, so the queue is sorted by id.
        if let Ok(i) = self.slots.binary_search_by_key(&id, |(id, _, _)| *id) {
            self.slots.remove(i);
        }
    }

    /// Handshakes pending now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Step {
        /// A connection named `.1` arrives at `.0` ms.
        Arrive(u64, &'static str),
        /// The handshake admitted as id `.0` ends.
        Done(u64),
    }
    use Step::*;

    #[test]
    fn cap_sheds_young_and_evicts_old() {
        let t0 = Instant::now();
        let mut p = Pending::new(2);
        let evict = EVICT_AFTER.as_millis() as u64;
        #[rustfmt::skip]
        let cases: &[(Step, Option<Admit<&str>>, usize, &str)] = &[
            // (step, verdict for arrivals, pending after, why)
            (Arrive(0, "a"), Some(Admit::Admitted { id: 0, evicted: None }), 1, "room"),
            (Arrive(1, "b"), Some(Admit::Admitted { id: 1, evicted: None }), 2, "room, now full"),
            (Arrive(2, "c"), Some(Admit::Shed), 2, "full, the oldest is young: shed the newcomer"),
            (Arrive(evict, "d"), Some(Admit::Admitted { id: 2, evicted: Some("a") }), 2, "full, the oldest waited long enough: evict it"),
            (Done(0), None, 2, "an evicted handshake's end frees nothing more"),
            (Arrive(evict + 1, "e"), Some(Admit::Admitted { id: 3, evicted: Some("b") }), 2, "the next oldest is evicted"),
            (Done(3), None, 1, "an ended handshake frees its slot"),
            (Arrive(evict + 2, "f"), Some(Admit::Admitted { id: 4, evicted: None }), 2, "room again"),
            (Done(2), None, 1, "ends in any order"),
            (Done(2), None, 1, "twice is harmless"),
        ];
        for (step, want, len, why) in cases {
            match *step {
                Arrive(ms, name) => {
                    let got = p.admit(t0 + Duration::from_millis(ms), name);
                    assert_eq!(Some(got), *want, "{step:?}: {why}");
                }
                Done(id) => p.done(id),
            }
            assert_eq!(p.len(), *len, "{step:?}: {why}");
        }
    }

    #[test]
    fn cap_of_zero_admits_one() {
        let t0 = Instant::now();
        let mut p = Pending::new(0);
        assert_eq!(p.cap(), 1);
        assert!(matches!(p.admit(t0, ()), Admit::Admitted { .. }));
        assert_eq!(p.admit(t0, ()), Admit::Shed);
    }
}
