//! Request and response types must be messages of the service's codec (prost by
//! default): the error points at the type in the method.
use clustergo::{Replyer, RpcContext};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {}

pub struct NotMsg;

#[clustergo::service]
pub trait Typed {
    fn bad_request(&self, ctx: RpcContext, replyer: Replyer<Msg>, request: NotMsg);
    fn bad_response(&self, ctx: RpcContext, replyer: Replyer<NotMsg>, request: Msg);
}

fn main() {}
