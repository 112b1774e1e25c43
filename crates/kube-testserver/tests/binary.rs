//! The `vipd-kube-testserver` binary: says what it is, writes certificates and
//! a kubeconfig, prints `ready`, serves TLS and the control endpoint.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_says_it_is_a_test_server() {
    let out = Command::new(env!("CARGO_BIN_EXE_vipd-kube-testserver"))
        .arg("--help")
        .output()
        .expect("run --help");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TEST SERVER — not a Kubernetes API server"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_ready_and_serves_with_its_kubeconfig() {
    let dir = std::env::temp_dir().join(format!("vipd-kts-bin-{}", std::process::id()));
    let (api, ctl) = (free_port(), free_port());
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_vipd-kube-testserver"))
            .args([
                "--listen",
                &format!("127.0.0.1:{api}"),
                "--control",
                &format!("127.0.0.1:{ctl}"),
            ])
            .args(["--token", "t0ken", "--cert-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut l = String::new();
        BufReader::new(stdout).read_line(&mut l).map(|_| l)
    })
    .await
    .expect("join")
    .expect("read");
    assert_eq!(line.trim(), "ready");
    for f in ["ca.crt", "server.crt", "server.key", "kubeconfig"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let kc = kube::config::Kubeconfig::read_from(dir.join("kubeconfig")).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    let v = client.apiserver_version().await.expect("/version");
    assert_eq!(v.git_version, "v1.28.7");
    let (code, stats) = tokio::task::spawn_blocking(move || {
        common::control(
            format!("127.0.0.1:{ctl}").parse().expect("addr"),
            "GET",
            "/_stats",
            "",
        )
    })
    .await
    .expect("control");
    assert_eq!(code, 200);
    assert!(
        stats["requests"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["resource"] == "/version")),
        "{stats}"
    );
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
