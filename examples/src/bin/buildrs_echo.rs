//! Services generated in `examples/build.rs` by `protoc_gen_clustergo::configure()`
//! (protox + prost-build, no protoc). Runs a server and a client node in one process
//! and exits 0 when every call came back right, including calls between these
//! modules and the plugin-generated `service` crate made from the same `.proto`s,
//! and a one-way message registered by the build.rs-generated `register_messages`
//! (`proto/echo.proto` imports `clustergo/options.proto`, which build.rs serves
//! itself).

mod support;

use std::process::ExitCode;

use clustergo::RpcContext;

/// Everything `examples/build.rs` generated: `echo`, `test`, `game::…`,
/// `examples::greeter::greeter`.
#[allow(missing_docs, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/clustergo.rs"));
}

/// Tricky inputs (keywords, deep packages, several services per file): compiled to
/// prove the generated code compiles.
#[allow(missing_docs, clippy::all, dead_code)]
mod tricky {
    include!(concat!(env!("OUT_DIR"), "/tricky/clustergo.rs"));
}

use generated::examples::greeter::{self as pb, greeter};
use generated::{echo, game::lobby};

struct Server;

impl echo::EchoService for Server {
    fn on_call(&self, _ctx: RpcContext, replyer: echo::Replyer, request: echo::Request) {
        replyer.reply(echo::Response { msg: request.msg });
    }
}

impl greeter::GreeterService for Server {
    fn say_hello(&self, _ctx: RpcContext, replyer: greeter::SayHelloReplyer, r: pb::HelloRequest) {
        replyer.reply(pb::HelloReply {
            message: format!("hello, {}", r.name),
        });
    }

    fn say_goodbye(
        &self,
        _ctx: RpcContext,
        replyer: greeter::SayGoodbyeReplyer,
        r: pb::HelloRequest,
    ) {
        replyer.reply(pb::HelloReply {
            message: format!("goodbye, {}", r.name),
        });
    }
}

impl lobby::lobby::LobbyService for Server {
    fn join(
        &self,
        _ctx: RpcContext,
        replyer: lobby::lobby::JoinReplyer,
        request: lobby::JoinRequest,
    ) {
        replyer.reply(lobby::JoinReply {
            seat: request.room.len() as u32,
            others: request.player.into_iter().collect(),
        });
    }

    fn leave(
        &self,
        _ctx: RpcContext,
        replyer: lobby::lobby::LeaveReplyer,
        _request: generated::game::common::Player,
    ) {
        replyer.reply(());
    }

    fn room_info(&self, _ctx: RpcContext, replyer: lobby::lobby::RoomInfoReplyer, _request: ()) {
        replyer.error("no rooms");
    }
}

async fn run() -> bool {
    let (server, s, client, _) = support::pair().await;
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    server.register_pb_handler(
        service::echo::REQUEST_CMD,
        move |_, m: service::echo::Request| {
            let _ = tx.send(m.msg);
        },
    );
    echo::register_on(&server, Server);
    greeter::register_on(&server, Server);
    lobby::lobby::register_on(&server, Server);

    let mut ok = true;
    echo::register_messages(&client);
    let sent = client.send_pb(
        s,
        &echo::Request {
            msg: "one-way".into(),
        },
    );
    let got = tokio::time::timeout(support::LIMIT, lines.recv()).await;
    ok &= support::check(
        "build.rs register_messages → plugin-registered handler",
        sent.is_ok() && matches!(got, Ok(Some(ref m)) if m == "one-way"),
    );
    let r = echo::EchoClient::new(&client)
        .call(
            s,
            &echo::Request {
                msg: "build.rs".into(),
            },
        )
        .await;
    ok &= support::check(
        "build.rs client → build.rs server",
        r.is_ok_and(|r| r.msg == "build.rs"),
    );
    let r = service::echo::EchoClient::new(&client)
        .call(
            s,
            &service::echo::Request {
                msg: "plugin".into(),
            },
        )
        .await;
    ok &= support::check(
        "plugin client → build.rs server",
        r.is_ok_and(|r| r.msg == "plugin"),
    );

    let g = greeter::GreeterClient::new(&client);
    let name = pb::HelloRequest { name: "ann".into() };
    let r = g.say_hello(s, &name).await;
    ok &= support::check(
        "greeter.SayHello",
        r.is_ok_and(|r| r.message == "hello, ann"),
    );
    let r = g.say_goodbye_with_timeout(s, &name, support::LIMIT).await;
    ok &= support::check(
        "greeter.SayGoodbye",
        r.is_ok_and(|r| r.message == "goodbye, ann"),
    );

    // The plugin-generated lobby client against the build.rs-generated lobby server.
    let l = service::game::lobby::lobby::LobbyClient::new(&client);
    let r = l
        .join(
            s,
            &service::game::lobby::JoinRequest {
                player: None,
                room: "abc".into(),
            },
        )
        .await;
    ok &= support::check(
        "plugin lobby client → build.rs lobby",
        r.is_ok_and(|r| r.seat == 3),
    );
    let r = l.room_info(s, &()).await;
    ok &= support::check(
        "remote error comes back",
        matches!(r, Err(clustergo::RpcError::Method(ref m)) if m == "no rooms"),
    );
    ok &= support::check(
        "same wire names as the plugin",
        lobby::lobby::JOIN_METHOD == service::game::lobby::lobby::JOIN_METHOD
            && echo::METHOD == service::echo::METHOD,
    );
    ok &= support::check(
        "tricky names",
        tricky::kw::r#match::r#async::TYPE_METHOD == "kw.match.Async.Type"
            && tricky::a::b::c::abc::DEEP_METHOD == "a.b.c.Abc.Deep",
    );
    ok &= support::check(
        "message ids from .proto",
        echo::REQUEST_CMD == 100
            && lobby::PLAYER_JOINED_CMD == service::game::lobby::PLAYER_JOINED_CMD
            && tricky::ids::ROOM_INFO_CMD == 65535
            && tricky::ids::TYPE_CMD == 1,
    );
    client.shutdown().await;
    server.shutdown().await;
    ok
}

#[tokio::main]
async fn main() -> ExitCode {
    support::exit_code("buildrs_echo", run()).await
}
