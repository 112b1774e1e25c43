//! The Kubernetes API test server (`vipd-kube-testserver`) inside the
//! cluster's `api` namespace, and the Kubernetes-specific faults of the
//! scenarios.
//!
//! The server runs in-process on its own OS thread that entered `api`
//! (so its listening socket lives there and nftables rules in `api` or in a
//! node cut it off like a real API server); a current-thread tokio runtime
//! on that thread drives it. The test reaches the handle by sending closures
//! over a channel ([`KubeApi::call`]); the runtime keeps serving while it
//! waits for the next one.
//!
//! Faults come in two kinds, on purpose:
//! - server side ([`KubeApi::set_faults`], [`KubeApi::black_hole_established`]):
//!   5xx, latency, requests read and never answered;
//! - packet level, nftables ([`Cluster::api_down`], [`Cluster::drop_established`]):
//!   segments silently dropped, no RST — what a dead path looks like to the
//!   client's TCP stack.

use super::{Cluster, API_IP};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use vipd_kube_testserver::{Config, FaultRule, Stats, TestServer};

/// The API port (kube-apiserver's usual 6443).
pub const API_PORT: u16 = 6443;
/// Bearer token of the test server.
pub const TOKEN: &str = "vipd-scenario-token";
/// Namespace and name of the lease vipd runs for.
pub const LEASE_NS: &str = "kube-system";
/// See [`LEASE_NS`].
pub const LEASE_NAME: &str = "cp-vip";

type Job = Box<dyn FnOnce(&TestServer) + Send>;

/// A running test server in the `api` namespace.
pub struct KubeApi {
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<Result<(), netlab::Error>>>,
    dir: PathBuf,
    ns: String,
}

impl KubeApi {
    /// Starts the server on `192.0.2.2:6443` inside `ns`, writing `ca.crt`,
    /// the server's key pair and `kubeconfig` to `dir`.
    pub fn start(ns: &netlab::NetNs, dir: &Path) -> Result<KubeApi, String> {
        let (jobs_tx, mut jobs_rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std_mpsc::channel::<Result<(), String>>();
        let config = Config {
            listen: SocketAddr::new(API_IP.parse().unwrap(), API_PORT),
            control: None,
            token: TOKEN.into(),
            cert_dir: Some(dir.to_path_buf()),
            extra_sans: Vec::new(),
            history_limit: 1000,
        };
        let thread = ns
            .spawn_in(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let server = match TestServer::start(config).await {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    // Serve (spawned tasks run while we wait) until the
                    // handle is dropped.
                    while let Some(job) = jobs_rx.recv().await {
                        job(&server);
                    }
                    // Dropping the server cancels its listeners and
                    // connections; dropping the runtime ends the rest
                    // (black-holed requests included) without waiting.
                    drop(server);
                });
            })
            .map_err(|e| e.to_string())?;
        match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => Ok(KubeApi {
                jobs: Some(jobs_tx),
                thread: Some(thread),
                dir: dir.to_path_buf(),
                ns: ns.name().to_string(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the test server did not start within 10 s".into()),
        }
    }

    /// Runs `f` on the server's thread with the handle; returns its result.
    pub fn call<T: Send + 'static>(&self, f: impl FnOnce(&TestServer) -> T + Send + 'static) -> T {
        let (tx, rx) = std_mpsc::channel();
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.jobs
            .as_ref()
            .unwrap()
            .send(job)
            .unwrap_or_else(|_| panic!("the API test server thread ended"));
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("the API test server did not answer a control call: {e}"))
    }

    /// Replaces the fault rules (first match wins).
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.call(move |s| s.set_faults(rules));
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.call(TestServer::clear_faults);
    }

    /// Freezes the connections open now (of `client`, or all): requests on
    /// them are read and never answered, new connections work.
    pub fn black_hole_established(&self, client: Option<IpAddr>) -> usize {
        self.call(move |s| s.black_hole_established(client))
    }

    /// Drops the connections open now (of `client`, or all).
    pub fn close_established(&self, client: Option<IpAddr>) -> usize {
        self.call(move |s| s.close_established(client))
    }

    /// Request counters, connections, revision.
    pub fn stats(&self) -> Stats {
        self.call(TestServer::stats)
    }

    /// Requests received from `client` so far (all verbs and resources).
    pub fn requests_from(&self, client: IpAddr) -> u64 {
        self.stats()
            .requests
            .iter()
            .filter(|r| r.client == client)
            .map(|r| r.count)
            .sum()
    }

    /// Stores `obj` as-is (a foreign holder's lease write).
    pub fn put_object(&self, obj: Value) -> Value {
        self.call(move |s| s.put_object(obj))
            .unwrap_or_else(|e| panic!("the test server rejected an object: {e}"))
    }

    /// The CA certificate file clients trust.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The kubeconfig the test server wrote (server `https://192.0.2.2:6443`).
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Writes a kubeconfig like the server's own but pointing at `server`
    /// (a URL); returns its path.
    pub fn write_kubeconfig(&self, file: &str, server: &str) -> PathBuf {
        let own = format!("https://{API_IP}:{API_PORT}");
        let text = self.call(TestServer::kubeconfig);
        assert!(text.contains(&own), "unexpected kubeconfig:\n{text}");
        let path = self.dir.join(file);
        std::fs::write(&path, text.replace(&own, server)).unwrap();
        path
    }

    /// `GET` of the lease through the real HTTPS API (curl inside `api`;
    /// the test server has no in-process getter), `None` when absent or
    /// unreachable.
    pub fn lease_json(&self) -> Option<Value> {
        self.lease_named_json(LEASE_NAME)
    }

    /// `GET` of the lease `name` in [`LEASE_NS`], as [`KubeApi::lease_json`].
    pub fn lease_named_json(&self, name: &str) -> Option<Value> {
        let url = format!(
            "https://{API_IP}:{API_PORT}/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases/{name}"
        );
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "curl", "-sS", "-m", "2", "--cacert",
            ])
            .arg(self.ca_path())
            .args(["-H", &format!("Authorization: Bearer {TOKEN}"), &url])
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        (v.get("kind").and_then(Value::as_str) == Some("Lease")).then_some(v)
    }

    /// The lease record, parsed.
    pub fn lease(&self) -> Option<LeaseRecord> {
        self.lease_json().map(|v| LeaseRecord::from_json(&v))
    }

    /// Stats and lease, for failure reports.
    pub fn describe(&self) -> String {
        let stats = serde_json::to_string(&self.stats()).unwrap_or_default();
        let lease = self
            .lease_json()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(lease unreadable)".into());
        format!("stats: {stats}\nlease: {lease}")
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        // Closing the channel ends the server's loop.
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fields of a `coordination.k8s.io/v1` Lease the scenarios check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity` (`None` when absent or empty: released).
    pub holder: Option<String>,
    /// `spec.leaseTransitions`.
    pub transitions: i64,
    /// `spec.leaseDurationSeconds`.
    pub duration_s: i64,
    /// `spec.renewTime`, as written.
    pub renew_time: Option<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

impl LeaseRecord {
    fn from_json(v: &Value) -> LeaseRecord {
        let spec = &v["spec"];
        LeaseRecord {
            holder: spec["holderIdentity"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from),
            transitions: spec["leaseTransitions"].as_i64().unwrap_or(0),
            duration_s: spec["leaseDurationSeconds"].as_i64().unwrap_or(0),
            renew_time: spec["renewTime"].as_str().map(String::from),
            resource_version: v["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// A Lease as another client-go program (kube-vip) writes it: `holder`
/// holds for `duration_s`, renewed now.
pub fn foreign_lease(holder: &str, duration_s: i64, acquire: &str, transitions: i64) -> Value {
    let now = micro_now();
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": { "name": LEASE_NAME, "namespace": LEASE_NS },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration_s,
            "acquireTime": acquire,
            "renewTime": now,
            "leaseTransitions": transitions,
        }
    })
}

/// Wall-clock now as a Kubernetes MicroTime (`2006-01-02T15:04:05.000000Z`).
#[allow(clippy::disallowed_methods)] // a foreign holder's renewTime is wall time by definition
pub fn micro_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// With `down`, the API in `ns` stops answering: its port's packets are
/// dropped on `eth0` both ways, established connections included (no RST,
/// and no watch event leaks out on a connection opened before); without,
/// that ends. The in-process control endpoint keeps working.
pub fn api_black_hole(ns: &netlab::NetNs, down: bool) {
    let rules = if down {
        format!(
            "table inet vipdapi\ndelete table inet vipdapi\ntable inet vipdapi {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  iifname \"eth0\" tcp dport {API_PORT} drop\n }}\n chain output {{\n  type filter hook output priority 0; policy accept;\n  oifname \"eth0\" tcp sport {API_PORT} drop\n }}\n}}\n"
        )
    } else {
        "table inet vipdapi\ndelete table inet vipdapi\n".to_string()
    };
    ns.nft(&rules).unwrap();
}

impl Cluster {
    /// Waits until the lease record names `holder`; returns the record.
    pub fn wait_lease_holder(&self, holder: &str, timeout: Duration) -> LeaseRecord {
        self.wait_for(timeout, || {
            self.api()
                .lease()
                .filter(|l| l.holder.as_deref() == Some(holder))
        })
        .unwrap_or_else(|| {
            panic!(
                "lease record does not name {holder} within {timeout:?}: {:?}",
                self.api().lease()
            )
        })
    }

    /// The API test server (panics on an etcd cluster).
    pub fn api(&self) -> &KubeApi {
        self.kube.as_ref().expect("a Kubernetes-backend cluster")
    }

    /// `node`'s IPv4 address (the source of its API requests).
    pub fn ip(&self, node: &str) -> IpAddr {
        self.topo.host(node).ipv4().unwrap()
    }

    /// The API stops answering everyone (see [`api_black_hole`]).
    /// Loopback (the test's own reads) still works.
    pub fn api_down(&self) {
        api_black_hole(&self.topo.host("api").ns, true);
    }

    /// Undoes [`Cluster::api_down`].
    pub fn api_up(&self) {
        api_black_hole(&self.topo.host("api").ns, false);
    }

    /// Local ports of `node`'s established TCP connections to the API.
    pub fn api_connections(&self, node: &str) -> Vec<u16> {
        let out = self
            .topo
            .host(node)
            .ns
            .exec("ss", &["-tnH", "state", "established", "dst", API_IP])
            .unwrap_or_default();
        // With a state filter ss prints: Recv-Q Send-Q Local:Port Peer:Port.
        out.lines()
            .filter_map(|l| l.split_whitespace().nth(2))
            .filter_map(|local| local.rsplit(':').next()?.parse().ok())
            .collect()
    }

    /// Silently drops, both ways, the packets of `node`'s connections to
    /// the API that are established now (NETLAB-TIPS: a dead connection
    /// that looks alive); new connections are untouched. Returns the ports.
    pub fn drop_established(&self, node: &str) -> Vec<u16> {
        let ports = self.api_connections(node);
        assert!(
            !ports.is_empty(),
            "{node} has no established connection to the API"
        );
        let set = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let rules = format!(
            "table inet vipddead\ndelete table inet vipddead\ntable inet vipddead {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  ip saddr {API_IP} tcp dport {{ {set} }} drop\n }}\n chain output {{\n  type filter hook output priority 0; policy accept;\n  ip daddr {API_IP} tcp sport {{ {set} }} drop\n }}\n}}\n"
        );
        self.topo.host(node).ns.nft(&rules).unwrap();
        ports
    }

    /// Undoes [`Cluster::drop_established`].
    pub fn heal_established(&self, node: &str) {
        self.topo
            .host(node)
            .ns
            .nft("table inet vipddead\ndelete table inet vipddead\n")
            .unwrap();
    }

    /// `node` cannot reach `ip:port` any more (its SYNs are dropped in its
    /// own namespace): a health check that fails as seen by that node only.
    pub fn block_port(&self, node: &str, ip: IpAddr, port: u16) {
        let rules = format!(
            "table inet vipdhealth\ndelete table inet vipdhealth\ntable inet vipdhealth {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n  ip daddr {ip} tcp dport {port} drop\n }}\n}}\n"
        );
        self.topo.host(node).ns.nft(&rules).unwrap();
    }

    /// Undoes [`Cluster::block_port`].
    pub fn unblock_port(&self, node: &str) {
        self.topo
            .host(node)
            .ns
            .nft("table inet vipdhealth\ndelete table inet vipdhealth\n")
            .unwrap();
    }

    /// Lines of `node`'s log containing every one of `needles`.
    pub fn log_lines(&self, node: &str, needles: &[&str]) -> Vec<String> {
        let text =
            std::fs::read_to_string(self.logdir().join(format!("{node}.log"))).unwrap_or_default();
        text.lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(String::from)
            .collect()
    }
}

/// A minimal HTTP/1.1 endpoint answering `200 ok` to every request, in a
/// namespace: the target of HTTP health checks. Stops when dropped.
pub struct HttpOk {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<JoinHandle<Result<(), netlab::Error>>>,
}

impl HttpOk {
    /// Listens on `ip:port` inside `ns`; returns once it listens.
    pub fn start(ns: &netlab::NetNs, ip: IpAddr, port: u16) -> HttpOk {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std_mpsc::channel();
        let thread = ns
            .spawn_in(move || {
                let l = std::net::TcpListener::bind(SocketAddr::new(ip, port)).unwrap();
                l.set_nonblocking(true).unwrap();
                let _ = tx.send(());
                while !flag.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                            let mut buf = [0u8; 2048];
                            let _ = s.read(&mut buf);
                            let _ = s.write_all(
                                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                            );
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
            .unwrap();
        rx.recv_timeout(Duration::from_secs(5))
            .expect("health endpoint did not start");
        HttpOk {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HttpOk {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
