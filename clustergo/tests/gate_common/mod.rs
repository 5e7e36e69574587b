//! Helpers shared by the `gate_*` integration tests: bounded waits, an echo server that
//! reports how each of its connections ended, and packet patterns.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clustergo::gate::{ClientConn, GateConfig, GateError, Listener, ListenerStats, Transport};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound for any single wait in these tests.
pub const STEP: Duration = Duration::from_secs(15);

/// Packet that makes the echo server reply `bye` and close the connection itself.
pub const CLOSE_ME: &[u8] = b"please close";
/// The echo server's last packet before it closes on [`CLOSE_ME`].
pub const BYE: &[u8] = b"bye";

/// Awaits `f`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(STEP, f).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// How one server-side connection ended: `None` = clean close seen as `Ok(None)`.
pub type Ending = Option<GateError>;

/// An echo server on loopback.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub stats: ListenerStats,
    /// One entry per connection, when it ends.
    pub endings: mpsc::UnboundedReceiver<Ending>,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    pub async fn start(transport: Transport, config: GateConfig) -> Self {
        let mut listener = Listener::bind(transport, "127.0.0.1:0", config)
            .await
            .expect("bind gate listener");
        let addr = listener.local_addr();
        let stats = listener.stats();
        let (tx, endings) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok(conn) = listener.accept().await {
                tokio::spawn(echo(conn, tx.clone()));
            }
        });
        Self {
            addr,
            stats,
            endings,
            task,
        }
    }

    /// The next connection's ending.
    pub async fn next_ending(&mut self) -> Ending {
        within("a server connection to end", self.endings.recv())
            .await
            .expect("echo server stopped")
    }
}

/// Echoes every packet; on [`CLOSE_ME`] sends [`BYE`] and closes.
async fn echo(mut conn: ClientConn, endings: mpsc::UnboundedSender<Ending>) {
    loop {
        match conn.recv().await {
            Ok(Some(packet)) if packet == CLOSE_ME => {
                conn.send(Bytes::from_static(BYE)).await.expect("send bye");
                conn.close().await.expect("server close");
                let _ = endings.send(None);
                return;
            }
            Ok(Some(packet)) => {
                if conn.send(packet).await.is_err() {
                    // Our writer stopped: the peer is gone; the reader will tell how.
                    continue;
                }
            }
            Ok(None) => {
                let _ = endings.send(None);
                return;
            }
            Err(err) => {
                let _ = endings.send(Some(err));
                return;
            }
        }
    }
}

/// A recognisable packet: `len` bytes derived from `seed`.
pub fn pattern(seed: u32, len: usize) -> Bytes {
    let mut v = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(len as u32);
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    Bytes::from(v)
}
