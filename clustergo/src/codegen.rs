//! The one door generated code uses to reach the runtime. Not a public API: its
//! contents follow what the code generators emit.

pub use crate::addr::LogicAddr;
pub use crate::global::default_node;
pub use crate::node::Node;
pub use crate::rpc::{
    CallHandle, Codec, ProstCodec, Replyer, RpcContext, RpcError, StreamResponse, StreamSender,
    Streaming, call, call_bidi, call_client_stream, call_server_stream, call_with_callback, post,
    register, register_async, register_bidi, register_client_stream, register_server_stream,
};
pub use core::time::Duration;
pub use prost;
pub use tokio::time::Instant;
