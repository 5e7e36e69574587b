//! The async handler form: `async fn on_call(&self, ctx, request) -> Result<..>`.
//! Runs a server and a client node in one process and exits 0 when every call
//! came back right.
//!
//! Same wire name (`"echo"`) and messages as `proto/echo.proto`, so the
//! plugin-generated `service::echo` client calls it too: clients do not depend on
//! the server's handler form.

mod support;

use std::process::ExitCode;
use std::time::Duration;

use clustergo::{RpcContext, RpcError};

// The plugin-generated messages of `proto/echo.proto`.
use service::echo::{Request, Response};

/// Echo in the async form: the future is dropped if the caller stops waiting.
#[clustergo::service]
pub trait EchoService {
    /// Answers with the request's text and how long the caller still waits.
    async fn on_call(&self, ctx: RpcContext, request: Request) -> Result<Response, RpcError>;
}

/// Relays to the echo service through `ctx`: the inner call inherits the
/// caller's remaining deadline.
#[clustergo::service(package = "demo")]
pub trait Relay {
    /// Calls echo on the same node through `ctx`.
    async fn relay(&self, ctx: RpcContext, request: Request) -> Result<Response, RpcError>;
}

struct Server;

impl EchoService for Server {
    async fn on_call(&self, ctx: RpcContext, request: Request) -> Result<Response, RpcError> {
        let left = ctx.remaining().unwrap_or_default();
        Ok(Response {
            msg: format!("{} ({}s left)", request.msg, left.as_secs()),
        })
    }
}

impl Relay for Server {
    async fn relay(&self, ctx: RpcContext, request: Request) -> Result<Response, RpcError> {
        let me = ctx.node().local_addr().ok_or(RpcError::NotStarted)?;
        // `ctx.timeout()`: the caller's remaining time, for the generated calls.
        echo::EchoClient::new(&ctx.node())
            .call_with_timeout(me, &request, ctx.timeout())
            .await
    }
}

async fn run() -> bool {
    let (server, s, client, _) = support::pair().await;
    echo::register_on(&server, Server);
    relay::register_on(&server, Server);

    let mut ok = true;
    let r = echo::EchoClient::new(&client)
        .call_with_timeout(
            s,
            &Request {
                msg: "async".into(),
            },
            Duration::from_secs(30),
        )
        .await;
    ok &= support::check(
        "macro client → async server",
        r.is_ok_and(|r| r.msg.starts_with("async (") && !r.msg.contains("(30s")),
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
        "plugin client → async server",
        r.is_ok_and(|r| r.msg.starts_with("plugin (")),
    );
    let r = relay::RelayClient::new(&client)
        .relay_with_timeout(
            s,
            &Request {
                msg: "relayed".into(),
            },
            Duration::from_secs(3),
        )
        .await;
    ok &= support::check(
        "deadline inherited through ctx",
        r.is_ok_and(|r| r.msg == "relayed (2s left)" || r.msg == "relayed (1s left)"),
    );
    client.shutdown().await;
    server.shutdown().await;
    ok
}

#[tokio::main]
async fn main() -> ExitCode {
    support::exit_code("async_echo", run()).await
}
