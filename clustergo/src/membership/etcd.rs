//! Membership in etcd (feature `etcd`).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, WatchOptions, WatchStream,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::resync::{self, Feed, Source};
use super::{BoxFuture, Member, Membership, MembershipAdmin, MembershipChange, MembershipError};
use crate::addr::LogicAddr;
use crate::backoff::Backoff;

/// Membership stored in etcd (feature `etcd`). Cheap to clone.
///
/// One key per member under a prefix `P`: key `P` + logical address (`"1.2.3"`),
/// value the member as JSON (`{"logic":"1.2.3","net":"10.0.0.5:9000",...}`).
///
/// A subscriber reads the prefix, publishes it as the first change, then watches the
/// prefix from the revision after the read, so no change falls in between. If the
/// watch breaks (connection loss, compaction) it reconnects with backoff, reads the
/// prefix again and publishes the difference from what it had.
///
/// A node can register itself with a lease
/// ([`register_self_with_lease`](EtcdMembership::register_self_with_lease)): its key
/// lives as long as the registration keeps the lease alive, so a dead node
/// disappears from membership after the TTL.
#[derive(Clone)]
pub struct EtcdMembership {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    endpoints: Vec<String>,
    prefix: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    backoff: (Duration, Duration),
    /// The client, made on first use and shared by every operation.
    client: Arc<Mutex<Option<Client>>>,
}

impl std::fmt::Debug for EtcdMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdMembership")
            .field("endpoints", &self.inner.endpoints)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdMembership {
    /// Membership in the etcd cluster at `endpoints` (`["http://127.0.0.1:2379"]`),
    /// one key per member under `prefix` (e.g. `"/clustergo/members/"`). Connects
    /// lazily. Defaults: 2 s connect timeout, 5 s request timeout, reconnect backoff
    /// 100 ms–5 s.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>, prefix: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                endpoints: endpoints.into_iter().map(Into::into).collect(),
                prefix: prefix.to_owned(),
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                backoff: (Duration::from_millis(100), Duration::from_secs(5)),
                client: Arc::default(),
            }),
        }
    }

    /// Sets the reconnect backoff: `min` doubling up to `max`.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        Arc::make_mut(&mut self.inner).backoff = (min, max);
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.inner).connect_timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The key of the member at `logic`.
    pub fn key_of(&self, logic: LogicAddr) -> String {
        self.inner.key_of(logic)
    }

    /// Puts `member` under a lease of `ttl` (whole seconds, at least 1) and keeps
    /// the lease alive until the returned registration is dropped or revoked. If
    /// the lease is lost (etcd unreachable for longer than the TTL), the
    /// registration grants a new one and puts the member again when etcd is back.
    pub async fn register_self_with_lease(
        &self,
        member: Member,
        ttl: Duration,
    ) -> Result<LeaseRegistration, MembershipError> {
        let ttl_secs = ttl.as_secs_f64().ceil().max(1.0) as i64;
        let inner = self.inner.clone();
        let (lease_id, granted) = inner.grant_and_put(&member, ttl_secs).await?;
        let current = Arc::new(Mutex::new(lease_id));
        let task = tokio::spawn(keep_registered(
            inner.clone(),
            member.clone(),
            ttl_secs,
            lease_id,
            granted,
            current.clone(),
        ));
        Ok(LeaseRegistration {
            inner,
            member,
            lease: current,
            task,
        })
    }
}

impl Inner {
    fn key_of(&self, logic: LogicAddr) -> String {
        format!("{}{logic}", self.prefix)
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> MembershipError {
        MembershipError::Unreachable(format!("etcd {:?}: {e}", self.endpoints))
    }

    /// Runs one request on the shared client, within the request timeout. On failure
    /// the client is dropped so the next request makes a new one.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, MembershipError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.client().await?;
        let err = match tokio::time::timeout(self.request_timeout, op(client)).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => self.classify(e),
            Err(_) => self.unreachable("request timed out"),
        };
        if matches!(err, MembershipError::Unreachable(_)) {
            self.client.lock().take();
        }
        Err(err)
    }

    /// Connection trouble is `Unreachable`; an answer from etcd refusing the request
    /// (say, revoking an unknown lease) is `Refused`.
    fn classify(&self, e: etcd_client::Error) -> MembershipError {
        // gRPC status codes that mean "could not get an answer".
        const CANCELLED: i32 = 1;
        const DEADLINE_EXCEEDED: i32 = 4;
        const UNAVAILABLE: i32 = 14;
        match &e {
            etcd_client::Error::InvalidArgs(_) | etcd_client::Error::InvalidUri(_) => {
                MembershipError::Invalid(format!("etcd {:?}: {e}", self.endpoints))
            }
            etcd_client::Error::GRpcStatus(status)
                if ![CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE]
                    .contains(&i32::from(status.code())) =>
            {
                MembershipError::Refused(format!("etcd {:?}: {e}", self.endpoints))
            }
            _ => self.unreachable(e),
        }
    }

    async fn client(&self) -> Result<Client, MembershipError> {
        if let Some(client) = self.client.lock().clone() {
            return Ok(client);
        }
        let options = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_timeout(self.request_timeout);
        let client = tokio::time::timeout(
            self.connect_timeout,
            Client::connect(&self.endpoints, Some(options)),
        )
        .await
        .map_err(|_| self.unreachable("connect timed out"))?
        .map_err(|e| self.unreachable(e))?;
        *self.client.lock() = Some(client.clone());
        Ok(client)
    }

    /// Reads every member and the revision of that read.
    async fn load(&self) -> Result<(Vec<Member>, i64), MembershipError> {
        let prefix = self.prefix.clone();
        let resp = self
            .call(|mut c| async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await })
            .await?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let members = resp.kvs().iter().filter_map(|kv| self.parse(kv)).collect();
        Ok((members, revision))
    }

    /// The member in a key-value pair; bad entries are logged and skipped.
    fn parse(&self, kv: &KeyValue) -> Option<Member> {
        let logic = self.logic_of(kv.key())?;
        match serde_json::from_slice::<Member>(kv.value()) {
            Ok(member) if member.logic() == logic => Some(member),
            Ok(member) => {
                warn!(prefix = %self.prefix, "skipping member {} stored under {logic}", member.logic());
                None
            }
            Err(e) => {
                warn!(prefix = %self.prefix, "skipping bad member at {logic}: {e}");
                None
            }
        }
    }

    fn logic_of(&self, key: &[u8]) -> Option<LogicAddr> {
        let suffix = key.strip_prefix(self.prefix.as_bytes())?;
        match std::str::from_utf8(suffix)
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(logic) => Some(logic),
            None => {
                warn!(prefix = %self.prefix, "skipping key {:?}", String::from_utf8_lossy(key));
                None
            }
        }
    }

    async fn watch_from(&self, revision: i64) -> Result<WatchStream, MembershipError> {
        let prefix = self.prefix.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision);
        self.call(|mut c| async move { c.watch(prefix, Some(options)).await })
            .await
    }

    async fn grant_and_put(
        &self,
        member: &Member,
        ttl_secs: i64,
    ) -> Result<(i64, i64), MembershipError> {
        let lease = self
            .call(|mut c| async move { c.lease_grant(ttl_secs, None).await })
            .await?;
        let (id, granted) = (lease.id(), lease.ttl());
        self.put(member, Some(id)).await?;
        Ok((id, granted))
    }

    async fn put(&self, member: &Member, lease: Option<i64>) -> Result<(), MembershipError> {
        let key = self.key_of(member.logic());
        let value =
            serde_json::to_vec(member).map_err(|e| MembershipError::Invalid(e.to_string()))?;
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        self.call(|mut c| async move { c.put(key, value, options).await })
            .await
            .map(drop)
    }
}

impl Membership for EtcdMembership {
    fn subscribe(
        &self,
    ) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<MembershipChange>, MembershipError>> {
        Box::pin(resync::subscribe(self.inner.clone()))
    }
}

impl MembershipAdmin for EtcdMembership {
    fn put(&self, member: Member) -> BoxFuture<'_, Result<(), MembershipError>> {
        Box::pin(async move { self.inner.put(&member, None).await })
    }

    fn remove(&self, logic: LogicAddr) -> BoxFuture<'_, Result<(), MembershipError>> {
        Box::pin(async move {
            let key = self.inner.key_of(logic);
            self.inner
                .call(|mut c| async move { c.delete(key, None).await })
                .await
                .map(drop)
        })
    }
}

impl Source for Inner {
    type Conn = WatchStream;

    fn name(&self) -> String {
        format!("etcd membership watch on {}", self.prefix)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff.0, self.backoff.1)
    }

    /// Reads the prefix, then watches from the revision after the read.
    async fn connect(&self) -> Result<(WatchStream, Vec<Member>), MembershipError> {
        let (members, revision) = self.load().await?;
        let stream = self.watch_from(revision + 1).await?;
        Ok((stream, members))
    }

    async fn follow(&self, stream: &mut WatchStream, feed: &mut Feed) -> Option<String> {
        apply_events(self, stream, feed).await
    }
}

/// Returns why the watch broke, or `None` if the subscriber went away.
async fn apply_events(inner: &Inner, stream: &mut WatchStream, feed: &mut Feed) -> Option<String> {
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return Some("watch stream ended".into()),
            Err(e) => return Some(e.to_string()),
        };
        if resp.canceled() {
            return Some(format!(
                "watch cancelled (compact revision {}): {}",
                resp.compact_revision(),
                resp.cancel_reason()
            ));
        }
        let mut change = MembershipChange::default();
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            let step = match event.event_type() {
                EventType::Put => match inner.parse(kv) {
                    Some(member) => feed.set().put(member),
                    None => continue,
                },
                EventType::Delete => match inner.logic_of(kv.key()) {
                    Some(logic) => feed.set().remove(logic),
                    None => continue,
                },
            };
            change.added.extend(step.added);
            change.removed.extend(step.removed);
            change.updated.extend(step.updated);
        }
        if !feed.publish(change) {
            return None;
        }
    }
}

/// A member kept in etcd under a lease. Dropping it stops the keep-alive, so the
/// member disappears once the lease's TTL runs out (as for a crashed node);
/// [`revoke`](Self::revoke) removes it at once.
pub struct LeaseRegistration {
    inner: Arc<Inner>,
    member: Member,
    /// The lease currently holding the key (changes if it had to be re-granted).
    lease: Arc<Mutex<i64>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for LeaseRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRegistration")
            .field("member", &self.member)
            .field("lease", &*self.lease.lock())
            .finish_non_exhaustive()
    }
}

impl LeaseRegistration {
    /// The lease currently holding the member's key.
    pub fn lease_id(&self) -> i64 {
        *self.lease.lock()
    }

    /// Stops the keep-alive and revokes the lease, deleting the member now.
    pub async fn revoke(self) -> Result<(), MembershipError> {
        self.task.abort();
        let id = *self.lease.lock();
        self.inner
            .call(|mut c| async move { c.lease_revoke(id).await })
            .await
            .map(drop)
    }
}

impl Drop for LeaseRegistration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps the lease alive; if it is lost, grants a new one and puts the member again.
async fn keep_registered(
    inner: Arc<Inner>,
    member: Member,
    ttl_secs: i64,
    mut lease_id: i64,
    mut granted: i64,
    current: Arc<Mutex<i64>>,
) {
    loop {
        let reason = keep_alive(&inner, lease_id, granted).await;
        warn!(member = %member.logic(), "etcd lease {lease_id} lost ({reason}); registering again");
        let what = format!("etcd re-registration of {}", member.logic());
        let retried = resync::retry(inner.backoff(), &what, || {
            inner.grant_and_put(&member, ttl_secs)
        });
        (lease_id, granted) = retried.await;
        *current.lock() = lease_id;
        info!(member = %member.logic(), "registered again under lease {lease_id}");
    }
}

/// Refreshes the lease every third of its TTL; returns why it stopped.
async fn keep_alive(inner: &Inner, lease_id: i64, granted: i64) -> String {
    let period = Duration::from_millis((granted.max(1) as u64 * 1000) / 3);
    let (mut keeper, mut responses) = match inner
        .call(|mut c| async move { c.lease_keep_alive(lease_id).await })
        .await
    {
        Ok(pair) => pair,
        Err(e) => return e.to_string(),
    };
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = keeper.keep_alive().await {
            return e.to_string();
        }
        match tokio::time::timeout(inner.request_timeout, responses.message()).await {
            Ok(Ok(Some(resp))) if resp.ttl() > 0 => {}
            Ok(Ok(Some(_))) => return "lease expired".into(),
            Ok(Ok(None)) => return "keep-alive stream ended".into(),
            Ok(Err(e)) => return e.to_string(),
            Err(_) => return "keep-alive timed out".into(),
        }
    }
}
