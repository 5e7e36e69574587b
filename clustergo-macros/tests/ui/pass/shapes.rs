//! Several methods, keyword names, `#[rpc(name)]`, `package`, a non-prost codec, and
//! private / `pub(crate)` traits.
use bytes::Bytes;
use clustergo::rpc::BytesCodec;
use clustergo::{Replyer, RpcContext};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(uint32, tag = "1")]
    pub n: u32,
}

#[clustergo::service(package = "game.lobby")]
pub trait Lobby {
    /// Joins.
    fn join(&self, ctx: RpcContext, replyer: Replyer<Msg>, request: Msg);
    fn r#type(&self, ctx: RpcContext, replyer: Replyer<Msg>, request: Msg);
    #[rpc(name = "custom.Wire")]
    fn renamed(&self, ctx: RpcContext, replyer: Replyer<Msg>, request: Msg);
}

#[clustergo::service(codec = BytesCodec)]
pub(crate) trait RawService {
    fn raw(&self, ctx: RpcContext, replyer: Replyer<Bytes>, request: Bytes);
}

#[clustergo::service]
trait ABCService {
    fn ping(&self, ctx: clustergo::RpcContext, replyer: clustergo::Replyer<Msg>, request: Msg);
}

struct Impl;

impl Lobby for Impl {
    fn join(&self, _: RpcContext, r: lobby::JoinReplyer, q: Msg) {
        r.reply(q);
    }
    fn r#type(&self, _: RpcContext, r: lobby::TypeReplyer, q: Msg) {
        r.reply(q);
    }
    fn renamed(&self, _: RpcContext, r: Replyer<Msg>, q: Msg) {
        r.reply(q);
    }
}

impl RawService for Impl {
    fn raw(&self, _: RpcContext, r: Replyer<Bytes, BytesCodec>, q: Bytes) {
        r.reply(q);
    }
}

impl ABCService for Impl {
    fn ping(&self, _: RpcContext, r: abc::PingReplyer, q: Msg) {
        r.reply(q);
    }
}

fn main() {
    assert_eq!(lobby::JOIN_METHOD, "game.lobby.Lobby.Join");
    assert_eq!(lobby::TYPE_METHOD, "game.lobby.Lobby.Type");
    assert_eq!(lobby::RENAMED_METHOD, "custom.Wire");
    assert_eq!(raw::RAW_METHOD, "Raw.Raw"); // the base: like proto `service Raw`
    assert_eq!(abc::PING_METHOD, "Abc.Ping"); // UpperCamel base, as trait `AbcService`
    let node = clustergo::Node::new();
    lobby::register_on(&node, Impl);
    raw::register_on(&node, Impl);
    abc::register_on(&node, Impl);
    let _ = lobby::r#type;
    let _ = lobby::post_type;
    let _ = lobby::LobbyClient::new(&node);
}
