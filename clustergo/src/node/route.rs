//! Where a frame goes next, and putting it on its way.
//!
//! [`next_hop`] is the whole routing rule, pure over the membership [`View`]: the
//! node itself; the target directly (same cluster, or harbor to harbor); else a
//! harbor — of the own cluster, or, for a harbor, of the target's cluster. Routing
//! ignores `export` (visibility limits lookups, not addressing), so a node known by
//! other means is still reached.
//!
//! [`plausible_from`] is the same rule seen from the receiving end: which senders a
//! frame arriving on the link from a given peer can come from.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{NodeInner, SendError};
use crate::addr::LogicAddr;
use crate::membership::View;
use crate::peer::Peer;

/// The next hop toward a target, as [`next_hop`] picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// This node itself.
    Local,
    /// The node at `logic` (the target, or a harbor on the way), listening at `net`.
    Peer { logic: LogicAddr, net: SocketAddr },
}

/// Why no hop leads to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// The hop is not listed in membership.
    UnknownPeer(LogicAddr),
    /// Crossing clusters needs a harbor and there is none available.
    Unreachable(LogicAddr),
}

impl From<RouteError> for SendError {
    fn from(e: RouteError) -> Self {
        match e {
            RouteError::UnknownPeer(a) => SendError::UnknownPeer(a),
            RouteError::Unreachable(a) => SendError::Unreachable(a),
        }
    }
}

/// Whether `local` links to `to` directly: same cluster, or harbor to harbor.
pub(crate) fn is_direct(local: LogicAddr, to: LogicAddr) -> bool {
    to.same_cluster(local) || (local.is_harbor() && to.is_harbor())
}

/// The harbor that carries a frame from `from` to `to` (another cluster) on its way
/// out of `local`: the own cluster's, or if `local` is a harbor, one of the target's
/// cluster. Chosen by the pair `(from, to)`, symmetric, so a reply crosses the same
/// harbors as its request while views agree. The one place that chooses a harbor.
pub(crate) fn harbor_toward(
    view: &View,
    local: LogicAddr,
    from: LogicAddr,
    to: LogicAddr,
) -> Option<LogicAddr> {
    let cluster = if local.is_harbor() {
        to.cluster()
    } else {
        local.cluster()
    };
    view.harbor_for(cluster, from, to)
}

/// The next hop from `local` for a frame from `from` (`local` itself, or the origin
/// of a frame being relayed) toward `to` (see the module docs).
pub(crate) fn next_hop(
    view: &View,
    local: LogicAddr,
    from: LogicAddr,
    to: LogicAddr,
) -> Result<Hop, RouteError> {
    if to == local {
        return Ok(Hop::Local);
    }
    let logic = if is_direct(local, to) {
        to
    } else {
        harbor_toward(view, local, from, to).ok_or(RouteError::Unreachable(to))?
    };
    let member = view.get(logic).ok_or(RouteError::UnknownPeer(logic))?;
    Ok(Hop::Peer {
        logic,
        net: member.addr.net,
    })
}

/// Whether a frame claiming to come `from` may arrive at `local` on the link from
/// `peer`: the peer itself, or a sender whose route to `local` ends with that peer
/// by [`next_hop`] — for a node, its own cluster's harbor bringing other clusters'
/// frames; for a harbor, another cluster's harbor bringing its cluster's frames
/// (a harbor answering for a target it cannot reach speaks in the target's name,
/// so its errors pass too). Anything else is forged and dropped. O(1), no lookups:
/// it runs on every arriving frame.
pub(crate) fn plausible_from(local: LogicAddr, peer: LogicAddr, from: LogicAddr) -> bool {
    if from == peer {
        return true;
    }
    if !peer.is_harbor() {
        return false;
    }
    if local.is_harbor() {
        !peer.same_cluster(local) && from.same_cluster(peer)
    } else {
        peer.same_cluster(local) && !from.same_cluster(local)
    }
}

/// Where a frame goes next.
pub(crate) enum Route {
    /// To this node itself.
    Local,
    /// Through this peer (the target, or a harbor on the way).
    Peer(Arc<Peer>),
}

impl NodeInner {
    /// The route toward `to` for a frame sent by this node.
    pub(crate) fn route(self: &Arc<Self>, to: LogicAddr) -> Result<Route, SendError> {
        let local = self.run.get().ok_or(SendError::NotStarted)?.local;
        self.route_from(local, to)
    }

    /// The route toward `to` for a frame from `from` (this node, or the origin of a
    /// frame it relays): [`next_hop`], and the hop's peer (created if new).
    pub(crate) fn route_from(
        self: &Arc<Self>,
        from: LogicAddr,
        to: LogicAddr,
    ) -> Result<Route, SendError> {
        let run = self.run.get().ok_or(SendError::NotStarted)?;
        // Sends keep working while stop drains (replies must get out) and fail once
        // the links are closed: step 4 of the stop protocol.
        if self.stopping.load(Ordering::Relaxed) && self.links.is_cancelled() {
            return Err(SendError::Stopped);
        }
        let hop = next_hop(&self.view.read(), run.local, from, to)?;
        match hop {
            Hop::Local => Ok(Route::Local),
            Hop::Peer { logic, net } => {
                if let Some(peer) = self.peers.read().get(&logic) {
                    return Ok(Route::Peer(peer.clone()));
                }
                Ok(Route::Peer(self.peer_or_spawn(logic, net)))
            }
        }
    }

    /// The peer for `logic`, created (driver spawned, no dial yet) if there is none.
    pub(super) fn peer_or_spawn(self: &Arc<Self>, logic: LogicAddr, net: SocketAddr) -> Arc<Peer> {
        let mut peers = self.peers.write();
        peers
            .entry(logic)
            .or_insert_with(|| Peer::spawn(self, logic, net))
            .clone()
    }

    /// Sends an encoded frame toward `to`. `deadline` defaults to now + send_timeout.
    pub(crate) fn send_frame(
        self: &Arc<Self>,
        to: LogicAddr,
        frame: Bytes,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let route = self.route(to)?;
        self.send_on(&route, frame, deadline)
    }

    /// Queues an encoded frame on `route`. Never blocks: a full queue is `Busy`.
    pub(crate) fn send_on(
        &self,
        route: &Route,
        frame: Bytes,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        let max = self.config.max_frame + crate::codec::LEN_SIZE;
        if frame.len() > max {
            return Err(SendError::TooLarge {
                len: frame.len(),
                max,
            });
        }
        match route {
            Route::Local => {
                let run = self.run.get().ok_or(SendError::NotStarted)?;
                run.local_tx.try_send(frame).map_err(|e| match e {
                    mpsc::error::TrySendError::Full(_) => SendError::Busy,
                    mpsc::error::TrySendError::Closed(_) => SendError::Stopped,
                })
            }
            Route::Peer(peer) => {
                let deadline =
                    deadline.unwrap_or_else(|| crate::clock::now() + self.config.send_timeout);
                peer.send(frame, deadline)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;
    use crate::membership::{Member, MembershipChange};

    fn a(s: &str) -> LogicAddr {
        s.parse().unwrap()
    }

    /// Members listed by address; each listens on a port of its own (index + 1).
    const MEMBERS: &[(&str, bool)] = &[
        ("1.1.1", false),
        ("1.1.2", false),
        ("1.3.2", false),
        ("1.255.1", false),
        ("1.255.2", false),
        ("2.1.1", true),
        ("2.1.2", false), // not exported
        ("2.255.1", false),
        ("2.255.2", false),
        ("3.1.1", false), // cluster 3 has no harbor
    ];

    fn view(local: &str) -> View {
        let added = MEMBERS
            .iter()
            .enumerate()
            .map(|(i, (logic, export))| Member {
                addr: Addr::new(a(logic), ([127, 0, 0, 1], i as u16 + 1).into()),
                export: *export,
                available: true,
            })
            .collect();
        let mut v = View::new(a(local));
        v.apply(&MembershipChange {
            added,
            ..Default::default()
        });
        v
    }

    /// The expected hop, written short: `local`, `unknown X`, `unreachable X`, or the
    /// peer's address.
    fn expect(want: &str) -> Result<Hop, RouteError> {
        match want.split_once(' ') {
            Some(("unknown", x)) => Err(RouteError::UnknownPeer(a(x))),
            Some(("unreachable", x)) => Err(RouteError::Unreachable(a(x))),
            _ if want == "local" => Ok(Hop::Local),
            _ => {
                let i = MEMBERS.iter().position(|(l, _)| *l == want).unwrap();
                Ok(Hop::Peer {
                    logic: a(want),
                    net: ([127, 0, 0, 1], i as u16 + 1).into(),
                })
            }
        }
    }

    #[test]
    fn next_hop_table() {
        // Harbor picks follow `path_key(from, to)`; the values below are what it gives
        // (`replies_retrace_their_request` checks the property that matters).
        #[rustfmt::skip]
        let cases = [
            // (local, from, to, expected, why)
            ("1.1.1", "1.1.1", "1.1.1", "local", "self"),
            ("1.1.1", "1.1.1", "1.1.2", "1.1.2", "same cluster: direct"),
            ("1.1.1", "1.1.1", "2.1.1", "H", "other cluster: own harbor"),
            ("1.1.1", "1.1.1", "2.1.2", "H", "non-exported target: routed the same"),
            ("1.1.1", "1.1.1", "3.1.1", "H", "target cluster has no harbor: own harbor decides"),
            ("3.1.1", "3.1.1", "1.1.1", "unreachable 1.1.1", "own cluster has no harbor"),
            ("1.1.1", "1.1.1", "1.1.9", "unknown 1.1.9", "unknown target, same cluster"),
            ("1.1.1", "1.1.1", "2.1.9", "H", "unknown target, other cluster: harbor decides"),
            ("1.255.1", "1.255.1", "2.255.2", "2.255.2", "harbor to harbor: direct"),
            ("1.255.1", "1.255.1", "1.1.2", "1.1.2", "harbor to its own cluster: direct"),
            ("1.255.1", "1.3.2", "2.1.1", "H", "relay to another cluster: its harbor"),
            ("1.255.2", "1.3.2", "2.1.1", "H", "another relay of the pair: the same harbor"),
            ("1.255.1", "1.255.1", "3.1.1", "unreachable 3.1.1", "harbor to a cluster without harbor"),
            ("1.255.1", "1.255.1", "4.255.1", "unknown 4.255.1", "harbor to an unknown harbor"),
            ("1.255.1", "1.255.1", "1.255.1", "local", "harbor to itself"),
        ];
        for (local, from, to, want, why) in cases {
            let v = view(local);
            let got = next_hop(&v, a(local), a(from), a(to));
            let want = match want {
                // The harbor the pair's key picks in the cluster the frame goes to next.
                "H" => harbor_toward(&v, a(local), a(from), a(to))
                    .unwrap()
                    .to_string(),
                w => w.to_string(),
            };
            assert_eq!(got, expect(&want), "{local} ({from} → {to}): {why}");
        }
    }

    /// Every hop of a frame from `from` to `to`, each node routing with its own view.
    fn path(from: &str, to: &str) -> Vec<String> {
        let (from, to) = (a(from), a(to));
        let mut at = from;
        let mut hops = vec![from.to_string()];
        for _ in 0..MEMBERS.len() {
            match next_hop(&view(&at.to_string()), at, from, to) {
                Ok(Hop::Local) => return hops,
                Ok(Hop::Peer { logic, .. }) => {
                    hops.push(logic.to_string());
                    at = logic;
                }
                Err(e) => panic!("{from} → {to}: {e:?} at {at}"),
            }
        }
        panic!("{from} → {to}: routing loop {hops:?}");
    }

    #[test]
    fn replies_retrace_their_request() {
        // Issue 17: 1.3.2 → 2.1.1 went out through 1.255.2 and came back through
        // 1.255.1 when the harbor was picked by target address alone.
        let nodes = [
            "1.1.1", "1.1.2", "1.3.2", "1.255.1", "1.255.2", "2.1.1", "2.1.2",
        ];
        let mut harbors_used = std::collections::BTreeSet::new();
        for x in nodes {
            for y in nodes {
                if a(x).cluster() == a(y).cluster() {
                    continue;
                }
                let there = path(x, y);
                let mut back = path(y, x);
                back.reverse();
                assert_eq!(there, back, "{x} → {y} and its reply");
                harbors_used.extend(there.into_iter().filter(|h| a(h).is_harbor()));
            }
        }
        assert_eq!(harbors_used.len(), 4, "pairs spread over every harbor");
    }

    #[test]
    fn plausible_from_table() {
        #[rustfmt::skip]
        let cases = [
            // (local, link from, claimed sender, plausible, why)
            ("1.1.1", "1.1.2", "1.1.2", true, "a node speaks for itself"),
            ("1.1.1", "1.3.1", "1.1.2", false, "a node speaks for another of the cluster"),
            ("1.1.1", "1.3.1", "2.1.1", false, "a node speaks for another cluster"),
            ("1.1.1", "1.3.1", "1.1.1", false, "a node speaks for the receiver"),
            ("1.1.1", "2.1.1", "2.1.1", true, "a node of another cluster, for itself"),
            ("1.1.1", "1.255.1", "1.255.1", true, "own harbor for itself"),
            ("1.1.1", "1.255.1", "2.1.1", true, "own harbor brings another cluster"),
            ("1.1.1", "1.255.1", "2.255.7", true, "own harbor brings another harbor"),
            ("1.1.1", "1.255.1", "1.1.2", false, "own cluster never comes through a harbor"),
            ("1.1.1", "1.255.1", "1.1.1", false, "nor does the receiver itself"),
            ("1.1.1", "2.255.1", "2.1.1", false, "another cluster's harbor never links to a node"),
            ("1.255.1", "1.1.1", "1.1.1", true, "a node to its harbor, for itself"),
            ("1.255.1", "1.1.1", "2.1.1", false, "a node cannot relay into a harbor"),
            ("1.255.1", "2.255.1", "2.1.1", true, "a harbor brings its own cluster"),
            ("1.255.1", "2.255.1", "2.255.2", true, "a harbor brings a harbor of its cluster"),
            ("1.255.1", "2.255.1", "3.1.1", false, "a harbor never brings a third cluster"),
            ("1.255.1", "2.255.1", "1.1.1", false, "nor the receiver's cluster"),
            ("1.255.1", "1.255.2", "1.255.2", true, "a harbor of the same cluster, for itself"),
            ("1.255.1", "1.255.2", "2.1.1", false, "a harbor of the same cluster relays nothing here"),
        ];
        for (local, peer, from, want, why) in cases {
            assert_eq!(
                plausible_from(a(local), a(peer), a(from)),
                want,
                "{from} on the link from {peer} at {local}: {why}"
            );
        }
    }

    /// Follows `next_hop` from `start` toward `to` for a frame sent by `sender`,
    /// checking each hop's arrival; returns the hops passed (the last is `to`, or
    /// the node where routing ended).
    fn walk(start: LogicAddr, to: LogicAddr, sender: LogicAddr) -> Vec<LogicAddr> {
        let mut at = start;
        let mut hops = vec![at];
        while let Ok(Hop::Peer { logic, .. }) = next_hop(&view(&at.to_string()), at, sender, to) {
            assert!(
                plausible_from(logic, at, sender),
                "{sender} → {to}: hop {at} → {logic} refused"
            );
            assert!(hops.len() < 4, "{sender} → {to}: a routing loop");
            at = logic;
            hops.push(at);
        }
        hops
    }

    /// Every sender the routing rule brings over a link passes the check, and so
    /// does a harbor's error answered in the target's name from any harbor on the
    /// way (members and non-members alike as targets).
    #[test]
    fn routed_frames_are_plausible() {
        let targets = MEMBERS
            .iter()
            .map(|(l, _)| *l)
            .chain(["1.1.9", "2.1.9", "4.1.1"]);
        for (from, _) in MEMBERS {
            for to in targets.clone() {
                let (from, to) = (a(from), a(to));
                for hop in walk(from, to, from) {
                    if hop.is_harbor() && hop != from && hop != to {
                        walk(hop, from, to);
                    }
                }
            }
        }
    }

    #[test]
    fn direct_links() {
        assert!(is_direct(a("1.1.1"), a("1.2.1")));
        assert!(is_direct(a("1.255.1"), a("2.255.1")));
        assert!(!is_direct(a("1.255.1"), a("2.1.1")));
        assert!(!is_direct(a("1.1.1"), a("2.255.1")));
    }
}
