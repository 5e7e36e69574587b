//! The calling side: calls waiting for their response.
//!
//! Every call ends exactly once. Whoever removes a call from the pending map owns
//! its completion: the response, the timeout, [`CallHandle::cancel`], or a lost
//! reply path (`fail_via`: the link of the peer its request left through is lost;
//! `fail_relayed_via`: that peer, a harbor, left membership). A call ends one of two
//! ways:
//! - **awaited** (`call`): a oneshot to the waiting future. Dropping the future
//!   forgets the call; a call removed without a value (cancelled) drops the sender.
//! - **callback** (`call_with_callback`): the callback itself sits in the map and
//!   runs where the ending happens — on the link's receive path for a reply, on the
//!   node's sweeper task for a timeout, on the driver for a lost link. Cancelling
//!   drops it unrun.
//!
//! Neither has a task or timer of its own: a call's deadline sits in the map, and
//! the node's sweeper times calls out. It sleeps until the earliest deadline it
//! knows of, but sweeps at most every [`SWEEP`], so a timeout fires up to [`SWEEP`]
//! late; a call that would be timed out later than that wakes it (`next_sweep`).
//! With calls of one timeout it wakes about once per timeout, whatever the rate.
//! (A tokio timer per awaited call, registered and cancelled in the runtime's timer
//! wheel, was about 15 % of the CPU of 500 awaited calls in flight: BENCHMARKS.md,
//! "Awaited calls timed by the sweeper".)
//!
//! A reply is bound to its call: its id (`seq`) names the call, and its sender must
//! be the call's target. Ids never repeat across restarts of a node ([`first_seq`]),
//! so a reply meant for a previous incarnation names no call of this one.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
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

/// The least time between two sweeps of pending calls' deadlines: a call's
/// timeout fires up to this late.
pub(crate) const SWEEP: Duration = Duration::from_millis(5);

/// How a call's ending is delivered.
pub(crate) enum Completion {
    /// To an awaiting future.
    Wait(oneshot::Sender<Reply>),
    /// To a callback.
    Callback(Callback),
}

impl Completion {
    /// Delivers `reply`. A panicking callback is logged, never propagated.
    pub(crate) fn finish(self, reply: Reply) {
        match self {
            Self::Wait(tx) => {
                let _ = tx.send(reply);
            }
            Self::Callback(cb) => {
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
    /// When the sweeper times it out.
    deadline: Instant,
    done: Completion,
}

/// Shards of the pending map, to keep concurrent calls off one lock.
const SHARDS: usize = 16;

/// Calls in flight, by sequence number.
pub(crate) struct Client {
    next_seq: AtomicU64,
    shards: [Mutex<IntMap<u64, PendingCall>>; SHARDS],
    /// When the sweeper wakes next, in [`Client::tick`]s ([`IDLE`]: not until woken).
    /// A call whose deadline is more than [`SWEEP`] before it lowers it and wakes
    /// the sweeper through `wake`; other calls only read it: no shared counter per
    /// call.
    next_sweep: AtomicU64,
    wake: Notify,
    /// The origin of ticks.
    base: Instant,
    /// Set when the node stops (`fail_all`): later calls fail at once instead of
    /// waiting for a sweeper that is gone.
    closed: AtomicBool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("next_sweep", &self.next_sweep.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
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
            next_sweep: AtomicU64::new(IDLE),
            wake: Notify::new(),
            base: Instant::now(),
            closed: AtomicBool::new(false),
        }
    }
}

impl Client {
    /// The shard of `seq`: the low bits, where the counter moves.
    fn shard(&self, seq: u64) -> &Mutex<IntMap<u64, PendingCall>> {
        &self.shards[(seq as usize) % SHARDS]
    }

    /// Registers a call sent through the peer `via`, timed out at `deadline`; `done`
    /// gets its ending. Hands `done` back if the node has stopped.
    pub(crate) fn begin(
        &self,
        target: LogicAddr,
        via: u64,
        deadline: Instant,
        done: Completion,
    ) -> Result<u64, Completion> {
        let mut seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        if seq == 0 {
            // Wrapped around (after 2^64 calls): 0 means "no call".
            seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        }
        {
            let mut map = self.shard(seq).lock();
            // Under the shard lock: `fail_all` sets `closed` before it takes the
            // lock, so a call either sees it or is drained by it.
            if self.closed.load(Ordering::Relaxed) {
                return Err(done);
            }
            map.insert(
                seq,
                PendingCall {
                    via,
                    target,
                    deadline,
                    done,
                },
            );
        }
        // After the insert and its lock: the sweeper stores its plan before it
        // looks at the shards again (under their locks), so it either sees this
        // call or this load sees the plan (see `sweep`).
        let due = self.tick(deadline);
        let mut planned = self.next_sweep.load(Ordering::Relaxed);
        while due.saturating_add(SWEEP_TICKS) < planned {
            match self.next_sweep.compare_exchange_weak(
                planned,
                due,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.wake.notify_one();
                    break;
                }
                Err(now) => planned = now,
            }
        }
        Ok(seq)
    }

    /// `at` in ticks (microseconds since `base`), rounded up: a sweep at a
    /// deadline's tick finds it due.
    fn tick(&self, at: Instant) -> u64 {
        let micros = at.saturating_duration_since(self.base).as_micros();
        u64::try_from(micros + 1).map_or(IDLE - 1, |t| t.min(IDLE - 1))
    }

    /// The instant of tick `t`.
    fn instant(&self, t: u64) -> Instant {
        self.base + Duration::from_micros(t)
    }

    /// The earliest deadline pending, in ticks ([`IDLE`]: none).
    fn earliest(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(|shard| shard.lock().values().map(|c| c.deadline).min())
            .min()
            .map_or(IDLE, |d| self.tick(d))
    }

    /// Removes a pending call.
    fn take(&self, seq: u64) -> Option<Completion> {
        Some(self.shard(seq).lock().remove(&seq)?.done)
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
        call.done.finish(if resp.code == 0 {
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
                    out.push((call.target, call.done));
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

    /// Fails every pending call, and every later one (node stopping).
    pub(crate) fn fail_all(&self, err: RpcError) {
        self.closed.store(true, Ordering::Relaxed);
        for (_, done) in self.drain_where(|_| true) {
            done.finish(Err(err.clone()));
        }
    }

    /// Times out the calls whose deadline passed and plans the next sweep: at the
    /// earliest deadline left.
    fn sweep(&self, now: Instant) {
        let mut earliest: Option<Instant> = None;
        let expired = self.drain_where(|c| {
            let due = c.deadline <= now;
            if !due {
                earliest = Some(earliest.map_or(c.deadline, |e| e.min(c.deadline)));
            }
            due
        });
        // The plan is stored before the shards are looked at again: a call that
        // began unseen by the first look but missed by the plan (its `begin` read
        // an older one) is seen by the second.
        let plan = earliest.map_or(IDLE, |d| self.tick(d));
        self.next_sweep.store(plan, Ordering::Relaxed);
        let again = self.earliest();
        if again < plan {
            self.next_sweep.fetch_min(again, Ordering::AcqRel);
        }
        for (_, done) in expired {
            done.finish(Err(RpcError::Timeout));
        }
    }
}

/// `Client::next_sweep` when no call is pending.
const IDLE: u64 = u64::MAX;

/// [`SWEEP`] in ticks.
const SWEEP_TICKS: u64 = SWEEP.as_micros() as u64;

/// The node's sweeper: times out pending calls at their deadlines, sweeping at
/// most every [`SWEEP`]; sleeps while none is pending.
pub(crate) async fn sweeper(node: Arc<NodeInner>) {
    let client = node.rpc_client();
    let mut last: Option<Instant> = None;
    loop {
        let planned = client.next_sweep.load(Ordering::Acquire);
        let at = (planned != IDLE).then(|| {
            let at = client.instant(planned);
            last.map_or(at, |l| at.max(l + SWEEP))
        });
        tokio::select! {
            biased;
            _ = node.links().cancelled() => return,
            // A call that the plan would time out too late began: plan again.
            _ = client.wake.notified() => continue,
            _ = super::expiry(at) => {}
        }
        let now = Instant::now();
        last = Some(now);
        client.sweep(now);
    }
}

/// A registered awaited call: resolves to its ending. Dropping it forgets the call.
#[derive(Debug)]
pub(crate) struct Waiter<'a> {
    client: &'a Client,
    /// 0 once ended.
    seq: u64,
    rx: oneshot::Receiver<Reply>,
}

impl<'a> Waiter<'a> {
    pub(crate) fn new(client: &'a Client, seq: u64, rx: oneshot::Receiver<Reply>) -> Self {
        Self { client, seq, rx }
    }
}

impl Future for Waiter<'_> {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        let ended = std::task::ready!(Pin::new(&mut self.rx).poll(cx));
        self.seq = 0;
        // A dropped sender: the call was removed without an ending (cancelled).
        Poll::Ready(ended.unwrap_or(Err(RpcError::Cancelled)))
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if self.seq != 0 {
            self.client.forget(self.seq);
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn target() -> LogicAddr {
        "1.2.1".parse().unwrap()
    }

    fn pending(client: &Client) -> usize {
        client.shards.iter().map(|s| s.lock().len()).sum()
    }

    fn awaited(client: &Client, deadline: Instant) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        let seq = client
            .begin(target(), 0, deadline, Completion::Wait(tx))
            .unwrap_or_else(|_| panic!("the call began"));
        Waiter::new(client, seq, rx)
    }

    /// An awaited call has no timer of its own: the sweep after its deadline ends
    /// it with `Timeout`, one before does not.
    #[test]
    fn a_sweep_times_out_an_awaited_call_at_its_deadline() {
        let client = Client::default();
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut call = awaited(&client, deadline);
        let planned = client.next_sweep.load(Ordering::Relaxed);
        assert_eq!(
            planned,
            client.tick(deadline),
            "the first call plans a sweep"
        );
        assert!(client.instant(planned) >= deadline);
        client.sweep(deadline - Duration::from_millis(1));
        assert!((&mut call).now_or_never().is_none());
        assert_eq!(client.next_sweep.load(Ordering::Relaxed), planned);
        client.sweep(deadline);
        assert_eq!(call.now_or_never(), Some(Err(RpcError::Timeout)));
        assert_eq!(pending(&client), 0);
        assert_eq!(client.next_sweep.load(Ordering::Relaxed), IDLE);
    }

    /// A call moves the planned sweep, and wakes the sweeper, only if that sweep
    /// would time it out more than `SWEEP` late; a sweep plans the earliest left.
    #[test]
    fn only_an_earlier_deadline_moves_the_planned_sweep() {
        let client = Client::default();
        let secs = Duration::from_secs;
        let t0 = Instant::now();
        let next = || client.next_sweep.load(Ordering::Relaxed);
        let woken = || client.wake.notified().now_or_never().is_some();
        let _a = awaited(&client, t0 + secs(5));
        assert!(woken(), "the first call wakes the idle sweeper");
        let planned = next();
        let _b = awaited(&client, t0 + secs(6));
        let _c = awaited(&client, t0 + secs(5) - SWEEP / 2);
        assert_eq!(next(), planned);
        assert!(!woken());
        let _d = awaited(&client, t0 + secs(1));
        assert_eq!(next(), client.tick(t0 + secs(1)));
        assert!(woken());
        client.sweep(t0 + secs(1));
        assert_eq!(next(), client.tick(t0 + secs(5) - SWEEP / 2));
    }

    /// A call that begins while a sweep plans is never left out of the plan: the
    /// sweep's second look sees it, or its `begin` sees the sweep's plan.
    #[test]
    fn a_call_beginning_during_a_sweep_is_in_the_plan() {
        let t0 = Instant::now();
        for _ in 0..10_000 {
            let client = Client::default();
            let _late = awaited(&client, t0 + Duration::from_secs(10));
            let start = std::sync::Barrier::new(2);
            let early = std::thread::scope(|s| {
                s.spawn(|| {
                    start.wait();
                    client.sweep(t0);
                });
                start.wait();
                awaited(&client, t0 + Duration::from_secs(1))
            });
            assert!(
                client.next_sweep.load(Ordering::Relaxed)
                    <= client.tick(t0 + Duration::from_secs(1)),
                "the earlier call was left out of the plan"
            );
            drop(early);
        }
    }

    /// Dropping the waiting future forgets its call: nothing is left to sweep, and
    /// a late ending finds nothing.
    #[test]
    fn a_dropped_awaited_call_is_forgotten() {
        let client = Client::default();
        let call = awaited(&client, Instant::now() + Duration::from_secs(5));
        let seq = call.seq;
        assert_eq!(pending(&client), 1);
        drop(call);
        assert_eq!(pending(&client), 0);
        assert!(!client.forget(seq));
        client.sweep(Instant::now());
        assert_eq!(client.next_sweep.load(Ordering::Relaxed), IDLE);
    }

    /// A call removed without an ending (cancelled) ends `Cancelled`; `fail_all`
    /// ends the pending ones with its error and refuses later ones.
    #[test]
    fn cancelled_and_stopped_calls_end_once() {
        let client = Client::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let call = awaited(&client, deadline);
        assert!(client.forget(call.seq));
        assert_eq!(call.now_or_never(), Some(Err(RpcError::Cancelled)));
        let call = awaited(&client, deadline);
        let stopped = RpcError::ServiceUnavailable("node stopped".into());
        client.fail_all(stopped.clone());
        assert_eq!(call.now_or_never(), Some(Err(stopped)));
        let (tx, _rx) = oneshot::channel();
        assert!(
            client
                .begin(target(), 0, deadline, Completion::Wait(tx))
                .is_err()
        );
        assert_eq!(pending(&client), 0);
    }
}
