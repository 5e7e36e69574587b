//! The WebSocket gate against a real browser: headless Chromium loads a page from a tiny
//! HTTP server on loopback; the page's JavaScript opens WebSockets to a gate echo
//! server, sends binary packets of many sizes (every WebSocket length encoding, up to
//! the maximum), checks the echoes, checks that a text message is refused with close
//! code 1003 and an oversize one with 1009, that a close by the server arrives cleanly
//! (code 1000, after the packet queued before it), and POSTs its verdict back.
//!
//! The same page runs a second time against a `wss://` gate whose certificate comes
//! from a CA made at run time (`test_ca`). Chromium has no system trust store here, so
//! the test names the gate certificate's public key with
//! `--ignore-certificate-errors-spki-list` (honoured only with `--user-data-dir`, which
//! the test sets): Chromium then accepts that one key and still runs a full TLS
//! handshake with it. This was chosen over serving the page over https too, which would
//! have needed the same flag for the page's own server.
//!
//! `--dump-dom` returns when the page has loaded, so the server holds the page response
//! open until the report arrives. Chromium must be installed (`apt-get install -y
//! chromium`; another binary can be named with `CLUSTERGO_CHROMIUM`): without it this
//! test fails, it does not skip.

#![cfg(feature = "ws")]

mod chromium;
mod gate_common;
mod test_ca;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use clustergo::gate::{GateConfig, GateError, Transport};
use gate_common::EchoServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Budget for the whole browser run (a cold Chromium start takes a few seconds).
const BROWSER_BUDGET: Duration = Duration::from_secs(90);

const PAGE_HEAD: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>clustergo gate</title></head><body>
<pre id="log">running</pre>
<script>
(async () => {
  const GATE = "__SCHEME__://__GATE__/";
  const MAX = __MAX__;
  const result = {};
  const pattern = (seed, len) => {
    const a = new Uint8Array(len);
    for (let i = 0; i < len; i++) a[i] = (seed * 31 + i * 7 + (i >> 8)) & 255;
    return a;
  };
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const open = url => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("WebSocket error while opening " + url));
  });
  const closed = ws => new Promise(resolve =>
    ws.addEventListener("close", e => resolve(e.code)));
  const withTimeout = (p, ms, what) => Promise.race([p, new Promise((_, reject) =>
    setTimeout(() => reject(new Error("timeout: " + what)), ms))]);
  try {
    // 1. Echo: every WebSocket payload length encoding, in order.
    const sizes = [0, 1, 2, 125, 126, 127, 128, 1000, 4096, 65535, MAX];
    for (let i = 0; i < 40; i++) sizes.push((i * 7919) % 20000);
    const ws = await open(GATE);
    const got = [];
    const all = new Promise((resolve, reject) => {
      ws.onmessage = e => {
        if (!(e.data instanceof ArrayBuffer)) { reject(new Error("non-binary message")); return; }
        got.push(new Uint8Array(e.data));
        if (got.length === sizes.length) resolve();
      };
      ws.onclose = e => reject(new Error("closed early: " + e.code));
    });
    sizes.forEach((n, i) => ws.send(pattern(i, n)));
    await withTimeout(all, 20000, "echoes");
    const bad = sizes.map((n, i) => same(got[i], pattern(i, n)) ? -1 : i).filter(i => i >= 0);
    result.echo = bad.length === 0 ? "ok" : "mismatch at " + bad.join(",");
    result.count = got.length;
    ws.onclose = null;
    const echoClosed = closed(ws);
    ws.close(1000);
    result.echoClose = await withTimeout(echoClosed, 10000, "echo close");

    // 2. A text message is refused with 1003.
    const t = await open(GATE);
    const textClosed = closed(t);
    t.send("hello");
    result.textClose = await withTimeout(textClosed, 10000, "text close");

    // 3. One byte over the maximum is refused with 1009.
    const o = await open(GATE);
    const bigClosed = closed(o);
    o.send(new Uint8Array(MAX + 1));
    result.oversizeClose = await withTimeout(bigClosed, 10000, "oversize close");

    // 4. The server closes: the packet it queued first arrives, then a clean 1000.
    const c = await open(GATE);
    const byes = [];
    const serverClosed = new Promise(resolve => {
      c.onmessage = e => byes.push(new TextDecoder().decode(e.data));
      c.onclose = e => resolve({ code: e.code, clean: e.wasClean });
    });
    c.send(new TextEncoder().encode("__CLOSE_ME__"));
    const sc = await withTimeout(serverClosed, 10000, "server close");
    result.serverClose = sc.code;
    result.serverCloseClean = sc.clean;
    result.serverCloseMessages = byes;
  } catch (e) {
    result.error = String(e);
  }
  document.getElementById("log").textContent = "RESULT " + JSON.stringify(result);
  await fetch("/report", { method: "POST", body: JSON.stringify(result) });
})();
</script>
"#;

const PAGE_TAIL: &str = "<p id=\"done\">done</p></body></html>\n";

/// Reads an HTTP/1.1 request: (method, path, body). Bounded in size.
async fn read_request(stream: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut first = head.lines().next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let content_length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(1024 * 1024);
    let mut body = buf[head_end..].to_vec();
    while body.len() < content_length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(content_length);
    Some((method, path, body))
}

/// Serves the page (held open until the report arrives) and takes the report.
async fn serve_http(
    listener: TcpListener,
    page_head: String,
    report: watch::Sender<Option<String>>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let page_head = page_head.clone();
        let report = report.clone();
        tokio::spawn(async move {
            let Some((method, path, body)) = read_request(&mut stream).await else {
                return;
            };
            match (method.as_str(), path.as_str()) {
                ("GET", "/") => {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                                Cache-Control: no-store\r\nConnection: close\r\n\r\n";
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(page_head.as_bytes()).await;
                    let _ = stream.flush().await;
                    // Hold the document open: --dump-dom must not fire before the report.
                    let mut rx = report.subscribe();
                    let _ =
                        tokio::time::timeout(BROWSER_BUDGET, rx.wait_for(Option::is_some)).await;
                    let _ = stream.write_all(PAGE_TAIL.as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
                ("POST", "/report") => {
                    report.send_replace(Some(String::from_utf8_lossy(&body).into_owned()));
                    let _ = stream
                        .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                        .await;
                    let _ = stream.shutdown().await;
                }
                _ => {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    let _ = stream.shutdown().await;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_talks_to_the_ws_gate() {
    run_page(GateConfig::default(), "ws", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_talks_to_the_wss_gate() {
    let ca = test_ca::TestCa::new();
    let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
    let config = GateConfig {
        tls: Some(ca.server_config(&leaf)),
        ..GateConfig::default()
    };
    let trust = format!(
        "--ignore-certificate-errors-spki-list={}",
        leaf.spki_sha256_base64
    );
    run_page(config, "wss", &[trust]).await;
}

/// Runs the page against an echo gate with `config`, reached as `scheme://`.
async fn run_page(config: GateConfig, scheme: &str, extra_args: &[String]) {
    gate_common::init_tracing();
    let max = config.max_packet_size;
    let mut gate = EchoServer::start(Transport::Ws, config).await;

    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr: SocketAddr = http.local_addr().unwrap();
    let page_head = PAGE_HEAD
        .replace("__SCHEME__", scheme)
        .replace("__GATE__", &gate.addr.to_string())
        .replace("__MAX__", &max.to_string())
        .replace(
            "__CLOSE_ME__",
            std::str::from_utf8(gate_common::CLOSE_ME).unwrap(),
        );
    let (report_tx, mut report_rx) = watch::channel(None);
    let http_task = tokio::spawn(serve_http(http, page_head, report_tx));

    let profile = tempfile::tempdir().unwrap();
    let stderr_path = profile.path().join("chromium-stderr.log");
    let mut child = chromium::command(profile.path())
        .args(extra_args)
        .arg("--dump-dom")
        .arg(format!("http://{http_addr}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium::chromium_path().display()));
    let _kill = chromium::KillGroup(child.id());
    let mut stdout = child.stdout.take().unwrap();
    let dom = tokio::spawn(async move {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out).await;
        out
    });

    let browser_log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let report =
        match tokio::time::timeout(BROWSER_BUDGET, report_rx.wait_for(Option::is_some)).await {
            Ok(Ok(r)) => r.clone().unwrap(),
            _ => panic!(
                "no report from the page within {BROWSER_BUDGET:?}; chromium stderr:\n{}",
                browser_log()
            ),
        };
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "chromium did not exit after the report; stderr:\n{}",
                browser_log()
            )
        })
        .unwrap();
    let dom = tokio::time::timeout(Duration::from_secs(10), dom)
        .await
        .unwrap()
        .unwrap();
    http_task.abort();

    let result: serde_json::Value = serde_json::from_str(&report).expect("report is JSON");
    assert_eq!(
        result.get("error"),
        None,
        "page reported an error: {result}"
    );
    assert_eq!(result["echo"], "ok", "{result}");
    assert_eq!(result["count"], 51, "{result}");
    assert_eq!(result["echoClose"], 1000, "{result}");
    assert_eq!(result["textClose"], 1003, "{result}");
    assert_eq!(result["oversizeClose"], 1009, "{result}");
    assert_eq!(result["serverClose"], 1000, "{result}");
    assert_eq!(result["serverCloseClean"], true, "{result}");
    assert_eq!(
        result["serverCloseMessages"],
        serde_json::json!(["bye"]),
        "{result}"
    );
    assert!(
        status.success(),
        "chromium exit status {status}; stderr:\n{}",
        browser_log()
    );
    assert!(
        dom.contains("RESULT {"),
        "the dumped DOM should carry the result: {dom}"
    );
    assert!(
        dom.contains("id=\"done\""),
        "the page should have loaded completely: {dom}"
    );

    // The gate saw the same four connections end the expected ways (in any order).
    let mut endings = Vec::new();
    for _ in 0..4 {
        endings.push(gate.next_ending().await);
    }
    assert_eq!(
        endings.iter().filter(|e| e.is_none()).count(),
        2,
        "{endings:?}"
    );
    assert!(
        endings
            .iter()
            .any(|e| matches!(e, Some(GateError::TextMessage))),
        "{endings:?}"
    );
    assert!(
        endings
            .iter()
            .any(|e| matches!(e, Some(GateError::IncomingTooLarge { .. }))),
        "{endings:?}"
    );
    assert_eq!(gate.stats.handshake_failures(), 0);
}
