use clustergo::{Replyer, RpcContext};

pub struct M;

#[clustergo::service(colour = "blue", codec = "Text", package = 7, crate = 1, bare)]
pub trait Args {
    fn call_me(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
}

fn main() {}
