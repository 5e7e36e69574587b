//! `#[clustergo::service]`: services written as Rust traits. Runs a server and a
//! client node in one process and exits 0 when every call came back right.
//!
//! The macro's `EchoService::on_call` has the wire name `"echo"`, like
//! `proto/echo.proto`, so the plugin-generated `service::echo` client calls it too.

mod support;

use std::process::ExitCode;

use bytes::Bytes;
use clustergo::{Replyer, RpcContext};

/// Same fields and tags as `proto/echo.proto`'s `request`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// Text to echo.
    #[prost(string, tag = "1")]
    pub msg: String,
}

/// Same fields and tags as `proto/echo.proto`'s `response`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Response {
    /// The echoed text.
    #[prost(string, tag = "1")]
    pub msg: String,
}

/// Echo, written as a Rust trait (the seed shape: `on_call`, wire name "echo").
#[clustergo::service]
pub trait EchoService {
    /// Answers with the request's text.
    fn on_call(&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request);
}

/// A non-prost service: raw bytes with `BytesCodec`; wire names "Text.Upper" and
/// "Text.Len".
#[clustergo::service(codec = clustergo::rpc::BytesCodec)]
pub trait Text {
    /// Upper-cases ASCII.
    fn upper(&self, ctx: RpcContext, replyer: Replyer<Bytes>, request: Bytes);
    /// Answers with the length as decimal text.
    fn len(&self, ctx: RpcContext, replyer: Replyer<Bytes>, request: Bytes);
}

struct Server;

impl EchoService for Server {
    fn on_call(&self, _ctx: RpcContext, replyer: echo::Replyer, request: Request) {
        replyer.reply(Response { msg: request.msg });
    }
}

impl Text for Server {
    fn upper(&self, _ctx: RpcContext, replyer: text::UpperReplyer, request: Bytes) {
        replyer.reply(Bytes::from(request.to_ascii_uppercase()));
    }

    fn len(&self, _ctx: RpcContext, replyer: text::LenReplyer, request: Bytes) {
        replyer.reply(Bytes::from(request.len().to_string()));
    }
}

async fn run() -> bool {
    let (server, s, client, _) = support::pair().await;
    echo::register_on(&server, Server);
    text::register_on(&server, Server);

    let mut ok = true;
    let e = echo::EchoClient::new(&client);
    let r = e
        .call(
            s,
            &Request {
                msg: "macro".into(),
            },
        )
        .await;
    ok &= support::check(
        "macro client → macro server",
        r.is_ok_and(|r| r.msg == "macro"),
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
        "plugin client → macro server",
        r.is_ok_and(|r| r.msg == "plugin"),
    );
    let t = text::TextClient::new(&client);
    let r = t.upper(s, &Bytes::from_static(b"shout")).await;
    ok &= support::check("bytes codec: upper", r.is_ok_and(|b| b == "SHOUT"));
    let r = t
        .len_with_timeout(s, &Bytes::from_static(b"four"), support::LIMIT)
        .await;
    ok &= support::check("bytes codec: len", r.is_ok_and(|b| b == "4"));
    ok &= support::check(
        "wire names",
        echo::METHOD == "echo" && text::LEN_METHOD == "Text.Len",
    );
    client.shutdown().await;
    server.shutdown().await;
    ok
}

#[tokio::main]
async fn main() -> ExitCode {
    support::exit_code("macro_echo", run()).await
}
