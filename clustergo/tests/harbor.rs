//! Two clusters, each with a harbor and a service node, on loopback: traffic
//! crosses through the harbors; routing failures come back promptly.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clustergo::{Node, Replyer, RpcError, SendError};
use parking_lot::Mutex;
use support::*;

const PB: u16 = 10;
const BIN: u16 = 11;

struct World {
    c: Cluster,
    a: Node,  // 1.1.1
    h1: Node, // 1.255.1
    h2: Node, // 2.255.1
    b: Node,  // 2.1.1, exported
}

async fn world() -> World {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let h1 = c.start("1.255.1").await;
    let h2 = c.start("2.255.1").await;
    let b = c.start_with("2.1.1", true, config()).await;
    for n in [&a, &b] {
        n.register_rpc("echo", |ctx, replyer: Replyer<Echo>, req: Echo| {
            replyer.reply(Echo {
                msg: format!("{} from {}", req.msg, ctx.from()),
                ..req
            })
        });
    }
    World { c, a, h1, h2, b }
}

impl World {
    async fn shutdown(self) {
        for n in [self.a, self.h1, self.h2, self.b] {
            n.shutdown().await;
        }
    }
}

fn inbox(node: &Node) -> Arc<Mutex<Vec<String>>> {
    support::inbox(node, PB, BIN)
}

#[tokio::test]
async fn messages_and_calls_cross_clusters() {
    let w = world().await;
    let got_a = inbox(&w.a);
    let got_b = inbox(&w.b);
    // Found by type across clusters because it is exported.
    assert_eq!(
        w.a.get_addr_by_type(1),
        Some(addr("1.1.1")),
        "own cluster first"
    );
    let target = (0..64)
        .filter_map(|n| w.h1.get_addr_by_type_n(1, n))
        .find(|a| a.cluster() == 2);
    assert_eq!(
        target, None,
        "own cluster has type 1, so exported ones are not offered"
    );

    w.a.send_pb(addr("2.1.1"), &echo("hello", 1)).unwrap();
    w.a.send_bin(addr("2.1.1"), BIN, b"raw").unwrap();
    w.b.send_pb(addr("1.1.1"), &echo("back", 2)).unwrap();
    eventually("messages across", || {
        got_b.lock().len() == 2 && got_a.lock().len() == 1
    })
    .await;
    assert_eq!(*got_b.lock(), vec!["pb 1.1.1 hello", "bin 1.1.1 raw"]);
    assert_eq!(*got_a.lock(), vec!["pb 2.1.1 back"]);

    let r: Echo =
        w.a.call(addr("2.1.1"), "echo", &echo("hi", 3))
            .await
            .unwrap();
    assert_eq!(r.msg, "hi from 1.1.1");
    let r: Echo =
        w.b.call(addr("1.1.1"), "echo", &echo("yo", 4))
            .await
            .unwrap();
    assert_eq!(r.msg, "yo from 2.1.1");
    // The service nodes never connected to each other: everything went via harbors.
    assert_eq!(
        w.a.metrics().links_established,
        1,
        "a only linked to its harbor"
    );
    assert_eq!(
        w.b.metrics().links_established,
        1,
        "b only linked to its harbor"
    );
    w.shutdown().await;
}

/// Harbors forward frames as they arrived and their writers send big ones from
/// their own buffers beside small ones copied together: bodies of every size
/// around that 4 KiB line cross both harbors whole and in order.
#[tokio::test]
async fn big_and_small_bodies_cross_harbors_whole_and_in_order() {
    let w = world().await;
    let got = Arc::new(Mutex::new(Vec::<Bytes>::new()));
    let g = got.clone();
    w.b.register_bin_handler(BIN, move |_, _, body: Bytes| g.lock().push(body));
    let sizes = [10, 4095, 4096, 4097, 100, 70_000, 1, 300_000, 5000, 20];
    let bodies: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| (0..n).map(|j| (i * 31 + j) as u8).collect())
        .collect();
    for body in &bodies {
        w.a.send_bin(addr("2.1.1"), BIN, body).unwrap();
    }
    eventually("all bodies across", || got.lock().len() == bodies.len()).await;
    assert_eq!(*got.lock(), bodies);
    assert!(w.h1.metrics().frames_relayed >= bodies.len() as u64);
    assert!(w.h2.metrics().frames_relayed >= bodies.len() as u64);
    w.shutdown().await;
}

#[tokio::test]
async fn many_calls_across_harbors() {
    let w = world().await;
    let mut set = tokio::task::JoinSet::new();
    for t in 0..50u64 {
        let a = w.a.clone();
        set.spawn(async move {
            for i in 0..100 {
                let n = t * 1000 + i;
                let r: Echo = a.call(addr("2.1.1"), "echo", &echo("m", n)).await.unwrap();
                assert_eq!(r.n, n);
            }
        });
    }
    within("5000 cross-cluster calls", async {
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    })
    .await;
    w.shutdown().await;
}

/// Calls "echo" on `to` with a timeout far beyond [`WAIT`]: only a routing
/// answer, not the call's own timer, can end it in time.
async fn routing_error(from: &Node, to: &str) -> Result<Echo, RpcError> {
    within(
        "a routing answer",
        from.call_with_timeout(addr(to), "echo", &echo("x", 1), Duration::from_secs(3600)),
    )
    .await
}

#[tokio::test]
async fn target_removed_is_a_prompt_routing_error() {
    let w = world().await;
    let _: Echo =
        w.a.call(addr("2.1.1"), "echo", &echo("warm", 0))
            .await
            .unwrap();
    w.c.m.remove_now(addr("2.1.1"));
    w.c.settle().await;
    let r = routing_error(&w.a, "2.1.1").await;
    assert_eq!(r, Err(RpcError::Unreachable(addr("2.1.1"))));
    w.shutdown().await;
}

#[tokio::test]
async fn harbor_removed_then_readded() {
    let w = world().await;
    let _: Echo =
        w.a.call(addr("2.1.1"), "echo", &echo("warm", 0))
            .await
            .unwrap();

    // The target cluster's harbor leaves: the local harbor answers for it.
    w.c.m.remove_now(addr("2.255.1"));
    w.c.settle().await;
    let r = routing_error(&w.a, "2.1.1").await;
    assert_eq!(r, Err(RpcError::Unreachable(addr("2.1.1"))));
    within("removed harbor stops", w.h2.wait()).await;

    // A new harbor for cluster 2 comes up: traffic flows again.
    let h2b = w.c.start("2.255.2").await;
    let r: Echo =
        w.a.call(addr("2.1.1"), "echo", &echo("again", 2))
            .await
            .unwrap();
    assert_eq!(r.msg, "again from 1.1.1");

    // The own cluster's harbor leaves: the sender itself has no route.
    w.c.m.remove_now(addr("1.255.1"));
    w.c.settle().await;
    let r: Result<Echo, _> = w.a.call(addr("2.1.1"), "echo", &echo("x", 3)).await;
    assert_eq!(r, Err(RpcError::Unreachable(addr("2.1.1"))));
    w.a.register_pb_message::<Echo>(PB);
    assert_eq!(
        w.a.send_pb(addr("2.1.1"), &echo("m", 1)),
        Err(SendError::Unreachable(addr("2.1.1")))
    );
    h2b.shutdown().await;
    w.shutdown().await;
}

#[tokio::test]
async fn export_controls_cross_cluster_lookup() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let hidden = c.start("2.7.1").await;
    let harbors = (c.start("1.255.1").await, c.start("2.255.1").await);
    for _ in 0..20 {
        assert_eq!(a.get_addr_by_type(7), None);
    }
    let shown = c.start_with("2.7.2", true, config()).await;
    for _ in 0..20 {
        assert_eq!(a.get_addr_by_type(7), Some(addr("2.7.2")));
    }
    // An address known by other means is still reachable through the harbors.
    hidden.register_rpc("echo", |_c, r: Replyer<Echo>, req: Echo| r.reply(req));
    let r: Echo = a
        .call(addr("2.7.1"), "echo", &echo("known", 5))
        .await
        .unwrap();
    assert_eq!(r.n, 5);
    for n in [a, hidden, shown, harbors.0, harbors.1] {
        n.shutdown().await;
    }
}

/// Issue 17, item 1: with two harbors per cluster, a reply crosses the harbors its
/// request crossed; when that path goes away while the server holds the reply (the
/// harbor removed from membership, or its link lost), the call ends at once with
/// `Disconnected` instead of a silent timeout; a frame a harbor cannot forward is
/// counted.
#[tokio::test]
async fn replies_retrace_their_request_and_a_lost_path_is_reported() {
    let c = Cluster::new();
    let caller = c.start("1.3.2").await;
    let mut harbors = Vec::new();
    for h in ["1.255.1", "1.255.2", "2.255.1", "2.255.2"] {
        harbors.push(c.start(h).await);
    }
    let server = c.start_with("2.1.1", true, config()).await;
    server.register_rpc("echo", |_c, r: Replyer<Echo>, req: Echo| r.reply(req));
    let held = Held::serve(&server);

    // One call: one harbor per cluster carried it, request and reply.
    let _: Echo = caller
        .call(addr("2.1.1"), "echo", &echo("x", 1))
        .await
        .unwrap();
    let relayed: Vec<u64> = harbors.iter().map(|h| h.metrics().frames_relayed).collect();
    let mut near = relayed[..2].to_vec();
    let mut far = relayed[2..].to_vec();
    near.sort();
    far.sort();
    assert_eq!((near, far), (vec![0, 2], vec![0, 2]), "relayed {relayed:?}");
    let path = usize::from(relayed[1] == 2);
    let other = 1 - path;

    // A frame a harbor cannot forward is counted: 2.1.9 is not listed, which only
    // cluster 2's harbor can tell.
    caller.send_bin(addr("2.1.9"), BIN, b"lost").unwrap();
    eventually("the drop is counted", || {
        harbors
            .iter()
            .map(|h| h.metrics().relay_dropped)
            .sum::<u64>()
            == 1
    })
    .await;

    // The path's harbor leaves membership while the reply is held: prompt Disconnected.
    let long = Duration::from_secs(60); // far longer than the test may take
    let calls = held.calls(&caller, "2.1.1", 1, long).await;
    c.m.remove_now(harbors[path].local_addr().unwrap());
    let r = results(calls).await;
    assert_eq!(r, [Err(RpcError::Disconnected(addr("2.1.1")))]);

    // The remaining harbor's link is lost (it stops, still listed): the same.
    let calls = held.calls(&caller, "2.1.1", 1, long).await;
    harbors[other].shutdown().await;
    let r = results(calls).await;
    assert_eq!(r, [Err(RpcError::Disconnected(addr("2.1.1")))]);
    held.forget();
    for n in harbors.into_iter().chain([caller, server]) {
        n.shutdown().await;
    }
}

/// A harbor that leaves gracefully (`Node::leave`) loses no call that crossed it:
/// once it is unavailable, replies come back through another harbor of the
/// cluster, and the caller waits for them there instead of failing them when the
/// harbor goes.
#[tokio::test]
async fn a_harbor_leaving_gracefully_loses_no_call() {
    let c = Cluster::new();
    let quick = clustergo::Config {
        leave_grace: Duration::from_millis(50),
        ..config()
    };
    let caller = c.start("1.3.2").await;
    let near = [
        c.start_with("1.255.1", false, quick.clone()).await,
        c.start_with("1.255.2", false, quick).await,
    ];
    let far = c.start("2.255.1").await;
    let server = c.start_with("2.1.1", true, config()).await;
    let held = Held::serve(&server);
    let calls = held.calls(&caller, "2.1.1", 3, WAIT).await;
    let path = usize::from(near[1].metrics().frames_relayed > 0);
    within("the harbor leaves", near[path].leave(&c.m))
        .await
        .unwrap();
    held.release();
    for r in results(calls).await {
        r.expect("a reply through the remaining harbor");
    }
    assert!(near[1 - path].metrics().frames_relayed >= 3);
    for n in [caller, near[1 - path].clone(), far, server] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn deadline_is_inherited_through_ctx_across_harbors() {
    let w = world().await;
    // A (1.1.1) calls B (1.1.2) with a deadline; B's async handler waits a while,
    // then calls C (2.1.1, the other cluster) through ctx; C reports what it has left.
    let b = w.c.start("1.1.2").await;
    w.b.register_rpc("left", |ctx, replyer: Replyer<Echo>, req: Echo| {
        let left = ctx
            .deadline()
            .map(|d| d.saturating_duration_since(clustergo::Instant::now()));
        replyer.reply(Echo {
            n: left.map_or(u64::MAX, |l| l.as_millis() as u64),
            ..req
        })
    });
    const SPENT: Duration = Duration::from_millis(200);
    clustergo::rpc::register_async::<clustergo::ProstCodec, Echo, Echo, _, _>(
        &b,
        "forward",
        |ctx, req| async move {
            tokio::time::sleep(SPENT).await;
            ctx.call(addr("2.1.1"), "left", &req).await
        },
    );
    let timeout = Duration::from_secs(3);
    let r: Echo = within(
        "call through ctx",
        w.a.call_with_timeout(addr("1.1.2"), "forward", &echo("d", 1), timeout),
    )
    .await
    .unwrap();
    let limit = (timeout - SPENT).as_millis() as u64;
    assert!(r.n <= limit, "C had {} ms left, more than {limit}", r.n);
    assert!(r.n > 0, "C had no time left");
    b.shutdown().await;
    w.shutdown().await;
}
