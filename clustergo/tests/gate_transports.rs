//! The gate's packet API over each transport, on loopback: echo order, size limits,
//! many clients, clean closes from either side, and each transport's own failure modes
//! (malformed TCP frames, failed WebSocket handshakes, text and ping frames, stray KCP
//! datagrams). Every wait is bounded by `gate_common::STEP`.

mod gate_common;

use std::time::Duration;

use bytes::Bytes;
use clustergo::gate::{self, GateConfig, GateError, Transport};
use gate_common::{BYE, CLOSE_ME, EchoServer, pattern, within};
use tokio::task::JoinSet;

const MAX: usize = gate::DEFAULT_MAX_PACKET_SIZE;

/// Runs each listed scenario once per transport, as `tcp::name`, `ws::name`, `kcp::name`.
macro_rules! per_transport {
    ($($name:ident),* $(,)?) => {
        mod tcp {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::gate_common::init_tracing();
                super::$name(clustergo::gate::Transport::Tcp).await
            })*
        }
        #[cfg(feature = "ws")]
        mod ws {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::gate_common::init_tracing();
                super::$name(clustergo::gate::Transport::Ws).await
            })*
        }
        #[cfg(feature = "kcp")]
        mod kcp {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::gate_common::init_tracing();
                super::$name(clustergo::gate::Transport::Kcp).await
            })*
        }
    };
}

per_transport!(
    echo_many_packets_in_order,
    max_size_ok_oversize_rejected,
    many_concurrent_clients,
    client_close_seen_by_server,
    server_close_seen_by_client,
    idle_timeout_ends_a_silent_connection,
);

fn size_of(i: u32) -> usize {
    (i as usize * 37) % 3000
}

async fn echo_many_packets_in_order(t: Transport) {
    let mut server = EchoServer::start(t, GateConfig::default()).await;
    let conn = within(
        "connect",
        gate::connect(t, server.addr, &GateConfig::default()),
    )
    .await
    .expect("connect");
    assert_eq!(conn.transport(), t);
    assert_eq!(conn.peer_addr(), server.addr);
    let (tx, mut rx) = conn.split();

    // Sender and receiver run at the same time: both directions carry traffic at once.
    const N: u32 = 2000;
    let sender = tokio::spawn(async move {
        for i in 0..N {
            tx.send(pattern(i, size_of(i))).await.expect("send");
        }
        tx
    });
    for i in 0..N {
        let got = within("echo", rx.recv())
            .await
            .expect("recv")
            .expect("packet");
        assert_eq!(
            got,
            pattern(i, size_of(i)),
            "packet {i} (size {})",
            size_of(i)
        );
    }
    let tx = within("sender", sender).await.expect("sender task");
    tx.close().await;
    assert!(
        server.next_ending().await.is_none(),
        "server must see a clean close"
    );
    assert!(
        within("client eof", rx.recv())
            .await
            .expect("recv after close")
            .is_none()
    );
}

async fn max_size_ok_oversize_rejected(t: Transport) {
    let mut server = EchoServer::start(t, GateConfig::default()).await;
    let mut conn = within(
        "connect",
        gate::connect(t, server.addr, &GateConfig::default()),
    )
    .await
    .expect("connect");

    // Exactly the maximum goes through, both ways.
    let big = pattern(1, MAX);
    conn.send(big.clone()).await.expect("send max");
    assert_eq!(
        within("max echo", conn.recv())
            .await
            .expect("recv")
            .expect("packet"),
        big
    );

    // One byte more is refused locally; nothing is sent and the connection stays up.
    match conn.send(pattern(2, MAX + 1)).await {
        Err(GateError::PacketTooLarge { size, max }) => assert_eq!((size, max), (MAX + 1, MAX)),
        other => panic!("expected PacketTooLarge, got {other:?}"),
    }
    assert!(matches!(
        conn.try_send(pattern(2, MAX + 1)),
        Err(GateError::PacketTooLarge { .. })
    ));
    conn.send(Bytes::from_static(b"still here"))
        .await
        .expect("send");
    assert_eq!(
        within("echo", conn.recv()).await.unwrap().unwrap(),
        &b"still here"[..]
    );

    // A peer configured with a larger limit sends an oversize packet: the server ends
    // that connection with IncomingTooLarge; the rogue client sees its connection end.
    let loose = GateConfig {
        max_packet_size: 4 * MAX,
        ..GateConfig::default()
    };
    let mut rogue = within("connect", gate::connect(t, server.addr, &loose))
        .await
        .expect("connect");
    rogue
        .send(Bytes::from_static(b"hello"))
        .await
        .expect("send");
    assert_eq!(
        within("echo", rogue.recv()).await.unwrap().unwrap(),
        &b"hello"[..]
    );
    rogue
        .send(pattern(3, MAX + 1))
        .await
        .expect("the loose client may send it");
    match server.next_ending().await {
        Some(GateError::IncomingTooLarge { max }) => assert_eq!(max, MAX),
        other => panic!("expected IncomingTooLarge on the server, got {other:?}"),
    }
    // WebSocket: a close frame (1009); KCP: the close marker; TCP: FIN, and no RST since
    // the server discards the rest of the oversize packet before closing.
    let end = within("rogue connection to end", rogue.recv()).await;
    assert!(matches!(end, Ok(None)), "got {end:?}");

    // The first connection did not notice.
    conn.send(Bytes::from_static(b"unaffected"))
        .await
        .expect("send");
    assert_eq!(
        within("echo", conn.recv()).await.unwrap().unwrap(),
        &b"unaffected"[..]
    );
}

async fn many_concurrent_clients(t: Transport) {
    const CLIENTS: u32 = 40;
    const PACKETS: u32 = 25;
    let mut server = EchoServer::start(t, GateConfig::default()).await;
    let addr = server.addr;
    let mut clients = JoinSet::new();
    for c in 0..CLIENTS {
        clients.spawn(async move {
            let mut conn = within("connect", gate::connect(t, addr, &GateConfig::default()))
                .await
                .expect("connect");
            let packet = |i: u32| pattern(c * 1000 + i, 1 + (i as usize * 131) % 1500);
            for i in 0..PACKETS {
                conn.send(packet(i)).await.expect("send");
            }
            for i in 0..PACKETS {
                let got = within("echo", conn.recv())
                    .await
                    .expect("recv")
                    .expect("packet");
                assert_eq!(got, packet(i), "client {c} packet {i}");
            }
            conn.close().await.expect("close");
        });
    }
    while let Some(done) = within("clients", clients.join_next()).await {
        done.expect("client task");
    }
    for _ in 0..CLIENTS {
        let ending = server.next_ending().await;
        assert!(ending.is_none(), "unexpected server-side error: {ending:?}");
    }
}

async fn client_close_seen_by_server(t: Transport) {
    let mut server = EchoServer::start(t, GateConfig::default()).await;
    let mut conn = within(
        "connect",
        gate::connect(t, server.addr, &GateConfig::default()),
    )
    .await
    .expect("connect");
    conn.send(Bytes::from_static(b"hi")).await.expect("send");
    assert_eq!(
        within("echo", conn.recv()).await.unwrap().unwrap(),
        &b"hi"[..]
    );
    // Dropping without close() still closes gracefully (the writer drains, then closes).
    drop(conn);
    let ending = server.next_ending().await;
    assert!(ending.is_none(), "server must see Ok(None), got {ending:?}");
}

async fn server_close_seen_by_client(t: Transport) {
    let mut server = EchoServer::start(t, GateConfig::default()).await;
    let mut conn = within(
        "connect",
        gate::connect(t, server.addr, &GateConfig::default()),
    )
    .await
    .expect("connect");
    conn.send(Bytes::from_static(CLOSE_ME)).await.expect("send");
    // The packet queued before close() arrives, then the clean end, and it stays ended.
    assert_eq!(within("bye", conn.recv()).await.unwrap().unwrap(), BYE);
    assert!(
        within("eof", conn.recv())
            .await
            .expect("clean close")
            .is_none()
    );
    assert!(
        within("eof again", conn.recv())
            .await
            .expect("still clean")
            .is_none()
    );
    assert!(server.next_ending().await.is_none());
    conn.close().await.expect("close after the peer closed");
}

async fn idle_timeout_ends_a_silent_connection(t: Transport) {
    let idle = Duration::from_millis(300);
    let server_config = GateConfig {
        idle_timeout: Some(idle),
        ..GateConfig::default()
    };
    let mut server = EchoServer::start(t, server_config).await;
    let mut conn = within(
        "connect",
        gate::connect(t, server.addr, &GateConfig::default()),
    )
    .await
    .expect("connect");
    // Traffic keeps it alive...
    for i in 0..3 {
        tokio::time::sleep(idle / 2).await;
        conn.send(pattern(i, 10)).await.unwrap();
        assert_eq!(
            within("echo", conn.recv()).await.unwrap(),
            Some(pattern(i, 10))
        );
    }
    // ...silence ends it, and the client is told.
    match server.next_ending().await {
        Some(GateError::IdleTimeout(d)) => assert_eq!(d, idle),
        other => panic!("expected IdleTimeout, got {other:?}"),
    }
    let end = within("client to see the close", conn.recv()).await;
    assert!(matches!(end, Ok(None)), "got {end:?}");
}

/// Reads until EOF or error; returns what arrived.
async fn read_to_end(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match within("socket to close", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_malformed_frames_close_only_that_connection() {
    use tokio::io::AsyncWriteExt;
    gate_common::init_tracing();
    let mut server = EchoServer::start(Transport::Tcp, GateConfig::default()).await;
    let mut good = within(
        "connect",
        gate::connect_tcp(server.addr, &GateConfig::default()),
    )
    .await
    .expect("connect");

    // A length field far above the limit: refused from the header alone.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(&0xFFFF_FF00u32.to_be_bytes()).await.unwrap();
    match server.next_ending().await {
        Some(GateError::IncomingTooLarge { max }) => assert_eq!(max, MAX),
        other => panic!("expected IncomingTooLarge, got {other:?}"),
    }
    read_to_end(&mut raw).await;

    // EOF in the middle of a packet.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(&10u32.to_be_bytes()).await.unwrap();
    raw.write_all(b"abc").await.unwrap();
    raw.shutdown().await.unwrap();
    match server.next_ending().await {
        Some(GateError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("expected an UnexpectedEof error, got {other:?}"),
    }

    // The wire format is exactly `u32 BE length | payload`.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"\x00\x00\x00\x05hello\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut echoed = [0u8; 13];
    within(
        "raw echo",
        tokio::io::AsyncReadExt::read_exact(&mut raw, &mut echoed),
    )
    .await
    .unwrap();
    assert_eq!(&echoed, b"\x00\x00\x00\x05hello\x00\x00\x00\x00");
    drop(raw);
    assert!(server.next_ending().await.is_none());

    good.send(Bytes::from_static(b"fine")).await.unwrap();
    assert_eq!(
        within("echo", good.recv()).await.unwrap().unwrap(),
        &b"fine"[..]
    );
}

#[tokio::test]
async fn invalid_config_is_refused() {
    for bad in [
        GateConfig {
            max_packet_size: 0,
            ..GateConfig::default()
        },
        GateConfig {
            max_packet_size: u32::MAX as usize,
            ..GateConfig::default()
        },
        GateConfig {
            send_queue: 0,
            ..GateConfig::default()
        },
        GateConfig {
            handshake_timeout: Duration::ZERO,
            ..GateConfig::default()
        },
        GateConfig {
            idle_timeout: Some(Duration::ZERO),
            ..GateConfig::default()
        },
    ] {
        for t in Transport::ALL {
            let err = gate::Listener::bind(t, "127.0.0.1:0", bad.clone())
                .await
                .unwrap_err();
            assert!(matches!(err, GateError::InvalidConfig(_)), "{t}: {err:?}");
        }
    }
}

#[cfg(feature = "ws")]
mod ws_only {
    use super::*;
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    async fn raw_client(
        addr: std::net::SocketAddr,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        let (ws, _) = within(
            "raw ws connect",
            tokio_tungstenite::connect_async(format!("ws://{addr}/")),
        )
        .await
        .expect("raw ws connect");
        ws
    }

    /// The next non-ping/pong message.
    async fn next_message(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Message {
        within("ws message", ws.next())
            .await
            .expect("stream ended")
            .expect("ws error")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_handshakes_only_drop_that_socket() {
        gate_common::init_tracing();
        let config = GateConfig {
            handshake_timeout: Duration::from_millis(300),
            ..GateConfig::default()
        };
        let mut server = EchoServer::start(Transport::Ws, config.clone()).await;
        let mut before = within(
            "connect",
            gate::connect_ws(&format!("ws://{}/", server.addr), &config),
        )
        .await
        .expect("connect");

        // A plain HTTP request (no upgrade).
        let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let reply = String::from_utf8_lossy(&read_to_end(&mut plain).await).into_owned();
        assert!(
            reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "plain HTTP gets a 400: {reply:?}"
        );

        // Garbage.
        let mut junk = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        junk.write_all(b"\x16\x03\x01\x00\xa5 not http at all\r\n\r\n")
            .await
            .unwrap();
        read_to_end(&mut junk).await;

        // Silence: dropped after the handshake timeout.
        let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        read_to_end(&mut silent).await;

        within("three handshake failures counted", async {
            while server.stats.handshake_failures() < 3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(server.stats.handshake_failures(), 3);
        assert!(
            server.endings.try_recv().is_err(),
            "failed handshakes are not connections"
        );

        // The existing connection and new ones are fine.
        before
            .send(Bytes::from_static(b"still fine"))
            .await
            .unwrap();
        assert_eq!(
            within("echo", before.recv()).await.unwrap().unwrap(),
            &b"still fine"[..]
        );
        let mut after = within(
            "connect",
            gate::connect_ws(&format!("ws://{}/", server.addr), &config),
        )
        .await
        .expect("connect after failures");
        after.send(Bytes::from_static(b"new")).await.unwrap();
        assert_eq!(
            within("echo", after.recv()).await.unwrap().unwrap(),
            &b"new"[..]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn text_message_rejected_with_1003() {
        gate_common::init_tracing();
        let mut server = EchoServer::start(Transport::Ws, GateConfig::default()).await;
        let mut ws = raw_client(server.addr).await;
        ws.send(Message::Binary(Bytes::from_static(b"bin")))
            .await
            .unwrap();
        assert_eq!(
            next_message(&mut ws).await,
            Message::Binary(Bytes::from_static(b"bin"))
        );
        ws.send(Message::text("hello")).await.unwrap();
        match next_message(&mut ws).await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Unsupported),
            other => panic!("expected close 1003, got {other:?}"),
        }
        assert!(matches!(
            server.next_ending().await,
            Some(GateError::TextMessage)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ping_answered_and_oversize_closed_with_1009() {
        gate_common::init_tracing();
        let mut server = EchoServer::start(Transport::Ws, GateConfig::default()).await;
        let mut ws = raw_client(server.addr).await;
        ws.send(Message::Ping(Bytes::from_static(b"are you there")))
            .await
            .unwrap();
        let pong = within("pong", ws.next()).await.unwrap().unwrap();
        assert_eq!(pong, Message::Pong(Bytes::from_static(b"are you there")));

        let max = pattern(9, MAX);
        ws.send(Message::Binary(max.clone())).await.unwrap();
        assert_eq!(next_message(&mut ws).await, Message::Binary(max));

        ws.send(Message::Binary(pattern(10, MAX + 1)))
            .await
            .unwrap();
        match next_message(&mut ws).await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
            other => panic!("expected close 1009, got {other:?}"),
        }
        assert!(matches!(
            server.next_ending().await,
            Some(GateError::IncomingTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn connect_ws_rejects_other_schemes() {
        let err = gate::connect_ws("wss://127.0.0.1:1/", &GateConfig::default())
            .await
            .unwrap_err();
        assert!(matches!(err, GateError::InvalidConfig(_)), "{err:?}");
    }
}

#[cfg(feature = "kcp")]
mod kcp_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stray_datagrams_and_oversize_first_packets_open_no_connection() {
        gate_common::init_tracing();
        let config = GateConfig {
            kcp_first_packet_timeout: Duration::from_millis(300),
            ..GateConfig::default()
        };
        let mut server = EchoServer::start(Transport::Kcp, config.clone()).await;

        // A KCP-sized datagram that carries no valid segment (conv 7, unknown command).
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut junk = vec![0u8; 40];
        junk[..4].copy_from_slice(&7u32.to_le_bytes());
        junk[4] = 0xEE;
        udp.send_to(&junk, server.addr).await.unwrap();

        within("the stray datagram to be refused", async {
            while server.stats.refused_datagrams() < 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert_eq!(
            server.stats.pending_handshakes(),
            0,
            "no session was opened"
        );
        assert!(
            server.endings.try_recv().is_err(),
            "no connection was handed out"
        );

        // An oversize first packet: refused before any connection is handed out, and
        // the client is told with the close marker.
        let loose = GateConfig {
            max_packet_size: 2 * MAX,
            ..config.clone()
        };
        let mut rogue = within("connect", gate::connect_kcp(server.addr, &loose))
            .await
            .unwrap();
        rogue.send(pattern(1, MAX + 1)).await.unwrap();
        let end = within("rogue to be closed", rogue.recv()).await;
        assert!(matches!(end, Ok(None)), "got {end:?}");
        assert_eq!(server.stats.handshake_failures(), 1);
        assert!(
            server.endings.try_recv().is_err(),
            "no connection was handed out"
        );

        let mut conn = within("connect", gate::connect_kcp(server.addr, &config))
            .await
            .unwrap();
        conn.send(Bytes::from_static(b"real")).await.unwrap();
        assert_eq!(
            within("echo", conn.recv()).await.unwrap().unwrap(),
            &b"real"[..]
        );
    }
}

#[cfg(feature = "kcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcp_session_of_a_vanished_client_expires() {
    gate_common::init_tracing();
    let mut config = GateConfig::default();
    config.kcp.session_expire = Duration::from_millis(300);
    let mut server = EchoServer::start(Transport::Kcp, config).await;
    // A client that sends its first packet (the bytes a KCP client would send: conv 0,
    // data segment 0 holding `u32 length | "x"`) and then vanishes.
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut datagram = vec![0u8; 24];
    datagram[4] = 81; // IKCP_CMD_PUSH
    datagram[6..8].copy_from_slice(&256u16.to_le_bytes());
    datagram[20..24].copy_from_slice(&5u32.to_le_bytes());
    datagram.extend_from_slice(&[0, 0, 0, 1, b'x']);
    udp.send_to(&datagram, server.addr).await.unwrap();
    // The server session answers (ack and echo) under the conversation it assigned.
    let mut buf = [0u8; 1500];
    let (n, _) = within("the server's reply", udp.recv_from(&mut buf))
        .await
        .unwrap();
    assert!(
        n >= 24 && buf[..4] != [0; 4],
        "a conversation id was assigned"
    );
    assert!(matches!(
        server.next_ending().await,
        Some(GateError::SessionExpired)
    ));
}

/// KCP connections share their listener's socket and receive loop: dropping the
/// listener ends them (reads fail) instead of leaving them to wait forever.
#[cfg(feature = "kcp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_kcp_listener_ends_its_connections() {
    gate_common::init_tracing();
    let config = GateConfig::default();
    let mut listener = gate::Listener::bind(Transport::Kcp, "127.0.0.1:0", config.clone())
        .await
        .unwrap();
    let client = within("connect", gate::connect_kcp(listener.local_addr(), &config))
        .await
        .unwrap();
    client.send(Bytes::from_static(b"hello")).await.unwrap();
    let mut conn = within("accept", listener.accept()).await.unwrap();
    assert_eq!(
        within("first packet", conn.recv()).await.unwrap().unwrap(),
        &b"hello"[..]
    );
    drop(listener);
    let end = within("the connection to end", conn.recv()).await;
    assert!(matches!(end, Err(GateError::SessionExpired)), "got {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_gets_busy_then_dropped_by_write_timeout() {
    gate_common::init_tracing();
    // A "client" that accepts and never reads.
    let raw = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = raw.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (stream, _) = raw.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    });
    let config = GateConfig {
        send_queue: 4,
        write_timeout: Duration::from_millis(500),
        ..GateConfig::default()
    };
    let mut conn = within("connect", gate::connect_tcp(addr, &config))
        .await
        .unwrap();
    let packet = pattern(5, MAX);

    // Socket buffers fill up, then the queue: try_send reports Busy instead of waiting.
    let mut queued = 0usize;
    let busy = within("Busy", async {
        loop {
            match conn.try_send(packet.clone()) {
                Ok(()) => queued += 1,
                Err(e) => return e,
            }
            assert!(
                queued < 20_000,
                "never Busy after {queued} packets of {MAX} bytes"
            );
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        matches!(busy, GateError::Busy),
        "got {busy:?} after {queued} packets"
    );

    // The stuck writer gives up after write_timeout and the connection is closed.
    let closed = within("write timeout to close the connection", async {
        loop {
            if let Err(e) = conn.send(packet.clone()).await {
                return e;
            }
        }
    })
    .await;
    assert!(matches!(closed, GateError::Closed), "got {closed:?}");
    assert!(conn.sender().is_closed());
    // The receiving side learns it too, so the task serving this client stops.
    match within("recv after the write timeout", conn.recv()).await {
        Err(GateError::WriteTimeout(d)) => assert_eq!(d, Duration::from_millis(500)),
        other => panic!("expected WriteTimeout, got {other:?}"),
    }
    assert!(within("recv", conn.recv()).await.unwrap().is_none());
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_after_close_is_refused() {
    let mut server = EchoServer::start(Transport::Tcp, GateConfig::default()).await;
    let conn = within(
        "connect",
        gate::connect_tcp(server.addr, &GateConfig::default()),
    )
    .await
    .unwrap();
    let sender = conn.sender();
    within("close", conn.close()).await.unwrap();
    assert!(sender.is_closed());
    assert!(matches!(
        sender.send(Bytes::from_static(b"late")).await,
        Err(GateError::Closed)
    ));
    assert!(matches!(
        sender.try_send(Bytes::from_static(b"late")),
        Err(GateError::Closed)
    ));
    assert!(server.next_ending().await.is_none());
}

#[cfg(not(all(feature = "ws", feature = "kcp")))]
#[tokio::test]
async fn disabled_transports_say_so() {
    for t in Transport::ALL.into_iter().filter(|t| !t.is_enabled()) {
        let err = gate::Listener::bind(t, "127.0.0.1:0", GateConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, GateError::TransportDisabled(x) if x == t),
            "{err:?}"
        );
        let addr = "127.0.0.1:9".parse().unwrap();
        let err = gate::connect(t, addr, &GateConfig::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, GateError::TransportDisabled(x) if x == t),
            "{err:?}"
        );
    }
}
