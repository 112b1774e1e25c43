//! NodeLeaseStore and AssignmentStore against the in-repo Kubernetes API
//! TEST SERVER: the node-lease and assignment IO of Services mode (issue 5).

mod common;

use common::{bounded, start, Env, NS};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use vipd_election::{LeaseRecord, StoreError, WallTime};
use vipd_kube::mapping;
use vipd_kube::{
    AssignmentStore, NodeLeaseEvent, NodeLeaseStore, ASSIGNMENT_KEY, NODE_LEASE_LABEL,
    NODE_STATE_ANNOTATION,
};
use vipd_services::{Assignment, Entry, NodeState};

const TIMEOUT: Duration = Duration::from_secs(2);
const CM: &str = "vipd-assignment";

async fn node_store(env: &Env) -> NodeLeaseStore {
    let creds = env.credentials().await;
    let eps = creds.endpoints(&env.inputs()).expect("endpoints");
    NodeLeaseStore::new(creds, &eps, NS, TIMEOUT)
}

async fn assignment_store(env: &Env) -> AssignmentStore {
    let creds = env.credentials().await;
    let eps = creds.endpoints(&env.inputs()).expect("endpoints");
    AssignmentStore::new(creds, &eps, NS, CM, TIMEOUT)
}

fn record(node: &str) -> LeaseRecord {
    let now = WallTime::now();
    LeaseRecord {
        holder_identity: node.into(),
        lease_duration_seconds: 15,
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: 0,
    }
}

fn renewed(r: &LeaseRecord) -> LeaseRecord {
    let mut next = r.clone();
    next.renew_time = r.renew_time.map(|t| WallTime {
        unix_micros: t.unix_micros + 1_000_000,
    });
    next
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn state(generation: u64, held: &[&str]) -> NodeState {
    NodeState {
        generation,
        held: held.iter().map(|s| ip(s)).collect(),
        expired: false,
    }
}

fn assignment(generation: u64, owner: &str) -> Assignment {
    Assignment {
        generation,
        entries: [(
            ip("198.51.100.10"),
            Entry {
                owner: Some(owner.into()),
                since: generation,
                prior: BTreeSet::new(),
            },
        )]
        .into(),
    }
}

async fn raw_lease(env: &Env, node: &str) -> Lease {
    let api: Api<Lease> = Api::namespaced(env.raw_client().await, NS);
    api.get(&NodeLeaseStore::lease_name(node))
        .await
        .expect("raw get")
}

#[tokio::test]
async fn node_lease_round_trips_spec_label_and_state_and_keeps_foreign_labels() {
    let env = start().await;
    let store = node_store(&env).await;
    assert_eq!(bounded("read", store.read("node-a")).await, Ok(None));

    let r1 = record("node-a");
    let s1 = state(3, &["198.51.100.10", "2001:db8::10"]);
    let v1 = bounded("create", store.write("node-a", &r1, &s1, None))
        .await
        .expect("create");
    let read = bounded("read", store.read("node-a"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (read.node.as_str(), &read.record, &read.state, &read.version),
        ("node-a", &r1, &s1, &v1)
    );
    let raw = raw_lease(&env, "node-a").await;
    assert_eq!(
        raw.metadata.name.as_deref(),
        Some("vipd-node-node-a"),
        "lease name"
    );
    let labels = raw.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(NODE_LEASE_LABEL).map(String::as_str),
        Some("true")
    );
    let json = raw
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .get(NODE_STATE_ANNOTATION)
        .cloned()
        .expect("annotation");
    let parsed: NodeState = serde_json::from_str(&json).expect("annotation is JSON");
    assert_eq!(parsed, s1);

    // Someone else labels the lease; the store reads it and renews: the
    // foreign label survives, ours is still there.
    let api: Api<Lease> = Api::namespaced(env.raw_client().await, NS);
    let mut labelled = raw.clone();
    labelled
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("team".into(), "net".into());
    api.replace("vipd-node-node-a", &PostParams::default(), &labelled)
        .await
        .expect("foreign label");
    let seen = bounded("read", store.read("node-a"))
        .await
        .expect("read")
        .expect("exists");
    assert_ne!(seen.version, v1);
    let r2 = record("node-a");
    let s2 = state(4, &[]);
    let v2 = bounded(
        "replace",
        store.write("node-a", &r2, &s2, Some(&seen.version)),
    )
    .await
    .expect("replace");
    assert_ne!(v2, seen.version);
    let raw = raw_lease(&env, "node-a").await;
    let labels = raw.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("net"));
    assert_eq!(
        labels.get(NODE_LEASE_LABEL).map(String::as_str),
        Some("true")
    );
    let read = bounded("read", store.read("node-a"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((&read.record, &read.state, &read.version), (&r2, &s2, &v2));
}

#[tokio::test]
async fn second_create_is_already_exists_and_a_stale_replace_conflicts() {
    let env = start().await;
    let a = node_store(&env).await;
    let b = node_store(&env).await;
    let v1 = bounded(
        "create",
        a.write("node-a", &record("node-a"), &state(1, &[]), None),
    )
    .await
    .expect("create");
    assert_eq!(
        bounded(
            "create",
            b.write("node-a", &record("node-a"), &state(1, &[]), None)
        )
        .await,
        Err(StoreError::AlreadyExists)
    );
    bounded(
        "replace",
        a.write("node-a", &record("node-a"), &state(2, &[]), Some(&v1)),
    )
    .await
    .expect("replace");
    assert_eq!(
        bounded(
            "stale replace",
            a.write("node-a", &record("node-a"), &state(3, &[]), Some(&v1))
        )
        .await,
        Err(StoreError::Conflict)
    );
}

#[tokio::test]
async fn tombstone_fences_the_renewal_at_the_old_version_and_reads_as_expired() {
    let env = start().await;
    let node = node_store(&env).await;
    let assigner = node_store(&env).await;
    let r = record("node-a");
    let v1 = bounded(
        "create",
        node.write("node-a", &r, &state(2, &["198.51.100.10"]), None),
    )
    .await
    .expect("create");
    // A renewal moves renewTime (an identical PUT would be a no-op that
    // keeps the resourceVersion).
    let r = renewed(&r);
    let v2 = bounded(
        "renew",
        node.write("node-a", &r, &state(2, &["198.51.100.10"]), Some(&v1)),
    )
    .await
    .expect("renew");
    assert_ne!(v1, v2);

    // The assigner saw v2 through its list; a tombstone at v1 is stale.
    let (listed, _) = bounded("list", assigner.list()).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, v2);
    assert_eq!(
        bounded("stale tombstone", assigner.tombstone("node-a", &v1, 9)).await,
        Err(StoreError::Conflict)
    );
    let vt = bounded("tombstone", assigner.tombstone("node-a", &v2, 9))
        .await
        .expect("tombstone");
    assert_ne!(vt, v2);

    // The node's next renewal at its old version loses.
    assert_eq!(
        bounded(
            "renew after tombstone",
            node.write("node-a", &r, &state(2, &["198.51.100.10"]), Some(&v2))
        )
        .await,
        Err(StoreError::Conflict)
    );
    let read = bounded("read", node.read("node-a"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.version, vt);
    assert_eq!(
        read.state,
        NodeState {
            generation: 9,
            held: BTreeSet::new(),
            expired: true
        }
    );
    // Spec unchanged: the tombstone only adds the state.
    assert_eq!(read.record, r);

    // A tombstone from a store that never saw the lease reads it first.
    let fresh = node_store(&env).await;
    let vt2 = bounded(
        "tombstone by a fresh store",
        fresh.tombstone("node-a", &vt, 10),
    )
    .await
    .expect("tombstone");
    let read = bounded("read", node.read("node-a"))
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((read.version, read.state.generation), (vt2, 10));
    assert_eq!(
        bounded("tombstone of no lease", fresh.tombstone("node-z", &vt, 10)).await,
        Err(StoreError::Conflict)
    );
}

#[tokio::test]
async fn list_returns_only_labelled_node_leases() {
    let env = start().await;
    let store = node_store(&env).await;
    for n in ["node-a", "node-b"] {
        bounded("create", store.write(n, &record(n), &state(1, &[]), None))
            .await
            .expect("create");
    }
    // An unrelated Lease (a client-go election lock) in the same namespace.
    let api: Api<Lease> = Api::namespaced(env.raw_client().await, NS);
    let other = mapping::new_lease(NS, "plndr-cp-lock", &record("node-c")).expect("lease");
    api.create(&PostParams::default(), &other)
        .await
        .expect("unrelated lease");

    let (leases, rv) = bounded("list", store.list()).await.expect("list");
    let nodes: Vec<&str> = leases.iter().map(|l| l.node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.contains(&"node-a") && nodes.contains(&"node-b"));
    assert!(!rv.is_empty());
}

#[tokio::test]
async fn labelled_lease_without_state_reads_as_generation_zero() {
    let env = start().await;
    let store = node_store(&env).await;
    let api: Api<Lease> = Api::namespaced(env.raw_client().await, NS);
    let mut bare = mapping::new_lease(NS, "vipd-node-node-a", &record("node-a")).expect("lease");
    bare.metadata.labels = Some([(NODE_LEASE_LABEL.to_owned(), "true".to_owned())].into());
    bare.metadata.annotations = Some(
        [(
            NODE_STATE_ANNOTATION.to_owned(),
            r#"{"generation":"#.to_owned(),
        )]
        .into(),
    );
    api.create(&PostParams::default(), &bare)
        .await
        .expect("seed");
    let (leases, _) = bounded("list", store.list()).await.expect("list");
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].state, NodeState::default());
}

#[tokio::test]
async fn node_lease_watch_sees_a_renewal_and_fails_after_compaction() {
    let env = start().await;
    let node = node_store(&env).await;
    let watcher = node_store(&env).await;
    let r = record("node-a");
    let v1 = bounded("create", node.write("node-a", &r, &state(1, &[]), None))
        .await
        .expect("create");
    let (_, rv) = bounded("list", watcher.list()).await.expect("list");

    let (tx, mut rx) = mpsc::channel(8);
    let s2 = state(2, &["203.0.113.7"]);
    let watching = watcher.watch(&rv, &tx);
    let renewing = async {
        let v2 = node
            .write("node-a", &r, &s2, Some(&v1))
            .await
            .expect("renew");
        let ev = rx.recv().await.expect("event");
        // Dropping the receiver ends the watch.
        drop(rx);
        (v2, ev)
    };
    let (ended, (v2, ev)) = bounded("watch", async { tokio::join!(watching, renewing) }).await;
    match ev {
        NodeLeaseEvent::Applied(l) => {
            assert_eq!(
                (l.node.as_str(), &l.state, &l.version),
                ("node-a", &s2, &v2)
            );
        }
        other => panic!("expected Applied, got {other:?}"),
    }
    assert_eq!(
        ended,
        Ok(v2.0.clone()),
        "the watch reports the last version"
    );

    // History compacted: a watch from the old version must fail (410), so
    // the caller re-lists.
    bounded("renew", node.write("node-a", &r, &state(3, &[]), Some(&v2)))
        .await
        .expect("renew");
    env.server.compact();
    let (tx, _rx) = mpsc::channel(8);
    let r = bounded("stale watch", watcher.watch(&rv, &tx)).await;
    assert!(
        matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("410")),
        "{r:?}"
    );
}

#[tokio::test]
async fn node_lease_watch_reports_deletions() {
    let env = start().await;
    let store = node_store(&env).await;
    bounded(
        "create",
        store.write("node-a", &record("node-a"), &state(1, &[]), None),
    )
    .await
    .expect("create");
    let (_, rv) = bounded("list", store.list()).await.expect("list");
    let (tx, mut rx) = mpsc::channel(8);
    let api: Api<Lease> = Api::namespaced(env.raw_client().await, NS);
    let watching = store.watch(&rv, &tx);
    let deleting = async {
        api.delete("vipd-node-node-a", &Default::default())
            .await
            .expect("delete");
        let ev = rx.recv().await.expect("event");
        drop(rx);
        ev
    };
    let (ended, ev) = bounded("watch", async { tokio::join!(watching, deleting) }).await;
    match ev {
        NodeLeaseEvent::Deleted { node, version } => {
            assert_eq!(node, "node-a");
            assert_eq!(ended, Ok(version.0));
        }
        other => panic!("expected Deleted, got {other:?}"),
    }
}

#[tokio::test]
async fn assignment_is_created_once_guarded_by_version_and_watched() {
    let env = start().await;
    let a = assignment_store(&env).await;
    let b = assignment_store(&env).await;
    assert_eq!(bounded("read", a.read()).await, Ok(None));

    let g1 = assignment(1, "node-a");
    let v1 = bounded("create", a.write(&g1, None)).await.expect("create");
    assert_eq!(
        bounded("second create", b.write(&assignment(1, "node-b"), None)).await,
        Err(StoreError::AlreadyExists)
    );
    assert_eq!(
        bounded("read", b.read()).await,
        Ok(Some((g1.clone(), v1.clone())))
    );

    let (tx, mut rx) = mpsc::channel(8);
    let g2 = assignment(2, "node-b");
    let watching = b.watch(&v1.0, &tx);
    let writing = async {
        let v2 = a.write(&g2, Some(&v1)).await.expect("replace");
        let ev = rx.recv().await.expect("event");
        drop(rx);
        (v2, ev)
    };
    let (ended, (v2, ev)) = bounded("watch", async { tokio::join!(watching, writing) }).await;
    assert_eq!(ev, (g2.clone(), v2.clone()));
    assert_eq!(ended, Ok(v2.0.clone()));

    // The loser of a race writes at the version it read: conflict.
    assert_eq!(
        bounded("stale write", b.write(&assignment(2, "node-c"), Some(&v1))).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(bounded("read", a.read()).await, Ok(Some((g2, v2))));

    // The stored data is the JSON under the documented key.
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(env.raw_client().await, NS);
    let cm = api.get(CM).await.expect("raw get");
    let json = cm
        .data
        .unwrap_or_default()
        .get(ASSIGNMENT_KEY)
        .cloned()
        .expect("key");
    let stored: Assignment = serde_json::from_str(&json).expect("json");
    assert_eq!(stored.generation, 2);
}

#[tokio::test]
async fn assignment_watch_from_a_compacted_version_fails() {
    let env = start().await;
    let a = assignment_store(&env).await;
    let v1 = bounded("create", a.write(&assignment(1, "node-a"), None))
        .await
        .expect("create");
    bounded("replace", a.write(&assignment(2, "node-a"), Some(&v1)))
        .await
        .expect("replace");
    env.server.compact();
    let (tx, _rx) = mpsc::channel(8);
    let r = bounded("stale watch", a.watch(&v1.0, &tx)).await;
    assert!(
        matches!(&r, Err(StoreError::Unavailable(m)) if m.contains("410")),
        "{r:?}"
    );
}
