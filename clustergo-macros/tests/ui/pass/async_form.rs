//! The async form: `async fn` methods returning `Result<Response, RpcError>`.
use clustergo::{LogicAddr, Node, RpcContext, RpcError};

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

/// Greeter, async form.
#[clustergo::service(package = "demo")]
pub trait Greeter {
    /// Greets.
    async fn say_hello(&self, ctx: RpcContext, request: Request) -> Result<Response, RpcError>;
}

struct Impl;

impl Greeter for Impl {
    async fn say_hello(&self, ctx: RpcContext, request: Request) -> Result<Response, RpcError> {
        // A call through ctx inherits the remaining deadline.
        let _left = ctx.remaining();
        Ok(Response { msg: request.msg })
    }
}

#[allow(dead_code)]
async fn uses(node: &Node, peer: LogicAddr) -> Result<(), RpcError> {
    greeter::register_on(node, Impl);
    let req = Request { msg: "x".into() };
    let _: Response = greeter::say_hello(peer, &req).await?;
    Ok(())
}

fn main() {}
