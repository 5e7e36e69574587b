//! The Redis membership backend against a real `redis-server` (started by the test).
//!
//! Needs redis-server on PATH (`apt-get install -y redis-server`); a missing
//! binary fails the test with that hint.
//! Run with `cargo test -p clustergo --features redis,etcd`.
#![cfg(feature = "redis")]

// Not `support/mod.rs`: that file belongs to the node tests.
#[path = "support/membership.rs"]
mod support;

use std::time::Duration;

use clustergo::membership::{Membership, MembershipAdmin, MembershipError, RedisMembership};
use support::{RedisServer, change, expect_change, member, next_change};

fn membership(server: &RedisServer, prefix: &str) -> RedisMembership {
    RedisMembership::new(&server.url(), prefix)
        .unwrap()
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

#[tokio::test]
async fn snapshot_then_changes_reach_every_subscriber() {
    support::init_tracing();
    let server = RedisServer::start().await;
    // Another prefix is another cluster list.
    membership(&server, "other:")
        .put(member("3.3.3", 9333))
        .await
        .unwrap();
    support::snapshot_then_changes(&membership(&server, "t1:"), || membership(&server, "t1:"))
        .await;
}

#[tokio::test]
async fn resync_picks_up_changes_made_behind_its_back() {
    support::init_tracing();
    let server = RedisServer::start().await;
    let watcher = membership(&server, "t2:").with_resync_interval(Duration::from_millis(200));
    let mut rx = watcher.subscribe().await.unwrap();
    assert!(next_change(&mut rx).await.is_empty());

    // Written directly, with no announcement, plus one entry that does not parse.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let json = serde_json::to_string(&member("1.4.1", 9041)).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(watcher.members_key())
        .arg("1.4.1")
        .arg(&json)
        .arg("1.4.2")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![member("1.4.1", 9041)], vec![], vec![])
    );

    let _: () = redis::cmd("HDEL")
        .arg(watcher.members_key())
        .arg("1.4.1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![], vec![member("1.4.1", 9041)], vec![])
    );
}

#[tokio::test]
async fn subscriber_resyncs_after_redis_restart() {
    support::init_tracing();
    let mut server = RedisServer::start().await;
    let port = server.port;
    let admin = membership(&server, "t3:");
    admin.put(member("1.1.1", 9001)).await.unwrap();
    let mut rx = membership(&server, "t3:").subscribe().await.unwrap();
    assert_eq!(
        next_change(&mut rx).await.added,
        vec![member("1.1.1", 9001)]
    );

    // Restart on the same port; nothing is persisted, so the list starts empty.
    server.kill();
    drop(server);
    let server = {
        let mut attempt = 0;
        loop {
            match RedisServer::start_on(port).await {
                Ok(server) => break server,
                Err(e) if attempt < 20 => {
                    attempt += 1;
                    eprintln!("restarting redis on {port}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        }
    };
    // The admin's connection died with the old server: it reconnects by itself.
    admin.put(member("1.1.2", 9002)).await.unwrap();
    expect_change(
        &mut rx,
        change(
            vec![member("1.1.2", 9002)],
            vec![member("1.1.1", 9001)],
            vec![],
        ),
    )
    .await;

    // And it keeps following announcements on the new connection.
    admin.remove("1.1.2".parse().unwrap()).await.unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![], vec![member("1.1.2", 9002)], vec![])
    );
    drop(server);
}

#[tokio::test]
async fn unreachable_redis_is_a_clear_error() {
    support::init_tracing();
    let url = format!("redis://127.0.0.1:{}/", support::free_port());
    let started = std::time::Instant::now();
    let err = RedisMembership::new(&url, "x:")
        .unwrap()
        .subscribe()
        .await
        .unwrap_err();
    assert!(matches!(err, MembershipError::Unreachable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let err = RedisMembership::new("nonsense://", "x:").unwrap_err();
    assert!(matches!(err, MembershipError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_gap_in_announcements_triggers_a_reload() {
    support::init_tracing();
    let server = RedisServer::start().await;
    // Resync timer far away: only the gap can explain a reload.
    let watcher = membership(&server, "t5:").with_resync_interval(Duration::from_secs(3600));
    let mut rx = watcher.subscribe().await.unwrap();
    assert!(next_change(&mut rx).await.is_empty());

    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stored = serde_json::to_string(&member("1.7.1", 9071)).unwrap();
    let _: () = redis::cmd("HSET")
        .arg(watcher.members_key())
        .arg("1.7.1")
        .arg(&stored)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Version 1000 while the subscriber is at 0: it must not trust this
    // announcement's content, only reload.
    let announced = serde_json::to_string(&member("1.7.2", 9072)).unwrap();
    let _: () = redis::cmd("PUBLISH")
        .arg("t5:changes")
        .arg(format!(r#"{{"version":1000,"put":{announced}}}"#))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        change(vec![member("1.7.1", 9071)], vec![], vec![])
    );
}
