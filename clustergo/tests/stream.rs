//! Multiplexed streams between two nodes on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clustergo::{Config, Node, StreamError};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn try_round_trip(node: &Node, to: &str, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = node
        .open_stream(addr(to))
        .await
        .map_err(std::io::Error::other)?;
    assert_eq!(s.peer(), addr(to));
    let (mut rd, mut wr) = tokio::io::split(&mut s);
    let write = async {
        wr.write_all(data).await?;
        wr.shutdown().await
    };
    let mut back = Vec::new();
    let read = rd.read_to_end(&mut back);
    let (w, r) = tokio::join!(write, read);
    w?;
    r?;
    Ok(back)
}

async fn round_trip(node: &Node, to: &str, data: &[u8]) -> Vec<u8> {
    try_round_trip(node, to, data).await.unwrap()
}

#[tokio::test]
async fn echo_round_trip_and_half_close() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    echo_streams(&b);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(within("echo", round_trip(&a, "1.2.1", &data)).await, data);
    // Streams the other way share the same session.
    echo_streams(&a);
    assert_eq!(
        within("echo back", round_trip(&b, "1.1.1", b"hi")).await,
        b"hi"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn thousand_concurrent_streams() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    echo_streams(&b);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let a = a.clone();
        set.spawn(async move {
            let data: Vec<u8> = (0..4096u32).map(|j| ((i * 31 + j) % 251) as u8).collect();
            let back = round_trip(&a, "1.2.1", &data).await;
            assert_eq!(back, data, "stream {i}");
        });
    }
    within("1000 streams", async {
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn stalled_reader_does_not_block_others() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    let received = Arc::new(AtomicUsize::new(0));
    let r = received.clone();
    // The first stream's handler never reads; the others count what they read.
    let first = Arc::new(AtomicUsize::new(0));
    b.on_new_stream(move |mut s| {
        let r = r.clone();
        let first = first.clone();
        async move {
            if first.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                r.fetch_add(n, Ordering::SeqCst);
            }
        }
    });
    let mut stalled = a.open_stream(addr("1.2.1")).await.unwrap();
    // Fill the stalled stream until its window is exhausted (the write blocks).
    let chunk = vec![7u8; 64 * 1024];
    let filled = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            stalled.write_all(&chunk).await.unwrap();
        }
    })
    .await;
    assert!(
        filled.is_err(),
        "writes to a stalled reader must block on flow control"
    );
    // Meanwhile another stream moves 8 MiB.
    let mut other = a.open_stream(addr("1.2.1")).await.unwrap();
    within("other stream flows", async {
        for _ in 0..128 {
            other.write_all(&chunk).await.unwrap();
        }
        other.shutdown().await.unwrap();
    })
    .await;
    eventually("all bytes read", || {
        received.load(Ordering::SeqCst) == 128 * 64 * 1024
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn peer_restart_next_open_works() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    echo_streams(&b);
    assert_eq!(round_trip(&a, "1.2.1", b"one").await, b"one");
    let net = b.listen_addr().unwrap();
    b.shutdown().await;
    let b2 = Node::with_config(config());
    echo_streams(&b2);
    b2.start_on(
        TcpListener::bind(net).await.unwrap(),
        c.m.clone(),
        addr("1.2.1"),
    )
    .await
    .unwrap();
    c.add(b2.clone()).await;
    // The first open may race with noticing the old session's close; the
    // session is rebuilt by the next one.
    let back = within("open after restart", async {
        loop {
            match try_round_trip(&a, "1.2.1", b"two").await {
                Ok(v) => break v,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    assert_eq!(back, b"two");
    a.shutdown().await;
    b2.shutdown().await;
}

#[tokio::test]
async fn open_errors_are_clear() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    assert!(matches!(
        a.open_stream(addr("1.1.1")).await,
        Err(StreamError::SelfStream)
    ));
    assert!(matches!(
        a.open_stream(addr("1.9.9")).await,
        Err(StreamError::UnknownPeer(_))
    ));
    assert!(matches!(
        a.open_stream(addr("2.1.1")).await,
        Err(StreamError::NotDirect(_))
    ));
    c.m.put_now(member("1.3.1", free_addr().await, false));
    c.settle().await;
    assert!(matches!(
        a.open_stream(addr("1.3.1")).await,
        Err(StreamError::Connect { .. })
    ));
    a.shutdown().await;
}

/// Issue 17.2: a stream cut by a peer reset reads as an error, distinguishable
/// from the peer's `shutdown()`, which reads as end-of-stream.
#[tokio::test]
async fn reset_reads_as_an_error_and_shutdown_as_end_of_stream() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    // The first byte says how the handler ends the stream: 1 = shutdown, 2 = drop.
    b.on_new_stream(|mut s| async move {
        let mut how = [0u8; 1];
        if s.read_exact(&mut how).await.is_ok() && how[0] == 1 {
            let _ = s.shutdown().await;
        }
    });
    for (how, want) in [(1u8, None), (2, Some(std::io::ErrorKind::ConnectionReset))] {
        let mut s = within("open", a.open_stream(addr("1.2.1"))).await.unwrap();
        s.write_all(&[how]).await.unwrap();
        let mut buf = [0u8; 8];
        let got = within("the end of the stream", s.read(&mut buf)).await;
        match want {
            None => assert_eq!(got.unwrap(), 0, "shutdown reads as end-of-stream"),
            Some(kind) => assert_eq!(got.unwrap_err().kind(), kind, "a reset is an error"),
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// Issue 17.2: the network under a stream session goes silent (sockets open,
/// nothing delivered). The session's keepalive declares it dead within the
/// keepalive timeout, and the blocked read and later writes return errors.
#[tokio::test]
async fn silent_session_fails_its_streams() {
    use support::proxy::{fast_keepalive, start_behind_proxy};

    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, fast_keepalive(config())).await;
    let b = Node::with_config(fast_keepalive(config()));
    echo_streams(&b);
    let proxy = start_behind_proxy(&c, &b, "1.2.1").await;

    let mut s = within("open", a.open_stream(addr("1.2.1"))).await.unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    within("echo", s.read_exact(&mut buf)).await.unwrap();
    // Idle but healthy for several keepalive timeouts: the session stays up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    s.write_all(b"pong").await.unwrap();
    within("echo after idle", s.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"pong");

    proxy.freeze();
    let read = within("the read on a silent session to fail", s.read(&mut buf)).await;
    assert!(read.is_err(), "{read:?}");
    let write = within("a write on the dead session", s.write_all(b"more")).await;
    assert!(write.is_err(), "{write:?}");
    assert!(a.metrics().links_silent >= 1);
    within("a shutdown", a.shutdown()).await;
    within("b shutdown", b.shutdown()).await;
}

/// A peer that accepts streams and only reads never acknowledges them; yamux
/// holds back a session's 257th unacknowledged outbound stream. The open used to
/// wait forever; it now fails `TooManyPending` after `stream_open_timeout`, and
/// opens work again once streams are closed (nothing held by the abandoned ones).
#[tokio::test]
async fn open_past_the_unacknowledged_limit_fails_instead_of_hanging() {
    let c = Cluster::new();
    let quick = Config {
        stream_open_timeout: Duration::from_millis(300),
        ..config()
    };
    let a = c.start_with("1.1.1", false, quick).await;
    let b = c.start("1.2.1").await;
    // Reads each stream to its end and never writes.
    b.on_new_stream(|mut s| async move {
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    let mut held = Vec::new();
    let err = loop {
        assert!(held.len() <= 300, "no limit met after 300 streams");
        match within("an open", a.open_stream(addr("1.2.1"))).await {
            Ok(s) => held.push(s),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StreamError::TooManyPending { .. }), "{err}");
    assert!(held.len() >= 250, "failed after {} streams", held.len());
    // A second open fails the same way, not by hanging.
    let again = within("a second open", a.open_stream(addr("1.2.1"))).await;
    assert!(matches!(again, Err(StreamError::TooManyPending { .. })));
    // Closing the held streams frees the session: opens work again.
    for mut s in held.drain(..) {
        let _ = s.shutdown().await;
    }
    drop(held);
    echo_streams(&b);
    let back = within("a round trip after", try_round_trip(&a, "1.2.1", b"ok")).await;
    assert_eq!(back.unwrap(), b"ok");
    within("a shutdown", a.shutdown()).await;
    within("b shutdown", b.shutdown()).await;
}
