use clustergo::{Replyer, RpcContext};

pub struct M;

#[clustergo::service]
pub trait Methods {
    unsafe fn is_unsafe(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn generic<T>(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn returns(&self, ctx: RpcContext, replyer: Replyer<M>, request: M) -> u32;
    fn has_body(&self, ctx: RpcContext, replyer: Replyer<M>, request: M) {}
    fn mut_self(&mut self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn no_self(ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn two_args(&self, ctx: RpcContext, request: M);
    fn bad_ctx(&self, ctx: u32, replyer: Replyer<M>, request: M);
    fn bad_replyer(&self, ctx: RpcContext, replyer: Option<M>, request: M);
    fn replyer_codec(&self, ctx: RpcContext, replyer: Replyer<M, X>, request: M);
    fn borrowed(&self, ctx: RpcContext, replyer: Replyer<M>, request: &M);
    fn camelCase(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    #[rpc(nom = "x")]
    fn bad_rpc_key(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    #[rpc(name = "")]
    fn empty_wire(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
    fn only_self(&self);
    #[inline]
    fn other_attr(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
}

fn main() {}
