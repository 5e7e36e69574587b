//! The three front-ends interoperate on streaming methods too: every client
//! (protoc plugin → `service` crate, build.rs → `OUT_DIR`, `#[service]` macro) calls
//! every server of `proto/room.proto`'s `Feed`: server-streaming `Follow`,
//! client-streaming `Replay`, bidirectional `Talk`.

use std::time::Duration;

use clustergo::membership::InProcess;
use clustergo::{LogicAddr, Node, RpcContext, RpcError, StreamSender, Streaming};

/// The examples' helpers (one way to start a node on loopback).
#[path = "../src/bin/support/mod.rs"]
#[allow(dead_code)]
mod support;

#[allow(missing_docs, clippy::all, dead_code)]
mod buildrs {
    include!(concat!(env!("OUT_DIR"), "/clustergo.rs"));
}

use service::game::room as pb;

/// The macro front-end, over the plugin's prost messages.
mod macros {
    use super::*;

    #[clustergo::service(package = "game.room")]
    pub trait Feed {
        async fn follow(
            &self,
            ctx: RpcContext,
            request: pb::Enter,
            responses: StreamSender<pb::Event>,
        ) -> Result<(), RpcError>;
        async fn replay(
            &self,
            ctx: RpcContext,
            requests: Streaming<pb::Move>,
        ) -> Result<pb::Summary, RpcError>;
        async fn talk(
            &self,
            ctx: RpcContext,
            requests: Streaming<pb::Line>,
            responses: StreamSender<pb::Line>,
        ) -> Result<(), RpcError>;
    }

    pub struct Server;

    impl Feed for Server {
        async fn follow(
            &self,
            _: RpcContext,
            request: pb::Enter,
            responses: StreamSender<pb::Event>,
        ) -> Result<(), RpcError> {
            super::follow("macro", request, responses).await
        }

        async fn replay(
            &self,
            _: RpcContext,
            requests: Streaming<pb::Move>,
        ) -> Result<pb::Summary, RpcError> {
            super::replay(100, requests).await
        }

        async fn talk(
            &self,
            _: RpcContext,
            requests: Streaming<pb::Line>,
            responses: StreamSender<pb::Line>,
        ) -> Result<(), RpcError> {
            super::talk("macro", requests, responses).await
        }
    }
}

/// Every server's `Follow`: `room` events naming the server and the player.
async fn follow(
    server: &str,
    request: pb::Enter,
    mut responses: StreamSender<pb::Event>,
) -> Result<(), RpcError> {
    for seq in 0..request.room as u64 {
        responses
            .send(pb::Event {
                seq,
                player: format!("{server}:{}", request.player),
                what: Some(pb::event::What::Joined(true)),
            })
            .await?;
    }
    Ok(())
}

/// Every server's `Replay`: `base` plus the number of moves.
async fn replay(base: u32, mut requests: Streaming<pb::Move>) -> Result<pb::Summary, RpcError> {
    let mut moves = base;
    while requests.message().await?.is_some() {
        moves += 1;
    }
    Ok(pb::Summary { moves })
}

/// Every server's `Talk`: each line back, signed by the server.
async fn talk(
    server: &str,
    mut requests: Streaming<pb::Line>,
    mut responses: StreamSender<pb::Line>,
) -> Result<(), RpcError> {
    while let Some(line) = requests.message().await? {
        responses
            .send(pb::Line {
                player: server.to_owned(),
                text: line.text,
            })
            .await?;
    }
    Ok(())
}

struct PluginServer;

impl pb::feed::FeedService for PluginServer {
    async fn follow(
        &self,
        _: RpcContext,
        request: pb::Enter,
        responses: StreamSender<pb::Event>,
    ) -> Result<(), RpcError> {
        follow("plugin", request, responses).await
    }

    async fn replay(
        &self,
        _: RpcContext,
        requests: Streaming<pb::Move>,
    ) -> Result<pb::Summary, RpcError> {
        replay(200, requests).await
    }

    async fn talk(
        &self,
        _: RpcContext,
        requests: Streaming<pb::Line>,
        responses: StreamSender<pb::Line>,
    ) -> Result<(), RpcError> {
        talk("plugin", requests, responses).await
    }
}

struct BuildServer;

mod b {
    pub use super::buildrs::game::room::*;
}

impl b::feed::FeedService for BuildServer {
    async fn follow(
        &self,
        _: RpcContext,
        request: b::Enter,
        mut responses: StreamSender<b::Event>,
    ) -> Result<(), RpcError> {
        for seq in 0..request.room as u64 {
            responses
                .send(b::Event {
                    seq,
                    player: format!("buildrs:{}", request.player),
                    what: Some(b::event::What::Joined(true)),
                })
                .await?;
        }
        Ok(())
    }

    async fn replay(
        &self,
        _: RpcContext,
        mut requests: Streaming<b::Move>,
    ) -> Result<b::Summary, RpcError> {
        let mut moves = 300;
        while requests.message().await?.is_some() {
            moves += 1;
        }
        Ok(b::Summary { moves })
    }

    async fn talk(
        &self,
        _: RpcContext,
        mut requests: Streaming<b::Line>,
        mut responses: StreamSender<b::Line>,
    ) -> Result<(), RpcError> {
        while let Some(line) = requests.message().await? {
            responses
                .send(b::Line {
                    player: "buildrs".to_owned(),
                    text: line.text,
                })
                .await?;
        }
        Ok(())
    }
}

/// Starts a node as `logic` on a fresh loopback port listed in `m`.
async fn start(m: &InProcess, logic: &str) -> (Node, LogicAddr) {
    let node = Node::new();
    let logic = support::start(&node, m, logic).await;
    (node, logic)
}

/// Every message of `rx`, which must end cleanly.
async fn all<T: prost::Message + Default>(mut rx: Streaming<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(m) = rx.message().await.unwrap() {
        out.push(m);
    }
    out
}

fn enter(room: u32) -> pb::Enter {
    pb::Enter {
        player: "ann".into(),
        room,
    }
}

fn line(text: &str) -> pb::Line {
    pb::Line {
        player: "ann".into(),
        text: text.into(),
    }
}

/// Every client against the server `name` at `addr`, whose `Replay` adds `base`.
async fn every_client(client: &Node, addr: LogicAddr, name: &str, base: u32) {
    let who = format!("{name}:ann");
    // Server-streaming.
    let rx = pb::feed::FeedClient::new(client)
        .follow(addr, enter(3))
        .await
        .unwrap();
    let got = all(rx).await;
    assert_eq!(got.len(), 3, "plugin client → {name}");
    assert!(got.iter().all(|e| e.player == who), "{got:?}");
    let rx = macros::feed::FeedClient::new(client)
        .follow_with_timeout(addr, enter(2), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(all(rx).await.len(), 2, "macro client → {name}");
    let rx = b::feed::FeedClient::new(client)
        .follow(
            addr,
            b::Enter {
                player: "ann".into(),
                room: 4,
            },
        )
        .await
        .unwrap();
    let got = all(rx).await;
    assert_eq!(got.len(), 4, "build.rs client → {name}");
    assert!(got.iter().all(|e| e.player == who), "{got:?}");

    // Client-streaming.
    let (mut tx, resp) = pb::feed::FeedClient::new(client)
        .replay(addr)
        .await
        .unwrap();
    for _ in 0..5 {
        tx.send(pb::Move::default()).await.unwrap();
    }
    drop(tx);
    assert_eq!(
        resp.await.unwrap().moves,
        base + 5,
        "plugin client → {name}"
    );
    let (tx, resp) = macros::feed::FeedClient::new(client)
        .replay(addr)
        .await
        .unwrap();
    drop(tx);
    assert_eq!(resp.await.unwrap().moves, base, "macro client → {name}");
    let (mut tx, resp) = b::feed::FeedClient::new(client).replay(addr).await.unwrap();
    tx.send(b::Move::default()).await.unwrap();
    drop(tx);
    assert_eq!(
        resp.await.unwrap().moves,
        base + 1,
        "build.rs client → {name}"
    );

    // Bidirectional.
    let (mut tx, mut rx) = pb::feed::FeedClient::new(client).talk(addr).await.unwrap();
    for text in ["hi", "bye"] {
        tx.send(line(text)).await.unwrap();
        let back = rx.message().await.unwrap().unwrap();
        assert_eq!((back.player.as_str(), back.text.as_str()), (name, text));
    }
    drop(tx);
    assert_eq!(rx.message().await, Ok(None));
    let (mut tx, mut rx) = macros::feed::FeedClient::new(client)
        .talk(addr)
        .await
        .unwrap();
    tx.send(line("m")).await.unwrap();
    assert_eq!(rx.message().await.unwrap().unwrap().player, name);
    let (mut tx, mut rx) = b::feed::FeedClient::new(client).talk(addr).await.unwrap();
    tx.send(b::Line {
        player: "ann".into(),
        text: "b".into(),
    })
    .await
    .unwrap();
    assert_eq!(rx.message().await.unwrap().unwrap().player, name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_streams_with_every_server() {
    let m = InProcess::new();
    let (plugin, p) = start(&m, "1.1.1").await;
    let (build, bs) = start(&m, "1.1.2").await;
    let (mac, x) = start(&m, "1.1.3").await;
    let (client, _) = start(&m, "1.2.1").await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while [p, bs, x].iter().any(|a| client.member(*a).is_none()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    pb::feed::register_on(&plugin, PluginServer);
    b::feed::register_on(&build, BuildServer);
    macros::feed::register_on(&mac, macros::Server);
    assert_eq!(macros::feed::FOLLOW_METHOD, pb::feed::FOLLOW_METHOD);
    assert_eq!(b::feed::TALK_METHOD, pb::feed::TALK_METHOD);
    let servers = [(p, "plugin", 200), (bs, "buildrs", 300), (x, "macro", 100)];
    tokio::time::timeout(Duration::from_secs(20), async {
        for (addr, name, base) in servers {
            every_client(&client, addr, name, base).await;
        }
    })
    .await
    .expect("streaming interop within 20 s");
    for n in [client, plugin, build, mac] {
        n.shutdown().await;
    }
}
