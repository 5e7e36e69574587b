//! The one dial path: connect and authenticate, for frame links and stream sessions.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::NodeInner;
use crate::addr::LogicAddr;
use crate::handshake::{self, AcceptorId, ConnKind, HandshakeError, Hello, Refusal};

impl NodeInner {
    /// Connects to `remote` at `net` and runs the dialer's side of the handshake for a
    /// connection of `kind`, each step within `handshake_timeout`.
    pub(crate) async fn dial(
        &self,
        kind: ConnKind,
        remote: LogicAddr,
        net: SocketAddr,
    ) -> Result<(TcpStream, AcceptorId), HandshakeError> {
        let run = self
            .running()
            .ok_or(HandshakeError::Refused(Refusal::Stopping))?;
        let timeout = self.config.handshake_timeout;
        let mut stream = tokio::time::timeout(timeout, TcpStream::connect(net))
            .await
            .map_err(|_| HandshakeError::Timeout)??;
        stream.set_nodelay(true)?;
        let hello = Hello {
            kind,
            logic: run.local,
            incarnation: self.incarnation,
            listen: run.listen,
        };
        let id = handshake::dial(
            &mut stream,
            self.config.secret.expose(),
            &hello,
            remote,
            timeout,
        )
        .await?;
        Ok((stream, id))
    }
}
