use clustergo::{RpcContext, RpcError, StreamSender, Streaming};

pub struct M;

#[clustergo::service]
pub trait StreamShapes {
    fn not_async(&self, ctx: RpcContext, requests: Streaming<M>) -> Result<M, RpcError>;
    async fn unit_response(&self, ctx: RpcContext, requests: Streaming<M>) -> Result<(), RpcError>;
    async fn returns_value(
        &self,
        ctx: RpcContext,
        request: M,
        responses: StreamSender<M>,
    ) -> Result<M, RpcError>;
    async fn codec_argument(&self, ctx: RpcContext, requests: Streaming<M, M>) -> Result<M, RpcError>;
    async fn sender_first(
        &self,
        ctx: RpcContext,
        responses: StreamSender<M>,
        request: M,
    ) -> Result<(), RpcError>;
}

fn main() {}
