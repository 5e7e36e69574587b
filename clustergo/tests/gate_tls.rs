//! The gate over TLS, on loopback, with a CA made at run time (`test_ca`): TLS over the
//! TCP transport and `wss://` exchange packets (every size up to the maximum, clean
//! closes both ways); a client that does not trust the server's CA, or expects another
//! name, is refused; a plain client on a TLS listener only costs a failed handshake;
//! KCP refuses TLS. (The browser side of `wss://` is in `gate_browser.rs`.)

mod gate_common;
mod test_ca;

use bytes::Bytes;
use clustergo::gate::{self, GateConfig, GateError, TlsConnect, Transport};
use gate_common::{BYE, CLOSE_ME, EchoServer, pattern, within};
use rustls::pki_types::ServerName;
use test_ca::TestCa;

const MAX: usize = gate::DEFAULT_MAX_PACKET_SIZE;

/// Server and client configs for a gate certificate naming `localhost` and 127.0.0.1.
fn tls_configs(ca: &TestCa) -> (GateConfig, GateConfig) {
    let leaf = ca.leaf(&["localhost", "127.0.0.1"]);
    let server = GateConfig {
        tls: Some(ca.server_config(&leaf)),
        ..GateConfig::default()
    };
    let client = GateConfig {
        tls_connect: Some(TlsConnect::new(ca.client_config())),
        ..GateConfig::default()
    };
    (server, client)
}

/// Echo of many sizes (up to the maximum) in order, then a server-side close.
async fn exchange(mut conn: gate::ClientConn, server: &mut EchoServer) {
    let sizes: Vec<usize> = (0..40u32)
        .map(|i| (i as usize * 997) % 5000)
        .chain([0, 1, MAX])
        .collect();
    for (i, &n) in sizes.iter().enumerate() {
        conn.send(pattern(i as u32, n)).await.unwrap();
    }
    for (i, &n) in sizes.iter().enumerate() {
        let got = within("echo", conn.recv()).await.unwrap().unwrap();
        assert_eq!(got, pattern(i as u32, n), "packet {i}");
    }
    conn.send(Bytes::from_static(CLOSE_ME)).await.unwrap();
    let bye = within("bye", conn.recv()).await.unwrap().unwrap();
    assert_eq!(bye, BYE);
    assert!(within("close", conn.recv()).await.unwrap().is_none());
    assert!(server.next_ending().await.is_none(), "clean close");
    assert_eq!(server.stats.handshake_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_tcp_exchanges_packets() {
    gate_common::init_tracing();
    let ca = TestCa::new();
    let (server_config, client_config) = tls_configs(&ca);
    let mut server = EchoServer::start(Transport::Tcp, server_config).await;
    let conn = within(
        "connect",
        gate::connect(Transport::Tcp, server.addr, &client_config),
    )
    .await
    .expect("TLS connect by IP address");
    exchange(conn, &mut server).await;

    // By name, through `connect_tcp`.
    let by_name = GateConfig {
        tls_connect: Some(TlsConnect {
            config: ca.client_config(),
            server_name: Some(ServerName::try_from("localhost").unwrap()),
        }),
        ..GateConfig::default()
    };
    let conn = within("connect", gate::connect_tcp(server.addr, &by_name))
        .await
        .expect("TLS connect by name");
    exchange(conn, &mut server).await;
}

#[cfg(feature = "ws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_exchanges_packets() {
    gate_common::init_tracing();
    let ca = TestCa::new();
    let (server_config, client_config) = tls_configs(&ca);
    let mut server = EchoServer::start(Transport::Ws, server_config).await;
    let conn = within(
        "connect",
        gate::connect(Transport::Ws, server.addr, &client_config),
    )
    .await
    .expect("wss:// by IP address");
    assert_eq!(conn.transport(), Transport::Ws);
    exchange(conn, &mut server).await;

    let url = format!("wss://localhost:{}/", server.addr.port());
    let conn = within("connect", gate::connect_ws(&url, &client_config))
        .await
        .expect("wss:// by name");
    exchange(conn, &mut server).await;

    // wss:// without trust anchors is a configuration error, not a plain connection.
    let err = gate::connect_ws(&url, &GateConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, GateError::InvalidConfig(_)), "{err:?}");
}

/// A client trusting another CA, or expecting another name, fails the handshake; so
/// does the server's side of it, counted as a handshake failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_or_misnamed_server_is_refused() {
    gate_common::init_tracing();
    let ca = TestCa::new();
    let (server_config, _) = tls_configs(&ca);
    for transport in [Transport::Tcp, Transport::Ws] {
        if !transport.is_enabled() {
            continue;
        }
        let server = EchoServer::start(transport, server_config.clone()).await;
        let stranger = GateConfig {
            tls_connect: Some(TlsConnect::new(TestCa::new().client_config())),
            ..GateConfig::default()
        };
        let misnamed = GateConfig {
            tls_connect: Some(TlsConnect {
                config: ca.client_config(),
                server_name: Some(ServerName::try_from("gate.example").unwrap()),
            }),
            ..GateConfig::default()
        };
        for client in [stranger, misnamed] {
            let err = within("refused", gate::connect(transport, server.addr, &client))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, GateError::Handshake(m) if m.contains("TLS")),
                "{transport}: {err:?}"
            );
        }
        within("server counts both failures", async {
            while server.stats.handshake_failures() < 2 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

/// A plain client on a TLS listener never becomes a connection: its bytes fail the
/// TLS handshake, the server drops it and counts the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_client_on_a_tls_listener_is_dropped() {
    gate_common::init_tracing();
    let ca = TestCa::new();
    let (server_config, _) = tls_configs(&ca);
    let server = EchoServer::start(Transport::Tcp, server_config).await;
    let mut conn = within(
        "plain connect",
        gate::connect_tcp(server.addr, &GateConfig::default()),
    )
    .await
    .unwrap();
    conn.send(pattern(1, 100)).await.unwrap();
    let got = within("plain client ends", conn.recv()).await;
    assert!(!matches!(got, Ok(Some(_))), "no packet may arrive: {got:?}");
    within("server counts the failure", async {
        while server.stats.handshake_failures() < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn kcp_refuses_tls() {
    let ca = TestCa::new();
    let (server_config, _) = tls_configs(&ca);
    let err = gate::Listener::bind(Transport::Kcp, "127.0.0.1:0", server_config)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GateError::InvalidConfig(m) if m.contains("KCP")),
        "{err:?}"
    );
}
