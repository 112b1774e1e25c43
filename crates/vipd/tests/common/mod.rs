//! A three-node vipd cluster in network namespaces, for the scenario tests,
//! built on `vipd_lab::cluster` (the lab's own topology and daemon slots:
//! one way to drive real vipd processes, here and in `vipd lab`).
//!
//! ```text
//!              [PFX-sw: br0]
//!   ┌───────┬──────┼──────┬──────────┐
//!  api     n1     n2     n3        client
//!  etcd   vipd   vipd   vipd       Prober ──► VIP:8080
//!  .2     .11    .12    .13        .50        (Responder in n1..n3 answers its name)
//! ```
//! Addresses: 192.0.2.0/24 and 2001:db8::/64 (documentation ranges only).
//! The VIP is 192.0.2.100 or 2001:db8::100. An [`AddrWatcher`] in the switch
//! namespace records who holds the VIP; a [`Prober`] in the client records
//! who answers. Everything is torn down by guards; when a test panics, the
//! daemons' logs, the etcd log tail and the VIP's holding transitions are
//! printed.
#![allow(dead_code)] // not every scenario uses every helper
#![allow(clippy::unwrap_used)] // test harness: a panic is the failure report

pub mod bench;
pub mod k8s;
pub mod kube;
pub mod routed;

use netlab::etcd::EtcdServer;
use netlab::probe::{Prober, Responder, Sample};
use netlab::watch::AddrWatcher;
use netlab::{LabClock, Topology};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;
use vipd_lab::cluster::{self, Daemon};

/// Lease timings every scenario runs with (a tight 3/2/0.5 s; SPEC R1 holds:
/// 3 >= 2 + 1 and 2 > 1.2 * 0.5).
pub const LEASE: Duration = Duration::from_secs(3);
/// Renew deadline passed to vipd.
pub const RENEW: Duration = Duration::from_secs(2);
/// Retry period passed to vipd.
pub const RETRY: Duration = Duration::from_millis(500);
/// Reconcile period passed to vipd.
pub const RECONCILE: Duration = Duration::from_secs(1);
/// TCP port of the responders.
pub const PORT: u16 = 8080;
/// The three vipd nodes.
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// The API host's address (etcd or the Kubernetes API test server).
pub const API_IP: &str = cluster::API_IP;

/// Which lease backend the daemons use; chosen when the cluster is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// etcd 3.4 in `api`, `--backend etcd`.
    Etcd,
    /// The Kubernetes API test server in `api`, `--backend kubernetes`.
    Kube,
}

/// Address family of the VIP under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// VIP 192.0.2.100 (gratuitous ARP).
    V4,
    /// VIP 2001:db8::100 (unsolicited NA).
    V6,
}

impl Family {
    /// The VIP.
    pub fn vip(self) -> IpAddr {
        match self {
            Family::V4 => "192.0.2.100".parse().unwrap(),
            Family::V6 => "2001:db8::100".parse().unwrap(),
        }
    }

    /// The VIP with its host prefix, as vipd adds it.
    pub fn vip_cidr(self) -> String {
        match self {
            Family::V4 => format!("{}/32", self.vip()),
            Family::V6 => format!("{}/128", self.vip()),
        }
    }

    /// "v4" / "v6", for scenario lines.
    pub fn tag(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// The cluster. Fields drop in declaration order: daemons are killed in
/// `Drop` first, then the watcher and prober stop, responders and etcd end,
/// and the namespaces go last.
pub struct Cluster {
    daemons: Vec<Daemon>,
    /// Who holds the VIP (exact, see `netlab::watch`).
    pub watcher: AddrWatcher,
    prober: Option<Prober>,
    responders: Vec<Responder>,
    etcd: Option<EtcdServer>,
    /// The Kubernetes API test server ([`Backend::Kube`] only).
    pub kube: Option<kube::KubeApi>,
    /// The namespaces.
    pub topo: Topology,
    /// Clock shared by watcher, prober and the test's own marks.
    pub clock: LabClock,
    /// VIP family of this run.
    pub family: Family,
    /// Lease backend of this run.
    pub backend: Backend,
    /// Flags appended to every node's command line (health checks, ...).
    pub extra_args: Vec<String>,
    /// Pass `--address` (the control-plane VIP); off for Services-only runs.
    pub with_address: bool,
    scenario: String,
    logdir: PathBuf,
}

impl Cluster {
    /// Builds the topology, starts etcd in `api`, a responder in each node
    /// and the VIP watcher. No vipd runs yet.
    pub fn new(scenario: &str, family: Family) -> Cluster {
        Cluster::with_backend(scenario, family, Backend::Etcd)
    }

    /// Like [`Cluster::new`], with the lease backend chosen: etcd, or the
    /// Kubernetes API test server (running inside `api`, so nftables cuts
    /// apply to it as to a real API server).
    pub fn with_backend(scenario: &str, family: Family, backend: Backend) -> Cluster {
        let prefix = netlab::unique_prefix(scenario);
        let topo = cluster::topology(&prefix, &NODES)
            .unwrap_or_else(|e| panic!("building topology {prefix}: {e}"));
        let logdir = std::env::temp_dir().join(format!("vipd-scenario-{prefix}"));
        std::fs::create_dir_all(&logdir).unwrap();
        let (etcd, kube) = match backend {
            Backend::Etcd => {
                let etcd = EtcdServer::start_in_ns(
                    topo.host("api").ns.name(),
                    API_IP.parse().unwrap(),
                    2379,
                )
                .unwrap_or_else(|e| panic!("starting etcd in {prefix}-api: {e}"));
                (Some(etcd), None)
            }
            Backend::Kube => {
                let api = kube::KubeApi::start(&topo.host("api").ns, &logdir).unwrap_or_else(|e| {
                    panic!("starting the API test server in {prefix}-api: {e}")
                });
                (None, Some(api))
            }
        };
        let responders = NODES
            .iter()
            .map(|n| Responder::start(&topo.host(n).ns, n, PORT).unwrap())
            .collect();
        let clock = LabClock::new();
        let watcher = AddrWatcher::start(&topo, &NODES, family.vip(), clock).unwrap();
        let daemons = NODES
            .iter()
            .map(|n| Daemon::new(*n, logdir.join(format!("{n}.log"))))
            .collect();
        Cluster {
            daemons,
            watcher,
            prober: None,
            responders,
            etcd,
            kube,
            topo,
            clock,
            family,
            backend,
            extra_args: Vec::new(),
            with_address: true,
            scenario: scenario.to_string(),
            logdir,
        }
    }

    fn daemon(&mut self, node: &str) -> &mut Daemon {
        match self.daemons.iter_mut().find(|d| d.node() == node) {
            Some(d) => d,
            None => panic!("no vipd node {node}"),
        }
    }

    /// The command-line vipd runs with on `node` (the flags of issue 2).
    pub fn args(&self, node: &str) -> Vec<String> {
        let ip = self.topo.host(node).ipv4().unwrap();
        let secs = |d: Duration| format!("{}", d.as_secs_f64());
        let vip = self.family.vip().to_string();
        let address: &[&str] = if self.with_address {
            &["--address", &vip]
        } else {
            &[]
        };
        ["run"]
            .iter()
            .chain(address)
            .chain(&[
                "--interface",
                "eth0",
                "--node-name",
                node,
                "--lease-name",
                "cp-vip",
                "--lease-duration",
                &secs(LEASE),
                "--renew-deadline",
                &secs(RENEW),
                "--retry-period",
                &secs(RETRY),
                "--reconcile-period",
                &secs(RECONCILE),
                "--prometheus-server",
                &format!("{ip}:2112"),
                "--log-level",
                "debug",
            ])
            .map(|s| s.to_string())
            .chain(self.backend_args())
            .chain(self.extra_args.iter().cloned())
            .collect()
    }

    /// The flags selecting and reaching the lease backend.
    fn backend_args(&self) -> Vec<String> {
        match self.backend {
            Backend::Etcd => vec![
                "--backend".into(),
                "etcd".into(),
                "--etcd-endpoints".into(),
                format!("http://{API_IP}:2379"),
            ],
            Backend::Kube => vec![
                "--backend".into(),
                "kubernetes".into(),
                "--kubeconfig".into(),
                self.logdir.join("kubeconfig").display().to_string(),
                "--lease-namespace".into(),
                "kube-system".into(),
            ],
        }
    }

    /// Directory of this run's logs (and the test server's certificates
    /// and kubeconfig).
    pub fn logdir(&self) -> &std::path::Path {
        &self.logdir
    }

    /// Starts vipd on `node` (which must not be running), logging to its
    /// file (appended across restarts, with a marker line).
    pub fn start(&mut self, node: &str) {
        let args = self.args(node);
        let t = self.clock.now();
        let topo = &self.topo;
        let d = match self.daemons.iter_mut().find(|d| d.node() == node) {
            Some(d) => d,
            None => panic!("no vipd node {node}"),
        };
        assert!(!d.running(), "vipd on {node} already running");
        d.spawn(
            &topo.host(node).ns,
            Path::new(env!("CARGO_BIN_EXE_vipd")),
            &args,
            t,
        )
        .unwrap_or_else(|e| panic!("spawning vipd on {node}: {e}"));
    }

    /// Starts vipd on every node.
    pub fn start_all(&mut self) {
        for n in NODES {
            self.start(n);
        }
    }

    /// Pid of vipd on `node` while it runs.
    pub fn pid(&mut self, node: &str) -> Option<u32> {
        self.daemon(node).pid()
    }

    /// Sends `signal` (a `kill -s` name: TERM, KILL, INT) to vipd on `node`.
    pub fn kill(&mut self, node: &str, signal: &str) {
        let sent = self.daemon(node).signal(signal).unwrap();
        assert!(sent, "vipd on {node} is not running");
    }

    /// Waits up to `timeout` for vipd on `node` to exit; returns its status
    /// and forgets the process.
    pub fn wait_exit(&mut self, node: &str, timeout: Duration) -> Option<ExitStatus> {
        let clock = self.clock;
        self.daemon(node).wait_exit(clock, timeout)
    }

    /// SIGKILLs vipd on `node` and reaps it (the VIP, if held, stays).
    pub fn sigkill(&mut self, node: &str) {
        self.daemon(node).sigkill();
    }

    /// SIGKILL vipd and its address guard: the VIP stays configured.
    pub fn sigkill_tree(&mut self, node: &str) {
        self.daemon(node).sigkill_tree();
    }

    /// Graceful stop: SIGTERM, wait (SIGKILL after 10 s, which fails the
    /// test: vipd must exit on SIGTERM).
    pub fn stop(&mut self, node: &str) -> ExitStatus {
        self.kill(node, "TERM");
        match self.wait_exit(node, Duration::from_secs(10)) {
            Some(st) => st,
            None => {
                self.sigkill(node);
                panic!("vipd on {node} did not exit within 10 s of SIGTERM");
            }
        }
    }

    /// Stops vipd on `node` if it runs, then starts it again.
    pub fn restart(&mut self, node: &str) {
        if self.pid(node).is_some() {
            self.stop(node);
        }
        // A child that exited on its own is replaced by `start`.
        self.start(node);
    }

    /// Node crash: SIGKILL vipd and set the node's `eth0` down, so its
    /// kernel stops answering for the VIP it still has (NETLAB-TIPS).
    pub fn crash(&mut self, node: &str) {
        self.sigkill(node);
        self.topo.host(node).link_down().unwrap();
    }

    /// Drops all traffic between `node` and the etcd host, in `node`'s
    /// namespace (peers and client stay reachable).
    pub fn cut_from_etcd(&self, node: &str) {
        let rules = cluster::cut_from_api_rules("vipdcut");
        self.topo.host(node).ns.nft(&rules).unwrap();
    }

    /// Removes the cut made by [`Cluster::cut_from_etcd`].
    pub fn heal_etcd(&self, node: &str) {
        self.topo
            .host(node)
            .ns
            .nft("table inet vipdcut\ndelete table inet vipdcut\n")
            .unwrap();
    }

    /// Cuts layer 2 between `node` and each of `others` at the bridge, both
    /// ways, broadcast and multicast included (NETLAB-TIPS). Same idea as
    /// `Topology::partition`, whose chain name `fwd` nft rejects (a keyword).
    pub fn partition(&self, node: &str, others: &[&str]) {
        let pa = &self.topo.host(node).port;
        let set: Vec<String> = others
            .iter()
            .map(|o| format!("\"{}\"", self.topo.host(o).port))
            .collect();
        let set = set.join(", ");
        let rules = format!(
            "table bridge vipdpart\ndelete table bridge vipdpart\ntable bridge vipdpart {{\n chain forward {{\n  type filter hook forward priority 0; policy accept;\n  iifname \"{pa}\" oifname {{ {set} }} drop\n  iifname {{ {set} }} oifname \"{pa}\" drop\n }}\n}}\n"
        );
        self.topo.switch.nft(&rules).unwrap();
    }

    /// Removes the cut made by [`Cluster::partition`].
    pub fn heal_partition(&self) {
        self.topo
            .switch
            .nft("table bridge vipdpart\ndelete table bridge vipdpart\n")
            .unwrap();
    }

    /// Stops etcd (data kept).
    pub fn etcd_down(&mut self) {
        self.etcd.as_mut().expect("etcd backend").stop().unwrap();
    }

    /// Starts etcd again; returns once it answers.
    pub fn etcd_up(&mut self) {
        self.etcd.as_mut().expect("etcd backend").start().unwrap();
    }

    /// Nodes holding the VIP now (address on an up `eth0`).
    pub fn holders(&self) -> Vec<String> {
        self.watcher.holders()
    }

    /// The single holder, if exactly one node holds the VIP.
    pub fn holder(&self) -> Option<String> {
        let h = self.holders();
        (h.len() == 1).then(|| h[0].clone())
    }

    /// Polls `f` every 20 ms until it returns `Some` or `timeout` passes.
    pub fn wait_for<T>(&self, timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
        poll_until(&self.clock, timeout, Duration::from_millis(20), f)
    }

    /// Waits until exactly one node other than `not` holds the VIP.
    pub fn wait_holder(&self, not: Option<&str>, timeout: Duration) -> Option<String> {
        self.wait_for(timeout, || {
            self.holder().filter(|h| Some(h.as_str()) != not)
        })
    }

    /// Starts the client's prober (TCP to VIP:8080 every 10 ms).
    pub fn start_probe(&mut self) {
        let target = SocketAddr::new(self.family.vip(), PORT);
        self.prober =
            Some(Prober::start(&self.topo.host("client").ns, target, self.clock).unwrap());
    }

    /// The prober's samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.prober
            .as_ref()
            .map(Prober::samples)
            .unwrap_or_default()
    }

    /// Waits until the client has been answered by `node` without a failure
    /// for `hold`; returns the start of that run.
    pub fn wait_served(&self, node: &str, hold: Duration, timeout: Duration) -> Option<Duration> {
        let from = self.clock.now();
        self.wait_for(timeout, || {
            netlab::probe::served_continuously_after(&self.samples(), from, hold, Some(node))
                .map(|d| from + d)
        })
    }

    /// Start of the first run of answers by `node` after `from` lasting
    /// `hold`, measured from `from`.
    pub fn recovery(&self, from: Duration, hold: Duration, node: &str) -> Option<Duration> {
        netlab::probe::served_continuously_after(&self.samples(), from, hold, Some(node))
    }

    /// Longest client-visible gap between `from` and now.
    pub fn gap_since(&self, from: Duration) -> Duration {
        netlab::probe::longest_gap(&self.samples(), from..self.clock.now())
    }

    /// When `node` started holding the VIP after `after`, per the watcher.
    pub fn acquired_at(&self, node: &str, after: Duration) -> Option<Duration> {
        self.watcher
            .transitions()
            .into_iter()
            .find(|t| t.host == node && t.holding && t.t >= after)
            .map(|t| t.t)
    }

    /// When `node` stopped holding the VIP after `after`, per the watcher.
    pub fn released_at(&self, node: &str, after: Duration) -> Option<Duration> {
        self.watcher
            .transitions()
            .into_iter()
            .find(|t| t.host == node && !t.holding && t.t >= after)
            .map(|t| t.t)
    }

    /// Total two-holder time since the cluster was built.
    pub fn two_holder_time(&self) -> Duration {
        self.watcher
            .two_holder_time(Duration::ZERO..self.clock.now())
    }

    /// MAC of `node`'s `eth0`.
    pub fn mac(&self, node: &str) -> String {
        self.topo.host(node).mac.clone()
    }

    /// Waits until the client's neighbour entry for the VIP shows `node`'s
    /// MAC; returns when (clock time). The client does nothing but its probes.
    pub fn wait_client_neigh(&self, node: &str, timeout: Duration) -> Option<Duration> {
        let want = self.mac(node);
        let vip = self.family.vip();
        self.wait_for(timeout, || {
            (self.topo.host("client").neigh_mac(vip).as_deref() == Some(want.as_str()))
                .then(|| self.clock.now())
        })
    }

    /// `GET path` on `node`'s HTTP endpoint (port 2112 on its own address),
    /// from inside the node's namespace; the body, or `None` on any error.
    pub fn http_get(&self, node: &str, path: &str) -> Option<String> {
        let host = self.topo.host(node);
        http_get_in(&host.ns, host.ipv4()?, path)
    }

    /// Runs `vipd status` (with `extra` flags) inside `node`'s namespace
    /// against its own HTTP endpoint: exit code, stdout, stderr.
    pub fn status_cli(&self, node: &str, extra: &[&str]) -> (Option<i32>, String, String) {
        let host = self.topo.host(node);
        let ip = host.ipv4().unwrap();
        let out = host
            .ns
            .command(env!("CARGO_BIN_EXE_vipd"))
            .args(["status", "--prometheus-server", &format!("{ip}:2112")])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The value of the first sample of `metric` whose line contains every
    /// one of `labels` (e.g. `vip="192.0.2.100"`), from `node`'s /metrics.
    pub fn metric(&self, node: &str, metric: &str, labels: &[&str]) -> Option<f64> {
        let body = self.http_get(node, "/metrics")?;
        body.lines()
            .filter(|l| l.starts_with(metric) && labels.iter().all(|lb| l.contains(lb)))
            .find_map(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// The client's neighbour entry for the VIP, as text (for messages).
    pub fn client_neigh(&self) -> String {
        self.topo
            .host("client")
            .ns
            .ip(&["neigh", "show", &self.family.vip().to_string()])
            .unwrap_or_default()
    }

    /// Prints the machine-readable result line the lead collects for
    /// BENCHMARKS.md, and appends it to `$VIPD_SCENARIO_LOG` when set.
    pub fn report(&self, fields: &[(&str, String)]) {
        let line = format!(
            "SCENARIO name={} family={} lease_s={} renew_s={} retry_s={} reconcile_s={}",
            self.scenario,
            self.family.tag(),
            LEASE.as_secs_f64(),
            RENEW.as_secs_f64(),
            RETRY.as_secs_f64(),
            RECONCILE.as_secs_f64()
        );
        print_scenario(line, fields);
    }

    fn failure_report(&self) -> String {
        let mut out = format!(
            "\n===== scenario {} ({}) failed; logs in {}\n",
            self.scenario,
            self.family.tag(),
            self.logdir.display()
        );
        for d in &self.daemons {
            let text = std::fs::read_to_string(d.log()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            out.push_str(&format!(
                "----- vipd {} ({} lines, last 300) -----\n",
                d.node(),
                lines.len()
            ));
            for l in tail {
                out.push_str(l);
                out.push('\n');
            }
        }
        if let Some(etcd) = &self.etcd {
            out.push_str(&format!("----- etcd log tail -----\n{}\n", etcd.log_tail()));
        }
        if let Some(api) = &self.kube {
            out.push_str(&format!(
                "----- API test server -----\n{}\n",
                api.describe()
            ));
        }
        out.push_str("----- VIP holding transitions (t, host, holding) -----\n");
        for t in self.watcher.transitions() {
            out.push_str(&format!(
                "{:>9.3}s {} {}\n",
                t.t.as_secs_f64(),
                t.host,
                t.holding
            ));
        }
        let nss: Vec<&netlab::NetNs> = self.topo.hosts.iter().map(|h| &h.ns).collect();
        out.push_str(&format!(
            "----- addresses -----\n{}",
            netlab::watch::dump_addresses(&nss)
        ));
        out.push_str(&format!(
            "----- client neighbour entry -----\n{}\n",
            self.client_neigh()
        ));
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Killed before the report reads their logs.
        for d in &mut self.daemons {
            d.sigkill();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.failure_report());
        } else {
            let _ = std::fs::remove_dir_all(&self.logdir);
        }
    }
}

/// Milliseconds, for scenario lines.
pub fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Milliseconds of an optional duration (`none` when absent).
pub fn ms_opt(d: Option<Duration>) -> String {
    d.map(ms).unwrap_or_else(|| "none".into())
}

/// `GET path` on vipd's HTTP endpoint `ip:2112`, from inside `ns`: the body
/// of a 200 answer, or `None` on any error. HTTP/1.0, so a large body
/// (`/metrics` with 1,000 Services) is never chunked.
pub fn http_get_in(ns: &netlab::NetNs, ip: IpAddr, path: &str) -> Option<String> {
    use std::io::Read;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n");
    ns.enter(move || -> Option<String> {
        let addr = SocketAddr::new(ip, 2112);
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.lines()
            .next()?
            .contains(" 200")
            .then(|| body.to_string())
    })
    .ok()
    .flatten()
}

/// Polls `f` every `every` until it returns `Some` or `timeout` passes on
/// `clock`.
pub fn poll_until<T>(
    clock: &LabClock,
    timeout: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = clock.now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if clock.now() >= end {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// Prints a `SCENARIO` result line (`head` plus ` key=value` per field)
/// and appends it to `$VIPD_SCENARIO_LOG` when set.
pub fn print_scenario(mut head: String, fields: &[(&str, String)]) {
    for (k, v) in fields {
        head.push_str(&format!(" {k}={v}"));
    }
    println!("{head}");
    if let Ok(path) = std::env::var("VIPD_SCENARIO_LOG") {
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{head}");
        }
    }
}
