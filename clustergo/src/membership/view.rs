//! A node's view of membership: plain data, no I/O, fed by [`MembershipChange`]s.
//!
//! Visibility rules: a node sees the nodes of its own cluster, exported nodes of
//! any cluster, and, if it is a harbor, every harbor. [`View::addr_by_type`]
//! prefers the own cluster and falls back to exported nodes of other clusters.

use std::collections::{BTreeMap, HashMap};

use super::{Member, MembershipChange};
use crate::addr::LogicAddr;
use crate::fastmap::IntMap;

/// The key that picks a harbor for traffic between `a` and `b`: the same for
/// `(a, b)` and `(b, a)`, and mixed so that similar addresses (every server index 1)
/// still spread over the harbors.
pub(crate) fn path_key(a: LogicAddr, b: LogicAddr) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    // splitmix64's finalizer over the ordered pair.
    let mut z = (u64::from(lo.raw()) << 32) | u64::from(hi.raw());
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The members a node knows about, indexed for lookups by type and for harbor choice.
#[derive(Debug, Clone)]
pub struct View {
    local: LogicAddr,
    /// Looked up on every send (`next_hop`): hashed cheaply, keys are our own.
    members: IntMap<LogicAddr, Member>,
    /// Available members of the own cluster, by type, sorted.
    local_by_type: HashMap<u32, Vec<LogicAddr>>,
    /// Available exported members of other clusters, by type, sorted.
    exported_by_type: HashMap<u32, Vec<LogicAddr>>,
    /// Available harbors, by cluster, sorted.
    harbors: BTreeMap<u32, Vec<LogicAddr>>,
}

impl View {
    /// An empty view for the node at `local`.
    pub fn new(local: LogicAddr) -> Self {
        Self {
            local,
            members: IntMap::default(),
            local_by_type: HashMap::new(),
            exported_by_type: HashMap::new(),
            harbors: BTreeMap::new(),
        }
    }

    /// The node this view belongs to.
    pub fn local(&self) -> LogicAddr {
        self.local
    }

    /// Applies a change and rebuilds the indexes (changes are rare; lookups are not).
    pub fn apply(&mut self, change: &MembershipChange) {
        for m in &change.removed {
            self.members.remove(&m.logic());
        }
        for m in change.added.iter().chain(&change.updated) {
            self.members.insert(m.logic(), m.clone());
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        self.local_by_type.clear();
        self.exported_by_type.clear();
        self.harbors.clear();
        for m in self.members.values().filter(|m| m.available) {
            let logic = m.logic();
            if logic.is_harbor() {
                self.harbors.entry(logic.cluster()).or_default().push(logic);
            }
            if logic.same_cluster(self.local) {
                self.local_by_type
                    .entry(logic.typ())
                    .or_default()
                    .push(logic);
            } else if m.export || (logic.is_harbor() && self.local.is_harbor()) {
                self.exported_by_type
                    .entry(logic.typ())
                    .or_default()
                    .push(logic);
            }
        }
        for list in self
            .local_by_type
            .values_mut()
            .chain(self.exported_by_type.values_mut())
            .chain(self.harbors.values_mut())
        {
            list.sort_unstable();
        }
    }

    /// The member at `logic`, visible or not (an address known by other means may
    /// still be reached, through harbors if need be).
    pub fn get(&self, logic: LogicAddr) -> Option<&Member> {
        self.members.get(&logic)
    }

    /// Whether `logic` is listed.
    pub fn contains(&self, logic: LogicAddr) -> bool {
        self.members.contains_key(&logic)
    }

    /// Whether this node may see `member` in lookups.
    pub fn is_visible(&self, member: &Member) -> bool {
        let logic = member.logic();
        logic.same_cluster(self.local)
            || member.export
            || (logic.is_harbor() && self.local.is_harbor())
    }

    fn candidates(&self, typ: u32) -> &[LogicAddr] {
        match self.local_by_type.get(&typ) {
            Some(list) if !list.is_empty() => list,
            _ => self
                .exported_by_type
                .get(&typ)
                .map(Vec::as_slice)
                .unwrap_or(&[]),
        }
    }

    /// A random available visible node of type `typ`: own cluster first, then
    /// exported nodes of other clusters.
    pub fn addr_by_type(&self, typ: u32) -> Option<LogicAddr> {
        let list = self.candidates(typ);
        (!list.is_empty()).then(|| list[fastrand::usize(..list.len())])
    }

    /// The same candidates as [`addr_by_type`](Self::addr_by_type), picked as
    /// `n % len`: the same `n` keeps reaching the same node while membership holds.
    pub fn addr_by_type_n(&self, typ: u32, n: u64) -> Option<LogicAddr> {
        let list = self.candidates(typ);
        (!list.is_empty()).then(|| list[(n % list.len() as u64) as usize])
    }

    /// The harbor of `cluster` that carries traffic between `a` and `b`, chosen among
    /// available harbors by `path_key(a, b)`. The key is symmetric, so a reply
    /// (`b → a`) crosses the same harbor in each cluster as its request (`a → b`)
    /// while views agree, and one pair keeps one path.
    pub fn harbor_for(&self, cluster: u32, a: LogicAddr, b: LogicAddr) -> Option<LogicAddr> {
        let list = self.harbors.get(&cluster)?;
        (!list.is_empty()).then(|| list[(path_key(a, b) % list.len() as u64) as usize])
    }

    /// Every member, in no particular order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;

    fn member(logic: &str, export: bool, available: bool) -> Member {
        Member {
            addr: Addr::new(logic.parse().unwrap(), "127.0.0.1:1".parse().unwrap()),
            export,
            available,
        }
    }

    fn view(local: &str, members: Vec<Member>) -> View {
        let mut v = View::new(local.parse().unwrap());
        v.apply(&MembershipChange {
            added: members,
            ..Default::default()
        });
        v
    }

    fn a(s: &str) -> LogicAddr {
        s.parse().unwrap()
    }

    #[test]
    fn visibility_table() {
        let members = vec![
            member("1.1.1", false, true),
            member("1.1.2", false, false),
            member("2.1.1", false, true),
            member("2.2.1", true, true),
            member("1.255.1", false, true),
            member("2.255.1", false, true),
        ];
        let node = view("1.3.1", members.clone());
        let harbor = view("1.255.1", members.clone());
        // (lookup type, viewer, expected set)
        let cases: &[(&View, u32, &[&str])] = &[
            (&node, 1, &["1.1.1"]),       // own cluster, available only
            (&node, 2, &["2.2.1"]),       // exported from cluster 2
            (&node, 255, &["1.255.1"]),   // own harbor only
            (&harbor, 255, &["1.255.1"]), // own cluster first
            (&harbor, 2, &["2.2.1"]),
            (&node, 9, &[]),
        ];
        for (v, typ, want) in cases {
            let mut got: Vec<String> = (0..64)
                .filter_map(|n| v.addr_by_type_n(*typ, n))
                .map(|x| x.to_string())
                .collect();
            got.sort();
            got.dedup();
            assert_eq!(got, *want, "type {typ} seen from {}", v.local());
            if want.is_empty() {
                assert_eq!(v.addr_by_type(*typ), None);
            } else {
                assert!(want.contains(&v.addr_by_type(*typ).unwrap().to_string().as_str()));
            }
        }
        assert!(!node.is_visible(&members[2]));
        assert!(node.is_visible(&members[3]));
        assert!(!node.is_visible(&members[5]));
        assert!(harbor.is_visible(&members[5]));
        // Harbors see other clusters' harbors when their own cluster has none.
        let lone = view("3.255.1", members);
        assert!(lone.addr_by_type(255).is_some());
    }

    #[test]
    fn sticky_pick_and_harbor_choice() {
        let mut v = view(
            "1.1.1",
            vec![
                member("1.2.1", false, true),
                member("1.2.2", false, true),
                member("1.2.3", false, true),
                member("2.255.1", false, true),
                member("2.255.2", false, true),
            ],
        );
        assert_eq!(v.addr_by_type_n(2, 0), Some(a("1.2.1")));
        assert_eq!(v.addr_by_type_n(2, 4), Some(a("1.2.2")));
        let (me, target) = (a("1.1.1"), a("2.1.7"));
        let h = v.harbor_for(2, me, target).unwrap();
        assert_eq!(v.harbor_for(2, me, target), Some(h), "deterministic");
        assert_eq!(v.harbor_for(2, target, me), Some(h), "symmetric");
        assert_eq!(v.harbor_for(3, me, target), None);
        // Removing a harbor moves traffic to the other; updates to unavailable too.
        v.apply(&MembershipChange {
            removed: vec![member(&h.to_string(), false, true)],
            ..Default::default()
        });
        let other = v.harbor_for(2, me, target).unwrap();
        assert_ne!(other, h);
        v.apply(&MembershipChange {
            updated: vec![member(&other.to_string(), false, false)],
            ..Default::default()
        });
        assert_eq!(v.harbor_for(2, me, target), None);
        assert!(v.contains(other), "unavailable members stay listed");
    }
}
