//! The admin listener (`Config::admin_addr`): `/metrics` in the Prometheus text
//! format moving with traffic, `/healthz` flipping when the node drains,
//! `/api/cluster`, and the live page in headless Chromium (member table and a plot
//! that updates; a screenshot is saved next to the test binaries).

mod chromium;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use clustergo::{Config, Node, Replyer};
use support::{Cluster, Echo, Held, addr, config, echo, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A config with the admin listener on a free loopback port.
fn admin_config() -> Config {
    Config {
        admin_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..config()
    }
}

/// `GET path` on the node's admin listener: status and body.
async fn get(node: &Node, path: &str) -> (u16, String) {
    get_at(node.admin_addr().expect("admin listener on"), path).await
}

async fn get_at(at: SocketAddr, path: &str) -> (u16, String) {
    within(&format!("GET {path}"), async {
        let mut s = TcpStream::connect(at).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {at}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    })
    .await
}

/// Parses the Prometheus text format: every line is a comment (`#`) or
/// `name{labels} value`; returns the samples by `name{labels}`.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(
                labels.ends_with('}') && labels.len() >= 2,
                "bad labels in {line:?}"
            );
            for pair in labels[1..labels.len() - 1].split("\",") {
                let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line:?}"));
                assert!(!k.is_empty() && !v.contains('\n'), "bad label in {line:?}");
            }
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

fn serve_echo(node: &Node) {
    node.register_rpc("echo", |_ctx, r: Replyer<Echo>, req: Echo| r.reply(req));
}

fn sample(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_traffic() {
    let cluster = Cluster::new();
    let server = cluster.start_with("1.1.1", false, admin_config()).await;
    serve_echo(&server);
    let client = cluster.start_with("1.2.1", false, admin_config()).await;

    let (status, before) = get(&client, "/metrics").await;
    assert_eq!(status, 200);
    assert!(before.ends_with("# EOF\n"), "{before}");
    let before = parse_metrics(&before);
    for i in 0..5 {
        let _: Echo = within("echo", client.call(addr("1.1.1"), "echo", &echo("m", i)))
            .await
            .unwrap();
    }
    let _ = within(
        "bad call",
        client.call::<_, Echo>(addr("1.1.1"), "nope", &echo("x", 0)),
    )
    .await;

    let (_, after) = get(&client, "/metrics").await;
    let after = parse_metrics(&after);
    let ok = r#"clustergo_calls_total{method="echo",code="ok"}"#;
    assert_eq!(sample(&after, ok) - sample(&before, ok), 5.0, "{after:?}");
    let bad = r#"clustergo_calls_total{method="nope",code="invalid_method"}"#;
    assert_eq!(sample(&after, bad), 1.0, "{after:?}");
    assert_eq!(
        sample(&after, r#"clustergo_calls_seconds_count{method="echo"}"#),
        5.0,
        "{after:?}"
    );
    assert_eq!(
        sample(
            &after,
            r#"clustergo_calls_seconds_bucket{le="+Inf",method="echo"}"#
        ),
        5.0,
        "{after:?}"
    );
    for moved in [
        "clustergo_messages_sent_total",
        "clustergo_messages_received_total",
        "clustergo_sent_bytes_total",
        "clustergo_links_up_total",
    ] {
        assert!(
            sample(&after, moved) > sample(&before, moved),
            "{moved}: {after:?}"
        );
    }
    assert_eq!(sample(&after, "clustergo_links_open"), 1.0, "{after:?}");
    assert!(
        after.contains_key(r#"clustergo_peer_queue_depth{peer="1.1.1"}"#),
        "{after:?}"
    );

    let (_, served) = get(&server, "/metrics").await;
    let served = parse_metrics(&served);
    assert_eq!(
        sample(
            &served,
            r#"clustergo_handled_total{method="echo",code="ok"}"#
        ),
        5.0,
        "{served:?}"
    );
    assert_eq!(
        sample(&served, r#"clustergo_handled_seconds_count{method="echo"}"#),
        5.0
    );
    assert_eq!(
        sample(
            &served,
            "clustergo_handled_total{method=\"nope\",code=\"invalid_method\"}"
        ),
        0.0,
        "unregistered names are not labels"
    );
}

#[tokio::test]
async fn healthz_fails_while_draining() {
    let cluster = Cluster::new();
    let server = cluster.start_with("1.1.1", false, admin_config()).await;
    let held = Held::serve(&server);
    let client = cluster.start("1.2.1").await;
    let at = server.admin_addr().unwrap();
    assert_eq!(get_at(at, "/healthz").await, (200, "ok\n".into()));

    let calls = held
        .calls(&client, "1.1.1", 1, Duration::from_secs(10))
        .await;
    server.stop();
    // The held request keeps the node draining: health fails, the page still answers.
    assert_eq!(get_at(at, "/healthz").await.0, 503);
    let (status, doc) = get_at(at, "/api/cluster").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["state"], "draining", "{doc}");

    held.release();
    support::results(calls).await;
    within("stop", server.wait()).await;
    let refused = TcpStream::connect(at).await;
    assert!(refused.is_err(), "the admin listener closes with the node");
}

#[tokio::test]
async fn api_cluster_lists_members_links_and_call_stats() {
    let cluster = Cluster::new();
    let server = cluster.start("1.1.1").await;
    serve_echo(&server);
    let client = cluster.start_with("1.2.1", false, admin_config()).await;
    for i in 0..3 {
        let _: Echo = within("echo", client.call(addr("1.1.1"), "echo", &echo("a", i)))
            .await
            .unwrap();
    }
    let (status, doc) = get(&client, "/api/cluster").await;
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["node"], "1.2.1");
    assert_eq!(doc["state"], "running");
    let members = doc["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{doc}");
    let peer = members.iter().find(|m| m["addr"] == "1.1.1").unwrap();
    assert_eq!(peer["link"], "up", "{doc}");
    assert_eq!(peer["type"], 1);
    assert_eq!(peer["available"], true);
    assert_eq!(peer["traffic"]["calls"], 3, "{doc}");
    assert!(peer["traffic"]["p50_ms"].as_f64().is_some(), "{doc}");
    let me = members.iter().find(|m| m["addr"] == "1.2.1").unwrap();
    assert_eq!(me["link"], "self");
    assert_eq!(doc["calls"]["summary"]["calls"], 3);

    assert_eq!(get(&client, "/nowhere").await.0, 404);
    let (status, page) = get(&client, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<canvas id=\"plot\""), "the page is served");
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );
}

#[tokio::test]
async fn nodes_without_admin_addr_serve_nothing() {
    let cluster = Cluster::new();
    let node = cluster.start("1.1.1").await;
    assert_eq!(node.admin_addr(), None);
}

/// Runs Chromium on `url` with `extra` switches; returns its stdout.
async fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let stderr_path = profile.path().join("chromium-stderr.log");
    let child = chromium::command(profile.path())
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("start chromium");
    let _kill = chromium::KillGroup(child.id());
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "chromium did not finish; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        })
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}\n{}",
        out.status,
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attr="…"` on the element whose tag starts with `tag`.
fn attribute<'a>(dom: &'a str, tag: &str, attr: &str) -> Option<&'a str> {
    let start = dom.find(tag)?;
    let el = &dom[start..start + dom[start..].find('>')?];
    let key = format!("{attr}=\"");
    let v = &el[el.find(&key)? + key.len()..];
    Some(&v[..v.find('"')?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_page_shows_members_and_a_plot_that_updates() {
    let cluster = Cluster::new();
    let server = cluster.start("1.1.1").await;
    serve_echo(&server);
    let client = cluster.start_with("1.2.1", false, admin_config()).await;
    cluster.start("1.3.1").await;
    // Traffic while the browser watches.
    let caller = client.clone();
    let traffic = tokio::spawn(async move {
        for i in 0.. {
            let _ = caller
                .call::<_, Echo>(addr("1.1.1"), "echo", &echo("t", i))
                .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let url = format!("http://{}/", client.admin_addr().unwrap());

    let dom = chromium(
        &url,
        &["--virtual-time-budget=5000".into(), "--dump-dom".into()],
    )
    .await;
    assert_eq!(
        attribute(&dom, "<table id=\"members\"", "data-rows"),
        Some("3"),
        "{dom}"
    );
    for m in ["1.1.1", "1.2.1 (this node)", "1.3.1"] {
        assert!(dom.contains(&format!("<td>{m}</td>")), "member {m}: {dom}");
    }
    let samples: u32 = attribute(&dom, "<canvas id=\"plot\"", "data-samples")
        .expect("the plot's sample count")
        .parse()
        .unwrap();
    assert!(
        samples >= 2,
        "the plot updates without reloading: {samples} samples"
    );
    assert!(dom.contains("class=\"link-up\">up</td>"), "{dom}");

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[
            "--virtual-time-budget=8000".into(),
            "--window-size=1000,720".into(),
            "--hide-scrollbars".into(),
            format!("--screenshot={}", shot.display()),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG at {}", shot.display());
    traffic.abort();
}

#[tokio::test]
async fn exported_gate_listeners_count_connections_by_transport() {
    use clustergo::gate::{GateConfig, Listener, Transport};
    let cluster = Cluster::new();
    let node = cluster.start_with("1.1.1", false, admin_config()).await;
    let mut gate = Listener::bind(Transport::Tcp, "127.0.0.1:0", GateConfig::default())
        .await
        .unwrap();
    node.export_gate(&gate);
    let series = r#"clustergo_gate_connections_total{transport="tcp"}"#;
    let (_, before) = get(&node, "/metrics").await;
    assert_eq!(sample(&parse_metrics(&before), series), 0.0, "{before}");

    let _client = TcpStream::connect(gate.local_addr()).await.unwrap();
    let _conn = within("gate accept", gate.accept()).await.unwrap();
    let (_, after) = get(&node, "/metrics").await;
    let after = parse_metrics(&after);
    assert_eq!(sample(&after, series), 1.0, "{after:?}");
    assert!(after.contains_key(r#"clustergo_gate_pending_handshakes{transport="tcp"}"#));
}
