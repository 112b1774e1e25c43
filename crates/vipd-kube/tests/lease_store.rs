//! KubeLeaseStore against the in-repo Kubernetes API TEST SERVER: the
//! LeaseStore contract with client-go LeaseLock semantics (SPEC R9).

mod common;

use common::{bounded, start, NS};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams};
use std::time::Duration;
use tokio::sync::mpsc;
use vipd_election::{LeaseRecord, LeaseStore, StoreError, Version, WallTime, WatchEvent};

const DEADLINE: Duration = Duration::from_secs(2);

fn record(holder: &str, transitions: u32) -> LeaseRecord {
    let now = WallTime::now();
    LeaseRecord {
        holder_identity: holder.into(),
        lease_duration_seconds: 15,
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: transitions,
    }
}

#[tokio::test]
async fn create_get_update_release_follow_resource_versions() {
    let env = start().await;
    let store = env.store("plndr-cp-lock", DEADLINE).await;
    assert_eq!(bounded("get", store.get()).await, Ok(None));

    let created = bounded("create", store.create(&record("node-a", 0)))
        .await
        .expect("create");
    assert_eq!(created.record.holder_identity, "node-a");
    let read = bounded("get", store.get())
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(read, created);

    let mut renewed = record("node-a", 0);
    renewed.acquire_time = created.record.acquire_time;
    let after = bounded("update", store.update(&renewed, &read.version))
        .await
        .expect("update");
    assert_ne!(after.version, read.version);
    assert_eq!(after.record, renewed);

    // client-go's release: empty holder, duration 1 s.
    let released = LeaseRecord {
        holder_identity: String::new(),
        lease_duration_seconds: 1,
        ..renewed
    };
    let rel = bounded("release", store.update(&released, &after.version))
        .await
        .expect("release");
    let read = bounded("get", store.get())
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(read, rel);
    assert_eq!(read.record.holder_identity, "");
}

#[tokio::test]
async fn second_create_is_already_exists() {
    let env = start().await;
    let a = env.store("l", DEADLINE).await;
    let b = env.store("l", DEADLINE).await;
    bounded("create", a.create(&record("node-a", 0)))
        .await
        .expect("first create");
    assert_eq!(
        bounded("create", b.create(&record("node-b", 0))).await,
        Err(StoreError::AlreadyExists)
    );
}

#[tokio::test]
async fn update_against_a_stale_version_is_a_conflict() {
    let env = start().await;
    let a = env.store("l", DEADLINE).await;
    let v1 = bounded("create", a.create(&record("node-a", 0)))
        .await
        .expect("create");
    let v2 = bounded("update", a.update(&record("node-a", 0), &v1.version))
        .await
        .expect("update");
    assert_eq!(
        bounded("stale", a.update(&record("node-a", 0), &v1.version)).await,
        Err(StoreError::Conflict)
    );
    // The stale write changed nothing.
    let now = bounded("get", a.get()).await.expect("get").expect("exists");
    assert_eq!(now.version, v2.version);
}

#[tokio::test]
async fn two_stores_racing_for_one_version_have_exactly_one_winner() {
    let env = start().await;
    let seed = env.store("l", DEADLINE).await;
    bounded("create", seed.create(&record("node-old", 4)))
        .await
        .expect("create");
    let a = env.store("l", DEADLINE).await;
    let b = env.store("l", DEADLINE).await;
    let va = bounded("get", a.get()).await.expect("get").expect("exists");
    let vb = bounded("get", b.get()).await.expect("get").expect("exists");
    assert_eq!(va.version, vb.version);
    let (na, nb) = (record("node-a", 5), record("node-b", 5));
    let (ra, rb) = bounded("race", async {
        tokio::join!(a.update(&na, &va.version), b.update(&nb, &vb.version))
    })
    .await;
    let wins = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{ra:?} {rb:?}");
    let loser = if ra.is_ok() { rb } else { ra };
    assert_eq!(loser, Err(StoreError::Conflict));
    let holder = bounded("get", seed.get())
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(holder.record.lease_transitions, 5);
}

#[tokio::test]
async fn update_with_an_unknown_version_never_writes_blindly() {
    let env = start().await;
    let a = env.store("l", DEADLINE).await;
    bounded("create", a.create(&record("node-a", 0)))
        .await
        .expect("create");
    assert!(matches!(
        bounded(
            "empty rv",
            a.update(&record("node-b", 1), &Version(String::new()))
        )
        .await,
        Err(StoreError::Rejected(_))
    ));
    let now = bounded("get", a.get()).await.expect("get").expect("exists");
    assert_eq!(now.record.holder_identity, "node-a");
}

#[tokio::test]
async fn watch_sees_another_writer_and_the_deletion() {
    let env = start().await;
    let ours = env.store("l", DEADLINE).await;
    let other = env.store("l", DEADLINE).await;
    let v = bounded("create", ours.create(&record("node-a", 0)))
        .await
        .expect("create");
    let (tx, mut rx) = mpsc::channel(16);
    let watcher = tokio::spawn(async move {
        let r = ours.watch(tx).await;
        (ours, r)
    });
    // Give the watch a moment to be registered; events from our last-seen
    // version onwards are replayed anyway.
    tokio::time::sleep(Duration::from_millis(200)).await;
    bounded(
        "other update",
        other.update(&record("node-b", 1), &v.version),
    )
    .await
    .expect("other writer");
    let ev = bounded("watch event", rx.recv()).await.expect("event");
    match ev {
        WatchEvent::Changed(v) => assert_eq!(v.record.holder_identity, "node-b"),
        other => panic!("unexpected {other:?}"),
    }
    let api: Api<Lease> = Api::namespaced(env.raw_client().await, NS);
    bounded("delete", api.delete("l", &DeleteParams::default()))
        .await
        .expect("delete");
    assert_eq!(
        bounded("watch delete", rx.recv()).await,
        Some(WatchEvent::Deleted)
    );
    drop(rx);
    let (_, r) = bounded("watch ends", watcher).await.expect("join");
    assert_eq!(r, Ok(()), "a closed receiver ends the watch cleanly");
}

#[tokio::test]
async fn watch_from_a_compacted_version_returns_an_error_then_recovers() {
    let env = start().await;
    let ours = env.store("l", DEADLINE).await;
    let other = env.store("l", DEADLINE).await;
    let v = bounded("create", ours.create(&record("node-a", 0)))
        .await
        .expect("create");
    let mut ver = v.version;
    for i in 0..3 {
        ver = bounded("update", other.update(&record("node-b", i), &ver))
            .await
            .expect("update")
            .version;
    }
    env.server.compact();
    let (tx, mut rx) = mpsc::channel(16);
    let r = bounded("410 watch", ours.watch(tx.clone())).await;
    assert!(
        matches!(r, Err(StoreError::Unavailable(ref m)) if m.contains("410")),
        "{r:?}"
    );
    // The next watch starts from the current state (the driver restarts it).
    let watcher = tokio::spawn(async move { ours.watch(tx).await });
    let ev = bounded("fresh watch", rx.recv()).await.expect("event");
    assert!(
        matches!(ev, WatchEvent::Changed(ref v) if v.record.holder_identity == "node-b"),
        "{ev:?}"
    );
    watcher.abort();
}

#[tokio::test]
async fn lease_on_the_wire_has_client_go_field_names_and_micro_time_format() {
    let env = start().await;
    let store = env.store("demo-lock", DEADLINE).await;
    let mut r = record("node-a", 0);
    r.acquire_time = WallTime::parse_rfc3339("2026-11-26T15:30:00Z");
    r.renew_time = WallTime::parse_rfc3339("2026-11-26T15:30:00.000001Z");
    bounded("create", store.create(&r)).await.expect("create");
    let client = env.raw_client().await;
    let req = http::Request::get(format!(
        "/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/demo-lock"
    ))
    .body(Vec::new())
    .expect("request");
    let body: serde_json::Value = bounded("raw get", client.request(req))
        .await
        .expect("raw get");
    // The spec of `lease-create` in /work/shared/kube-api/transcripts.json,
    // with our renew time.
    let expected: serde_json::Value = serde_json::from_str(
        r#"{"holderIdentity": "node-a", "leaseDurationSeconds": 15,
            "acquireTime": "2026-11-26T15:30:00.000000Z",
            "renewTime": "2026-11-26T15:30:00.000001Z", "leaseTransitions": 0}"#,
    )
    .expect("fixture");
    assert_eq!(body["spec"], expected);
    assert_eq!(body["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(body["kind"], "Lease");
}

#[tokio::test]
async fn foreign_lease_is_read_and_replaced_keeping_its_metadata() {
    // A lease written by kube-vip (client-go), with labels and annotations.
    let env = start().await;
    env.server
        .put_object(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "plndr-cp-lock", "namespace": NS,
                         "labels": {"app": "kube-vip"},
                         "annotations": {"note": "migrating"}},
            "spec": {"holderIdentity": "kube-vip-node-c", "leaseDurationSeconds": 5,
                     "acquireTime": "2026-11-26T15:00:00.000000Z",
                     "renewTime": "2026-11-26T15:29:59.123456Z", "leaseTransitions": 7}
        }))
        .expect("seed");
    let store = env.store("plndr-cp-lock", DEADLINE).await;
    let v = bounded("get", store.get())
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(v.record.holder_identity, "kube-vip-node-c");
    assert_eq!(v.record.lease_duration_seconds, 5);
    assert_eq!(v.record.lease_transitions, 7);
    assert_eq!(
        v.record.renew_time,
        WallTime::parse_rfc3339("2026-11-26T15:29:59.123456Z")
    );
    bounded("takeover", store.update(&record("node-a", 8), &v.version))
        .await
        .expect("takeover");
    let api: Api<Lease> = Api::namespaced(env.raw_client().await, NS);
    let l = bounded("raw get", api.get("plndr-cp-lock"))
        .await
        .expect("get");
    assert_eq!(
        l.metadata
            .labels
            .as_ref()
            .and_then(|m| m.get("app"))
            .map(String::as_str),
        Some("kube-vip")
    );
    assert_eq!(
        l.metadata
            .annotations
            .as_ref()
            .and_then(|m| m.get("note"))
            .map(String::as_str),
        Some("migrating")
    );
    assert_eq!(
        l.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("node-a")
    );
}

#[tokio::test]
async fn wrong_token_is_rejected_not_unavailable() {
    let env = start().await;
    let text = std::fs::read_to_string(&env.kubeconfig).expect("kubeconfig");
    let bad = env.dir.join("kubeconfig-bad-token");
    std::fs::write(&bad, text.replace(env.server.token(), "not-the-token")).expect("write");
    let creds = vipd_kube::Credentials::load(Some(&bad))
        .await
        .expect("load");
    let eps = creds.endpoints(&env.inputs()).expect("endpoints");
    let store = vipd_kube::KubeLeaseStore::new(creds, &eps, NS, "l", DEADLINE);
    assert!(matches!(
        bounded("get", store.get()).await,
        Err(StoreError::Rejected(ref m)) if m.contains("401")
    ));
}
