//! Bytes per idle link with the remote ends in child processes, so that N = 10,000
//! links fit the descriptor limit (20,000 here, and not raisable): the parent holds
//! one hub (one descriptor per link); children hold the nodes, as many per child as
//! their own limit allows (four descriptors per node: listener, both ends of a
//! warm-up link, the end of the measured link).
//!
//! Each child starts its nodes and a warm-up hub of its own and says so; once every
//! child listens, on `warm`, it links every node to its hub (so what a node makes
//! on its first call is already there), reports its RSS, and on `go` links every
//! node to the parent's hub and reports its RSS again. The
//! growth is the parent's plus every child's between the two readings: both ends
//! of N idle links.

use std::net::SocketAddr;

use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, LogicAddr, Node};
use serde::{Deserialize, Serialize};

use super::{BATCH, Growth, addr, fit_items, free_ports, settled_rss};
use crate::child::Talk;
use crate::proto::{Request, Response};
use crate::systems::clustergo::METHOD;
use crate::workload;

/// Descriptors one node takes in a child.
const FDS_PER_NODE: u64 = 4;

/// The parent's hub: the measured links end here.
fn hub() -> Result<LogicAddr, String> {
    addr(1, 1, 1)
}

/// Node `i` of all N (1000 servers per type: the server field has 10 bits).
fn node_addr(i: usize) -> Result<LogicAddr, String> {
    addr(1, 2 + (i / 1000) as u32, (i % 1000) as u32)
}

/// A child's RSS reading.
#[derive(Debug, Serialize, Deserialize)]
struct Rss {
    bytes: u64,
}

/// `n` idle links, both ends: the parent's side. Returns the summed RSS readings.
pub(super) async fn links(n: usize) -> Result<Growth, String> {
    // What one child may hold: its own limit, the same as this process's.
    let (per_child, _) = fit_items(n, FDS_PER_NODE);
    let k_children = n.div_ceil(per_child);
    // All ports at once (the nodes', the hub's, the warm-up hubs'), so none repeats.
    let ports = free_ports(n + 1 + k_children)?;
    let hub_member = Member::new(Addr::new(hub()?, ports[n]));
    let mut members = vec![hub_member.clone()];
    for (i, &port) in ports[..n].iter().enumerate() {
        members.push(Member::new(Addr::new(node_addr(i)?, port)));
    }
    let hub_node = Node::new();
    hub_node.register_rpc(METHOD, |_ctx, replyer, req: Request| {
        replyer.reply(workload::reply_to(&req));
    });
    hub_node
        .start(InProcess::with_members(members), hub()?)
        .await
        .map_err(|e| format!("start hub: {e}"))?;
    let mut children = Vec::new();
    for (k, chunk) in ports[..n].chunks(per_child).enumerate() {
        let first = k * per_child;
        let list: Vec<String> = chunk.iter().map(|p| p.port().to_string()).collect();
        let args = [
            "link-ends".to_owned(),
            k.to_string(),
            first.to_string(),
            list.join(","),
            hub_member.addr.net.to_string(),
            ports[n + 1 + k].to_string(),
        ];
        children.push(Talk::spawn(&args)?);
    }
    // No child dials before every child listens: a dial's ephemeral port could be
    // one handed to a node of a child not started yet.
    answers(&mut children, None, "that it listens").await?;
    let before =
        answers(&mut children, Some("warm"), "its first RSS").await? + settled_rss().await?;
    let after = answers(&mut children, Some("go"), "its second RSS").await? + settled_rss().await?;
    for child in children {
        child.end().await;
    }
    hub_node.shutdown().await;
    Ok(Growth { before, after })
}

/// Says `line` (if any) to every child, then sums the RSS each answers (`what`).
async fn answers(children: &mut [Talk], line: Option<&str>, what: &str) -> Result<u64, String> {
    if let Some(line) = line {
        for child in children.iter_mut() {
            child.say(line).await?;
        }
    }
    let mut sum = 0;
    for child in children.iter_mut() {
        sum += child.expect::<Rss>(what).await?.bytes;
    }
    Ok(sum)
}

/// The child side of `link-ends K FIRST PORTS HUB WARM`: nodes FIRST.. on the
/// comma-separated loopback PORTS, with warm-up hub `1.1.(2+K)` at WARM; the
/// parent's hub listens at HUB. See the module docs for the exchange.
pub(crate) async fn child(args: &[String]) -> Result<(), String> {
    let [k, first, ports, hub_net, warm_net] = args else {
        return Err(format!("link-ends: bad arguments {args:?}"));
    };
    let parse = |s: &str| s.parse::<usize>().map_err(|_| format!("bad number {s:?}"));
    let (k, first) = (parse(k)?, parse(first)?);
    let hub_net: SocketAddr = hub_net.parse().map_err(|_| format!("bad {hub_net:?}"))?;
    let ports = ports
        .split(',')
        .map(|p| parse(p).map(|p| p as u16))
        .collect::<Result<Vec<_>, _>>()?;
    let warm = addr(1, 1, 2 + k as u32)?;
    let warm_net: SocketAddr = warm_net.parse().map_err(|_| format!("bad {warm_net:?}"))?;
    let hubs = [
        Member::new(Addr::new(warm, warm_net)),
        Member::new(Addr::new(hub()?, hub_net)),
    ];
    let mut members = Vec::with_capacity(ports.len());
    for (i, &port) in ports.iter().enumerate() {
        let net = SocketAddr::from(([127, 0, 0, 1], port));
        members.push(Member::new(Addr::new(node_addr(first + i)?, net)));
    }
    let warm_node = Node::new();
    warm_node.register_rpc(METHOD, |_ctx, replyer, req: Request| {
        replyer.reply(workload::reply_to(&req));
    });
    let all = members.iter().chain(&hubs[..1]).cloned();
    warm_node
        .start(InProcess::with_members(all), warm)
        .await
        .map_err(|e| format!("start warm-up hub: {e}"))?;
    let mut nodes = Vec::with_capacity(members.len());
    for m in &members {
        let node = Node::new();
        // Each node knows only itself and the hubs, so its view stays small.
        let own = InProcess::with_members(hubs.iter().chain([m]).cloned());
        node.start(own, m.logic())
            .await
            .map_err(|e| format!("start node {}: {e}", m.logic()))?;
        nodes.push(node);
    }
    let req = workload::request();
    let link_all = async |to: LogicAddr| -> Result<(), String> {
        for batch in nodes.chunks(BATCH) {
            let calls = batch
                .iter()
                .map(|node| node.call::<Request, Response>(to, METHOD, &req));
            for r in futures::future::join_all(calls).await {
                r.map_err(|e| format!("call to hub {to}: {e}"))?;
            }
        }
        Ok(())
    };
    let mut parent = crate::child::Parent::new();
    crate::child::print(&Rss {
        bytes: settled_rss().await?,
    });
    parent.expect("warm").await?;
    link_all(warm).await?;
    crate::child::print(&Rss {
        bytes: settled_rss().await?,
    });
    parent.expect("go").await?;
    link_all(hub()?).await?;
    crate::child::print(&Rss {
        bytes: settled_rss().await?,
    });
    // The links stay up until the parent has read its own RSS.
    parent.wait_end().await;
    Ok(())
}
