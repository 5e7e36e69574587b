//! TCP keepalive on the Go dialect's sockets: the Go side has no keepalive frames
//! and relies on Go's default TCP keepalive (15 s idle, 15 s between probes) to
//! notice a peer that vanished without closing. Without it a link to a crashed host
//! would look up until a write failed, and the restarted node would be refused as
//! a duplicate meanwhile (the seed's rule).

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Go's `net.Dialer`/`ListenConfig` default.
pub(crate) const GO_TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// Turns TCP keepalive on as Go does; a failure is logged, not fatal.
pub(crate) fn enable(tcp: &TcpStream) {
    let ka = TcpKeepalive::new()
        .with_time(GO_TCP_KEEPALIVE)
        .with_interval(GO_TCP_KEEPALIVE);
    if let Err(e) = SockRef::from(tcp).set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "cannot turn TCP keepalive on");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn on_like_go() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        enable(&tcp);
        let sock = SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        #[cfg(target_os = "linux")]
        assert_eq!(sock.tcp_keepalive_time().unwrap(), GO_TCP_KEEPALIVE);
    }
}
