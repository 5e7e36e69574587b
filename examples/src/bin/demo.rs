//! A whole cluster in one process on the embedded default membership: a discovery
//! server, an echo server node and a client node. The client finds the server by
//! type, sends messages (registered by the generated `echo::register_messages`, ids
//! from the .proto), makes calls (awaited, with a callback, one-way) and opens a
//! stream; everything is printed. Exits 0 only if every step worked, within 10 s.
//!
//! The client node runs the admin listener on loopback and prints the live cluster
//! page's URL; `--serve <duration>` (e.g. `--serve 5m`) keeps calling the server
//! for that long before leaving, so the page has something to show.
//!
//! ```text
//! cargo run -p examples --bin demo
//! cargo run -p examples --bin demo -- --serve 5m
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clustergo::membership::{DiscoveryClient, DiscoveryServer};
use clustergo::{Config, Instant, LogicAddr, Node, RpcContext};
use examples::{bind_member, init_logging, parse_duration, within};
use service::echo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Prefix of the calls `--serve` makes (not printed one by one).
const LOAD: &str = "load-";

struct Echo;

impl echo::EchoService for Echo {
    fn on_call(&self, ctx: RpcContext, replyer: echo::Replyer, request: echo::Request) {
        if !request.msg.starts_with(LOAD) {
            println!("  server  <- call from {}: {:?}", ctx.from(), request.msg);
        }
        replyer.reply(echo::Response {
            msg: format!("hello world:{}", request.msg),
        });
    }
}

/// `--serve <duration>`: how long to keep the cluster busy (default: not at all).
fn serve_arg() -> Result<Duration, String> {
    let mut args = std::env::args().skip(1);
    let mut serve = Duration::ZERO;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--serve" => {
                let v = args.next().ok_or("--serve needs a duration, e.g. 5m")?;
                serve = parse_duration(&v)?;
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?} (usage: demo [--serve <duration>])"
                ));
            }
        }
    }
    Ok(serve)
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let serve = match serve_arg() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let limit = Duration::from_secs(10).saturating_add(serve);
    match within("demo", limit, run(serve)).await {
        Ok(Ok(())) => {
            println!("demo: all steps succeeded");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("demo FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(serve: Duration) -> Result<(), String> {
    // 1. The membership service: the embedded discovery server.
    let discovery = DiscoveryServer::bind("127.0.0.1:0", [])
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let membership = || DiscoveryClient::new(discovery.local_addr());
    println!("discovery server on {}", discovery.local_addr());

    // 2. The echo server, type 1, registers itself and starts.
    let server = Node::new();
    echo::register_on(&server, Echo);
    let (tx, mut chat_rx) = mpsc::unbounded_channel();
    // Chat lines are `echo::Request`s sent one-way: their id comes from
    // `option (clustergo.cmd) = 100;` in proto/echo.proto.
    server.register_pb_handler(echo::REQUEST_CMD, move |from, line: echo::Request| {
        println!("  server  <- message from {from}: {:?}", line.msg);
        let _ = tx.send(line.msg);
    });
    let server_addr = start(&server, "1.1.1", &discovery, membership()).await?;

    // 3. The client, type 2, starts (with the admin listener) and finds a type-1 node.
    let client = Node::with_config(Config {
        admin_addr: Some(([127, 0, 0, 1], 0).into()),
        ..Config::default()
    });
    echo::register_messages(&client);
    let client_addr = start(&client, "1.2.1", &discovery, membership()).await?;
    let target = within("server to appear", Duration::from_secs(5), async {
        loop {
            if let Some(a) = client.get_addr_by_type(1) {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    println!("client {client_addr} found echo server {target} by type");
    if let Some(admin) = client.admin_addr() {
        println!("live cluster page: http://{admin}/ (metrics: http://{admin}/metrics)");
    }

    // 4. Messages: the connection is made by the first send.
    for line in ["hi", "how are you"] {
        println!("  client  -> message {line:?}");
        client
            .send_pb(target, &echo::Request { msg: line.into() })
            .map_err(|e| format!("send: {e}"))?;
    }
    for want in ["hi", "how are you"] {
        let got = within("message", Duration::from_secs(2), chat_rx.recv()).await?;
        if got.as_deref() != Some(want) {
            return Err(format!("message: want {want:?}, got {got:?}"));
        }
    }

    // 5. Calls, awaited.
    let rpc = echo::EchoClient::new(&client);
    for i in 0..3 {
        let req = echo::Request {
            msg: format!("sniperHW-{i}"),
        };
        let resp = rpc
            .call(target, &req)
            .await
            .map_err(|e| format!("call: {e}"))?;
        println!("  client  <- reply {:?}", resp.msg);
        if resp.msg != format!("hello world:{}", req.msg) {
            return Err(format!("wrong reply {:?}", resp.msg));
        }
    }

    // 6. Calls with a callback: each callback runs once, on a runtime task.
    let (cb_tx, mut cb_rx) = mpsc::unbounded_channel();
    for i in 0..3 {
        let cb_tx = cb_tx.clone();
        let req = echo::Request {
            msg: format!("cb-{i}"),
        };
        rpc.call_with_callback(
            target,
            Instant::now() + Duration::from_secs(2),
            &req,
            move |r| {
                let _ = cb_tx.send(r);
            },
        );
    }
    for _ in 0..3 {
        let r = within("callback", Duration::from_secs(2), cb_rx.recv()).await?;
        match r {
            Some(Ok(resp)) => {
                println!("  client  <- callback {:?}", resp.msg);
            }
            other => return Err(format!("callback: {other:?}")),
        }
    }

    // 7. One-way post: the server runs the method, nobody waits.
    rpc.post(
        target,
        &echo::Request {
            msg: "fire and forget".into(),
        },
    )
    .map_err(|e| format!("post: {e}"))?;

    // 8. A stream: the server echoes bytes back.
    server.on_new_stream(|mut s| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut stream = client
        .open_stream(target)
        .await
        .map_err(|e| format!("open_stream: {e}"))?;
    stream
        .write_all(b"bytes over a stream")
        .await
        .map_err(|e| e.to_string())?;
    let mut back = [0u8; 19];
    stream
        .read_exact(&mut back)
        .await
        .map_err(|e| e.to_string())?;
    println!("  client  <- stream {:?}", String::from_utf8_lossy(&back));
    if &back != b"bytes over a stream" {
        return Err("stream echo differs".into());
    }
    drop(stream);

    // 9. With --serve: keep calling, so the live page plots something.
    if !serve.is_zero() {
        println!("serving for {serve:?}: open the page above");
        let end = Instant::now() + serve;
        let mut i = 0u64;
        while Instant::now() < end {
            let req = echo::Request {
                msg: format!("{LOAD}{i}"),
            };
            if let Err(e) = rpc.call(target, &req).await {
                println!("  client  <- error {e}");
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // 10. Leave: the server is removed from membership and stops by itself.
    discovery.remove(server_addr);
    within("server to stop", Duration::from_secs(3), server.wait()).await?;
    println!("server {server_addr} removed from membership and stopped");
    client.shutdown().await;
    discovery.shutdown().await;
    Ok(())
}

/// Publishes `logic` on a fresh loopback port and starts `node` there.
async fn start(
    node: &Node,
    logic: &str,
    discovery: &DiscoveryServer,
    membership: DiscoveryClient,
) -> Result<LogicAddr, String> {
    let (listener, member) = bind_member(logic, false)
        .await
        .map_err(|e| format!("bind {logic}: {e}"))?;
    let addr = member.logic();
    discovery.put(member);
    node.start_on(listener, membership, addr)
        .await
        .map_err(|e| format!("start {logic}: {e}"))?;
    println!(
        "node {addr} started on {}",
        node.listen_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    );
    Ok(addr)
}
