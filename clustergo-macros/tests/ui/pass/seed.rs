//! The seed shape: one `on_call` method, wire name "echo", every generated item.
use clustergo::{LogicAddr, Node, Replyer, RpcContext, RpcError};

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

/// Echo service.
#[clustergo::service]
pub trait EchoService {
    /// Echoes.
    fn on_call(&self, ctx: RpcContext, replyer: Replyer<Response>, request: Request);
}

struct Impl;

impl EchoService for Impl {
    fn on_call(&self, _ctx: RpcContext, replyer: echo::Replyer, request: Request) {
        replyer.reply(Response { msg: request.msg });
    }
}

#[allow(dead_code)]
async fn uses(node: &Node, peer: LogicAddr) -> Result<(), RpcError> {
    echo::register(Impl);
    echo::register_on(node, Impl);
    let req = Request { msg: "x".into() };
    let _: Response = echo::call(peer, &req).await?;
    let _: Response = echo::call_with_timeout(peer, &req, std::time::Duration::from_secs(1)).await?;
    let handle = echo::call_with_callback(peer, clustergo::Instant::now(), &req, |r: Result<Response, RpcError>| drop(r));
    let _: bool = handle.cancel();
    echo::post(peer, &req)?;
    let client = echo::EchoClient::new(node);
    let _ = client.call(peer, &req).await?;
    let _ = client.call_with_timeout(peer, &req, std::time::Duration::from_secs(1)).await?;
    let _ = client.call_with_callback(peer, clustergo::Instant::now(), &req, |_| {});
    client.post(peer, &req)?;
    let _: &str = echo::METHOD;
    assert_eq!(echo::METHOD, "echo");
    Ok(())
}

fn main() {}
