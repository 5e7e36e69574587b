//! Applying membership changes to a running node: the view, its peers, itself.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::NodeInner;
use crate::membership::{Membership, MembershipChange};

impl NodeInner {
    /// Updates the view, closes peers that left (their calls fail at once),
    /// redirects peers that moved, and stops the node if it was removed itself.
    fn apply_membership(self: &Arc<Self>, change: &MembershipChange) {
        let Some(run) = self.run.get() else { return };
        self.view.write().apply(change);
        let mut gone = Vec::new();
        {
            let mut peers = self.peers.write();
            for m in &change.removed {
                self.streams.drop_peer(m.logic());
                if let Some(peer) = peers.remove(&m.logic()) {
                    peer.close();
                    gone.push(m.logic());
                }
            }
            for m in &change.updated {
                if let Some(peer) = peers.get(&m.logic()) {
                    peer.set_net(m.addr.net);
                }
            }
        }
        for logic in gone {
            self.rpc_client.fail_hop(logic);
        }
        if change.removed.iter().any(|m| m.logic() == run.local) {
            tracing::warn!(node = %run.local, "removed from membership: stopping");
            self.stop();
        }
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
