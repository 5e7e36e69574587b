//! Inbound connections that never authenticate (issue 10.6): under a flood of
//! silent connections, with the process's descriptors scarce, an existing link and
//! a new one both keep working. Alone in its test binary: it lowers the whole
//! process's descriptor limit.
#![cfg(target_os = "linux")]

mod support;

use std::time::Duration;

use clustergo::{Node, Replyer};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use support::*;
use tokio::net::TcpStream;

/// Descriptors the test may use beyond those open when it starts: the nodes'
/// listeners and links, the flood's client ends, and what the node keeps of it.
const BUDGET: u64 = 200;
/// Silent connections: more than fit in the budget if the node kept them all.
const FLOOD: usize = 120;
/// The node's cap on pending handshakes.
const CAP: usize = 16;

fn serve_echo(node: &Node) {
    node.register_rpc("echo", |_ctx, r: Replyer<Echo>, req: Echo| r.reply(req));
}

/// Calls "echo" on 1.2.1 from `node` and checks the answer.
async fn echo_b(node: &Node, what: &str, n: u64) {
    let r: Echo = within(what, node.call(addr("1.2.1"), "echo", &echo("x", n)))
        .await
        .unwrap();
    assert_eq!(r.n, n, "{what}");
}

#[tokio::test]
async fn links_work_during_a_flood_of_silent_connections() {
    let c = Cluster::new();
    let b = c
        .start_with(
            "1.2.1",
            false,
            clustergo::Config {
                max_pending_handshakes: CAP,
                // Silent connections would hold their slots for the whole test.
                handshake_timeout: Duration::from_secs(60),
                ..config()
            },
        )
        .await;
    serve_echo(&b);
    let a = c.start("1.1.1").await;
    let newcomer = c.start("1.1.2").await;
    echo_b(&a, "a call over the first link", 1).await;

    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let saved = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open + BUDGET),
            maximum: saved.maximum,
        },
    )
    .unwrap();

    // The flood: connections that never write, held open by the test.
    let target = b.listen_addr().unwrap();
    let mut silent = Vec::new();
    for _ in 0..FLOOD {
        match TcpStream::connect(target).await {
            Ok(s) => silent.push(s),
            Err(_) => break, // out of descriptors: the node kept them all
        }
    }
    eventually("the node to shed what exceeds its cap", || {
        b.metrics().handshakes_shed >= (FLOOD - CAP) as u64
    })
    .await;
    // Let the pending ones age past the eviction grace, as in a long flood.
    tokio::time::sleep(Duration::from_millis(150)).await;

    echo_b(&a, "a call over the existing link", 2).await;
    echo_b(&newcomer, "a call over a new link", 3).await;
    assert_eq!(silent.len(), FLOOD, "the flood itself had descriptors");

    drop(silent);
    setrlimit(Resource::Nofile, saved).unwrap();
    for n in [a, newcomer, b] {
        n.shutdown().await;
    }
}
