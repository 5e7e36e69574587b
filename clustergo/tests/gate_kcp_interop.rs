//! The KCP gate against an independent KCP implementation: `tests/assets/kcp_peer.py`
//! drives the reference ikcp.c through the PyPI package `kcp` and re-implements the
//! gate's framing (u32 BE length, 0xFFFF_FFFF close marker) from its description.
//!
//! Needs `python3` with `kcp` installed (`pip install kcp`; another interpreter can be
//! named with `CLUSTERGO_PYTHON`): without it these tests fail, they do not skip.
//! `KCP_PEER_DEBUG=1` shows the peer's own log on the test's stderr.

#![cfg(feature = "kcp")]

mod gate_common;

use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use clustergo::gate::{self, GateConfig, Transport};
use gate_common::{EchoServer, pattern, within};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/assets/kcp_peer.py");
const PEER_BUDGET: Duration = Duration::from_secs(60);

fn python() -> String {
    std::env::var("CLUSTERGO_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails the test with install instructions when the peer cannot run.
async fn require_python_kcp() {
    let out = Command::new(python())
        .args(["-c", "import kcp"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}; install Python 3", python()));
    assert!(
        out.status.success(),
        "the Python package `kcp` is missing: run `pip install kcp` (needs a C compiler)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn spawn_peer(args: &[&str]) -> Child {
    Command::new(python())
        .arg(SCRIPT)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if std::env::var_os("KCP_PEER_DEBUG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("start kcp_peer.py")
}

/// Waits for the peer to exit; returns its stdout, failing with its stderr.
async fn finish(child: Child) -> String {
    let out = tokio::time::timeout(PEER_BUDGET, child.wait_with_output())
        .await
        .expect("kcp_peer.py did not finish in time")
        .expect("wait for kcp_peer.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kcp_peer.py failed ({}): stdout {stdout:?}, stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_kcp_client_against_the_gate() {
    gate_common::init_tracing();
    require_python_kcp().await;
    let mut server = EchoServer::start(Transport::Kcp, GateConfig::default()).await;
    let port = server.addr.port().to_string();
    let child = spawn_peer(&["client", "127.0.0.1", &port]);
    let stdout = finish(child).await;
    assert_eq!(stdout.trim(), "OK 50");
    // The peer's close marker reached the gate as a clean close.
    let ending = server.next_ending().await;
    assert!(ending.is_none(), "server saw {ending:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_client_against_a_reference_kcp_server() {
    gate_common::init_tracing();
    require_python_kcp().await;
    let mut child = spawn_peer(&["server"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    within("the peer's port", stdout.read_line(&mut line))
        .await
        .unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from kcp_peer.py: {line:?}"));

    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let conn = within("connect", gate::connect_kcp(addr, &GateConfig::default()))
        .await
        .unwrap();
    let (tx, mut rx) = conn.split();
    let sizes: Vec<usize> = (0..60)
        .map(|i| (i * 4099) % 30_000)
        .chain([65_536])
        .collect();
    for (i, &n) in sizes.iter().enumerate() {
        tx.send(pattern(i as u32, n)).await.unwrap();
    }
    for (i, &n) in sizes.iter().enumerate() {
        let got = within("echo from the reference peer", rx.recv())
            .await
            .unwrap();
        assert_eq!(got, Some(pattern(i as u32, n)), "packet {i}");
    }
    tx.send(Bytes::from_static(b"last")).await.unwrap();
    assert_eq!(
        within("echo", rx.recv()).await.unwrap().unwrap(),
        &b"last"[..]
    );

    // Our close marker is answered with the peer's: a clean end on both sides.
    tx.close().await;
    assert!(
        within("the peer's close marker", rx.recv())
            .await
            .unwrap()
            .is_none()
    );
    drop((tx, rx));
    let mut rest = String::new();
    within("peer output", stdout.read_to_string(&mut rest))
        .await
        .unwrap();
    let status = within("peer exit", child.wait()).await.unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr).await;
    }
    assert!(
        status.success(),
        "kcp_peer.py server failed ({status}): {rest}\n{stderr}"
    );
    assert_eq!(rest.trim(), format!("OK {}", sizes.len() + 1));
}
