use clustergo::{Replyer, RpcContext, RpcError};

pub struct M;

#[clustergo::service]
pub trait AsyncMethods {
    async fn no_result(&self, ctx: RpcContext, request: M) -> M;
    async fn no_return(&self, ctx: RpcContext, request: M);
    async fn with_replyer(&self, ctx: RpcContext, replyer: Replyer<M>, request: M) -> Result<M, RpcError>;
    fn replyer_form(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
}

fn main() {}
