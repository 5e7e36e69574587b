//! Call statistics kept by the admin listener's interceptors: per method (for
//! `/metrics`) and per peer (for `/api/cluster`). Plain atomics in fixed buckets:
//! recording a call is a map read plus a few relaxed adds, no allocation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use crate::addr::LogicAddr;
use crate::rpc::{ClientInterceptor, ErrorCode, RpcError, ServerInterceptor};

/// Upper bounds of the latency buckets, in seconds (the last bucket is `+Inf`).
pub(crate) const BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Outcome codes, indexed by their wire value.
pub(crate) const CODES: [&str; 11] = [
    "ok",
    "invalid_method",
    "timeout",
    "cancelled",
    "method",
    "other",
    "service_unavailable",
    "disconnected",
    "busy",
    "unreachable",
    "codec",
];

/// Distinct methods (and peers) tracked; past it they count under one "other" entry,
/// so a caller inventing names cannot grow memory.
const MAX_KEYS: usize = 1024;

/// A latency histogram of fixed buckets.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Latency {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = BOUNDS.partition_point(|b| *b < secs);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Per-bucket counts (not cumulative), the last one `+Inf`.
    pub(crate) fn counts(&self) -> [u64; BOUNDS.len() + 1] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    /// Sum of the observed latencies, in seconds.
    pub(crate) fn sum_secs(&self) -> f64 {
        self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// Calls of one method (or to one peer): outcomes and latency.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    codes: [AtomicU64; CODES.len()],
    pub(crate) latency: Latency,
}

impl CallStats {
    fn record(&self, code: ErrorCode, elapsed: Duration) {
        let i = (code as usize).min(CODES.len() - 1);
        self.codes[i].fetch_add(1, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }

    /// Calls per outcome code, indexed like [`CODES`].
    pub(crate) fn codes(&self) -> [u64; CODES.len()] {
        std::array::from_fn(|i| self.codes[i].load(Ordering::Relaxed))
    }
}

/// Stats keyed by method name or peer, created on first use and bounded.
#[derive(Debug)]
pub(crate) struct Keyed<K> {
    map: RwLock<HashMap<K, Arc<CallStats>>>,
    overflow: Arc<CallStats>,
}

impl<K> Default for Keyed<K> {
    fn default() -> Self {
        Self {
            map: RwLock::default(),
            overflow: Arc::default(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    /// The stats of `key`; a read lock and a lookup once the key is known.
    fn get<Q>(&self, key: &Q, owned: impl FnOnce() -> K) -> Arc<CallStats>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if let Some(s) = self.map.read().get(key) {
            return s.clone();
        }
        let mut map = self.map.write();
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            return self.overflow.clone();
        }
        map.entry(owned()).or_default().clone()
    }

    /// Every key with its stats, for a scrape.
    pub(crate) fn snapshot(&self) -> Vec<(K, Arc<CallStats>)> {
        self.map
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The entry of keys past the cap.
    pub(crate) fn overflow(&self) -> &CallStats {
        &self.overflow
    }
}

/// Everything the admin interceptors record.
#[derive(Debug, Default)]
pub(crate) struct CallMetrics {
    /// Outgoing calls by method.
    pub(crate) calls: Keyed<Box<str>>,
    /// Served requests by method (handler latency).
    pub(crate) handled: Keyed<Box<str>>,
    /// Outgoing calls by target node.
    pub(crate) peers: Keyed<LogicAddr>,
    /// Outgoing calls, all together: the page's plot.
    pub(crate) total: CallStats,
}

impl CallMetrics {
    fn call_ended(&self, to: LogicAddr, method: &str, code: ErrorCode, elapsed: Duration) {
        self.calls
            .get(method, || method.into())
            .record(code, elapsed);
        self.peers.get(&to, || to).record(code, elapsed);
        self.total.record(code, elapsed);
    }
}

/// The interceptor that feeds [`CallMetrics`] (installed when the admin listener is on).
#[derive(Debug, Clone)]
pub(crate) struct Recorder(pub(crate) Arc<CallMetrics>);

impl ClientInterceptor for Recorder {
    fn after_reply(
        &self,
        to: LogicAddr,
        method: &str,
        result: Result<(), &RpcError>,
        elapsed: Duration,
    ) {
        let code = result.err().map_or(ErrorCode::Ok, RpcError::code);
        self.0.call_ended(to, method, code, elapsed);
    }
}

impl ServerInterceptor for Recorder {
    fn after_reply(&self, _from: LogicAddr, method: &str, code: ErrorCode, elapsed: Duration) {
        self.0
            .handled
            .get(method, || method.into())
            .record(code, elapsed);
    }
}

/// The latency under which a share `q` (0..=1) of the calls fall, as the upper
/// bound of the bucket that holds it (`None` without calls; the last finite bound
/// when it falls in `+Inf`).
pub(crate) fn percentile(counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return Some(BOUNDS[i.min(BOUNDS.len() - 1)]);
        }
    }
    Some(BOUNDS[BOUNDS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_upper_bounds() {
        let mut counts = [0u64; BOUNDS.len() + 1];
        assert_eq!(percentile(&counts, 0.5), None, "no calls");
        counts[3] = 50; // 1 ms
        counts[6] = 49; // 10 ms
        counts[BOUNDS.len()] = 1; // +Inf
        let cases = [
            (0.0, 0.001),
            (0.5, 0.001),
            (0.51, 0.01),
            (0.99, 0.01),
            (1.0, 10.0),
        ];
        for (q, want) in cases {
            assert_eq!(percentile(&counts, q), Some(want), "q = {q}");
        }
    }

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let l = Latency::default();
        let cases = [
            (Duration::from_micros(50), 0),
            (Duration::from_micros(100), 0),
            (Duration::from_micros(101), 1),
            (Duration::from_millis(30), 8),
            (Duration::from_secs(60), BOUNDS.len()),
        ];
        for (d, _) in cases {
            l.observe(d);
        }
        let counts = l.counts();
        for (d, bucket) in cases {
            assert!(counts[bucket] >= 1, "{d:?} in bucket {bucket}: {counts:?}");
        }
        assert_eq!(counts.iter().sum::<u64>(), cases.len() as u64);
    }

    #[test]
    fn keys_past_the_cap_share_one_entry() {
        let k: Keyed<Box<str>> = Keyed::default();
        for i in 0..MAX_KEYS + 10 {
            let name = format!("m{i}");
            k.get(name.as_str(), || name.as_str().into())
                .record(ErrorCode::Ok, Duration::ZERO);
        }
        assert_eq!(k.snapshot().len(), MAX_KEYS);
        assert_eq!(k.overflow().codes()[0], 10);
    }

    #[test]
    fn codes_match_their_wire_values() {
        for (i, name) in CODES.iter().enumerate() {
            let code = ErrorCode::from_u16(i as u16);
            assert_eq!(code as usize, i, "{name}");
        }
    }
}
