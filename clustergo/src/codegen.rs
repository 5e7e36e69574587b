//! The one door generated code uses to reach the runtime. Not a public API: its
//! contents follow what the code generators emit.

pub use crate::addr::LogicAddr;
pub use crate::global::default_node;
pub use crate::node::Node;
pub use crate::rpc::{
    CallHandle, Codec, ProstCodec, Replyer, RpcContext, RpcError, call, call_with_callback, post,
    register, register_async,
};
pub use core::time::Duration;
pub use prost;
pub use tokio::time::Instant;
