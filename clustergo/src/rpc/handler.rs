//! The async handler form: `async fn m(&self, ctx, req) -> Result<Resp, RpcError>`.
//!
//! The handler's future is polled once on the receive path; one that is not ready
//! then runs as its own task. The task drops the handler's future — and
//! counts it in [`crate::Metrics::handlers_cancelled`] — when the caller's deadline
//! passes or the link its request came through is lost: nobody waits for the
//! answer any more, so the work (and the calls it makes) should stop.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Codec, ProstCodec, RawReplyer, RpcContext, RpcError};
use crate::addr::LogicAddr;
use crate::node::{Node, NodeInner, Route};

/// One cancellation token per link that brought requests to async handlers;
/// cancelled (and forgotten) when that link is lost. Bounded by the peers.
#[derive(Debug, Default)]
pub(crate) struct LinkCancels {
    by_link: Mutex<HashMap<u64, CancellationToken>>,
}

impl LinkCancels {
    /// A token cancelled when the link `via` is lost.
    fn token(&self, via: u64) -> CancellationToken {
        self.by_link.lock().entry(via).or_default().child_token()
    }

    /// The link `via` is lost: cancel the handlers serving requests it brought.
    pub(crate) fn link_lost(&self, via: u64) {
        if let Some(token) = self.by_link.lock().remove(&via) {
            token.cancel();
        }
    }
}

/// Registers `method` with an async handler: its future is polled once where the
/// request arrives, and if not ready runs as a task of its own, dropped at the
/// caller's deadline or when the caller's link is lost. A request that does not decode is answered with [`RpcError::Codec`].
pub fn register_async<C, Req, Resp, F, Fut>(node: &Node, method: &str, handler: F)
where
    C: Codec<Req> + Codec<Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(RpcContext, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, RpcError>> + Send + 'static,
{
    let inner = node.inner.clone();
    super::register::<C, Req, Resp, _>(node, method, move |ctx, replyer, req| {
        let raw = replyer.into_raw();
        let deadline = ctx.deadline();
        let from = ctx.from();
        let mut fut = Box::pin(handler(ctx, req));
        // Polled once right here, on the receive path: a handler that needs no I/O
        // answers now, without a task, a timer or a cancellation token (the reason
        // the async form was ~0.5x the replyer form). The next poll, if any, is the
        // spawned task's, with a real waker.
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if let Poll::Ready(result) = fut.as_mut().poll(&mut cx) {
            return answer::<C, Resp>(raw, result);
        }
        let lost = link_token(&inner, from);
        let counters = inner.clone();
        inner.spawn_detached(async move {
            tokio::select! {
                biased;
                result = fut => answer::<C, Resp>(raw, result),
                () = super::expiry(deadline) => {
                    counters.counters().handler_cancelled();
                    raw.error(RpcError::Timeout);
                }
                () = lost.cancelled() => {
                    counters.counters().handler_cancelled();
                    // The reply has no way back; dropping the replyer is enough.
                    drop(raw);
                }
            }
        });
    });
}

/// Answers with a handler's result: `Ok` encoded by `C`, `Err` as it is.
fn answer<C: Codec<Resp>, Resp>(raw: RawReplyer, result: Result<Resp, RpcError>) {
    match result {
        Ok(resp) => raw.reply_with(|buf| C::encode(&resp, buf)),
        Err(e) => raw.error(e),
    }
}

/// A token cancelled when the link toward `from` (the caller, or the harbor its
/// request came through) is lost.
fn link_token(inner: &Arc<NodeInner>, from: LogicAddr) -> CancellationToken {
    match inner.route(from) {
        Ok(Route::Peer(p)) => inner.async_cancels().token(p.id()),
        // Local callers and unroutable ones: only the deadline applies.
        _ => CancellationToken::new(),
    }
}

impl RpcContext {
    /// How long the caller still waits, if it said: zero once the deadline passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The timeout for a call made while serving this request: the caller's
    /// remaining time, capped by [`crate::Config::call_timeout`]. Pass it to the
    /// generated `*_with_timeout` calls so the budget shrinks across hops.
    pub fn timeout(&self) -> Duration {
        let own = self.node_inner().config().call_timeout;
        self.remaining().map_or(own, |r| r.min(own))
    }

    /// The node serving this request (to build clients from).
    pub fn node(&self) -> Node {
        Node {
            inner: self.node_inner().clone(),
        }
    }

    /// Calls a prost-typed method within this request's remaining time: the
    /// callee sees a deadline no later than this one, minus the time spent.
    pub async fn call<Req, Resp>(
        &self,
        to: LogicAddr,
        method: &str,
        req: &Req,
    ) -> Result<Resp, RpcError>
    where
        Req: prost::Message + Default,
        Resp: prost::Message + Default,
    {
        self.call_with::<ProstCodec, Req, Resp>(to, method, req)
            .await
    }

    /// [`call`](Self::call) with any codec.
    pub async fn call_with<C, Req, Resp>(
        &self,
        to: LogicAddr,
        method: &str,
        req: &Req,
    ) -> Result<Resp, RpcError>
    where
        C: Codec<Req> + Codec<Resp>,
    {
        let timeout = self.timeout();
        if timeout.is_zero() {
            return Err(RpcError::Timeout);
        }
        super::call::<C, Req, Resp>(&self.node(), to, method, req, Some(timeout)).await
    }
}
