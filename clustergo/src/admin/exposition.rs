//! `/metrics`: the node's counters in the Prometheus text format.
//!
//! Encoded by `prometheus-client` from the atomics the node keeps anyway (a
//! [`Collector`] read at scrape time), so nothing is counted twice and the hot
//! path never touches a registry. A registry is built per scrape and owned by the
//! node: no process-global state, two nodes in one process export separately.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::stats::{BOUNDS, CODES, CallStats, Keyed};
use crate::node::NodeInner;

/// Content type of the Prometheus text format.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The text of a scrape.
pub(crate) fn render(node: &Arc<NodeInner>) -> String {
    let mut registry = Registry::with_prefix("clustergo");
    registry.register_collector(Box::new(Scrape(node.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail; the collector does not fail either.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Reads a node's counters when encoded.
#[derive(Debug)]
struct Scrape(Arc<NodeInner>);

type Fmt = Result<(), std::fmt::Error>;

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> Fmt {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn gauge(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> Fmt {
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// `<name>_total{method, code}` and `<name>_seconds{method}` for each method.
fn calls(enc: &mut DescriptorEncoder<'_>, name: &str, what: &str, keyed: &Keyed<Box<str>>) -> Fmt {
    let mut rows = keyed.snapshot();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let overflow: (&str, &CallStats) = ("_other", keyed.overflow());
    let rows: Vec<(&str, &CallStats)> = rows
        .iter()
        .map(|(m, s)| (&**m, &**s))
        .chain(std::iter::once(overflow))
        .collect();
    {
        let help = format!("{what} by method and outcome code.");
        let mut fam = enc.encode_descriptor(name, &help, None, MetricType::Counter)?;
        for (method, stats) in &rows {
            for (code, n) in CODES.iter().zip(stats.codes()) {
                if n > 0 {
                    let labels = [("method", *method), ("code", *code)];
                    ConstCounter::new(n).encode(fam.encode_family(&labels)?)?;
                }
            }
        }
    }
    let seconds = format!("{name}_seconds");
    let help = format!("Latency of {}, by method.", what.to_lowercase());
    let mut fam = enc.encode_descriptor(&seconds, &help, None, MetricType::Histogram)?;
    for (method, stats) in &rows {
        let counts = stats.latency.counts();
        let count: u64 = counts.iter().sum();
        if count == 0 {
            continue;
        }
        let buckets: Vec<(f64, u64)> = BOUNDS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts)
            .collect();
        let labels = [("method", *method)];
        fam.encode_family(&labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                stats.latency.sum_secs(),
                count,
                &buckets,
                None,
            )?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Fmt {
        let node = &self.0;
        let m = node.counters().snapshot();
        let e = &mut enc;
        counter(
            e,
            "links_up",
            "Node-to-node connections that came up.",
            m.links_established,
        )?;
        counter(
            e,
            "links_down",
            "Connections lost other than by stop or removal.",
            m.links_lost,
        )?;
        counter(
            e,
            "redials",
            "Dials that failed and were retried.",
            m.dials_failed,
        )?;
        counter(
            e,
            "messages_sent",
            "Frames written to node links.",
            m.frames_sent,
        )?;
        counter(
            e,
            "messages_received",
            "Frames read from node links.",
            m.frames_received,
        )?;
        counter(
            e,
            "sent_bytes",
            "Bytes written to node links.",
            m.bytes_sent,
        )?;
        counter(
            e,
            "received_bytes",
            "Frame body bytes read from node links.",
            m.bytes_received,
        )?;
        {
            let mut fam = e.encode_descriptor(
                "messages_dropped",
                "Frames dropped, by reason.",
                None,
                MetricType::Counter,
            )?;
            for (reason, n) in [
                ("expired", m.frames_expired),
                ("forged", m.frames_forged),
                ("relay_failed", m.relay_dropped),
            ] {
                ConstCounter::new(n).encode(fam.encode_family(&[("reason", reason)])?)?;
            }
        }
        counter(
            e,
            "messages_expired",
            "Frames dropped because their deadline passed.",
            m.frames_expired,
        )?;
        counter(
            e,
            "relays",
            "Frames forwarded as a harbor.",
            m.frames_relayed,
        )?;
        counter(
            e,
            "handshakes_shed",
            "Inbound connections shed before authenticating.",
            m.handshakes_shed,
        )?;
        let peers = node.peer_links();
        {
            let mut fam = e.encode_descriptor(
                "peer_queue_depth",
                "Frames queued for a peer and not yet written.",
                None,
                MetricType::Gauge,
            )?;
            for p in &peers {
                let peer = p.addr.to_string();
                ConstGauge::new(p.queue as i64)
                    .encode(fam.encode_family(&[("peer", peer.as_str())])?)?;
            }
        }
        let up = peers.iter().filter(|p| p.link == "up").count();
        gauge(e, "links_open", "Node-to-node links up now.", up as i64)?;
        gauge(
            e,
            "stream_sessions",
            "Peers with a live stream session.",
            node.streams().sessions() as i64,
        )?;
        gauge(
            e,
            "requests_in_flight",
            "Requests being served.",
            node.inflight().len() as i64,
        )?;
        let admin = node.admin();
        calls(e, "calls", "Outgoing calls", &admin.calls.calls)?;
        calls(e, "handled", "Served requests", &admin.calls.handled)?;
        admin.encode_gates(e)?;
        Ok(())
    }
}
