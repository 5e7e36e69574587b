//! The one dial path: connect, wrap in TLS if configured, and authenticate, for
//! frame links and stream sessions, in the node's dialect.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::{Dialect, NodeInner};
use crate::addr::LogicAddr;
use crate::conn::Conn;
use crate::handshake::{self, AcceptorId, ConnKind, HandshakeError, Hello, Refusal};

/// The incarnation a Go-dialect link records for its remote: the Go handshake has
/// none, so any second connection from a linked Go node is a duplicate (the seed's
/// rule) until the link is lost.
#[cfg(feature = "go-compat")]
pub(crate) const GO_INCARNATION: u64 = 0;

impl NodeInner {
    /// Connects to `remote` at `net`, runs TLS (requiring `remote`'s certificate)
    /// when configured, then the dialer's side of the handshake for a connection of
    /// `kind`, each step within `handshake_timeout`.
    pub(crate) async fn dial(
        &self,
        kind: ConnKind,
        remote: LogicAddr,
        net: SocketAddr,
    ) -> Result<(Conn, AcceptorId), HandshakeError> {
        let run = self
            .running()
            .ok_or(HandshakeError::Refused(Refusal::Stopping))?;
        let timeout = self.config.handshake_timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(net))
            .await
            .map_err(|_| HandshakeError::Timeout)??;
        tcp.set_nodelay(true)?;
        self.config.dialect.prepare(&tcp);
        let mut stream = match self.config.link_tls() {
            Some(tls) => tokio::time::timeout(timeout, tls.connect(remote, tcp))
                .await
                .map_err(|_| HandshakeError::Timeout)?
                .map_err(HandshakeError::Tls)?,
            None => Conn::Plain(tcp),
        };
        match &self.config.dialect {
            Dialect::Native => {
                let hello = Hello {
                    kind,
                    logic: run.local,
                    incarnation: self.incarnation,
                    listen: run.listen,
                };
                let secrets = self.config.secrets();
                let id =
                    handshake::dial_any(&mut stream, &secrets, &hello, remote, timeout).await?;
                Ok((stream, id))
            }
            #[cfg(feature = "go-compat")]
            Dialect::GoSeed(go) => {
                let hello = crate::gocompat::GoHello {
                    logic: run.local,
                    net_addr: self.own_net_addr(run),
                    is_stream: kind == ConnKind::Streams,
                };
                let dial = crate::gocompat::handshake::dial(&mut stream, &go.key, &hello);
                tokio::time::timeout(timeout, dial)
                    .await
                    .map_err(|_| HandshakeError::Timeout)??;
                let id = AcceptorId {
                    logic: remote,
                    incarnation: GO_INCARNATION,
                };
                Ok((stream, id))
            }
        }
    }

    /// The address string a Go acceptor compares with its membership's: this
    /// node's own membership entry (what the Go side lists too).
    #[cfg(feature = "go-compat")]
    fn own_net_addr(&self, run: &super::Running) -> String {
        self.member_net(run.local).unwrap_or(run.listen).to_string()
    }
}
