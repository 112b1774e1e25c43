//! The real client path: kube-rs 5 built from the generated kubeconfig
//! (TLS against the generated CA, bearer token, HTTP/2 or HTTP/1.1 as
//! negotiated), driving Leases through create / get / replace / conflict / watch.

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

async fn client_for(
    server: &vipd_kube_testserver::TestServer,
    dir: &std::path::Path,
) -> kube::Client {
    // Through the file the server writes, as a test process using the binary would.
    let yaml = server.kubeconfig();
    std::fs::write(dir.join("kubeconfig"), &yaml).expect("write kubeconfig");
    let text = std::fs::read_to_string(dir.join("kubeconfig")).expect("read kubeconfig");
    let kc = Kubeconfig::from_yaml(&text).expect("kubeconfig parses");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(cfg).expect("client")
}

fn lease(holder: &str, renew_s: i64, transitions: i32) -> Lease {
    let t = |s| MicroTime(Timestamp::from_second(s).expect("timestamp"));
    Lease {
        metadata: ObjectMeta {
            name: Some("vip-lock".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(t(1_790_000_000)),
            renew_time: Some(t(renew_s)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_client_sees_apiserver_lease_semantics_over_tls() {
    let server = common::start().await;
    let dir = std::env::temp_dir().join(format!("vipd-kts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let client = client_for(&server, &dir).await;
    let api: Api<Lease> = Api::namespaced(client, "kube-system");
    let pp = PostParams::default();

    // Missing -> 404 NotFound through kube's error type.
    match api.get("vip-lock").await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("expected 404, got {other:?}"),
    }

    let created = api
        .create(&pp, &lease("node-a", 1_790_000_000, 0))
        .await
        .expect("create");
    let rv1 = created.metadata.resource_version.clone().expect("rv");
    match api.create(&pp, &lease("node-b", 1_790_000_000, 0)).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }

    // Start a watch at the creation revision before renewing.
    let wp = WatchParams::default()
        .fields("metadata.name=vip-lock")
        .timeout(10);
    let mut events = api.watch(&wp, &rv1).await.expect("watch").boxed();

    let mut renewed = api.get("vip-lock").await.expect("get");
    renewed.spec = lease("node-a", 1_790_000_002, 0).spec;
    let after = api
        .replace("vip-lock", &pp, &renewed)
        .await
        .expect("replace");
    let rv2 = after.metadata.resource_version.clone().expect("rv");
    assert!(rv2.parse::<u64>().expect("numeric") > rv1.parse::<u64>().expect("numeric"));
    assert_eq!(after.metadata.uid, created.metadata.uid);

    // A takeover written against the stale revision loses with 409 Conflict.
    let mut stale = created.clone();
    stale.spec = lease("node-b", 1_790_000_003, 1).spec;
    match api.replace("vip-lock", &pp, &stale).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => panic!("expected Conflict, got {other:?}"),
    }

    let ev = tokio::time::timeout(std::time::Duration::from_secs(5), events.try_next())
        .await
        .expect("watch event in time")
        .expect("watch ok")
        .expect("stream open");
    match ev {
        WatchEvent::Modified(l) => {
            assert_eq!(l.metadata.resource_version.as_deref(), Some(rv2.as_str()));
            let renew = l.spec.and_then(|s| s.renew_time).expect("renewTime");
            assert_eq!(renew.0.as_second(), 1_790_000_002);
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    // A watch from a compacted revision yields the 410 ERROR event.
    server.compact();
    let mut old = api.watch(&wp, &rv1).await.expect("watch").boxed();
    match old.next().await {
        Some(Ok(WatchEvent::Error(s))) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 ERROR event, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
