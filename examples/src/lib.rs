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

/// A node in the dialect the `CLUSTERGO_DIALECT` environment variable names: `go`
/// for the Go seed's (to run the example beside Go clustergo nodes), unset or
/// anything else for the native one.
pub fn node_from_env() -> clustergo::Node {
    let dialect = match std::env::var("CLUSTERGO_DIALECT").as_deref() {
        Ok("go") => clustergo::Dialect::go_seed(),
        _ => clustergo::Dialect::Native,
    };
    clustergo::Node::with_config(clustergo::Config {
        dialect,
        ..clustergo::Config::default()
    })
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

/// Parses a duration such as `30s`, `5m`, `1h`, `500ms` or `90` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: want a number with s, m, h or ms"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    };
    secs.map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: want a number with s, m, h or ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let cases = [
            ("90", Ok(Duration::from_secs(90))),
            ("30s", Ok(Duration::from_secs(30))),
            ("5m", Ok(Duration::from_secs(300))),
            ("1h", Ok(Duration::from_secs(3600))),
            ("250ms", Ok(Duration::from_millis(250))),
            ("", Err(())),
            ("s", Err(())),
            ("3d", Err(())),
            ("-1s", Err(())),
            ("99999999999999999999h", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text).map_err(|_| ()), want, "{text:?}");
        }
    }
}
