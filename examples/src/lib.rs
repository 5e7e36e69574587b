//! Shared helpers of the example programs.

use std::time::Duration;

use clustergo::membership::Member;
use clustergo::{Addr, LogicAddr};
use tokio::net::TcpListener;

/// Logs to stderr at `info` (override with `RUST_LOG`), so stdout shows only what
/// the example prints.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
}

/// Binds a fresh loopback port for the node at `logic` and returns the listener
/// with the member entry to publish.
pub async fn bind_member(logic: &str, export: bool) -> std::io::Result<(TcpListener, Member)> {
    let logic: LogicAddr = logic
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let member = Member {
        addr: Addr::new(logic, listener.local_addr()?),
        export,
        available: true,
    };
    Ok((listener, member))
}

/// Runs `fut`, turning a timeout into an error message.
pub async fn within<T>(
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| format!("{what}: no result within {limit:?}"))
}
