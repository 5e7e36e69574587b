//! Nodes on loopback: messages, lazy links, pending queue, reconnects, handshake,
//! visibility, stop.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clustergo::{Config, Node, SendError, StartError};
use parking_lot::Mutex;
use support::*;
use tokio::net::TcpListener;

const PB: u16 = 1;
const BIN: u16 = 2;

/// Records (from, n) of every received pb and binary message.
fn recorder(node: &Node) -> Arc<Mutex<Vec<(String, u64)>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    node.register_pb_handler(PB, move |from, m: Echo| {
        g.lock().push((from.to_string(), m.n))
    });
    let g = got.clone();
    node.register_bin_handler(BIN, move |from, _cmd, body: Bytes| {
        let n = u64::from_be_bytes(body[..8].try_into().unwrap());
        g.lock().push((format!("bin:{from}"), n));
    });
    got
}

#[tokio::test]
async fn pb_and_binary_both_ways_in_order_without_loss() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    let got_a = recorder(&a);
    let got_b = recorder(&b);
    const N: u64 = 10_000;
    let send = |from: &Node, to: &str| {
        for n in 0..N {
            loop {
                let r = if n % 2 == 0 {
                    from.send_pb(addr(to), &echo("x", n))
                } else {
                    from.send_bin(addr(to), BIN, &n.to_be_bytes())
                };
                match r {
                    Ok(()) => break,
                    Err(SendError::Busy) => std::thread::yield_now(),
                    Err(e) => panic!("send failed: {e}"),
                }
            }
        }
    };
    let (a2, b2) = (a.clone(), b.clone());
    let ta = tokio::task::spawn_blocking(move || send(&a2, "1.2.1"));
    let tb = tokio::task::spawn_blocking(move || send(&b2, "1.1.1"));
    ta.await.unwrap();
    tb.await.unwrap();
    eventually("10k messages each way", || {
        got_a.lock().len() == N as usize && got_b.lock().len() == N as usize
    })
    .await;
    for (got, from) in [(&got_a, "1.2.1"), (&got_b, "1.1.1")] {
        let got = got.lock();
        for (i, (who, n)) in got.iter().enumerate() {
            assert_eq!(*n, i as u64, "in order");
            let want = if i % 2 == 0 {
                from.to_string()
            } else {
                format!("bin:{from}")
            };
            assert_eq!(*who, want);
        }
    }
    assert_eq!(a.metrics().links_established, 1, "one link between the two");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn three_nodes_and_self_send() {
    let c = Cluster::new();
    let nodes = [
        c.start("1.1.1").await,
        c.start("1.1.2").await,
        c.start("1.2.1").await,
    ];
    let names = ["1.1.1", "1.1.2", "1.2.1"];
    let got: Vec<_> = nodes.iter().map(recorder).collect();
    for (i, node) in nodes.iter().enumerate() {
        for to in names {
            for n in 0..100 {
                node.send_pb(addr(to), &echo(names[i], n)).unwrap();
            }
        }
    }
    eventually("300 messages at each node", || {
        got.iter().all(|g| g.lock().len() == 300)
    })
    .await;
    for g in &got {
        let g = g.lock();
        for from in names {
            let ns: Vec<u64> = g
                .iter()
                .filter(|(w, _)| w == from)
                .map(|(_, n)| *n)
                .collect();
            assert_eq!(ns, (0..100).collect::<Vec<_>>(), "from {from} in order");
        }
    }
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn lazy_connect_on_first_send() {
    let c = Cluster::new();
    let m = c.m.clone();
    let fake = TcpListener::bind("127.0.0.1:0").await.unwrap();
    m.put_now(member("1.2.1", fake.local_addr().unwrap(), false));
    let a = c.start("1.1.1").await;
    a.register_pb_message::<Echo>(PB);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), fake.accept())
            .await
            .is_err(),
        "no connection before the first send"
    );
    a.send_pb(addr("1.2.1"), &echo("hi", 1)).unwrap();
    within("the first send to dial", fake.accept())
        .await
        .unwrap();
    a.shutdown().await;
}

#[tokio::test]
async fn full_pending_queue_is_busy() {
    let c = Cluster::new();
    let m = c.m.clone();
    // A peer that accepts but never answers the handshake: nothing drains the queue.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    m.put_now(member("1.2.1", silent.local_addr().unwrap(), false));
    let cfg = Config {
        pending_queue: 8,
        send_timeout: Duration::from_secs(30),
        ..config()
    };
    let a = c.start_with("1.1.1", false, cfg).await;
    let mut ok = 0;
    let mut busy = 0;
    for n in 0..20 {
        match a.send_bin(addr("1.2.1"), BIN, &u64::to_be_bytes(n)) {
            Ok(()) => ok += 1,
            Err(SendError::Busy) => busy += 1,
            Err(e) => panic!("{e}"),
        }
    }
    // 8 queued, plus at most one taken by the driver to start dialing.
    assert!((8..=9).contains(&ok), "ok = {ok}");
    assert_eq!(ok + busy, 20);
    a.shutdown().await;
}

#[tokio::test]
async fn expired_message_is_never_delivered_late() {
    let c = Cluster::new();
    let m = c.m.clone();
    let b_net = free_addr().await; // listed, but nobody listens yet
    m.put_now(member("1.2.1", b_net, false));
    let send_timeout = Duration::from_millis(100);
    let cfg = Config {
        send_timeout,
        ..config()
    };
    let a = c.start_with("1.1.1", false, cfg).await;
    a.register_pb_message::<Echo>(PB);
    // The message's deadline passes, exactly, while nobody listens.
    tokio::time::pause();
    a.send_pb(addr("1.2.1"), &echo("stale", 1)).unwrap();
    tokio::time::sleep(send_timeout + Duration::from_millis(1)).await;
    tokio::time::resume();

    let b = Node::with_config(config());
    let got = recorder(&b);
    let listener = TcpListener::bind(b_net).await.unwrap();
    b.start_on(listener, m.clone(), addr("1.2.1"))
        .await
        .unwrap();
    c.add(b.clone()).await;
    // The failed dial made 1.2.1 known down until a backoff probe reaches b.
    eventually("b reachable", || {
        a.send_pb(addr("1.2.1"), &echo("fresh", 2)).is_ok()
    })
    .await;
    // The stale message was queued ahead of the fresh one on the same link: had it
    // been sent, it would have arrived first.
    eventually("the fresh message", || !got.lock().is_empty()).await;
    assert_eq!(*got.lock(), vec![("1.1.1".to_string(), 2)]);
    let m = a.metrics();
    assert!(m.frames_expired + m.frames_dropped >= 1, "{m:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn peer_restart_later_messages_delivered() {
    let c = Cluster::new();
    let m = c.m.clone();
    let a = c.start("1.1.1").await;
    a.register_pb_message::<Echo>(PB);
    let b = c.start("1.2.1").await;
    let got = recorder(&b);
    let b_net = b.listen_addr().unwrap();
    a.send_pb(addr("1.2.1"), &echo("one", 1)).unwrap();
    eventually("first message", || got.lock().len() == 1).await;
    b.shutdown().await;

    let b2 = Node::with_config(config());
    let got2 = recorder(&b2);
    let listener = TcpListener::bind(b_net).await.unwrap();
    b2.start_on(listener, m.clone(), addr("1.2.1"))
        .await
        .unwrap();
    c.add(b2.clone()).await;
    // Keep sending until the redial lands; later messages must arrive.
    within("delivery after restart", async {
        let mut n = 2;
        while got2.lock().is_empty() {
            let _ = a.send_pb(addr("1.2.1"), &echo("again", n));
            n += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn simultaneous_dial_makes_one_link_and_loses_nothing() {
    for round in 0..5 {
        let c = Cluster::new();
        let a = c.start("1.1.1").await;
        let b = c.start("1.1.2").await;
        let got_a = recorder(&a);
        let got_b = recorder(&b);
        // Both send at once, before either has a link.
        for n in 0..500 {
            a.send_pb(addr("1.1.2"), &echo("a", n)).unwrap();
            b.send_pb(addr("1.1.1"), &echo("b", n)).unwrap();
        }
        eventually("500 each way", || {
            got_a.lock().len() == 500 && got_b.lock().len() == 500
        })
        .await;
        for g in [&got_a, &got_b] {
            let ns: Vec<u64> = g.lock().iter().map(|(_, n)| *n).collect();
            assert_eq!(ns, (0..500).collect::<Vec<_>>(), "round {round}");
        }
        assert_eq!(a.metrics().links_established, 1, "round {round}");
        assert_eq!(b.metrics().links_established, 1, "round {round}");
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
async fn wrong_secret_is_rejected() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    a.register_pb_message::<Echo>(PB);
    let other = Config {
        secret: b"another-secret".into(),
        ..config()
    };
    let b = c.start_with("1.2.1", false, other).await;
    let got = recorder(&b);
    for n in 0..5 {
        let _ = a.send_pb(addr("1.2.1"), &echo("x", n));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(got.lock().is_empty());
    assert_eq!(a.metrics().links_established, 0);
    assert_eq!(b.metrics().links_established, 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn visibility_across_clusters() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let hidden = c.start_with("2.5.1", false, config()).await;
    assert_eq!(a.get_addr_by_type(5), None, "not exported");
    let exported = c.start_with("2.5.2", true, config()).await;
    for _ in 0..50 {
        assert_eq!(
            a.get_addr_by_type(5),
            Some(addr("2.5.2")),
            "only the exported one"
        );
    }
    let local = c.start("1.5.1").await;
    for _ in 0..50 {
        assert_eq!(a.get_addr_by_type(5), Some(addr("1.5.1")));
        assert_ne!(
            hidden.get_addr_by_type(5),
            Some(addr("1.5.1")),
            "1.5.1 is not exported"
        );
    }
    let mut seen: Vec<_> = (0..8)
        .filter_map(|n| hidden.get_addr_by_type_n(5, n))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        vec![addr("2.5.1"), addr("2.5.2")],
        "cluster 2 sees both of its own"
    );
    for n in [&a, &hidden, &exported, &local] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn start_errors_and_stop() {
    let c = Cluster::new();
    let m = c.m.clone();
    let node = Node::with_config(config());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    match node.start_on(listener, m.clone(), addr("1.1.1")).await {
        Err(StartError::NotInMembership(a)) => assert_eq!(a, addr("1.1.1")),
        other => panic!("want NotInMembership, got {other:?}"),
    }
    assert_eq!(
        node.send_bin(addr("1.1.1"), 1, b"x"),
        Err(SendError::NotStarted)
    );

    let a = c.start("1.1.1").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    assert!(matches!(
        a.start_on(listener, m.clone(), addr("1.1.1")).await,
        Err(StartError::AlreadyStarted)
    ));
    a.stop();
    within("wait after stop", a.wait()).await;
    assert!(a.send_bin(addr("1.1.1"), 1, b"x").is_err());
}

/// A drain timeout too long for the clock (the drain keeps one deadline for
/// `leave` and its stop) waits for good instead of overflowing: an idle node
/// stops at once.
#[tokio::test]
async fn stop_with_an_endless_drain_timeout() {
    let c = Cluster::new();
    let endless = Config {
        drain_timeout: Duration::MAX,
        ..config()
    };
    let a = c.start_with("1.1.1", false, endless).await;
    within("an idle node to stop", a.shutdown()).await;
}

#[tokio::test]
async fn removed_from_membership_stops() {
    let c = Cluster::new();
    let m = c.m.clone();
    let a = c.start("1.1.1").await;
    m.remove_now(addr("1.1.1"));
    within("node stops when removed", a.wait()).await;
}

#[tokio::test]
async fn panicking_handler_keeps_node_running() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    b.register_pb_handler(PB, move |_, m: Echo| {
        s.fetch_add(1, Ordering::SeqCst);
        if m.n == 0 {
            panic!("handler bug");
        }
    });
    a.register_pb_message::<Echo>(PB);
    a.send_pb(addr("1.2.1"), &echo("boom", 0)).unwrap();
    a.send_pb(addr("1.2.1"), &echo("fine", 1)).unwrap();
    a.send_bin(addr("1.2.1"), 999, b"unknown cmd").unwrap();
    a.send_pb(addr("1.2.1"), &echo("fine", 2)).unwrap();
    eventually("messages after the panic", || {
        seen.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(b.metrics().links_lost, 0, "link kept");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn address_change_redials_the_new_address() {
    let c = Cluster::new();
    let m = c.m.clone();
    let a = c.start("1.1.1").await;
    a.register_pb_message::<Echo>(PB);
    let b = c.start("1.2.1").await;
    let got = recorder(&b);
    a.send_pb(addr("1.2.1"), &echo("x", 1)).unwrap();
    eventually("first", || got.lock().len() == 1).await;
    b.shutdown().await;
    // The node comes back elsewhere: membership says so.
    let b2 = Node::with_config(config());
    let got2 = recorder(&b2);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    m.put_now(member("1.2.1", listener.local_addr().unwrap(), false));
    b2.start_on(listener, m.clone(), addr("1.2.1"))
        .await
        .unwrap();
    c.add(b2.clone()).await;
    within("delivery at the new address", async {
        while got2.lock().is_empty() {
            let _ = a.send_pb(addr("1.2.1"), &echo("y", 2));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_close_only_that_link() {
    use tokio::io::AsyncWriteExt;

    let c = Cluster::new();
    let m = c.m.clone();
    let b = c.start("1.2.1").await;
    let got = recorder(&b);
    // An authenticated impostor of 1.3.1 that then sends garbage. The source IP
    // matches (loopback), the listen address matches membership.
    let bad_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad_net = bad_listener.local_addr().unwrap();
    m.put_now(member("1.3.1", bad_net, false));
    let mut s = raw_link("1.3.1", bad_net, &b).await;
    s.write_all(&[0, 0, 0, 9, 7, 0, 0, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap(); // bad flag
    let mut buf = [0u8; 1];
    let n = within(
        "b closes the bad link",
        tokio::io::AsyncReadExt::read(&mut s, &mut buf),
    )
    .await
    .unwrap_or(0);
    assert_eq!(n, 0);
    // Others are unaffected.
    let a = c.start("1.1.1").await;
    a.register_pb_message::<Echo>(PB);
    a.send_pb(addr("1.2.1"), &echo("ok", 1)).unwrap();
    eventually("good link works", || got.lock().len() == 1).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// The link reader counts what it handled whenever it waits for the socket, not
/// only when a read ends on a frame boundary (regression: on a link whose reads
/// kept ending mid-frame, `frames_received` stayed behind the frames delivered).
#[tokio::test]
async fn frames_are_counted_while_a_partial_frame_waits() {
    use clustergo::codec::{Frame, FrameKind};
    use tokio::io::AsyncWriteExt;

    let c = Cluster::new();
    let b = c.start("1.2.1").await;
    let got = inbox(&b, PB, BIN);
    let peer_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer_net = peer_listener.local_addr().unwrap();
    c.m.put_now(member("1.3.1", peer_net, false));
    let before = b.metrics().frames_received;
    let mut s = raw_link("1.3.1", peer_net, &b).await;
    let frame = |i: u8| {
        Frame {
            kind: FrameKind::Binary,
            to: addr("1.2.1"),
            from: addr("1.3.1"),
            cmd: BIN,
            body: Bytes::from(vec![b'a' + i; 3]),
        }
        .to_bytes()
    };
    // Five whole frames and the first bytes of a sixth, in one write: the read
    // ends mid-frame, and the link then stays quiet.
    let mut wire = Vec::new();
    for i in 0..5 {
        wire.extend_from_slice(&frame(i));
    }
    wire.extend_from_slice(&frame(5)[..4]);
    s.write_all(&wire).await.unwrap();
    eventually("five messages delivered", || got.lock().len() == 5).await;
    eventually("five frames counted", || {
        b.metrics().frames_received - before >= 5
    })
    .await;
    drop(s);
    b.shutdown().await;
}
