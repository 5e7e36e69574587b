//! Nodes in the Go seed's dialect (feature `go-compat`): two Rust nodes doing what
//! the native tests do, a raw Go peer replaying captured bytes, harbors, and
//! refusals across dialects (bounded, no hang).

mod support;

use std::sync::Arc;
use std::time::Duration;

use clustergo::gocompat::smux::{Cmd, SmuxCodec, SmuxFrame};
use clustergo::gocompat::{GoHello, GoKey, handshake as go_handshake};
use clustergo::{Config, Dialect, Instant, JsonCodec, Node, Replyer, RpcError, SendError};
use parking_lot::Mutex;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PB: u16 = 1;
const BIN: u16 = 2;

fn go_config() -> Config {
    Config {
        dialect: Dialect::go_seed(),
        // Short, so that a keepalive would show within the tests' waits.
        keepalive_interval: Duration::from_millis(20),
        keepalive_timeout: Duration::from_millis(60),
        // Messages sent before the first link is up wait for it, even on a busy machine.
        send_timeout: Duration::from_secs(5),
        ..config()
    }
}

fn serve_echo(node: &Node) {
    node.register_rpc("echo", |_ctx, replyer: Replyer<Echo>, req: Echo| {
        replyer.reply(req)
    });
}

fn inbox(node: &Node) -> Arc<Mutex<Vec<String>>> {
    support::inbox(node, PB, BIN)
}

async fn go_pair() -> (Cluster, Node, Node) {
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, go_config()).await;
    let b = c.start_with("1.2.1", false, go_config()).await;
    serve_echo(&a);
    serve_echo(&b);
    (c, a, b)
}

#[tokio::test]
async fn messages_and_every_call_form() {
    let (_c, a, b) = go_pair().await;
    let got = inbox(&a);
    b.register_pb_message::<Echo>(PB);
    b.send_pb(addr("1.1.1"), &echo("hi", 0)).unwrap();
    b.send_bin(addr("1.1.1"), BIN, b"raw").unwrap();
    eventually("both messages", || got.lock().len() == 2).await;
    assert_eq!(*got.lock(), ["pb 1.2.1 hi", "bin 1.2.1 raw"]);

    // call, both ways (the second reuses the one link).
    let r: Echo = within("call", b.call(addr("1.1.1"), "echo", &echo("x", 7)))
        .await
        .unwrap();
    assert_eq!(r, echo("x", 7));
    let r: Echo = within("call back", a.call(addr("1.2.1"), "echo", &echo("y", 8)))
        .await
        .unwrap();
    assert_eq!(r, echo("y", 8));

    // call_with_callback.
    let (tx, rx) = tokio::sync::oneshot::channel();
    b.call_with_callback(
        addr("1.1.1"),
        "echo",
        &echo("cb", 1),
        Instant::now() + WAIT,
        move |r: Result<Echo, RpcError>| drop(tx.send(r)),
    );
    assert_eq!(
        within("callback", rx).await.unwrap().unwrap(),
        echo("cb", 1)
    );

    // post: one-way, served, never answered.
    let posted = Arc::new(Mutex::new(Vec::new()));
    let p = posted.clone();
    a.register_rpc("note", move |_ctx, r: Replyer<Echo>, req: Echo| {
        assert!(r.into_raw().is_one_way());
        p.lock().push(req.msg);
    });
    b.post(addr("1.1.1"), "note", &echo("posted", 0)).unwrap();
    eventually("the post", || posted.lock().len() == 1).await;

    // The async handler form, with a call made from inside the handler.
    clustergo::rpc::register_async::<clustergo::ProstCodec, Echo, Echo, _, _>(
        &a,
        "relay",
        |ctx, req: Echo| async move {
            assert_eq!(ctx.deadline(), None, "no deadline travels");
            let back: Echo = ctx.node().call(ctx.from(), "echo", &req).await?;
            Ok(Echo {
                n: back.n + 1,
                ..back
            })
        },
    );
    let r: Echo = within("async form", b.call(addr("1.1.1"), "relay", &echo("z", 1)))
        .await
        .unwrap();
    assert_eq!(r, echo("z", 2));

    // Errors come back with their rpcgo code.
    a.register_rpc("fail", |_ctx, r: Replyer<Echo>, _req: Echo| r.error("nope"));
    let e = b
        .call::<_, Echo>(addr("1.1.1"), "fail", &echo("", 0))
        .await
        .unwrap_err();
    assert_eq!(e, RpcError::Method("nope".into()));
    let e = b
        .call::<_, Echo>(addr("1.1.1"), "missing", &echo("", 0))
        .await
        .unwrap_err();
    assert_eq!(e, RpcError::InvalidMethod("missing".into()));

    // The JSON codec (the seed's JsonCodec).
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct J {
        #[serde(rename = "Msg")]
        msg: String,
    }
    clustergo::rpc::register::<JsonCodec, J, J, _>(&a, "json", |_ctx, r, req: J| r.reply(req));
    let req = J { msg: "j".into() };
    let call = clustergo::rpc::call::<JsonCodec, J, J>(&b, addr("1.1.1"), "json", &req, None);
    assert_eq!(
        within("json call", call).await.unwrap(),
        J { msg: "j".into() }
    );
}

#[tokio::test]
async fn no_deadline_travels_and_the_callers_timeout_stays_local() {
    let (_c, a, b) = go_pair().await;
    let deadlines = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    let (d, h) = (deadlines.clone(), held.clone());
    a.register_rpc("hold", move |ctx, r: Replyer<Echo>, _req: Echo| {
        d.lock().push(ctx.deadline());
        h.lock().push(r);
    });
    let e = b
        .call_with_timeout::<_, Echo>(
            addr("1.1.1"),
            "hold",
            &echo("", 0),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert_eq!(e, RpcError::Timeout);
    assert_eq!(*deadlines.lock(), [None]);
}

#[tokio::test]
async fn frames_over_4096_bytes_are_too_large_not_dropped() {
    let (_c, a, b) = go_pair().await;
    b.register_pb_message::<Echo>(PB);
    let big = Echo {
        blob: vec![0; 4096],
        ..echo("big", 0)
    };
    let e = b.send_pb(addr("1.1.1"), &big).unwrap_err();
    assert!(matches!(e, SendError::TooLarge { max: 4096, .. }), "{e:?}");
    let e = b.send_bin(addr("1.1.1"), BIN, &[0; 4082]).unwrap_err();
    assert!(matches!(e, SendError::TooLarge { .. }), "{e:?}");
    let got = inbox(&a);
    b.send_bin(addr("1.1.1"), BIN, &[b'a'; 4081]).unwrap(); // exactly 4096 on the wire
    eventually("the largest frame", || got.lock().len() == 1).await;
    let e = b
        .call::<_, Echo>(addr("1.1.1"), "echo", &big)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RpcError::Codec(t) if t.contains("4096")),
        "{e:?}"
    );
    // A result too large for the frame comes back as an error, not silence.
    a.register_rpc("grow", |_ctx, r: Replyer<Echo>, _req: Echo| {
        r.reply(Echo {
            blob: vec![1; 5000],
            ..echo("", 0)
        })
    });
    let e = b
        .call::<_, Echo>(addr("1.1.1"), "grow", &echo("", 0))
        .await
        .unwrap_err();
    assert!(matches!(e, RpcError::Other(_)), "{e:?}");
}

/// A raw Go peer: the Go handshake, then bytes as captured from real Go traffic.
async fn go_link(node: &Node, logic: &str, net: std::net::SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(node.listen_addr().unwrap())
        .await
        .unwrap();
    let hello = GoHello {
        logic: addr(logic),
        net_addr: net.to_string(),
        is_stream: false,
    };
    within(
        "go handshake",
        go_handshake::dial(&mut s, &GoKey::default(), &hello),
    )
    .await
    .unwrap();
    s
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// GO-WIRE.md §4: a Go caller 1.2.1 sends the captured `echo` request; the Rust
/// node 1.1.1 answers with exactly the captured response. No keepalive follows.
#[tokio::test]
async fn answers_a_captured_go_request_byte_for_byte() {
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, go_config()).await;
    serve_echo(&a);
    let go_net = free_addr().await;
    c.m.put_now(member("1.2.1", go_net, false));
    c.settle().await;
    let mut s = go_link(&a, "1.2.1", go_net).await;
    s.write_all(&unhex("00000026 03 00040401 00040801 075d09c200000001 00 0004 6563686f 0000 000a 0a08736e697065724857"))
        .await
        .unwrap();
    let want =
        unhex("00000021 04 00040801 00040401 075d09c200000001 0000 0000 000a 0a08736e697065724857");
    let mut got = vec![0; want.len()];
    within("the response", s.read_exact(&mut got))
        .await
        .unwrap();
    assert_eq!(got, want);
    // Several keepalive intervals of silence: nothing (a native kind-5 frame would
    // close a Go link), and the link is not declared dead either.
    let mut more = [0u8; 1];
    let quiet = tokio::time::timeout(Duration::from_millis(300), s.read(&mut more)).await;
    assert!(quiet.is_err(), "the Go dialect wrote {quiet:?}");
    s.write_all(&unhex(
        "00000015 01 00040401 00040801 0001 0a08736e697065724857",
    ))
    .await
    .unwrap();
    let got = inbox(&a);
    // Registered after the write: the handler may miss it; send once more.
    s.write_all(&unhex(
        "00000015 01 00040401 00040801 0001 0a08736e697065724857",
    ))
    .await
    .unwrap();
    eventually("the captured pb message", || !got.lock().is_empty()).await;
    assert_eq!(got.lock()[0], "pb 1.2.1 sniperHW");

    // A frame over 4096 bytes closes the link, as on the Go side.
    let mut big = unhex("00000ffd 02 00040401 00040801 0002");
    big.resize(4 + 0xffd, 0);
    s.write_all(&big).await.unwrap();
    let mut rest = Vec::new();
    let end = within("the link closed", s.read_to_end(&mut rest)).await;
    assert!(end.is_err() || rest.is_empty(), "{end:?}");
}

/// The seed's acceptor rules: NetAddr must be the member's address string exactly;
/// a node not in membership, or a second link, is refused by closing.
#[tokio::test]
async fn go_acceptor_refuses_by_closing() {
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, go_config()).await;
    let go_net = free_addr().await;
    c.m.put_now(member("1.2.1", go_net, false));
    c.settle().await;
    let key = GoKey::default();
    let cases = [
        ("1.2.1", format!("localhost:{}", go_net.port())), // same address, other string
        ("1.3.1", go_net.to_string()),                     // not a member
    ];
    for (logic, net_addr) in cases {
        let mut s = TcpStream::connect(a.listen_addr().unwrap()).await.unwrap();
        let hello = GoHello {
            logic: addr(logic),
            net_addr,
            is_stream: false,
        };
        let r = within("refusal", go_handshake::dial(&mut s, &key, &hello)).await;
        assert!(
            matches!(r, Err(clustergo::handshake::HandshakeError::Closed)),
            "{logic}: {r:?}"
        );
    }
    // The right claim is accepted; a second link from the same node is a duplicate.
    let _first = go_link(&a, "1.2.1", go_net).await;
    let mut s = TcpStream::connect(a.listen_addr().unwrap()).await.unwrap();
    let hello = GoHello {
        logic: addr("1.2.1"),
        net_addr: go_net.to_string(),
        is_stream: false,
    };
    let r = within("duplicate", go_handshake::dial(&mut s, &key, &hello)).await;
    assert!(r.is_err(), "{r:?}");
}

/// A Go-dialect node and a native node in one membership do not understand each
/// other: each side's calls end within their timeout, nothing hangs, and both
/// keep serving their own dialect.
#[tokio::test]
async fn go_and_native_nodes_refuse_each_other_cleanly() {
    let c = Cluster::new();
    let go = c.start_with("1.1.1", false, go_config()).await;
    let native = c.start_with("1.2.1", false, config()).await;
    serve_echo(&go);
    serve_echo(&native);
    let short = Duration::from_millis(500);
    let e = within(
        "go -> native",
        go.call_with_timeout::<_, Echo>(addr("1.2.1"), "echo", &echo("", 0), short),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, RpcError::Timeout | RpcError::Unreachable(_)),
        "{e:?}"
    );
    let e = within(
        "native -> go",
        native.call_with_timeout::<_, Echo>(addr("1.1.1"), "echo", &echo("", 0), short),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, RpcError::Timeout | RpcError::Unreachable(_)),
        "{e:?}"
    );
    // A second Go-dialect node still reaches the first.
    let go2 = c.start_with("1.3.1", false, go_config()).await;
    let r: Echo = within("go -> go", go2.call(addr("1.1.1"), "echo", &echo("ok", 0)))
        .await
        .unwrap();
    assert_eq!(r.msg, "ok");
    for n in [go, native, go2] {
        within("shutdown", n.shutdown()).await;
    }
}

/// Both nodes send first at once: the seed's rule (the lower address's dial wins)
/// leaves one link and loses nothing.
#[tokio::test]
async fn simultaneous_dials_settle_on_one_link() {
    let (_c, a, b) = go_pair().await;
    let got_a = inbox(&a);
    let got_b = inbox(&b);
    for _ in 0..20 {
        a.send_bin(addr("1.2.1"), BIN, b"a").unwrap();
        b.send_bin(addr("1.1.1"), BIN, b"b").unwrap();
    }
    eventually("all messages", || {
        got_a.lock().len() == 20 && got_b.lock().len() == 20
    })
    .await;
}

async fn round_trip(node: &Node, to: &str, data: &[u8]) -> Vec<u8> {
    let mut s = within("open", node.open_stream(addr(to))).await.unwrap();
    assert_eq!(s.peer(), addr(to));
    let (mut rd, mut wr) = tokio::io::split(&mut s);
    let write = async {
        wr.write_all(data).await?;
        wr.shutdown().await
    };
    let mut back = Vec::new();
    let (w, r) = within("round trip", async {
        tokio::join!(write, rd.read_to_end(&mut back))
    })
    .await;
    w.unwrap();
    r.unwrap();
    back
}

/// Streams over smux both ways (each side opens on the session it dialed), many
/// at once, with more data than one smux frame holds.
#[tokio::test]
async fn streams_over_smux() {
    let (_c, a, b) = go_pair().await;
    echo_streams(&a);
    echo_streams(&b);
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert_eq!(round_trip(&b, "1.1.1", &big).await, big);
    assert_eq!(round_trip(&a, "1.2.1", b"back").await, b"back");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16u8 {
        let b = b.clone();
        set.spawn(async move { round_trip(&b, "1.1.1", &[i; 1000]).await == [i; 1000] });
    }
    assert!(results(set).await.into_iter().all(|ok| ok));
}

/// Reads smux frames from `s` (NOPs left out) until `done` holds for them.
async fn read_smux(s: &mut TcpStream, done: impl Fn(&[SmuxFrame]) -> bool) -> Vec<SmuxFrame> {
    use tokio_util::codec::Decoder;
    let mut buf = bytes::BytesMut::new();
    let mut frames = Vec::new();
    while !done(&frames) {
        assert!(s.read_buf(&mut buf).await.unwrap() > 0, "closed early");
        while let Some(f) = SmuxCodec.decode(&mut buf).unwrap() {
            if f.cmd != Cmd::Nop {
                frames.push(f);
            }
        }
    }
    frames
}

/// A Go client session (the dialer opens, ids odd): the captured SYN 3, PSH 3
/// "ping", FIN 3; the Rust node echoes "ping" back on stream 3 and closes it.
#[tokio::test]
async fn serves_a_captured_go_stream_session() {
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, go_config()).await;
    echo_streams(&a);
    let go_net = free_addr().await;
    c.m.put_now(member("1.2.1", go_net, false));
    c.settle().await;
    let mut s = TcpStream::connect(a.listen_addr().unwrap()).await.unwrap();
    let hello = GoHello {
        logic: addr("1.2.1"),
        net_addr: go_net.to_string(),
        is_stream: true,
    };
    within(
        "go handshake",
        go_handshake::dial(&mut s, &GoKey::default(), &hello),
    )
    .await
    .unwrap();
    s.write_all(&unhex(
        "0100000003000000 010204000300000070696e67 0101000003000000",
    ))
    .await
    .unwrap();
    let frames = within(
        "the echo and FIN",
        read_smux(&mut s, |frames| frames.iter().any(|f| f.cmd == Cmd::Fin)),
    )
    .await;
    let psh: Vec<u8> = frames
        .iter()
        .filter(|f| f.cmd == Cmd::Psh)
        .flat_map(|f| f.data.to_vec())
        .collect();
    assert_eq!(psh, b"ping");
    assert!(frames.iter().all(|f| f.sid == 3), "{frames:?}");
}

/// The Rust node as the smux client of a Go server: an `IsStream` hello, then
/// SYN and PSH on an odd stream id.
#[tokio::test]
async fn opens_streams_as_a_go_client_would() {
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, go_config()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.m.put_now(member("1.2.1", listener.local_addr().unwrap(), false));
    c.settle().await;
    let go_side = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let hello = go_handshake::read_hello(&mut s, &GoKey::default())
            .await
            .unwrap();
        go_handshake::accept(&mut s).await.unwrap();
        let frames = read_smux(&mut s, |frames| {
            let pushed: usize = frames
                .iter()
                .filter(|f| f.cmd == Cmd::Psh)
                .map(|f| f.data.len())
                .sum();
            pushed >= 4
        })
        .await;
        (hello, frames)
    });
    let mut st = within("open", a.open_stream(addr("1.2.1"))).await.unwrap();
    st.write_all(b"ping").await.unwrap();
    let (hello, frames) = within("the go side", go_side).await.unwrap();
    assert_eq!(hello.logic, addr("1.1.1"));
    assert!(hello.is_stream);
    assert_eq!(hello.net_addr, a.listen_addr().unwrap().to_string());
    assert_eq!(frames[0].cmd, Cmd::Syn);
    assert_eq!(frames[0].sid % 2, 1, "client ids are odd");
    assert!(
        frames[1..]
            .iter()
            .all(|f| f.cmd == Cmd::Psh && f.sid == frames[0].sid)
    );
}

/// Harbors in the Go dialect: 1.1.1 → 1.255.1 → 2.255.1 → 2.1.1 and back, for
/// messages and calls; frames are relayed unchanged, as the Go harbor does.
#[tokio::test]
async fn harbor_relay_across_clusters() {
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, go_config()).await;
    let _h1 = c.start_with("1.255.1", false, go_config()).await;
    let _h2 = c.start_with("2.255.1", false, go_config()).await;
    let b = c.start_with("2.1.1", true, go_config()).await;
    serve_echo(&b);
    let got = inbox(&b);
    a.register_pb_message::<Echo>(PB);
    a.send_pb(addr("2.1.1"), &echo("far", 0)).unwrap();
    a.send_bin(addr("2.1.1"), BIN, b"away").unwrap();
    eventually("relayed messages", || got.lock().len() == 2).await;
    assert_eq!(*got.lock(), ["pb 1.1.1 far", "bin 1.1.1 away"]);
    let r: Echo = within("call across", a.call(addr("2.1.1"), "echo", &echo("x", 3)))
        .await
        .unwrap();
    assert_eq!(r, echo("x", 3));
    // A harbor that cannot deliver answers in the target's name, in rpcgo's
    // layout: "unreachable" travels as code 5 with its text. (The first call may
    // only find the target down and time out.)
    let gone = free_addr().await;
    c.m.put_now(member("2.1.2", gone, true));
    c.settle().await;
    let mut last = None;
    let req = echo("", 0);
    for _ in 0..3 {
        let call =
            a.call_with_timeout::<_, Echo>(addr("2.1.2"), "echo", &req, Duration::from_secs(1));
        let e = within("call to a dead target", call).await.unwrap_err();
        if matches!(&e, RpcError::Other(t) if t.contains("unreachable")) {
            return;
        }
        last = Some(e);
    }
    panic!("no unreachable answer from the harbor: {last:?}");
}

/// Log lines written while a test runs, for the start-up warning.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A node in the Go dialect says at start that it has no real authentication.
#[tokio::test(flavor = "current_thread")]
async fn warns_at_start_that_there_is_no_authentication() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let c = Cluster::new();
    let _go = c.start_with("1.1.1", false, go_config()).await;
    let text = String::from_utf8_lossy(&logs.0.lock()).into_owned();
    assert!(text.contains("NO real"), "{text}");
    assert!(!text.contains("development secret"), "{text}");
}

/// Two Go-dialect nodes with different keys cannot decrypt each other's hello:
/// refused by closing, calls end within their timeout.
#[tokio::test]
async fn another_key_is_refused() {
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, go_config()).await;
    let other = Config {
        dialect: Dialect::GoSeed(clustergo::gocompat::GoSeed {
            key: GoKey::new(b"other_key").unwrap(),
        }),
        ..go_config()
    };
    let b = c.start_with("1.2.1", false, other).await;
    serve_echo(&a);
    let short = Duration::from_millis(300);
    let req = echo("", 0);
    let call = b.call_with_timeout::<_, Echo>(addr("1.1.1"), "echo", &req, short);
    let e = within("call with the wrong key", call).await.unwrap_err();
    assert_eq!(e, RpcError::Timeout);
}

/// Streaming calls are the native dialect's: in the Go dialect one fails at once,
/// and user streams (no kind byte on smux) still work beside it.
#[tokio::test]
async fn streaming_calls_fail_at_once_in_the_go_dialect() {
    let (_c, a, b) = go_pair().await;
    let call = clustergo::rpc::call_bidi::<clustergo::ProstCodec, Echo, Echo>(
        &b,
        addr("1.1.1"),
        "echo",
        None,
    );
    let e = within("the refusal", call).await.unwrap_err();
    assert!(
        matches!(e, RpcError::Other(ref s) if s.contains("Go seed")),
        "{e}"
    );
    echo_streams(&a);
    assert_eq!(round_trip(&b, "1.1.1", b"still fine").await, b"still fine");
}
