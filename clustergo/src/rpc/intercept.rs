//! Interceptor hooks: enough to add metrics, tracing or authentication around
//! calls without touching handlers.
//!
//! Client side: [`ClientInterceptor::before_send`] may refuse a call or attach
//! metadata (the server reads it with [`super::RpcContext::meta`]);
//! [`ClientInterceptor::after_reply`] sees how each call ended. Server side:
//! [`ServerInterceptor::before_dispatch`] may refuse a request (its error is the
//! reply); [`ServerInterceptor::after_reply`] sees each answer.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use super::{ErrorCode, RpcContext, RpcError};
use crate::addr::LogicAddr;

/// Hooks around outgoing calls.
pub trait ClientInterceptor: Send + Sync + 'static {
    /// Runs before a request is sent. `meta` starts empty; bytes written to it
    /// travel with the request. An error ends the call with that error.
    fn before_send(&self, to: LogicAddr, method: &str, meta: &mut Vec<u8>) -> Result<(), RpcError> {
        let _ = (to, method, meta);
        Ok(())
    }

    /// Runs once per call when it ends (not for posts, nor for callback calls
    /// cancelled through their handle).
    fn after_reply(
        &self,
        to: LogicAddr,
        method: &str,
        result: Result<(), &RpcError>,
        elapsed: Duration,
    ) {
        let _ = (to, method, result, elapsed);
    }
}

/// Hooks around served requests.
pub trait ServerInterceptor: Send + Sync + 'static {
    /// Runs before the handler. An error is sent as the reply and the handler
    /// does not run.
    fn before_dispatch(&self, ctx: &RpcContext) -> Result<(), RpcError> {
        let _ = ctx;
        Ok(())
    }

    /// Runs when the request is answered (`Ok` is [`ErrorCode::Ok`]); for posts,
    /// when the handler lets go of its replyer.
    fn after_reply(&self, from: LogicAddr, method: &str, code: ErrorCode, elapsed: Duration) {
        let _ = (from, method, code, elapsed);
    }
}

/// The interceptors of one node. `any` keeps the no-interceptor path to one load.
pub(crate) struct Interceptors<T: ?Sized> {
    any: AtomicBool,
    list: RwLock<Vec<Arc<T>>>,
}

impl<T: ?Sized> Default for Interceptors<T> {
    fn default() -> Self {
        Self {
            any: AtomicBool::new(false),
            list: RwLock::new(Vec::new()),
        }
    }
}

impl<T: ?Sized> fmt::Debug for Interceptors<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interceptors({})", self.list.read().len())
    }
}

impl<T: ?Sized> Interceptors<T> {
    pub(crate) fn add(&self, i: Arc<T>) {
        self.list.write().push(i);
        self.any.store(true, Ordering::Release);
    }

    /// The interceptors, or `None` when there are none (the common, fast case).
    pub(crate) fn get(&self) -> Option<Vec<Arc<T>>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        Some(self.list.read().clone())
    }
}
