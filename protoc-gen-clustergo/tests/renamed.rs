//! The runtime renamed in Cargo.toml (`cg = { package = "clustergo" }`) and no
//! prelude: `#[service(crate = ::cg)]` output still compiles and runs.
#![no_implicit_prelude]

extern crate std;

use std::clone::Clone;
use std::option::Option;
use std::prelude::rust_2024::{Box, Result};

/// A hand-written prost message (derives need the prelude).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Msg {
    n: u32,
}

impl ::prost::Message for Msg {
    fn encode_raw(&self, buf: &mut impl ::prost::bytes::BufMut) {
        ::prost::encoding::uint32::encode(1, &self.n, buf);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: ::prost::encoding::WireType,
        buf: &mut impl ::prost::bytes::Buf,
        ctx: ::prost::encoding::DecodeContext,
    ) -> Result<(), ::prost::DecodeError> {
        if tag == 1 {
            ::prost::encoding::uint32::merge(wire_type, &mut self.n, buf, ctx)
        } else {
            ::prost::encoding::skip_field(wire_type, tag, buf, ctx)
        }
    }
    fn encoded_len(&self) -> usize {
        ::prost::encoding::uint32::encoded_len(1, &self.n)
    }
    fn clear(&mut self) {
        self.n = 0;
    }
}

#[::cg::service(crate = ::cg)]
pub trait Counter {
    fn bump(&self, ctx: ::cg::RpcContext, replyer: ::cg::Replyer<Msg>, request: Msg);
}

struct Impl;

impl Counter for Impl {
    fn bump(&self, _: ::cg::RpcContext, r: counter::BumpReplyer, q: Msg) {
        r.reply(Msg { n: q.n + 1 });
    }
}

#[test]
fn renamed_runtime_calls_itself() {
    let rt = ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let m = ::cg::membership::InProcess::new();
        let listener = ::tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let me: ::cg::LogicAddr = "1.1.1".parse().unwrap();
        m.put_now(::cg::membership::Member {
            addr: ::cg::Addr::new(me, listener.local_addr().unwrap()),
            export: false,
            available: true,
        });
        let node = ::cg::Node::new();
        node.start_on(listener, Clone::clone(&m), me).await.unwrap();
        counter::register_on(&node, Impl);
        // Calling yourself needs no socket.
        let r = counter::CounterClient::new(&node)
            .bump(me, &Msg { n: 41 })
            .await
            .unwrap();
        ::std::assert_eq!(r.n, 42);
        let _unused: Option<Box<u8>> = Option::None;
        node.shutdown().await;
    });
}
