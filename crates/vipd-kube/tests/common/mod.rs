//! Shared set-up: a TEST SERVER (vipd-kube-testserver) on loopback, its
//! kubeconfig on disk, and stores built the way the daemon builds them.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use vipd_kube::{Credentials, EndpointInputs, KubeLeaseStore};
use vipd_kube_testserver::{Config, TestServer};

/// The control-plane VIP of the tests (documentation range).
pub const VIP: &str = "192.0.2.100";
pub const NS: &str = "kube-system";

pub struct Env {
    pub server: TestServer,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn unique_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "vipd-kube-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Starts a test server whose certificate also carries the `kubernetes` SAN
/// (as every real apiserver certificate does).
pub async fn start() -> Env {
    let dir = unique_dir();
    let server = TestServer::start(Config {
        cert_dir: Some(dir.clone()),
        extra_sans: vec!["kubernetes".into()],
        ..Config::default()
    })
    .await
    .expect("test server starts");
    let kubeconfig = dir.join("kubeconfig");
    Env {
        server,
        dir,
        kubeconfig,
    }
}

impl Env {
    pub async fn credentials(&self) -> Credentials {
        Credentials::load(Some(&self.kubeconfig))
            .await
            .expect("kubeconfig loads")
    }

    /// A kubeconfig like the test server's but naming `server` instead.
    pub fn kubeconfig_with_server(&self, server: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let rewritten = text.replace(&self.server.url(), server);
        assert_ne!(rewritten, text, "server URL replaced");
        let path = self.dir.join(format!("kubeconfig-{}", server.len()));
        std::fs::write(&path, rewritten).expect("write kubeconfig");
        path
    }

    pub fn inputs(&self) -> EndpointInputs {
        EndpointInputs::new(None, self.server.addr().port(), false, vip())
    }

    /// A store on the kubeconfig's server (not control-plane mode).
    pub async fn store(&self, name: &str, renew_deadline: Duration) -> KubeLeaseStore {
        let creds = self.credentials().await;
        let eps = creds.endpoints(&self.inputs()).expect("endpoints");
        KubeLeaseStore::new(creds, &eps, NS, name, renew_deadline)
    }

    /// A plain kube client for checking what is stored.
    pub async fn raw_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(cfg).expect("client")
    }
}

pub fn vip() -> IpAddr {
    VIP.parse().expect("vip")
}

/// Bounds a test step so a hang fails the test instead of the CI job.
pub async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}
