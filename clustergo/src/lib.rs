//! clustergo: a framework for game-server clusters.
//!
//! Nodes know each other by a [`LogicAddr`] (`cluster.type.server`); membership lists
//! them; connections are made on the first send; messages, RPCs and streams flow over
//! them; harbors carry traffic between clusters.
//!
//! # Layout
//! - [`addr`]: logical addresses.
//! - [`codec`]: the frame format between nodes.
//! - [`membership`]: who is in the cluster, backends, and the visibility rules.
//! - [`rpc`]: request/response wire, errors, codecs.

pub mod addr;
pub mod codec;
pub mod gate;
pub mod membership;
pub mod rpc;

pub use addr::{Addr, AddrError, LogicAddr};
