//! Helpers shared by the membership integration tests: members, bounded waits,
//! free loopback ports, and guards for external server processes.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clustergo::Addr;
use clustergo::membership::{Member, MembershipChange};
use tokio::sync::mpsc::UnboundedReceiver;

/// How long any single expected event may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Logs to the test output when `RUST_LOG` is set.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// An available, non-exported member listening on `127.0.0.1:port`.
pub(crate) fn member(logic: &str, port: u16) -> Member {
    Member::new(Addr::new(
        logic.parse().unwrap(),
        format!("127.0.0.1:{port}").parse().unwrap(),
    ))
}

/// Sorts a change's lists by logical address, so tests can compare them.
pub(crate) fn sorted(mut change: MembershipChange) -> MembershipChange {
    for list in [&mut change.added, &mut change.removed, &mut change.updated] {
        list.sort_by_key(|m| m.logic());
    }
    change
}

/// A change with the given lists.
pub(crate) fn change(
    added: Vec<Member>,
    removed: Vec<Member>,
    updated: Vec<Member>,
) -> MembershipChange {
    sorted(MembershipChange {
        added,
        removed,
        updated,
    })
}

/// The next change, sorted; fails the test after [`WAIT`] or if the stream ended.
pub(crate) async fn next_change(rx: &mut UnboundedReceiver<MembershipChange>) -> MembershipChange {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(change)) => sorted(change),
        Ok(None) => panic!("membership stream ended"),
        Err(_) => panic!("no membership change within {WAIT:?}"),
    }
}

/// Merges changes until the accumulated change equals `want` (backends may split
/// one logical change into several), failing after [`WAIT`].
pub(crate) async fn expect_change(
    rx: &mut UnboundedReceiver<MembershipChange>,
    want: MembershipChange,
) {
    let want = sorted(want);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = MembershipChange::default();
    loop {
        let next = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(c)) => c,
            Ok(None) => panic!("membership stream ended; got {got:?}, want {want:?}"),
            Err(_) => panic!("timed out; got {got:?}, want {want:?}"),
        };
        got.added.extend(next.added);
        got.removed.extend(next.removed);
        got.updated.extend(next.updated);
        got = sorted(got);
        if got == want {
            return;
        }
        let too_many = got.added.len() > want.added.len()
            || got.removed.len() > want.removed.len()
            || got.updated.len() > want.updated.len();
        assert!(!too_many, "unexpected change: got {got:?}, want {want:?}");
    }
}

/// A loopback port that was free a moment ago (bind port 0, read it, release it).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The path of an external server binary, or a test failure saying what to install.
pub(crate) fn require_binary(name: &str, install: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` not found on PATH: this test starts a real {name}; install it with `{install}`"
    );
}

/// A child process killed (and reaped) when the guard is dropped, with the
/// temporary directory it uses.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    child: Child,
    _dir: Option<tempfile::TempDir>,
}

impl ChildGuard {
    /// Spawns `command` with output discarded.
    pub(crate) fn spawn(
        mut command: Command,
        dir: Option<tempfile::TempDir>,
    ) -> std::io::Result<Self> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self { child, _dir: dir })
    }

    /// Whether the process has exited.
    pub(crate) fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process now and waits for it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `ready` every 50 ms until it returns true, for at most `limit`.
pub(crate) async fn poll_until(limit: Duration, mut ready: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if ready().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
