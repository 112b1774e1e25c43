//! R6 against the TEST SERVER: a lease client that cannot wedge leadership.
//! Black-holed connections, dead endpoints and re-dialling.

mod common;

use common::{bounded, start, vip, NS};
use std::time::Duration;
use tokio::net::TcpListener;
use vipd_election::{LeaseRecord, LeaseStore, StoreError, WallTime};
use vipd_kube::{ApiEndpoints, Endpoint, EndpointInputs, EndpointSource, KubeLeaseStore};

fn record(holder: &str) -> LeaseRecord {
    let now = WallTime::now();
    LeaseRecord {
        holder_identity: holder.into(),
        lease_duration_seconds: 15,
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: 0,
    }
}

/// The election driver's bound on one request (time left to the renew
/// deadline).
const DRIVER_TIMEOUT: Duration = Duration::from_millis(800);

#[tokio::test]
async fn black_holed_connection_times_out_and_reset_redials_a_fresh_one() {
    let env = start().await;
    let store = env.store("l", Duration::from_secs(5)).await;
    bounded("create", store.create(&record("node-a")))
        .await
        .expect("create");
    let before = env.server.stats().accepted_connections;
    // The pooled connection goes silent: packets dropped, no RST.
    assert!(env.server.black_hole_established(None) >= 1);
    // The next request reuses the pooled connection and never gets an answer:
    // only the driver's timeout ends it (the kube-vip failure).
    let hung = tokio::time::timeout(DRIVER_TIMEOUT, store.get()).await;
    assert!(
        hung.is_err(),
        "request on a black-holed connection answered: {hung:?}"
    );
    store.reset();
    let got = tokio::time::timeout(DRIVER_TIMEOUT, store.get())
        .await
        .expect("fresh connection answers within the driver's timeout")
        .expect("get")
        .expect("exists");
    assert_eq!(got.record.holder_identity, "node-a");
    assert!(
        env.server.stats().accepted_connections > before,
        "a new connection was dialled"
    );
}

#[tokio::test]
async fn store_timeout_alone_discards_a_black_holed_connection() {
    // Even without the driver's reset, the store's own deadline drops the
    // client, so the request after a timeout runs on a new connection.
    let env = start().await;
    let store = env.store("l", Duration::from_millis(700)).await;
    bounded("create", store.create(&record("node-a")))
        .await
        .expect("create");
    assert!(env.server.black_hole_established(None) >= 1);
    let r = bounded("get", store.get()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let got = bounded("get", store.get())
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.record.holder_identity, "node-a");
}

#[tokio::test]
async fn closed_connection_is_unavailable_then_recovers() {
    let env = start().await;
    let store = env.store("l", Duration::from_secs(2)).await;
    bounded("create", store.create(&record("node-a")))
        .await
        .expect("create");
    env.server.close_established(None);
    // Whether the first request notices the close or the pool already
    // dropped the connection, within two requests we are served again.
    let first = bounded("get", store.get()).await;
    let ok = match first {
        Ok(v) => v,
        Err(StoreError::Unavailable(_)) => bounded("get", store.get()).await.expect("recovers"),
        Err(e) => panic!("unexpected {e:?}"),
    };
    assert_eq!(ok.expect("exists").record.holder_identity, "node-a");
}

fn endpoints_with_dead_first(dead: &str, live: &str) -> ApiEndpoints {
    ApiEndpoints {
        endpoints: vec![
            Endpoint {
                url: dead.parse().expect("uri"),
                source: EndpointSource::KubernetesAddr,
                tls_server_name: None,
            },
            Endpoint {
                url: live.parse().expect("uri"),
                source: EndpointSource::Credentials,
                tls_server_name: None,
            },
        ],
        dropped: vec![],
    }
}

#[tokio::test]
async fn refused_first_endpoint_falls_through_to_the_next() {
    let env = start().await;
    // A port nobody listens on: bind, learn the port, close.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let eps = endpoints_with_dead_first(&format!("https://127.0.0.1:{port}"), &env.server.url());
    let store = KubeLeaseStore::new(
        env.credentials().await,
        &eps,
        NS,
        "l",
        Duration::from_secs(2),
    );
    let first = bounded("get", store.get()).await;
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "{first:?}"
    );
    assert_eq!(store.current_endpoint(), format!("{}/", env.server.url()));
    assert_eq!(bounded("get", store.get()).await, Ok(None));
}

#[tokio::test]
async fn silent_first_endpoint_falls_through_after_a_timeout_and_reset() {
    let env = start().await;
    // Accepts TCP (kernel backlog) and never speaks TLS: a hung apiserver.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = format!("https://{}", silent.local_addr().expect("addr"));
    let eps = endpoints_with_dead_first(&dead, &env.server.url());
    let store = KubeLeaseStore::new(
        env.credentials().await,
        &eps,
        NS,
        "l",
        Duration::from_secs(5),
    );
    let hung = tokio::time::timeout(DRIVER_TIMEOUT, store.get()).await;
    assert!(hung.is_err(), "silent endpoint answered: {hung:?}");
    store.reset();
    let r = tokio::time::timeout(DRIVER_TIMEOUT, store.get())
        .await
        .expect("next endpoint answers in time");
    assert_eq!(r, Ok(None));
    drop(silent);
}

#[tokio::test]
async fn control_plane_mode_reaches_the_local_apiserver_when_the_kubeconfig_names_the_vip() {
    // kubeadm's admin.conf names the control-plane endpoint, i.e. the VIP,
    // which is down while nobody holds it. The local endpoint must be used,
    // and its certificate verified against the `kubernetes` name.
    let env = start().await;
    let port = env.server.addr().port();
    let kc = env.kubeconfig_with_server(&format!("https://{}:{port}", common::VIP));
    let creds = vipd_kube::Credentials::load(Some(&kc)).await.expect("load");
    let inputs = EndpointInputs::new(None, port, true, vip());
    let eps = creds.endpoints(&inputs).expect("endpoints");
    assert_eq!(eps.dropped.len(), 1, "the VIP server is dropped");
    assert_eq!(eps.endpoints.len(), 1);
    assert_eq!(eps.endpoints[0].source, EndpointSource::Local);
    let store = KubeLeaseStore::new(creds, &eps, NS, "l", Duration::from_secs(2));
    assert_eq!(bounded("get", store.get()).await, Ok(None));
    bounded("create", store.create(&record("node-a")))
        .await
        .expect("create through the local endpoint");
}

#[tokio::test]
async fn local_endpoint_refuses_a_certificate_without_the_expected_name() {
    // TLS verification is on: a name the certificate does not carry fails.
    let env = start().await;
    let port = env.server.addr().port();
    let creds = env.credentials().await;
    let mut inputs = EndpointInputs::new(None, port, true, vip());
    inputs.local_tls_server_name = Some("not-in-the-cert.example.invalid".into());
    let mut eps = creds.endpoints(&inputs).expect("endpoints");
    eps.endpoints.truncate(1);
    let store = KubeLeaseStore::new(creds, &eps, NS, "l", Duration::from_secs(2));
    let r = bounded("get", store.get()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}

#[tokio::test]
async fn daemon_entry_point_builds_a_working_store_from_settings() {
    let env = start().await;
    let api = vipd_kube::KubeApi::load(&vipd_kube::KubeSettings {
        kubeconfig: Some(env.kubeconfig.clone()),
        kubernetes_addr: None,
        api_port: env.server.addr().port(),
        control_plane: true,
        vip: vip(),
    })
    .await
    .expect("load");
    assert_eq!(api.default_namespace(), "kube-system");
    // The kubeconfig's server is 127.0.0.1:port too: one endpoint, local.
    assert_eq!(api.endpoints().endpoints.len(), 1);
    let store = api.lease_store(NS, "l", Duration::from_secs(2));
    bounded("create", store.create(&record("node-a")))
        .await
        .expect("create");
}
