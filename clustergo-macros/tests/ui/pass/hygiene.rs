//! Generated code under `#![no_implicit_prelude]`, beside user items that shadow
//! the prelude and std names it might otherwise have used.
#![no_implicit_prelude]

extern crate clustergo as renamed_runtime;
extern crate prost;

#[derive(::std::clone::Clone, ::std::cmp::PartialEq, ::std::fmt::Debug, ::std::default::Default)]
pub struct Msg {}

impl ::prost::Message for Msg {
    fn encode_raw(&self, _: &mut impl ::prost::bytes::BufMut) {}
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: ::prost::encoding::WireType,
        buf: &mut impl ::prost::bytes::Buf,
        ctx: ::prost::encoding::DecodeContext,
    ) -> ::std::result::Result<(), ::prost::DecodeError> {
        ::prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        0
    }
    fn clear(&mut self) {}
}

// Names a careless generator would trip over.
pub struct Result;
pub struct Option;
pub struct Box;
pub struct Arc;
pub struct Node;
pub struct Duration;
pub trait Send {}
pub trait Sync {}
pub trait Clone {}
pub trait Fn {}
pub mod core {}
pub mod std {}

#[::clustergo::service]
pub trait EchoService {
    fn on_call(
        &self,
        ctx: ::clustergo::RpcContext,
        replyer: ::clustergo::Replyer<Msg>,
        request: Msg,
    );
}

#[renamed_runtime::service(package = "p")]
pub trait Many {
    fn first(&self, ctx: ::clustergo::RpcContext, replyer: ::clustergo::Replyer<Msg>, request: Msg);
    fn second(&self, ctx: ::clustergo::RpcContext, replyer: ::clustergo::Replyer<Msg>, request: Msg);
}

pub struct Impl;

impl EchoService for Impl {
    fn on_call(&self, _: ::clustergo::RpcContext, r: echo::Replyer, q: Msg) {
        r.reply(q);
    }
}

impl Many for Impl {
    fn first(&self, _: ::clustergo::RpcContext, r: many::FirstReplyer, q: Msg) {
        r.reply(q);
    }
    fn second(&self, _: ::clustergo::RpcContext, r: many::SecondReplyer, q: Msg) {
        r.reply(q);
    }
}

fn main() {
    let node = ::clustergo::Node::new();
    echo::register_on(&node, Impl);
    many::register_on(&node, Impl);
    let _client = many::ManyClient::new(&node);
}
