//! The binary inside a network namespace (as the integration tests run it, so
//! nftables partitions apply): the certificate covers the listen IP, and the
//! control endpoint is reachable by entering the namespace.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn binary_in_api_namespace_serves_its_listen_ip_and_control_endpoint() {
    netlab::require_root!();
    let ns = netlab::NetNs::new(&netlab::unique_prefix("kts")).expect("namespace");
    ns.ip(&["addr", "add", "198.51.100.10/32", "dev", "lo"])
        .expect("address");
    let dir = std::env::temp_dir().join(format!("vipd-kts-ns-{}", std::process::id()));
    let mut child = Child(
        ns.command(env!("CARGO_BIN_EXE_vipd-kube-testserver"))
            .args([
                "--listen",
                "198.51.100.10:6443",
                "--control",
                "127.0.0.1:7070",
            ])
            .args(["--token", "ns-token", "--cert-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in namespace"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read ready");
    assert_eq!(line.trim(), "ready");
    let kubeconfig = dir.join("kubeconfig");
    let version = ns
        .enter(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
                let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                    .await
                    .expect("config");
                assert_eq!(cfg.cluster_url.to_string(), "https://198.51.100.10:6443/");
                let client = kube::Client::try_from(cfg).expect("client");
                client.apiserver_version().await.map(|v| v.git_version)
            })
        })
        .expect("enter namespace");
    assert_eq!(
        version.expect("/version over TLS to the listen IP"),
        "v1.28.7"
    );
    let (code, stats) = ns
        .enter(|| {
            common::control(
                "127.0.0.1:7070".parse().expect("addr"),
                "GET",
                "/_stats",
                "",
            )
        })
        .expect("enter namespace");
    assert_eq!(code, 200);
    assert!(stats["openConnections"].as_u64().is_some(), "{stats}");
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
