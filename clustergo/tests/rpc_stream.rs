//! Streaming RPC calls between two nodes on loopback: the three shapes, flow
//! control, cancellation both ways, deadlines, a peer lost mid-stream, many calls
//! at once, interceptors.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use clustergo::rpc::{
    ClientInterceptor, ErrorCode, ServerInterceptor, call_bidi, call_client_stream,
    call_server_stream, register_bidi, register_client_stream, register_server_stream,
};
use clustergo::{
    LogicAddr, Node, ProstCodec, Replyer, RpcContext, RpcError, StreamSender, Streaming,
};
use futures::StreamExt;
use support::proxy::start_behind_proxy;
use support::*;

type C = ProstCodec;

/// Sets a flag when dropped: shows a handler's future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `count`: `request.n` messages, then the end. `fail`: two messages, then an error.
fn serve_counts(node: &Node) {
    register_server_stream::<C, Echo, Echo, _, _>(node, "count", |_ctx, req, mut tx| async move {
        for i in 0..req.n {
            tx.send(echo(&req.msg, i)).await?;
        }
        Ok(())
    });
    register_server_stream::<C, Echo, Echo, _, _>(node, "fail", |_ctx, _req, mut tx| async move {
        tx.send(echo("a", 0)).await?;
        tx.send(echo("b", 1)).await?;
        Err(RpcError::Method("no more".into()))
    });
}

async fn collect(mut rx: Streaming<Echo>) -> (Vec<u64>, Option<RpcError>) {
    let mut got = Vec::new();
    while let Some(item) = rx.next().await {
        match item {
            Ok(m) => got.push(m.n),
            Err(e) => {
                // Ended exactly once: nothing after the error.
                assert!(rx.next().await.is_none());
                return (got, Some(e));
            }
        }
    }
    assert!(rx.next().await.is_none(), "ended, and stays ended");
    (got, None)
}

async fn two_nodes() -> (Cluster, Node, Node) {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    (c, a, b)
}

#[tokio::test]
async fn server_streaming_end_to_end_and_errors() {
    let (_c, a, b) = two_nodes().await;
    serve_counts(&b);
    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "count", echo("x", 100), None)
        .await
        .unwrap();
    assert_eq!(rx.peer(), addr("1.2.1"));
    let (got, err) = within("count", collect(rx)).await;
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(err, None);

    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "fail", echo("x", 0), None)
        .await
        .unwrap();
    let (got, err) = within("fail", collect(rx)).await;
    assert_eq!(got, vec![0, 1]);
    assert_eq!(err, Some(RpcError::Method("no more".into())));

    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "nope", echo("x", 0), None)
        .await
        .unwrap();
    let (got, err) = within("nope", collect(rx)).await;
    assert!(got.is_empty());
    assert_eq!(err, Some(RpcError::InvalidMethod("nope".into())));
    a.shutdown().await;
    b.shutdown().await;
}

/// A timeout too long to add to the clock is cut, not a panic (regression).
#[tokio::test]
async fn a_timeout_too_long_for_the_clock_is_not_a_panic() {
    let (_c, a, b) = two_nodes().await;
    serve_counts(&b);
    let rx = call_server_stream::<C, Echo, Echo>(
        &a,
        addr("1.2.1"),
        "count",
        echo("x", 3),
        Some(Duration::MAX),
    )
    .await
    .unwrap();
    let (got, err) = within("count", collect(rx)).await;
    assert_eq!((got, err), (vec![0, 1, 2], None));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn client_streaming_end_to_end() {
    let (_c, a, b) = two_nodes().await;
    register_client_stream::<C, Echo, Echo, _, _>(&b, "sum", |_ctx, mut rx| async move {
        let mut sum = 0;
        while let Some(m) = rx.message().await? {
            sum += m.n;
        }
        Ok(echo("sum", sum))
    });
    let (mut tx, resp) = call_client_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "sum", None)
        .await
        .unwrap();
    for i in 1..=100 {
        tx.send(echo("n", i)).await.unwrap();
    }
    drop(tx);
    assert_eq!(within("sum", resp).await.unwrap().n, 5050);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn bidi_end_to_end_and_server_ending_first() {
    let (_c, a, b) = two_nodes().await;
    register_bidi::<C, Echo, Echo, _, _>(&b, "echo", |_ctx, mut rx, mut tx| async move {
        while let Some(m) = rx.message().await? {
            if m.msg == "stop" {
                return Err(RpcError::Method("stopped".into()));
            }
            tx.send(m).await?;
        }
        Ok(())
    });
    let (mut tx, mut rx) = call_bidi::<C, Echo, Echo>(&a, addr("1.2.1"), "echo", None)
        .await
        .unwrap();
    for i in 0..10 {
        tx.send(echo("ping", i)).await.unwrap();
        let back = within("echo", rx.message()).await.unwrap().unwrap();
        assert_eq!(back.n, i);
    }
    drop(tx);
    assert_eq!(within("end", rx.message()).await, Ok(None));

    // The server ends first: the caller's stream ends with its error, and sending
    // on fails with it once the call is over.
    let (mut tx, rx) = call_bidi::<C, Echo, Echo>(&a, addr("1.2.1"), "echo", None)
        .await
        .unwrap();
    tx.send(echo("stop", 0)).await.unwrap();
    let (got, err) = within("stopped", collect(rx)).await;
    assert!(got.is_empty());
    let stopped = RpcError::Method("stopped".into());
    assert_eq!(err, Some(stopped.clone()));
    let failed = within("send fails", async {
        loop {
            if let Err(e) = tx.send(echo("more", 1)).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(failed, stopped);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn stalled_reader_blocks_the_producer_with_bounded_memory() {
    let (_c, a, b) = two_nodes().await;
    let sent = Arc::new(AtomicUsize::new(0));
    let s = sent.clone();
    const BLOB: usize = 16 * 1024;
    const TOTAL: usize = 1000;
    register_server_stream::<C, Echo, Echo, _, _>(&b, "flood", move |_ctx, _req, mut tx| {
        let s = s.clone();
        async move {
            for i in 0..TOTAL {
                let mut m = echo("blob", i as u64);
                m.blob = vec![7; BLOB];
                tx.send(m).await?;
                s.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
    });
    let mut rx =
        call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "flood", echo("x", 0), None)
            .await
            .unwrap();
    // Nobody reads: the producer stops once the queues and the window are full.
    eventually("producer to start", || sent.load(Ordering::SeqCst) > 0).await;
    // The producer is blocked: its count stops moving (sampled until it does).
    let stalled = within("the producer to block", async {
        let mut last = sent.load(Ordering::SeqCst);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = sent.load(Ordering::SeqCst);
            if now == last {
                return now;
            }
            last = now;
        }
    })
    .await;
    // Two queues of QUEUE_BYTES and yamux's 256 KiB window, plus one message each.
    let bound = 2 * clustergo::rpc::QUEUE_BYTES + 256 * 1024 + 3 * BLOB;
    assert!(stalled * BLOB <= bound, "{stalled} messages in flight");
    assert!(stalled < TOTAL);
    // Reading resumes the producer; everything arrives, in order.
    let mut n = 0;
    while let Some(m) = within("flood", rx.next()).await {
        assert_eq!(m.unwrap().n, n);
        n += 1;
    }
    assert_eq!(n as usize, TOTAL);
    a.shutdown().await;
    b.shutdown().await;
}

/// A handler that sends one message, then waits forever, flagging its drop.
fn serve_idle(node: &Node, dropped: Arc<AtomicBool>) {
    register_server_stream::<C, Echo, Echo, _, _>(node, "idle", move |_ctx, _req, mut tx| {
        let flag = DropFlag(dropped.clone());
        async move {
            let _flag = flag;
            tx.send(echo("first", 0)).await?;
            std::future::pending::<Result<(), RpcError>>().await
        }
    });
}

/// Calls `idle` on `1.2.1` and reads its first message.
async fn follow_idle(a: &Node) -> Streaming<Echo> {
    let mut rx = call_server_stream::<C, Echo, Echo>(a, addr("1.2.1"), "idle", echo("x", 0), None)
        .await
        .unwrap();
    assert_eq!(within("first", rx.next()).await.unwrap().unwrap().n, 0);
    rx
}

#[tokio::test]
async fn dropping_the_callers_stream_drops_the_handler() {
    let (_c, a, b) = two_nodes().await;
    let dropped = Arc::new(AtomicBool::new(false));
    serve_idle(&b, dropped.clone());
    let rx = follow_idle(&a).await;
    assert!(!dropped.load(Ordering::SeqCst));
    drop(rx);
    eventually("the handler to be dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    eventually("counted", || b.metrics().handlers_cancelled == 1).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn dropping_a_client_streaming_response_drops_the_handler() {
    let (_c, a, b) = two_nodes().await;
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (d, s) = (dropped.clone(), started.clone());
    register_client_stream::<C, Echo, Echo, _, _>(&b, "hold", move |_ctx, _rx| {
        let flag = DropFlag(d.clone());
        s.store(true, Ordering::SeqCst);
        async move {
            let _flag = flag;
            std::future::pending::<Result<Echo, RpcError>>().await
        }
    });
    let (mut tx, resp) = call_client_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "hold", None)
        .await
        .unwrap();
    tx.send(echo("one", 1)).await.unwrap();
    // The handler runs once the call is open; then the caller gives up.
    eventually("the handler to start", || started.load(Ordering::SeqCst)).await;
    assert!(!dropped.load(Ordering::SeqCst));
    drop(resp);
    eventually("the handler to be dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    // Sending on fails once the call is over.
    let failed = within("send fails", async {
        loop {
            if let Err(e) = tx.send(echo("more", 2)).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(failed, RpcError::Cancelled);
    a.shutdown().await;
    b.shutdown().await;
}

/// A handler on `node` that sends one message, waits for the returned gate, then
/// sends the rest (`request.n` in all); the call to it, its first message read.
async fn gated_call(a: &Node, b: &Node) -> (Arc<tokio::sync::Notify>, Streaming<Echo>) {
    let gate = Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    register_server_stream::<C, Echo, Echo, _, _>(b, "gated", move |_ctx, req, mut tx| {
        let g = g.clone();
        async move {
            tx.send(echo("first", 0)).await?;
            g.notified().await;
            for i in 1..req.n {
                tx.send(echo("rest", i)).await?;
            }
            Ok(())
        }
    });
    let mut rx = call_server_stream::<C, Echo, Echo>(a, addr("1.2.1"), "gated", echo("x", 5), None)
        .await
        .unwrap();
    assert_eq!(within("first", rx.next()).await.unwrap().unwrap().n, 0);
    (gate, rx)
}

/// A stopping node drains streaming calls as it drains unary ones: a new one is
/// refused as a unary call is, one in flight runs to its end.
#[tokio::test]
async fn stop_drains_in_flight_streaming_calls() {
    let (_c, a, b) = two_nodes().await;
    serve_counts(&b);
    b.register_rpc("echo", |_ctx, replyer: Replyer<Echo>, req: Echo| {
        replyer.reply(req)
    });
    // A link for unary calls, which a stopping node would not accept.
    let linked: Echo = a.call(addr("1.2.1"), "echo", &echo("u", 0)).await.unwrap();
    assert_eq!(linked.n, 0);
    let (gate, rx) = gated_call(&a, &b).await;
    b.stop();
    let unary = a
        .call::<Echo, Echo>(addr("1.2.1"), "echo", &echo("u", 1))
        .await
        .unwrap_err();
    assert!(matches!(unary, RpcError::ServiceUnavailable(_)), "{unary}");
    let refused =
        call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "count", echo("s", 3), None)
            .await
            .unwrap();
    assert_eq!(
        within("the refusal", collect(refused)).await,
        (vec![], Some(unary))
    );
    gate.notify_one();
    assert_eq!(
        within("the drained call", collect(rx)).await,
        (vec![1, 2, 3, 4], None)
    );
    within("b to stop", b.wait()).await;
    a.shutdown().await;
}

/// Leaving drains streaming calls too.
#[tokio::test]
async fn leave_drains_in_flight_streaming_calls() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let quick = clustergo::Config {
        leave_grace: Duration::from_millis(10),
        ..config()
    };
    let b = c.start_with("1.2.1", false, quick).await;
    let (gate, rx) = gated_call(&a, &b).await;
    let leaving = {
        let (b, m) = (b.clone(), c.m.clone());
        tokio::spawn(async move { b.leave(&m).await })
    };
    // Leave waits out its grace, then the drain; the call is held through both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!leaving.is_finished());
    gate.notify_one();
    assert_eq!(
        within("the drained call", collect(rx)).await,
        (vec![1, 2, 3, 4], None)
    );
    within("b to leave", leaving).await.unwrap().unwrap();
    a.shutdown().await;
}

/// A streaming handler still running when the drain times out is ended with the
/// error pending unary calls get, not a lost stream; its future is dropped.
#[tokio::test]
async fn stop_ends_streaming_calls_outliving_the_drain() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let quick = clustergo::Config {
        drain_timeout: Duration::from_millis(200),
        ..config()
    };
    let b = c.start_with("1.2.1", false, quick).await;
    let dropped = Arc::new(AtomicBool::new(false));
    serve_idle(&b, dropped.clone());
    let mut rx = follow_idle(&a).await;
    within("b to stop", b.shutdown()).await;
    let err = within("the end", rx.next()).await.unwrap().unwrap_err();
    assert_eq!(err, RpcError::ServiceUnavailable("node stopped".into()));
    eventually("the handler to be dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    a.shutdown().await;
}

/// Regression: `leave` drained, then the stop it ends with drained again, so a
/// streaming call that never ends held it for twice `drain_timeout`. Both drains
/// now share one `drain_timeout`.
#[tokio::test]
async fn leave_waits_one_drain_timeout_for_an_endless_streaming_call() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let drain = Duration::from_secs(2);
    let quick = clustergo::Config {
        drain_timeout: drain,
        leave_grace: Duration::from_millis(10),
        ..config()
    };
    let b = c.start_with("1.2.1", false, quick).await;
    serve_idle(&b, Arc::new(AtomicBool::new(false)));
    let mut rx = follow_idle(&a).await;
    let started = std::time::Instant::now();
    within("b to leave", b.leave(&c.m)).await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= drain,
        "left after {took:?}, before the drain timeout"
    );
    // One drain timeout, the grace and the stop's bounded steps; not two drains.
    assert!(
        took < drain * 3 / 2 + Duration::from_millis(500),
        "left after {took:?}"
    );
    let err = within("the end", rx.next()).await.unwrap().unwrap_err();
    assert_eq!(err, RpcError::ServiceUnavailable("node stopped".into()));
    a.shutdown().await;
}

#[tokio::test]
async fn deadline_ends_both_sides() {
    let (_c, a, b) = two_nodes().await;
    let dropped = Arc::new(AtomicBool::new(false));
    serve_idle(&b, dropped.clone());
    let rx = call_server_stream::<C, Echo, Echo>(
        &a,
        addr("1.2.1"),
        "idle",
        echo("x", 0),
        Some(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let (got, err) = within("deadline", collect(rx)).await;
    assert_eq!(got, vec![0]);
    assert_eq!(err, Some(RpcError::Timeout));
    eventually("the handler to be dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn server_handler_panic_ends_the_call() {
    let (_c, a, b) = two_nodes().await;
    register_server_stream::<C, Echo, Echo, _, _>(&b, "boom", |_ctx, _req, mut tx| async move {
        tx.send(echo("first", 0)).await?;
        panic!("boom");
    });
    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "boom", echo("x", 0), None)
        .await
        .unwrap();
    let (got, err) = within("boom", collect(rx)).await;
    assert_eq!(got, vec![0]);
    assert_eq!(
        err,
        Some(RpcError::ServiceUnavailable("method panicked".into()))
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn peer_lost_mid_stream_is_an_error_not_a_hang() {
    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = Node::with_config(config());
    let proxy = start_behind_proxy(&c, &b, "1.2.1").await;
    let dropped = Arc::new(AtomicBool::new(false));
    serve_idle(&b, dropped.clone());
    let mut rx = follow_idle(&a).await;
    // Every connection to b is cut, as when its process is killed.
    drop(proxy);
    let err = within("the loss", rx.next()).await.unwrap().unwrap_err();
    assert_eq!(err, RpcError::Disconnected(addr("1.2.1")));
    assert!(rx.next().await.is_none());
    eventually("b's handler to be dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn thousand_concurrent_streaming_calls() {
    let (_c, a, b) = two_nodes().await;
    serve_counts(&b);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..1000u64 {
        let a = a.clone();
        set.spawn(async move {
            let rx = call_server_stream::<C, Echo, Echo>(
                &a,
                addr("1.2.1"),
                "count",
                echo("c", i % 5),
                None,
            )
            .await
            .unwrap();
            let (got, err) = collect(rx).await;
            assert_eq!(err, None);
            assert_eq!(got.len() as u64, i % 5);
        });
    }
    within("1000 calls", async {
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn cross_cluster_and_local_targets_fail_at_once() {
    let (_c, a, b) = two_nodes().await;
    let err = call_bidi::<C, Echo, Echo>(&a, addr("2.1.1"), "count", None)
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::NotRelayed(addr("2.1.1")));
    assert!(
        err.to_string().contains("not relayed through harbors"),
        "{err}"
    );
    assert_eq!(err.code(), ErrorCode::Unreachable);
    let err = call_bidi::<C, Echo, Echo>(&a, addr("1.1.1"), "count", None)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Other(_)), "{err}");
    let err = call_bidi::<C, Echo, Echo>(&a, addr("1.9.9"), "count", None)
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::UnknownPeer(addr("1.9.9")));
    a.shutdown().await;
    b.shutdown().await;
}

/// A message too big for a frame is refused by `send`; a server-streaming
/// request so too, failing the call at once instead of reaching the server as a
/// call without its request.
#[tokio::test]
async fn oversize_message_is_refused_before_sending() {
    let c = Cluster::new();
    let small = clustergo::Config {
        max_frame: 1024,
        ..config()
    };
    let a = c.start_with("1.1.1", false, small).await;
    let b = c.start("1.2.1").await;
    serve_counts(&b);
    let (mut tx, _rx) = call_bidi::<C, Echo, Echo>(&a, addr("1.2.1"), "count", None)
        .await
        .unwrap();
    let mut big = echo("big", 3);
    big.blob = vec![1; 4096];
    let err = tx.send(big.clone()).await.unwrap_err();
    assert!(
        matches!(err, RpcError::Codec(ref s) if s.contains("exceeds")),
        "{err}"
    );
    let called = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "count", big, None);
    let err = within("the call", called).await.unwrap_err();
    assert!(
        matches!(err, RpcError::Codec(ref s) if s.contains("exceeds")),
        "{err}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A handler's error text too long for one frame reaches the caller cut to fit,
/// as a unary error reply's does, not as a framing error.
#[tokio::test]
async fn oversize_error_text_is_cut_to_fit_the_end_frame() {
    let c = Cluster::new();
    let small = clustergo::Config {
        max_frame: 1024,
        ..config()
    };
    let a = c.start_with("1.1.1", false, small.clone()).await;
    let b = c.start_with("1.2.1", false, small).await;
    // Multi-byte characters: the cut falls on a character boundary.
    let long = "é".repeat(4096);
    let text = long.clone();
    register_server_stream::<C, Echo, Echo, _, _>(&b, "wordy", move |_ctx, _req, mut tx| {
        let text = text.clone();
        async move {
            tx.send(echo("a", 0)).await?;
            Err(RpcError::Method(text))
        }
    });
    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "wordy", echo("x", 0), None)
        .await
        .unwrap();
    let (got, err) = within("the end", collect(rx)).await;
    assert_eq!(got, vec![0]);
    let Some(RpcError::Method(cut)) = err else {
        panic!("{err:?}")
    };
    assert!(
        long.starts_with(&cut) && cut.len() > 900 && cut.len() <= 1024,
        "{}",
        cut.len()
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Records what interceptors saw.
#[derive(Default)]
struct Seen {
    sent: AtomicUsize,
    replied: parking_lot::Mutex<Vec<(String, Result<(), RpcError>)>>,
    served: parking_lot::Mutex<Vec<(String, Vec<u8>, ErrorCode)>>,
}

struct Client(Arc<Seen>);

impl ClientInterceptor for Client {
    fn before_send(
        &self,
        _to: LogicAddr,
        method: &str,
        meta: &mut Vec<u8>,
    ) -> Result<(), RpcError> {
        if method == "refused" {
            return Err(RpcError::Other("refused by client".into()));
        }
        self.0.sent.fetch_add(1, Ordering::SeqCst);
        meta.extend_from_slice(b"token");
        Ok(())
    }

    fn after_reply(
        &self,
        _to: LogicAddr,
        method: &str,
        result: Result<(), &RpcError>,
        _elapsed: Duration,
    ) {
        self.0
            .replied
            .lock()
            .push((method.to_owned(), result.map_err(Clone::clone)));
    }
}

struct Server(Arc<Seen>);

impl ServerInterceptor for Server {
    fn before_dispatch(&self, ctx: &RpcContext) -> Result<(), RpcError> {
        if ctx.method() == "fail" {
            return Err(RpcError::Method("refused by server".into()));
        }
        Ok(())
    }

    fn after_reply(&self, _from: LogicAddr, method: &str, code: ErrorCode, _elapsed: Duration) {
        self.0
            .served
            .lock()
            .push((method.to_owned(), Vec::new(), code));
    }
}

#[tokio::test]
async fn interceptors_see_streaming_calls() {
    let (_c, a, b) = two_nodes().await;
    let seen = Arc::new(Seen::default());
    a.add_client_interceptor(Client(seen.clone()));
    b.add_server_interceptor(Server(seen.clone()));
    serve_counts(&b);
    let meta_seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let m = meta_seen.clone();
    register_server_stream::<C, Echo, Echo, _, _>(
        &b,
        "meta",
        move |ctx, _req, _tx: StreamSender<Echo>| {
            m.lock().extend_from_slice(ctx.meta());
            async { Ok(()) }
        },
    );
    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "count", echo("x", 3), None)
        .await
        .unwrap();
    assert_eq!(within("count", collect(rx)).await.1, None);
    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "meta", echo("x", 0), None)
        .await
        .unwrap();
    assert_eq!(within("meta", collect(rx)).await.1, None);
    assert_eq!(&meta_seen.lock()[..], b"token");
    // A server interceptor's refusal is the call's error.
    let rx = call_server_stream::<C, Echo, Echo>(&a, addr("1.2.1"), "fail", echo("x", 0), None)
        .await
        .unwrap();
    let refused = RpcError::Method("refused by server".into());
    assert_eq!(
        within("fail", collect(rx)).await,
        (vec![], Some(refused.clone()))
    );
    // A client interceptor's refusal fails the call before it opens.
    let err = call_bidi::<C, Echo, Echo>(&a, addr("1.2.1"), "refused", None)
        .await
        .unwrap_err();
    assert_eq!(err, RpcError::Other("refused by client".into()));
    eventually("every ending observed", || seen.replied.lock().len() == 4).await;
    assert_eq!(seen.sent.load(Ordering::SeqCst), 3);
    let replied = seen.replied.lock().clone();
    assert_eq!(replied[0], ("count".to_owned(), Ok(())));
    assert_eq!(replied[2], ("fail".to_owned(), Err(refused)));
    eventually("served calls observed", || seen.served.lock().len() == 2).await;
    let codes: Vec<ErrorCode> = seen.served.lock().iter().map(|s| s.2).collect();
    assert_eq!(codes, vec![ErrorCode::Ok, ErrorCode::Ok]);
    a.shutdown().await;
    b.shutdown().await;
}

/// A session full of streams the peer never acknowledged (it only reads) takes
/// no new one: a streaming call ends at its deadline (`Timeout`), and one without
/// a deadline after `stream_open_timeout` (`Busy`), instead of hanging.
#[tokio::test]
async fn streaming_call_on_a_full_session_ends_instead_of_hanging() {
    let c = Cluster::new();
    let quick = clustergo::Config {
        stream_open_timeout: Duration::from_millis(300),
        ..config()
    };
    let a = c.start_with("1.1.1", false, quick).await;
    let b = c.start("1.2.1").await;
    serve_counts(&b);
    b.on_new_stream(|mut s| async move {
        use tokio::io::AsyncReadExt;
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink).await;
    });
    // yamux holds back opens while 256 streams wait for the remote's
    // acknowledgement, and the remote here only reads. An open that times out
    // earlier (a loaded machine can stall the session's driver for 300 ms) is
    // tried again, so the session really is full when the loop ends.
    let mut held = Vec::new();
    for attempt in 0.. {
        assert!(attempt <= 400, "no limit met after 400 opens");
        match within("an open", a.open_stream(addr("1.2.1"))).await {
            Ok(s) => held.push(s),
            Err(_) if held.len() >= 250 => break,
            Err(_) => {}
        }
    }
    let deadline = Some(Duration::from_millis(100));
    let call = call_bidi::<C, Echo, Echo>(&a, addr("1.2.1"), "count", deadline);
    let err = within("a call with a deadline", call).await.unwrap_err();
    assert_eq!(err, RpcError::Timeout);
    let call = call_bidi::<C, Echo, Echo>(&a, addr("1.2.1"), "count", None);
    let err = within("a call without one", call).await.unwrap_err();
    assert_eq!(err, RpcError::Busy);
    drop(held);
    a.shutdown().await;
    b.shutdown().await;
}
