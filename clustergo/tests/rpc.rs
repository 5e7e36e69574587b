//! RPC between nodes on loopback: every way a call can end.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clustergo::{Config, Instant, Node, ProstCodec, Replyer, RpcError};
use parking_lot::Mutex;
use support::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Registers "echo": replies "hello world:<msg>" with the same n.
fn serve_echo(node: &Node) {
    node.register_rpc("echo", |_ctx, replyer: Replyer<Echo>, req: Echo| {
        replyer.reply(Echo {
            msg: format!("hello world:{}", req.msg),
            n: req.n,
            blob: req.blob,
        });
    });
}

async fn pair() -> (Cluster, Node, Node) {
    let c = Cluster::new();
    let client = c.start("1.1.1").await;
    let server = c.start("1.2.1").await;
    serve_echo(&server);
    (c, client, server)
}

/// Lets every other task run, without letting paused time move, until `cond`
/// holds. Bounded in real time: it only waits for loopback I/O and ready tasks.
async fn until_paused(what: &str, mut cond: impl FnMut() -> bool) {
    let frozen = Instant::now();
    let limit = std::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            std::time::Instant::now() < limit,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
    assert_eq!(
        Instant::now(),
        frozen,
        "paused time moved waiting for {what}"
    );
}

/// Lets the tasks woken by an `advance` run, without moving paused time.
async fn run_ready_tasks() {
    let mut polls = 0;
    until_paused("ready tasks", || {
        polls += 1;
        polls > 10
    })
    .await;
}

/// Advances paused time to just before `timeout` after a started `call` began,
/// checks it has not ended, then to just past it, and returns how it ended.
async fn ends_at(
    call: tokio::task::JoinHandle<Result<Echo, RpcError>>,
    timeout: Duration,
) -> Result<Echo, RpcError> {
    tokio::time::advance(timeout - Duration::from_millis(1)).await;
    run_ready_tasks().await;
    assert!(!call.is_finished(), "ended before its deadline");
    // Past the deadline (timers tick in whole milliseconds).
    tokio::time::advance(Duration::from_millis(2)).await;
    within("the call to end", call).await.unwrap()
}

/// Requests of a method whose replies wait for a release.
#[derive(Default)]
struct Held {
    /// Per request: `(release, replied)`. `replied` fires once the reply has been
    /// handed to the link, so anything sent after it on that link arrives after it.
    waiting: Mutex<Vec<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
    /// Set by [`open_all`]: later requests are answered at once.
    open: std::sync::atomic::AtomicBool,
}

impl Held {
    fn len(&self) -> usize {
        self.waiting.lock().len()
    }
}

fn serve_held(node: &Node, method: &str) -> Arc<Held> {
    let held = Arc::new(Held::default());
    let h = held.clone();
    node.register_rpc(method, move |_ctx, replyer: Replyer<Echo>, req: Echo| {
        let mut waiting = h.waiting.lock();
        if h.open.load(Ordering::SeqCst) {
            drop(waiting);
            return replyer.reply(req);
        }
        let (release, released) = oneshot::channel::<()>();
        let (replied_tx, replied) = oneshot::channel();
        waiting.push((release, replied));
        tokio::spawn(async move {
            let _ = released.await;
            replyer.reply(req);
            let _ = replied_tx.send(());
        });
    });
    held
}

/// Calls `method` on 1.2.1 from a task of its own (`timeout` `None`: the default).
fn spawn_call(
    client: &Node,
    method: &'static str,
    req: Echo,
    timeout: Option<Duration>,
) -> tokio::task::JoinHandle<Result<Echo, RpcError>> {
    let client = client.clone();
    tokio::spawn(async move {
        clustergo::rpc::call::<ProstCodec, Echo, Echo>(
            &client,
            addr("1.2.1"),
            method,
            &req,
            timeout,
        )
        .await
    })
}

/// Releases the oldest held reply and waits until it is on its way.
async fn release_one(held: &Held) {
    let (release, replied) = held.waiting.lock().remove(0);
    let _ = release.send(());
    within("held reply sent", replied).await.unwrap();
}

/// Releases every held reply, and answers later requests at once, so that
/// nothing is left in flight for a stopping node to wait for.
fn open_all(held: &Held) {
    let mut waiting = held.waiting.lock();
    held.open.store(true, Ordering::SeqCst);
    for (release, _) in waiting.drain(..) {
        let _ = release.send(());
    }
}

#[tokio::test]
async fn typed_call_round_trip() {
    let (_c, client, server) = pair().await;
    let resp: Echo = within(
        "call",
        client.call(addr("1.2.1"), "echo", &echo("sniperHW", 7)),
    )
    .await
    .unwrap();
    assert_eq!(resp.msg, "hello world:sniperHW");
    assert_eq!(resp.n, 7);
    client.shutdown().await;
    server.shutdown().await;
}

/// A timeout too long to add to the clock (the caller's own input) is cut to the
/// longest wait a request carries, not a panic (regression: `Duration::MAX`
/// overflowed `Instant + Duration` in `call`).
#[tokio::test]
async fn a_timeout_too_long_for_the_clock_is_not_a_panic() {
    let (_c, client, server) = pair().await;
    for timeout in [Duration::MAX, Duration::from_secs(u64::MAX / 2)] {
        let resp: Echo = within(
            "call",
            client.call_with_timeout(addr("1.2.1"), "echo", &echo("x", 1), timeout),
        )
        .await
        .unwrap();
        assert_eq!(resp.msg, "hello world:x");
    }
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn hundred_thousand_pipelined_calls() {
    let (_c, client, server) = pair().await;
    const N: u64 = 100_000;
    const IN_FLIGHT: usize = 500;
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..IN_FLIGHT as u64 {
        let client = client.clone();
        tasks.spawn(async move {
            let mut n = t;
            while n < N {
                let resp: Echo = client
                    .call(addr("1.2.1"), "echo", &echo("p", n))
                    .await
                    .unwrap_or_else(|e| panic!("call {n}: {e}"));
                assert_eq!((resp.n, resp.msg.as_str()), (n, "hello world:p"));
                n += IN_FLIGHT as u64;
            }
        });
    }
    // A hang guard, not a speed check: a loaded debug build takes several seconds,
    // so this bound is wider than the shared `within`.
    let all = async {
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("100k calls within 60 s");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn timeout_fires_and_late_reply_is_ignored() {
    let (_c, client, server) = pair().await;
    let held = serve_held(&server, "slow");
    let to = addr("1.2.1");
    // The link is up before time stops; from here only the clock ends the call.
    let _: Echo = within("warm-up", client.call(to, "echo", &echo("w", 0)))
        .await
        .unwrap();
    tokio::time::pause();
    let timeout = Duration::from_millis(100);
    let call = spawn_call(&client, "slow", echo("x", 1), Some(timeout));
    until_paused("request held", || held.len() == 1).await;
    assert_eq!(ends_at(call, timeout).await, Err(RpcError::Timeout));
    tokio::time::resume();
    // The late reply arrives before the next call's reply (same link, in order)
    // and is dropped; the next call is unaffected.
    release_one(&held).await;
    let resp: Echo = within("next call", client.call(to, "echo", &echo("y", 2)))
        .await
        .unwrap();
    assert_eq!(resp.n, 2);
    client.shutdown().await;
    server.shutdown().await;
}

/// A linked pair (one warm-up call made) whose server holds "never" calls
/// unanswered; tokio time is paused on return, so deadlines are exact.
async fn linked_pair_holding_never() -> (Cluster, Node, Node, Arc<Held>) {
    let (c, client, server) = pair().await;
    let held = serve_held(&server, "never");
    let _: Echo = within("warm-up", client.call(addr("1.2.1"), "echo", &echo("w", 0)))
        .await
        .unwrap();
    tokio::time::pause();
    (c, client, server, held)
}

/// An awaited call has no timer of its own: the node's sweeper ends it with
/// `Timeout`, not before its deadline and at most one sweep (5 ms) after it.
#[tokio::test]
async fn awaited_call_times_out_within_one_sweep() {
    let (_c, client, server, held) = linked_pair_holding_never().await;
    let timeout = Duration::from_millis(50);
    let call = spawn_call(&client, "never", echo("x", 1), Some(timeout));
    until_paused("request held", || held.len() == 1).await;
    tokio::time::advance(timeout - Duration::from_millis(1)).await;
    run_ready_tasks().await;
    assert!(!call.is_finished(), "ended before its deadline");
    // The sweeper checks every 5 ms; timers tick in whole milliseconds.
    tokio::time::advance(Duration::from_millis(1 + 5 + 1)).await;
    until_paused("the sweeper's timeout", || call.is_finished()).await;
    assert_eq!(
        within("the call", call).await.unwrap(),
        Err(RpcError::Timeout)
    );
    tokio::time::resume();
    open_all(&held);
    client.shutdown().await;
    server.shutdown().await;
}

/// Calls whose deadlines come before every pending one's each move the sweeper's
/// plan: every call times out within 5 ms of its own deadline, not at the first
/// call's.
#[tokio::test]
async fn earlier_deadlines_each_time_out_in_their_turn() {
    let (_c, client, server, held) = linked_pair_holding_never().await;
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let long = spawn_call(&client, "never", echo("long", 0), Some(ms(10_000)));
    run_ready_tasks().await;
    // Later calls, shorter timeouts: each deadline is before all the others'.
    let calls: Vec<_> = (1..=20u64)
        .map(|n| {
            let timeout = ms(210 - 10 * n);
            let call = spawn_call(&client, "never", echo("short", n), Some(timeout));
            (
                timeout,
                tokio::spawn(async move { (call.await, Instant::now()) }),
            )
        })
        .collect();
    until_paused("requests held", || held.len() == 21).await;
    for (timeout, call) in calls {
        let (ended, at) = within("a short call", call).await.unwrap();
        assert_eq!(ended.unwrap(), Err(RpcError::Timeout));
        let took = at - t0;
        assert!(
            took >= timeout && took <= timeout + ms(5 + 1),
            "timeout {timeout:?} ended after {took:?}"
        );
    }
    long.abort();
    tokio::time::resume();
    open_all(&held);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn callback_and_cancel() {
    let (_c, client, server) = pair().await;
    let held = serve_held(&server, "gated");
    let to = addr("1.2.1");
    let deadline = Instant::now() + Duration::from_secs(5);

    // Cancel before the reply: true, callback never runs.
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let handle = client.call_with_callback(
        to,
        "gated",
        &echo("c", 1),
        deadline,
        move |_: Result<Echo, _>| {
            r.fetch_add(1, Ordering::SeqCst);
        },
    );
    eventually("request reached the server", || held.len() == 1).await;
    assert!(handle.cancel());
    assert!(!handle.cancel(), "second cancel reports nothing to cancel");
    release_one(&held).await;
    // This call's reply comes after the cancelled one's on the same link.
    let _: Echo = within("call after cancel", client.call(to, "echo", &echo("s", 0)))
        .await
        .unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    // Cancel after the reply: false, callback ran once with the reply.
    let (tx, rx) = oneshot::channel();
    let handle = client.call_with_callback(
        to,
        "echo",
        &echo("d", 2),
        deadline,
        move |r: Result<Echo, _>| {
            let _ = tx.send(r);
        },
    );
    let got = within("callback", rx).await.unwrap().unwrap();
    assert_eq!(got.msg, "hello world:d");
    assert!(!handle.cancel());

    // Callback timeout: not before the deadline, at most one sweep after it.
    tokio::time::pause();
    let timeout = Duration::from_millis(50);
    let ended = Arc::new(Mutex::new(None));
    let e = ended.clone();
    client.call_with_callback(
        to,
        "gated",
        &echo("e", 3),
        Instant::now() + timeout,
        move |r: Result<Echo, _>| {
            *e.lock() = Some(r);
        },
    );
    tokio::time::advance(timeout - Duration::from_millis(1)).await;
    run_ready_tasks().await;
    assert_eq!(*ended.lock(), None, "ended before its deadline");
    // The sweeper checks every 5 ms; timers tick in whole milliseconds.
    tokio::time::advance(Duration::from_millis(1 + 5 + 1)).await;
    until_paused("callback timeout", || ended.lock().is_some()).await;
    assert_eq!(ended.lock().take(), Some(Err(RpcError::Timeout)));
    tokio::time::resume();
    open_all(&held);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn post_reaches_server_without_reply() {
    let (_c, client, server) = pair().await;
    let (tx, rx) = oneshot::channel();
    let tx = Mutex::new(Some(tx));
    server.register_rpc("notify", move |ctx, replyer: Replyer<Echo>, req: Echo| {
        assert!(replyer.into_raw().is_one_way());
        if let Some(tx) = tx.lock().take() {
            let _ = tx.send((ctx.from(), req.n));
        }
    });
    client.post(addr("1.2.1"), "notify", &echo("p", 9)).unwrap();
    assert_eq!(within("post", rx).await.unwrap(), (addr("1.1.1"), 9));
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_method_panic_and_dropped_replyer() {
    let (_c, client, server) = pair().await;
    server.register_rpc("panics", |_ctx, _replyer: Replyer<Echo>, _req: Echo| {
        panic!("bug in handler")
    });
    server.register_rpc("drops", |_ctx, replyer: Replyer<Echo>, _req: Echo| {
        drop(replyer)
    });
    server.register_rpc("fails", |_ctx, replyer: Replyer<Echo>, _req: Echo| {
        replyer.error("no such player")
    });
    let to = addr("1.2.1");
    let call = |m: &'static str| {
        let client = client.clone();
        async move { client.call::<Echo, Echo>(to, m, &echo("x", 1)).await }
    };
    assert_eq!(
        call("nope").await,
        Err(RpcError::InvalidMethod("nope".into()))
    );
    assert_eq!(
        call("panics").await,
        Err(RpcError::ServiceUnavailable("method panicked".into()))
    );
    assert_eq!(
        call("drops").await,
        Err(RpcError::ServiceUnavailable(
            "replyer dropped without reply".into()
        ))
    );
    assert_eq!(
        call("fails").await,
        Err(RpcError::Method("no such player".into()))
    );
    assert_eq!(call("echo").await.unwrap().n, 1, "server still serves");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn reply_from_another_task_later() {
    let (_c, client, server) = pair().await;
    let held = serve_held(&server, "later");
    let call = spawn_call(&client, "later", echo("l", 5), None);
    eventually("request held", || held.len() == 1).await;
    release_one(&held).await;
    let r = within("reply", call).await.unwrap().unwrap();
    assert_eq!(r.n, 5);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn peer_killed_mid_call_fails_fast() {
    let c = Cluster::new();
    let client = c.start("1.1.1").await;
    // The server runs on its own runtime, which we drop to kill it abruptly.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    c.m.put_now(member("1.2.1", listener.local_addr().unwrap(), false));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = Node::with_config(config());
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    server.register_rpc("hang", move |_ctx, replyer: Replyer<Echo>, _req: Echo| {
        h.lock().push(replyer)
    });
    {
        let server = server.clone();
        let m = c.m.clone();
        let started = rt.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            server.start_on(listener, m, addr("1.2.1")).await.unwrap();
        });
        within("server start", started).await.unwrap();
    }
    c.add(server.clone()).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            // Far longer than `within` waits: only the disconnect can end it.
            client
                .call_with_timeout::<Echo, Echo>(
                    addr("1.2.1"),
                    "hang",
                    &echo("h", 1),
                    Duration::from_secs(3600),
                )
                .await
        }
    });
    eventually("request held", || held.lock().len() == 1).await;
    rt.shutdown_background();
    let r = within("call to fail", call).await.unwrap();
    assert_eq!(r, Err(RpcError::Disconnected(addr("1.2.1"))));
    std::mem::forget(held); // its replyers belong to the dead runtime
    client.shutdown().await;
}

#[tokio::test]
async fn request_expired_while_queued_is_not_executed() {
    let c = Cluster::new();
    let client = c.start("1.1.1").await;
    // Listed at a listener that accepts but never answers: the dial hangs, so the
    // request waits in the queue (a refused dial would fail it at once, `Unreachable`).
    let stuck = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_net = stuck.local_addr().unwrap();
    c.m.put_now(member("1.2.1", server_net, false));
    c.settle().await;
    // The request waits in the queue until the call's deadline.
    tokio::time::pause();
    let timeout = Duration::from_millis(100);
    let call = spawn_call(&client, "count", echo("x", 1), Some(timeout));
    run_ready_tasks().await; // the call starts: its deadline is now + timeout
    assert_eq!(ends_at(call, timeout).await, Err(RpcError::Timeout));
    tokio::time::resume();
    drop(stuck);
    let server = Node::with_config(config());
    let runs = Arc::new(AtomicUsize::new(0));
    let r2 = runs.clone();
    server.register_rpc("count", move |_ctx, replyer: Replyer<Echo>, req: Echo| {
        r2.fetch_add(1, Ordering::SeqCst);
        replyer.reply(req);
    });
    server
        .start_on(
            TcpListener::bind(server_net).await.unwrap(),
            c.m.clone(),
            addr("1.2.1"),
        )
        .await
        .unwrap();
    c.add(server.clone()).await;
    // Known down until a backoff probe reaches the server.
    let r: Echo = within("the server to be reachable", async {
        loop {
            match client.call(addr("1.2.1"), "count", &echo("y", 2)).await {
                Err(RpcError::Unreachable(_)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                r => break r,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(r.n, 2);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the expired request never ran"
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn stop_waits_for_in_flight_reply() {
    let (_c, client, server) = pair().await;
    let held = serve_held(&server, "slow");
    let call = spawn_call(&client, "slow", echo("s", 3), None);
    eventually("request arrives", || held.len() == 1).await;
    server.stop();
    // New requests are refused while draining (the held reply keeps it draining).
    let refused: Result<Echo, _> = client.call(addr("1.2.1"), "echo", &echo("n", 4)).await;
    assert!(
        matches!(refused, Err(RpcError::ServiceUnavailable(_))),
        "{refused:?}"
    );
    release_one(&held).await;
    assert_eq!(within("in-flight reply", call).await.unwrap().unwrap().n, 3);
    within("server stopped", server.wait()).await;
    client.shutdown().await;
}

#[tokio::test]
async fn self_call_and_large_argument() {
    let (c, client, server) = pair().await;
    serve_echo(&client);
    let me = client.local_addr().unwrap();
    let r: Echo = client.call(me, "echo", &echo("me", 1)).await.unwrap();
    assert_eq!(r.msg, "hello world:me");
    let big = Echo {
        msg: "big".into(),
        n: 2,
        blob: (0..1024 * 1024).map(|i| (i % 251) as u8).collect(),
    };
    let r: Echo = client.call(addr("1.2.1"), "echo", &big).await.unwrap();
    assert_eq!(r.blob, big.blob);
    let r: Echo = client.call(me, "echo", &big).await.unwrap();
    assert_eq!(r.blob.len(), big.blob.len());
    // Over the frame limit: a clear error, nothing sent.
    let small = c
        .start_with(
            "1.3.1",
            false,
            Config {
                max_frame: 64 * 1024,
                ..config()
            },
        )
        .await;
    let r: Result<Echo, _> = small.call(addr("1.2.1"), "echo", &big).await;
    assert!(
        matches!(r, Err(RpcError::Codec(ref e)) if e.contains("exceeds")),
        "{r:?}"
    );
    small.shutdown().await;
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_peer_and_not_started() {
    let (_c, client, server) = pair().await;
    let r: Result<Echo, _> = client.call(addr("1.9.9"), "echo", &echo("x", 1)).await;
    assert_eq!(r, Err(RpcError::UnknownPeer(addr("1.9.9"))));
    let idle = Node::with_config(config());
    let r: Result<Echo, _> = idle.call(addr("1.2.1"), "echo", &echo("x", 1)).await;
    assert_eq!(r, Err(RpcError::NotStarted));
    // Callback calls that cannot start still end exactly once, with the error.
    let (tx, rx) = oneshot::channel();
    let handle = client.call_with_callback(
        addr("1.9.9"),
        "echo",
        &echo("x", 2),
        Instant::now() + Duration::from_secs(1),
        move |r: Result<Echo, _>| {
            let _ = tx.send(r);
        },
    );
    assert_eq!(
        within("callback error", rx).await.unwrap(),
        Err(RpcError::UnknownPeer(addr("1.9.9")))
    );
    assert!(!handle.cancel());
    // A panicking callback is contained; the node keeps serving. The next reply
    // comes after its reply on the same link, so it has run by then.
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    client.call_with_callback(
        addr("1.2.1"),
        "echo",
        &echo("x", 3),
        Instant::now() + Duration::from_secs(1),
        move |_: Result<Echo, _>| {
            r.fetch_add(1, Ordering::SeqCst);
            panic!("callback bug")
        },
    );
    let r: Echo = client
        .call(addr("1.2.1"), "echo", &echo("after", 4))
        .await
        .unwrap();
    assert_eq!(r.n, 4);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    client.shutdown().await;
    server.shutdown().await;
}

#[derive(Default)]
struct Recorder {
    log: Mutex<Vec<String>>,
}

struct ClientSide(Arc<Recorder>);
struct ServerSide(Arc<Recorder>);

impl clustergo::rpc::ClientInterceptor for ClientSide {
    fn before_send(
        &self,
        to: clustergo::LogicAddr,
        method: &str,
        meta: &mut Vec<u8>,
    ) -> Result<(), RpcError> {
        if method == "forbidden" {
            return Err(RpcError::Other("blocked by client".into()));
        }
        meta.extend_from_slice(b"token-1");
        self.0.log.lock().push(format!("send {to} {method}"));
        Ok(())
    }
    fn after_reply(
        &self,
        _to: clustergo::LogicAddr,
        method: &str,
        result: Result<(), &RpcError>,
        _e: Duration,
    ) {
        self.0
            .log
            .lock()
            .push(format!("done {method} ok={}", result.is_ok()));
    }
}

impl clustergo::rpc::ServerInterceptor for ServerSide {
    fn before_dispatch(&self, ctx: &clustergo::RpcContext) -> Result<(), RpcError> {
        if ctx.meta() != b"token-1" {
            return Err(RpcError::Method("unauthenticated".into()));
        }
        self.0.log.lock().push(format!("dispatch {}", ctx.method()));
        Ok(())
    }
    fn after_reply(
        &self,
        _from: clustergo::LogicAddr,
        method: &str,
        code: clustergo::rpc::ErrorCode,
        _e: Duration,
    ) {
        self.0.log.lock().push(format!("replied {method} {code:?}"));
    }
}

#[tokio::test]
async fn interceptors_see_and_gate_calls() {
    let (c, client, server) = pair().await;
    let cr = Arc::new(Recorder::default());
    let sr = Arc::new(Recorder::default());
    client.add_client_interceptor(ClientSide(cr.clone()));
    server.add_server_interceptor(ServerSide(sr.clone()));
    let r: Echo = client
        .call(addr("1.2.1"), "echo", &echo("i", 1))
        .await
        .unwrap();
    assert_eq!(r.n, 1);
    let r: Result<Echo, _> = client.call(addr("1.2.1"), "forbidden", &echo("i", 2)).await;
    assert_eq!(r, Err(RpcError::Other("blocked by client".into())));
    // A caller without the token is refused by the server interceptor.
    let other = c.start("1.3.1").await;
    let r: Result<Echo, _> = other.call(addr("1.2.1"), "echo", &echo("i", 3)).await;
    assert_eq!(r, Err(RpcError::Method("unauthenticated".into())));
    assert_eq!(
        *cr.log.lock(),
        vec![
            "send 1.2.1 echo",
            "done echo ok=true",
            "done forbidden ok=false"
        ]
    );
    assert_eq!(*sr.log.lock(), vec!["dispatch echo", "replied echo Ok"]);
    for n in [client, server, other] {
        n.shutdown().await;
    }
}

/// Issue 10.1: a node restarted on the same logical and network address makes its
/// first call while the server still holds a call of the previous incarnation,
/// then answers both. The old answer must not complete the new call (call ids do
/// not restart with the node).
#[tokio::test]
async fn restarted_caller_never_takes_the_previous_incarnations_reply() {
    let c = Cluster::new();
    let server = c.start("1.2.1").await;
    let held = serve_held(&server, "slow");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let net = listener.local_addr().unwrap();
    c.m.put_now(member("1.1.1", net, false));
    let old = Node::with_config(config());
    old.start_on(listener, c.m.clone(), addr("1.1.1"))
        .await
        .unwrap();
    c.add(old.clone()).await;
    let call = spawn_call(
        &old,
        "slow",
        echo("old", 1),
        Some(Duration::from_millis(300)),
    );
    eventually("the old request held", || held.len() == 1).await;
    let r = within("the old call to time out", call).await.unwrap();
    assert_eq!(r, Err(RpcError::Timeout));
    old.shutdown().await;

    let new = Node::with_config(config());
    let listener = TcpListener::bind(net).await.unwrap();
    new.start_on(listener, c.m.clone(), addr("1.1.1"))
        .await
        .unwrap();
    c.add(new.clone()).await;
    let call = spawn_call(&new, "slow", echo("new", 2), None);
    eventually("the new request held", || held.len() == 2).await;
    // The old answer goes out first, on the same link as the new one.
    release_one(&held).await;
    release_one(&held).await;
    let r = within("the new call", call).await.unwrap().unwrap();
    assert_eq!(
        (r.msg.as_str(), r.n),
        ("new", 2),
        "the new call's own answer"
    );
    new.shutdown().await;
    server.shutdown().await;
}

/// A forging peer's frames, built by hand.
mod forge {
    use bytes::{Bytes, BytesMut};
    use clustergo::LogicAddr;
    use clustergo::codec::{Frame, FrameKind};
    use clustergo::rpc::wire::{Request, Response};

    fn frame(kind: FrameKind, to: LogicAddr, from: LogicAddr, body: BytesMut) -> Bytes {
        Frame {
            kind,
            to,
            from,
            cmd: 0,
            body: body.freeze(),
        }
        .to_bytes()
    }

    /// A successful response to `seq` carrying `ret`.
    pub(super) fn response(to: LogicAddr, from: LogicAddr, seq: u64, ret: Bytes) -> Bytes {
        let mut body = BytesMut::new();
        Response {
            seq,
            code: 0,
            text: String::new(),
            ret,
        }
        .encode(&mut body);
        frame(FrameKind::RpcResponse, to, from, body)
    }

    /// A request of `method` numbered `seq`, with a 1 s timeout.
    pub(super) fn request(to: LogicAddr, from: LogicAddr, seq: u64, method: &str) -> Bytes {
        request_with_timeout(to, from, seq, method, 1000)
    }

    /// A request of `method` numbered `seq` whose caller waits `timeout_ms`.
    pub(super) fn request_with_timeout(
        to: LogicAddr,
        from: LogicAddr,
        seq: u64,
        method: &str,
        timeout_ms: u32,
    ) -> Bytes {
        let mut body = BytesMut::new();
        Request {
            seq,
            one_way: false,
            timeout_ms,
            method: method.into(),
            meta: Bytes::new(),
            arg: Bytes::new(),
        }
        .encode(&mut body);
        frame(FrameKind::RpcRequest, to, from, body)
    }
}

/// Issue 10.2: a peer with the secret (1.3.1) forges responses for A's call to B
/// (as from B, and as from itself), and forges requests to B "from A" toward a
/// non-member, which B would answer A with `Unreachable`. None of it ends A's
/// calls; both A and B count what they dropped.
#[tokio::test]
async fn forged_replies_and_errors_do_not_end_calls() {
    use bytes::Bytes;
    use clustergo::codec::{FrameCodec, FrameKind};
    use futures::StreamExt;
    use prost::Message;
    use tokio::io::AsyncWriteExt;

    let c = Cluster::new();
    let a = c.start("1.1.1").await;
    let b = c.start("1.2.1").await;
    let held = serve_held(&b, "slow");
    let (f, a_addr, b_addr) = (addr("1.3.1"), addr("1.1.1"), addr("1.2.1"));
    let f_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let f_net = f_listener.local_addr().unwrap();
    c.m.put_now(member("1.3.1", f_net, false));
    c.settle().await;
    let to_a = raw_link("1.3.1", f_net, &a).await;
    let (rd, mut to_a) = to_a.into_split();
    let mut from_a = tokio_util::codec::FramedRead::new(rd, FrameCodec::new(1 << 20));

    // A calls the forger, which learns A's current call id and answers honestly.
    let probe = tokio::spawn({
        let a = a.clone();
        async move { a.call::<Echo, Echo>(f, "probe", &echo("p", 0)).await }
    });
    let req = within("the probe request", from_a.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(req.kind, FrameKind::RpcRequest);
    let seq = clustergo::rpc::wire::Request::decode(req.body).unwrap().seq;
    let honest = echo("honest", 0).encode_to_vec().into();
    to_a.write_all(&forge::response(a_addr, f, seq, honest))
        .await
        .unwrap();
    let r = within("the probe reply", probe).await.unwrap().unwrap();
    assert_eq!(r.msg, "honest", "the peer's own reply to a call to it");

    // A's next call, to B, waits; the forger answers ids around it.
    let call = spawn_call(&a, "slow", echo("real", 1), None);
    eventually("the request held", || held.len() == 1).await;
    let forged: Bytes = echo("forged", 666).encode_to_vec().into();
    let ids = seq + 1..seq + 17;
    for id in ids.clone() {
        for from in [b_addr, f] {
            to_a.write_all(&forge::response(a_addr, from, id, forged.clone()))
                .await
                .unwrap();
        }
    }
    // Dropped: each one "from B" on the forger's link, and the one "from 1.3.1"
    // naming the waiting call (the others name no call and are ignored).
    eventually("A to drop the forged replies", || {
        a.metrics().frames_forged == ids.clone().count() as u64 + 1
    })
    .await;
    assert!(!call.is_finished(), "a forged reply ended the call");
    release_one(&held).await;
    let r = within("the real reply", call).await.unwrap().unwrap();
    assert_eq!(r.msg, "real");

    // Requests "from A" sent by the forger to B, toward a non-member: B must not
    // answer A with an error for A's waiting call.
    let call = spawn_call(&a, "slow", echo("real", 2), None);
    eventually("the second request held", || held.len() == 1).await;
    let mut to_b = raw_link("1.3.1", f_net, &b).await;
    let ids = seq + 1..seq + 17;
    for id in ids.clone() {
        to_b.write_all(&forge::request(addr("1.9.9"), a_addr, id, "slow"))
            .await
            .unwrap();
        to_b.write_all(&forge::response(b_addr, a_addr, id, forged.clone()))
            .await
            .unwrap();
    }
    eventually("B to drop every forged frame", || {
        b.metrics().frames_forged == 2 * ids.clone().count() as u64
    })
    .await;
    assert!(
        !call.is_finished(),
        "a forged request's error ended the call"
    );
    release_one(&held).await;
    let r = within("the real reply", call).await.unwrap().unwrap();
    assert_eq!((r.msg.as_str(), r.n), ("real", 2));
    a.shutdown().await;
    b.shutdown().await;
}

/// Sets its flag when dropped: shows an async handler's future was dropped.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Registers async method `"forever"` on `server`, whose futures never end;
/// returns how many started and how many were dropped.
fn serve_forever(server: &Node) -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, d) = (started.clone(), dropped.clone());
    clustergo::rpc::register_async::<ProstCodec, Echo, Echo, _, _>(
        server,
        "forever",
        move |ctx, _req| {
            let guard = DropGuard(d.clone());
            s.fetch_add(1, Ordering::SeqCst);
            async move {
                let _guard = guard;
                assert!(ctx.remaining().is_some(), "the caller's deadline is known");
                std::future::pending::<Result<Echo, RpcError>>().await
            }
        },
    );
    (started, dropped)
}

#[tokio::test]
async fn async_handler_is_dropped_at_the_deadline() {
    let (_c, client, server) = pair().await;
    let (started, dropped) = serve_forever(&server);
    let to = addr("1.2.1");
    let _: Echo = within("warm-up", client.call(to, "echo", &echo("w", 0)))
        .await
        .unwrap();
    tokio::time::pause();
    let timeout = Duration::from_millis(100);
    let call = spawn_call(&client, "forever", echo("x", 1), Some(timeout));
    until_paused("handler started", || started.load(Ordering::SeqCst) == 1).await;
    assert_eq!(server.metrics().handlers_cancelled, 0);
    assert_eq!(ends_at(call, timeout).await, Err(RpcError::Timeout));
    tokio::time::advance(Duration::from_millis(10)).await;
    until_paused("handler dropped", || dropped.load(Ordering::SeqCst) == 1).await;
    assert_eq!(server.metrics().handlers_cancelled, 1);
    tokio::time::resume();
    client.shutdown().await;
    server.shutdown().await;
}

/// The caller's process dies mid-call (its link closes abruptly, long before the
/// call's deadline): the server drops the async handler's future and counts it,
/// and keeps serving.
#[tokio::test]
async fn async_handler_is_dropped_when_the_caller_dies() {
    use tokio::io::AsyncWriteExt;

    let (c, client, server) = pair().await;
    let (started, dropped) = serve_forever(&server);
    // The caller: 1.3.1 on a raw link, so it can vanish without a goodbye.
    let net = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    c.m.put_now(member("1.3.1", net, false));
    c.settle().await;
    let mut caller = raw_link("1.3.1", net, &server).await;
    // A minute to run: only the lost link can end it within the test's bound.
    let request = forge::request_with_timeout(addr("1.2.1"), addr("1.3.1"), 1, "forever", 60_000);
    caller.write_all(&request).await.unwrap();
    eventually("the handler to start", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(server.metrics().handlers_cancelled, 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 0);

    drop(caller);
    eventually("the handler to be dropped", || {
        dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(server.metrics().handlers_cancelled, 1);

    // Only that caller's handlers: the server still serves the others.
    let r: Echo = within(
        "a call after",
        client.call(addr("1.2.1"), "echo", &echo("a", 1)),
    )
    .await
    .unwrap();
    assert_eq!(r.msg, "hello world:a");
    assert_eq!(server.metrics().handlers_cancelled, 1);
    client.shutdown().await;
    server.shutdown().await;
}

/// The calling node shuts down mid-call: its links close, and the server drops
/// the handler serving it (counted once), long before the call's deadline.
#[tokio::test]
async fn async_handler_is_dropped_when_the_calling_node_stops() {
    let (_c, client, server) = pair().await;
    let (started, dropped) = serve_forever(&server);
    let call = spawn_call(
        &client,
        "forever",
        echo("x", 1),
        Some(Duration::from_secs(60)),
    );
    eventually("the handler to start", || {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(server.metrics().handlers_cancelled, 0);

    within("the client to stop", client.shutdown()).await;
    eventually("the handler to be dropped", || {
        dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(server.metrics().handlers_cancelled, 1);
    // The caller's call ended (its node stopped), it did not wait out its minute.
    assert!(within("the call to end", call).await.unwrap().is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn async_handler_replies_and_calls_within_the_callers_time() {
    let (_c, client, server) = pair().await;
    // "relay" calls "echo" on itself through ctx; the reply carries the remaining
    // time the inner call was given.
    clustergo::rpc::register_async::<ProstCodec, Echo, Echo, _, _>(
        &server,
        "relay",
        |ctx, req| async move {
            let left = ctx.remaining().expect("caller gave a deadline");
            let inner: Echo = ctx.call(addr("1.2.1"), "echo", &req).await?;
            Ok(Echo {
                n: left.as_millis() as u64,
                ..inner
            })
        },
    );
    let r: Echo = within(
        "relay call",
        client.call_with_timeout(
            addr("1.2.1"),
            "relay",
            &echo("r", 7),
            Duration::from_secs(2),
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.msg, "hello world:r");
    assert!(r.n <= 2000 && r.n > 0, "remaining {} ms", r.n);
    assert_eq!(server.metrics().handlers_cancelled, 0);
    client.shutdown().await;
    server.shutdown().await;
}
