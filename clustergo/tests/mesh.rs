//! Many nodes in one process, all starting and talking at once, on the default
//! `Config`: every message a send accepted arrives.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use clustergo::{Node, SendError};
use parking_lot::Mutex;
use support::*;

const PB: u16 = 1;
/// Nodes in the mesh: 28 × 27 = 756 directed pairs over 378 links.
const NODES: usize = 28;

/// Issue (bench scale workload): a 64-node mesh in one process on defaults lost
/// most one-way messages. Here every ordered pair sends one message right after
/// the cluster started; each send is accepted, and each message arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_mesh_started_at_once_delivers_every_message() {
    let c = Cluster::new();
    let names: Vec<String> = (0..NODES).map(|i| format!("1.1.{}", i + 1)).collect();
    let got: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let mut nodes: Vec<Node> = Vec::new();
    for name in &names {
        let node = Node::with_config(config());
        let (g, me) = (got.clone(), name.clone());
        node.register_pb_handler(PB, move |from, _m: Echo| {
            g.lock().insert((from.to_string(), me.clone()));
        });
        let node = within("a start", async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            c.m.put_now(member(name, listener.local_addr().unwrap(), false));
            node.start_on(listener, c.m.clone(), addr(name))
                .await
                .unwrap();
            node
        })
        .await;
        nodes.push(node);
    }
    for n in &nodes {
        c.add(n.clone()).await;
    }
    // Every node sends to every other at once.
    let mut refused = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for (j, to) in names.iter().enumerate() {
            if i == j {
                continue;
            }
            match node.send_pb(addr(to), &echo("hi", 0)) {
                Ok(()) => {}
                Err(e @ (SendError::Unreachable(_) | SendError::Busy)) => {
                    refused.push(format!("{} -> {to}: {e}", names[i]))
                }
                Err(e) => panic!("send {} -> {to}: {e}", names[i]),
            }
        }
    }
    assert!(refused.is_empty(), "refused: {refused:?}");
    let want = NODES * (NODES - 1);
    let arrived = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        while got.lock().len() < want {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    if arrived.is_err() {
        let m = nodes.iter().map(Node::metrics).fold([0u64; 8], |mut s, x| {
            for (slot, v) in s.iter_mut().zip([
                x.frames_expired,
                x.frames_dropped,
                x.links_lost,
                x.dials_failed,
                x.handshakes_shed,
                x.links_established,
                x.frames_sent,
                x.frames_received,
            ]) {
                *slot += v;
            }
            s
        });
        panic!(
            "{} of {want} arrived; expired {}, dropped {}, links lost {}, dials failed {}, \
             handshakes shed {}, links established {}, frames sent {}, received {}",
            got.lock().len(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            m[6],
            m[7]
        );
    }
    for n in &nodes {
        within("a shutdown", n.shutdown()).await;
    }
}
