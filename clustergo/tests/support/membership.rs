//! Helpers of the membership integration tests (included with `#[path]`):
//! members, bounded waits, free loopback ports, and guards for external servers.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clustergo::Addr;
use clustergo::membership::{Member, Membership, MembershipAdmin, MembershipChange};
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

/// The scenario every networked backend passes. `admin` puts 1.1.1 and 1.2.1; two
/// subscribers made by `subscriber` get both as their first change, then each of a
/// new member, an update (new port, exported) and a removal exactly once; an
/// identical put and the removal of an absent member publish nothing. Returns the
/// two subscriptions and the updated member (still listed), for backend-specific
/// steps after it.
pub(crate) async fn snapshot_then_changes<M: Membership>(
    admin: &impl MembershipAdmin,
    subscriber: impl Fn() -> M,
) -> ([UnboundedReceiver<MembershipChange>; 2], Member) {
    admin.put(member("1.1.1", 9001)).await.unwrap();
    admin.put(member("1.2.1", 9002)).await.unwrap();
    let mut subs = [
        subscriber().subscribe().await.unwrap(),
        subscriber().subscribe().await.unwrap(),
    ];
    for rx in &mut subs {
        assert_eq!(
            next_change(rx).await,
            change(
                vec![member("1.1.1", 9001), member("1.2.1", 9002)],
                vec![],
                vec![]
            )
        );
    }

    admin.put(member("1.3.1", 9003)).await.unwrap();
    for rx in &mut subs {
        assert_eq!(
            next_change(rx).await,
            change(vec![member("1.3.1", 9003)], vec![], vec![])
        );
    }

    let mut updated = member("1.3.1", 9013);
    updated.export = true;
    admin.put(updated.clone()).await.unwrap();
    for rx in &mut subs {
        assert_eq!(
            next_change(rx).await,
            change(vec![], vec![], vec![updated.clone()])
        );
    }

    // The next change seen is the real removal.
    admin.put(updated.clone()).await.unwrap();
    admin.remove("1.9.9".parse().unwrap()).await.unwrap();
    admin.remove("1.1.1".parse().unwrap()).await.unwrap();
    for rx in &mut subs {
        assert_eq!(
            next_change(rx).await,
            change(vec![], vec![member("1.1.1", 9001)], vec![])
        );
    }
    (subs, updated)
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

/// Sends `request` to `127.0.0.1:port` and reports whether `expect` appears in the
/// answer within `limit`.
async fn answers(port: u16, request: &[u8], expect: &[u8], limit: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        conn.write_all(request).await?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(false);
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(expect.len()).any(|w| w == expect) {
                return Ok(true);
            }
        }
    };
    matches!(tokio::time::timeout(limit, attempt).await, Ok(Ok(true)))
}

/// A `redis-server` on a loopback port, killed on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    pub(crate) port: u16,
    guard: ChildGuard,
}

impl RedisServer {
    /// Starts redis on a free port (retrying other ports if one is taken meanwhile).
    pub(crate) async fn start() -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::start_on(free_port()).await {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    /// Starts redis on `port`, waiting (bounded) until it answers PING.
    pub(crate) async fn start_on(port: u16) -> Result<Self, String> {
        let bin = require_binary("redis-server", "apt-get install -y redis-server");
        let mut cmd = Command::new(bin);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"]);
        let mut guard = ChildGuard::spawn(cmd, None).map_err(|e| e.to_string())?;
        let ready = poll_until(Duration::from_secs(5), async || {
            answers(port, b"PING\r\n", b"+PONG", Duration::from_millis(500)).await
        })
        .await;
        if ready {
            Ok(Self { port, guard })
        } else if guard.exited() {
            Err(format!("redis-server exited at start on port {port}"))
        } else {
            Err(format!("redis-server on port {port} not ready within 5 s"))
        }
    }

    /// The server's URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server now.
    pub(crate) fn kill(&mut self) {
        self.guard.kill();
    }
}

/// A single-member `etcd` on loopback ports, with its data in a temporary
/// directory; killed on drop.
#[derive(Debug)]
pub(crate) struct EtcdServer {
    pub(crate) client_port: u16,
    peer_port: u16,
    guard: ChildGuard,
}

impl EtcdServer {
    /// Starts etcd on free ports (retrying other ports if one is taken meanwhile).
    pub(crate) async fn start() -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::start_on(free_port(), free_port()).await {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("could not start etcd: {last}");
    }

    async fn start_on(client_port: u16, peer_port: u16) -> Result<Self, String> {
        let bin = require_binary("etcd", "apt-get install -y etcd-server etcd-client");
        if client_port == peer_port {
            return Err("client and peer port collided".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(bin);
        cmd.args(["--name", "n1"])
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("n1={peer_url}")])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--logger=zap", "--log-level=error"])
            .args(["--heartbeat-interval=10", "--election-timeout=100"]);
        let mut guard = ChildGuard::spawn(cmd, Some(dir)).map_err(|e| e.to_string())?;
        let request = b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let ready = poll_until(Duration::from_secs(10), async || {
            let healthy = br#""health":"true""#;
            answers(client_port, request, healthy, Duration::from_millis(500)).await
        })
        .await;
        if ready {
            Ok(Self {
                client_port,
                peer_port,
                guard,
            })
        } else if guard.exited() {
            Err(format!(
                "etcd exited at start on ports {client_port}/{peer_port}"
            ))
        } else {
            Err(format!(
                "etcd on port {client_port} not healthy within 10 s"
            ))
        }
    }

    /// Kills etcd and starts a fresh one (empty data) on the same ports, retrying
    /// for a bounded time while the old ports are released.
    pub(crate) async fn restart_empty(&mut self) {
        self.guard.kill();
        let mut last = String::new();
        for _ in 0..20 {
            match Self::start_on(self.client_port, self.peer_port).await {
                Ok(server) => {
                    *self = server;
                    return;
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not restart etcd: {last}");
    }

    /// The client endpoint.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}
