//! Nodes whose membership comes from a discovery server (and, with the features,
//! from Redis and etcd): they find each other, follow admin changes, and survive a
//! restart of the discovery server.

#[cfg(any(feature = "redis", feature = "etcd"))]
#[path = "support/membership.rs"]
mod backends;
mod support;

use std::sync::Arc;

use clustergo::Node;
use clustergo::membership::{DiscoveryClient, DiscoveryServer, MembershipAdmin};
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
