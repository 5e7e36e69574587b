//! The state of one peer's link, as data: which connection is used, who dials.
//!
//! One connection per pair of nodes carries frames. Either side may dial; the
//! acceptor decides with [`LinkState::offer`]: it refuses as `Duplicate` a dial from
//! the incarnation it is already connected to, and, while dialing itself, a dial
//! from a node with a higher address (the lower address's dial wins). A dial that
//! completes after an inbound link was accepted is dropped ([`LinkState::dialed`]).
//! A dial from a new incarnation (the remote restarted) replaces the old link.
//!
//! Reachability: a remote never dialed is *unknown* and sends to it queue (lazy
//! connect). Once a dial fails ([`LinkState::dial_failed`]) it is *known down*:
//! sends and calls to it fail at once with `Unreachable` instead of waiting out
//! their deadlines, while the driver keeps probing with backoff. A connection that
//! comes up (dialed or accepted), or a new address, ends that.
//!
//! Each transition returns what to do next; the peer's driver (`peer.rs`) only does
//! the I/O.

use std::net::SocketAddr;

use crate::handshake::Refusal;

/// The link to one remote node.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// Where the remote listens.
    net: SocketAddr,
    /// A dial of ours is in progress.
    dialing: bool,
    /// Incarnation of the remote on the live (or being adopted) connection.
    connected: Option<u64>,
    /// Our last dial failed and no connection came up since.
    down: bool,
}

/// What a change of the remote's address means for the live connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// Same address: keep it.
    Same,
    /// New address: drop the live connection; the next dial goes to the new one.
    Redirected,
}

impl LinkState {
    /// No connection, no dial, the remote listening at `net`.
    pub(crate) fn new(net: SocketAddr) -> Self {
        Self {
            net,
            dialing: false,
            connected: None,
            down: false,
        }
    }

    /// A word for the admin page: `up`, `dialing` or `down`.
    pub(crate) fn label(&self) -> &'static str {
        match (self.connected, self.dialing) {
            (Some(_), _) => "up",
            (None, true) => "dialing",
            (None, false) => "down",
        }
    }

    /// Our dial starts: where to connect. `None`: an inbound connection was
    /// accepted and is being adopted, so no dial starts. (Dialing then let the
    /// remote, still dialing us and losing the tie, accept ours and drop the one we
    /// accepted: each side kept a connection the other had closed, and the frames
    /// written on them were lost.)
    pub(crate) fn dial_started(&mut self) -> Option<SocketAddr> {
        if self.connected.is_some() {
            return None;
        }
        self.dialing = true;
        Some(self.net)
    }

    /// Our dial ended, however: done, failed, or abandoned (peer closed).
    pub(crate) fn dial_ended(&mut self) {
        self.dialing = false;
    }

    /// Our dial failed (refused, timed out, not authenticated): the remote is known
    /// down until a connection comes up. A live link (accepted meanwhile) stays up.
    pub(crate) fn dial_failed(&mut self) {
        self.down = self.connected.is_none();
    }

    /// Whether the remote is known down: sends to it fail fast.
    pub(crate) fn known_down(&self) -> bool {
        self.down
    }

    /// Our dial was answered by `incarnation` of the remote. `Err(Duplicate)`: an
    /// inbound link was accepted meanwhile and is the one in use; drop this one.
    pub(crate) fn dialed(&mut self, incarnation: u64) -> Result<(), Refusal> {
        if self.connected.is_some() {
            return Err(Refusal::Duplicate);
        }
        self.connected = Some(incarnation);
        Ok(())
    }

    /// The remote's `incarnation` dials us: the verdict to answer. Accepting
    /// reserves the link for that connection. `ours_wins`: our own dial wins a tie
    /// (our address is the lower).
    pub(crate) fn offer(&mut self, incarnation: u64, ours_wins: bool) -> Result<(), Refusal> {
        match self.connected {
            Some(current) if current == incarnation => return Err(Refusal::Duplicate),
            Some(_) => {} // the remote restarted: the new connection replaces the old
            None if self.dialing && ours_wins => return Err(Refusal::Duplicate),
            None => {}
        }
        self.connected = Some(incarnation);
        Ok(())
    }

    /// An accepted offer was lost before it was adopted (the verdict could not be
    /// written): release the reservation, unless something else holds the link.
    pub(crate) fn offer_lost(&mut self, incarnation: u64) {
        self.release(incarnation);
    }

    /// A connection to `incarnation` (dialed or adopted) goes live.
    pub(crate) fn up(&mut self, incarnation: u64) {
        self.connected = Some(incarnation);
        self.down = false;
    }

    /// The live connection to `incarnation` ended. A connection that replaced it
    /// meanwhile keeps the link.
    pub(crate) fn down(&mut self, incarnation: u64) {
        self.release(incarnation);
    }

    fn release(&mut self, incarnation: u64) {
        if self.connected == Some(incarnation) {
            self.connected = None;
        }
    }

    /// Membership lists the remote at `net`.
    pub(crate) fn moved(&mut self, net: SocketAddr) -> Moved {
        if self.net == net {
            return Moved::Same;
        }
        self.net = net;
        self.down = false; // nothing is known about the new address yet
        Moved::Redirected
    }

    /// Incarnation of the remote on the link in use, if any.
    #[cfg(test)]
    fn connected(&self) -> Option<u64> {
        self.connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUP: Result<(), Refusal> = Err(Refusal::Duplicate);

    fn net(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    #[test]
    fn first_dial() {
        let mut s = LinkState::new(net(1));
        assert_eq!(s.dial_started(), Some(net(1)));
        assert_eq!(s.dialed(7), Ok(()));
        s.dial_ended();
        s.up(7);
        assert_eq!(s.connected(), Some(7));
    }

    #[test]
    fn first_inbound() {
        let mut s = LinkState::new(net(1));
        assert_eq!(
            s.offer(7, true),
            Ok(()),
            "not dialing: accepted whoever wins ties"
        );
        s.up(7);
        assert_eq!(s.connected(), Some(7));
    }

    /// Both nodes dial at once, events in either order. The lower address (ours
    /// wins) refuses the remote's dial and keeps its own; the higher accepts the
    /// remote's and drops its own if it gets through at all. If our dial is answered
    /// before the remote's arrives, the link exists and the remote's is the duplicate.
    #[test]
    fn simultaneous_dial() {
        // (ours wins, the remote's dial arrives before ours is answered,
        //  verdict on the remote's dial, outcome of ours)
        let cases = [
            (true, true, DUP, Ok(())),
            (true, false, DUP, Ok(())),
            (false, true, Ok(()), DUP),
            (false, false, DUP, Ok(())),
        ];
        for (ours_wins, offer_first, want_offer, want_dialed) in cases {
            let mut s = LinkState::new(net(1));
            s.dial_started();
            let (offer, dialed) = if offer_first {
                let offer = s.offer(7, ours_wins);
                (offer, s.dialed(7))
            } else {
                let dialed = s.dialed(7);
                (s.offer(7, ours_wins), dialed)
            };
            s.dial_ended();
            let case = format!("ours wins {ours_wins}, offer first {offer_first}");
            assert_eq!((offer, dialed), (want_offer, want_dialed), "{case}");
            assert_eq!(s.connected(), Some(7), "{case}");
        }
    }

    #[test]
    fn peer_restart_with_a_new_incarnation() {
        let mut s = LinkState::new(net(1));
        s.up(7);
        assert_eq!(
            s.offer(8, true),
            Ok(()),
            "a new incarnation replaces the link"
        );
        s.down(7); // the old connection ends after it was replaced
        assert_eq!(s.connected(), Some(8));
        s.up(8);
        assert_eq!(s.connected(), Some(8));
    }

    /// The remote's dial was accepted (the link reserved for it) and our driver
    /// wants to dial before adopting it: no dial, so the remote never gets a second
    /// connection to prefer over the one we adopt.
    #[test]
    fn no_dial_while_an_inbound_is_adopted() {
        let mut s = LinkState::new(net(1));
        assert_eq!(s.offer(7, false), Ok(()));
        assert_eq!(s.dial_started(), None);
        assert_eq!(s.label(), "up");
        s.offer_lost(7);
        assert_eq!(s.dial_started(), Some(net(1)), "the reservation is gone");
    }

    #[test]
    fn duplicate() {
        let mut s = LinkState::new(net(1));
        s.up(7);
        assert_eq!(s.offer(7, false), DUP);
        assert_eq!(s.offer(7, true), DUP);
        assert_eq!(s.connected(), Some(7));
    }

    #[test]
    fn close_during_dial() {
        let mut s = LinkState::new(net(1));
        s.dial_started();
        s.dial_ended(); // abandoned: the peer closed
        assert_eq!(s.connected(), None);
        assert_eq!(s.offer(7, true), Ok(()), "no dial in progress any more");
    }

    #[test]
    fn close_after_connect() {
        let mut s = LinkState::new(net(1));
        s.up(7);
        s.down(7);
        assert_eq!(s.connected(), None);
        assert_eq!(
            s.offer(7, true),
            Ok(()),
            "the same incarnation may link again"
        );
    }

    #[test]
    fn offer_lost_before_adoption() {
        let mut s = LinkState::new(net(1));
        assert_eq!(s.offer(7, false), Ok(()));
        s.offer_lost(7);
        assert_eq!(s.connected(), None);
        // A loss of an older offer leaves a newer link alone.
        assert_eq!(s.offer(8, false), Ok(()));
        s.offer_lost(7);
        assert_eq!(s.connected(), Some(8));
    }

    /// Known down after a failed dial, until a connection comes up or the address
    /// changes; never before a first dial (lazy connect queues).
    #[test]
    fn dial_failed_marks_down_until_up() {
        // (events, known down after them)
        let cases: [(&[&str], bool); 7] = [
            (&[], false),
            (&["fail"], true),
            (&["fail", "fail"], true),
            (&["fail", "up"], false),
            (&["fail", "moved"], false),
            (&["up", "fail"], false),
            (&["fail", "up", "down", "fail"], true),
        ];
        for (events, want) in cases {
            let mut s = LinkState::new(net(1));
            for event in events {
                match *event {
                    "fail" => {
                        s.dial_started();
                        s.dial_failed();
                        s.dial_ended();
                    }
                    "up" => s.up(7),
                    "down" => s.down(7),
                    "moved" => assert_eq!(s.moved(net(2)), Moved::Redirected),
                    _ => unreachable!(),
                }
            }
            assert_eq!(s.known_down(), want, "{events:?}");
        }
    }

    #[test]
    fn moved() {
        let mut s = LinkState::new(net(1));
        assert_eq!(s.moved(net(1)), Moved::Same);
        assert_eq!(s.moved(net(2)), Moved::Redirected);
        assert_eq!(s.dial_started(), Some(net(2)));
    }
}
