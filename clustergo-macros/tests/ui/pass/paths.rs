//! Types written relative to the trait's module (`self::..`, `super::..`) keep
//! working although the generated items live one module deeper.
use clustergo::{Replyer, RpcContext};

pub mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Ping {
        #[prost(uint32, tag = "1")]
        pub n: u32,
    }
}

pub mod api {
    use clustergo::{Replyer, RpcContext};

    #[clustergo::service(package = "paths")]
    pub trait Relative {
        fn up(&self, ctx: RpcContext, replyer: Replyer<super::pb::Ping>, request: super::pb::Ping);
        fn here(
            &self,
            ctx: RpcContext,
            replyer: Replyer<self::local::Pong>,
            request: self::local::Pong,
        );
    }

    pub mod local {
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Pong {
            #[prost(string, tag = "1")]
            pub s: String,
        }
    }
}

#[clustergo::service(codec = self::codec::Raw)]
pub trait RawService {
    fn raw(&self, ctx: RpcContext, replyer: Replyer<bytes::Bytes>, request: bytes::Bytes);
}

pub mod codec {
    pub use clustergo::rpc::BytesCodec as Raw;
}

fn main() {
    let _ = api::relative::UP_METHOD;
    let _ = raw::RAW_METHOD;
}
