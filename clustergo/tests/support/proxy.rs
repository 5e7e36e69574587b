//! A loopback TCP proxy that can be frozen: it stops forwarding both ways but keeps
//! every socket open, as a partition or a frozen host looks to the nodes.

use std::net::SocketAddr;
use std::time::Duration;

use clustergo::{Config, Node};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub struct Proxy {
    pub addr: SocketAddr,
    frozen: CancellationToken,
    _tasks: JoinSet<()>,
}

impl Proxy {
    /// Forwards every connection made to [`Proxy::addr`] to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let f = frozen.clone();
        tasks.spawn(async move {
            let mut pumps = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                pumps.spawn(pump(ri, wo, f.clone()));
                pumps.spawn(pump(ro, wi, f.clone()));
            }
        });
        Proxy {
            addr,
            frozen,
            _tasks: tasks,
        }
    }

    /// Stops forwarding, for good; the sockets stay open.
    pub fn freeze(&self) {
        self.frozen.cancel();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: CancellationToken,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            biased;
            _ = frozen.cancelled() => break,
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
        };
        if frozen.is_cancelled() || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Frozen: hold both halves open, forwarding nothing.
    std::future::pending::<()>().await;
    drop((from, to));
}

/// Starts `node` as `logic`, listed in membership at a proxy in front of its
/// listener: links and sessions other nodes make to it go through the proxy.
pub async fn start_behind_proxy(c: &crate::support::Cluster, node: &Node, logic: &str) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(listener.local_addr().unwrap()).await;
    c.m.put_now(crate::support::member(logic, proxy.addr, false));
    node.start_on(listener, c.m.clone(), crate::support::addr(logic))
        .await
        .unwrap();
    c.add(node.clone()).await;
    proxy
}

/// Keepalive settings short enough for tests: an interval of 50 ms, dead after 300 ms.
pub fn fast_keepalive(config: Config) -> Config {
    Config {
        keepalive_interval: Duration::from_millis(50),
        keepalive_timeout: Duration::from_millis(300),
        ..config
    }
}
