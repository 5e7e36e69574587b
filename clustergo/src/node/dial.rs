//! The one dial path: connect, wrap in TLS if configured, and authenticate, for
//! frame links and stream sessions.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::NodeInner;
use crate::addr::LogicAddr;
use crate::conn::Conn;
use crate::handshake::{self, AcceptorId, ConnKind, HandshakeError, Hello, Refusal};

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
        let mut stream = match &self.config.tls {
            None => Conn::Plain(tcp),
            Some(tls) => tokio::time::timeout(timeout, tls.connect(remote, tcp))
                .await
                .map_err(|_| HandshakeError::Timeout)?
                .map_err(HandshakeError::Tls)?,
        };
        let hello = Hello {
            kind,
            logic: run.local,
            incarnation: self.incarnation,
            listen: run.listen,
        };
        let id = handshake::dial_any(&mut stream, &self.config.secrets(), &hello, remote, timeout)
            .await?;
        Ok((stream, id))
    }
}
