//! In-process membership: a shared member list that notifies subscribers on every
//! change. For tests and for demos that run a whole cluster in one process.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::{
    BoxFuture, Member, MemberSet, Membership, MembershipAdmin, MembershipChange, MembershipError,
};
use crate::addr::LogicAddr;

/// In-process membership. Clones share one member list.
#[derive(Debug, Clone, Default)]
pub struct InProcess {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug, Default)]
struct Shared {
    set: MemberSet,
    subscribers: Vec<mpsc::UnboundedSender<MembershipChange>>,
}

impl Shared {
    fn publish(&mut self, change: MembershipChange) {
        if change.is_empty() {
            return;
        }
        self.subscribers
            .retain(|tx| tx.send(change.clone()).is_ok());
    }
}

impl InProcess {
    /// An empty member list.
    pub fn new() -> Self {
        Self::default()
    }

    /// A member list holding `members`.
    pub fn with_members(members: impl IntoIterator<Item = Member>) -> Self {
        let this = Self::new();
        for m in members {
            this.put_now(m);
        }
        this
    }

    /// Adds or replaces a member and notifies subscribers.
    pub fn put_now(&self, member: Member) {
        let mut shared = self.shared.lock();
        let change = shared.set.put(member);
        shared.publish(change);
    }

    /// Removes a member and notifies subscribers.
    pub fn remove_now(&self, logic: LogicAddr) {
        let mut shared = self.shared.lock();
        let change = shared.set.remove(logic);
        shared.publish(change);
    }

    /// Current members.
    pub fn members(&self) -> Vec<Member> {
        self.shared.lock().set.members().cloned().collect()
    }

    /// Ends every subscription, as a backend shutting down would.
    pub fn close(&self) {
        self.shared.lock().subscribers.clear();
    }
}

impl Membership for InProcess {
    fn subscribe(
        &self,
    ) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<MembershipChange>, MembershipError>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut shared = self.shared.lock();
        let initial = shared.set.as_initial_change();
        // The receiver is alive, so this cannot fail.
        let _ = tx.send(initial);
        shared.subscribers.push(tx);
        Box::pin(async move { Ok(rx) })
    }
}

impl MembershipAdmin for InProcess {
    fn put(&self, member: Member) -> BoxFuture<'_, Result<(), MembershipError>> {
        self.put_now(member);
        Box::pin(async { Ok(()) })
    }

    fn remove(&self, logic: LogicAddr) -> BoxFuture<'_, Result<(), MembershipError>> {
        self.remove_now(logic);
        Box::pin(async { Ok(()) })
    }
}
