//! The three front-ends, given the same service, interoperate on the wire: every
//! client (protoc plugin → `service` crate, build.rs → `OUT_DIR`, `#[service]`
//! macro) calls every server, for the seed `echo`, for `game.lobby.Lobby.Join`,
//! and for `proto/profile.proto`: proto `service Profile` against macro
//! `trait ProfileService`, proto `service RankService` against macro `trait Rank`
//! (one wire-name rule), with proto3 `optional` fields on the wire.

use std::time::Duration;

use clustergo::membership::{InProcess, Member};
use clustergo::{Addr, LogicAddr, Node, Replyer, RpcContext};
use tokio::net::TcpListener;

#[allow(missing_docs, clippy::all, dead_code)]
mod buildrs {
    include!(concat!(env!("OUT_DIR"), "/clustergo.rs"));
}

/// The macro front-end, over the plugin's prost messages.
mod macros {
    use super::*;
    use service::game::lobby::{JoinReply, JoinRequest};

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Request {
        #[prost(string, tag = "1")]
        pub msg: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Response {
        #[prost(string, tag = "1")]
        pub msg: String,
    }

    #[clustergo::service]
    pub trait EchoService {
        fn on_call(&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request);
    }

    #[clustergo::service(package = "game.lobby")]
    pub trait Lobby {
        fn join(&self, ctx: RpcContext, replyer: Replyer<JoinReply>, request: JoinRequest);
    }

    /// Ends in `Service`; the proto service is `Profile`.
    #[clustergo::service(package = "game.profile")]
    pub trait ProfileService {
        fn get(&self, ctx: RpcContext, replyer: Replyer<pb::Card>, request: pb::Lookup);
    }

    /// Does not end in `Service`; the proto service is `RankService`.
    #[clustergo::service(package = "game.profile")]
    pub trait Rank {
        fn top(&self, ctx: RpcContext, replyer: Replyer<pb::Card>, request: pb::Profile);
    }

    use service::game::profile as pb;

    pub struct Server;

    impl ProfileService for Server {
        fn get(&self, _: RpcContext, r: profile::GetReplyer, q: pb::Lookup) {
            r.reply(super::card("macro", &q.name));
        }
    }

    impl Rank for Server {
        fn top(&self, _: RpcContext, r: rank::TopReplyer, q: pb::Profile) {
            r.reply(super::top("macro", q.id));
        }
    }

    impl EchoService for Server {
        fn on_call(&self, _: RpcContext, replyer: echo::Replyer, request: Request) {
            replyer.reply(Response {
                msg: format!("macro:{}", request.msg),
            });
        }
    }

    impl Lobby for Server {
        fn join(&self, _: RpcContext, replyer: lobby::JoinReplyer, request: JoinRequest) {
            replyer.reply(JoinReply {
                seat: 100 + request.room.len() as u32,
                others: Vec::new(),
            });
        }
    }
}

/// What every server answers to `Profile.Get`: `level` set, `title` absent.
fn card(server: &str, name: &str) -> service::game::profile::Card {
    service::game::profile::Card {
        name: format!("{server}:{name}"),
        level: Some(name.len() as u32),
        title: None,
    }
}

/// What every server answers to `Rank.Top`: `level` present iff `id` was.
fn top(server: &str, id: Option<u64>) -> service::game::profile::Card {
    service::game::profile::Card {
        name: server.to_owned(),
        level: id.map(|i| i as u32 + 1),
        title: Some("top".to_owned()),
    }
}

struct PluginServer;

impl service::game::profile::profile::ProfileService for PluginServer {
    fn get(
        &self,
        _: RpcContext,
        r: service::game::profile::profile::GetReplyer,
        q: service::game::profile::Lookup,
    ) {
        r.reply(card("plugin", &q.name));
    }
}

impl service::game::profile::rank::RankService for PluginServer {
    fn top(
        &self,
        _: RpcContext,
        r: service::game::profile::rank::TopReplyer,
        q: service::game::profile::Profile,
    ) {
        r.reply(top("plugin", q.id));
    }
}

impl service::echo::EchoService for PluginServer {
    fn on_call(&self, _: RpcContext, r: service::echo::Replyer, q: service::echo::Request) {
        r.reply(service::echo::Response {
            msg: format!("plugin:{}", q.msg),
        });
    }
}

impl service::game::lobby::lobby::LobbyService for PluginServer {
    fn join(
        &self,
        _: RpcContext,
        r: service::game::lobby::lobby::JoinReplyer,
        q: service::game::lobby::JoinRequest,
    ) {
        r.reply(service::game::lobby::JoinReply {
            seat: 200 + q.room.len() as u32,
            others: Vec::new(),
        });
    }

    fn leave(
        &self,
        _: RpcContext,
        r: service::game::lobby::lobby::LeaveReplyer,
        _: service::game::common::Player,
    ) {
        r.reply(());
    }

    fn room_info(&self, _: RpcContext, r: service::game::lobby::lobby::RoomInfoReplyer, _: ()) {
        r.error("none");
    }
}

struct BuildServer;

/// The build.rs messages are other Rust types with the same encoding.
fn to_buildrs(c: service::game::profile::Card) -> buildrs::game::profile::Card {
    buildrs::game::profile::Card {
        name: c.name,
        level: c.level,
        title: c.title,
    }
}

impl buildrs::game::profile::profile::ProfileService for BuildServer {
    fn get(
        &self,
        _: RpcContext,
        r: buildrs::game::profile::profile::GetReplyer,
        q: buildrs::game::profile::Lookup,
    ) {
        r.reply(to_buildrs(card("buildrs", &q.name)));
    }
}

impl buildrs::game::profile::rank::RankService for BuildServer {
    fn top(
        &self,
        _: RpcContext,
        r: buildrs::game::profile::rank::TopReplyer,
        q: buildrs::game::profile::Profile,
    ) {
        r.reply(to_buildrs(top("buildrs", q.id)));
    }
}

impl buildrs::echo::EchoService for BuildServer {
    fn on_call(&self, _: RpcContext, r: buildrs::echo::Replyer, q: buildrs::echo::Request) {
        r.reply(buildrs::echo::Response {
            msg: format!("buildrs:{}", q.msg),
        });
    }
}

impl buildrs::game::lobby::lobby::LobbyService for BuildServer {
    fn join(
        &self,
        _: RpcContext,
        r: buildrs::game::lobby::lobby::JoinReplyer,
        q: buildrs::game::lobby::JoinRequest,
    ) {
        r.reply(buildrs::game::lobby::JoinReply {
            seat: 300 + q.room.len() as u32,
            others: Vec::new(),
        });
    }

    fn leave(
        &self,
        _: RpcContext,
        r: buildrs::game::lobby::lobby::LeaveReplyer,
        _: buildrs::game::common::Player,
    ) {
        r.reply(());
    }

    fn room_info(&self, _: RpcContext, r: buildrs::game::lobby::lobby::RoomInfoReplyer, _: ()) {
        r.error("none");
    }
}

async fn start(m: &InProcess, logic: &str) -> (Node, LogicAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let logic: LogicAddr = logic.parse().unwrap();
    m.put_now(Member {
        addr: Addr::new(logic, listener.local_addr().unwrap()),
        export: false,
        available: true,
    });
    let node = Node::new();
    node.start_on(listener, m.clone(), logic).await.unwrap();
    (node, logic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_calls_every_server() {
    let m = InProcess::new();
    let (plugin, p) = start(&m, "1.1.1").await;
    let (build, b) = start(&m, "1.1.2").await;
    let (mac, x) = start(&m, "1.1.3").await;
    let (client, _) = start(&m, "1.2.1").await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while [p, b, x].iter().any(|a| client.member(*a).is_none()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    service::echo::register_on(&plugin, PluginServer);
    service::game::lobby::lobby::register_on(&plugin, PluginServer);
    buildrs::echo::register_on(&build, BuildServer);
    buildrs::game::lobby::lobby::register_on(&build, BuildServer);
    macros::echo::register_on(&mac, macros::Server);
    macros::lobby::register_on(&mac, macros::Server);
    service::game::profile::profile::register_on(&plugin, PluginServer);
    service::game::profile::rank::register_on(&plugin, PluginServer);
    buildrs::game::profile::profile::register_on(&build, BuildServer);
    buildrs::game::profile::rank::register_on(&build, BuildServer);
    macros::profile::register_on(&mac, macros::Server);
    macros::rank::register_on(&mac, macros::Server);

    let servers = [(p, "plugin", 200), (b, "buildrs", 300), (x, "macro", 100)];
    for (addr, name, seat) in servers {
        let expect = format!("{name}:hi");
        let r = service::echo::EchoClient::new(&client)
            .call(addr, &service::echo::Request { msg: "hi".into() })
            .await
            .unwrap();
        assert_eq!(r.msg, expect, "plugin client → {name}");
        let r = buildrs::echo::EchoClient::new(&client)
            .call(addr, &buildrs::echo::Request { msg: "hi".into() })
            .await
            .unwrap();
        assert_eq!(r.msg, expect, "build.rs client → {name}");
        let r = macros::echo::EchoClient::new(&client)
            .call(addr, &macros::Request { msg: "hi".into() })
            .await
            .unwrap();
        assert_eq!(r.msg, expect, "macro client → {name}");

        let r = service::game::lobby::lobby::LobbyClient::new(&client)
            .join(
                addr,
                &service::game::lobby::JoinRequest {
                    player: None,
                    room: "ab".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.seat, seat + 2, "plugin lobby client → {name}");
        let r = buildrs::game::lobby::lobby::LobbyClient::new(&client)
            .join(
                addr,
                &buildrs::game::lobby::JoinRequest {
                    player: None,
                    room: "abc".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.seat, seat + 3, "build.rs lobby client → {name}");
        let r = macros::lobby::LobbyClient::new(&client)
            .join(
                addr,
                &service::game::lobby::JoinRequest {
                    player: None,
                    room: "a".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!(r.seat, seat + 1, "macro lobby client → {name}");

        profiles(&client, addr, name).await;
    }
    assert_eq!(
        macros::lobby::JOIN_METHOD,
        service::game::lobby::lobby::JOIN_METHOD
    );
    assert_eq!(
        buildrs::game::lobby::lobby::JOIN_METHOD,
        service::game::lobby::lobby::JOIN_METHOD
    );
    assert_eq!(macros::echo::METHOD, service::echo::METHOD);
    assert_eq!(
        macros::profile::GET_METHOD,
        service::game::profile::profile::GET_METHOD
    );
    assert_eq!(
        macros::rank::TOP_METHOD,
        service::game::profile::rank::TOP_METHOD
    );
    for n in [client, plugin, build, mac] {
        n.shutdown().await;
    }
}

/// Every client's `Profile.Get` and `Rank.Top` against server `name` at `addr`:
/// proto3 `optional` fields arrive set or absent as sent.
async fn profiles(client: &Node, addr: LogicAddr, name: &str) {
    use buildrs::game::profile as b;
    use service::game::profile as p;
    let lookup = p::Lookup { name: "ann".into() };
    let want = card(name, "ann");
    let got = p::profile::ProfileClient::new(client)
        .get(addr, &lookup)
        .await
        .unwrap();
    assert_eq!(got, want, "plugin profile client → {name}");
    let got = macros::profile::ProfileClient::new(client)
        .get(addr, &lookup)
        .await
        .unwrap();
    assert_eq!(got, want, "macro profile client → {name}");
    let got = b::profile::ProfileClient::new(client)
        .get(addr, &b::Lookup { name: "ann".into() })
        .await
        .unwrap();
    assert_eq!(got, to_buildrs(want), "build.rs profile client → {name}");

    for id in [None, Some(0), Some(41)] {
        let want = top(name, id);
        let got = p::rank::RankClient::new(client)
            .top(addr, &p::Profile { id })
            .await
            .unwrap();
        assert_eq!(got, want, "plugin rank client → {name} ({id:?})");
        let got = macros::rank::RankClient::new(client)
            .top(addr, &p::Profile { id })
            .await
            .unwrap();
        assert_eq!(got, want, "macro rank client → {name} ({id:?})");
        let got = b::rank::RankClient::new(client)
            .top(addr, &b::Profile { id })
            .await
            .unwrap();
        assert_eq!(
            got,
            to_buildrs(want),
            "build.rs rank client → {name} ({id:?})"
        );
    }
}
