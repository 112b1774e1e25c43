//! Best-effort Events through the rate-limited general client, against the
//! TEST SERVER.

mod common;

use common::{bounded, start, NS};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use vipd_kube::events::{reason, EVENT_QUEUE};
use vipd_kube::{EventRecorder, EventTarget, EventType, GeneralClient, GeneralOptions};

fn target() -> EventTarget {
    EventTarget {
        namespace: NS.into(),
        lease: "plndr-cp-lock".into(),
        component: "vipd".into(),
        host: Some("node-a".into()),
    }
}

#[tokio::test]
async fn recorded_events_are_posted_on_the_lease() {
    let env = start().await;
    let creds = env.credentials().await;
    let eps = creds.endpoints(&env.inputs()).expect("endpoints");
    let general = Arc::new(GeneralClient::new(creds, &eps, GeneralOptions::default()));
    let (rec, _task) = EventRecorder::spawn(general, target());
    assert!(rec.record(reason::ACQUIRED, "node-a became leader", EventType::Normal));
    assert!(rec.record(
        reason::DUPLICATE,
        "192.0.2.100 claimed by 02:00:00:00:00:02",
        EventType::Warning
    ));
    bounded("events sent", async {
        while rec.stats().sent.load(Ordering::Relaxed) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let api: Api<Event> = Api::namespaced(env.raw_client().await, NS);
    let list = bounded("list", api.list(&ListParams::default()))
        .await
        .expect("list");
    let mut reasons: Vec<_> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
    reasons.sort();
    assert_eq!(reasons, ["DuplicateVIP", "LeaderElection"]);
    for e in &list.items {
        assert_eq!(e.involved_object.kind.as_deref(), Some("Lease"));
        assert_eq!(e.involved_object.name.as_deref(), Some("plndr-cp-lock"));
    }
}

#[tokio::test]
async fn full_queue_drops_and_counts_without_blocking() {
    let env = start().await;
    let creds = env.credentials().await;
    let eps = creds.endpoints(&env.inputs()).expect("endpoints");
    let general = Arc::new(GeneralClient::new(creds, &eps, GeneralOptions::default()));
    let (rec, _task) = EventRecorder::spawn(general, target());
    // No await in between: the posting task cannot drain the queue on this
    // single-threaded runtime, so exactly EVENT_QUEUE fit.
    let extra = 10;
    let queued = (0..EVENT_QUEUE + extra)
        .filter(|i| rec.record(reason::HEALTH, format!("flap {i}"), EventType::Warning))
        .count();
    assert_eq!(queued, EVENT_QUEUE);
    assert_eq!(rec.stats().dropped.load(Ordering::Relaxed), extra as u64);
}

#[tokio::test]
async fn unreachable_api_counts_failures_and_never_blocks_the_caller() {
    let env = start().await;
    let creds = env.credentials().await;
    let eps = creds.endpoints(&env.inputs()).expect("endpoints");
    let general = Arc::new(GeneralClient::new(
        creds,
        &eps,
        GeneralOptions {
            timeout: Duration::from_millis(300),
            ..GeneralOptions::default()
        },
    ));
    env.server.set_faults(vec![vipd_kube_testserver::FaultRule {
        path_prefix: Some("/api/v1".into()),
        black_hole: true,
        ..Default::default()
    }]);
    let (rec, _task) = EventRecorder::spawn(general, target());
    let t0 = tokio::time::Instant::now();
    assert!(rec.record(reason::LOST, "node-a lost the lease", EventType::Normal));
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "record() returns at once"
    );
    bounded("failure counted", async {
        while rec.stats().failed.load(Ordering::Relaxed) < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(rec.stats().sent.load(Ordering::Relaxed), 0);
}
