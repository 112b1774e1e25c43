//! Probe and monitor tests on loopback and inside test namespaces only.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use vipd_health::http::HttpProber;
use vipd_health::icmp::IcmpProbe;
use vipd_health::{
    BuildError, CheckState, HealthCheckSpec, HealthEvent, HealthMonitor, ProbeError, ProbeSpec,
};

const WAIT: Duration = Duration::from_secs(10);

/// A tiny HTTP/1.1 responder: answers every request with the current
/// `status`, counts connections and answers per status class.
struct TestServer {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    connections: Arc<AtomicU32>,
    errors_served: Arc<AtomicU32>,
    _task: AbortOnDropHandle<()>,
}

impl TestServer {
    async fn start(tls: Option<TlsAcceptor>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(200));
        let connections = Arc::new(AtomicU32::new(0));
        let errors_served = Arc::new(AtomicU32::new(0));
        let (s, c, e) = (status.clone(), connections.clone(), errors_served.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (s, e, tls) = (s.clone(), e.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acc) => {
                            if let Ok(t) = acc.accept(stream).await {
                                respond(t, &s, &e).await;
                            }
                        }
                        None => respond(stream, &s, &e).await,
                    }
                });
            }
        });
        TestServer {
            addr,
            status,
            connections,
            errors_served,
            _task: AbortOnDropHandle::new(task),
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/livez", self.addr.port())
    }
}

async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    status: &AtomicU16,
    errors: &AtomicU32,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let code = status.load(Ordering::SeqCst);
    if code >= 400 {
        errors.fetch_add(1, Ordering::SeqCst);
    }
    let resp = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

fn spec(s: &str) -> HealthCheckSpec {
    HealthCheckSpec::parse(s).unwrap()
}

async fn wait_eligible(rx: &mut watch::Receiver<bool>, want: bool) {
    tokio::time::timeout(WAIT, rx.wait_for(|v| *v == want))
        .await
        .unwrap_or_else(|_| panic!("eligible never became {want}"))
        .unwrap();
}

async fn next_event(rx: &mut mpsc::Receiver<HealthEvent>) -> HealthEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no health event")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_goes_down_after_failure_threshold_and_recovers() {
    let server = TestServer::start(None).await;
    let cancel = CancellationToken::new();
    let s = spec(&format!(
        "{},name=api,interval=30ms,timeout=1s,failure=3",
        server.url("http")
    ));
    let mut mon = HealthMonitor::spawn(vec![s], cancel.clone()).unwrap();
    let mut events = mon.take_events().unwrap();
    assert!(
        !*mon.eligible().borrow(),
        "not eligible before the first success"
    );

    assert_eq!(
        next_event(&mut events).await,
        HealthEvent::CheckChanged {
            name: "api".into(),
            up: true,
            reason: None
        }
    );
    assert_eq!(next_event(&mut events).await, HealthEvent::Eligible(true));

    server.status.store(500, Ordering::SeqCst);
    let down = next_event(&mut events).await;
    let failures_served = server.errors_served.load(Ordering::SeqCst);
    assert_eq!(
        down,
        HealthEvent::CheckChanged {
            name: "api".into(),
            up: false,
            reason: Some("http status 500".into())
        }
    );
    assert!(
        failures_served >= 3,
        "down after only {failures_served} failed probes"
    );
    assert_eq!(next_event(&mut events).await, HealthEvent::Eligible(false));
    assert!(!*mon.eligible().borrow());
    let st = mon.status().borrow().clone();
    assert_eq!(st[0].state, CheckState::Down);
    assert_eq!(st[0].last_error.as_deref(), Some("http status 500"));

    server.status.store(200, Ordering::SeqCst);
    wait_eligible(&mut mon.eligible(), true).await;

    cancel.cancel();
    tokio::time::timeout(WAIT, mon.join())
        .await
        .expect("monitor did not stop");
}

#[tokio::test]
async fn http_probe_accepts_2xx_3xx_and_uses_a_fresh_connection_each_time() {
    let server = TestServer::start(None).await;
    let ProbeSpec::Http(h) = spec(&server.url("http")).probe else {
        panic!()
    };
    let prober = HttpProber::new(&h).unwrap();
    for code in [200, 204, 302, 399] {
        server.status.store(code, Ordering::SeqCst);
        assert_eq!(prober.probe().await.unwrap(), code);
    }
    for code in [400, 404, 500, 503] {
        server.status.store(code, Ordering::SeqCst);
        assert!(matches!(prober.probe().await, Err(ProbeError::Status(c)) if c == code));
    }
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        8,
        "one connection per probe"
    );
}

#[tokio::test]
async fn http_probe_to_closed_port_fails_to_connect() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let ProbeSpec::Http(h) = spec(&format!("http://127.0.0.1:{port}/livez")).probe else {
        panic!()
    };
    let err = HttpProber::new(&h).unwrap().probe().await.unwrap_err();
    assert!(matches!(err, ProbeError::Connect(_)), "{err}");
}

#[tokio::test]
async fn http_probe_times_out_on_a_server_that_never_answers() {
    // Accepts the connection (the kernel does) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = spec(&format!("http://127.0.0.1:{port}/livez,timeout=200ms"));
    let prober = vipd_health::Prober::new(&s.probe).unwrap();
    let outcome = prober.run_once(s.timeout).await;
    assert_eq!(
        outcome,
        vipd_health::ProbeOutcome::Failure("timed out after 200ms".into())
    );
    drop(listener);
}

/// A CA and a server certificate for `sans`, served by a TLS test server.
struct Pki {
    ca_file: PathBuf,
    acceptor: TlsAcceptor,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

fn pki(tag: &str, sans: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();

    let ca_file =
        std::env::temp_dir().join(format!("vipd-health-{tag}-{}-ca.pem", std::process::id()));
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    Pki {
        ca_file,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_check_with_ca_path_is_up_then_down_on_500() {
    let pki = pki("ca-path", &["127.0.0.1"]);
    let server = TestServer::start(Some(pki.acceptor.clone())).await;
    let cancel = CancellationToken::new();
    let s = spec(&format!(
        "{},ca={},interval=30ms,failure=2",
        server.url("https"),
        pki.ca_file.display()
    ));
    let mon = HealthMonitor::spawn(vec![s], cancel.clone()).unwrap();
    let mut eligible = mon.eligible();
    wait_eligible(&mut eligible, true).await;
    server.status.store(500, Ordering::SeqCst);
    wait_eligible(&mut eligible, false).await;
    assert!(server.errors_served.load(Ordering::SeqCst) >= 2);
    cancel.cancel();
    mon.join().await;
}

#[tokio::test]
async fn https_without_the_cluster_ca_fails_verification() {
    // kube-vip's behaviour without control_plane_health_check_ca_path: the
    // system trust store only, so a private CA's server is never up.
    let pki = pki("no-ca", &["127.0.0.1"]);
    let server = TestServer::start(Some(pki.acceptor.clone())).await;
    let ProbeSpec::Http(h) = spec(&server.url("https")).probe else {
        panic!()
    };
    let err = HttpProber::new(&h).unwrap().probe().await.unwrap_err();
    assert!(matches!(err, ProbeError::Tls(_)), "{err}");
}

#[tokio::test]
async fn https_server_name_override_verifies_a_cert_without_the_ip() {
    // Like kubeadm's apiserver certificate: "kubernetes" but no 127.0.0.1.
    let pki = pki("sni", &["kubernetes"]);
    let server = TestServer::start(Some(pki.acceptor.clone())).await;
    let base = format!("{},ca={}", server.url("https"), pki.ca_file.display());
    let ProbeSpec::Http(plain) = spec(&base).probe else {
        panic!()
    };
    let err = HttpProber::new(&plain).unwrap().probe().await.unwrap_err();
    assert!(
        matches!(err, ProbeError::Tls(_)),
        "IP not in cert must fail: {err}"
    );

    let mut local = HealthCheckSpec::local_apiserver(server.addr.port(), Some(pki.ca_file.clone()));
    let ProbeSpec::Http(h) = &mut local.probe else {
        panic!()
    };
    assert_eq!(HttpProber::new(h).unwrap().probe().await.unwrap(), 200);
}

#[tokio::test]
async fn bad_ca_files_are_configuration_errors() {
    let missing = spec("https://127.0.0.1:1/livez,ca=/nonexistent/vipd-health-ca.pem");
    let cancel = CancellationToken::new();
    let err = HealthMonitor::spawn(vec![missing], cancel.clone()).unwrap_err();
    assert!(matches!(err, BuildError::CaFile { .. }), "{err}");

    let empty = std::env::temp_dir().join(format!("vipd-health-empty-{}.pem", std::process::id()));
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let s = spec(&format!("https://127.0.0.1:1/livez,ca={}", empty.display()));
    let err = HealthMonitor::spawn(vec![s], cancel).unwrap_err();
    let _ = std::fs::remove_file(&empty);
    assert!(matches!(err, BuildError::NoCertificates { .. }), "{err}");
}

#[tokio::test]
async fn duplicate_check_names_are_rejected() {
    let a = spec("tcp://127.0.0.1:1,name=x");
    let b = spec("icmp://127.0.0.1,name=x");
    let err = HealthMonitor::spawn(vec![a, b], CancellationToken::new()).unwrap_err();
    assert!(matches!(err, BuildError::DuplicateName { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_is_up_while_listening_and_down_when_listener_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and drop, so the backlog never fills.
    let accept = AbortOnDropHandle::new(tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    }));
    let cancel = CancellationToken::new();
    let s = spec(&format!("tcp://127.0.0.1:{port},interval=30ms,failure=2"));
    let mon = HealthMonitor::spawn(vec![s], cancel.clone()).unwrap();
    let mut eligible = mon.eligible();
    wait_eligible(&mut eligible, true).await;
    drop(accept); // aborting the task drops the listener: connection refused
    wait_eligible(&mut eligible, false).await;
    let st = mon.status().borrow().clone();
    assert!(
        st[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .starts_with("connect:"),
        "{st:?}"
    );
    cancel.cancel();
    mon.join().await;
}

#[tokio::test]
async fn no_checks_means_eligible_from_the_start() {
    let mon = HealthMonitor::spawn(vec![], CancellationToken::new()).unwrap();
    assert!(*mon.eligible().borrow());
}

/// Runs `f` on a current-thread runtime inside `ns`, so every socket the
/// probes open lives in the test namespace.
fn in_ns<T: Send + 'static>(
    ns: &netlab::NetNs,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    ns.enter(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .unwrap()
}

#[test]
fn icmp_echo_to_loopback_v4_and_v6_is_up() {
    netlab::require_root!();
    let ns = netlab::NetNs::new(&netlab::unique_prefix("hcicmp")).unwrap();
    for target in ["127.0.0.1", "::1"] {
        let addr: IpAddr = target.parse().unwrap();
        let res = in_ns(&ns, move || {
            Box::pin(async move { IcmpProbe::open(addr)?.run(Duration::from_secs(2)).await })
        });
        assert!(res.is_ok(), "echo to {target}: {res:?}");
    }
}

#[test]
fn icmp_echo_to_unreachable_documentation_address_is_down() {
    netlab::require_root!();
    // Only lo is up in this namespace: no route to 192.0.2.1 / 2001:db8::1.
    let ns = netlab::NetNs::new(&netlab::unique_prefix("hcunr")).unwrap();
    for target in ["192.0.2.1", "2001:db8::1"] {
        let s = spec(&format!("icmp://{target},timeout=1s"));
        let outcome = in_ns(&ns, move || {
            Box::pin(async move {
                vipd_health::Prober::new(&s.probe)
                    .unwrap()
                    .run_once(s.timeout)
                    .await
            })
        });
        // The kernel has no route: the echo cannot even be sent.
        let vipd_health::ProbeOutcome::Failure(reason) = outcome else {
            panic!("{target} reported up")
        };
        assert!(reason.contains("unreachable"), "{target}: {reason}");
    }
}

#[test]
fn icmp_check_goes_down_when_the_gateway_address_disappears() {
    netlab::require_root!();
    let ns = netlab::NetNs::new(&netlab::unique_prefix("hcgw")).unwrap();
    ns.ip(&["addr", "add", "192.0.2.1/32", "dev", "lo"])
        .unwrap();
    let name = ns.name().to_string();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // The probe runs on the namespace thread; this helper removes the
    // address when asked (a plain `ip -n` command, no namespace entry).
    let ns_name = name.clone();
    let remover = std::thread::spawn(move || {
        if rx.recv().is_ok() {
            netlab::run_ok(
                "ip",
                &["-n", &ns_name, "addr", "del", "192.0.2.1/32", "dev", "lo"],
            )
            .unwrap();
        }
    });
    let result = in_ns(&ns, move || {
        Box::pin(async move {
            let cancel = CancellationToken::new();
            let s = spec("icmp://192.0.2.1,name=gw,interval=50ms,timeout=300ms,failure=2");
            let mon = HealthMonitor::spawn(vec![s], cancel.clone()).unwrap();
            let mut eligible = mon.eligible();
            wait_eligible(&mut eligible, true).await;
            // Ask the test thread to remove the address, then expect down.
            tx.send(()).unwrap();
            wait_eligible(&mut eligible, false).await;
            let st = mon.status().borrow().clone();
            cancel.cancel();
            mon.join().await;
            st
        })
    });
    remover.join().unwrap();
    assert_eq!(result[0].state, CheckState::Down, "{result:?} in {name}");
}

#[tokio::test]
async fn default_livez_check_trusts_the_cluster_ca_from_the_api_credentials() {
    // The daemon hands the CA of its kubeconfig to the default /livez check,
    // so a kubeadm node needs no control_plane_health_check_ca_path.
    let pki = pki("cluster-ca", &["kubernetes"]);
    let server = TestServer::start(Some(pki.acceptor.clone())).await;
    let pem = std::fs::read(&pki.ca_file).unwrap();
    let der: Vec<Vec<u8>> = rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.unwrap().to_vec())
        .collect();

    let mut local = HealthCheckSpec::local_apiserver(server.addr.port(), None);
    let ProbeSpec::Http(h) = &local.probe else {
        panic!()
    };
    let err = HttpProber::new(h).unwrap().probe().await.unwrap_err();
    assert!(matches!(err, ProbeError::Tls(_)), "without the CA: {err}");

    local.trust_cluster_ca(&der, None);
    let ProbeSpec::Http(h) = &local.probe else {
        panic!()
    };
    assert_eq!(HttpProber::new(h).unwrap().probe().await.unwrap(), 200);

    // An explicitly configured CA is never replaced.
    let mut explicit =
        HealthCheckSpec::local_apiserver(server.addr.port(), Some("/nonexistent/ca.pem".into()));
    explicit.trust_cluster_ca(&der, None);
    let ProbeSpec::Http(h) = &explicit.probe else {
        panic!()
    };
    assert_eq!(
        h.ca_path.as_deref(),
        Some(std::path::Path::new("/nonexistent/ca.pem"))
    );
    assert!(h.extra_roots.is_empty());
}
