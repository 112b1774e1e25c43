//! Replays every request of `data/transcripts.json` (recorded from a real
//! kube-apiserver v1.28.7) against the test server, in order, and compares
//! status code, content type and body. Volatile values (resourceVersion, uid,
//! timestamps, allocated cluster IPs / node ports, generated names,
//! managedFields) are compared for presence only; Status bodies exactly.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use serde_json::{json, Value};

const TRANSCRIPTS: &str = include_str!("data/transcripts.json");

const VOLATILE: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "clusterIP",
    "clusterIPs",
    "nodePort",
    "healthCheckNodePort",
];

fn normalize(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("managedFields");
            if m.contains_key("generateName") {
                m.insert("name".into(), json!("<generated>"));
            }
            for k in VOLATILE {
                if let Some(x) = m.get_mut(*k) {
                    *x = json!("<volatile>");
                }
            }
            m.values_mut().for_each(normalize);
        }
        Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn normalized(v: &Value) -> Value {
    let mut v = v.clone();
    normalize(&mut v);
    v
}

/// Objects that existed on the recording cluster before the transcript
/// started (the apiserver's identity lease, the `kubernetes` Service), seeded
/// through k8s-openapi types so the fixtures are typed, not hand-written.
fn seed(server: &vipd_kube_testserver::TestServer, transcripts: &[Value]) {
    let find = |name: &str| {
        transcripts
            .iter()
            .find(|t| t["name"] == name)
            .map(|t| t["response"]["body"]["items"].clone())
            .expect("transcript present")
    };
    for item in find("lease-list").as_array().expect("items") {
        let mut lease: Lease = serde_json::from_value(item.clone()).expect("a Lease");
        if lease.metadata.name.as_deref() == Some("demo-lock") {
            continue;
        }
        lease.metadata.managed_fields = None;
        let mut v = serde_json::to_value(&lease).expect("json");
        v["apiVersion"] = json!("coordination.k8s.io/v1");
        v["kind"] = json!("Lease");
        server.put_object(v).expect("seeded lease");
    }
    for item in find("service-list").as_array().expect("items") {
        let mut svc: Service = serde_json::from_value(item.clone()).expect("a Service");
        if svc.metadata.name.as_deref() != Some("kubernetes") {
            continue;
        }
        svc.metadata.managed_fields = None;
        let mut v = serde_json::to_value(&svc).expect("json");
        v["apiVersion"] = json!("v1");
        v["kind"] = json!("Service");
        server.put_object(v).expect("seeded service");
    }
}

/// Transcript resourceVersions/uids -> ours, learned from responses.
#[derive(Default)]
struct Mapping {
    ids: HashMap<String, String>,
}

impl Mapping {
    fn learn(&mut self, theirs: &Value, ours: &Value) {
        for field in ["resourceVersion", "uid"] {
            let t = theirs
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str);
            let o = ours
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str);
            if let (Some(t), Some(o)) = (t, o) {
                self.ids.insert(t.to_string(), o.to_string());
            }
        }
    }

    fn body(&self, body: &Value) -> Value {
        let mut b = body.clone();
        for field in ["resourceVersion", "uid"] {
            if let Some(Value::String(s)) = b.pointer_mut(&format!("/metadata/{field}")) {
                if let Some(o) = self.ids.get(s.as_str()) {
                    *s = o.clone();
                }
            }
        }
        b
    }

    fn path(&self, path: &str) -> String {
        match path.split_once("resourceVersion=") {
            Some((head, tail)) => {
                let (rv, rest) = tail.split_once('&').map_or((tail, ""), |(a, b)| (a, b));
                let rv = self.ids.get(rv).map_or(rv, String::as_str);
                let sep = if rest.is_empty() { "" } else { "&" };
                format!("{head}resourceVersion={rv}{sep}{rest}")
            }
            None => path.to_string(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transcript_request_gets_the_recorded_answer() {
    let transcripts: Vec<Value> = serde_json::from_str(TRANSCRIPTS).expect("transcripts parse");
    assert_eq!(transcripts.len(), 23);
    let server = common::start().await;
    seed(&server, &transcripts);
    let mut conn = common::Conn::open(&server).await;
    let mut map = Mapping::default();
    let mut failures = Vec::new();

    for t in &transcripts {
        let name = t["name"].as_str().unwrap_or("?");
        let req = &t["request"];
        let want = &t["response"];
        let method = req["method"].as_str().unwrap_or("GET");
        let path = map.path(req["path"].as_str().unwrap_or("/"));
        let ct = req["content_type"].as_str();
        let body = (!req["body"].is_null()).then(|| map.body(&req["body"]));
        let mut expected_body = want["body"].clone();

        eprintln!("replaying {name}");
        if name == "unauthorized" {
            conn.token = "not-the-token".into();
        }
        if name == "lease-watch-too-old" {
            // The recording cluster had compacted up to 212; compact ours now.
            let compacted = server.compact();
            if let Some(Value::String(m)) = expected_body.pointer_mut("/object/message") {
                *m = m.replace("(212)", &format!("({compacted})"));
            }
        }
        let got = if name.starts_with("lease-watch") {
            // Like the recording client, cut the stream after a while; the
            // connection is then mid-body, so continue on a fresh one.
            let a = conn
                .send_for(method, &path, Duration::from_millis(1500))
                .await;
            conn = common::Conn::open(&server).await;
            a
        } else {
            conn.send(method, &path, ct, body.as_ref()).await
        };
        conn.token = server.token().to_string();

        let want_status = want["status"].as_u64().unwrap_or(0) as u16;
        if got.status != want_status {
            failures.push(format!(
                "{name}: status {} != {want_status}: {}",
                got.status,
                String::from_utf8_lossy(&got.body)
            ));
            continue;
        }
        let got_ct = got
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if got_ct != want["headers"]["content-type"].as_str().unwrap_or("") {
            failures.push(format!("{name}: content-type {got_ct}"));
        }
        if name == "lease-watch" {
            // JSON lines, chunked, in revision order.
            if got
                .headers
                .get("transfer-encoding")
                .and_then(|v| v.to_str().ok())
                != Some("chunked")
            {
                failures.push(format!("{name}: watch not chunked: {:?}", got.headers));
            }
            let lines = |s: &str| -> Vec<Value> {
                s.lines()
                    .map(|l| normalized(&serde_json::from_str(l).expect("json line")))
                    .collect()
            };
            let ours = lines(&String::from_utf8_lossy(&got.body));
            let theirs = lines(expected_body.as_str().unwrap_or(""));
            if ours != theirs {
                failures.push(format!(
                    "{name}: events differ:\n ours   {ours:?}\n theirs {theirs:?}"
                ));
            }
            continue;
        }
        let got_body: Value = match serde_json::from_slice(&got.body) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!(
                    "{name}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&got.body)
                ));
                continue;
            }
        };
        let is_status = expected_body["kind"] == "Status" || expected_body["type"] == "ERROR";
        let (w, g) = if is_status {
            (expected_body.clone(), got_body.clone())
        } else {
            (normalized(&expected_body), normalized(&got_body))
        };
        if w != g {
            failures.push(format!("{name}: body differs:\n ours   {g}\n theirs {w}"));
        }
        map.learn(&expected_body, &got_body);
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
