//! Optional TLS under the discovery protocol: the TCP stream is wrapped before the
//! secret handshake, so the handshake, the member list and every change travel
//! encrypted and integrity-protected; the handshake still proves the cluster secret
//! inside TLS (TLS proves the server's certificate, the secret proves membership of
//! the cluster).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream the discovery protocol runs on: plain TCP or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection's stream after the optional TLS handshake.
pub(crate) type Stream = Box<dyn Io>;

/// Server side: TLS when `config` is set, within `timeout`.
pub(crate) async fn accept(
    stream: TcpStream,
    config: Option<&Arc<rustls::ServerConfig>>,
    timeout: Duration,
) -> Result<Stream, String> {
    let Some(config) = config else {
        return Ok(Box::new(stream));
    };
    let tls = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsAcceptor::from(config.clone()).accept(stream),
    )
    .await
    .map_err(|_| format!("TLS handshake timed out after {timeout:?}"))?
    .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(Box::new(tls))
}

/// Client side: TLS when `config` is set (the server's certificate must name
/// `server_name`), within `timeout`.
pub(crate) async fn connect(
    stream: TcpStream,
    config: Option<&(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    timeout: Duration,
) -> Result<Stream, String> {
    let Some((config, name)) = config else {
        return Ok(Box::new(stream));
    };
    let tls = tokio::time::timeout(
        timeout,
        tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), stream),
    )
    .await
    .map_err(|_| format!("TLS handshake timed out after {timeout:?}"))?
    .map_err(|e| format!("TLS handshake: {e}"))?;
    Ok(Box::new(tls))
}

/// The host part of `"host:port"` (or `"[v6]:port"`) as a TLS server name.
pub(crate) fn server_name(server: &str) -> Result<ServerName<'static>, String> {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host:?} is not a TLS server name: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_addresses() {
        for (server, want) in [
            ("localhost:7000", Some("localhost")),
            ("127.0.0.1:7000", Some("127.0.0.1")),
            ("[::1]:7000", Some("::1")),
            ("discovery.example", Some("discovery.example")),
            ("bad name:1", None),
        ] {
            let got = server_name(server).ok().map(|n| n.to_str().into_owned());
            assert_eq!(got.as_deref(), want, "{server}");
        }
    }
}
