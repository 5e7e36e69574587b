//! The calling side: calls waiting for their response.
//!
//! Every call ends exactly once. Whoever removes a call from the pending map owns
//! its completion: the response, the timeout, [`CallHandle::cancel`], or a lost
//! reply path (`fail_via`: the link of the peer its request left through is lost;
//! `fail_relayed_via`: that peer, a harbor, left membership). A call ends one of two
//! ways:
//! - **awaited** (`call`): a oneshot to the waiting future, which keeps its own
//!   timer. A cancelled call's sender is dropped without a value.
//! - **callback** (`call_with_callback`): the callback itself sits in the map and
//!   runs where the ending happens — on the link's receive path for a reply, on the
//!   node's sweeper task for a timeout (checked every [`SWEEP`]), on the driver for a
//!   lost link. No task or timer per call. Cancelling drops it unrun.
//!
//! A reply is bound to its call: its id (`seq`) names the call, and its sender must
//! be the call's target. Ids never repeat across restarts of a node ([`first_seq`]),
//! so a reply meant for a previous incarnation names no call of this one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::collections::hash_map::Entry;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::RpcError;
use super::wire::{Form, Response};
use crate::addr::LogicAddr;
use crate::fastmap::IntMap;
use crate::message::panic_text;
use crate::node::NodeInner;

pub(crate) type Reply = Result<Bytes, RpcError>;

/// What runs when a callback call ends.
pub(crate) type Callback = Box<dyn FnOnce(Reply) + Send>;

/// How often callback deadlines are checked: a callback's timeout fires up to this
/// late.
pub(crate) const SWEEP: Duration = Duration::from_millis(5);

/// How a call's ending is delivered.
pub(crate) enum Completion {
    /// To an awaiting future.
    Wait(oneshot::Sender<Reply>),
    /// To a callback, with the deadline the sweeper enforces.
    Callback { cb: Callback, deadline: Instant },
}

impl Completion {
    /// Delivers `reply`. A panicking callback is logged, never propagated.
    pub(crate) fn finish(self, reply: Reply) {
        match self {
            Self::Wait(tx) => {
                let _ = tx.send(reply);
            }
            Self::Callback { cb, .. } => {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| cb(reply))) {
                    tracing::error!(panic = %panic_text(&*panic), "rpc callback panicked");
                }
            }
        }
    }
}

struct PendingCall {
    /// The id of the peer the request left through (the target, or a harbor, whose
    /// link the reply comes back on); 0 for a call to this node itself.
    via: u64,
    target: LogicAddr,
    done: Completion,
}

/// Shards of the pending map, to keep concurrent calls off one lock.
const SHARDS: usize = 16;

/// Calls in flight, by sequence number.
pub(crate) struct Client {
    next_seq: AtomicU64,
    shards: [Mutex<IntMap<u64, PendingCall>>; SHARDS],
    /// Callback calls pending: the sweeper sleeps while there are none.
    callbacks: AtomicUsize,
    first_callback: Notify,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("callbacks", &self.callbacks.load(Ordering::Relaxed))
            .finish()
    }
}

/// The first call id of this process: the start time in microseconds in the high
/// bits, a counter in the low 12. A restarted node starts above every id its
/// previous incarnation used unless that one made over 4096 calls per microsecond
/// it ran (or the clock went back by as much). Id 0 is never used ("no call").
fn first_seq() -> u64 {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or_else(|_| fastrand::u64(..), |d| d.as_micros() as u64);
    (micros << 12).max(1)
}

impl Default for Client {
    fn default() -> Self {
        Self {
            next_seq: AtomicU64::new(first_seq()),
            shards: std::array::from_fn(|_| Mutex::new(IntMap::default())),
            callbacks: AtomicUsize::new(0),
            first_callback: Notify::new(),
        }
    }
}

impl Client {
    /// The shard of `seq`: the low bits, where the counter moves.
    fn shard(&self, seq: u64) -> &Mutex<IntMap<u64, PendingCall>> {
        &self.shards[(seq as usize) % SHARDS]
    }

    /// Registers a call sent through the peer `via`; `done` gets its ending.
    pub(crate) fn begin(&self, target: LogicAddr, via: u64, done: Completion) -> u64 {
        let mut seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        if seq == 0 {
            // Wrapped around (after 2^64 calls): 0 means "no call".
            seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        }
        if matches!(done, Completion::Callback { .. })
            && self.callbacks.fetch_add(1, Ordering::AcqRel) == 0
        {
            self.first_callback.notify_one();
        }
        self.shard(seq)
            .lock()
            .insert(seq, PendingCall { via, target, done });
        seq
    }

    /// Removes a pending call, keeping the callback count right.
    fn take(&self, seq: u64) -> Option<Completion> {
        let call = self.shard(seq).lock().remove(&seq)?;
        Some(self.untrack(call))
    }

    fn untrack(&self, call: PendingCall) -> Completion {
        if matches!(call.done, Completion::Callback { .. }) {
            self.callbacks.fetch_sub(1, Ordering::AcqRel);
        }
        call.done
    }

    /// Removes a call without completing it. True if it was still pending.
    pub(crate) fn forget(&self, seq: u64) -> bool {
        self.take(seq).is_some()
    }

    /// Removes a call that could not be sent, giving its completion back.
    pub(crate) fn abandon(&self, seq: u64) -> Option<Completion> {
        self.take(seq)
    }

    /// Delivers a response body from `from`. A reply naming no pending call (late,
    /// or for a previous incarnation) is ignored. False if it names a call to
    /// another node than `from`: a forgery, dropped and left pending.
    pub(crate) fn complete(&self, form: Form, from: LogicAddr, body: Bytes) -> bool {
        let resp = match Response::decode_as(form, body) {
            Ok(resp) => resp,
            Err(e) => {
                tracing::warn!(%from, error = %e, "dropping malformed rpc response");
                return true;
            }
        };
        let call = {
            let mut map = self.shard(resp.seq).lock();
            match map.entry(resp.seq) {
                Entry::Occupied(e) if e.get().target == from => e.remove(),
                Entry::Occupied(_) => return false,
                Entry::Vacant(_) => return true,
            }
        };
        self.untrack(call).finish(if resp.code == 0 {
            Ok(resp.ret)
        } else {
            Err(RpcError::from_wire(resp.code, resp.text, from))
        });
        true
    }

    /// Removes and returns the calls matching `pred`.
    fn drain_where(
        &self,
        mut pred: impl FnMut(&PendingCall) -> bool,
    ) -> Vec<(LogicAddr, Completion)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let mut map = shard.lock();
            let seqs: Vec<u64> = map
                .iter()
                .filter(|(_, c)| pred(c))
                .map(|(s, _)| *s)
                .collect();
            for seq in seqs {
                if let Some(call) = map.remove(&seq) {
                    let target = call.target;
                    out.push((target, self.untrack(call)));
                }
            }
        }
        out
    }

    /// Fails every call that went through the peer `via`: its link is gone, and the
    /// replies with it.
    pub(crate) fn fail_via(&self, via: u64) {
        self.fail_where(|c| c.via == via);
    }

    /// Fails the calls that went through the peer `via` to another node than `hop`:
    /// `hop` (a harbor on their path) left membership. Calls to `hop` itself keep
    /// waiting: a removed member still answers what it serves.
    pub(crate) fn fail_relayed_via(&self, via: u64, hop: LogicAddr) {
        self.fail_where(|c| c.via == via && c.target != hop);
    }

    /// Moves the calls waiting on the peer `from` to the peer `new_via(target)`
    /// names: a harbor on their path is draining, so their replies now come back
    /// through another one. Calls without a new peer stay where they are.
    pub(crate) fn reroute_via(&self, from: u64, mut new_via: impl FnMut(LogicAddr) -> Option<u64>) {
        let mut targets: Vec<LogicAddr> = Vec::new();
        for shard in &self.shards {
            targets.extend(
                shard
                    .lock()
                    .values()
                    .filter(|c| c.via == from)
                    .map(|c| c.target),
            );
        }
        targets.sort_unstable();
        targets.dedup();
        // Routed outside the shard locks.
        let moves: Vec<(LogicAddr, u64)> = targets
            .into_iter()
            .filter_map(|t| new_via(t).map(|via| (t, via)))
            .collect();
        if moves.is_empty() {
            return;
        }
        for shard in &self.shards {
            for call in shard.lock().values_mut().filter(|c| c.via == from) {
                if let Ok(i) = moves.binary_search_by_key(&call.target, |m| m.0) {
                    call.via = moves[i].1;
                }
            }
        }
    }

    /// Whether any call through the peer `via` is still waiting.
    pub(crate) fn waits_on(&self, via: u64) -> bool {
        self.shards
            .iter()
            .any(|shard| shard.lock().values().any(|c| c.via == via))
    }

    fn fail_where(&self, pred: impl FnMut(&PendingCall) -> bool) {
        for (target, done) in self.drain_where(pred) {
            done.finish(Err(RpcError::Disconnected(target)));
        }
    }

    /// Fails every call through the peer `via` with `Unreachable`: it is known down
    /// and their requests were never written.
    pub(crate) fn fail_via_unreachable(&self, via: u64) {
        for (target, done) in self.drain_where(|c| c.via == via) {
            done.finish(Err(RpcError::Unreachable(target)));
        }
    }

    /// Fails every pending call (node stopping).
    pub(crate) fn fail_all(&self, err: RpcError) {
        for (_, done) in self.drain_where(|_| true) {
            done.finish(Err(err.clone()));
        }
    }

    /// Times out callback calls whose deadline passed.
    fn sweep(&self, now: Instant) {
        let expired = self.drain_where(
            |c| matches!(c.done, Completion::Callback { deadline, .. } if deadline <= now),
        );
        for (_, done) in expired {
            done.finish(Err(RpcError::Timeout));
        }
    }
}

/// The node's sweeper: enforces callback deadlines while any are pending.
pub(crate) async fn sweeper(node: Arc<NodeInner>) {
    let client = node.rpc_client();
    loop {
        if client.callbacks.load(Ordering::Acquire) == 0 {
            tokio::select! {
                biased;
                _ = node.links().cancelled() => return,
                _ = client.first_callback.notified() => {}
            }
            continue;
        }
        tokio::select! {
            biased;
            _ = node.links().cancelled() => return,
            _ = tokio::time::sleep(SWEEP) => {}
        }
        client.sweep(Instant::now());
    }
}

/// A registered awaited call. Dropping it forgets the call.
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
                if self.node.rpc_client().forget(self.seq) {
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
            self.node.rpc_client().forget(self.seq);
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
            .is_some_and(|node| node.rpc_client().forget(self.seq))
    }
}
