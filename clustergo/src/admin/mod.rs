//! The admin listener, opt-in through [`Config::admin_addr`](crate::Config::admin_addr):
//!
//! - `/metrics`: counters and latency histograms in the Prometheus text format
//!   (`exposition`);
//! - `/healthz`: `200` while the node runs, `503` before start and from the first
//!   step of stop (draining) on, so a load balancer or orchestrator stops sending
//!   work before the node goes away;
//! - `/api/cluster`: the members this node sees with their links and call stats,
//!   as JSON (`cluster`);
//! - `/`: a self-contained live page polling `/api/cluster` (`page.html`, in the
//!   binary; no CDN).
//!
//! Call statistics (`stats`) are gathered by an interceptor that is installed only
//! when the listener is on, so a node without it pays nothing. The HTTP side
//! (`http`) is a few dozen lines: one GET per connection, bounded in size and time.

mod cluster;
mod exposition;
mod http;
mod stats;

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub(crate) use cluster::PeerLink;
use http::Response;
use stats::{CallMetrics, Recorder};

use crate::gate::{ListenerStats, Transport};
use crate::node::NodeInner;

/// The live cluster page.
const PAGE: &str = include_str!("page.html");

/// Admin connections served at once; more wait for a slot (bounded work per node).
const MAX_CONNECTIONS: usize = 16;

/// What the admin listener keeps on a node.
#[derive(Debug, Default)]
pub(crate) struct Admin {
    pub(crate) calls: Arc<CallMetrics>,
    gates: Mutex<Vec<(Transport, ListenerStats)>>,
}

impl Admin {
    /// The interceptor feeding [`CallMetrics`].
    pub(crate) fn recorder(&self) -> Recorder {
        Recorder(self.calls.clone())
    }

    /// Adds a gate listener's counters to `/metrics`.
    pub(crate) fn add_gate(&self, transport: Transport, stats: ListenerStats) {
        self.gates.lock().push((transport, stats));
    }

    /// The gate families: connections, failed handshakes, pending handshakes, by transport.
    fn encode_gates(&self, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let gates = self.gates.lock().clone();
        let mut by_transport: Vec<(String, [u64; 3])> = Vec::new();
        for (t, s) in &gates {
            let name = t.to_string();
            let row = [
                s.accepted(),
                s.handshake_failures(),
                s.pending_handshakes() as u64,
            ];
            match by_transport.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => (0..3).for_each(|i| sum[i] += row[i]),
                None => by_transport.push((name, row)),
            }
        }
        let families = [
            (
                "gate_connections",
                "Client connections accepted by the gate, by transport.",
                MetricType::Counter,
            ),
            (
                "gate_handshake_failures",
                "Client handshakes that failed, by transport.",
                MetricType::Counter,
            ),
            (
                "gate_pending_handshakes",
                "Client handshakes in progress, by transport.",
                MetricType::Gauge,
            ),
        ];
        for (i, (name, help, kind)) in families.into_iter().enumerate() {
            let mut fam = enc.encode_descriptor(name, help, None, kind)?;
            for (transport, row) in &by_transport {
                let labels = [("transport", transport.as_str())];
                let m = fam.encode_family(&labels)?;
                match kind {
                    MetricType::Gauge => ConstGauge::new(row[i] as i64).encode(m)?,
                    _ => ConstCounter::new(row[i]).encode(m)?,
                }
            }
        }
        Ok(())
    }
}

/// Serves the admin endpoints on `listener` until the node's links close (step 4
/// of stop): `/healthz` keeps answering `503` while the node drains.
pub(crate) async fn serve(node: Arc<NodeInner>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stop = node.links().clone();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "admin: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let node = node.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = stop.cancelled() => {}
                r = http::serve_one(stream, |path| route(&node, path)) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "admin: request failed");
                    }
                }
            }
        });
    }
}

/// The answer to a GET of `path`.
fn route(node: &Arc<NodeInner>, path: &str) -> Response {
    match path {
        "/" | "/index.html" => Response::ok("text/html; charset=utf-8", PAGE),
        "/metrics" => Response::ok(exposition::CONTENT_TYPE, exposition::render(node)),
        "/healthz" if node.running().is_some() && !node.is_stopping() => {
            Response::text(200, "OK", "ok\n")
        }
        "/healthz" => Response::text(503, "Service Unavailable", "draining\n"),
        "/api/cluster" => Response::ok("application/json", cluster::render(node).to_string()),
        _ => Response::text(404, "Not Found", "not found\n"),
    }
}
