//! Nodes whose membership comes from a discovery server (and, with the features,
//! from Redis and etcd): they find each other, follow admin changes, and survive a
//! restart of the discovery server.

#[cfg(any(feature = "redis", feature = "etcd"))]
#[path = "support/membership.rs"]
mod backends;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clustergo::membership::{DiscoveryClient, DiscoveryServer, MembershipAdmin};
use clustergo::{Config, Node, Replyer, RpcError};
use parking_lot::Mutex;
use support::*;
use tokio::net::TcpListener;

const PB: u16 = 1;

async fn start(server: &DiscoveryServer, listener: TcpListener, logic: &str) -> Node {
    let node = Node::with_config(config());
    node.register_pb_message::<Echo>(PB);
    node.start_on(listener, server.client(), addr(logic))
        .await
        .unwrap();
    node
}

#[tokio::test]
async fn nodes_run_on_the_discovery_backend() {
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = DiscoveryServer::bind(
        "127.0.0.1:0",
        [
            member("1.1.1", la.local_addr().unwrap(), false),
            member("1.2.1", lb.local_addr().unwrap(), false),
        ],
    )
    .await
    .unwrap();
    let a = start(&server, la, "1.1.1").await;
    let b = start(&server, lb, "1.2.1").await;
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    b.register_pb_handler(PB, move |from, m: Echo| g.lock().push((from, m.n)));

    eventually("a sees b", || a.get_addr_by_type(2) == Some(addr("1.2.1"))).await;
    a.send_pb(addr("1.2.1"), &echo("hi", 7)).unwrap();
    eventually("message delivered", || got.lock().len() == 1).await;
    assert_eq!(got.lock()[0], (addr("1.1.1"), 7));

    // A node listed later through the admin client becomes visible.
    let lc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    DiscoveryClient::new(server.local_addr())
        .put(member("1.3.1", lc.local_addr().unwrap(), false))
        .await
        .unwrap();
    let c = start(&server, lc, "1.3.1").await;
    eventually("a sees c", || a.get_addr_by_type(3) == Some(addr("1.3.1"))).await;

    // Removing a node from membership stops it, and the others forget it.
    server.remove(addr("1.2.1"));
    eventually("b stops when removed", || !b.is_running()).await;
    eventually("a forgets b", || a.get_addr_by_type(2).is_none()).await;

    a.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn nodes_keep_running_across_a_discovery_restart() {
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let members = [
        member("1.1.1", la.local_addr().unwrap(), false),
        member("1.2.1", lb.local_addr().unwrap(), false),
    ];
    let server = DiscoveryServer::bind("127.0.0.1:0", members.clone())
        .await
        .unwrap();
    let port = server.local_addr();
    let a = start(&server, la, "1.1.1").await;
    let b = start(&server, lb, "1.2.1").await;
    eventually("a sees b", || a.get_addr_by_type(2).is_some()).await;

    server.shutdown().await;
    drop(server);
    let server = within("rebinding the discovery port", async {
        loop {
            match DiscoveryServer::bind(port, members.clone()).await {
                Ok(server) => break server,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    })
    .await;

    // Same list after the restart: nothing changes; new changes still arrive.
    let lc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    server.put(member("1.3.1", lc.local_addr().unwrap(), false));
    eventually("a sees c after the restart", || {
        a.get_addr_by_type(3) == Some(addr("1.3.1"))
    })
    .await;
    assert!(a.is_running() && b.is_running());
    a.shutdown().await;
    b.shutdown().await;
}

/// The probe of issue 10: an anonymous `remove` of a node used to stop it at once.
#[tokio::test]
async fn an_anonymous_remove_is_refused_and_the_node_keeps_running() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = DiscoveryServer::bind(
        "127.0.0.1:0",
        [member("1.1.1", la.local_addr().unwrap(), false)],
    )
    .await
    .unwrap();
    let a = start(&server, la, "1.1.1").await;

    // A bare protocol frame, as the probe sent it: the server hangs up unanswered.
    let body = br#"{"op":"remove","id":1,"logic":"1.1.1"}"#;
    let mut raw = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    raw.write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    raw.write_all(body).await.unwrap();
    let mut buf = [0u8; 64];
    let read = within("the server hangs up", raw.read(&mut buf)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    // A client without the cluster secret is refused.
    let err = DiscoveryClient::new(server.local_addr())
        .with_secret("guessed")
        .remove(addr("1.1.1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("authentication failed"), "{err}");

    // A later legitimate change reaches the node, so anything before it has too.
    let lc = TcpListener::bind("127.0.0.1:0").await.unwrap();
    server.put(member("1.3.1", lc.local_addr().unwrap(), false));
    eventually("a sees c", || a.get_addr_by_type(3) == Some(addr("1.3.1"))).await;
    assert!(a.is_running());
    assert_eq!(server.members().len(), 2);
    a.shutdown().await;
}

/// Two nodes on `membership` (already listing nothing): list them, start them,
/// exchange a message, then remove one and see it stop.
#[cfg(any(feature = "redis", feature = "etcd"))]
async fn two_nodes_on<M>(membership: M)
where
    M: clustergo::membership::Membership + MembershipAdmin + Clone,
{
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    membership
        .put(member("1.1.1", la.local_addr().unwrap(), false))
        .await
        .unwrap();
    membership
        .put(member("1.2.1", lb.local_addr().unwrap(), false))
        .await
        .unwrap();
    let mut nodes = Vec::new();
    for (listener, logic) in [(la, "1.1.1"), (lb, "1.2.1")] {
        let node = Node::with_config(config());
        node.register_pb_message::<Echo>(PB);
        node.start_on(listener, membership.clone(), addr(logic))
            .await
            .unwrap();
        nodes.push(node);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    b.register_pb_handler(PB, move |from, m: Echo| g.lock().push((from, m.n)));
    eventually("a sees b", || a.get_addr_by_type(2) == Some(addr("1.2.1"))).await;
    a.send_pb(addr("1.2.1"), &echo("hi", 9)).unwrap();
    eventually("message delivered", || got.lock().len() == 1).await;

    membership.remove(addr("1.2.1")).await.unwrap();
    eventually("b stops when removed", || !b.is_running()).await;
    eventually("a forgets b", || a.get_addr_by_type(2).is_none()).await;
    a.shutdown().await;
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn nodes_run_on_redis() {
    let server = backends::RedisServer::start().await;
    let membership = clustergo::membership::RedisMembership::new(&server.url(), "nodes:").unwrap();
    two_nodes_on(membership).await;
}

#[cfg(feature = "etcd")]
#[tokio::test]
async fn nodes_run_on_etcd() {
    let server = backends::EtcdServer::start().await;
    let membership = clustergo::membership::EtcdMembership::new([server.endpoint()], "/nodes/");
    two_nodes_on(membership).await;
}

/// Issue 17, item 3: a server removed from membership still answers the calls it
/// is serving; callers keep its link open for those replies (new calls to it fail
/// at once), instead of failing them `Disconnected` at the removal.
#[tokio::test]
async fn a_removed_server_still_answers_what_it_serves() {
    let c = Cluster::new();
    let caller = c.start("1.1.1").await;
    let server = c.start("1.2.1").await;
    let held = Held::serve(&server);
    let calls = held.calls(&caller, "1.2.1", 5, WAIT).await;
    c.m.remove_now(addr("1.2.1"));
    eventually("the caller forgets the server", || {
        caller.member(addr("1.2.1")).is_none()
    })
    .await;
    let r: Result<Echo, _> = caller.call(addr("1.2.1"), "hold", &echo("new", 9)).await;
    assert_eq!(
        r,
        Err(RpcError::UnknownPeer(addr("1.2.1"))),
        "new calls fail"
    );
    held.release();
    for r in results(calls).await {
        r.expect("a call the removed server answered");
    }
    within("the removed server stops", server.wait()).await;
    caller.shutdown().await;
}

/// Issue 17, item 3: a rolling restart of three servers under 200 calls in flight
/// loses nothing. Clients pick servers with `get_addr_by_type`; each server in turn
/// leaves gracefully (`Node::leave`: unavailable, drained, removed, stopped) and a new
/// one starts at its address. Every call ends `Ok`, and every request a server
/// executed was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_fails_no_call() {
    const IN_FLIGHT: usize = 200;
    let cfg = || Config {
        leave_grace: Duration::from_millis(100),
        ..config()
    };
    let c = Cluster::new();
    let executed = Arc::new(AtomicU64::new(0));
    let serve = |node: &Node| {
        let executed = executed.clone();
        node.register_rpc("work", move |_c, r: Replyer<Echo>, req: Echo| {
            executed.fetch_add(1, Ordering::Relaxed);
            // Answered a little later, so calls are in flight when a server leaves.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2 + req.n % 8)).await;
                r.reply(req);
            });
        });
    };
    let start_server = |logic: &'static str| {
        let (c, serve) = (&c, &serve);
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let node = Node::with_config(cfg());
            serve(&node);
            c.m.put_now(member(logic, listener.local_addr().unwrap(), false));
            node.start_on(listener, c.m.clone(), addr(logic))
                .await
                .unwrap();
            c.add(node.clone()).await;
            node
        }
    };
    let servers = ["1.2.1", "1.2.2", "1.2.3"];
    let mut running = Vec::new();
    for s in servers {
        running.push(start_server(s).await);
    }
    let clients = [
        c.start_with("1.1.1", false, cfg()).await,
        c.start_with("1.1.2", false, cfg()).await,
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let mut load = tokio::task::JoinSet::new();
    for w in 0..IN_FLIGHT {
        let client = clients[w % clients.len()].clone();
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        load.spawn(async move {
            let mut n = w as u64;
            while !stop.load(Ordering::Relaxed) {
                let to = client.get_addr_by_type(2).expect("a server is available");
                let r: Result<Echo, _> = client
                    .call_with_timeout(to, "work", &echo("w", n), Duration::from_secs(3))
                    .await;
                match r {
                    Ok(resp) if resp.n == n => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        failed.lock().push(format!("{to}: {other:?}"));
                        0
                    }
                };
                n += IN_FLIGHT as u64;
            }
        });
    }
    let progress = |at_least: u64| {
        let ok = ok.clone();
        eventually("calls complete", move || {
            ok.load(Ordering::Relaxed) >= at_least
        })
    };
    progress(500).await;
    for (i, logic) in servers.into_iter().enumerate() {
        within("a graceful leave", running[i].leave(&c.m))
            .await
            .expect("leave");
        assert!(!running[i].is_running());
        running[i] = start_server(logic).await;
        let done = ok.load(Ordering::Relaxed);
        progress(done + 500).await;
    }
    stop.store(true, Ordering::Relaxed);
    within("load ends", async {
        while let Some(r) = load.join_next().await {
            r.unwrap();
        }
    })
    .await;
    let failed = failed.lock().clone();
    assert!(
        failed.is_empty(),
        "{} calls failed, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert_eq!(
        executed.load(Ordering::Relaxed),
        ok.load(Ordering::Relaxed),
        "every executed request was answered"
    );
    for n in running.into_iter().chain(clients) {
        n.shutdown().await;
    }
}

/// A removed server's link, kept for its pending replies, is told apart from the
/// link to its successor at the same address: when the old one closes, only calls
/// to the old one could fail, and calls to the new one keep waiting for replies.
#[tokio::test]
async fn the_old_link_closing_does_not_fail_calls_to_the_successor() {
    let c = Cluster::new();
    let caller = c.start("1.1.1").await;
    let old = c.start("1.2.1").await;
    let held_old = Held::serve(&old);
    let old_calls = held_old.calls(&caller, "1.2.1", 2, WAIT).await;
    c.m.remove_now(addr("1.2.1"));
    eventually("the caller forgets the old server", || {
        caller.member(addr("1.2.1")).is_none()
    })
    .await;

    let new = c.start("1.2.1").await;
    let held_new = Held::serve(&new);
    let new_calls = held_new.calls(&caller, "1.2.1", 2, WAIT).await;

    // The old server answers, drains, stops; the caller sees its link end.
    let lost = caller.metrics().links_lost;
    held_old.release();
    for r in results(old_calls).await {
        r.expect("the old server's answer");
    }
    within("the old server stops", old.wait()).await;
    eventually("the old link is lost", || {
        caller.metrics().links_lost > lost
    })
    .await;

    held_new.release();
    for r in results(new_calls).await {
        r.expect("the new server's answer, after the old link closed");
    }
    caller.shutdown().await;
    new.shutdown().await;
}
