//! The lab's network and processes: the product version of the test
//! suite's `Cluster` (crates/vipd/tests/common/mod.rs).
//!
//! ```text
//!                 [PFX-sw: br0]  ◄── tcpdump (wire monitor), ip monitor (AddrWatcher)
//!   ┌───────┬──────┬─────┼────── … ──┬──────────┐
//!  api     n1     n2    n3          nN        client
//!  etcd   vipd   vipd  vipd        vipd       Prober ──► VIP:8080 every 10 ms
//!  .2     .11    .12   .13        .10+N      .50   (Responder in each node answers its name)
//! ```
//! Addresses: 192.0.2.0/24 and 2001:db8::/64 only (documentation ranges);
//! the VIP is 192.0.2.100 (or 2001:db8::100 with `--ipv6`). Every namespace
//! is named with the run's prefix. Dropping a [`Lab`] SIGKILLs the vipd
//! processes it started (by pid), stops the monitors, etcd and the
//! responders, and deletes the namespaces; nothing outside them changed.

use crate::LabError;
use netlab::etcd::EtcdServer;
use netlab::probe::{Prober, Responder, Sample};
use netlab::watch::AddrWatcher;
use netlab::{HoldingLog, LabClock, Topology, TopologyBuilder};
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::wire::{Claim, WireMonitor};

/// TCP port of the responders the client probes.
pub const PORT: u16 = 8080;
/// The API host's IPv4 address (etcd listens there).
pub const API_IP: &str = "192.0.2.2";
/// The API host's IPv6 address.
pub const API_IP6: &str = "2001:db8::2";

/// Lease timings passed to every vipd.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// `--lease-duration` in seconds.
    pub lease: f64,
    /// `--renew-deadline` in seconds.
    pub renew: f64,
    /// `--retry-period` in seconds.
    pub retry: f64,
}

/// Which VIP keeper runs on the nodes. Everything else (topology, client
/// probe, wire monitor, address watcher, scenarios, measurements) is the
/// same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    /// vipd itself (this executable, `vipd run`, etcd backend).
    Vipd,
    /// keepalived (VRRPv3, settings of equal intent: [`crate::keepalived`]).
    Keepalived,
}

impl Implementation {
    /// The command-line name (`vipd`, `keepalived`).
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Vipd => "vipd",
            Implementation::Keepalived => "keepalived",
        }
    }

    /// Parses a comma-separated list (`vipd,keepalived`), without repeats.
    pub fn parse_list(s: &str) -> Result<Vec<Implementation>, String> {
        let mut out = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let i = match w {
                "vipd" => Implementation::Vipd,
                "keepalived" => Implementation::Keepalived,
                _ => {
                    return Err(format!(
                        "unknown implementation `{w}`; known: vipd, keepalived"
                    ))
                }
            };
            if !out.contains(&i) {
                out.push(i);
            }
        }
        if out.is_empty() {
            return Err("no implementation given".into());
        }
        Ok(out)
    }
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// What runs on the nodes.
    pub implementation: Implementation,
    /// The keepalived executable (used with [`Implementation::Keepalived`]).
    pub keepalived: PathBuf,
    /// Number of vipd nodes (n1..nN).
    pub nodes: usize,
    /// Lease timings.
    pub timing: Timing,
    /// IPv6 VIP instead of IPv4.
    pub ipv6: bool,
    /// The vipd executable to run on the nodes (with [`Implementation::Vipd`]).
    pub exe: PathBuf,
    /// Where the daemon logs go (one file per node), and keepalived's
    /// configuration and pid files.
    pub run_dir: PathBuf,
    /// Namespace name prefix.
    pub prefix: String,
}

#[derive(Debug)]
struct Daemon {
    node: String,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

/// The running lab. Fields drop in declaration order after [`Drop::drop`]
/// killed the daemons: monitors, prober, responders, etcd, then namespaces.
#[derive(Debug)]
pub struct Lab {
    daemons: Vec<Daemon>,
    wire: WireMonitor,
    watcher: AddrWatcher,
    prober: Prober,
    _responders: Vec<Responder>,
    etcd: EtcdServer,
    /// The namespaces.
    pub topo: Topology,
    /// The clock every record is stamped with.
    pub clock: LabClock,
    cfg: LabConfig,
    vip: IpAddr,
}

impl Lab {
    /// Builds the namespaces, starts etcd, the responders and all monitors.
    /// No vipd runs yet ([`Lab::start`]).
    pub fn build(cfg: LabConfig) -> Result<Lab, LabError> {
        let v4 = |a: String| -> Result<(IpAddr, u8), LabError> {
            a.parse()
                .map(|ip| (ip, 24))
                .map_err(|_| LabError::Setup(format!("bad address {a}")))
        };
        let v6 = |a: String| -> Result<(IpAddr, u8), LabError> {
            a.parse()
                .map(|ip| (ip, 64))
                .map_err(|_| LabError::Setup(format!("bad address {a}")))
        };
        let nodes: Vec<String> = (1..=cfg.nodes).map(|i| format!("n{i}")).collect();
        let mut b = TopologyBuilder::new(&cfg.prefix)
            .host("api", &[v4(API_IP.into())?, v6(API_IP6.into())?]);
        for (i, n) in nodes.iter().enumerate() {
            let last = 11 + i;
            b = b.host(
                n,
                &[
                    v4(format!("192.0.2.{last}"))?,
                    v6(format!("2001:db8::{last}"))?,
                ],
            );
        }
        let topo = b
            .host(
                "client",
                &[v4("192.0.2.50".into())?, v6("2001:db8::50".into())?],
            )
            .build()?;
        let vip: IpAddr = if cfg.ipv6 {
            "2001:db8::100"
        } else {
            "192.0.2.100"
        }
        .parse()
        .map_err(|_| LabError::Setup("bad VIP".into()))?;
        netlab::check_doc_addr(vip)?;
        std::fs::create_dir_all(&cfg.run_dir).map_err(|source| LabError::Io {
            what: format!("create {}", cfg.run_dir.display()),
            source,
        })?;
        let api_ip: IpAddr = API_IP
            .parse()
            .map_err(|_| LabError::Setup("bad API address".into()))?;
        let etcd = EtcdServer::start_in_ns(topo.host("api").ns.name(), api_ip, 2379)?;
        let responders = nodes
            .iter()
            .map(|n| Responder::start(&topo.host(n).ns, n, PORT))
            .collect::<Result<Vec<_>, _>>()?;
        let clock = LabClock::new();
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let watcher = AddrWatcher::start(&topo, &names, vip, clock)?;
        let wire = WireMonitor::start(&topo.switch, vip, clock)?;
        let prober = Prober::start(&topo.host("client").ns, SocketAddr::new(vip, PORT), clock)?;
        let daemons = nodes
            .iter()
            .map(|n| Daemon {
                node: n.clone(),
                child: None,
                log: cfg.run_dir.join(format!("{n}.log")),
                starts: 0,
            })
            .collect();
        Ok(Lab {
            daemons,
            wire,
            watcher,
            prober,
            _responders: responders,
            etcd,
            topo,
            clock,
            cfg,
            vip,
        })
    }

    /// The VIP.
    pub fn vip(&self) -> IpAddr {
        self.vip
    }

    /// The VIP with its host prefix length, as vipd adds it.
    pub fn vip_cidr(&self) -> String {
        let len = if self.vip.is_ipv6() { 128 } else { 32 };
        format!("{}/{len}", self.vip)
    }

    /// Node names, n1..nN.
    pub fn nodes(&self) -> Vec<String> {
        self.daemons.iter().map(|d| d.node.clone()).collect()
    }

    /// What runs on the nodes.
    pub fn implementation(&self) -> Implementation {
        self.cfg.implementation
    }

    /// Lease timings of this lab.
    pub fn timing(&self) -> Timing {
        self.cfg.timing
    }

    /// Directory with the vipd logs.
    pub fn run_dir(&self) -> &Path {
        &self.cfg.run_dir
    }

    /// MAC address → node name, for the wire analysis.
    pub fn node_of_mac(&self) -> HashMap<String, String> {
        self.daemons
            .iter()
            .map(|d| (self.topo.host(&d.node).mac.clone(), d.node.clone()))
            .collect()
    }

    fn daemon(&mut self, node: &str) -> Result<&mut Daemon, LabError> {
        self.daemons
            .iter_mut()
            .find(|d| d.node == node)
            .ok_or_else(|| LabError::Setup(format!("no vipd node {node}")))
    }

    /// vipd's command line on `node` (the etcd backend flags of issue 2).
    fn args(&self, node: &str) -> Vec<String> {
        let ip = self
            .topo
            .host(node)
            .ipv4()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let t = self.cfg.timing;
        let v: Vec<String> = [
            "run",
            "--address",
            &self.vip.to_string(),
            "--interface",
            "eth0",
            "--node-name",
            node,
            "--lease-name",
            "lab-vip",
            "--lease-duration",
            &t.lease.to_string(),
            "--renew-deadline",
            &t.renew.to_string(),
            "--retry-period",
            &t.retry.to_string(),
            "--reconcile-period",
            "1",
            "--prometheus-server",
            &format!("{ip}:2112"),
            "--log-level",
            "debug",
            "--backend",
            "etcd",
            "--etcd-endpoints",
            &format!("http://{API_IP}:2379"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v
    }

    /// Starts the daemon (vipd or keepalived) on `node` (a no-op while it
    /// runs), appending to its log.
    pub fn start(&mut self, node: &str) -> Result<(), LabError> {
        if self.running(node) {
            return Ok(());
        }
        let imp = self.cfg.implementation;
        let starts = self.daemon(node)?.starts + 1;
        let (program, args) = match imp {
            Implementation::Vipd => (self.cfg.exe.clone(), self.args(node)),
            Implementation::Keepalived => {
                let conf = self.cfg.run_dir.join(format!("{node}.keepalived.conf"));
                let advert = crate::keepalived::advert_int_for_lease(self.cfg.timing.lease);
                std::fs::write(&conf, crate::keepalived::config(node, self.vip, advert)).map_err(
                    |source| LabError::Io {
                        what: format!("write {}", conf.display()),
                        source,
                    },
                )?;
                // Fresh pid file names at every start (NETLAB-TIPS).
                let pids = self.cfg.run_dir.join(format!("{node}-{starts}"));
                (
                    self.cfg.keepalived.clone(),
                    crate::keepalived::args(&conf, &pids),
                )
            }
        };
        let t = self.clock.now();
        let mut cmd = self
            .topo
            .host(node)
            .ns
            .command(&program.display().to_string());
        let d = self.daemon(node)?;
        d.starts = starts;
        let io = |source| LabError::Io {
            what: format!("open {}", d.log.display()),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&d.log)
            .map_err(io)?;
        let _ = writeln!(
            log,
            "===== start #{} at t={:.3}s: {} {}",
            d.starts,
            t.as_secs_f64(),
            program.display(),
            args.join(" ")
        );
        let err = log.try_clone().map_err(|source| LabError::Io {
            what: "dup log".into(),
            source,
        })?;
        // `ip netns exec` execs the daemon after setns, so the pid is the
        // daemon's. Its own process group keeps a terminal Ctrl-C away from
        // it (the lab decides when and how its daemons end) and holds
        // keepalived's VRRP child too, so one group kill ends both.
        let child = cmd
            .args(&args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|source| LabError::Io {
                what: format!("spawn {} on {node}", imp.name()),
                source,
            })?;
        d.child = Some(child);
        Ok(())
    }

    /// True while the daemon on `node` runs.
    pub fn running(&mut self, node: &str) -> bool {
        match self
            .daemons
            .iter_mut()
            .find(|d| d.node == node)
            .and_then(|d| d.child.as_mut())
        {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM to the daemon on `node` (keepalived's parent forwards it to
    /// its VRRP child, which sends a priority-0 advert: RFC 5798 §6.4.3);
    /// waits up to 10 s, then SIGKILLs it.
    /// Returns whether it exited on SIGTERM.
    pub fn sigterm(&mut self, node: &str) -> Result<bool, LabError> {
        let clock = self.clock;
        let d = self.daemon(node)?;
        let Some(c) = d.child.as_mut() else {
            return Ok(true);
        };
        // Our own child, by pid.
        let _ = netlab::run_ok("kill", &["-s", "TERM", &c.id().to_string()]);
        let end = clock.now() + Duration::from_secs(10);
        while clock.now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                d.child = None;
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.sigkill(node)?;
        Ok(false)
    }

    /// SIGKILLs the daemon on `node` — its whole process group, so
    /// keepalived's VRRP child dies with its parent as in a container kill
    /// — and reaps it (a held VIP stays configured).
    pub fn sigkill(&mut self, node: &str) -> Result<(), LabError> {
        if let Some(c) = self.daemon(node)?.child.take() {
            kill_group(c);
        }
        Ok(())
    }

    /// Starts the daemon on every node.
    pub fn start_all(&mut self) -> Result<(), LabError> {
        for n in self.nodes() {
            self.start(&n)?;
        }
        Ok(())
    }

    /// Drops all traffic between `node` and the API host, in `node`'s namespace.
    pub fn cut_from_api(&self, node: &str) -> Result<(), LabError> {
        // One rule per line (NETLAB-TIPS: nft rejects `rule }` on one line).
        let rules = format!(
            "table inet vipdlabcut\ndelete table inet vipdlabcut\ntable inet vipdlabcut {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  ip saddr {API_IP} drop\n  ip6 saddr {API_IP6} drop\n }}\n chain output {{\n  type filter hook output priority 0; policy accept;\n  ip daddr {API_IP} drop\n  ip6 daddr {API_IP6} drop\n }}\n}}\n"
        );
        Ok(self.topo.host(node).ns.nft(&rules)?)
    }

    /// 30 % random loss on everything `node` sends and receives.
    pub fn lossy(&self, node: &str, percent: u8) -> Result<(), LabError> {
        let rules = format!(
            "table inet vipdlabloss\ndelete table inet vipdlabloss\ntable inet vipdlabloss {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  numgen random mod 100 < {percent} drop\n }}\n chain output {{\n  type filter hook output priority 0; policy accept;\n  numgen random mod 100 < {percent} drop\n }}\n}}\n"
        );
        Ok(self.topo.host(node).ns.nft(&rules)?)
    }

    /// Removes the lab's nftables tables from `node` (cut and loss).
    pub fn clear_node_rules(&self, node: &str) -> Result<(), LabError> {
        let rules = "table inet vipdlabcut\ndelete table inet vipdlabcut\ntable inet vipdlabloss\ndelete table inet vipdlabloss\n";
        Ok(self.topo.host(node).ns.nft(rules)?)
    }

    /// Stops etcd (data kept).
    pub fn api_down(&mut self) -> Result<(), LabError> {
        Ok(self.etcd.stop()?)
    }

    /// Starts etcd again; returns once it answers.
    pub fn api_up(&mut self) -> Result<(), LabError> {
        Ok(self.etcd.start()?)
    }

    /// Adds the VIP on `node` exactly as vipd does — through vipd-vip's own
    /// `Netlink::add_vip`, so it carries vipd's `IFA_PROTO` tag — without a
    /// vipd owning it: what a SIGKILLed vipd leaves behind. (iproute2 6.1
    /// cannot set an address protocol, hence netlink from inside the
    /// namespace.)
    ///
    /// With keepalived there is no tag: the VIP is added by hand
    /// (`ip addr add`), as an operator or a crashed keepalived would leave it.
    pub fn plant_vip(&self, node: &str) -> Result<(), LabError> {
        if self.cfg.implementation == Implementation::Keepalived {
            self.topo
                .host(node)
                .ns
                .ip(&["addr", "add", &self.vip_cidr(), "dev", "eth0"])?;
            return Ok(());
        }
        let vip = vipd_vip::Vip::new(self.vip, if self.vip.is_ipv6() { 128 } else { 32 });
        let ns = &self.topo.host(node).ns;
        let res = ns.enter(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let nl = vipd_vip::netlink::Netlink::new().map_err(|e| e.to_string())?;
                let link = nl.link_by_name("eth0").await.map_err(|e| e.to_string())?;
                nl.add_vip(link.ifindex, vip)
                    .await
                    .map_err(|e| e.to_string())
            })
        })?;
        res.map_err(|e| LabError::Setup(format!("planting {vip} on {node}: {e}")))
    }

    /// Deletes the VIP from `node` by hand.
    pub fn delete_vip(&self, node: &str) -> Result<(), LabError> {
        self.topo
            .host(node)
            .ns
            .ip(&["addr", "del", &self.vip_cidr(), "dev", "eth0"])?;
        Ok(())
    }

    /// Back to a clean slate after a run that did not end with one holder
    /// serving the client, so one bad run does not poison the next: every
    /// daemon SIGKILLed, every fault healed, the VIP removed everywhere,
    /// etcd up, every daemon started again.
    pub fn reset(&mut self) -> Result<(), LabError> {
        let nodes = self.nodes();
        for n in &nodes {
            self.sigkill(n)?;
            self.clear_node_rules(n)?;
            let host = self.topo.host(n);
            host.link_up()?;
            if host.has_addr(self.vip) {
                self.delete_vip(n)?;
            }
        }
        self.topo.heal_partition()?;
        self.api_up()?;
        self.start_all()
    }

    /// Nodes holding the VIP now (address on an up `eth0`).
    pub fn holders(&self) -> Vec<String> {
        self.watcher.holders()
    }

    /// The holding log so far.
    pub fn log(&self) -> HoldingLog {
        self.watcher.log()
    }

    /// Client probe samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.prober.samples()
    }

    /// Claims seen on the wire so far.
    pub fn claims(&self) -> Vec<Claim> {
        self.wire.claims()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Our own children, by pid, before their namespaces go.
        for d in &mut self.daemons {
            if let Some(c) = d.child.take() {
                kill_group(c);
            }
        }
    }
}

/// SIGKILLs the process group led by our child `c` (spawned with
/// `process_group(0)`, so the group id is its pid: only processes the lab
/// started), then reaps `c`.
fn kill_group(mut c: Child) {
    let _ = netlab::run_ok("kill", &["-s", "KILL", "--", &format!("-{}", c.id())]);
    let _ = c.kill();
    let _ = c.wait();
}
