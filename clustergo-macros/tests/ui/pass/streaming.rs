//! Streaming methods of the three kinds, beside replyer-form unary methods: they
//! take the async shape whatever the service's form.
use clustergo::{LogicAddr, Node, Replyer, RpcContext, RpcError, StreamSender, Streaming};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(string, tag = "1")]
    pub text: String,
}

/// Streams.
#[clustergo::service(package = "demo")]
pub trait Feed {
    /// Unary, replyer form.
    fn get(&self, ctx: RpcContext, replyer: Replyer<Msg>, request: Msg);
    /// Server-streaming.
    async fn watch(
        &self,
        ctx: RpcContext,
        request: Msg,
        responses: StreamSender<Msg>,
    ) -> Result<(), RpcError>;
    /// Client-streaming.
    async fn upload(&self, ctx: RpcContext, requests: Streaming<Msg>) -> Result<Msg, RpcError>;
    /// Bidirectional.
    async fn chat(
        &self,
        ctx: RpcContext,
        requests: Streaming<Msg>,
        responses: StreamSender<Msg>,
    ) -> Result<(), RpcError>;
}

struct Impl;

impl Feed for Impl {
    fn get(&self, _: RpcContext, replyer: feed::GetReplyer, request: Msg) {
        replyer.reply(request);
    }

    async fn watch(
        &self,
        _: RpcContext,
        request: Msg,
        mut responses: StreamSender<Msg>,
    ) -> Result<(), RpcError> {
        responses.send(request).await
    }

    async fn upload(&self, _: RpcContext, requests: Streaming<Msg>) -> Result<Msg, RpcError> {
        requests.single().await
    }

    async fn chat(
        &self,
        _: RpcContext,
        mut requests: Streaming<Msg>,
        mut responses: StreamSender<Msg>,
    ) -> Result<(), RpcError> {
        while let Some(m) = requests.message().await? {
            responses.send(m).await?;
        }
        Ok(())
    }
}

#[allow(dead_code)]
async fn uses(node: &Node, peer: LogicAddr) -> Result<(), RpcError> {
    feed::register_on(node, Impl);
    let m = Msg { text: "x".into() };
    let client = feed::FeedClient::new(node);
    let mut events: Streaming<Msg> = client.watch(peer, m.clone()).await?;
    let _ = events.message().await?;
    let (mut up, total) = feed::upload(peer).await?;
    up.send(m.clone()).await?;
    drop(up);
    let _: Msg = total.await?;
    let (mut tx, mut rx) = client.chat_with_timeout(peer, std::time::Duration::from_secs(1)).await?;
    tx.send(m).await?;
    let _ = rx.message().await?;
    Ok(())
}

fn main() {}
