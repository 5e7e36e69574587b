//! The checked-in generated crate, used between two nodes on 127.0.0.1:0: every
//! generated call form, a multi-method service with imports and well-known types,
//! and the free functions over the default node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, Config, LogicAddr, Node, RpcContext, RpcError};
use service::game::{common, lobby};
use service::{echo, test};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const WAIT: Duration = Duration::from_secs(10);

fn config() -> Config {
    Config {
        secret: b"service-test".into(),
        ..Config::default()
    }
}

async fn start(node: &Node, m: &InProcess, logic: &str) -> LogicAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let logic: LogicAddr = logic.parse().unwrap();
    m.put_now(Member {
        addr: Addr::new(logic, listener.local_addr().unwrap()),
        export: false,
        available: true,
    });
    node.start_on(listener, m.clone(), logic).await.unwrap();
    logic
}

/// Waits until `node` knows `peer` (membership spreads asynchronously).
async fn knows(node: &Node, peer: LogicAddr) {
    tokio::time::timeout(WAIT, async {
        while node.member(peer).is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("membership settles");
}

struct Echo;

impl echo::EchoService for Echo {
    fn on_call(&self, _ctx: RpcContext, replyer: echo::Replyer, request: echo::Request) {
        if request.msg == "fail" {
            replyer.error("asked to fail");
        } else {
            replyer.reply(echo::Response { msg: request.msg });
        }
    }
}

struct Sum(Arc<AtomicUsize>);

impl test::TestService for Sum {
    fn on_call(&self, ctx: RpcContext, replyer: test::Replyer, request: test::Request) {
        self.0.fetch_add(1, Ordering::SeqCst);
        let log = vec![ctx.method().to_owned(), request.note.unwrap_or_default()];
        // Answer later from another task: the replyer may move.
        tokio::spawn(async move {
            replyer.reply(test::Response {
                sum: request.a + request.b,
                log,
            });
        });
    }
}

struct Lobby;

impl lobby::lobby::LobbyService for Lobby {
    fn join(
        &self,
        _ctx: RpcContext,
        replyer: lobby::lobby::JoinReplyer,
        request: lobby::JoinRequest,
    ) {
        let player = request.player.unwrap_or_default();
        replyer.reply(lobby::JoinReply {
            seat: request.room.len() as u32,
            others: vec![player],
        });
    }

    fn leave(
        &self,
        _ctx: RpcContext,
        replyer: lobby::lobby::LeaveReplyer,
        request: common::Player,
    ) {
        if request.id == 0 {
            replyer.error("no such player");
        } else {
            replyer.reply(());
        }
    }

    fn room_info(&self, _ctx: RpcContext, replyer: lobby::lobby::RoomInfoReplyer, _request: ()) {
        replyer.reply(service::game::lobby::room::Info {
            name: "main".into(),
            players: 3,
        });
    }
}

struct Chat;

impl lobby::chat::ChatService for Chat {
    fn level(
        &self,
        _ctx: RpcContext,
        replyer: lobby::chat::LevelReplyer,
        request: common::player::Stats,
    ) {
        replyer.reply(common::player::Stats {
            level: request.level + 1,
            score: request.score,
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_calls_between_two_nodes() {
    let m = InProcess::new();
    let server = Node::with_config(config());
    let client = Node::with_config(config());
    let s = start(&server, &m, "1.1.1").await;
    let c = start(&client, &m, "1.2.1").await;
    knows(&client, s).await;
    knows(&server, c).await;

    let calls = Arc::new(AtomicUsize::new(0));
    echo::register_on(&server, Echo);
    test::register_on(&server, Sum(calls.clone()));
    lobby::lobby::register_on(&server, Lobby);
    lobby::chat::register_on(&server, Chat);

    // Seed service: every call form.
    let e = echo::EchoClient::new(&client);
    let resp = e
        .call(s, &echo::Request { msg: "hi".into() })
        .await
        .unwrap();
    assert_eq!(resp.msg, "hi");
    let resp = e
        .call_with_timeout(s, &echo::Request { msg: "t".into() }, WAIT)
        .await
        .unwrap();
    assert_eq!(resp.msg, "t");
    match e.call(s, &echo::Request { msg: "fail".into() }).await {
        Err(RpcError::Method(msg)) => assert_eq!(msg, "asked to fail"),
        other => panic!("expected a method error, got {other:?}"),
    }
    let (tx, rx) = oneshot::channel();
    let _handle = e.call_with_callback(
        s,
        clustergo::Instant::now() + WAIT,
        &echo::Request { msg: "cb".into() },
        move |r| {
            let _ = tx.send(r);
        },
    );
    let got = tokio::time::timeout(WAIT, rx)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.msg, "cb");

    // The second seed service; the replyer answers from another task.
    let t = test::TestClient::new(&client);
    let resp = t
        .call(
            s,
            &test::Request {
                a: 40,
                b: 2,
                note: Some("n".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(resp.sum, 42);
    assert_eq!(resp.log, vec![test::METHOD.to_owned(), "n".to_owned()]);
    let before = calls.load(Ordering::SeqCst);
    t.post(s, &test::Request::default()).unwrap();
    tokio::time::timeout(WAIT, async {
        while calls.load(Ordering::SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("post reaches the server");

    // Multi-method service with imported messages and well-known types.
    let l = lobby::lobby::LobbyClient::new(&client);
    let player = common::Player {
        id: 7,
        name: "ann".into(),
        stats: Some(common::player::Stats { level: 1, score: 9 }),
    };
    let reply = l
        .join(
            s,
            &lobby::JoinRequest {
                player: Some(player.clone()),
                room: "abcd".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(reply.seat, 4);
    assert_eq!(reply.others, vec![player.clone()]);
    l.leave(s, &player).await.unwrap();
    assert!(matches!(
        l.leave(s, &common::Player::default()).await,
        Err(RpcError::Method(_))
    ));
    let info = l.room_info_with_timeout(s, &(), WAIT).await.unwrap();
    assert_eq!((info.name.as_str(), info.players), ("main", 3));
    let stats = lobby::chat::ChatClient::new(&client)
        .level(s, &common::player::Stats { level: 4, score: 1 })
        .await
        .unwrap();
    assert_eq!(stats.level, 5);
    assert_eq!(lobby::lobby::JOIN_METHOD, "game.lobby.Lobby.Join");

    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_functions_use_the_default_node() {
    let m = InProcess::new();
    // The default node uses Config::default(); so does this one (same secret).
    let server = Node::new();
    let s = start(&server, &m, "2.1.1").await;
    echo::register_on(&server, Echo);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c: LogicAddr = "2.2.1".parse().unwrap();
    m.put_now(Member {
        addr: Addr::new(c, listener.local_addr().unwrap()),
        export: false,
        available: true,
    });
    clustergo::default_node()
        .start_on(listener, m.clone(), c)
        .await
        .unwrap();
    knows(clustergo::default_node(), s).await;
    knows(&server, c).await;

    let resp = echo::call(s, &echo::Request { msg: "free".into() }).await;
    assert_eq!(resp.unwrap().msg, "free");
    let resp = echo::call_with_timeout(s, &echo::Request { msg: "t".into() }, WAIT).await;
    assert_eq!(resp.unwrap().msg, "t");
    let (tx, rx) = oneshot::channel();
    echo::call_with_callback(
        s,
        clustergo::Instant::now() + WAIT,
        &echo::Request { msg: "cb".into() },
        move |r| {
            let _ = tx.send(r);
        },
    );
    assert_eq!(
        tokio::time::timeout(WAIT, rx)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .msg,
        "cb"
    );
    echo::post(
        s,
        &echo::Request {
            msg: "one-way".into(),
        },
    )
    .unwrap();

    // Register on the default node and call it from the other node.
    echo::register(Echo);
    let back = echo::EchoClient::new(&server)
        .call(c, &echo::Request { msg: "back".into() })
        .await
        .unwrap();
    assert_eq!(back.msg, "back");
    clustergo::default_node().shutdown().await;
    server.shutdown().await;
}
