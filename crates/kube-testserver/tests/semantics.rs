//! apiserver semantics beyond the transcripts: no-op writes, deletes and
//! their watch events, status subresource isolation, selectors, cluster-scoped
//! Nodes, and create-on-update for Leases.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

fn lease(name: &str, holder: &str) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": name}, "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_replace_keeps_the_revision_and_changed_replace_bumps_it() {
    let server = common::start().await;
    let mut c = common::Conn::open(&server).await;
    let created = c
        .send(
            "POST",
            LEASES,
            Some("application/json"),
            Some(&lease("a", "x")),
        )
        .await
        .json();
    let same = c
        .send(
            "PUT",
            &format!("{LEASES}/a"),
            Some("application/json"),
            Some(&created),
        )
        .await;
    assert_eq!(same.status, 200);
    assert_eq!(
        same.json()["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    let mut changed = created.clone();
    changed["spec"]["holderIdentity"] = json!("y");
    let after = c
        .send(
            "PUT",
            &format!("{LEASES}/a"),
            Some("application/json"),
            Some(&changed),
        )
        .await
        .json();
    assert_ne!(
        after["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_on_missing_lease_creates_it_and_delete_answers_success_status() {
    let server = common::start().await;
    let mut c = common::Conn::open(&server).await;
    let put = c
        .send(
            "PUT",
            &format!("{LEASES}/b"),
            Some("application/json"),
            Some(&lease("b", "x")),
        )
        .await;
    assert_eq!(put.status, 201, "leases allow create on update");
    let rv: u64 = put.json()["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("rv");
    let del = c.send("DELETE", &format!("{LEASES}/b"), None, None).await;
    assert_eq!(del.status, 200);
    assert_eq!(
        (del.json()["kind"].as_str(), del.json()["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    assert_eq!(del.json()["details"]["uid"], put.json()["metadata"]["uid"]);
    let mut w = common::Conn::open(&server).await;
    let got = w
        .send_for(
            "GET",
            &format!("{LEASES}?watch=1&resourceVersion={rv}"),
            Duration::from_millis(300),
        )
        .await;
    let ev: Value = serde_json::from_slice(got.body.split(|b| *b == b'\n').next().unwrap_or(b""))
        .expect("event");
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(
        ev["object"]["metadata"]["resourceVersion"],
        json!((rv + 1).to_string())
    );
    assert_eq!(
        c.send("DELETE", &format!("{LEASES}/b"), None, None)
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_status_and_spec_writes_do_not_touch_each_other() {
    let server = common::start().await;
    let mut c = common::Conn::open(&server).await;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}}});
    let created = c
        .send(
            "POST",
            "/api/v1/namespaces/default/services",
            Some("application/json"),
            Some(&svc),
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        created.json()["status"],
        json!({"loadBalancer": {}}),
        "status is ignored on create"
    );
    let patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "VIP"}]}},
                       "spec": {"type": "ClusterIP"}});
    let p = c
        .send(
            "PATCH",
            "/api/v1/namespaces/default/services/s/status",
            Some("application/merge-patch+json"),
            Some(&patch),
        )
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(
        p.json()["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "198.51.100.7"}])
    );
    assert_eq!(
        p.json()["spec"]["type"],
        "LoadBalancer",
        "a status write leaves spec alone"
    );
    let mut main = p.json();
    main["status"] = json!({"loadBalancer": {}});
    main["metadata"]["labels"] = json!({"a": "b"});
    let put = c
        .send(
            "PUT",
            "/api/v1/namespaces/default/services/s",
            Some("application/json"),
            Some(&main),
        )
        .await;
    assert_eq!(put.status, 200);
    assert_eq!(
        put.json()["status"]["loadBalancer"]["ingress"],
        json!([{"ip": "198.51.100.7"}])
    );
    assert_eq!(
        put.json()["spec"]["clusterIP"],
        created.json()["spec"]["clusterIP"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_selector_filters_endpointslices_and_nodes_are_cluster_scoped() {
    let server = common::start().await;
    let mut c = common::Conn::open(&server).await;
    for (name, svc) in [("a-1", "a"), ("b-1", "b")] {
        let es = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": []});
        assert_eq!(
            c.send(
                "POST",
                "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                Some("application/json"),
                Some(&es)
            )
            .await
            .status,
            201
        );
    }
    let list = c.send("GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Da", None, None).await.json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["a-1"]);

    let node = Node {
        metadata: ObjectMeta {
            name: Some("node-a".into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some("203.0.113.0/26".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut v = serde_json::to_value(&node).expect("node json");
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Node");
    server.put_object(v).expect("seed node");
    let got = c.send("GET", "/api/v1/nodes/node-a", None, None).await;
    assert_eq!(got.status, 200);
    assert!(got.json()["metadata"].get("namespace").is_none());
    assert_eq!(
        c.send("GET", "/api/v1/namespaces/default/nodes/node-a", None, None)
            .await
            .status,
        404
    );
}
