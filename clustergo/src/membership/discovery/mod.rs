//! The discovery server and its client: the embedded default membership backend.
//!
//! A [`DiscoveryServer`] holds the member list and serves it over TCP as
//! length-prefixed JSON frames (the protocol is documented on the server). Nodes
//! subscribe with a [`DiscoveryClient`]; tools change the list through the client's
//! [`MembershipAdmin`](super::MembershipAdmin) side or the server handle itself.
//!
//! Every connection first proves the cluster secret with the node handshake
//! ([`crate::handshake`]); the server bounds connections, idle time and the list's
//! size (see [`DiscoveryServerConfig`]).

mod auth;
mod client;
pub(crate) mod proto;
mod server;

pub use auth::DISCOVERY_ID;
pub use client::DiscoveryClient;
pub use proto::DISCOVERY_MAX_FRAME;
pub use server::{DiscoveryServer, DiscoveryServerConfig};
