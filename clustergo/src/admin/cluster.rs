//! `/api/cluster`: what this node sees, as JSON for the live page (and for scripts).

use std::sync::Arc;

use serde_json::{Value, json};

use super::stats::{BOUNDS, CODES, CallStats, percentile};
use crate::addr::LogicAddr;
use crate::node::NodeInner;

/// One peer's link as the node holds it.
#[derive(Debug, Clone)]
pub(crate) struct PeerLink {
    pub(crate) addr: LogicAddr,
    /// `up`, `dialing` or `down`.
    pub(crate) link: &'static str,
    /// Frames queued for it.
    pub(crate) queue: usize,
}

/// Outcomes, errors and latency percentiles (milliseconds) of some calls.
fn call_summary(stats: &CallStats) -> Value {
    let codes = stats.codes();
    let calls: u64 = codes.iter().sum();
    let counts = stats.latency.counts();
    let ms = |q| percentile(&counts, q).map(|s| s * 1000.0);
    json!({
        "calls": calls,
        "errors": calls - codes[0],
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
    })
}

/// The document served at `/api/cluster`.
pub(crate) fn render(node: &Arc<NodeInner>) -> Value {
    let local = node.running().map(|r| r.local);
    let links = node.peer_links();
    let per_peer = node.admin().calls.peers.snapshot();
    let members: Vec<Value> = node
        .members_snapshot()
        .into_iter()
        .map(|m| {
            let logic = m.addr.logic;
            let link = links.iter().find(|l| l.addr == logic);
            let is_self = Some(logic) == local;
            let calls = per_peer
                .iter()
                .find(|(a, _)| *a == logic)
                .map(|(_, s)| call_summary(s))
                .unwrap_or_else(|| call_summary(&CallStats::default()));
            json!({
                "addr": logic.to_string(),
                "net": m.addr.net.to_string(),
                "type": logic.typ(),
                "export": m.export,
                "available": m.available,
                "self": is_self,
                "link": if is_self { "self" } else { link.map_or("none", |l| l.link) },
                "queue": link.map_or(0, |l| l.queue),
                "traffic": calls,
            })
        })
        .collect();
    let total = &node.admin().calls.total;
    let m = node.counters().snapshot();
    // The page measures rates against the node's clock, not its own polling.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "node": local.map(|l| l.to_string()),
        "now_ms": now_ms,
        "state": if node.is_stopping() { "draining" } else if local.is_some() { "running" } else { "starting" },
        "members": members,
        "calls": {
            "summary": call_summary(total),
            "codes": CODES.iter().zip(total.codes()).filter(|(_, n)| *n > 0)
                .map(|(c, n)| (c.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "bounds_ms": BOUNDS.iter().map(|b| b * 1000.0).collect::<Vec<_>>(),
            "buckets": total.latency.counts().to_vec(),
        },
        "traffic": {
            "frames_sent": m.frames_sent,
            "frames_received": m.frames_received,
            "bytes_sent": m.bytes_sent,
            "bytes_received": m.bytes_received,
            "frames_relayed": m.frames_relayed,
            "links_established": m.links_established,
            "links_lost": m.links_lost,
        },
    })
}
