//! clustergo: a framework for game-server clusters.
//!
//! Nodes know each other by a [`LogicAddr`] (`cluster.type.server`); membership lists
//! them; connections are made on the first send; messages, RPCs and streams flow over
//! them; harbors carry traffic between clusters.
//!
//! # Layout
//! - [`addr`]: logical addresses.
//! - [`codec`]: the frame format between nodes.
//! - [`handshake`]: authenticated connection setup.
//! - `peer`: one remote node: lazy connection, pending queue, writer and reader;
//!   `batch`: what its writer sends in one vectored write; `framebuf`: the
//!   per-thread chunks small outgoing frames are encoded into; `readbuf`: where its
//!   reader reads frames to, and which relayed frames are copied out of it;
//!   `clock`: one clock reading lent to the frames of one socket read.
//! - `link`: the pure state of a peer's link (which connection wins a dial race).
//! - `backoff`: jittered reconnect delays for peers and membership backends.
//! - `message`: protobuf and binary message handlers.
//! - [`node`]: the [`Node`] handle and its parts: config, start, routing (direct or
//!   through harbors), dispatch and relay, accept/dial, membership changes, stop.
//! - [`rpc`]: calls, replies, errors, codecs; streaming calls ([`Streaming`],
//!   [`StreamSender`]) over node streams.
//! - [`stream`]: multiplexed byte streams between nodes (yamux); `coalesce`: the
//!   writer that sends yamux's frame headers with their bodies.
//! - [`membership`]: who is in the cluster, backends, and the visibility rules.
//! - `gocompat` (feature `go-compat`): the Go seed's wire dialect, to join a Go
//!   clustergo cluster ([`Dialect`]).
//! - [`gate`]: client-facing transports (TCP, WebSocket, KCP) with one packet API.
//! - `global`: the process-wide default node and free functions over it.
//! - `fuzzing` (feature `fuzzing`, hidden): fuzz target bodies shared by `fuzz/` and
//!   `tests/fuzz.rs`.

pub mod addr;
mod admin;
mod backoff;
mod batch;
mod clock;
mod coalesce;
pub mod codec;
#[doc(hidden)]
pub mod codegen;
mod conn;
mod fastmap;
mod framebuf;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
mod global;
#[cfg(feature = "go-compat")]
pub mod gocompat;
pub mod handshake;
mod keepalive;
mod link;
pub mod membership;
mod message;
pub mod node;
#[cfg(feature = "otel")]
pub mod otel;
mod peer;
mod readbuf;
pub mod rpc;
pub mod stream;
#[cfg(test)]
mod test_io;
pub mod tls;

pub use addr::{Addr, AddrError, LogicAddr};
pub use clustergo_macros::service;
pub use global::{
    default_node, get_addr_by_type, register_bin_handler, register_pb_handler, send_bin, send_pb,
    start, stop, wait,
};
pub use node::{Config, DEV_SECRET, Dialect, Metrics, Node, Secret, SendError, StartError};
pub use rpc::{
    CallHandle, Codec, CodecError, JsonCodec, ProstCodec, RawReplyer, Replyer, RpcContext,
    RpcError, StreamResponse, StreamSender, Streaming, TraceContext,
};
pub use stream::{Stream, StreamError};
pub use tls::{NodeTls, TlsError};
pub use tokio::time::Instant;
