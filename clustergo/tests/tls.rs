//! Node links and stream sessions over TLS 1.3, with certificates made at run time
//! (rcgen): what works, what is refused, tampering, and secret rotation.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use clustergo::handshake::{self, ConnKind, HandshakeError, Hello, Refusal};
use clustergo::tls::node_dns_name;
use clustergo::{Config, Node, NodeTls, Replyer, Secret, StartError};
use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PB: u16 = 1;

/// A test certificate authority.
struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn cert(&self) -> CertificateDer<'static> {
        self.0.der().clone()
    }

    /// A node certificate naming `logic`, and its key.
    fn issue(&self, logic: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec![node_dns_name(addr(logic))]).unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (vec![cert.der().clone()], key.into())
    }

    /// Mutual TLS settings for `logic`, trusting this CA only.
    fn tls(&self, logic: &str) -> NodeTls {
        let (chain, key) = self.issue(logic);
        NodeTls::new(chain, key, vec![self.cert()]).unwrap()
    }

    fn config(&self, logic: &str) -> Config {
        with_tls(self.tls(logic))
    }
}

fn with_tls(tls: NodeTls) -> Config {
    Config {
        tls: Some(tls),
        ..config()
    }
}

/// Records the `n` of every pb message received, with its text.
fn recorder(node: &Node) -> Arc<Mutex<Vec<(String, u64)>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    node.register_pb_handler(PB, move |_from, m: Echo| g.lock().push((m.msg, m.n)));
    got
}

#[tokio::test]
async fn tls_link_carries_calls_messages_and_streams() {
    let ca = Ca::new("cluster CA");
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, ca.config("1.1.1")).await;
    let b = c.start_with("1.2.1", false, ca.config("1.2.1")).await;
    b.register_rpc("echo", |_ctx, replyer: Replyer<Echo>, req: Echo| {
        replyer.reply(echo(&format!("re:{}", req.msg), req.n));
    });
    let got = recorder(&b);
    a.register_pb_message::<Echo>(PB);
    echo_streams(&b);

    let resp: Echo = within("call", a.call(addr("1.2.1"), "echo", &echo("hi", 7)))
        .await
        .unwrap();
    assert_eq!((resp.msg.as_str(), resp.n), ("re:hi", 7));
    for n in 0..100 {
        a.send_pb(addr("1.2.1"), &echo("m", n)).unwrap();
    }
    eventually("100 messages", || got.lock().len() == 100).await;
    assert!(
        got.lock()
            .iter()
            .enumerate()
            .all(|(i, (_, n))| *n == i as u64)
    );

    // Many 64 KiB frames each way.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = within("open", a.open_stream(addr("1.2.1"))).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(&mut s);
    let write = async {
        wr.write_all(&data).await.unwrap();
        wr.shutdown().await.unwrap();
    };
    let mut back = Vec::new();
    let read = rd.read_to_end(&mut back);
    within("stream echo", async {
        tokio::join!(write, read).1.unwrap()
    })
    .await;
    assert_eq!(back, data);

    assert_eq!(a.metrics().links_established, 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn server_auth_only_mode_links_too() {
    let ca = Ca::new("cluster CA");
    let only = |logic: &str| {
        let (chain, key) = ca.issue(logic);
        with_tls(NodeTls::server_auth_only(chain, key, vec![ca.cert()]).unwrap())
    };
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, only("1.1.1")).await;
    let b = c.start_with("1.2.1", false, only("1.2.1")).await;
    let got = recorder(&b);
    a.register_pb_message::<Echo>(PB);
    a.send_pb(addr("1.2.1"), &echo("m", 1)).unwrap();
    eventually("the message", || got.lock().len() == 1).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn certificate_for_another_address_is_refused() {
    let ca = Ca::new("cluster CA");
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, ca.config("1.1.1")).await;
    let b = c.start_with("1.3.1", false, ca.config("1.3.1")).await;

    // A node cannot even start with a certificate that names another address.
    let wrong = Node::with_config(ca.config("1.3.1"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    c.m.put_now(member("1.2.1", listener.local_addr().unwrap(), false));
    let err = wrong
        .start_on(listener, c.m.clone(), addr("1.2.1"))
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Certificate(_)), "{err}");

    // Inbound: an impostor holding 1.3.1's valid certificate (and the secret)
    // claims to be 1.2.1, listed in membership: refused after the secret handshake.
    let impostor = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let impostor_net = impostor.local_addr().unwrap();
    c.m.put_now(member("1.2.1", impostor_net, false));
    eventually("a sees 1.2.1 at the impostor", || {
        a.member(addr("1.2.1"))
            .is_some_and(|m| m.addr.net == impostor_net)
    })
    .await;
    let (chain, key) = ca.issue("1.3.1");
    let client = rustls_client(&ca, Some((chain.clone(), key.clone_key())));
    let tcp = TcpStream::connect(a.listen_addr().unwrap()).await.unwrap();
    let name = ServerName::try_from(node_dns_name(addr("1.1.1"))).unwrap();
    let mut tls = within("tls", client.connect(name, tcp)).await.unwrap();
    let hello = Hello {
        kind: ConnKind::Frames,
        logic: addr("1.2.1"),
        incarnation: 1,
        listen: impostor_net,
    };
    let dialed = handshake::dial(&mut tls, b"test-secret", &hello, addr("1.1.1"), WAIT);
    let err = within("the impostor's handshake", dialed)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HandshakeError::Refused(Refusal::BadCertificate)),
        "{err}"
    );

    // Outbound: a dials 1.2.1 and meets a server presenting 1.3.1's certificate.
    let server = tokio_rustls::TlsAcceptor::from(Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    ));
    a.register_pb_message::<Echo>(PB);
    a.send_pb(addr("1.2.1"), &echo("m", 1)).unwrap();
    let (tcp, _) = within("a dials the impostor", impostor.accept())
        .await
        .unwrap();
    let accepted = within("the impostor's TLS accept", server.accept(tcp)).await;
    assert!(accepted.is_err(), "a accepted a certificate for 1.3.1");
    assert_eq!(a.metrics().links_established, 0);

    a.shutdown().await;
    b.shutdown().await;
}

/// A rustls client trusting `ca`, with an optional client certificate.
fn rustls_client(
    ca: &Ca,
    cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn missing_client_certificate_is_refused_in_mutual_mode() {
    let ca = Ca::new("cluster CA");
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, ca.config("1.1.1")).await;
    // b presents no client certificate when it dials.
    let (chain, key) = ca.issue("1.2.1");
    let only = with_tls(NodeTls::server_auth_only(chain, key, vec![ca.cert()]).unwrap());
    let b = c.start_with("1.2.1", false, only).await;
    let got = recorder(&a);
    b.register_pb_message::<Echo>(PB);
    for n in 0..5 {
        let _ = b.send_pb(addr("1.1.1"), &echo("m", n));
    }

    // The same, from a plain rustls client: the TLS handshake itself fails.
    let client = rustls_client(&ca, None);
    let tcp = TcpStream::connect(a.listen_addr().unwrap()).await.unwrap();
    let name = ServerName::try_from(node_dns_name(addr("1.1.1"))).unwrap();
    let refused = within("tls without a client certificate", async {
        let mut tls = client.connect(name, tcp).await?;
        // TLS 1.3 clients learn of the refusal at their first read.
        tls.write_all(b"\0\0").await?;
        let mut byte = [0u8; 1];
        match tls.read(&mut byte).await? {
            0 => Err(std::io::Error::other("closed")),
            _ => Ok(()),
        }
    })
    .await;
    assert!(refused.is_err());

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(got.lock().is_empty());
    assert_eq!(a.metrics().links_established, 0);
    assert_eq!(b.metrics().links_established, 0);
    a.shutdown().await;
    b.shutdown().await;
}

/// A loopback TCP proxy to `to`. Once `armed`, it flips one byte of the next chunk
/// it forwards from the dialer to `to`, then disarms.
async fn flipping_proxy(to: SocketAddr, armed: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(to).await else {
                continue;
            };
            let armed = armed.clone();
            tokio::spawn(async move {
                let (mut in_rd, mut in_wr) = inbound.into_split();
                let (mut out_rd, mut out_wr) = outbound.into_split();
                let up = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = in_rd.read(&mut buf).await {
                        if armed.swap(false, Ordering::SeqCst) {
                            buf[n / 2] ^= 0x01;
                        }
                        if out_wr.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = out_wr.shutdown().await;
                };
                let down = async {
                    let _ = tokio::io::copy(&mut out_rd, &mut in_wr).await;
                    let _ = in_wr.shutdown().await;
                };
                tokio::join!(up, down);
            });
        }
    });
    at
}

/// From now on `a` reaches `b` (1.2.1) through a [`flipping_proxy`]; returns its
/// trigger.
async fn through_flipping_proxy(c: &Cluster, a: &Node, b: &Node) -> Arc<AtomicBool> {
    let armed = Arc::new(AtomicBool::new(false));
    let proxy = flipping_proxy(b.listen_addr().unwrap(), armed.clone()).await;
    c.m.put_now(member("1.2.1", proxy, false));
    eventually("a sees b at the proxy", || {
        a.member(addr("1.2.1")).is_some_and(|m| m.addr.net == proxy)
    })
    .await;
    armed
}

#[tokio::test]
async fn flipped_byte_kills_the_link_instead_of_being_delivered() {
    let ca = Ca::new("cluster CA");
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, ca.config("1.1.1")).await;
    let b = c.start_with("1.2.1", false, ca.config("1.2.1")).await;
    let got = recorder(&b);
    a.register_pb_message::<Echo>(PB);

    let armed = through_flipping_proxy(&c, &a, &b).await;

    a.send_pb(addr("1.2.1"), &echo("before", 1)).unwrap();
    eventually("the first message", || got.lock().len() == 1).await;
    assert_eq!(b.metrics().links_lost, 0);

    // The handshakes are done: flip a byte of the next application data.
    armed.store(true, Ordering::SeqCst);
    a.send_pb(addr("1.2.1"), &echo("tampered", 2)).unwrap();
    eventually("b drops the tampered link", || b.metrics().links_lost == 1).await;
    assert!(!armed.load(Ordering::SeqCst), "the proxy flipped a byte");

    // a redials (through the now honest proxy); later messages arrive.
    eventually("a notices the loss", || a.metrics().links_lost == 1).await;
    a.send_pb(addr("1.2.1"), &echo("after", 3)).unwrap();
    eventually("the message after", || got.lock().len() >= 2).await;
    let got = got.lock().clone();
    assert_eq!(
        got,
        vec![("before".to_string(), 1), ("after".to_string(), 3)],
        "the tampered message is never delivered"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn flipped_byte_ends_the_stream_session_instead_of_being_delivered() {
    let ca = Ca::new("cluster CA");
    let c = Cluster::new();
    let a = c.start_with("1.1.1", false, ca.config("1.1.1")).await;
    let b = c.start_with("1.2.1", false, ca.config("1.2.1")).await;
    // b keeps every byte its streams deliver, and how each stream ended.
    let got = Arc::new(Mutex::new(Vec::<u8>::new()));
    let ends = Arc::new(Mutex::new(Vec::<std::io::ErrorKind>::new()));
    let (g, e) = (got.clone(), ends.clone());
    b.on_new_stream(move |mut s| {
        let (g, e) = (g.clone(), e.clone());
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => return e.lock().push(std::io::ErrorKind::UnexpectedEof),
                    Ok(n) => g.lock().extend_from_slice(&buf[..n]),
                    Err(err) => return e.lock().push(err.kind()),
                }
            }
        }
    });

    let armed = through_flipping_proxy(&c, &a, &b).await;

    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut s = within("open", a.open_stream(addr("1.2.1"))).await.unwrap();
    within("the first bytes", s.write_all(&data[..1000]))
        .await
        .unwrap();
    eventually("the first bytes", || got.lock().len() == 1000).await;

    // The handshakes are done: flip a byte of the next application data.
    armed.store(true, Ordering::SeqCst);
    // The write may fail once the session is gone; what matters is what b sees.
    let _ = within("the rest", async {
        s.write_all(&data[1000..]).await?;
        s.flush().await
    })
    .await;
    eventually("b's stream ends", || !ends.lock().is_empty()).await;
    assert!(!armed.load(Ordering::SeqCst), "the proxy flipped a byte");
    assert_ne!(
        ends.lock()[0],
        std::io::ErrorKind::UnexpectedEof,
        "a tampered session must not read as a clean end"
    );
    let got = got.lock().clone();
    assert!(
        got.len() < data.len(),
        "the tampered record was not delivered"
    );
    assert_eq!(
        got,
        data[..got.len()],
        "only untampered bytes were delivered"
    );
    a.shutdown().await;
    b.shutdown().await;
}

fn secrets(current: &str, older: &[&str]) -> Config {
    Config {
        secret: Secret::from(current),
        accepted_secrets: older.iter().map(|s| Secret::from(*s)).collect(),
        ..config()
    }
}

/// Whether a message from `from` reaches `to` (which records with `got`).
async fn reaches(from: &Node, to: &str, got: &Mutex<Vec<(String, u64)>>) -> bool {
    from.register_pb_message::<Echo>(PB);
    let before = got.lock().len();
    from.send_pb(addr(to), &echo("r", 0)).unwrap();
    let arrived = tokio::time::timeout(Duration::from_millis(500), async {
        while got.lock().len() == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    arrived.await.is_ok()
}

#[tokio::test]
async fn secret_rotation_new_and_old_interoperate_through_the_overlap() {
    let ca = Ca::new("cluster CA");
    let c = Cluster::new();
    let tls = |logic: &str, cfg: Config| Config {
        tls: Some(ca.tls(logic)),
        ..cfg
    };
    // Mid-rotation: a already rolled to [new, old]; b and c still run [old];
    // d has only [new] (rolled too early).
    let a = c
        .start_with("1.1.1", false, tls("1.1.1", secrets("new", &["old"])))
        .await;
    let b = c
        .start_with("1.2.1", false, tls("1.2.1", secrets("old", &[])))
        .await;
    let cc = c
        .start_with("1.3.1", false, tls("1.3.1", secrets("old", &[])))
        .await;
    let d = c
        .start_with("1.4.1", false, tls("1.4.1", secrets("new", &[])))
        .await;
    let (got_a, got_b, got_c) = (recorder(&a), recorder(&b), recorder(&cc));

    assert!(reaches(&a, "1.2.1", &got_b).await, "[new, old] dials [old]");
    assert!(
        reaches(&cc, "1.1.1", &got_a).await,
        "[old] dials [new, old]"
    );
    assert!(reaches(&d, "1.1.1", &got_a).await, "[new] dials [new, old]");
    assert!(!reaches(&d, "1.2.1", &got_b).await, "[new] dials [old]");
    let got_d = recorder(&d);
    assert!(!reaches(&cc, "1.4.1", &got_d).await, "[old] dials [new]");
    assert_eq!(got_c.lock().len(), 0);
    for n in [a, b, cc, d] {
        n.shutdown().await;
    }
}

/// TLS buffers what the socket could not take; the link's writer must flush it
/// before it goes idle, or the tail of a burst waits for the next send forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_into_a_full_socket_arrives_whole() {
    let ca = Ca::new("cluster CA");
    let c = Cluster::new();
    let patient = Config {
        send_timeout: WAIT,
        ..ca.config("1.1.1")
    };
    let a = c.start_with("1.1.1", false, patient).await;
    let b = c.start_with("1.2.1", false, ca.config("1.2.1")).await;
    let got = Arc::new(AtomicUsize::new(0));
    let g = got.clone();
    b.register_pb_handler(PB, move |_from, _m: Echo| {
        // The first message stalls b's reader, so a's socket fills up.
        if g.fetch_add(1, Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    a.register_pb_message::<Echo>(PB);
    const N: usize = 3000;
    let big = Echo {
        blob: vec![7; 8 * 1024],
        ..echo("big", 0)
    };
    let a2 = a.clone();
    let sender = tokio::task::spawn_blocking(move || {
        for _ in 0..N {
            while let Err(e) = a2.send_pb(addr("1.2.1"), &big) {
                assert!(matches!(e, clustergo::SendError::Busy), "{e}");
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    within("the sends", sender).await.unwrap();
    eventually("every message of the burst", || {
        got.load(Ordering::SeqCst) == N
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
