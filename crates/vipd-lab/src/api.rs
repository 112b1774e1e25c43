//! The lab's API host: what runs in the `api` namespace and what the
//! API faults act on. Either a real etcd ([`Backend::Etcd`], the default)
//! or the in-repo Kubernetes API **test server** ([`Backend::Kubernetes`],
//! the `vipd-kube-testserver` binary of `crates/kube-testserver`: an
//! emulation of the part of the Kubernetes API vipd uses, not a
//! kube-apiserver).
//!
//! ```text
//!   api namespace (192.0.2.2)
//!   ├─ etcd :2379                          api-down = etcd stopped (data kept)
//!   └─ vipd-kube-testserver :6443 (HTTPS)  api-down = nftables drops every
//!        control 127.0.0.1:6444 (HTTP)       packet to :6443 arriving on eth0
//! ```
//! The test server keeps its objects in memory, so "API down" cannot stop
//! it the way etcd is stopped; dropping its packets in its own namespace
//! is what a dead API server host looks like to the nodes (no RST, requests
//! time out), and is how the vipd test suite cuts it too
//! (`crates/vipd/tests/common/kube.rs`). The control endpoint (fault rules,
//! objects) listens on loopback inside `api`, out of reach of the nodes and
//! of the nftables rule.

use crate::cluster::API_IP;
use crate::LabError;
use netlab::etcd::EtcdServer;
use netlab::NetNs;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The HTTPS port of the Kubernetes API test server (kube-apiserver's 6443).
pub const KUBE_PORT: u16 = 6443;
/// The test server's plain-HTTP control port, on loopback inside `api`.
pub const CONTROL_PORT: u16 = 6444;
/// The bearer token the test server requires (written into its kubeconfig).
pub const TOKEN: &str = "vipd-lab-token";
/// The test server's executable name.
pub const TESTSERVER_BIN: &str = "vipd-kube-testserver";
/// nftables table of [`ApiServer::down`] with the test server.
const DOWN_TABLE: &str = "vipdlabapidown";

/// Which lease backend the vipd nodes use (`vipd lab run --backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// etcd 3.4 (`--backend etcd`).
    Etcd,
    /// The Kubernetes API test server (`--backend kubernetes`).
    Kubernetes,
}

impl Backend {
    /// The command-line name (`etcd`, `kubernetes`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Etcd => "etcd",
            Backend::Kubernetes => "kubernetes",
        }
    }

    /// What the nodes talk to, for fault descriptions and the report.
    pub fn server_name(self) -> &'static str {
        match self {
            Backend::Etcd => "etcd",
            Backend::Kubernetes => "the kube API test server",
        }
    }

    /// Parses `etcd` or `kubernetes` (`kube`, `k8s` accepted).
    pub fn parse(s: &str) -> Result<Backend, String> {
        match s.trim() {
            "etcd" => Ok(Backend::Etcd),
            "kubernetes" | "kube" | "k8s" => Ok(Backend::Kubernetes),
            other => Err(format!(
                "unknown backend `{other}`; known: etcd, kubernetes"
            )),
        }
    }
}

/// Where the test server binary is: `explicit` (`--kube-testserver`), else
/// next to the running vipd executable (cargo builds both into
/// `target/<profile>/`), else on `dirs` (`PATH`).
pub fn find_testserver(explicit: Option<&Path>, exe: &Path, dirs: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return p.is_file().then(|| p.to_path_buf());
    }
    exe.parent()
        .map(|d| d.join(TESTSERVER_BIN))
        .into_iter()
        .chain(dirs.iter().map(|d| d.join(TESTSERVER_BIN)))
        .find(|p| p.is_file())
}

/// The API host's server.
#[derive(Debug)]
pub enum ApiServer {
    /// A real etcd.
    Etcd(EtcdServer),
    /// The Kubernetes API test server process.
    Kube(KubeTestServer),
}

impl ApiServer {
    /// Makes the API unreachable for every node (see the module docs).
    /// `ns` is the `api` namespace.
    pub fn down(&mut self, ns: &NetNs) -> Result<(), LabError> {
        match self {
            ApiServer::Etcd(e) => Ok(e.stop()?),
            ApiServer::Kube(_) => KubeTestServer::down(ns),
        }
    }

    /// Undoes [`ApiServer::down`]; returns once the API answers again
    /// (etcd) or the rule is gone (test server).
    pub fn up(&mut self, ns: &NetNs) -> Result<(), LabError> {
        match self {
            ApiServer::Etcd(e) => Ok(e.start()?),
            ApiServer::Kube(_) => KubeTestServer::up(ns),
        }
    }
}

/// A `vipd-kube-testserver` process in the `api` namespace. Dropping it
/// SIGKILLs and reaps it (only the process it started, by pid). Methods
/// that act inside `api` take its namespace guard (owned by the topology).
#[derive(Debug)]
pub struct KubeTestServer {
    child: Child,
    dir: PathBuf,
}

impl KubeTestServer {
    /// Starts `exe` in `ns` on `192.0.2.2:6443` (control on
    /// `127.0.0.1:6444`), certificates and kubeconfig written to `dir`,
    /// its log to `log`; returns once it printed `ready` (10 s at most).
    pub fn start(ns: &NetNs, exe: &Path, dir: &Path, log: &Path) -> Result<Self, LabError> {
        let io = |what: String| move |source| LabError::Io { what, source };
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let log_file =
            std::fs::File::create(log).map_err(io(format!("create {}", log.display())))?;
        let mut child = ns
            .command(&exe.display().to_string())
            .args([
                "--listen",
                &format!("{API_IP}:{KUBE_PORT}"),
                "--control",
                &format!("127.0.0.1:{CONTROL_PORT}"),
                "--token",
                TOKEN,
                "--history",
                "10000",
                "--cert-dir",
            ])
            .arg(dir)
            // Its own process group: a terminal Ctrl-C reaches the lab,
            // which tears the server down in order.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(io(format!("spawn {}", exe.display())))?;
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        // Reads until EOF so the pipe never fills; ends with the process.
        let reader = std::thread::Builder::new()
            .name("vipd-lab-kubeapi".into())
            .spawn(move || {
                let Some(out) = stdout else { return };
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if line.trim() == "ready" {
                        let _ = tx.send(());
                    }
                }
            });
        let mut server = KubeTestServer {
            child,
            dir: dir.to_path_buf(),
        };
        if let Err(source) = reader {
            return Err(LabError::Io {
                what: "spawn the test server's stdout reader".into(),
                source,
            });
        }
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            let _ = server.child.kill();
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            return Err(LabError::Setup(format!(
                "{} did not print `ready` within 10 s ({}):\n{}",
                exe.display(),
                log.display(),
                tail.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            )));
        }
        Ok(server)
    }

    /// The kubeconfig the server wrote (server `https://192.0.2.2:6443`,
    /// its CA, the bearer token): what the nodes' vipd read.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Drops every packet to the API port arriving on `api`'s `eth0`
    /// (established connections included, no RST).
    pub fn down(ns: &NetNs) -> Result<(), LabError> {
        let rules = format!(
            "table inet {DOWN_TABLE}\ndelete table inet {DOWN_TABLE}\ntable inet {DOWN_TABLE} {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  iifname \"eth0\" tcp dport {KUBE_PORT} drop\n }}\n}}\n"
        );
        Ok(ns.nft(&rules)?)
    }

    /// Removes the rule of [`KubeTestServer::down`].
    pub fn up(ns: &NetNs) -> Result<(), LabError> {
        let rules = format!("table inet {DOWN_TABLE}\ndelete table inet {DOWN_TABLE}\n");
        Ok(ns.nft(&rules)?)
    }

    /// Stores each object as-is through the control endpoint
    /// (`POST /_objects`), in order; stops at the first rejection.
    pub fn put_objects(&self, ns: &NetNs, objects: Vec<Value>) -> Result<(), LabError> {
        let res = ns.enter(move || -> Result<(), String> {
            for o in objects {
                let (status, body) = control("POST", "/_objects", &o)?;
                if status != 201 && status != 200 {
                    return Err(format!("HTTP {status}: {body}"));
                }
            }
            Ok(())
        })?;
        res.map_err(|e| LabError::Setup(format!("the test server rejected an object: {e}")))
    }
}

/// One HTTP/1.1 request to the control endpoint (from inside `api`);
/// returns the status and the body.
fn control(method: &str, path: &str, body: &Value) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], CONTROL_PORT));
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let body = body.to_string();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| e.to_string())?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {resp:.80}"))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

impl Drop for KubeTestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn backend_names_parse_and_unknown_ones_are_listed() {
        assert_eq!(Backend::parse("etcd").unwrap(), Backend::Etcd);
        assert_eq!(Backend::parse("kubernetes").unwrap(), Backend::Kubernetes);
        let e = Backend::parse("consul").unwrap_err();
        assert!(e.contains("consul") && e.contains("kubernetes"), "{e}");
    }

    #[test]
    fn testserver_is_found_next_to_vipd_before_path() {
        let base = std::env::temp_dir().join(format!("vipd-lab-find-{}", std::process::id()));
        let (bin, path) = (base.join("bin"), base.join("path"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&path).unwrap();
        let exe = bin.join("vipd");
        assert_eq!(
            find_testserver(None, &exe, std::slice::from_ref(&path)),
            None
        );
        std::fs::write(path.join(TESTSERVER_BIN), "").unwrap();
        assert_eq!(
            find_testserver(None, &exe, std::slice::from_ref(&path)),
            Some(path.join(TESTSERVER_BIN))
        );
        std::fs::write(bin.join(TESTSERVER_BIN), "").unwrap();
        assert_eq!(
            find_testserver(None, &exe, std::slice::from_ref(&path)),
            Some(bin.join(TESTSERVER_BIN))
        );
        let missing = base.join("nope");
        assert_eq!(find_testserver(Some(&missing), &exe, &[path]), None);
        let _ = std::fs::remove_dir_all(&base);
    }
}
