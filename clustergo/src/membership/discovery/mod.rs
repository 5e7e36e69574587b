//! The discovery server and its client: the embedded default membership backend.
//!
//! A [`DiscoveryServer`] holds the member list and serves it over TCP as
//! length-prefixed JSON frames (the protocol is documented on the server). Nodes
//! subscribe with a [`DiscoveryClient`]; tools change the list through the client's
//! [`MembershipAdmin`](super::MembershipAdmin) side or the server handle itself.
//!
//! The server does not authenticate: anyone who can connect may change the list.
//! Bind it to a private interface.

mod client;
mod proto;
mod server;

pub use client::DiscoveryClient;
pub use proto::DISCOVERY_MAX_FRAME;
pub use server::{DiscoveryServer, DiscoveryServerConfig};
