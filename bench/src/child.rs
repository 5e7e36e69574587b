//! Child processes: the bench binary re-executed with `--child <what> ..`.
//!
//! Memory figures need a fresh process each (memory freed by an earlier run would be
//! reused and hide growth), and the multi-process scale workload needs processes of
//! its own. A child prints one JSON line on stdout as its last line and exits; the
//! parent reads it, bounded by a timeout.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The first argument that makes the binary a child.
pub(crate) const FLAG: &str = "--child";

/// Starts `bench --child args..` with piped stdin and stdout (stderr inherited, for
/// its progress and errors). The child is killed if its handle is dropped.
pub(crate) fn spawn(args: &[String]) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    Command::new(exe)
        .arg(FLAG)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn child {args:?}: {e}"))
}

/// Runs a child to its end and parses the last line it printed.
pub(crate) async fn run<T: DeserializeOwned>(
    args: &[String],
    limit: Duration,
) -> Result<T, String> {
    let mut child = spawn(args)?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let read = async {
        let mut lines = BufReader::new(stdout).lines();
        let mut last = None;
        while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
            last = Some(line);
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("child {args:?} failed: {status}"));
        }
        let last = last.ok_or_else(|| format!("child {args:?} printed nothing"))?;
        serde_json::from_str(&last).map_err(|e| format!("child {args:?} printed {last:?}: {e}"))
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| format!("child {args:?} timed out after {limit:?}"))?
}

/// Prints `value` as the child's result line.
pub(crate) fn print<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string(value).expect("plain data serializes")
    );
}
