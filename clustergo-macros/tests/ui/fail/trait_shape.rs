use clustergo::{Replyer, RpcContext};

pub struct M;

#[clustergo::service]
#[must_use]
pub unsafe trait Shape<T>: Clone {
    const X: u8;
    type Y;
    fn ok(&self, ctx: RpcContext, replyer: Replyer<M>, request: M);
}

fn main() {}
