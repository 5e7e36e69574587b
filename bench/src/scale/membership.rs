//! Membership at 1 … 10,000 members: a node's [`View`] applying a snapshot and one
//! change, `Node::get_addr_by_type` (on the send path: one `HashMap` lookup and
//! an index under a read lock, whatever the member count), and the view's memory.

use std::hint::black_box;
use std::time::{Duration, Instant};

use clustergo::membership::{InProcess, Member, MembershipChange, View};
use clustergo::{Addr, LogicAddr, Node};
use serde::{Deserialize, Serialize};

use super::{ScaleSizes, Series, in_unit, median};
use crate::memory::{addr, free_ports, settled_rss};

/// Member types the members are spread over; lookups ask for type 1.
const TYPES: usize = 10;
/// Rounds of lookups; the best is reported.
const LOOKUP_ROUNDS: usize = 5;
/// Repetitions of the one-change measurement.
const CHANGES: usize = 101;

/// `n` members of cluster 1 spread over [`TYPES`] types, all on one (unused) port.
fn members(n: usize) -> Result<Vec<Member>, String> {
    let net = "127.0.0.1:9".parse().expect("a socket address");
    (0..n)
        .map(|i| {
            let logic = addr(1, 1 + (i % TYPES) as u32, (i / TYPES) as u32)?;
            Ok(Member::new(Addr::new(logic, net)))
        })
        .collect()
}

fn snapshot(members: Vec<Member>) -> MembershipChange {
    MembershipChange {
        added: members,
        ..MembershipChange::default()
    }
}

pub(crate) async fn run(s: ScaleSizes) -> Result<Vec<Series>, String> {
    let mut apply = Series::new("membership: apply snapshot", "ms", "members");
    let mut change = Series::new("membership: apply one change", "µs", "members");
    let mut view_lookup = Series::new("membership: View::addr_by_type", "ns", "members");
    let mut lookup = Series::new("membership: Node::get_addr_by_type", "ns", "members");
    lookup.note = Some(format!(
        "best of {LOOKUP_ROUNDS} rounds (as View::addr_by_type), type 1 of {TYPES}: \
         n/{TYPES} candidates; a started node, through its view's read lock"
    ));
    let mut memory = Series::new("membership: view memory", "KB", "members");
    change.note = Some(format!(
        "one member turned unavailable then back, median of {CHANGES}; the view rebuilds \
         its indexes on every change (O(members))"
    ));
    memory.note = Some(
        "RSS growth of a fresh child process building the view (4 KiB page resolution)".into(),
    );
    let local = addr(1, 1, 1)?;
    for &n in s.members {
        let all = members(n)?;

        let t = Instant::now();
        let mut view = View::new(local);
        view.apply(&snapshot(all.clone()));
        apply.points.push((n, in_unit(t.elapsed(), "ms")));

        let mut flip = all[n / 2].clone();
        let mut times = Vec::with_capacity(CHANGES);
        for _ in 0..CHANGES {
            flip.available = !flip.available;
            let c = MembershipChange {
                updated: vec![flip.clone()],
                ..MembershipChange::default()
            };
            let t = Instant::now();
            view.apply(&c);
            times.push(in_unit(t.elapsed(), "µs"));
        }
        change.points.push((n, median(&mut times)));

        view_lookup
            .points
            .push((n, best_ns(s.lookups, || view.addr_by_type(1))));

        lookup
            .points
            .push((n, node_lookup(local, all, s.lookups).await?));

        let kb: ViewMemory = crate::child::run(
            &["view-memory".to_owned(), n.to_string()],
            Duration::from_secs(60),
        )
        .await?;
        memory.points.push((n, kb.bytes as f64 / 1e3));
    }
    Ok(vec![apply, change, view_lookup, lookup, memory])
}

/// Nanoseconds per `get_addr_by_type` on a started node whose membership lists
/// `members` (and itself).
async fn node_lookup(local: LogicAddr, members: Vec<Member>, calls: usize) -> Result<f64, String> {
    let port = free_ports(1)?[0];
    let me = Member::new(Addr::new(local, port));
    let list = members.into_iter().filter(|m| m.logic() != local);
    let node = Node::new();
    node.start(InProcess::with_members(list.chain([me])), local)
        .await
        .map_err(|e| format!("start node: {e}"))?;
    let ns = best_ns(calls, || node.get_addr_by_type(1));
    if node.get_addr_by_type(1).is_none() {
        return Err("get_addr_by_type(1) found nothing".into());
    }
    node.shutdown().await;
    Ok(ns)
}

/// Nanoseconds per call of `f`: the best of [`LOOKUP_ROUNDS`] rounds of
/// `calls / LOOKUP_ROUNDS` calls (the least disturbed by the other processes).
fn best_ns<T>(calls: usize, f: impl Fn() -> T) -> f64 {
    let per_round = (calls / LOOKUP_ROUNDS).max(1);
    (0..LOOKUP_ROUNDS)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_round {
                black_box(f());
            }
            in_unit(t.elapsed(), "ns") / per_round as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// A child's answer to `view-memory N`.
#[derive(Debug, Serialize, Deserialize)]
struct ViewMemory {
    bytes: u64,
}

/// The child side of `view-memory N`: RSS growth of building a view of N members
/// (the member list itself is made and counted before the first reading).
pub(crate) async fn child_view_memory(args: &[String]) -> Result<(), String> {
    let [n] = args else {
        return Err(format!("view-memory: bad arguments {args:?}"));
    };
    let n: usize = n.parse().map_err(|_| format!("bad N {n:?}"))?;
    let change = snapshot(members(n)?);
    // A one-member view first, so that what the first view of any size makes once
    // (hasher keys, lazily built statics) is in the baseline.
    let mut warm = View::new(addr(1, 1, 1)?);
    warm.apply(&snapshot(members(1)?));
    let before = settled_rss().await?;
    let mut view = View::new(addr(1, 1, 1)?);
    view.apply(&change);
    let after = settled_rss().await?;
    black_box((&view, &warm));
    crate::child::print(&ViewMemory {
        bytes: after.saturating_sub(before),
    });
    Ok(())
}
