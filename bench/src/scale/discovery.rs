//! The discovery server with 1 … 1000 subscribed clients (in this process, over
//! loopback TCP): the time from one change at the server to its arrival at every
//! subscriber.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clustergo::Addr;
use clustergo::membership::{DiscoveryServer, DiscoveryServerConfig, Member, Membership};

use super::{ScaleSizes, Series, in_unit, median};
use crate::memory::{addr, fit_items};
use crate::workload::Arrivals;

/// Subscribers connecting at once.
const CONNECT_BATCH: usize = 50;

pub(crate) async fn run(s: ScaleSizes) -> Result<Vec<Series>, String> {
    let mut fanout = Series::new(
        "discovery: one change to all subscribers",
        "ms",
        "subscribers",
    );
    let mut notes = Vec::new();
    for &want in s.subscribers {
        // Two descriptors per subscriber: both ends are in this process.
        let (n, short) = fit_items(want, 2);
        notes.extend(short);
        fanout.points.push((n, one_size(n, s.changes).await?));
    }
    fanout.note = Some(
        std::iter::once(format!("median of {} changes (one put each)", s.changes))
            .chain(notes)
            .collect::<Vec<_>>()
            .join("; "),
    );
    Ok(vec![fanout])
}

/// Median milliseconds from a put to its arrival at all `n` subscribers.
async fn one_size(n: usize, changes: usize) -> Result<f64, String> {
    let member = |port: u16| -> Result<Member, String> {
        let net = format!("127.0.0.1:{port}").parse().expect("an address");
        Ok(Member::new(Addr::new(addr(1, 1, 1)?, net)))
    };
    let config = DiscoveryServerConfig {
        max_connections: n + 16,
        ..DiscoveryServerConfig::default()
    };
    let server = DiscoveryServer::bind_with("127.0.0.1:0", [member(1)?], config)
        .await
        .map_err(|e| format!("bind discovery server: {e}"))?;
    let arrivals = Arc::new(Arrivals::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut subscribed = 0;
    while subscribed < n {
        let batch = CONNECT_BATCH.min(n - subscribed);
        let subs = (0..batch).map(|_| {
            let client = server.client();
            async move { client.subscribe().await }
        });
        for r in futures::future::join_all(subs).await {
            let mut changes = r.map_err(|e| format!("subscribe: {e}"))?;
            let arrivals = arrivals.clone();
            tasks.spawn(async move {
                while changes.recv().await.is_some() {
                    arrivals.arrived(1, true);
                }
            });
        }
        subscribed += batch;
    }
    // Every subscriber's first change is the snapshot.
    arrivals.wait_for(n as u64).await?;
    let mut times = Vec::with_capacity(changes);
    for i in 0..changes {
        let t = Instant::now();
        server.put(member(2 + i as u16)?);
        arrivals.wait_for((n * (i + 2)) as u64).await?;
        times.push(in_unit(t.elapsed(), "ms"));
        // Let the subscribers' tasks go idle before the next change.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.shutdown().await;
    tasks.shutdown().await;
    Ok(median(&mut times))
}
