//! The seed README's echo client, as `1.2.1`: finds an echo server (type 1), makes
//! 10 awaited calls and 10 callback calls, prints the replies, and exits 0 only if
//! all 20 came back right; non-zero on any failure or after 10 s.
//!
//! ```text
//! cargo run -p examples --bin echo_server &
//! cargo run -p examples --bin echo_client [-- MEMBERS.json]
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clustergo::membership::FileMembership;
use clustergo::{LogicAddr, RpcError};
use service::echo;
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);

async fn run(members: &str) -> Result<usize, String> {
    let local: LogicAddr = "1.2.1".parse().expect("valid address");
    clustergo::start(FileMembership::new(members), local)
        .await
        .map_err(|e| format!("cannot start {local} from {members}: {e}"))?;
    // Membership arrives asynchronously: poll for a node of type 1.
    let server = loop {
        if let Some(a) = clustergo::get_addr_by_type(1) {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The server may still be starting: a refused dial marks it down and calls fail
    // at once with `Unreachable` (they never wait out their timeout), while the node
    // keeps probing. Wait until it answers.
    let started = tokio::time::Instant::now();
    loop {
        match echo::call(
            server,
            &echo::Request {
                msg: "ready?".into(),
            },
        )
        .await
        {
            Err(RpcError::Unreachable(_)) if started.elapsed() < LIMIT => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => break,
        }
    }
    let mut good = 0;
    for i in 0..10 {
        let msg = format!("hello {i}");
        match echo::call(server, &echo::Request { msg: msg.clone() }).await {
            Ok(resp) => {
                println!("call {i}: {:?}", resp.msg);
                good += usize::from(resp.msg == msg);
            }
            Err(e) => println!("call {i}: error: {e}"),
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    for i in 0..10 {
        let msg = format!("callback {i}");
        let tx = tx.clone();
        let expect = msg.clone();
        echo::call_with_callback(
            server,
            clustergo::Instant::now() + Duration::from_secs(5),
            &echo::Request { msg },
            move |r| {
                let _ = tx.send((i, expect, r));
            },
        );
    }
    drop(tx);
    while let Some((i, expect, r)) = rx.recv().await {
        match r {
            Ok(resp) => {
                println!("callback {i}: {:?}", resp.msg);
                good += usize::from(resp.msg == expect);
            }
            Err(e) => println!("callback {i}: error: {e}"),
        }
    }
    Ok(good)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let members = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/cluster.json").to_owned());
    let result = tokio::time::timeout(LIMIT, run(&members)).await;
    clustergo::stop();
    let _ = tokio::time::timeout(Duration::from_secs(2), clustergo::wait()).await;
    match result {
        Ok(Ok(20)) => {
            println!("echo_client: 20/20 replies right");
            ExitCode::SUCCESS
        }
        Ok(Ok(n)) => {
            eprintln!("echo_client: only {n}/20 replies right");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("echo_client: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("echo_client: gave up after {LIMIT:?}");
            ExitCode::FAILURE
        }
    }
}
