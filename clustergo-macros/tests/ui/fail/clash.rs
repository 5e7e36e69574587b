use clustergo::{Replyer, RpcContext};

pub struct M;

#[clustergo::service]
pub trait Clash {
    fn register(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn foo(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn foo_with_timeout(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    #[rpc(name = "Clash.Foo")]
    fn same_wire(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    // Client methods: `ClashClient::new` and `ClashClient::node` are generated.
    fn new(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn node(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
}

fn main() {}
