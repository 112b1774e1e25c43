//! Services-mode benchmark (issue 5 §7): 1,000 LoadBalancer Services
//! (500 IPv4, 500 IPv6), five real vipd processes with `--services`
//! against the in-repo Kubernetes API TEST server (`vipd-kube-testserver`,
//! not a kube-apiserver) inside the `api` namespace.
//!
//! ```text
//!                     [PFX-sw: br0]
//!   ┌──────┬──────┬──────┼──────┬──────┬────────┐
//!  api    n1     n2     n3     n4     n5     client
//!  .2    .11    .12    .13    .14    .15      .50
//! ```
//! Node addresses from 192.0.2.0/24 and 2001:db8::/64; Service addresses
//! from 198.51.100.0/24, 203.0.113.0/24 (IPv4) and 2001:db8:100::/64 (IPv6).
//!
//! Measured: start → every address bound exactly once (kernel truth,
//! `netlab::MultiAddrWatcher`) and → every address's first announcement
//! counted on its holder (`vipd_announcements_total`); API writes per second
//! at the server in steady state against the per-Service-lease rule; the
//! time to move every address of a SIGKILLed node; RSS and CPU per vipd.
//! `#[ignore]`d: run by `scripts/services-bench.sh` (release build).

#![allow(clippy::unwrap_used)] // benchmark: a panic is the failure report

mod common; // the harness (`#![allow(dead_code)]` inside): only its test server is used

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::kube::KubeApi;
use k8s_openapi::api::core::v1::{Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use netlab::{LabClock, MultiAddrWatcher, Topology};
use serde_json::Value;
use vipd_lab::cluster::{self, Daemon};

/// The five vipd nodes.
const NODES: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];
/// IPv4 Services (198.51.100.1–254, then 203.0.113.1–246).
const N_V4: usize = 500;
/// IPv6 Services (2001:db8:100::1 onwards).
const N_V6: usize = 500;
/// Retry period the nodes run with (seconds), for the per-Service-lease rule.
const RETRY_S: f64 = 0.5;
/// kube-vip's default retry period (seconds), for the same rule.
const KUBE_VIP_RETRY_S: f64 = 2.0;
/// Liveness bound for start-up convergence (binding, announcing, status).
const CONVERGE: Duration = Duration::from_secs(180);
/// Liveness bound for a dead node's addresses to move.
const MOVE_BOUND: Duration = Duration::from_secs(120);
/// Quiet time after convergence before the steady-state window.
const SETTLE: Duration = Duration::from_secs(5);
/// Length of the steady-state window (writes, CPU).
const WINDOW: Duration = Duration::from_secs(20);

/// The 1,000 Service addresses: IPv4 from the two IPv4 documentation
/// ranges other than the nodes' (no .0 / .255), IPv6 from 2001:db8:100::/64.
fn service_addresses() -> Vec<IpAddr> {
    let v4s = (1..=254u32)
        .map(|i| format!("198.51.100.{i}"))
        .chain((1..=254u32).map(|i| format!("203.0.113.{i}")))
        .take(N_V4);
    let v6s = (1..=N_V6).map(|i| format!("2001:db8:100::{i:x}"));
    v4s.chain(v6s).map(|s| s.parse().unwrap()).collect()
}

fn to_value<T: serde::Serialize>(kind: &str, api_version: &str, obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).unwrap();
    v["kind"] = kind.into();
    v["apiVersion"] = api_version.into();
    v
}

fn node(name: &str) -> Value {
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

fn service(name: &str, ip: IpAddr) -> Value {
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    to_value(
        "Service",
        "v1",
        &Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                annotations: Some(BTreeMap::from([(
                    "kube-vip.io/loadbalancerIPs".to_string(),
                    ip.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some("Cluster".into()),
                ip_families: Some(vec![family.into()]),
                ip_family_policy: Some("SingleStack".into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
    )
}

fn service_name(i: usize) -> String {
    format!("bench-{i:04}")
}

/// The vipd binary: `$VIPD_BIN` (the script passes the release build), else
/// the one cargo built for this test.
fn vipd_bin() -> String {
    std::env::var("VIPD_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_vipd").to_string())
}

/// Everything the benchmark runs. Fields drop in declaration order: the
/// vipd processes are killed first, then the watcher and the test server
/// stop, and the namespaces go last.
struct Bench {
    daemons: BTreeMap<String, Daemon>,
    watcher: Option<MultiAddrWatcher>,
    api: KubeApi,
    topo: Topology,
    clock: LabClock,
    dir: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let prefix = netlab::unique_prefix("svcbench");
        let topo = cluster::topology(&prefix, &NODES)
            .unwrap_or_else(|e| panic!("building topology {prefix}: {e}"));
        let dir = std::env::temp_dir().join(format!("vipd-bench-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let api = KubeApi::start(&topo.host("api").ns, &dir)
            .unwrap_or_else(|e| panic!("starting the API test server: {e}"));
        Bench {
            daemons: BTreeMap::new(),
            watcher: None,
            api,
            topo,
            clock: LabClock::new(),
            dir,
        }
    }

    fn watcher(&self) -> &MultiAddrWatcher {
        self.watcher.as_ref().unwrap()
    }

    /// The command line of `node` (Services mode only; the `common` lease
    /// timings 3 / 2 / 0.5 s).
    fn args(&self, node: &str) -> Vec<String> {
        let ip = self.topo.host(node).ipv4().unwrap();
        [
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
        .collect()
    }

    fn start(&mut self, node: &str) {
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

    fn pid(&mut self, node: &str) -> u32 {
        match self.daemons.get_mut(node).and_then(Daemon::pid) {
            Some(pid) => pid,
            None => panic!("vipd on {node} is not running"),
        }
    }

    /// Node crash: SIGKILL vipd and set `eth0` down (as `Cluster::crash`).
    fn crash(&mut self, node: &str) {
        if let Some(mut d) = self.daemons.remove(node) {
            d.sigkill();
        }
        self.topo.host(node).link_down().unwrap();
    }

    /// `GET /metrics` from inside `node`'s namespace; `None` on any error.
    fn metrics(&self, node: &str) -> Option<String> {
        let host = self.topo.host(node);
        common::http_get_in(&host.ns, host.ipv4()?, "/metrics")
    }

    /// Announcements counted per address on `node` (all kinds summed).
    fn announcements(&self, node: &str) -> BTreeMap<IpAddr, f64> {
        let mut out = BTreeMap::new();
        let Some(body) = self.metrics(node) else {
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
    fn wait_for<T>(
        &self,
        timeout: Duration,
        every: Duration,
        mut f: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let end = self.clock.now() + timeout;
        loop {
            if let Some(v) = f() {
                return Some(v);
            }
            if self.clock.now() >= end {
                return None;
            }
            std::thread::sleep(every);
        }
    }

    /// address → its single holder, when every address in `want` has
    /// exactly one holder and it is not `not`.
    fn all_held_once(
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

    /// Addresses of `want` whose holder has counted no announcement yet.
    fn unannounced(&self, holders: &BTreeMap<IpAddr, String>) -> usize {
        let nodes: BTreeSet<&str> = holders.values().map(String::as_str).collect();
        let counts: BTreeMap<&str, BTreeMap<IpAddr, f64>> =
            nodes.iter().map(|n| (*n, self.announcements(n))).collect();
        holders
            .iter()
            .filter(|(a, h)| counts[h.as_str()].get(a).copied().unwrap_or(0.0) < 1.0)
            .count()
    }

    /// How far start-up got, for failure messages.
    fn progress(&self, want: &[IpAddr]) -> String {
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
struct Mem {
    /// `VmRSS`.
    rss: f64,
    /// `VmHWM` (peak RSS).
    hwm: f64,
    /// `RssAnon` (heap, stacks).
    anon: f64,
    /// `RssFile` (mapped binary and libraries).
    file: f64,
    /// `Threads`.
    threads: f64,
}

fn mem(pid: u32) -> Mem {
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
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14 → index 11.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

#[test]
#[ignore = "benchmark: run as root by scripts/services-bench.sh"]
fn services_mode_benchmark_1000_services_5_nodes() {
    netlab::require_root!();
    let mut b = Bench::new();
    let addrs = service_addresses();
    assert_eq!(addrs.len(), N_V4 + N_V6);
    assert_eq!(
        addrs.iter().collect::<BTreeSet<_>>().len(),
        addrs.len(),
        "duplicate addresses in the plan"
    );

    // Seed: five Nodes, 1,000 Services.
    for n in NODES {
        b.api.put_object(node(n));
    }
    let seeds: Vec<Value> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| service(&service_name(i), *a))
        .collect();
    b.api.call(move |s| {
        for obj in seeds {
            s.put_object(obj).unwrap();
        }
    });
    let watched: BTreeSet<IpAddr> = addrs.iter().copied().collect();
    b.watcher = Some(MultiAddrWatcher::start(&b.topo, &NODES, &watched, b.clock).unwrap());

    // 1. Start → bound exactly once → first announcement counted on the
    //    holder → status written on every Service.
    let t0 = b.clock.now();
    for n in NODES {
        b.start(n);
    }
    let first = b
        .wait_for(CONVERGE, Duration::from_millis(20), || {
            b.all_held_once(&addrs, None)
        })
        .unwrap_or_else(|| panic!("not bound within {CONVERGE:?}: {}", b.progress(&addrs)));
    let bound = b.clock.now() - t0;
    b.wait_for(CONVERGE, Duration::from_millis(50), || {
        let now = b.all_held_once(&addrs, None)?;
        (b.unannounced(&now) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("not announced within {CONVERGE:?}: {}", b.progress(&addrs)));
    let announced = b.clock.now() - t0;
    let names: Vec<String> = (0..addrs.len()).map(service_name).collect();
    b.wait_for(CONVERGE, Duration::from_millis(200), || {
        let names = names.clone();
        b.api
            .call(move |s| {
                names.iter().all(|n| {
                    s.get_object("v1", "Service", "default", n)
                        .is_some_and(|v| {
                            v["status"]["loadBalancer"]["ingress"]
                                .as_array()
                                .is_some_and(|a| !a.is_empty())
                                && v["metadata"]["annotations"]["kube-vip.io/vipHost"].is_string()
                        })
                })
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("status not written within {CONVERGE:?}"));
    let status = b.clock.now() - t0;
    let mut per_node: BTreeMap<&str, usize> = NODES.iter().map(|n| (*n, 0)).collect();
    for h in first.values() {
        *per_node.get_mut(h.as_str()).unwrap() += 1;
    }

    // 2. Steady state: writes at the server, CPU and RSS per process.
    std::thread::sleep(SETTLE);
    let pids: BTreeMap<&str, u32> = NODES.iter().map(|n| (*n, b.pid(n))).collect();
    b.api.call(|s| s.reset_stats());
    let ticks0: BTreeMap<&str, u64> = pids.iter().map(|(n, p)| (*n, cpu_ticks(*p))).collect();
    let w0 = b.clock.now();
    std::thread::sleep(WINDOW);
    let stats = b.api.stats();
    let ticks1: BTreeMap<&str, u64> = pids.iter().map(|(n, p)| (*n, cpu_ticks(*p))).collect();
    let window = b.clock.now() - w0;
    let rss: BTreeMap<&str, Mem> = pids.iter().map(|(n, p)| (*n, mem(*p))).collect();
    let tck = clk_tck();
    let cpu: BTreeMap<&str, f64> = NODES
        .iter()
        .map(|n| {
            let t = (ticks1[n] - ticks0[n]) as f64 / tck;
            (*n, 100.0 * t / window.as_secs_f64())
        })
        .collect();
    let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
    for r in &stats.requests {
        *by_verb
            .entry(format!("{} {}", r.verb, r.resource))
            .or_default() += r.count;
    }
    let writes: u64 = stats
        .requests
        .iter()
        .filter(|r| matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .map(|r| r.count)
        .sum();
    let writes_per_s = writes as f64 / window.as_secs_f64();
    let n_svc = addrs.len() as f64;
    let per_svc_lease = n_svc / RETRY_S;
    let per_svc_lease_kube_vip = n_svc / KUBE_VIP_RETRY_S;
    println!(
        "steady-state requests in {:.1} s (verb resource: count): {by_verb:?}",
        window.as_secs_f64()
    );

    // 3. Crash the node holding the most addresses: its addresses move,
    //    each to exactly one other node.
    let victim = *per_node.iter().max_by_key(|(_, c)| **c).unwrap().0;
    let moved: Vec<IpAddr> = first
        .iter()
        .filter(|(_, h)| h.as_str() == victim)
        .map(|(a, _)| *a)
        .collect();
    let t_kill = b.clock.now();
    b.crash(victim);
    let after = b
        .wait_for(MOVE_BOUND, Duration::from_millis(20), || {
            b.all_held_once(&moved, Some(victim))
        })
        .unwrap_or_else(|| {
            panic!(
                "addresses of {victim} did not move within {MOVE_BOUND:?}: {}",
                b.progress(&moved)
            )
        });
    let move_time = b.clock.now() - t_kill;
    b.wait_for(MOVE_BOUND, Duration::from_millis(50), || {
        let now = b.all_held_once(&moved, Some(victim))?;
        (b.unannounced(&now) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("moved addresses not announced within {MOVE_BOUND:?}"));
    let move_announced = b.clock.now() - t_kill;
    let mut moved_to: BTreeMap<&str, usize> = BTreeMap::new();
    for h in after.values() {
        *moved_to.entry(h.as_str()).or_default() += 1;
    }
    let survivors_moved = b
        .all_held_once(&addrs, Some(victim))
        .map(|now| {
            first
                .iter()
                .filter(|(a, h)| h.as_str() != victim && now[*a] != **h)
                .count()
        })
        .unwrap_or(usize::MAX);

    let end = b.clock.now();
    let two = b.watcher().two_holder_addresses(Duration::ZERO..end);
    let two_ms = b.watcher().two_holder_time(Duration::ZERO..end).as_millis();

    let list = |f: &dyn Fn(&str) -> String| -> String {
        NODES.iter().map(|n| f(n)).collect::<Vec<_>>().join(",")
    };
    println!(
        "BENCH services nodes={} services={} v4={N_V4} v6={N_V6} bound_s={} announced_s={} status_s={} \
         writes_per_s={writes_per_s:.2} writes_in_window={writes} window_s={} \
         per_service_lease_writes_per_s_retry_0.5s={per_svc_lease:.0} \
         per_service_lease_writes_per_s_retry_2s={per_svc_lease_kube_vip:.0} \
         victim={victim} moved={} move_s={} move_announced_s={} survivors_moved={survivors_moved} \
         two_holder_ms={two_ms} rss_mb={} hwm_mb={} rss_anon_mb={} rss_file_mb={} threads={} \
         cpu_pct={} clk_tck={tck}",
        NODES.len(),
        addrs.len(),
        secs(bound),
        secs(announced),
        secs(status),
        secs(window),
        moved.len(),
        secs(move_time),
        secs(move_announced),
        list(&|n| format!("{:.1}", rss[n].rss)),
        list(&|n| format!("{:.1}", rss[n].hwm)),
        list(&|n| format!("{:.1}", rss[n].anon)),
        list(&|n| format!("{:.1}", rss[n].file)),
        list(&|n| format!("{}", rss[n].threads)),
        list(&|n| format!("{:.2}", cpu[n])),
    );
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| start → all {} addresses bound exactly once | {} s |",
        addrs.len(),
        secs(bound)
    );
    println!(
        "| start → every address's first announcement counted on its holder | {} s |",
        secs(announced)
    );
    println!(
        "| start → `status.loadBalancer.ingress` + `vipHost` on every Service | {} s |",
        secs(status)
    );
    println!(
        "| addresses per node at start ({}) | {} |",
        NODES.join(", "),
        list(&|n| per_node[n].to_string())
    );
    println!(
        "| steady-state API writes/s at the server ({writes} in {} s) | {writes_per_s:.2} |",
        secs(window)
    );
    println!(
        "| per-Service-lease design, {} leases / retry period 0.5 s | {per_svc_lease:.0} |",
        addrs.len()
    );
    println!(
        "| per-Service-lease design, {} leases / kube-vip default retry 2 s | {per_svc_lease_kube_vip:.0} |",
        addrs.len()
    );
    println!(
        "| SIGKILL + link down of {victim} → its {} addresses held once elsewhere | {} s |",
        moved.len(),
        secs(move_time)
    );
    println!(
        "| … and first announcement counted on the new holders | {} s |",
        secs(move_announced)
    );
    println!(
        "| moved to | {} |",
        moved_to
            .iter()
            .map(|(n, c)| format!("{n}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| addresses of surviving nodes that moved | {survivors_moved} |");
    println!("| two-holder time, all addresses, whole run | {two_ms} ms |");
    println!(
        "| RSS per vipd, steady state (VmRSS, MB; {}) | {} |",
        NODES.join(", "),
        list(&|n| format!("{:.1}", rss[n].rss))
    );
    println!(
        "| peak RSS per vipd (VmHWM, MB) | {} |",
        list(&|n| format!("{:.1}", rss[n].hwm))
    );
    println!(
        "| of which RssAnon / RssFile (MB) | {} |",
        list(&|n| format!("{:.1}/{:.1}", rss[n].anon, rss[n].file))
    );
    println!(
        "| threads per vipd | {} |",
        list(&|n| format!("{}", rss[n].threads))
    );
    println!(
        "| CPU per vipd, steady state (% of one core, {} s, CLK_TCK {tck}) | {} |",
        secs(window),
        list(&|n| format!("{:.2}", cpu[n]))
    );
    println!();
    println!("steady-state requests by verb and resource:");
    for (k, v) in &by_verb {
        println!("  {k}: {v}");
    }

    assert!(two.is_empty(), "two holders for {two:?}");
    assert_eq!(
        survivors_moved, 0,
        "addresses of living nodes moved after the crash"
    );
}
