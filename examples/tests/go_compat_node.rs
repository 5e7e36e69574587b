//! Two `go_compat_node` processes against each other, in the Go seed's dialect.

mod common;

use common::{Kill, free_port};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Waits (bounded) for a line of `lines` containing `want`.
fn wait_line(lines: &mpsc::Receiver<String>, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(want) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {want:?}: {e}"),
        }
    }
}

#[test]
fn call_send_and_stream_between_two_go_dialect_nodes() {
    let (p1, p2) = (free_port(), free_port());
    let mut server = Kill(
        Command::new(env!("CARGO_BIN_EXE_go_compat_node"))
            .args(["--self", &format!("1.1.1=127.0.0.1:{p1}")])
            .args(["--member", &format!("1.2.1=127.0.0.1:{p2}")])
            .args(["--serve", "60s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, lines) = mpsc::channel();
    let out = server.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    wait_line(&lines, "serving at");

    let client = Command::new(env!("CARGO_BIN_EXE_go_compat_node"))
        .args(["--self", &format!("1.2.1=127.0.0.1:{p2}")])
        .args(["--member", &format!("1.1.1=127.0.0.1:{p1}")])
        .args(["--call", "1.1.1", "--send", "1.1.1", "--stream", "1.1.1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&client.stdout);
    let stderr = String::from_utf8_lossy(&client.stderr);
    assert!(client.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(r#"echo reply from 1.1.1: "sniperHW""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("stream to 1.1.1: wrote 4 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains(r#"read back "ping""#), "{stdout}");
    wait_line(&lines, r#"echo call from 1.2.1: "sniperHW""#);
    wait_line(&lines, r#"pb message cmd 1 from 1.2.1: "sniperHW""#);
    wait_line(&lines, "stream from 1.2.1");
}

#[test]
fn a_failed_action_exits_non_zero() {
    let (p1, p2) = (free_port(), free_port());
    let out = Command::new(env!("CARGO_BIN_EXE_go_compat_node"))
        .args(["--self", &format!("1.2.1=127.0.0.1:{p2}")])
        .args(["--member", &format!("1.1.1=127.0.0.1:{p1}")])
        .args(["--call", "1.1.1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let bad = Command::new(env!("CARGO_BIN_EXE_go_compat_node"))
        .args(["--member", "1.1.1=127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "--self is required");
}
