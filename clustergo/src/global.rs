//! The process-wide default node and free functions over it, mirroring the Go
//! API (`clustergo.Start`, `clustergo.GetAddrByType`, …). Generated service modules
//! use it for their `register`/`call` functions; the `*_on` variants take a node.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::addr::LogicAddr;
use crate::membership::Membership;
use crate::node::{Node, SendError, StartError};

static DEFAULT: OnceLock<Node> = OnceLock::new();

/// The process-wide node, created with the default config on first use.
pub fn default_node() -> &'static Node {
    DEFAULT.get_or_init(Node::new)
}

/// Starts the default node. See [`Node::start`].
pub async fn start(membership: impl Membership, local: LogicAddr) -> Result<(), StartError> {
    default_node().start(membership, local).await
}

/// Stops the default node. See [`Node::stop`].
pub fn stop() {
    default_node().stop();
}

/// Waits for the default node to stop.
pub async fn wait() {
    default_node().wait().await;
}

/// See [`Node::get_addr_by_type`].
pub fn get_addr_by_type(typ: u32) -> Option<LogicAddr> {
    default_node().get_addr_by_type(typ)
}

/// See [`Node::send_pb`].
pub fn send_pb<M: prost::Message + 'static>(to: LogicAddr, msg: &M) -> Result<(), SendError> {
    default_node().send_pb(to, msg)
}

/// See [`Node::send_bin`].
pub fn send_bin(to: LogicAddr, cmd: u16, body: &[u8]) -> Result<(), SendError> {
    default_node().send_bin(to, cmd, body)
}

/// See [`Node::register_pb_handler`].
pub fn register_pb_handler<M, F>(cmd: u16, handler: F)
where
    M: prost::Message + Default + 'static,
    F: Fn(LogicAddr, M) + Send + Sync + 'static,
{
    default_node().register_pb_handler(cmd, handler);
}

/// See [`Node::register_bin_handler`].
pub fn register_bin_handler<F>(cmd: u16, handler: F)
where
    F: Fn(LogicAddr, u16, Bytes) + Send + Sync + 'static,
{
    default_node().register_bin_handler(cmd, handler);
}
