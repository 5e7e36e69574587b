//! The etcd membership backend against a real `etcd` (started by the test).
//!
//! Needs etcd on PATH (`apt-get install -y etcd-server etcd-client`); a missing
//! binary fails the test with that hint. Building the `etcd-client` crate needs
//! protoc (`apt-get install -y protobuf-compiler`, or set `PROTOC`).
//! Run with `cargo test -p clustergo --features redis,etcd`.
#![cfg(feature = "etcd")]

// Not `support/mod.rs`: that file belongs to the node tests.
#[path = "support/membership.rs"]
mod support;

use std::time::Duration;

use clustergo::membership::{EtcdMembership, Membership, MembershipAdmin, MembershipError};
use support::{EtcdServer, change, member, next_change};

fn membership(server: &EtcdServer, prefix: &str) -> EtcdMembership {
    EtcdMembership::new([server.endpoint()], prefix)
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[tokio::test]
async fn snapshot_then_changes_reach_every_subscriber() {
    support::init_tracing();
    let server = EtcdServer::start().await;
    // A key under a sibling prefix is not ours.
    membership(&server, "/t1/members2/")
        .put(member("3.3.3", 9333))
        .await
        .unwrap();
    support::snapshot_then_changes(&membership(&server, "/t1/members/"), || {
        membership(&server, "/t1/members/")
    })
    .await;
}

#[tokio::test]
async fn lease_registration_lives_while_kept_and_expires_when_dropped() {
    support::init_tracing();
    let server = EtcdServer::start().await;
    let etcd = membership(&server, "/t2/members/");
    let mut rx = etcd.subscribe().await.unwrap();
    assert!(next_change(&mut rx).await.is_empty());

    let registration = etcd
        .register_self_with_lease(member("1.5.1", 9051), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![member("1.5.1", 9051)], vec![], vec![])
    );

    // Kept alive past its 2 s TTL (etcd checks expiry every 500 ms).
    let quiet = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await;
    assert!(
        quiet.is_err(),
        "registered member changed while kept alive: {quiet:?}"
    );

    // A dead node stops refreshing: the lease runs out and the member goes.
    drop(registration);
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![], vec![member("1.5.1", 9051)], vec![])
    );

    // Revoking removes at once.
    let registration = etcd
        .register_self_with_lease(member("1.5.2", 9052), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await.added,
        vec![member("1.5.2", 9052)]
    );
    registration.revoke().await.unwrap();
    let removed = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .expect("revoke did not remove the member within 2 s")
        .unwrap();
    assert_eq!(removed.removed, vec![member("1.5.2", 9052)]);
}

#[tokio::test]
async fn unreachable_etcd_is_a_clear_error() {
    support::init_tracing();
    let endpoint = format!("http://127.0.0.1:{}", support::free_port());
    let started = std::time::Instant::now();
    let err = EtcdMembership::new([endpoint], "/x/")
        .subscribe()
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::Unreachable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn watch_recovers_after_etcd_restart() {
    support::init_tracing();
    let mut server = EtcdServer::start().await;
    let admin = membership(&server, "/t3/members/");
    admin.put(member("1.1.1", 9001)).await.unwrap();
    let mut rx = membership(&server, "/t3/members/")
        .subscribe()
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await.added,
        vec![member("1.1.1", 9001)]
    );

    // A fresh etcd on the same port: the old member is gone.
    server.restart_empty().await;
    support::expect_change(&mut rx, change(vec![], vec![member("1.1.1", 9001)], vec![])).await;

    // The admin's client recovers, and the subscriber follows the new server.
    let mut put = admin.put(member("1.1.2", 9002)).await;
    for _ in 0..50 {
        if put.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        put = admin.put(member("1.1.2", 9002)).await;
    }
    put.unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![member("1.1.2", 9002)], vec![], vec![])
    );
}

#[tokio::test]
async fn lease_registration_comes_back_after_etcd_loses_it() {
    support::init_tracing();
    let mut server = EtcdServer::start().await;
    let etcd = membership(&server, "/t4/members/");
    let registration = etcd
        .register_self_with_lease(member("1.6.1", 9061), Duration::from_secs(1))
        .await
        .unwrap();
    let first = registration.lease_id();

    // A fresh, empty etcd: the lease and the key are gone; the registration notices
    // and registers again under a new lease.
    server.restart_empty().await;
    let back = support::poll_until(support::WAIT, async || {
        let Ok(mut rx) = etcd.subscribe().await else {
            return false;
        };
        matches!(rx.recv().await, Some(c) if c.added == vec![member("1.6.1", 9061)])
    })
    .await;
    assert!(back, "member not registered again after etcd restart");
    assert_ne!(registration.lease_id(), first);
}

#[tokio::test]
async fn revoking_a_lease_etcd_no_longer_has_is_refused() {
    support::init_tracing();
    let server = EtcdServer::start().await;
    let etcd = membership(&server, "/t5/members/");
    let mut rx = etcd.subscribe().await.unwrap();
    assert!(next_change(&mut rx).await.is_empty());
    let registration = etcd
        .register_self_with_lease(member("1.8.1", 9081), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(next_change(&mut rx).await.added.len(), 1);
    // Revoke the lease behind the registration's back (its next keep-alive is
    // 10 s away), then revoke it again through the registration.
    let other = etcd_client::Client::connect([server.endpoint()], None).await;
    other
        .unwrap()
        .lease_revoke(registration.lease_id())
        .await
        .unwrap();
    assert_eq!(next_change(&mut rx).await.removed.len(), 1);
    let err = registration.revoke().await.unwrap_err();
    assert!(matches!(err, MembershipError::Refused(_)), "{err:?}");
    // The client still works afterwards.
    etcd.put(member("1.8.2", 9082)).await.unwrap();
    assert_eq!(
        next_change(&mut rx).await.added,
        vec![member("1.8.2", 9082)]
    );
}
