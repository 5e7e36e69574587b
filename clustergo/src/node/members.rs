//! Applying membership changes to a running node (the view, its peers, itself),
//! and leaving membership gracefully.
//!
//! A member that leaves membership may still be answering calls: its peer is taken
//! out of the peer map at once (new sends to it fail: it is no longer routed to),
//! but it is *retired*, not closed, while calls that went to it still wait, so their
//! replies arrive on its link. Calls that merely crossed it (a harbor) cannot be
//! answered through it any more and end `Disconnected` at once — unless the harbor
//! drained first (unavailable before removal, as [`Node::leave`] does): then those
//! calls were moved to the harbor their replies now take when it became unavailable.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Node, NodeInner, Route};
use crate::membership::{Membership, MembershipAdmin, MembershipChange, MembershipError};
use crate::peer::Peer;

/// How often a retired peer checks whether calls still wait on it. Each call ends
/// by its deadline at the latest, so retirement is bounded by the longest of them.
const RETIRE_POLL: Duration = Duration::from_millis(10);

impl NodeInner {
    /// Updates the view, retires the peers of members that left (see the module
    /// docs), redirects peers that moved, and stops the node if it was removed itself.
    fn apply_membership(self: &Arc<Self>, change: &MembershipChange) {
        let Some(run) = self.run.get() else { return };
        self.view.write().apply(change);
        let mut gone = Vec::new();
        {
            let mut peers = self.peers.write();
            for m in &change.removed {
                self.streams.drop_peer(m.logic());
                gone.extend(peers.remove(&m.logic()));
            }
            for m in &change.updated {
                if let Some(peer) = peers.get(&m.logic()) {
                    peer.set_net(m.addr.net);
                }
            }
        }
        // A harbor draining (unavailable, still listed) is no longer chosen: replies
        // to calls that crossed it come back through the harbor routing picks now.
        let draining: Vec<Arc<Peer>> = {
            let peers = self.peers.read();
            change
                .updated
                .iter()
                .filter(|m| !m.available && m.logic().is_harbor())
                .filter_map(|m| peers.get(&m.logic()).cloned())
                .collect()
        };
        for peer in draining {
            self.rpc_client
                .reroute_via(peer.id(), |target| match self.route(target) {
                    Ok(Route::Peer(p)) if p.id() != peer.id() => Some(p.id()),
                    _ => None,
                });
        }
        for peer in gone {
            self.rpc_client.fail_relayed_via(peer.id(), peer.remote());
            if self.rpc_client.waits_on(peer.id()) {
                self.spawn(retire(self.clone(), peer));
            } else {
                peer.close();
            }
        }
        if change.removed.iter().any(|m| m.logic() == run.local) {
            tracing::warn!(node = %run.local, "removed from membership: stopping");
            self.stop();
        }
    }
}

/// Keeps a removed member's link open until no call waits on it (or stop), then
/// closes it. A reply still on its way arrives; a lost link fails what is left.
async fn retire(inner: Arc<NodeInner>, peer: Arc<Peer>) {
    tracing::debug!(peer = %peer.remote(), "removed from membership: link kept for pending replies");
    while inner.rpc_client.waits_on(peer.id()) {
        tokio::select! {
            biased;
            _ = inner.links.cancelled() => break,
            _ = tokio::time::sleep(RETIRE_POLL) => {}
        }
    }
    peer.close();
}

impl Node {
    /// Leaves membership gracefully, then stops: nothing in flight is lost.
    ///
    /// 1. marks this node unavailable in `admin` (the membership it was started
    ///    on): [`get_addr_by_type`](Self::get_addr_by_type) stops offering it, and
    ///    harbors stop routing through it; calls by address still reach it;
    /// 2. waits [`Config::leave_grace`](super::Config::leave_grace) for the others to
    ///    see that, then for the requests it is serving to be answered and its served
    ///    streaming calls to end (up to
    ///    [`Config::drain_timeout`](super::Config::drain_timeout));
    /// 3. removes itself from membership (callers keep its link for replies to
    ///    calls still pending) and [`shutdown`](Self::shutdown)s; the shutdown's
    ///    drain waits only for what is left of that same `drain_timeout`.
    ///
    /// A backend error at step 1 or 3 is returned and the node keeps running
    /// (unavailable after step 1). A node not listed any more just shuts down.
    pub async fn leave(
        &self,
        admin: &(impl MembershipAdmin + ?Sized),
    ) -> Result<(), MembershipError> {
        let inner = &self.inner;
        let local = inner
            .run
            .get()
            .ok_or_else(|| MembershipError::Refused("node not started".into()))?
            .local;
        if let Some(mut me) = self.member(local) {
            if me.available {
                me.available = false;
                admin.put(me).await?;
            }
            tracing::info!(node = %local, "leaving: unavailable, draining");
            tokio::time::sleep(inner.config.leave_grace).await;
            if !inner.drain().await {
                tracing::warn!(node = %local, "leave: requests or streaming calls still unanswered after the drain timeout");
            }
            admin.remove(local).await?;
        }
        self.shutdown().await;
        Ok(())
    }
}

/// Applies membership changes until stop. Owns the backend so it lives as long.
pub(super) async fn membership_loop(
    inner: Arc<NodeInner>,
    mut changes: mpsc::UnboundedReceiver<MembershipChange>,
    membership: Box<dyn Membership>,
) {
    loop {
        tokio::select! {
            biased;
            _ = inner.accepting.cancelled() => break,
            change = changes.recv() => match change {
                Some(change) => inner.apply_membership(&change),
                None => {
                    tracing::warn!("membership subscription ended; keeping the last view");
                    inner.accepting.cancelled().await;
                    break;
                }
            }
        }
    }
    drop(membership);
}
