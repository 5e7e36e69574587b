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

/// Streaming methods of the three kinds.
#[renamed_runtime::service(package = "p")]
pub trait Streams {
    async fn watch(
        &self,
        ctx: ::clustergo::RpcContext,
        request: Msg,
        responses: ::clustergo::StreamSender<Msg>,
    ) -> ::std::result::Result<(), ::clustergo::RpcError>;
    async fn upload(
        &self,
        ctx: ::clustergo::RpcContext,
        requests: ::clustergo::Streaming<Msg>,
    ) -> ::std::result::Result<Msg, ::clustergo::RpcError>;
    async fn chat(
        &self,
        ctx: ::clustergo::RpcContext,
        requests: ::clustergo::Streaming<Msg>,
        responses: ::clustergo::StreamSender<Msg>,
    ) -> ::std::result::Result<(), ::clustergo::RpcError>;
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

impl Streams for Impl {
    async fn watch(
        &self,
        _: ::clustergo::RpcContext,
        _: Msg,
        _: ::clustergo::StreamSender<Msg>,
    ) -> ::std::result::Result<(), ::clustergo::RpcError> {
        ::std::result::Result::Ok(())
    }
    async fn upload(
        &self,
        _: ::clustergo::RpcContext,
        _: ::clustergo::Streaming<Msg>,
    ) -> ::std::result::Result<Msg, ::clustergo::RpcError> {
        ::std::result::Result::Ok(Msg {})
    }
    async fn chat(
        &self,
        _: ::clustergo::RpcContext,
        _: ::clustergo::Streaming<Msg>,
        _: ::clustergo::StreamSender<Msg>,
    ) -> ::std::result::Result<(), ::clustergo::RpcError> {
        ::std::result::Result::Ok(())
    }
}

fn main() {
    let node = ::clustergo::Node::new();
    streams::register_on(&node, Impl);
    let _streaming = streams::StreamsClient::new(&node);
    echo::register_on(&node, Impl);
    many::register_on(&node, Impl);
    let _client = many::ManyClient::new(&node);
}
