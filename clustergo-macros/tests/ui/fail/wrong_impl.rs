//! Not a macro diagnostic: implementing the generated trait with the wrong
//! replyer type is a type error that points at the user's impl.
use clustergo::{Replyer, RpcContext};

#[derive(Clone, PartialEq, prost::Message)]
pub struct A {}
#[derive(Clone, PartialEq, prost::Message)]
pub struct B {}

#[clustergo::service]
pub trait EchoService {
    fn on_call(&self, ctx: RpcContext, replyer: Replyer<B>, request: A);
}

struct Impl;

impl EchoService for Impl {
    fn on_call(&self, _: RpcContext, _: Replyer<A>, _: A) {}
}

fn main() {}
