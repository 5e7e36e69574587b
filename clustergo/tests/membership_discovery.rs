//! The discovery server and client over loopback TCP.

// Not `support/mod.rs`: that file belongs to the node tests.
#[path = "support/membership.rs"]
mod support;
mod test_ca;

use std::time::Duration;

use clustergo::handshake::{self, AcceptorId, ConnKind, Hello};
use clustergo::membership::{
    DISCOVERY_ID, DiscoveryClient, DiscoveryServer, DiscoveryServerConfig, Membership,
    MembershipAdmin, MembershipError,
};
use support::{WAIT, change, expect_change, member, next_change};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn client(server: &DiscoveryServer) -> DiscoveryClient {
    DiscoveryClient::new(server.local_addr())
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[tokio::test]
async fn subscribe_gets_snapshot() {
    support::init_tracing();
    let server = DiscoveryServer::bind(
        "127.0.0.1:0",
        [member("1.1.1", 9001), member("1.2.1", 9002)],
    )
    .await
    .unwrap();
    let mut rx = server.client().subscribe().await.unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(
            vec![member("1.1.1", 9001), member("1.2.1", 9002)],
            vec![],
            vec![]
        )
    );

    // An empty server still sends a (empty) first change.
    let empty = DiscoveryServer::bind("127.0.0.1:0", []).await.unwrap();
    let mut rx = client(&empty).subscribe().await.unwrap();
    assert!(next_change(&mut rx).await.is_empty());
}

#[tokio::test]
async fn admin_changes_reach_every_subscriber_as_diffs() {
    support::init_tracing();
    let server = DiscoveryServer::bind("127.0.0.1:0", []).await.unwrap();
    let ([mut a, mut b], updated) =
        support::snapshot_then_changes(&client(&server), || client(&server)).await;

    // The server handle is an admin too.
    let removed = server.remove("1.3.1".parse().unwrap());
    assert_eq!(removed.removed, vec![updated.clone()]);
    for rx in [&mut a, &mut b] {
        assert_eq!(
            next_change(rx).await,
            change(vec![], vec![updated.clone()], vec![])
        );
    }
    assert_eq!(server.members(), vec![member("1.2.1", 9002)]);
}

#[tokio::test]
async fn client_reconnects_after_server_restart_and_publishes_the_diff() {
    support::init_tracing();
    let server = DiscoveryServer::bind(
        "127.0.0.1:0",
        [member("1.1.1", 9001), member("1.1.2", 9002)],
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let membership = client(&server);
    let mut rx = membership.subscribe().await.unwrap();
    assert_eq!(next_change(&mut rx).await.added.len(), 2);

    server.shutdown().await;
    drop(server);

    // Same port, different list: 1.1.1 gone, 1.1.2 moved, 1.1.3 new.
    let restarted = {
        let mut attempt = 0;
        loop {
            match DiscoveryServer::bind(addr, [member("1.1.2", 9012), member("1.1.3", 9003)]).await
            {
                Ok(server) => break server,
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    eprintln!("rebinding {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind {addr}: {e}"),
            }
        }
    };
    expect_change(
        &mut rx,
        change(
            vec![member("1.1.3", 9003)],
            vec![member("1.1.1", 9001)],
            vec![member("1.1.2", 9012)],
        ),
    )
    .await;

    // And it keeps following the new server.
    restarted.put(member("1.1.4", 9004));
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![member("1.1.4", 9004)], vec![], vec![])
    );
}

/// Reads until the server closes the connection; fails if it stays open.
async fn assert_closed_by_server(conn: &mut TcpStream) {
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) => return,
                Ok(_) => continue,
                // Closing with unread input sends a reset: closed all the same.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("unexpected read error: {e}"),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept the bad connection open");
}

/// A raw connection that passed the discovery handshake with the default secret.
async fn authenticated(server: &DiscoveryServer) -> TcpStream {
    let mut conn = TcpStream::connect(server.local_addr()).await.unwrap();
    let hello = Hello {
        kind: ConnKind::Frames,
        logic: DISCOVERY_ID,
        incarnation: 0,
        listen: "0.0.0.0:0".parse().unwrap(),
    };
    let secret = clustergo::Config::default().secret;
    handshake::dial(&mut conn, secret.expose(), &hello, DISCOVERY_ID, WAIT)
        .await
        .unwrap();
    conn
}

/// The server side of the discovery handshake with the default secret, for scripted
/// servers.
async fn accept_authenticated(conn: &mut TcpStream) {
    let me = AcceptorId {
        logic: DISCOVERY_ID,
        incarnation: 0,
    };
    let secret = clustergo::Config::default().secret;
    handshake::accept(conn, secret.expose(), me, WAIT)
        .await
        .unwrap();
    handshake::answer(conn, Ok(())).await.unwrap();
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn bad_input_closes_only_that_connection() {
    support::init_tracing();
    let config = DiscoveryServerConfig {
        max_frame: 1024,
        ..Default::default()
    };
    let server = DiscoveryServer::bind_with("127.0.0.1:0", [member("1.1.1", 9001)], config)
        .await
        .unwrap();
    let membership = client(&server).with_max_frame(1024);
    let mut rx = membership.subscribe().await.unwrap();
    assert_eq!(next_change(&mut rx).await.added.len(), 1);

    // Not JSON.
    let mut garbage = authenticated(&server).await;
    garbage
        .write_all(&frame(b"\x00\xffnot json"))
        .await
        .unwrap();
    assert_closed_by_server(&mut garbage).await;

    // JSON, but not a request.
    let mut unknown = authenticated(&server).await;
    unknown
        .write_all(&frame(br#"{"op":"explode","id":1}"#))
        .await
        .unwrap();
    assert_closed_by_server(&mut unknown).await;

    // A length far above the limit: refused from the header alone.
    let mut oversize = authenticated(&server).await;
    oversize.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert_closed_by_server(&mut oversize).await;

    // Just over the limit, with the whole body sent.
    let mut over = authenticated(&server).await;
    over.write_all(&frame(&vec![b' '; 1025])).await.unwrap();
    assert_closed_by_server(&mut over).await;

    // The existing subscriber and new clients are still served.
    let admin = client(&server);
    admin.put(member("1.1.2", 9002)).await.unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![member("1.1.2", 9002)], vec![], vec![])
    );
    let mut late = client(&server).subscribe().await.unwrap();
    assert_eq!(next_change(&mut late).await.added.len(), 2);
}

#[tokio::test]
async fn raw_protocol_put_is_answered() {
    support::init_tracing();
    let server = DiscoveryServer::bind("127.0.0.1:0", []).await.unwrap();
    let mut conn = authenticated(&server).await;
    let put =
        br#"{"op":"put","id":42,"member":{"logic":"2.5.7","net":"127.0.0.1:7000","export":true}}"#;
    conn.write_all(&frame(put)).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(WAIT, conn.read_exact(&mut len))
        .await
        .unwrap()
        .unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    tokio::time::timeout(WAIT, conn.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(body, br#"{"type":"reply","id":42}"#);
    conn.write_all(&frame(br#"{"op":"ping","id":43}"#))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, read_frame(&mut conn)).await;
    assert_eq!(pong.unwrap().unwrap(), br#"{"type":"reply","id":43}"#);
    let mut want = member("2.5.7", 7000);
    want.export = true;
    assert_eq!(server.members(), vec![want]);
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    support::init_tracing();
    let addr = format!("127.0.0.1:{}", support::free_port());
    let membership = DiscoveryClient::new(&addr);
    let started = std::time::Instant::now();
    let err = membership.subscribe().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    match &err {
        MembershipError::Unreachable(msg) => assert!(msg.contains(&addr), "{msg}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let err = membership.put(member("1.1.1", 1)).await.unwrap_err();
    assert!(matches!(err, MembershipError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_is_resynchronised() {
    support::init_tracing();
    // A queue of one change: a burst overflows it, so the server drops the
    // subscriber, which reconnects and catches up from a snapshot.
    let config = DiscoveryServerConfig {
        subscriber_queue: 1,
        ..Default::default()
    };
    let server = DiscoveryServer::bind_with("127.0.0.1:0", [member("1.1.1", 9001)], config)
        .await
        .unwrap();
    let mut rx = client(&server).subscribe().await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for m in next_change(&mut rx).await.added {
        seen.insert(m.logic(), m);
    }

    // The test runtime has one thread: no connection task runs during this loop.
    for i in 0..200u16 {
        server.put(member(&format!("1.2.{i}"), 10_000 + i));
    }
    server.remove("1.1.1".parse().unwrap());
    let want: std::collections::BTreeMap<_, _> = server
        .members()
        .into_iter()
        .map(|m| (m.logic(), m))
        .collect();
    assert_eq!(want.len(), 200);

    let caught_up = tokio::time::timeout(WAIT, async {
        while seen != want {
            let change = rx.recv().await.expect("membership stream ended");
            for m in change.removed {
                assert!(seen.remove(&m.logic()).is_some(), "removed unknown {m:?}");
            }
            for m in change.added {
                assert!(seen.insert(m.logic(), m).is_none(), "added twice");
            }
            for m in change.updated {
                assert!(seen.insert(m.logic(), m).is_some(), "updated unknown");
            }
        }
    })
    .await;
    assert!(
        caught_up.is_ok(),
        "client did not catch up: has {} members",
        seen.len()
    );
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    support::init_tracing();
    let server = DiscoveryServer::bind("127.0.0.1:0", []).await.unwrap();
    let addr = server.local_addr();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    drop(server);
    assert_closed_by_server(&mut conn).await;
    let refused = support::poll_until(WAIT, async || TcpStream::connect(addr).await.is_err()).await;
    assert!(refused, "server still accepting after drop");
}

#[tokio::test]
async fn dropping_the_receiver_ends_the_subscription() {
    support::init_tracing();
    let server = DiscoveryServer::bind("127.0.0.1:0", []).await.unwrap();
    let a = server.client().subscribe().await.unwrap();
    let b = server.client().subscribe().await.unwrap();
    assert_eq!(server.subscriber_count(), 2);
    drop(a);
    let one_left = support::poll_until(WAIT, async || server.subscriber_count() == 1).await;
    assert!(
        one_left,
        "subscription still open after its receiver was dropped"
    );
    drop(b);
    let none_left = support::poll_until(WAIT, async || server.subscriber_count() == 0).await;
    assert!(
        none_left,
        "subscription still open after its receiver was dropped"
    );
}

/// Reads one frame body from a raw connection.
async fn read_frame(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).await?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).await?;
    Ok(body)
}

#[tokio::test]
async fn a_silent_server_is_detected_by_heartbeat() {
    support::init_tracing();
    // A scripted server: the first connection gets a snapshot and then silence
    // (never closed, never answered); later ones get a bigger snapshot and answer
    // pings.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (m1, m2) = (member("1.1.1", 9001), member("1.1.2", 9002));
    let (first, second) = (vec![m1.clone()], vec![m1.clone(), m2.clone()]);
    let fake = tokio::spawn(async move {
        let mut silent = Vec::new();
        for n in 0..20 {
            let (mut conn, _) = listener.accept().await.unwrap();
            accept_authenticated(&mut conn).await;
            let subscribe = read_frame(&mut conn).await.unwrap();
            assert_eq!(subscribe, br#"{"op":"subscribe"}"#);
            let members = if n == 0 { &first } else { &second };
            let snapshot = serde_json::json!({"type": "snapshot", "members": members});
            conn.write_all(&frame(snapshot.to_string().as_bytes()))
                .await
                .unwrap();
            if n == 0 {
                silent.push(conn);
                continue;
            }
            tokio::spawn(async move {
                while let Ok(body) = read_frame(&mut conn).await {
                    let ping: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(ping["op"], "ping");
                    let reply = serde_json::json!({"type": "reply", "id": ping["id"]});
                    if conn
                        .write_all(&frame(reply.to_string().as_bytes()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });

    let membership = DiscoveryClient::new(addr)
        .with_heartbeat(Duration::from_millis(100))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let mut rx = membership.subscribe().await.unwrap();
    assert_eq!(next_change(&mut rx).await.added, vec![m1]);
    // Only a reconnect, forced by the missing heartbeat answers, can bring m2.
    assert_eq!(next_change(&mut rx).await, change(vec![m2], vec![], vec![]));
    fake.abort();
}

/// Reads frames until one equal to `want` arrives.
async fn read_until(conn: &mut TcpStream, want: &[u8]) {
    let found = tokio::time::timeout(WAIT, async {
        while read_frame(conn).await.unwrap() != want {}
    })
    .await;
    assert!(found.is_ok(), "no {:?}", String::from_utf8_lossy(want));
}

#[tokio::test]
async fn anonymous_and_wrong_secret_clients_cannot_change_or_read_the_list() {
    support::init_tracing();
    let server = DiscoveryServer::bind("127.0.0.1:0", [member("1.1.1", 9001)])
        .await
        .unwrap();

    // The probe: an anonymous remove, as a bare frame. The server reads it as a
    // (malformed) handshake and hangs up without acting on it.
    let mut anonymous = TcpStream::connect(server.local_addr()).await.unwrap();
    anonymous
        .write_all(&frame(br#"{"op":"remove","id":1,"logic":"1.1.1"}"#))
        .await
        .unwrap();
    assert_closed_by_server(&mut anonymous).await;
    let mut anonymous = TcpStream::connect(server.local_addr()).await.unwrap();
    anonymous
        .write_all(&frame(br#"{"op":"subscribe"}"#))
        .await
        .unwrap();
    assert_closed_by_server(&mut anonymous).await;

    // A client with another secret gets a clear refusal for every operation.
    let stranger = client(&server).with_secret("not-the-cluster-secret");
    for err in [
        stranger.subscribe().await.map(drop).unwrap_err(),
        stranger.remove("1.1.1".parse().unwrap()).await.unwrap_err(),
        stranger.put(member("1.6.6", 9666)).await.unwrap_err(),
    ] {
        match &err {
            MembershipError::Refused(msg) => {
                assert!(msg.contains("authentication failed"), "{msg}");
                assert!(msg.contains("secret"), "{msg}");
            }
            other => panic!("expected Refused, got {other:?}"),
        }
    }
    assert_eq!(server.members(), vec![member("1.1.1", 9001)]);

    // A server with another secret is refused by a client the same way.
    let other = DiscoveryServer::bind_with(
        "127.0.0.1:0",
        [],
        DiscoveryServerConfig {
            secret: b"another-cluster".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let err = client(&other).subscribe().await.map(drop).unwrap_err();
    assert!(matches!(err, MembershipError::Refused(_)), "{err:?}");
    assert!(other.client().subscribe().await.is_ok());
}

#[tokio::test]
async fn puts_beyond_the_member_limit_are_refused() {
    support::init_tracing();
    let config = DiscoveryServerConfig {
        max_members: 3,
        ..Default::default()
    };
    let server = DiscoveryServer::bind_with("127.0.0.1:0", [], config)
        .await
        .unwrap();
    let admin = client(&server);
    for i in 0..3u16 {
        admin
            .put(member(&format!("1.1.{}", i + 1), 9000 + i))
            .await
            .unwrap();
    }
    // The probe: a flood of new members. Each is refused; the list stays bounded.
    let mut conn = authenticated(&server).await;
    for i in 0..200u16 {
        let put = format!(
            r#"{{"op":"put","id":{i},"member":{{"logic":"1.2.{}","net":"127.0.0.1:7000"}}}}"#,
            i + 1
        );
        conn.write_all(&frame(put.as_bytes())).await.unwrap();
    }
    let last = br#"{"type":"reply","id":199,"error":"member limit (3) reached"}"#;
    read_until(&mut conn, last).await;
    assert_eq!(server.members().len(), 3);
    let err = admin.put(member("1.3.1", 9100)).await.unwrap_err();
    match &err {
        MembershipError::Refused(msg) => assert!(msg.contains("member limit"), "{msg}"),
        other => panic!("expected Refused, got {other:?}"),
    }

    // Listed members may still change, and a removal makes room.
    admin.put(member("1.1.1", 9999)).await.unwrap();
    admin.remove("1.1.2".parse().unwrap()).await.unwrap();
    admin.put(member("1.3.1", 9100)).await.unwrap();
    assert_eq!(server.members().len(), 3);
}

#[tokio::test]
async fn idle_and_half_frame_connections_are_closed_after_the_timeouts() {
    support::init_tracing();
    let config = DiscoveryServerConfig {
        // Small, but ten times the pinger's interval and far above a loopback
        // handshake, so that only silence closes a connection.
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let server = DiscoveryServer::bind_with("127.0.0.1:0", [member("1.1.1", 9001)], config)
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut conns = Vec::new();
    for _ in 0..10 {
        // Silent before the handshake.
        conns.push(TcpStream::connect(addr).await.unwrap());
        // Half a handshake message.
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(&[0, 40, b'C', b'G']).await.unwrap();
        conns.push(half);
        // Authenticated, then silent.
        conns.push(authenticated(&server).await);
        // Authenticated, then half a frame.
        let mut half = authenticated(&server).await;
        half.write_all(&[0, 0, 0, 100, b'{']).await.unwrap();
        conns.push(half);
    }
    // A subscriber that pings well within the idle timeout is kept.
    let mut live = authenticated(&server).await;
    live.write_all(&frame(br#"{"op":"subscribe"}"#))
        .await
        .unwrap();
    let pinger = tokio::spawn(async move {
        for id in 0..25 {
            let ping = format!(r#"{{"op":"ping","id":{id}}}"#);
            live.write_all(&frame(ping.as_bytes())).await.unwrap();
            let pong = format!(r#"{{"type":"reply","id":{id}}}"#);
            read_until(&mut live, pong.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    for conn in &mut conns {
        assert_closed_by_server(conn).await;
    }
    tokio::time::timeout(WAIT, pinger).await.unwrap().unwrap();
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    support::init_tracing();
    let config = DiscoveryServerConfig {
        max_connections: 2,
        // Long, so that only the limit can close the extra connection quickly.
        handshake_timeout: Duration::from_secs(600),
        ..Default::default()
    };
    let server = DiscoveryServer::bind_with("127.0.0.1:0", [], config)
        .await
        .unwrap();
    let first = TcpStream::connect(server.local_addr()).await.unwrap();
    let _second = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut extra = TcpStream::connect(server.local_addr()).await.unwrap();
    assert_closed_by_server(&mut extra).await;

    // Once a slot frees, clients are served again.
    drop(first);
    let admin = client(&server);
    let served = support::poll_until(WAIT, async || {
        admin.put(member("1.1.1", 9001)).await.is_ok()
    })
    .await;
    assert!(served, "no client served after a connection closed");
}

#[tokio::test]
async fn anonymous_reads_only_when_the_server_opts_in_and_never_writes() {
    support::init_tracing();
    let config = DiscoveryServerConfig {
        insecure_anonymous_reads: true,
        ..Default::default()
    };
    let open = DiscoveryServer::bind_with("127.0.0.1:0", [member("1.1.1", 9001)], config)
        .await
        .unwrap();
    let reader = client(&open).insecure_anonymous_reads();
    let mut rx = reader.subscribe().await.unwrap();
    assert_eq!(
        next_change(&mut rx).await.added,
        vec![member("1.1.1", 9001)]
    );
    for err in [
        reader.put(member("1.6.6", 9666)).await.unwrap_err(),
        reader.remove("1.1.1".parse().unwrap()).await.unwrap_err(),
    ] {
        match &err {
            MembershipError::Refused(msg) => assert!(msg.contains("only read"), "{msg}"),
            other => panic!("expected Refused, got {other:?}"),
        }
    }
    // The probe as a bare frame: answered with the refusal, nothing removed.
    let mut raw = TcpStream::connect(open.local_addr()).await.unwrap();
    raw.write_all(&frame(br#"{"op":"remove","id":5,"logic":"1.1.1"}"#))
        .await
        .unwrap();
    let reply = tokio::time::timeout(WAIT, read_frame(&mut raw)).await;
    let reply = String::from_utf8(reply.unwrap().unwrap()).unwrap();
    assert!(
        reply.contains(r#""id":5"#) && reply.contains("only read"),
        "{reply}"
    );
    assert_eq!(open.members(), vec![member("1.1.1", 9001)]);

    // An anonymous client announcing a large frame (under 64 KiB: its first two bytes
    // are zero, which is what makes it anonymous) is cut off at once instead of making
    // the server reserve room for it and wait for the idle timeout.
    let mut big = TcpStream::connect(open.local_addr()).await.unwrap();
    big.write_all(&60_000u32.to_be_bytes()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, big.read(&mut buf))
        .await
        .expect("closed at once, not waiting for the body")
        .unwrap_or(0);
    assert_eq!(n, 0, "no answer to an oversize anonymous frame");

    // Authenticated clients still write, and the anonymous reader sees it.
    client(&open).put(member("1.2.1", 9002)).await.unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![member("1.2.1", 9002)], vec![], vec![])
    );

    // A default server serves no anonymous client, and says what may be wrong.
    let closed = DiscoveryServer::bind("127.0.0.1:0", []).await.unwrap();
    let err = client(&closed)
        .insecure_anonymous_reads()
        .subscribe()
        .await
        .map(drop)
        .unwrap_err();
    assert!(err.to_string().contains("anonymous reads"), "{err}");
}

/// TLS under the protocol: a client trusting the server's CA subscribes and writes
/// through it; a plain client, or one trusting another CA, gets nothing.
#[tokio::test]
async fn tls_connections_serve_only_clients_that_trust_the_server() {
    support::init_tracing();
    let ca = test_ca::TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let config = DiscoveryServerConfig {
        tls: Some(ca.server_config(&leaf)),
        ..DiscoveryServerConfig::default()
    };
    let server = DiscoveryServer::bind_with("127.0.0.1:0", [member("1.1.1", 9001)], config)
        .await
        .unwrap();
    let at = format!("localhost:{}", server.local_addr().port());
    let tls_client = || {
        DiscoveryClient::new(&at)
            .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
            .with_tls(ca.client_config())
            .unwrap()
    };
    support::subscribe_then_put(tls_client, member("1.1.1", 9001), member("1.2.1", 9002)).await;

    let plain = DiscoveryClient::new(&at).with_connect_timeout(Duration::from_secs(2));
    let err = plain.put(member("1.3.1", 9003)).await.unwrap_err();
    assert!(matches!(err, MembershipError::Unreachable(_)), "{err}");
    let stranger = DiscoveryClient::new(&at)
        .with_tls(test_ca::TestCa::new().client_config())
        .unwrap();
    let err = stranger.put(member("1.3.1", 9003)).await.unwrap_err();
    assert!(
        matches!(&err, MembershipError::Unreachable(m) if m.contains("TLS")),
        "{err}"
    );
    assert_eq!(
        server.members(),
        vec![member("1.1.1", 9001), member("1.2.1", 9002)]
    );
}
