//! The Services benchmarks' harness (`services_bench.rs`,
//! `services_quorum_bench.rs`): five real vipd processes with `--services`
//! against the in-repo Kubernetes API TEST server (`vipd-kube-testserver`,
//! not a kube-apiserver) inside the `api` namespace, in lease or quorum
//! coordination.
//!
//! ```text
//!                     [PFX-sw: br0]
//!   ┌──────┬──────┬──────┼──────┬──────┬────────┐
//!  api    n1     n2     n3     n4     n5     client
//!  .2    .11    .12    .13    .14    .15      .50
//! ```
//! Node addresses from 192.0.2.0/24 and 2001:db8::/64; Service addresses
//! from 198.51.100.0/24, 203.0.113.0/24 (IPv4) and 2001:db8:100::/64
//! (IPv6). Each node runs a TCP responder on port 80 that answers its
//! name, so a client probe of a Service address says who served it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use netlab::probe::{Prober, Responder};
use netlab::{LabClock, MultiAddrWatcher, Topology};
use serde_json::Value;
use vipd_lab::cluster::{self, Daemon, QuorumTiming};
use vipd_lab::services::to_value;

use super::kube::KubeApi;

/// The five vipd nodes.
pub const NODES: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];
/// Retry period the nodes run with in lease mode (seconds).
pub const RETRY_S: f64 = 0.5;
/// The port every Service exposes and every node's responder answers on.
pub const SVC_PORT: u16 = 80;

/// How the nodes coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coord {
    /// Node leases, an assignment record and an assigner lease in the API.
    Lease,
    /// `--coordination quorum`: the quorum holder assigns, grants over UDP.
    Quorum,
}

impl Coord {
    /// The `--coordination` value.
    pub fn name(self) -> &'static str {
        match self {
            Coord::Lease => "lease",
            Coord::Quorum => "quorum",
        }
    }
}

/// `n_v4` IPv4 addresses from the two IPv4 documentation ranges other
/// than the nodes' (no .0 / .255), then `n_v6` from 2001:db8:100::/64.
pub fn service_addresses(n_v4: usize, n_v6: usize) -> Vec<IpAddr> {
    let v4s = (1..=254u32)
        .map(|i| format!("198.51.100.{i}"))
        .chain((1..=254u32).map(|i| format!("203.0.113.{i}")))
        .take(n_v4);
    let v6s = (1..=n_v6).map(|i| format!("2001:db8:100::{i:x}"));
    v4s.chain(v6s).map(|s| s.parse().unwrap()).collect()
}

/// A Node object in zone `zone-a`.
pub fn node(name: &str) -> Value {
    to_value(
        "Node",
        "v1",
        &Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([(
                    "topology.kubernetes.io/zone".to_string(),
                    "zone-a".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            ..Node::default()
        },
    )
}

/// A LoadBalancer Service with one address in `kube-vip.io/loadbalancerIPs`.
pub fn service(name: &str, ip: IpAddr) -> Value {
    vipd_lab::services::lb_service(name, ip, SVC_PORT)
}

/// The name of Service `i`.
pub fn service_name(i: usize) -> String {
    format!("bench-{i:04}")
}

/// The vipd binary: `$VIPD_BIN` (the scripts pass the release build),
/// else the one cargo built for this test.
pub fn vipd_bin() -> String {
    std::env::var("VIPD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vipd").to_string())
}

/// Everything a benchmark runs. Fields drop in declaration order: the
/// vipd processes are killed first, then the probes, the watcher and the
/// test server stop, and the namespaces go last.
pub struct Bench {
    pub daemons: BTreeMap<String, Daemon>,
    pub probers: Vec<(IpAddr, Prober)>,
    pub watcher: Option<MultiAddrWatcher>,
    _responders: Vec<Responder>,
    pub api: KubeApi,
    pub topo: Topology,
    pub clock: LabClock,
    pub dir: PathBuf,
    pub coord: Coord,
    peers: String,
    key: PathBuf,
}

impl Bench {
    /// Namespaces, the API test server and the responders; no vipd yet.
    pub fn new(tag: &str, coord: Coord) -> Bench {
        let prefix = netlab::unique_prefix(tag);
        let topo = cluster::topology(&prefix, &NODES)
            .unwrap_or_else(|e| panic!("building topology {prefix}: {e}"));
        let dir = std::env::temp_dir().join(format!("vipd-bench-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let api = KubeApi::start(&topo.host("api").ns, &dir)
            .unwrap_or_else(|e| panic!("starting the API test server: {e}"));
        let key = dir.join("peer.key");
        cluster::write_peer_key(&key, 0o600).unwrap();
        let responders = NODES
            .iter()
            .map(|n| Responder::start(&topo.host(n).ns, n, SVC_PORT).unwrap())
            .collect();
        // The Service ranges are on-link for the client (a LoadBalancer
        // range on the nodes' segment).
        let client = &topo.host("client").ns;
        for net in ["198.51.100.0/24", "203.0.113.0/24", "2001:db8:100::/64"] {
            client.ip(&["route", "add", net, "dev", "eth0"]).unwrap();
        }
        Bench {
            daemons: BTreeMap::new(),
            probers: Vec::new(),
            watcher: None,
            _responders: responders,
            api,
            topo,
            clock: LabClock::new(),
            dir,
            coord,
            peers: cluster::quorum_peers(&NODES, false),
            key,
        }
    }

    /// Five Nodes and one Service per address.
    pub fn seed(&self, addrs: &[IpAddr]) {
        for n in NODES {
            self.api.put_object(node(n));
        }
        let seeds: Vec<Value> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| service(&service_name(i), *a))
            .collect();
        self.api.call(move |s| {
            for obj in seeds {
                s.put_object(obj).unwrap();
            }
        });
    }

    /// Watches who holds each of `addrs` (kernel truth).
    pub fn watch(&mut self, addrs: &[IpAddr]) {
        let set: BTreeSet<IpAddr> = addrs.iter().copied().collect();
        self.watcher = Some(MultiAddrWatcher::start(&self.topo, &NODES, &set, self.clock).unwrap());
    }

    /// Probes each of `addrs` from the client (TCP connect + read of the
    /// responder's name, every few ms).
    pub fn probe(&mut self, addrs: &[IpAddr]) {
        let client = &self.topo.host("client").ns;
        for a in addrs {
            let p = Prober::start(client, SocketAddr::new(*a, SVC_PORT), self.clock).unwrap();
            self.probers.push((*a, p));
        }
    }

    pub fn watcher(&self) -> &MultiAddrWatcher {
        self.watcher.as_ref().unwrap()
    }

    /// The command line of `node`: Services mode only, the `common` lease
    /// timings 3 / 2 / 0.5 s, and in quorum mode the default quorum
    /// timings.
    pub fn args(&self, node: &str) -> Vec<String> {
        let ip = self.topo.host(node).ipv4().unwrap();
        let mut v: Vec<String> = [
            "run",
            "--services",
            "--interface",
            "eth0",
            "--node-name",
            node,
            "--lease-duration",
            "3",
            "--renew-deadline",
            "2",
            "--retry-period",
            &RETRY_S.to_string(),
            "--backend",
            "kubernetes",
            "--kubeconfig",
            &self.dir.join("kubeconfig").display().to_string(),
            "--lease-namespace",
            "kube-system",
            "--prometheus-server",
            &format!("{ip}:2112"),
            "--log-level",
            "info",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.coord == Coord::Quorum {
            v.extend(cluster::quorum_run_args(
                &self.peers,
                &self.key,
                QuorumTiming::default(),
            ));
        }
        v
    }

    pub fn start(&mut self, node: &str) {
        let args = self.args(node);
        let log = self.dir.join(format!("{node}.log"));
        // No environment tricks: vipd as shipped (it limits malloc arenas
        // itself, crates/vipd/src/sys.rs).
        let mut d = Daemon::new(node, log);
        d.spawn(
            &self.topo.host(node).ns,
            Path::new(&vipd_bin()),
            &args,
            self.clock.now(),
        )
        .unwrap_or_else(|e| panic!("spawning vipd on {node}: {e}"));
        self.daemons.insert(node.to_string(), d);
    }

    pub fn pid(&mut self, node: &str) -> u32 {
        match self.daemons.get_mut(node).and_then(Daemon::pid) {
            Some(pid) => pid,
            None => panic!("vipd on {node} is not running"),
        }
    }

    /// Node crash: SIGKILL vipd and set `eth0` down (as `Cluster::crash`).
    pub fn crash(&mut self, node: &str) {
        if let Some(mut d) = self.daemons.remove(node) {
            d.sigkill();
        }
        self.topo.host(node).link_down().unwrap();
    }

    /// The API stops answering every node (see [`super::kube::api_black_hole`]).
    pub fn api_down(&self) {
        super::kube::api_black_hole(&self.topo.host("api").ns, true);
    }

    /// Undoes [`Bench::api_down`].
    pub fn api_up(&self) {
        super::kube::api_black_hole(&self.topo.host("api").ns, false);
    }

    /// `GET path` from inside `node`'s namespace; `None` on any error.
    pub fn http(&self, node: &str, path: &str) -> Option<String> {
        let host = self.topo.host(node);
        super::http_get_in(&host.ns, host.ipv4()?, path)
    }

    /// The node whose `/status` says it is the Services assigner.
    pub fn assigner(&self) -> Option<String> {
        self.daemons.keys().find_map(|n| {
            let body = self.http(n, "/status")?;
            let v: Value = serde_json::from_str(&body).ok()?;
            (v["services"]["assigner"] == Value::Bool(true)).then(|| n.clone())
        })
    }

    /// Announcements counted per address on `node` (all kinds summed).
    pub fn announcements(&self, node: &str) -> BTreeMap<IpAddr, f64> {
        let mut out = BTreeMap::new();
        let Some(body) = self.http(node, "/metrics") else {
            return out;
        };
        for line in body.lines() {
            let Some(rest) = line.strip_prefix("vipd_announcements_total{") else {
                continue;
            };
            let Some(vip) = rest
                .split("vip=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|s| s.parse::<IpAddr>().ok())
            else {
                continue;
            };
            let Some(n) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            *out.entry(vip).or_default() += n;
        }
        out
    }

    /// Polls `f` every `every` until it returns `Some` or `timeout` passes.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        every: Duration,
        f: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        super::poll_until(&self.clock, timeout, every, f)
    }

    /// address → its single holder, when every address in `want` has
    /// exactly one holder and it is not `not`.
    pub fn all_held_once(
        &self,
        want: &[IpAddr],
        not: Option<&str>,
    ) -> Option<BTreeMap<IpAddr, String>> {
        let all = self.watcher().holders_all();
        want.iter()
            .map(|a| match all.get(a).map(Vec::as_slice) {
                Some([h]) if Some(h.as_str()) != not => Some((*a, h.clone())),
                _ => None,
            })
            .collect()
    }

    /// Addresses of `holders` whose holder has counted no announcement yet.
    pub fn unannounced(&self, holders: &BTreeMap<IpAddr, String>) -> usize {
        let nodes: BTreeSet<&str> = holders.values().map(String::as_str).collect();
        let counts: BTreeMap<&str, BTreeMap<IpAddr, f64>> =
            nodes.iter().map(|n| (*n, self.announcements(n))).collect();
        holders
            .iter()
            .filter(|(a, h)| counts[h.as_str()].get(a).copied().unwrap_or(0.0) < 1.0)
            .count()
    }

    /// How far convergence got, for failure messages.
    pub fn progress(&self, want: &[IpAddr]) -> String {
        let all = self.watcher().holders_all();
        let once = want
            .iter()
            .filter(|a| all.get(a).is_some_and(|h| h.len() == 1))
            .count();
        let none = want.iter().filter(|a| !all.contains_key(a)).count();
        format!(
            "{once} of {} held exactly once, {none} unheld; logs in {}",
            want.len(),
            self.dir.display()
        )
    }

    /// Names of the Services (of `names`) whose status and `vipHost` do
    /// not match `holders` (address → node) yet; `None` entries of
    /// `holders` are skipped.
    pub fn status_wrong(
        &self,
        names: &[(String, IpAddr)],
        holders: &BTreeMap<IpAddr, String>,
    ) -> usize {
        let want: Vec<(String, String, String)> = names
            .iter()
            .filter_map(|(n, a)| Some((n.clone(), a.to_string(), holders.get(a)?.clone())))
            .collect();
        self.api.call(move |s| {
            want.iter()
                .filter(|(n, ip, host)| {
                    s.get_object("v1", "Service", "default", n).is_none_or(|v| {
                        let ing = v["status"]["loadBalancer"]["ingress"]
                            .as_array()
                            .is_some_and(|a| a.len() == 1 && a[0]["ip"] == ip.as_str());
                        let vh =
                            v["metadata"]["annotations"]["kube-vip.io/vipHost"] == host.as_str();
                        !(ing && vh)
                    })
                })
                .count()
        })
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for d in self.daemons.values_mut() {
            d.sigkill();
        }
        if std::thread::panicking() {
            eprintln!("benchmark failed; vipd logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Memory of one process from /proc/PID/status (MB) and its thread count.
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    /// `VmRSS`.
    pub rss: f64,
    /// `VmHWM` (peak RSS).
    pub hwm: f64,
    /// `RssAnon` (heap, stacks).
    pub anon: f64,
    /// `RssFile` (mapped binary and libraries).
    pub file: f64,
    /// `Threads`.
    pub threads: f64,
}

pub fn mem(pid: u32) -> Mem {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    Mem {
        rss: field("VmRSS:") / 1024.0,
        hwm: field("VmHWM:") / 1024.0,
        anon: field("RssAnon:") / 1024.0,
        file: field("RssFile:") / 1024.0,
        threads: field("Threads:"),
    }
}

/// utime + stime of `pid`, in clock ticks (fields 14 and 15 of
/// /proc/PID/stat, counted after the parenthesised command name).
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14 → index 11.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

pub fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}
