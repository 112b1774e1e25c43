//! Fault injection: latency, a share of 5xx, dropped connections, black
//! holes (held requests) and black-holed established connections (the dead
//! HTTP/2 connection case), plus the control endpoint and request counters.

mod common;

use std::time::Duration;

use tokio::time::Instant;
use vipd_kube_testserver::{Config, FaultRule, TestServer};

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_rule_delays_answers_by_at_least_the_configured_time() {
    let server = common::start().await;
    let mut c = common::Conn::open(&server).await;
    let t0 = Instant::now();
    assert_eq!(c.send("GET", LEASES, None, None).await.status, 200);
    let base = t0.elapsed();
    server.set_faults(vec![FaultRule {
        latency_ms: 400,
        ..Default::default()
    }]);
    let t1 = Instant::now();
    assert_eq!(c.send("GET", LEASES, None, None).await.status, 200);
    let slow = t1.elapsed();
    assert!(
        slow >= Duration::from_millis(400),
        "slow request took {slow:?}"
    );
    assert!(base < Duration::from_millis(400), "baseline took {base:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_percent_answers_that_share_with_a_status_body() {
    let server = common::start().await;
    server.set_faults(vec![FaultRule {
        error_percent: 50,
        error_status: Some(500),
        ..Default::default()
    }]);
    let mut c = common::Conn::open(&server).await;
    let mut codes = Vec::new();
    for _ in 0..10 {
        let a = c.send("GET", LEASES, None, None).await;
        if a.status == 500 {
            let s = a.json();
            assert_eq!(
                (s["kind"].as_str(), s["code"].as_u64()),
                (Some("Status"), Some(500))
            );
            assert_eq!(
                a.headers.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/json")
            );
        }
        codes.push(a.status);
    }
    assert_eq!(codes.iter().filter(|c| **c == 500).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 5, "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_established_connection_hangs_while_new_connections_work() {
    let server = common::start().await;
    let mut old = common::Conn::open(&server).await;
    assert_eq!(old.send("GET", LEASES, None, None).await.status, 200);
    assert_eq!(server.black_hole_established(None), 1);
    assert!(
        old.try_send("GET", LEASES, Duration::from_millis(500))
            .await
            .is_none(),
        "the established connection must not answer"
    );
    let mut fresh = common::Conn::open(&server).await;
    assert_eq!(fresh.send("GET", LEASES, None, None).await.status, 200);
    // Over HTTP/2 too.
    assert_eq!(
        common::h2_get(&server, LEASES).await,
        (200, Some(b"h2".to_vec()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_holed_watch_stream_goes_silent_but_stays_open() {
    let server = common::start().await;
    let mut w = common::Conn::open(&server).await;
    let mut writer = common::Conn::open(&server).await;
    let body = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}});
    assert_eq!(
        writer
            .send("POST", LEASES, Some("application/json"), Some(&body))
            .await
            .status,
        201
    );
    let path = format!("{LEASES}?watch=1&resourceVersion={}", server.revision());
    let watch =
        tokio::spawn(async move { w.send_for("GET", &path, Duration::from_millis(800)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Freeze the watch's connection only: the writer reconnects first.
    drop(writer);
    server.black_hole_established(None);
    let mut writer = common::Conn::open(&server).await;
    assert_eq!(
        writer
            .send("DELETE", &format!("{LEASES}/l"), None, None)
            .await
            .status,
        200
    );
    let got = watch.await.expect("watch task");
    assert_eq!(got.status, 200);
    assert!(
        got.body.is_empty(),
        "no event may arrive on a black-holed connection: {:?}",
        got.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_rule_holds_requests_until_lifted() {
    let server = common::start().await;
    server.set_faults(vec![FaultRule {
        black_hole: true,
        ..Default::default()
    }]);
    let mut c = common::Conn::open(&server).await;
    let pending = tokio::spawn(async move { c.send("GET", LEASES, None, None).await.status });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!pending.is_finished(), "answered through a black hole");
    server.clear_faults();
    let status = tokio::time::timeout(Duration::from_secs(5), pending).await;
    assert!(matches!(status, Ok(Ok(200))), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_next_drops_the_connection_once_for_that_client_only() {
    let server = common::start().await;
    server.set_faults(vec![FaultRule {
        client: Some("127.0.0.1".parse().expect("ip")),
        close_next: 1,
        ..Default::default()
    }]);
    let mut c = common::Conn::open(&server).await;
    assert!(
        c.get_result(LEASES).await.is_err(),
        "first request must lose its connection"
    );
    let mut c = common::Conn::open(&server).await;
    assert_eq!(c.get_result(LEASES).await.map(|a| a.status), Ok(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_endpoint_sets_faults_and_counts_requests_per_verb() {
    let server = TestServer::start(Config {
        control: Some("127.0.0.1:0".parse().expect("addr")),
        ..Config::default()
    })
    .await
    .expect("start");
    let ctl = server.control_addr().expect("control addr");
    let mut c = common::Conn::open(&server).await;
    let body = serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "x"}, "spec": {"holderIdentity": "a"}});
    assert_eq!(
        c.send("POST", LEASES, Some("application/json"), Some(&body))
            .await
            .status,
        201
    );
    assert_eq!(
        c.send("GET", &format!("{LEASES}/x"), None, None)
            .await
            .status,
        200
    );

    let (code, stats) =
        tokio::task::spawn_blocking(move || common::control(ctl, "GET", "/_stats", ""))
            .await
            .expect("control");
    assert_eq!(code, 200);
    let count = |verb: &str| {
        stats["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["verb"] == verb && r["resource"] == "leases.coordination.k8s.io")
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!((count("create"), count("get")), (1, 1), "{stats}");

    let rules = r#"{"rules":[{"error_percent":100,"error_status":503}]}"#;
    let (code, _) =
        tokio::task::spawn_blocking(move || common::control(ctl, "PUT", "/_faults", rules))
            .await
            .expect("control");
    assert_eq!(code, 200);
    let a = c.send("GET", LEASES, None, None).await;
    assert_eq!(
        (a.status, a.json()["reason"].as_str().map(str::to_string)),
        (503, Some("ServiceUnavailable".into()))
    );
    let (code, v) =
        tokio::task::spawn_blocking(move || common::control(ctl, "POST", "/_compact", ""))
            .await
            .expect("control");
    assert_eq!(
        (code, v["compactedRevision"].as_u64()),
        (200, Some(server.revision()))
    );
}
