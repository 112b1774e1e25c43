//! `EtcdStore` against a real etcd (Debian's etcd-server) on 127.0.0.1.
//!
//! Each test starts its own member on free ports, so tests run in parallel
//! and need no root. Skipped with a message when `/usr/bin/etcd` is missing.

use netlab::etcd::{EtcdServer, ETCD_BIN};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use vipd_election::{LeaseRecord, LeaseStore, StoreError, Version, WatchEvent};
use vipd_etcd::{key_for, EtcdOptions, EtcdStore};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn server() -> Option<EtcdServer> {
    if !std::path::Path::new(ETCD_BIN).exists() {
        eprintln!("SKIPPED: {ETCD_BIN} missing (apt-get install etcd-server)");
        return None;
    }
    Some(EtcdServer::start_local_any().expect("start etcd"))
}

fn store(srv: &EtcdServer, lease: &str) -> EtcdStore {
    let opts = EtcdOptions {
        connect_timeout: Duration::from_secs(1),
        request_timeout: REQUEST_TIMEOUT,
        ..EtcdOptions::new([srv.endpoint()], key_for(lease))
    };
    EtcdStore::new(opts).expect("valid options")
}

fn rec(holder: &str, transitions: u32) -> LeaseRecord {
    LeaseRecord {
        holder_identity: holder.into(),
        lease_duration_seconds: 15,
        acquire_time: None,
        renew_time: vipd_election::WallTime::parse_rfc3339("2026-11-26T15:30:00Z"),
        lease_transitions: transitions,
    }
}

/// A raw client, as "another writer" outside vipd.
async fn raw(srv: &EtcdServer) -> etcd_client::Client {
    etcd_client::Client::connect([srv.endpoint()], None)
        .await
        .expect("raw client")
}

/// Runs a blocking netlab call (process start/stop) without stalling the runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_missing_key_is_none() {
    let Some(srv) = server() else { return };
    let s = store(&srv, "missing");
    assert_eq!(s.get().await.expect("get"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_create_finds_the_record_already_there() {
    let Some(srv) = server() else { return };
    let a = store(&srv, "create");
    let b = store(&srv, "create");
    let created = a.create(&rec("node-a", 0)).await.expect("first create");
    assert_eq!(
        b.create(&rec("node-b", 0)).await,
        Err(StoreError::AlreadyExists)
    );
    // The loser did not overwrite: the record and its version are the winner's.
    let read = b.get().await.expect("get").expect("exists");
    assert_eq!(read, created);
    assert_eq!(read.record.holder_identity, "node-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_against_a_stale_version_conflicts() {
    let Some(srv) = server() else { return };
    let s = store(&srv, "stale");
    let v1 = s.create(&rec("node-a", 0)).await.expect("create");
    let v2 = s
        .update(&rec("node-a", 0), &v1.version)
        .await
        .expect("renew");
    assert_eq!(
        s.update(&rec("node-b", 1), &v1.version).await,
        Err(StoreError::Conflict)
    );
    let now = s.get().await.expect("get").expect("exists");
    assert_eq!(now, v2, "the conflicting write changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_with_the_current_version_succeeds_and_bumps_it() {
    let Some(srv) = server() else { return };
    let s = store(&srv, "bump");
    let v1 = s.create(&rec("node-a", 0)).await.expect("create");
    let v2 = s
        .update(&rec("node-b", 1), &v1.version)
        .await
        .expect("update");
    assert_ne!(v2.version, v1.version);
    let r1: i64 = v1.version.0.parse().expect("decimal revision");
    let r2: i64 = v2.version.0.parse().expect("decimal revision");
    assert!(r2 > r1, "mod_revision grows: {r1} -> {r2}");
    // The version returned by the write is exactly what a read sees.
    assert_eq!(s.get().await.expect("get"), Some(v2.clone()));
    assert_eq!(v2.record.holder_identity, "node-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_numeric_expected_version_is_rejected_not_written() {
    let Some(srv) = server() else { return };
    let s = store(&srv, "nonnum");
    let v1 = s.create(&rec("node-a", 0)).await.expect("create");
    for bad in ["abc", "", "-3", "0"] {
        let r = s.update(&rec("node-b", 1), &Version(bad.into())).await;
        assert!(matches!(r, Err(StoreError::Rejected(_))), "{bad:?}: {r:?}");
    }
    assert_eq!(s.get().await.expect("get"), Some(v1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_record_is_rejected() {
    let Some(srv) = server() else { return };
    let s = store(&srv, "garbage");
    raw(&srv)
        .await
        .put(s.key(), "not json", None)
        .await
        .expect("put");
    assert!(matches!(s.get().await, Err(StoreError::Rejected(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_racing_for_the_same_version_exactly_one_wins() {
    let Some(srv) = server() else { return };
    let a = store(&srv, "race");
    let b = store(&srv, "race");
    let mut cur = a.create(&rec("old", 0)).await.expect("create");
    for round in 0..10u32 {
        let (mine, theirs) = (rec("node-a", round), rec("node-b", round));
        let (ra, rb) = tokio::join!(
            a.update(&mine, &cur.version),
            b.update(&theirs, &cur.version)
        );
        let winner = match (ra, rb) {
            (Ok(w), Err(StoreError::Conflict)) | (Err(StoreError::Conflict), Ok(w)) => w,
            other => panic!("round {round}: expected exactly one winner, got {other:?}"),
        };
        let stored = a.get().await.expect("get").expect("exists");
        assert_eq!(
            stored, winner,
            "round {round}: the store holds the winner's write"
        );
        cur = winner;
    }
}

async fn next_event(rx: &mut mpsc::Receiver<WatchEvent>) -> WatchEvent {
    timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("watch event within 5 s")
        .expect("watch still running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_another_writers_update_and_delete() {
    let Some(srv) = server() else { return };
    let watcher = std::sync::Arc::new(store(&srv, "watch"));
    let writer = store(&srv, "watch");
    let v1 = writer.create(&rec("node-a", 0)).await.expect("create");
    assert_eq!(watcher.get().await.expect("get"), Some(v1.clone()));

    let (tx, mut rx) = mpsc::channel(8);
    let w = watcher.clone();
    let task = tokio::spawn(async move { w.watch(tx).await });

    let v2 = writer
        .update(&rec("node-b", 1), &v1.version)
        .await
        .expect("update");
    assert_eq!(next_event(&mut rx).await, WatchEvent::Changed(v2));

    raw(&srv)
        .await
        .delete(writer.key(), None)
        .await
        .expect("delete");
    assert_eq!(next_event(&mut rx).await, WatchEvent::Deleted);

    // Dropping the receiver ends the watch cleanly.
    drop(rx);
    let end = timeout(Duration::from_secs(5), task)
        .await
        .expect("watch ends")
        .expect("join");
    assert_eq!(end, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_delivers_changes_made_between_the_last_read_and_its_start() {
    let Some(srv) = server() else { return };
    let watcher = store(&srv, "gap");
    let writer = store(&srv, "gap");
    let v1 = writer.create(&rec("node-a", 0)).await.expect("create");
    assert_eq!(watcher.get().await.expect("get"), Some(v1.clone()));
    // Written after the watcher's read but before its watch exists.
    let v2 = writer
        .update(&rec("node-b", 1), &v1.version)
        .await
        .expect("update");

    let (tx, mut rx) = mpsc::channel(8);
    let run = watcher.watch(tx);
    tokio::pin!(run);
    let ev = tokio::select! {
        ev = next_event(&mut rx) => ev,
        r = &mut run => panic!("watch ended early: {r:?}"),
    };
    assert_eq!(ev, WatchEvent::Changed(v2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_then_the_next_call_redials_and_works() {
    let Some(srv) = server() else { return };
    let s = store(&srv, "reset");
    let v1 = s.create(&rec("node-a", 0)).await.expect("create");
    s.reset();
    assert_eq!(s.get().await.expect("get after reset"), Some(v1.clone()));
    s.reset();
    s.reset();
    s.update(&rec("node-a", 0), &v1.version)
        .await
        .expect("update after reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_down_fails_unavailable_within_bound_and_recovers_when_back() {
    let Some(mut srv) = server() else { return };
    let s = std::sync::Arc::new(store(&srv, "down"));
    let v1 = s.create(&rec("node-a", 0)).await.expect("create");

    // A watch open while etcd dies must end with an error, not hang.
    let (tx, _rx) = mpsc::channel(8);
    let w = s.clone();
    let watch = tokio::spawn(async move { w.watch(tx).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    blocking(|| srv.stop()).expect("stop etcd");

    let bound = REQUEST_TIMEOUT + Duration::from_secs(1);
    for attempt in 0..3 {
        let t0 = Instant::now();
        let r = s.get().await;
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: {r:?}"
        );
        assert!(
            t0.elapsed() <= bound,
            "attempt {attempt} took {:?}",
            t0.elapsed()
        );
        let t0 = Instant::now();
        let r = s.update(&rec("node-a", 0), &v1.version).await;
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "attempt {attempt}: {r:?}"
        );
        assert!(
            t0.elapsed() <= bound,
            "attempt {attempt} took {:?}",
            t0.elapsed()
        );
    }
    let ended = timeout(Duration::from_secs(20), watch)
        .await
        .expect("watch ends")
        .expect("join");
    assert!(
        matches!(ended, Err(StoreError::Unavailable(_))),
        "{ended:?}"
    );

    blocking(|| srv.start()).expect("restart etcd");
    // The store re-dials by itself; the data survived the restart.
    assert_eq!(s.get().await.expect("get after restart"), Some(v1.clone()));
    s.update(&rec("node-a", 0), &v1.version)
        .await
        .expect("renew after restart");
}
