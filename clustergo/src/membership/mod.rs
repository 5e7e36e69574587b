//! Who is in the cluster: the [`Membership`] trait, its backends, and the
//! [`View`] a node keeps of what it may see.
//!
//! A backend publishes [`MembershipChange`]s; the first one a subscriber receives
//! lists every current member as `added`. Backends that only see whole snapshots
//! (a file, a poll) turn them into changes with [`MemberSet::apply_snapshot`].
//!
//! Backends: [`InProcess`] (tests, one-process demos), [`FileMembership`] (static
//! JSON or TOML file), the discovery server (the embedded default), and Redis / etcd
//! behind features.

pub(crate) mod discovery;
#[cfg(feature = "etcd")]
mod etcd;
mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod resync;
mod view;

pub use discovery::{
    DISCOVERY_ID, DISCOVERY_MAX_FRAME, DiscoveryClient, DiscoveryServer, DiscoveryServerConfig,
};
#[cfg(feature = "etcd")]
pub use etcd::{EtcdMembership, LeaseRegistration};
pub use file::FileMembership;
pub use memory::InProcess;
#[cfg(feature = "redis")]
pub use redis::RedisMembership;
pub use view::View;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::addr::{Addr, LogicAddr};

/// A boxed future, so that [`Membership`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One node as membership lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Logical and network address.
    #[serde(flatten)]
    pub addr: Addr,
    /// Visible to other clusters' `get_addr_by_type`.
    #[serde(default)]
    pub export: bool,
    /// Eligible for `get_addr_by_type` (a node being drained sets this false).
    #[serde(default = "default_true")]
    pub available: bool,
}

fn default_true() -> bool {
    true
}

impl Member {
    /// An available, non-exported member.
    pub fn new(addr: Addr) -> Self {
        Self {
            addr,
            export: false,
            available: true,
        }
    }

    /// The member's logical address.
    pub fn logic(&self) -> LogicAddr {
        self.addr.logic
    }
}

/// What changed in membership since the previous change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// Members that appeared.
    pub added: Vec<Member>,
    /// Members that left.
    pub removed: Vec<Member>,
    /// Members whose network address or flags changed (the new value).
    pub updated: Vec<Member>,
}

impl MembershipChange {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.updated.is_empty()
    }
}

/// Why membership could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The backend could not be reached.
    #[error("membership backend unreachable: {0}")]
    Unreachable(String),
    /// The backend's data could not be understood.
    #[error("invalid membership data: {0}")]
    Invalid(String),
    /// The backend refused the operation.
    #[error("membership operation refused: {0}")]
    Refused(String),
    /// Reading a file or socket failed.
    #[error("membership i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A source of membership. A node subscribes once when it starts.
pub trait Membership: Send + Sync + 'static {
    /// Starts watching. The first change received lists every current member as
    /// `added`; later ones are diffs. The stream ends when the backend is closed.
    fn subscribe(
        &self,
    ) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<MembershipChange>, MembershipError>>;
}

/// Administrative operations a backend may offer (tools, tests, the discovery server).
pub trait MembershipAdmin: Send + Sync {
    /// Adds a member, or replaces the one with the same logical address.
    fn put(&self, member: Member) -> BoxFuture<'_, Result<(), MembershipError>>;
    /// Removes a member by logical address.
    fn remove(&self, logic: LogicAddr) -> BoxFuture<'_, Result<(), MembershipError>>;
}

/// A member set that turns successive full snapshots into [`MembershipChange`]s.
#[derive(Debug, Clone, Default)]
pub struct MemberSet {
    members: BTreeMap<LogicAddr, Member>,
}

impl MemberSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many members the set holds.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether a member has this logical address.
    pub fn contains(&self, logic: LogicAddr) -> bool {
        self.members.contains_key(&logic)
    }

    /// Current members, by logical address.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Replaces the set with `snapshot` and returns what changed. A snapshot
    /// listing one address twice keeps the last entry.
    pub fn apply_snapshot(
        &mut self,
        snapshot: impl IntoIterator<Item = Member>,
    ) -> MembershipChange {
        let next: BTreeMap<LogicAddr, Member> =
            snapshot.into_iter().map(|m| (m.logic(), m)).collect();
        let mut change = MembershipChange::default();
        for (logic, old) in &self.members {
            match next.get(logic) {
                None => change.removed.push(old.clone()),
                Some(new) if new != old => change.updated.push(new.clone()),
                Some(_) => {}
            }
        }
        for (logic, new) in &next {
            if !self.members.contains_key(logic) {
                change.added.push(new.clone());
            }
        }
        self.members = next;
        change
    }

    /// Applies one put (add or update) and returns the change.
    pub fn put(&mut self, member: Member) -> MembershipChange {
        let mut change = MembershipChange::default();
        match self.members.insert(member.logic(), member.clone()) {
            None => change.added.push(member),
            Some(old) if old != member => change.updated.push(member),
            Some(_) => {}
        }
        change
    }

    /// Applies one removal and returns the change.
    pub fn remove(&mut self, logic: LogicAddr) -> MembershipChange {
        let mut change = MembershipChange::default();
        if let Some(old) = self.members.remove(&logic) {
            change.removed.push(old);
        }
        change
    }

    /// A change listing every member as added: what a new subscriber gets first.
    pub fn as_initial_change(&self) -> MembershipChange {
        MembershipChange {
            added: self.members.values().cloned().collect(),
            ..Default::default()
        }
    }
}

/// An available, non-exported member at `127.0.0.1:port`, for unit tests.
#[cfg(test)]
pub(crate) fn test_member(logic: &str, port: u16) -> Member {
    Member::new(Addr::new(
        logic.parse().unwrap(),
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_member as m;

    #[test]
    fn snapshots_become_diffs() {
        let mut set = MemberSet::new();
        let c = set.apply_snapshot([m("1.1.1", 1), m("1.1.2", 2)]);
        assert_eq!(c.added.len(), 2);
        assert!(c.removed.is_empty() && c.updated.is_empty());

        let mut moved = m("1.1.2", 3);
        moved.export = true;
        let c = set.apply_snapshot([moved.clone(), m("1.1.3", 4)]);
        assert_eq!(c.added, vec![m("1.1.3", 4)]);
        assert_eq!(c.removed, vec![m("1.1.1", 1)]);
        assert_eq!(c.updated, vec![moved]);

        assert!(
            set.apply_snapshot(set.members().cloned().collect::<Vec<_>>())
                .is_empty()
        );
        assert_eq!(set.remove("1.1.3".parse().unwrap()).removed.len(), 1);
        assert!(set.remove("1.1.3".parse().unwrap()).is_empty());
        assert_eq!(set.put(m("1.1.9", 9)).added.len(), 1);
        assert!(set.put(m("1.1.9", 9)).is_empty());
        assert_eq!(set.put(m("1.1.9", 10)).updated.len(), 1);
    }

    #[test]
    fn member_file_format() {
        let json = r#"{"logic":"1.2.3","net":"127.0.0.1:9000","export":true}"#;
        let member: Member = serde_json::from_str(json).unwrap();
        assert_eq!(member.logic().to_string(), "1.2.3");
        assert!(member.export);
        assert!(member.available, "available defaults to true");
    }
}
