//! TLS 1.3 for node links and stream sessions: rustls (`ring` provider) runs the
//! handshake (`handshake.rs`); the records after it are protected here
//! (`record.rs`, `io.rs`) with the keys rustls derived, as kernel TLS would.
//!
//! **Identity.** A node's certificate names its logical address as a DNS SAN:
//! `1.2.3` is `1-2-3.node.clustergo` ([`node_dns_name`]). A DNS name (not a URI
//! SAN) so that the ordinary WebPKI name check of rustls does the work on the
//! dialer's side, and any CA tooling can issue it.
//!
//! - The **dialer** asks for the name of the node it meant to reach: a server
//!   certificate for another address fails the TLS handshake.
//! - The **acceptor**, in mutual mode ([`NodeTls::new`]), requires a client
//!   certificate from a trusted CA and, after the secret handshake, checks that it
//!   names the logic address the dialer claims (refusal
//!   [`Refusal::BadCertificate`](crate::handshake::Refusal::BadCertificate)), on
//!   top of the membership check.
//!
//! The secret-based handshake (`handshake.rs`) still runs inside TLS: it carries the
//! hello claims (listen address, incarnation, connection kind) that the
//! certificate does not, it keeps a leaked certificate alone from being enough to
//! join (defence in depth), and in [`NodeTls::server_auth_only`] mode it is what
//! authenticates the dialer.
//!
//! **Cipher suite.** Links offer TLS 1.3's AES-128-GCM first (then AES-256-GCM and
//! ChaCha20-Poly1305, rustls's defaults). AES-128-GCM is the suite every TLS 1.3
//! implementation must support, with 128-bit security against every known
//! attack; it is the cheaper cipher (ring sealed it about 12 % faster than
//! AES-256-GCM here, BENCHMARKS.md), and a bulk stream over TLS spends most of its
//! extra CPU in the cipher. A cluster that must have 256-bit keys (e.g. CNSA) gets
//! no knob for it yet.
//!
//! **Rotation.** Several CA certificates may be trusted at once: add the new CA to
//! every node, reissue node certificates from it node by node, then drop the old CA.

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CipherSuite, ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

use crate::addr::LogicAddr;
use crate::conn::Conn;
use io::TlsConn;

pub(crate) mod aead;
mod handshake;
pub(crate) mod io;
pub(crate) mod record;

/// The DNS name a node's certificate must carry (as a subject alternative name)
/// for logic address `addr`: `1.2.3` → `1-2-3.node.clustergo`.
pub fn node_dns_name(addr: LogicAddr) -> String {
    format!(
        "{}-{}-{}.node.clustergo",
        addr.cluster(),
        addr.typ(),
        addr.server()
    )
}

fn server_name(addr: LogicAddr) -> ServerName<'static> {
    ServerName::try_from(node_dns_name(addr)).expect("node names are valid DNS names")
}

/// Why a [`NodeTls`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificates or key were rejected by rustls.
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
    /// No trusted CA certificate was given, or one could not be parsed.
    #[error("tls: bad CA bundle: {0}")]
    BadCa(String),
    /// PEM input could not be read.
    #[error("tls: bad PEM: {0}")]
    Pem(String),
}

/// A node's TLS settings: its certificate chain and key, and the CA certificates it
/// trusts (several, for rotation). Cheap to clone; `Debug` never prints the key.
#[derive(Clone)]
pub struct NodeTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    mutual: bool,
    leaf: CertificateDer<'static>,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("mutual", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Mutual TLS, the secure mode: each side presents its certificate and checks
    /// the other's against `trusted_cas` and the logic address it claims.
    pub fn new(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        trusted_cas: Vec<CertificateDer<'static>>,
    ) -> Result<Self, TlsError> {
        Self::build(cert_chain, key, trusted_cas, true)
    }

    /// Server authentication only: the dialer checks the acceptor's certificate, but
    /// presents none; the acceptor knows the dialer only by the cluster secret.
    /// Links are still encrypted and integrity-protected.
    pub fn server_auth_only(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        trusted_cas: Vec<CertificateDer<'static>>,
    ) -> Result<Self, TlsError> {
        Self::build(cert_chain, key, trusted_cas, false)
    }

    /// [`new`](Self::new) from PEM text: the node's chain (leaf first), its key,
    /// and the trusted CA bundle (one or more certificates).
    pub fn from_pem(chain: &[u8], key: &[u8], trusted_cas: &[u8]) -> Result<Self, TlsError> {
        let certs = |pem: &[u8]| {
            CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem(e.to_string()))
        };
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem(e.to_string()))?;
        Self::new(certs(chain)?, key, certs(trusted_cas)?)
    }

    fn build(
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        trusted_cas: Vec<CertificateDer<'static>>,
        mutual: bool,
    ) -> Result<Self, TlsError> {
        let leaf = cert_chain
            .first()
            .cloned()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        if trusted_cas.is_empty() {
            return Err(TlsError::BadCa("no CA certificate".into()));
        }
        let mut roots = RootCertStore::empty();
        for ca in trusted_cas {
            roots.add(ca).map_err(|e| TlsError::BadCa(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(link_provider());
        let versions = &[&rustls::version::TLS13];
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?;
        let server = if mutual {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::BadCa(e.to_string()))?;
            server.with_client_cert_verifier(verifier)
        } else {
            server.with_no_client_auth()
        };
        let mut server = server.with_single_cert(cert_chain.clone(), key.clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_root_certificates(roots);
        let mut client = if mutual {
            client.with_client_auth_cert(cert_chain, key)?
        } else {
            client.with_no_client_auth()
        };
        // The links protect records themselves after the handshake (`io.rs`):
        // rustls hands the keys over, and sends nothing after its handshake.
        server.enable_secret_extraction = true;
        server.send_tls13_tickets = 0;
        client.enable_secret_extraction = true;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            mutual,
            leaf,
        })
    }

    /// Whether the acceptor requires and checks client certificates.
    pub fn is_mutual(&self) -> bool {
        self.mutual
    }

    /// Whether this node's own certificate names `local` (checked at start).
    pub(crate) fn names(&self, local: LogicAddr) -> bool {
        cert_names(&self.leaf, local)
    }

    /// Runs the dialer's TLS handshake, requiring a certificate for `remote`.
    pub(crate) async fn connect(
        &self,
        remote: LogicAddr,
        mut tcp: TcpStream,
    ) -> std::io::Result<Conn> {
        let done = handshake::connect(self.client.clone(), server_name(remote), &mut tcp).await?;
        Ok(Conn::Tls(Box::new(TlsConn::new(tcp, done))))
    }

    /// Runs the acceptor's TLS handshake.
    pub(crate) async fn accept(&self, mut tcp: TcpStream) -> std::io::Result<Conn> {
        let done = handshake::accept(self.server.clone(), &mut tcp).await?;
        Ok(Conn::Tls(Box::new(TlsConn::new(tcp, done))))
    }
}

/// rustls's `ring` provider with AES-128-GCM offered first (module doc); the other
/// suites keep their order.
fn link_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}

/// Whether `cert` (DER) carries the DNS name of `addr`. Validity and the chain to a
/// trusted CA are checked by the TLS handshake; this is only the name.
pub(crate) fn cert_names(cert: &CertificateDer<'_>, addr: LogicAddr) -> bool {
    webpki::EndEntityCert::try_from(cert)
        .and_then(|c| c.verify_is_valid_for_subject_name(&server_name(addr)))
        .is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn cert_for(names: &[&str]) -> CertificateDer<'static> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        rcgen::generate_simple_self_signed(names)
            .unwrap()
            .cert
            .der()
            .clone()
    }

    /// A test CA.
    pub(crate) fn test_ca() -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap()
    }

    /// Two connected nodes' TLS connections over loopback: (dialer's, acceptor's).
    pub(crate) async fn connected_pair() -> (Conn, Conn) {
        let ca = test_ca();
        let (a, b): (LogicAddr, LogicAddr) = ("1.1.1".parse().unwrap(), "1.2.1".parse().unwrap());
        let (dialer, acceptor) = (node_tls(&ca, a), node_tls(&ca, b));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let to = listener.local_addr().unwrap();
        let accept = async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        };
        let connect = async {
            let tcp = TcpStream::connect(to).await.unwrap();
            dialer.connect(b, tcp).await.unwrap()
        };
        let both = async { tokio::join!(connect, accept) };
        tokio::time::timeout(std::time::Duration::from_secs(10), both)
            .await
            .expect("handshake within 10 s")
    }

    /// Mutual TLS settings for `addr`, its certificate issued by `ca`.
    pub(crate) fn node_tls(
        ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
        addr: LogicAddr,
    ) -> NodeTls {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![node_dns_name(addr)])
            .unwrap()
            .signed_by(&key, ca)
            .unwrap();
        NodeTls::new(vec![cert.der().clone()], key.into(), vec![ca.der().clone()]).unwrap()
    }

    #[tokio::test]
    async fn links_negotiate_tls13_aes_128_gcm() {
        let (connected, accepted) = connected_pair().await;
        for conn in [accepted, connected] {
            let Conn::Tls(s) = conn else {
                panic!("not TLS")
            };
            assert_eq!(s.suite(), CipherSuite::TLS13_AES_128_GCM_SHA256);
        }
    }

    #[test]
    fn dns_names_of_addresses() {
        let a: LogicAddr = "1.2.3".parse().unwrap();
        assert_eq!(node_dns_name(a), "1-2-3.node.clustergo");
        let b: LogicAddr = "2.255.7".parse().unwrap();
        assert_eq!(node_dns_name(b), "2-255-7.node.clustergo");
    }

    #[test]
    fn certificate_names_its_address_only() {
        let a: LogicAddr = "1.2.3".parse().unwrap();
        let b: LogicAddr = "1.2.4".parse().unwrap();
        let cases: &[(&[&str], bool, bool)] = &[
            (&["1-2-3.node.clustergo"], true, false),
            (&["1-2-4.node.clustergo"], false, true),
            (
                &["1-2-3.node.clustergo", "1-2-4.node.clustergo"],
                true,
                true,
            ),
            (&["localhost"], false, false),
        ];
        for (names, for_a, for_b) in cases {
            let cert = cert_for(names);
            assert_eq!(cert_names(&cert, a), *for_a, "{names:?}");
            assert_eq!(cert_names(&cert, b), *for_b, "{names:?}");
        }
        assert!(!cert_names(&CertificateDer::from(vec![1, 2, 3]), a));
    }
}
