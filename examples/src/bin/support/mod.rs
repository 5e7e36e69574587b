//! Helpers for the examples that run server and client nodes in one process.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, LogicAddr, Node};
use tokio::net::TcpListener;

/// Every example gives up after this.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Runs an example's checks within [`LIMIT`]: success only if they all passed in time.
pub async fn exit_code(name: &str, checks: impl Future<Output = bool>) -> ExitCode {
    match tokio::time::timeout(LIMIT, checks).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(_) => {
            eprintln!("{name}: gave up after {LIMIT:?}");
            ExitCode::FAILURE
        }
    }
}

/// Starts `node` as `logic` on a fresh 127.0.0.1 port listed in `m`.
pub async fn start(node: &Node, m: &InProcess, logic: &str) -> LogicAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let logic: LogicAddr = logic.parse().expect("valid address");
    m.put_now(Member {
        addr: Addr::new(logic, listener.local_addr().expect("local addr")),
        export: false,
        available: true,
    });
    node.start_on(listener, m.clone(), logic)
        .await
        .expect("node starts");
    logic
}

/// A server node `1.1.1` and a client node `1.2.1` that know each other.
pub async fn pair() -> (Node, LogicAddr, Node, LogicAddr) {
    let m = InProcess::new();
    let (server, client) = (Node::new(), Node::new());
    let s = start(&server, &m, "1.1.1").await;
    let c = start(&client, &m, "1.2.1").await;
    while client.member(s).is_none() || server.member(c).is_none() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (server, s, client, c)
}

/// Prints a check's outcome and returns whether it held.
pub fn check(what: &str, ok: bool) -> bool {
    println!("{} {what}", if ok { "ok  " } else { "FAIL" });
    ok
}
