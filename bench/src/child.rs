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
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines, Stdin};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

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

/// A child the parent talks to in lines: it says things on its stdin and reads
/// JSON lines from its stdout, each wait bounded.
#[derive(Debug)]
pub(crate) struct Talk {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// How long a talking child may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

impl Talk {
    /// Starts `bench --child args..`.
    pub(crate) fn spawn(args: &[String]) -> Result<Self, String> {
        let mut child = spawn(args)?;
        let stdin = child.stdin.take().ok_or("child has no stdin")?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        Ok(Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The child's next line, parsed; `what` names it in errors.
    pub(crate) async fn expect<T: DeserializeOwned>(&mut self, what: &str) -> Result<T, String> {
        let line = tokio::time::timeout(ANSWER_TIMEOUT, self.lines.next_line())
            .await
            .map_err(|_| format!("a child did not send {what} within {ANSWER_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("a child ended before {what}"))?;
        serde_json::from_str(&line).map_err(|e| format!("child said {line:?}: {e}"))
    }

    /// Says `line` to the child.
    pub(crate) async fn say(&mut self, line: &str) -> Result<(), String> {
        let line = format!("{line}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("say {line:?}: {e}"))
    }

    /// Ends the child's stdin and waits (bounded) for it to exit.
    pub(crate) async fn end(self) {
        let Self {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    }
}

/// A child's side of a [`Talk`]: the parent's lines on stdin.
#[derive(Debug)]
pub(crate) struct Parent {
    lines: Lines<BufReader<Stdin>>,
}

impl Parent {
    pub(crate) fn new() -> Self {
        Self {
            lines: BufReader::new(tokio::io::stdin()).lines(),
        }
    }

    /// Waits for the parent to say `want`.
    pub(crate) async fn expect(&mut self, want: &str) -> Result<(), String> {
        match self.lines.next_line().await {
            Ok(Some(l)) if l == want => Ok(()),
            other => Err(format!("expected {want:?} from the parent, got {other:?}")),
        }
    }

    /// Waits until the parent ends its talk (closes stdin).
    pub(crate) async fn wait_end(&mut self) {
        while let Ok(Some(_)) = self.lines.next_line().await {}
    }
}
