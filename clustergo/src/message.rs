//! Messages between nodes: protobuf types registered under a `cmd`, and raw binary
//! handlers by `cmd`.
//!
//! Handlers run synchronously on the receive path of the sending peer, so messages
//! from one peer reach them in the order they were sent. A handler that needs to
//! wait spawns a task. A handler that panics is logged; the node keeps running.

use crate::fastmap::IntMap;
use std::any::{Any, TypeId};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::addr::LogicAddr;

type PbHandler = Arc<dyn Fn(LogicAddr, Bytes) -> Result<(), prost::DecodeError> + Send + Sync>;
type BinHandler = Arc<dyn Fn(LogicAddr, u16, Bytes) + Send + Sync>;

/// The message tables of one node.
#[derive(Default)]
pub(crate) struct Registry {
    /// Which cmd a prost type is sent under.
    cmd_of: RwLock<IntMap<TypeId, u16>>,
    pb: RwLock<IntMap<u16, PbHandler>>,
    bin: RwLock<IntMap<u16, BinHandler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("pb_types", &self.cmd_of.read().len())
            .field("pb_handlers", &self.pb.read().len())
            .field("bin_handlers", &self.bin.read().len())
            .finish()
    }
}

impl Registry {
    pub(crate) fn register_type<M: prost::Message + Default + 'static>(&self, cmd: u16) {
        self.cmd_of.write().insert(TypeId::of::<M>(), cmd);
    }

    pub(crate) fn cmd_of<M: Any>(&self) -> Option<u16> {
        self.cmd_of.read().get(&TypeId::of::<M>()).copied()
    }

    pub(crate) fn register_pb<M, F>(&self, cmd: u16, handler: F)
    where
        M: prost::Message + Default + 'static,
        F: Fn(LogicAddr, M) + Send + Sync + 'static,
    {
        self.register_type::<M>(cmd);
        let h: PbHandler = Arc::new(move |from, body: Bytes| {
            let msg = M::decode(body)?;
            handler(from, msg);
            Ok(())
        });
        self.pb.write().insert(cmd, h);
    }

    pub(crate) fn register_bin<F>(&self, cmd: u16, handler: F)
    where
        F: Fn(LogicAddr, u16, Bytes) + Send + Sync + 'static,
    {
        self.bin.write().insert(cmd, Arc::new(handler));
    }

    /// Runs the pb handler for `cmd`; unknown cmds and undecodable bodies are logged.
    pub(crate) fn dispatch_pb(&self, from: LogicAddr, cmd: u16, body: Bytes) {
        let Some(h) = self.pb.read().get(&cmd).cloned() else {
            tracing::warn!(%from, cmd, "no handler for pb message");
            return;
        };
        match catch_unwind(AssertUnwindSafe(|| h(from, body))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%from, cmd, error = %e, "undecodable pb message"),
            Err(panic) => log_panic("pb message handler", from, cmd, panic),
        }
    }

    /// Runs the binary handler for `cmd`; unknown cmds are logged.
    pub(crate) fn dispatch_bin(&self, from: LogicAddr, cmd: u16, body: Bytes) {
        let Some(h) = self.bin.read().get(&cmd).cloned() else {
            tracing::warn!(%from, cmd, "no handler for binary message");
            return;
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| h(from, cmd, body))) {
            log_panic("binary message handler", from, cmd, panic);
        }
    }
}

pub(crate) fn panic_text(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".to_owned()
    }
}

fn log_panic(what: &str, from: LogicAddr, cmd: u16, panic: Box<dyn Any + Send>) {
    tracing::error!(%from, cmd, panic = %panic_text(&*panic), "{what} panicked");
}
