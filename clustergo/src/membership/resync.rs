//! The reconnect-and-resync loop shared by the networked backends (discovery client,
//! Redis, etcd).
//!
//! Each of them follows something live (a socket, a pub/sub stream, a watch) and,
//! when it breaks, backs off, reconnects and reads a full snapshot; the subscriber
//! then receives the difference from what it had, so no change is lost or repeated.
//! The loop, its backoff and its cancellation (the subscriber dropping its receiver)
//! live here; a backend only says how to connect and how to follow ([`Source`]).

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::membership::{Member, MemberSet, MembershipChange, MembershipError};

/// What a subscription has published so far, and where to.
#[derive(Debug)]
pub(crate) struct Feed {
    set: MemberSet,
    tx: mpsc::UnboundedSender<MembershipChange>,
}

impl Feed {
    /// The members as the subscriber knows them.
    pub(crate) fn set(&mut self) -> &mut MemberSet {
        &mut self.set
    }

    /// Sends `change` unless it is empty; `false` if the subscriber went away.
    pub(crate) fn publish(&self, change: MembershipChange) -> bool {
        change.is_empty() || self.tx.send(change).is_ok()
    }

    /// Replaces the set with `members` and publishes the difference; `false` if the
    /// subscriber went away.
    pub(crate) fn snapshot(&mut self, members: Vec<Member>) -> bool {
        let change = self.set.apply_snapshot(members);
        self.publish(change)
    }

    /// Whether the subscriber dropped its receiver.
    #[cfg(feature = "redis")]
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The backend-specific half of a subscription.
pub(crate) trait Source: Send + Sync + 'static {
    /// What is followed between two reconnects (a socket, a stream, a watch).
    type Conn: Send + 'static;

    /// Names the subscription in logs (backend and address).
    fn name(&self) -> String;

    /// The reconnect backoff (a new one per outage).
    fn backoff(&self) -> Backoff;

    /// Opens a connection and reads every member, so that nothing that happens after
    /// the read is missed by [`follow`](Self::follow).
    fn connect(
        &self,
    ) -> impl Future<Output = Result<(Self::Conn, Vec<Member>), MembershipError>> + Send;

    /// Applies what `conn` announces to `feed` until it breaks. Returns why, or
    /// `None` if the subscriber went away.
    fn follow(
        &self,
        conn: &mut Self::Conn,
        feed: &mut Feed,
    ) -> impl Future<Output = Option<String>> + Send;
}

/// Connects, publishes the snapshot as the first change (every member `added`, even
/// if there are none), then follows and resynchronises in a task until the receiver
/// is dropped.
pub(crate) async fn subscribe<S: Source>(
    source: Arc<S>,
) -> Result<mpsc::UnboundedReceiver<MembershipChange>, MembershipError> {
    let (conn, members) = source.connect().await?;
    let mut set = MemberSet::new();
    let initial = set.apply_snapshot(members);
    let (tx, rx) = mpsc::unbounded_channel();
    // The receiver is alive: this cannot fail.
    let _ = tx.send(initial);
    tokio::spawn(run(source, conn, Feed { set, tx }));
    Ok(rx)
}

async fn run<S: Source>(source: Arc<S>, mut conn: S::Conn, mut feed: Feed) {
    // A second handle to watch for the receiver going away while `feed` is lent out.
    let watch = feed.tx.clone();
    loop {
        let reason = tokio::select! {
            _ = watch.closed() => return,
            reason = source.follow(&mut conn, &mut feed) => match reason {
                Some(reason) => reason,
                None => return,
            },
        };
        let name = source.name();
        warn!("{name} lost ({reason}); reconnecting");
        drop(conn);
        let members;
        (conn, members) = tokio::select! {
            _ = watch.closed() => return,
            fresh = retry(source.backoff(), &name, || source.connect()) => fresh,
        };
        if !feed.snapshot(members) {
            return;
        }
        info!("{name} restored");
    }
}

/// Waits a backoff delay, then calls `attempt`, until it succeeds (failures are
/// logged at debug level as `{what} failed`). Cancel by dropping the future.
pub(crate) async fn retry<T, E, Fut>(
    mut backoff: Backoff,
    what: &str,
    mut attempt: impl FnMut() -> Fut,
) -> T
where
    E: Display,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        tokio::time::sleep(backoff.next_delay()).await;
        match attempt().await {
            Ok(value) => return value,
            Err(e) => debug!("{what}: reconnect failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use parking_lot::Mutex;

    fn member(logic: &str) -> Member {
        crate::membership::test_member(logic, 9001)
    }

    /// A scripted source: each `connect` pops the next outcome; each `follow` breaks
    /// at once after applying `announce`.
    struct Script {
        connects: Mutex<Vec<Result<Vec<Member>, ()>>>,
        attempts: Mutex<usize>,
    }

    impl Source for Script {
        type Conn = ();

        fn name(&self) -> String {
            "script".into()
        }

        fn backoff(&self) -> Backoff {
            Backoff::new(Duration::from_millis(10), Duration::from_millis(40))
        }

        async fn connect(&self) -> Result<((), Vec<Member>), MembershipError> {
            *self.attempts.lock() += 1;
            let next = self.connects.lock().pop();
            match next {
                Some(Ok(members)) => Ok(((), members)),
                Some(Err(())) => Err(MembershipError::Unreachable("scripted".into())),
                None => std::future::pending().await,
            }
        }

        async fn follow(&self, _: &mut (), _: &mut Feed) -> Option<String> {
            Some("scripted break".into())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn resyncs_after_failures_and_publishes_only_differences() {
        // Popped from the end: first snapshot, two failed reconnects, then a snapshot
        // with one member gone and one added, then the same again (no change).
        let script = Arc::new(Script {
            connects: Mutex::new(vec![
                Ok(vec![member("1.1.2"), member("1.1.3")]),
                Ok(vec![member("1.1.2"), member("1.1.3")]),
                Err(()),
                Err(()),
                Ok(vec![member("1.1.1"), member("1.1.2")]),
            ]),
            attempts: Mutex::new(0),
        });
        let mut rx = subscribe(script.clone()).await.unwrap();
        let first = rx.recv().await.unwrap();
        assert_eq!(first.added, vec![member("1.1.1"), member("1.1.2")]);
        let second = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(second.added, vec![member("1.1.3")]);
        assert_eq!(second.removed, vec![member("1.1.1")]);
        assert_eq!(*script.attempts.lock(), 4);
        // The identical snapshot publishes nothing; the script then hangs in connect.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*script.attempts.lock(), 6);
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn empty_first_snapshot_is_still_published_and_dropping_stops_the_task() {
        let script = Arc::new(Script {
            connects: Mutex::new(vec![Ok(vec![])]),
            attempts: Mutex::new(0),
        });
        let mut rx = subscribe(script.clone()).await.unwrap();
        assert!(rx.recv().await.unwrap().is_empty());
        drop(rx);
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The task ended: the script (held by it) has one owner again.
        assert_eq!(Arc::strong_count(&script), 1);
    }
}
