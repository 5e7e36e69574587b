//! The discovery server and its client: the embedded default membership backend.
//!
//! A [`DiscoveryServer`] holds the member list and serves it over TCP (the protocol
//! is described in the `proto` module: length-prefixed JSON frames). Nodes subscribe
//! with a [`DiscoveryClient`]; tools change the list through the client's
//! [`MembershipAdmin`](super::MembershipAdmin) side or the server handle itself.
//!
//! The server does not authenticate: anyone who can connect may change the list.
//! Bind it to a private interface.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use clustergo::membership::{DiscoveryClient, DiscoveryServer, Membership};
//! let server = DiscoveryServer::bind("127.0.0.1:0", []).await?;
//! let client = DiscoveryClient::new(server.local_addr());
//! let mut changes = client.subscribe().await?;
//! let first = changes.recv().await; // every member, as `added`
//! # Ok(()) }
//! ```

mod client;
mod proto;
mod server;

pub use client::DiscoveryClient;
pub use proto::DISCOVERY_MAX_FRAME;
pub use server::{DiscoveryServer, DiscoveryServerConfig};
