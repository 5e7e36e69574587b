//! The example programs, run as processes.

mod common;

use common::{Kill, free_port};

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn members() -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    write!(
        f,
        r#"{{"members": [
            {{"logic": "1.1.1", "net": "127.0.0.1:{}"}},
            {{"logic": "1.2.1", "net": "127.0.0.1:{}"}}
        ]}}"#,
        free_port(),
        free_port()
    )
    .unwrap();
    f
}

#[test]
fn echo_client_gets_20_replies_from_echo_server() {
    let m = members();
    let _server = Kill(
        Command::new(env!("CARGO_BIN_EXE_echo_server"))
            .arg(m.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_echo_client"))
        .arg(m.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("20/20 replies right"), "{stdout}");
    let lines = |p: &str| stdout.lines().filter(|l| l.starts_with(p)).count();
    assert_eq!(lines("call "), 10, "{stdout}");
    assert_eq!(lines("callback "), 10, "{stdout}");
}

#[test]
fn echo_client_fails_without_a_server() {
    let m = members();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_echo_client"))
        .arg(m.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn in_process_examples_succeed() {
    for exe in [
        env!("CARGO_BIN_EXE_macro_echo"),
        env!("CARGO_BIN_EXE_buildrs_echo"),
        env!("CARGO_BIN_EXE_async_echo"),
        env!("CARGO_BIN_EXE_room"),
    ] {
        let out = Command::new(exe).output().unwrap();
        assert!(
            out.status.success(),
            "{exe}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("FAIL"));
    }
}

#[test]
fn demo_and_harbor_examples_succeed() {
    for exe in [env!("CARGO_BIN_EXE_demo"), env!("CARGO_BIN_EXE_harbor")] {
        let out = Command::new(exe).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{exe}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("succeeded") || stdout.contains("crossed clusters"),
            "{stdout}"
        );
    }
}

#[test]
fn client_streams_through_gateserver_to_gameserver() {
    gate_and_game("native");
}

/// The same in the Go seed's dialect: streams over smux.
#[test]
fn client_streams_through_gateserver_to_gameserver_in_the_go_dialect() {
    gate_and_game("go");
}

fn gate_and_game(dialect: &str) {
    let mut f = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    write!(
        f,
        r#"{{"members": [
            {{"logic": "1.3.1", "net": "127.0.0.1:{}"}},
            {{"logic": "1.4.1", "net": "127.0.0.1:{}"}}
        ]}}"#,
        free_port(),
        free_port()
    )
    .unwrap();
    let gate = format!("127.0.0.1:{}", free_port());
    let _game = Kill(
        Command::new(env!("CARGO_BIN_EXE_gameserver"))
            .env("CLUSTERGO_DIALECT", dialect)
            .arg(f.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _gate = Kill(
        Command::new(env!("CARGO_BIN_EXE_gateserver"))
            .env("CLUSTERGO_DIALECT", dialect)
            .arg(f.path())
            .arg(&gate)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_client"))
        .arg(&gate)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("echoed intact"), "{stdout}");
}

#[test]
fn discovery_cli_serves_and_changes_the_list_with_the_shared_secret_only() {
    let m = members();
    let listen = format!("127.0.0.1:{}", free_port());
    let _server = Kill(
        Command::new(env!("CARGO_BIN_EXE_discovery"))
            .args(["--listen", &listen, "--members"])
            .arg(m.path())
            .env_remove("CLUSTERGO_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client = |secret: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_discovery"));
        cmd.args(["--server", &listen]).args(args);
        match secret {
            Some(s) => cmd.env("CLUSTERGO_SECRET", s),
            None => cmd.env_remove("CLUSTERGO_SECRET"),
        };
        cmd.output().unwrap()
    };
    // The server may still be starting: retry the first put for a bounded time.
    let put = ["--put", r#"{"logic":"1.1.9","net":"127.0.0.1:8119"}"#];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = client(None, &put);
    while !out.status.success() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        out = client(None, &put);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let refused = client(Some("a-guessed-secret"), &["--remove", "1.1.9"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("authentication failed"), "{stderr}");

    let removed = client(None, &["--remove", "1.1.9"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}

/// `demo --serve`: prints the live page's URL, serves it (with `/metrics` moving)
/// while it runs, then exits 0 as without the flag.
#[test]
fn demo_serves_the_admin_page_while_it_runs() {
    use std::io::{BufRead, BufReader, Read};
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_demo"))
            .args(["--serve", "3s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("live cluster page: http://")
                .map(|r| r.split('/').next().unwrap().to_owned())
        })
        .expect("the page's URL is printed");
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&url).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {url}\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(get("/").contains("<canvas"), "the page is served");
    assert!(get("/healthz").starts_with("HTTP/1.1 200 "));
    let calls = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("clustergo_calls_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let first = calls(&get("/metrics"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        calls(&get("/metrics")) > first,
        "calls keep flowing while serving"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("succeeded")), "{rest:?}");
}
