//! Starting a node: the first membership snapshot, the listener, the node's tasks.

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::{DEV_SECRET, Node, Running, StartError, accept, dispatch, members};
use crate::addr::LogicAddr;
use crate::membership::{Membership, MembershipError, View};
use crate::rpc;

impl Node {
    /// Starts the node: reads membership, finds its own listen address there by
    /// `local`, binds it, and serves. Fails if `local` is not listed.
    pub async fn start(
        &self,
        membership: impl Membership,
        local: LogicAddr,
    ) -> Result<(), StartError> {
        self.start_inner(Box::new(membership), local, None).await
    }

    /// Like [`start`](Self::start), on a listener bound by the caller (tests bind
    /// `127.0.0.1:0` first, then publish the port in membership). Membership must
    /// list `local` at the listener's address.
    pub async fn start_on(
        &self,
        listener: TcpListener,
        membership: impl Membership,
        local: LogicAddr,
    ) -> Result<(), StartError> {
        self.start_inner(Box::new(membership), local, Some(listener))
            .await
    }

    async fn start_inner(
        &self,
        membership: Box<dyn Membership>,
        local: LogicAddr,
        listener: Option<TcpListener>,
    ) -> Result<(), StartError> {
        let handle = Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        if self.inner.run.get().is_some() || self.inner.is_stopping() {
            return Err(StartError::AlreadyStarted);
        }
        let mut changes = membership.subscribe().await?;
        let timeout = self.inner.config.membership_timeout;
        let first = tokio::time::timeout(timeout, changes.recv())
            .await
            .map_err(|_| StartError::MembershipTimeout(timeout))?
            .ok_or_else(|| MembershipError::Unreachable("subscription closed".into()))?;
        let mut view = View::new(local);
        view.apply(&first);
        let me = view
            .get(local)
            .ok_or(StartError::NotInMembership(local))?
            .clone();
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(me.addr.net)
                .await
                .map_err(|source| StartError::Bind {
                    addr: me.addr.net,
                    source,
                })?,
        };
        let listen = listener.local_addr().map_err(|source| StartError::Bind {
            addr: me.addr.net,
            source,
        })?;
        if let Some(tls) = &self.inner.config.tls
            && !tls.names(local)
        {
            return Err(StartError::Certificate(local));
        }
        #[cfg(feature = "go-compat")]
        if let super::Dialect::GoSeed(_) = &self.inner.config.dialect {
            tracing::warn!(node = %local, "speaking the Go seed's dialect: connections have NO real \
                authentication (a fixed or shared key, no nonce, the dialer does not check the \
                answer) and are not encrypted after the hello; use it only on a trusted network");
            if self.inner.config.tls.is_some() {
                tracing::warn!(node = %local, "the Go seed's dialect has no TLS: `Config::tls` is ignored");
            }
        }
        if matches!(self.inner.config.dialect, super::Dialect::Native)
            && self.inner.config.secret.expose() == DEV_SECRET
        {
            tracing::warn!(node = %local, "using the development secret: set CLUSTERGO_SECRET in production");
        }
        let admin = match self.inner.config.admin_addr {
            Some(addr) => {
                let bind_err = |source| StartError::Bind { addr, source };
                let l = TcpListener::bind(addr).await.map_err(bind_err)?;
                let at = l.local_addr().map_err(bind_err)?;
                Some((l, at))
            }
            None => None,
        };
        let (local_tx, local_rx) = mpsc::channel(self.inner.config.pending_queue.max(1));
        let running = Running {
            local,
            listen,
            handle,
            admin: admin.as_ref().map(|(_, at)| *at),
            local_tx,
        };
        *self.inner.view.write() = view;
        self.inner
            .run
            .set(running)
            .map_err(|_| StartError::AlreadyStarted)?;
        let inner = &self.inner;
        inner.spawn(accept::accept_loop(inner.clone(), listener));
        inner.spawn(dispatch::local_loop(inner.clone(), local_rx));
        inner.spawn(members::membership_loop(inner.clone(), changes, membership));
        inner.spawn(rpc::client::sweeper(inner.clone()));
        if let Some((listener, at)) = admin {
            let recorder = inner.admin().recorder();
            inner
                .client_interceptors()
                .add(std::sync::Arc::new(recorder.clone()));
            inner
                .server_interceptors()
                .add(std::sync::Arc::new(recorder));
            inner.spawn(crate::admin::serve(inner.clone(), listener));
            tracing::info!(node = %local, admin = %at, "admin listener: http://{at}/");
        }
        tracing::info!(node = %local, %listen, "node started");
        Ok(())
    }
}
