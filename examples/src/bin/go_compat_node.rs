//! A node in the Go seed's dialect, to try this crate against a Go clustergo
//! cluster (or against another of itself).
//!
//! ```text
//! cargo run -p examples --bin go_compat_node -- --self 1.2.1=127.0.0.1:7201 \
//!     --member 1.1.1=127.0.0.1:7101 [--call 1.1.1] [--send 1.1.1] [--stream 1.1.1] [--serve 20s]
//! ```
//! Membership is static, from the flags (`--member` repeatable; `--self` is listed
//! too). The node always serves the RPC method `"echo"` (reply = the request, the
//! `proto/echo.proto` types, field for field the seed's `EchoReq`/`EchoRsp`),
//! handles pb messages with cmd 1 (the same type) and accepts streams (echoing what
//! it reads), printing each. `--call` makes one echo call with `{msg: "sniperHW"}`,
//! `--send` sends one pb message with cmd 1, `--stream` opens a stream and writes 4
//! bytes; `--serve D` keeps it running for D after the actions. Exits non-zero if
//! any requested action failed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, Config, Dialect, LogicAddr, Node};
use examples::{init_logging, parse_duration, within};
use service::echo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The pb cmd the Go side registers `EchoReq` under in the seed's examples.
const ECHO_CMD: u16 = 1;
/// Each action gives up after this.
const LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Args {
    me: Option<(LogicAddr, SocketAddr)>,
    members: Vec<(LogicAddr, SocketAddr)>,
    call: Vec<LogicAddr>,
    send: Vec<LogicAddr>,
    stream: Vec<LogicAddr>,
    serve: Duration,
}

const USAGE: &str = "usage: go_compat_node --self L=HOST:PORT [--member L=HOST:PORT]... \
    [--call L] [--send L] [--stream L] [--serve DURATION]";

fn parse_member(text: &str) -> Result<(LogicAddr, SocketAddr), String> {
    let (logic, net) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: want LOGIC=HOST:PORT"))?;
    let logic = logic.parse().map_err(|e| format!("{logic:?}: {e}"))?;
    let net = net.parse().map_err(|e| format!("{net:?}: {e}"))?;
    Ok((logic, net))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut out = Args::default();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let logic = |v: String| v.parse::<LogicAddr>().map_err(|e| format!("{v:?}: {e}"));
        match flag.as_str() {
            "--self" => out.me = Some(parse_member(&value()?)?),
            "--member" => out.members.push(parse_member(&value()?)?),
            "--call" => out.call.push(logic(value()?)?),
            "--send" => out.send.push(logic(value()?)?),
            "--stream" => out.stream.push(logic(value()?)?),
            "--serve" => out.serve = parse_duration(&value()?)?,
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    if out.me.is_none() {
        return Err("--self is required".into());
    }
    Ok(out)
}

fn serve(node: &Node) {
    node.register_rpc("echo", |ctx, replyer, req: echo::Request| {
        println!("echo call from {}: {:?}", ctx.from(), req.msg);
        replyer.reply(echo::Response { msg: req.msg });
    });
    node.register_pb_handler(ECHO_CMD, |from, m: echo::Request| {
        println!("pb message cmd {ECHO_CMD} from {from}: {:?}", m.msg);
    });
    node.on_new_stream(|mut s| async move {
        let peer = s.peer();
        println!("stream from {peer}");
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            println!("stream from {peer}: {n} bytes");
            if s.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = s.shutdown().await;
    });
}

async fn call(node: &Node, to: LogicAddr) -> Result<(), String> {
    let req = echo::Request {
        msg: "sniperHW".into(),
    };
    let resp: echo::Response = node
        .call_with_timeout(to, echo::METHOD, &req, LIMIT)
        .await
        .map_err(|e| format!("call {to}: {e}"))?;
    println!("echo reply from {to}: {:?}", resp.msg);
    Ok(())
}

fn send(node: &Node, to: LogicAddr) -> Result<(), String> {
    let msg = echo::Request {
        msg: "sniperHW".into(),
    };
    node.send_pb(to, &msg)
        .map_err(|e| format!("send to {to}: {e}"))?;
    println!("pb message cmd {ECHO_CMD} sent to {to}");
    Ok(())
}

async fn stream(node: &Node, to: LogicAddr) -> Result<(), String> {
    let mut s = within("open stream", LIMIT, node.open_stream(to))
        .await?
        .map_err(|e| format!("open stream to {to}: {e}"))?;
    let write = async {
        s.write_all(b"ping").await?;
        s.flush().await
    };
    within("stream write", LIMIT, write)
        .await?
        .map_err(|e| format!("write to the stream to {to}: {e}"))?;
    println!("stream to {to}: wrote 4 bytes");
    // A peer that echoes (the seed's gameserver, or this example) answers them.
    let mut back = [0u8; 4];
    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut back)).await {
        println!(
            "stream to {to}: read back {:?}",
            String::from_utf8_lossy(&back)
        );
    }
    let _ = s.shutdown().await;
    Ok(())
}

async fn run(args: Args) -> Result<(), String> {
    let (me, net) = args.me.expect("checked");
    let member = |(logic, net): (LogicAddr, SocketAddr)| Member {
        addr: Addr::new(logic, net),
        export: false,
        available: true,
    };
    let members = InProcess::with_members(
        std::iter::once((me, net))
            .chain(args.members.iter().copied())
            .map(member),
    );
    let node = Node::with_config(Config {
        dialect: Dialect::go_seed(),
        ..Config::default()
    });
    node.register_pb_message::<echo::Request>(ECHO_CMD);
    serve(&node);
    node.start(members, me)
        .await
        .map_err(|e| format!("cannot start {me} at {net}: {e}"))?;
    println!("go_compat_node {me} serving at {net}");
    let mut failed = Vec::new();
    for &to in &args.call {
        failed.extend(call(&node, to).await.err());
    }
    for &to in &args.send {
        failed.extend(send(&node, to).err());
    }
    for &to in &args.stream {
        failed.extend(stream(&node, to).await.err());
    }
    tokio::time::sleep(args.serve).await;
    // Stop flushes what is still queued (the pb message) before closing.
    node.shutdown().await;
    if failed.is_empty() {
        return Ok(());
    }
    Err(failed.join("; "))
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("go_compat_node: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("go_compat_node: {e}");
            ExitCode::FAILURE
        }
    }
}
