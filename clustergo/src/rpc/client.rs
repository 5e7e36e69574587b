//! The calling side: calls waiting for their response.
//!
//! Every call ends exactly once. Whoever removes a call from the pending map owns
//! its completion: the response, the timeout, [`CallHandle::cancel`], or a lost
//! link (`fail_hop`). A cancelled call's sender is dropped without a value, which is
//! how its waiter tells cancellation from every other ending.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::RpcError;
use super::wire::Response;
use crate::addr::LogicAddr;
use crate::fastmap::IntMap;
use crate::node::NodeInner;

type Reply = Result<Bytes, RpcError>;

#[derive(Debug)]
struct PendingCall {
    /// The peer the request went through (the target, or a harbor).
    hop: LogicAddr,
    target: LogicAddr,
    tx: oneshot::Sender<Reply>,
}

/// Shards of the pending map, to keep concurrent calls off one lock.
const SHARDS: usize = 16;

/// Calls in flight, by sequence number.
#[derive(Debug)]
pub(crate) struct Client {
    next_seq: AtomicU64,
    shards: [Mutex<IntMap<u64, PendingCall>>; SHARDS],
}

impl Default for Client {
    fn default() -> Self {
        Self {
            next_seq: AtomicU64::new(1),
            shards: std::array::from_fn(|_| Mutex::new(IntMap::default())),
        }
    }
}

impl Client {
    fn shard(&self, seq: u64) -> &Mutex<IntMap<u64, PendingCall>> {
        &self.shards[(seq as usize) % SHARDS]
    }

    /// Registers a call; the returned receiver gets its ending.
    pub(crate) fn begin(
        &self,
        target: LogicAddr,
        hop: LogicAddr,
    ) -> (u64, oneshot::Receiver<Reply>) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.shard(seq)
            .lock()
            .insert(seq, PendingCall { hop, target, tx });
        (seq, rx)
    }

    /// Removes a call without completing it. True if it was still pending.
    pub(crate) fn forget(&self, seq: u64) -> bool {
        self.shard(seq).lock().remove(&seq).is_some()
    }

    /// Ends a call with `result`, if still pending.
    fn finish(&self, seq: u64, result: Reply) {
        if let Some(call) = self.shard(seq).lock().remove(&seq) {
            let _ = call.tx.send(result);
        }
    }

    /// Delivers a response body from `from`.
    pub(crate) fn complete(&self, from: LogicAddr, body: Bytes) {
        match Response::decode(body) {
            Ok(resp) => {
                let result = if resp.code == 0 {
                    Ok(resp.ret)
                } else {
                    Err(RpcError::from_wire(resp.code, resp.text, from))
                };
                self.finish(resp.seq, result);
            }
            Err(e) => tracing::warn!(%from, error = %e, "dropping malformed rpc response"),
        }
    }

    /// Fails every call that went through `hop`: its link is gone.
    pub(crate) fn fail_hop(&self, hop: LogicAddr) {
        for shard in &self.shards {
            let lost: Vec<PendingCall> = {
                let mut map = shard.lock();
                let seqs: Vec<u64> = map
                    .iter()
                    .filter(|(_, c)| c.hop == hop)
                    .map(|(s, _)| *s)
                    .collect();
                seqs.into_iter().filter_map(|s| map.remove(&s)).collect()
            };
            for call in lost {
                let _ = call.tx.send(Err(RpcError::Disconnected(call.target)));
            }
        }
    }

    /// Fails every pending call (node stopping).
    pub(crate) fn fail_all(&self, err: RpcError) {
        for shard in &self.shards {
            let calls: Vec<PendingCall> = shard.lock().drain().map(|(_, c)| c).collect();
            for call in calls {
                let _ = call.tx.send(Err(err.clone()));
            }
        }
    }
}

/// A registered call, waiting for its ending. Dropping it forgets the call.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) node: Arc<NodeInner>,
    pub(crate) seq: u64,
    pub(crate) rx: oneshot::Receiver<Reply>,
}

impl Waiter {
    /// Waits for the reply until `deadline`.
    pub(crate) async fn wait(mut self, deadline: Instant) -> Reply {
        let result = match tokio::time::timeout_at(deadline, &mut self.rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(RpcError::Cancelled),
            Err(_) => {
                if self.node.rpc_client.forget(self.seq) {
                    Err(RpcError::Timeout)
                } else {
                    // Completed or cancelled just now.
                    match self.rx.try_recv() {
                        Ok(reply) => reply,
                        Err(_) => Err(RpcError::Cancelled),
                    }
                }
            }
        };
        self.seq = 0;
        result
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.seq != 0 {
            self.node.rpc_client.forget(self.seq);
        }
    }
}

/// Cancels a call made with a callback.
#[derive(Debug, Clone)]
pub struct CallHandle {
    node: Option<Arc<NodeInner>>,
    seq: u64,
}

impl CallHandle {
    pub(crate) fn new(node: Arc<NodeInner>, seq: u64) -> Self {
        Self {
            node: Some(node),
            seq,
        }
    }

    /// A handle for a call that already ended (its callback ran or will run).
    pub(crate) fn finished() -> Self {
        Self { node: None, seq: 0 }
    }

    /// Cancels the call. True if it was still pending: its callback will not run.
    /// False if it already ended (the callback ran or is running).
    pub fn cancel(&self) -> bool {
        self.node
            .as_ref()
            .is_some_and(|node| node.rpc_client.forget(self.seq))
    }
}
