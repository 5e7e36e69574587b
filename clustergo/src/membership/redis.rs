//! Membership in Redis (feature `redis`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::resync::{self, Feed, Source};
use super::{BoxFuture, Member, Membership, MembershipAdmin, MembershipChange, MembershipError};
use crate::addr::LogicAddr;
use crate::backoff::Backoff;

/// KEYS: members hash, version counter. ARGV: field, member JSON, channel.
const PUT_SCRIPT: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], '{"version":' .. v .. ',"put":' .. ARGV[2] .. '}')
return v
"#;

/// KEYS: members hash, version counter. ARGV: field, channel.
const REMOVE_SCRIPT: &str = r#"
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local v = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], '{"version":' .. v .. ',"remove":"' .. ARGV[1] .. '"}')
return v
"#;

/// Membership stored in Redis (feature `redis`). Cheap to clone.
///
/// Layout under a key prefix `P`:
/// - `P` + `members`: a hash, field = logical address (`"1.2.3"`), value = the
///   member as JSON (`{"logic":"1.2.3","net":"10.0.0.5:9000","export":false,"available":true}`);
/// - `P` + `version`: a counter incremented by every change;
/// - `P` + `changes`: a pub/sub channel announcing each change as
///   `{"version":N,"put":{member}}` or `{"version":N,"remove":"1.2.3"}`.
///
/// On Redis Cluster, use a prefix with a hash tag (e.g. `"{clustergo}:"`) so the
/// three keys share a slot.
///
/// Puts and removes run as Lua scripts, so the hash, the counter and the announcement
/// change together. A subscriber subscribes to the channel first, then loads the hash
/// and counter in one transaction; announcements at or below the loaded version are
/// already in the snapshot and are skipped. A gap in versions, a lost connection
/// (after reconnecting with backoff) and a periodic timer all trigger a full reload,
/// published as the difference from what the subscriber had, so nothing is missed
/// even if the hash was changed by other means.
#[derive(Clone)]
pub struct RedisMembership {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    client: redis::Client,
    url: String,
    members_key: String,
    version_key: String,
    channel: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    resync_interval: Duration,
    backoff: (Duration, Duration),
    /// The connection admin operations use; dropped after an error.
    admin: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl std::fmt::Debug for RedisMembership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisMembership")
            .field("url", &self.inner.url)
            .field("members_key", &self.inner.members_key)
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

/// One announcement on the changes channel.
#[derive(Debug, Deserialize)]
struct Announcement {
    version: u64,
    #[serde(default)]
    put: Option<Member>,
    #[serde(default)]
    remove: Option<LogicAddr>,
}

impl RedisMembership {
    /// Membership in the Redis at `url` (`redis://127.0.0.1:6379/0`), with keys
    /// named `key_prefix` + `members` / `version` / `changes` (e.g. prefix
    /// `"clustergo:"`). Connects lazily; a bad URL is [`MembershipError::Invalid`].
    /// Defaults: 2 s connect timeout, 5 s response timeout, resync every 30 s,
    /// reconnect backoff 100 ms–5 s.
    pub fn new(url: &str, key_prefix: &str) -> Result<Self, MembershipError> {
        let client = redis::Client::open(url)
            .map_err(|e| MembershipError::Invalid(format!("redis url {url:?}: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url: url.to_owned(),
                members_key: format!("{key_prefix}members"),
                version_key: format!("{key_prefix}version"),
                channel: format!("{key_prefix}changes"),
                connect_timeout: Duration::from_secs(2),
                response_timeout: Duration::from_secs(5),
                resync_interval: Duration::from_secs(30),
                backoff: (Duration::from_millis(100), Duration::from_secs(5)),
                admin: Arc::default(),
            }),
        })
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Sets how often a subscriber reloads the whole hash (a backstop: changes
    /// normally arrive by pub/sub).
    pub fn with_resync_interval(mut self, interval: Duration) -> Self {
        self.inner_mut().resync_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// Sets the reconnect backoff: `min` doubling up to `max`.
    pub fn with_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.inner_mut().backoff = (min, max);
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.inner_mut().connect_timeout = timeout;
        self
    }

    /// The name of the hash holding the members.
    pub fn members_key(&self) -> &str {
        &self.inner.members_key
    }
}

impl Inner {
    fn unreachable(&self, e: impl std::fmt::Display) -> MembershipError {
        MembershipError::Unreachable(format!("redis {}: {e}", self.url))
    }

    async fn dial(&self) -> Result<MultiplexedConnection, MembershipError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        // The client's own timeout covers the TCP connect; this one covers the rest.
        tokio::time::timeout(self.connect_timeout + self.response_timeout, connect)
            .await
            .map_err(|_| self.unreachable("connect timed out"))?
            .map_err(|e| self.unreachable(e))
    }

    async fn subscribe_channel(&self) -> Result<redis::aio::PubSubStream, MembershipError> {
        let open = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        tokio::time::timeout(self.connect_timeout + self.response_timeout, open)
            .await
            .map_err(|_| self.unreachable("subscribe timed out"))?
            .map_err(|e| self.unreachable(e))
    }

    /// Reads every member and the version, atomically. Entries that do not parse
    /// are logged and skipped.
    async fn load(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> Result<(Vec<Member>, u64), MembershipError> {
        let (hash, version): (HashMap<String, String>, Option<u64>) = redis::pipe()
            .atomic()
            .hgetall(&self.members_key)
            .get(&self.version_key)
            .query_async(conn)
            .await
            .map_err(|e| self.unreachable(e))?;
        let mut members = Vec::with_capacity(hash.len());
        for (field, value) in hash {
            match serde_json::from_str::<Member>(&value) {
                Ok(member) if member.logic().to_string() == field => members.push(member),
                Ok(member) => warn!(
                    key = %self.members_key,
                    "skipping member {} stored under field {field:?}",
                    member.logic()
                ),
                Err(e) => warn!(key = %self.members_key, "skipping bad member {field:?}: {e}"),
            }
        }
        Ok((members, version.unwrap_or(0)))
    }

    /// The admin connection, made on first use.
    async fn admin_conn(&self) -> Result<MultiplexedConnection, MembershipError> {
        if let Some(conn) = self.admin.lock().clone() {
            return Ok(conn);
        }
        let conn = self.dial().await?;
        *self.admin.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// Runs a script; a broken cached connection is replaced and the script retried
    /// once (the scripts are idempotent apart from the version counter).
    async fn eval(&self, script: &str, args: &[&str]) -> Result<(), MembershipError> {
        match self.eval_once(script, args).await {
            Err(MembershipError::Unreachable(e)) => {
                debug!("redis admin connection failed ({e}); retrying on a new one");
                self.eval_once(script, args).await
            }
            other => other,
        }
    }

    async fn eval_once(&self, script: &str, args: &[&str]) -> Result<(), MembershipError> {
        let mut conn = self.admin_conn().await?;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script)
            .arg(2)
            .arg(&self.members_key)
            .arg(&self.version_key);
        for arg in args {
            cmd.arg(*arg);
        }
        match cmd.query_async::<u64>(&mut conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                    self.admin.lock().take();
                    Err(self.unreachable(e))
                } else {
                    Err(MembershipError::Refused(format!("redis {}: {e}", self.url)))
                }
            }
        }
    }
}

impl Membership for RedisMembership {
    fn subscribe(
        &self,
    ) -> BoxFuture<'_, Result<mpsc::UnboundedReceiver<MembershipChange>, MembershipError>> {
        Box::pin(resync::subscribe(self.inner.clone()))
    }
}

impl MembershipAdmin for RedisMembership {
    fn put(&self, member: Member) -> BoxFuture<'_, Result<(), MembershipError>> {
        Box::pin(async move {
            let field = member.logic().to_string();
            let json = serde_json::to_string(&member)
                .map_err(|e| MembershipError::Invalid(e.to_string()))?;
            self.inner
                .eval(PUT_SCRIPT, &[&field, &json, &self.inner.channel])
                .await
        })
    }

    fn remove(&self, logic: LogicAddr) -> BoxFuture<'_, Result<(), MembershipError>> {
        Box::pin(async move {
            let field = logic.to_string();
            self.inner
                .eval(REMOVE_SCRIPT, &[&field, &self.inner.channel])
                .await
        })
    }
}

/// What a subscription follows: the changes channel, a connection for reloads, and
/// the version up to which the subscriber has everything.
struct Live {
    conn: MultiplexedConnection,
    stream: redis::aio::PubSubStream,
    version: u64,
}

impl Source for Inner {
    type Conn = Live;

    fn name(&self) -> String {
        format!("redis membership subscription on {}", self.channel)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(self.backoff.0, self.backoff.1)
    }

    async fn connect(&self) -> Result<(Live, Vec<Member>), MembershipError> {
        // Channel first, then the snapshot: nothing falls in between.
        let stream = self.subscribe_channel().await?;
        let mut conn = self.dial().await?;
        let (members, version) = self.load(&mut conn).await?;
        let live = Live {
            conn,
            stream,
            version,
        };
        Ok((live, members))
    }

    async fn follow(&self, live: &mut Live, feed: &mut Feed) -> Option<String> {
        let mut resync = tokio::time::interval(self.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await; // the first tick is immediate; we just loaded
        loop {
            let need_resync = tokio::select! {
                _ = resync.tick() => true,
                msg = live.stream.next() => {
                    let Some(msg) = msg else {
                        return Some("pub/sub connection closed".into());
                    };
                    self.announcement(live, feed, msg.get_payload_bytes())
                }
            };
            if need_resync {
                match self.load(&mut live.conn).await {
                    Ok((members, version)) => {
                        live.version = version;
                        if !feed.snapshot(members) {
                            return None;
                        }
                    }
                    Err(e) => return Some(e.to_string()),
                }
            }
            if feed.is_closed() {
                return None;
            }
        }
    }
}

impl Inner {
    /// Applies one announcement; returns whether a full reload is needed.
    fn announcement(&self, live: &mut Live, feed: &mut Feed, payload: &[u8]) -> bool {
        let ann: Announcement = match serde_json::from_slice(payload) {
            Ok(ann) => ann,
            Err(e) => {
                warn!(channel = %self.channel, "bad announcement, reloading: {e}");
                return true;
            }
        };
        if ann.version <= live.version {
            return false; // already in the snapshot
        }
        if ann.version != live.version + 1 {
            debug!(
                have = live.version,
                got = ann.version,
                "missed redis membership announcements; reloading"
            );
            return true;
        }
        live.version = ann.version;
        let change = match (ann.put, ann.remove) {
            (Some(member), None) => feed.set().put(member),
            (None, Some(logic)) => feed.set().remove(logic),
            _ => {
                warn!(channel = %self.channel, "announcement {} has no single op", ann.version);
                return true;
            }
        };
        // A closed receiver is noticed by the caller.
        feed.publish(change);
        false
    }
}
