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
//!
//! With [`DiscoveryServerConfig::tls`] and [`DiscoveryClient::with_tls`] the
//! connections run over TLS (rustls), the secret handshake inside it: the list and its
//! changes are then encrypted and cannot be altered in transit, and the client knows
//! it reached the real server by its certificate.

mod auth;
mod client;
pub(crate) mod proto;
mod server;
mod tls;

pub use auth::DISCOVERY_ID;
pub use client::DiscoveryClient;
pub use proto::DISCOVERY_MAX_FRAME;
pub use server::{DiscoveryServer, DiscoveryServerConfig};
