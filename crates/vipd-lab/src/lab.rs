//! The lab's network and processes, built on [`crate::cluster`] (the same
//! topology and daemon slots the test suites' clusters use).
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
use netlab::{HoldingLog, LabClock, Topology};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::{ApiServer, Backend, KubeTestServer};
use crate::cluster::{self, Daemon};
pub use crate::cluster::{API_IP, API_IP6};
use crate::services::ServicesView;

use crate::wire::{Claim, WireMonitor};

/// TCP port of the responders the client probes.
pub const PORT: u16 = 8080;

/// The shared quorum key's file in the run directory (quorum mode).
pub const PEER_KEY_FILE: &str = "peer.key";

/// nftables table (switch namespace) of the peer-traffic faults.
const PEER_TABLE: &str = "vipdlabpeer";

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
    /// vipd itself (this executable, `vipd run`, etcd or Kubernetes backend).
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

/// How vipd nodes agree on the holder (`vipd run --coordination`).
/// keepalived has its own (VRRP) and ignores this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coordination {
    /// A lease in the API (etcd or Kubernetes), vipd's default.
    Lease,
    /// A lease granted by a majority of peers over UDP (`--coordination
    /// quorum --peers ...`); the API backend stays configured (vipd mirrors
    /// the holder there, best effort), so API faults are still real.
    Quorum,
}

impl Coordination {
    /// The command-line name (`lease`, `quorum`).
    pub fn name(self) -> &'static str {
        match self {
            Coordination::Lease => "lease",
            Coordination::Quorum => "quorum",
        }
    }

    /// Parses a comma-separated list (`lease,quorum`), without repeats.
    pub fn parse_list(s: &str) -> Result<Vec<Coordination>, String> {
        let mut out = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let c = match w {
                "lease" => Coordination::Lease,
                "quorum" => Coordination::Quorum,
                _ => return Err(format!("unknown coordination `{w}`; known: lease, quorum")),
            };
            if !out.contains(&c) {
                out.push(c);
            }
        }
        if out.is_empty() {
            return Err("no coordination given".into());
        }
        Ok(out)
    }
}

/// One thing the lab compares: an implementation and, for vipd, its
/// coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// What runs on the nodes.
    pub implementation: Implementation,
    /// vipd's coordination (keepalived: always [`Coordination::Lease`],
    /// unused).
    pub coordination: Coordination,
}

impl Variant {
    /// What coordinates the holder: `lease`, `quorum`, or `vrrp` for
    /// keepalived.
    pub fn coordination_name(self) -> &'static str {
        match self.implementation {
            Implementation::Keepalived => "vrrp",
            Implementation::Vipd => self.coordination.name(),
        }
    }

    /// The name in reports: `vipd`, `keepalived`, or with `coordination`
    /// (runs comparing coordinations) `vipd lease`, `vipd quorum`;
    /// keepalived stays `keepalived`.
    pub fn label(self, coordination: bool) -> String {
        match self.implementation {
            Implementation::Vipd if coordination => {
                format!("vipd {}", self.coordination.name())
            }
            i => i.name().to_string(),
        }
    }

    /// Every variant of `impls` × `coordinations`, in order: vipd once per
    /// coordination, keepalived once.
    pub fn all(impls: &[Implementation], coordinations: &[Coordination]) -> Vec<Variant> {
        let mut out = Vec::new();
        for i in impls {
            match i {
                Implementation::Vipd => out.extend(coordinations.iter().map(|c| Variant {
                    implementation: *i,
                    coordination: *c,
                })),
                Implementation::Keepalived => out.push(Variant {
                    implementation: *i,
                    coordination: Coordination::Lease,
                }),
            }
        }
        out
    }
}

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// What runs on the nodes.
    pub implementation: Implementation,
    /// How vipd nodes agree on the holder (with [`Implementation::Vipd`]).
    pub coordination: Coordination,
    /// Quorum mode: a witness voter (`vipd witness`) in namespace
    /// [`cluster::WITNESS`] next to the nodes (2 nodes + witness = 3 voters).
    pub witness: bool,
    /// Quorum timings (with [`Coordination::Quorum`]).
    pub quorum: cluster::QuorumTiming,
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
    /// What the API host runs and the nodes' vipd use.
    pub backend: Backend,
    /// The `vipd-kube-testserver` executable (with [`Backend::Kubernetes`]).
    pub kube_testserver: PathBuf,
    /// LoadBalancer Services to create and announce (0: Services mode off;
    /// needs [`Backend::Kubernetes`]).
    pub services: usize,
    /// Nodes whose vipd runs from a container image instead of `exe`, and
    /// the image (with [`Implementation::Vipd`]).
    pub image: Option<NodeImage>,
}

/// vipd from its container image on some nodes: `podman run` in the node's
/// namespace with exactly a DaemonSet's capabilities (`--cap-drop ALL
/// --cap-add NET_ADMIN,NET_RAW`) and the image's own non-root user.
#[derive(Debug, Clone)]
pub struct NodeImage {
    /// The image reference, e.g. `ghcr.io/vipd/vipd:v0.1.0`.
    pub image: String,
    /// The nodes that run it (n1..).
    pub nodes: Vec<String>,
}

/// podman settings that work on these machines (NETLAB-TIPS): crun cannot
/// start containers here and the default ulimits cannot be set. The same
/// file scripts/build-image.sh uses.
const CONTAINERS_CONF: &str = include_str!("../../../scripts/lib/containers.conf");

impl NodeImage {
    /// `podman run` arguments for vipd `args` (without the program) on
    /// namespace `ns`, container `name`; `run_dir` (the kubeconfig, logs)
    /// is mounted read-only at the same path.
    fn podman_args(&self, ns: &str, name: &str, run_dir: &Path, args: &[String]) -> Vec<String> {
        let dir = run_dir.display().to_string();
        let mut v: Vec<String> = [
            "run",
            "--rm",
            "--name",
            name,
            "--network",
            &format!("ns:/run/netns/{ns}"),
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_ADMIN,NET_RAW",
            "--volume",
            &format!("{dir}:{dir}:ro"),
            // SIGTERM to `podman run` reaches vipd (PID 1 in the container,
            // which handles it); SIGKILL goes through `podman kill`.
            "--sig-proxy=true",
            "--log-driver",
            "none",
            &self.image,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(args.iter().cloned());
        v
    }
}

/// The running lab. Fields drop in declaration order: the daemons (each
/// slot SIGKILLs its process group), monitors, probers, responders, the
/// API server (etcd or the test server), then namespaces.
#[derive(Debug)]
pub struct Lab {
    daemons: Vec<Daemon>,
    /// The witness's `vipd witness` (quorum mode with a witness).
    witness: Option<Daemon>,
    wire: WireMonitor,
    watcher: AddrWatcher,
    services: Option<ServicesView>,
    prober: Prober,
    _responders: Vec<Responder>,
    api: ApiServer,
    /// The namespaces.
    pub topo: Topology,
    /// The clock every record is stamped with.
    pub clock: LabClock,
    cfg: LabConfig,
    vip: IpAddr,
}

impl Lab {
    /// Builds the namespaces, starts the API server (etcd or the
    /// Kubernetes API test server, with the Services and Nodes of a
    /// Services run), the responders and all monitors. No vipd runs yet
    /// ([`Lab::start`]).
    pub fn build(mut cfg: LabConfig) -> Result<Lab, LabError> {
        let nodes = cluster::node_names(cfg.nodes);
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        let quorum =
            cfg.implementation == Implementation::Vipd && cfg.coordination == Coordination::Quorum;
        if cfg.witness && !quorum {
            return Err(LabError::Setup(
                "a witness needs vipd in quorum mode".into(),
            ));
        }
        let topo = cluster::topology_with_witness(&cfg.prefix, &names, cfg.witness)?;
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
        // Absolute from here on: the path is handed to daemons started in
        // other working directories and mounted into node containers
        // (podman refuses a relative volume path).
        cfg.run_dir = std::fs::canonicalize(&cfg.run_dir).map_err(|source| LabError::Io {
            what: format!("resolve {}", cfg.run_dir.display()),
            source,
        })?;
        let api_ip: IpAddr = API_IP
            .parse()
            .map_err(|_| LabError::Setup("bad API address".into()))?;
        if cfg.services > 0 && cfg.backend != Backend::Kubernetes {
            return Err(LabError::Setup(
                "Services mode needs --backend kubernetes".into(),
            ));
        }
        let api_ns = &topo.host("api").ns;
        let api = match cfg.backend {
            Backend::Etcd => ApiServer::Etcd(EtcdServer::start_in_ns(api_ns.name(), api_ip, 2379)?),
            Backend::Kubernetes => {
                let k = KubeTestServer::start(
                    api_ns,
                    &cfg.kube_testserver,
                    &cfg.run_dir.join("kube"),
                    &cfg.run_dir.join("kube-testserver.log"),
                )?;
                if cfg.services > 0 {
                    k.put_objects(api_ns, crate::services::objects(&nodes, cfg.services, PORT))?;
                }
                ApiServer::Kube(k)
            }
        };
        let svc_addrs = crate::services::addresses(cfg.services);
        if !svc_addrs.is_empty() {
            // The Service addresses are on-link for the client, like the
            // VIP (a LoadBalancer range on the nodes' segment).
            topo.host("client").ns.ip(&[
                "route",
                "add",
                crate::services::SERVICE_NET,
                "dev",
                "eth0",
            ])?;
        }
        let responders = nodes
            .iter()
            .map(|n| Responder::start(&topo.host(n).ns, n, PORT))
            .collect::<Result<Vec<_>, _>>()?;
        let clock = LabClock::new();
        let watcher = AddrWatcher::start(&topo, &names, vip, clock)?;
        let wire = WireMonitor::start(&topo.switch, vip, &svc_addrs, clock)?;
        let services = if svc_addrs.is_empty() {
            None
        } else {
            Some(ServicesView::start(
                &topo,
                &names,
                &topo.host("client").ns,
                svc_addrs,
                PORT,
                clock,
            )?)
        };
        let prober = Prober::start(&topo.host("client").ns, SocketAddr::new(vip, PORT), clock)?;
        let daemons = nodes
            .iter()
            .map(|n| Daemon::new(n.clone(), cfg.run_dir.join(format!("{n}.log"))))
            .collect();
        if quorum {
            // A container's vipd runs as the image's non-root user and must
            // read the key through the read-only mount; otherwise root only.
            let mode = if cfg.image.is_some() { 0o644 } else { 0o600 };
            cluster::write_peer_key(&cfg.run_dir.join(PEER_KEY_FILE), mode)?;
        }
        let witness = cfg.witness.then(|| {
            Daemon::new(
                cluster::WITNESS,
                cfg.run_dir.join(format!("{}.log", cluster::WITNESS)),
            )
        });
        Ok(Lab {
            daemons,
            witness,
            wire,
            watcher,
            services,
            prober,
            _responders: responders,
            api,
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
        self.daemons.iter().map(|d| d.node().to_string()).collect()
    }

    /// What runs on the nodes.
    pub fn implementation(&self) -> Implementation {
        self.cfg.implementation
    }

    /// How vipd nodes agree on the holder.
    pub fn coordination(&self) -> Coordination {
        self.cfg.coordination
    }

    /// True when vipd runs in quorum mode.
    pub fn is_quorum(&self) -> bool {
        self.cfg.implementation == Implementation::Vipd
            && self.cfg.coordination == Coordination::Quorum
    }

    /// True when a witness voter runs (quorum mode, 2 nodes).
    pub fn has_witness(&self) -> bool {
        self.witness.is_some()
    }

    /// What the nodes' peers exchange among themselves (`None`: nothing,
    /// vipd in lease mode talks only to the API).
    pub fn peer_traffic(&self) -> Option<cluster::PeerTraffic> {
        match self.cfg.implementation {
            Implementation::Keepalived => Some(cluster::PeerTraffic::Vrrp),
            Implementation::Vipd if self.is_quorum() => Some(cluster::PeerTraffic::Quorum),
            Implementation::Vipd => None,
        }
    }

    /// The lease backend.
    pub fn backend(&self) -> Backend {
        self.cfg.backend
    }

    /// The Service addresses' view (Services runs only).
    pub fn services(&self) -> Option<&ServicesView> {
        self.services.as_ref()
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
            .map(|d| (self.topo.host(d.node()).mac.clone(), d.node().to_string()))
            .collect()
    }

    fn daemon(&mut self, node: &str) -> Result<&mut Daemon, LabError> {
        self.daemons
            .iter_mut()
            .find(|d| d.node() == node)
            .ok_or_else(|| LabError::Setup(format!("no vipd node {node}")))
    }

    /// vipd's command line on `node`: the flags of issue 2, then the
    /// backend's (etcd endpoints, or the test server's kubeconfig and the
    /// lease namespace as a kube-vip manifest sets them), then
    /// `--services` (kube-vip's `svc_enable`) in a Services run.
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
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let backend: Vec<String> = match self.cfg.backend {
            Backend::Etcd => vec![
                "--backend".into(),
                "etcd".into(),
                "--etcd-endpoints".into(),
                format!("http://{API_IP}:2379"),
            ],
            Backend::Kubernetes => vec![
                "--backend".into(),
                "kubernetes".into(),
                "--kubeconfig".into(),
                self.cfg
                    .run_dir
                    .join("kube")
                    .join("kubeconfig")
                    .display()
                    .to_string(),
                "--lease-namespace".into(),
                "kube-system".into(),
            ],
        };
        let services = (self.cfg.services > 0).then(|| "--services".to_string());
        let quorum = if self.is_quorum() {
            cluster::quorum_run_args(
                &self.peers(),
                &self.cfg.run_dir.join(PEER_KEY_FILE),
                self.cfg.quorum,
            )
        } else {
            Vec::new()
        };
        v.into_iter()
            .chain(backend)
            .chain(services)
            .chain(quorum)
            .collect()
    }

    /// The quorum voter list every voter gets (quorum mode).
    fn peers(&self) -> String {
        let nodes = self.nodes();
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        cluster::quorum_peers(&names, self.witness.is_some())
    }

    /// Starts `vipd witness` (a no-op without a witness or while it runs).
    pub fn start_witness(&mut self) -> Result<(), LabError> {
        if self.witness.is_none() {
            return Ok(());
        }
        let args = cluster::witness_args(
            &self.peers(),
            &self.cfg.run_dir.join(PEER_KEY_FILE),
            self.cfg.quorum,
        );
        let t = self.clock.now();
        let exe = self.cfg.exe.clone();
        let ns = &self.topo.host(cluster::WITNESS).ns;
        match self.witness.as_mut() {
            Some(w) => {
                if w.running() {
                    return Ok(());
                }
                w.spawn(ns, &exe, &args, t)
            }
            None => Ok(()),
        }
    }

    /// SIGKILLs the witness (a no-op without one).
    pub fn kill_witness(&mut self) {
        if let Some(w) = self.witness.as_mut() {
            w.sigkill();
        }
    }

    /// True while the witness runs (false without one).
    pub fn witness_running(&mut self) -> bool {
        self.witness.as_mut().is_some_and(Daemon::running)
    }

    /// Starts the daemon (vipd or keepalived) on `node` (a no-op while it
    /// runs), appending to its log.
    pub fn start(&mut self, node: &str) -> Result<(), LabError> {
        if self.running(node) {
            return Ok(());
        }
        let imp = self.cfg.implementation;
        let starts = self.daemon(node)?.starts() + 1;
        let mut container = None;
        let (program, args) = match imp {
            Implementation::Vipd => match &self.cfg.image {
                Some(img) if img.nodes.iter().any(|n| n == node) => {
                    let conf = self.cfg.run_dir.join("containers.conf");
                    std::fs::write(&conf, CONTAINERS_CONF).map_err(|source| LabError::Io {
                        what: format!("write {}", conf.display()),
                        source,
                    })?;
                    // A fresh name per start: a killed container's removal
                    // may still be under way when the node restarts.
                    let name = format!("{}-{node}-{starts}", self.cfg.prefix);
                    let ns = self.topo.host(node).ns.name().to_string();
                    let args = img.podman_args(&ns, &name, &self.cfg.run_dir, &self.args(node));
                    container = Some(crate::cluster::Container { name, conf });
                    (PathBuf::from("podman"), args)
                }
                _ => (self.cfg.exe.clone(), self.args(node)),
            },
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
        let topo = &self.topo;
        let d = self
            .daemons
            .iter_mut()
            .find(|d| d.node() == node)
            .ok_or_else(|| LabError::Setup(format!("no vipd node {node}")))?;
        d.set_container(container);
        d.spawn(&topo.host(node).ns, &program, &args, t)
    }

    /// True while the daemon on `node` runs.
    pub fn running(&mut self, node: &str) -> bool {
        self.daemon(node).is_ok_and(|d| d.running())
    }

    /// SIGTERM to the daemon on `node` (keepalived's parent forwards it to
    /// its VRRP child, which sends a priority-0 advert: RFC 5798 §6.4.3);
    /// waits up to 10 s, then SIGKILLs it.
    /// Returns whether it exited on SIGTERM.
    pub fn sigterm(&mut self, node: &str) -> Result<bool, LabError> {
        let clock = self.clock;
        let d = self.daemon(node)?;
        if !d.running() {
            return Ok(true);
        }
        Ok(d.stop(clock, Duration::from_secs(10))?.is_some())
    }

    /// SIGKILLs the daemon on `node` — its whole process group, so
    /// keepalived's VRRP child dies with its parent as in a container kill
    /// — and reaps it (a held VIP stays configured).
    pub fn sigkill(&mut self, node: &str) -> Result<(), LabError> {
        self.daemon(node)?.sigkill();
        Ok(())
    }

    /// Starts the daemon on every node, and the witness first when there
    /// is one.
    pub fn start_all(&mut self) -> Result<(), LabError> {
        self.start_witness()?;
        for n in self.nodes() {
            self.start(&n)?;
        }
        Ok(())
    }

    /// Drops all traffic between `node` and the API host, in `node`'s namespace.
    pub fn cut_from_api(&self, node: &str) -> Result<(), LabError> {
        let rules = cluster::cut_from_api_rules("vipdlabcut");
        Ok(self.topo.host(node).ns.nft(&rules)?)
    }

    /// 30 % random loss on everything `node` sends and receives.
    pub fn lossy(&self, node: &str, percent: u8) -> Result<(), LabError> {
        let rules = format!(
            "table inet vipdlabloss\ndelete table inet vipdlabloss\ntable inet vipdlabloss {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  numgen random mod 100 < {percent} drop\n }}\n chain output {{\n  type filter hook output priority 0; policy accept;\n  numgen random mod 100 < {percent} drop\n }}\n}}\n"
        );
        Ok(self.topo.host(node).ns.nft(&rules)?)
    }

    /// Drops all peer traffic (quorum datagrams, or VRRP with keepalived)
    /// to and from `node` at the switch; the client and the API still
    /// reach it. Returns what was cut (`None`: vipd in lease mode has no
    /// peer traffic, nothing changed).
    pub fn cut_peers(&self, node: &str) -> Result<Option<cluster::PeerTraffic>, LabError> {
        let Some(traffic) = self.peer_traffic() else {
            return Ok(None);
        };
        let rules = cluster::peer_cut_rules(PEER_TABLE, &self.topo.host(node).port, traffic);
        self.topo.switch.nft(&rules)?;
        Ok(Some(traffic))
    }

    /// `percent` % random loss of all peer traffic between any two hosts,
    /// at the switch (`None`: no peer traffic, nothing changed).
    pub fn lossy_peers(&self, percent: u8) -> Result<Option<cluster::PeerTraffic>, LabError> {
        let Some(traffic) = self.peer_traffic() else {
            return Ok(None);
        };
        let rules = cluster::peer_loss_rules(PEER_TABLE, percent, traffic);
        self.topo.switch.nft(&rules)?;
        Ok(Some(traffic))
    }

    /// Removes the peer-traffic faults ([`Lab::cut_peers`],
    /// [`Lab::lossy_peers`]) from the switch.
    pub fn clear_peer_rules(&self) -> Result<(), LabError> {
        Ok(self.topo.switch.nft(&format!(
            "table bridge {PEER_TABLE}\ndelete table bridge {PEER_TABLE}\n"
        ))?)
    }

    /// Removes the lab's nftables tables from `node` (cut and loss).
    pub fn clear_node_rules(&self, node: &str) -> Result<(), LabError> {
        let rules = "table inet vipdlabcut\ndelete table inet vipdlabcut\ntable inet vipdlabloss\ndelete table inet vipdlabloss\n";
        Ok(self.topo.host(node).ns.nft(rules)?)
    }

    /// The API down for everyone: etcd stopped (data kept), or every
    /// packet to the test server dropped in `api` ([`crate::api`]).
    pub fn api_down(&mut self) -> Result<(), LabError> {
        self.api.down(&self.topo.host("api").ns)
    }

    /// Undoes [`Lab::api_down`] (etcd: returns once it answers).
    pub fn api_up(&mut self) -> Result<(), LabError> {
        self.api.up(&self.topo.host("api").ns)
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

    /// Deletes from `node` every lab address it still has: the VIP and the
    /// Service addresses (what a reboot loses).
    pub fn forget_addresses(&self, node: &str) -> Result<(), LabError> {
        let host = self.topo.host(node);
        let ours: Vec<IpAddr> = host
            .addresses()?
            .into_iter()
            .filter(|a| {
                *a == self.vip
                    || self
                        .services
                        .as_ref()
                        .is_some_and(|s| s.addresses().contains(a))
            })
            .collect();
        for a in ours {
            let len = if a.is_ipv6() { 128 } else { 32 };
            host.ns
                .ip(&["addr", "del", &format!("{a}/{len}"), "dev", "eth0"])?;
        }
        Ok(())
    }

    /// Back to a clean slate after a run that did not end with one holder
    /// serving the client, so one bad run does not poison the next: every
    /// daemon SIGKILLed, every fault healed, the VIP and the Service
    /// addresses removed everywhere, the API up, every daemon started again.
    pub fn reset(&mut self) -> Result<(), LabError> {
        let nodes = self.nodes();
        for n in &nodes {
            self.sigkill(n)?;
            self.clear_node_rules(n)?;
            self.topo.host(n).link_up()?;
            self.forget_addresses(n)?;
        }
        self.kill_witness();
        self.topo.heal_partition()?;
        self.clear_peer_rules()?;
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

    /// Claims of the VIP seen on the wire so far.
    pub fn claims(&self) -> Vec<Claim> {
        self.wire.claims()
    }

    /// Claims of `addr` (a Service address) seen on the wire so far.
    pub fn claims_of(&self, addr: IpAddr) -> Vec<Claim> {
        self.wire.claims_of(addr)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn coordination_lists_parse_without_repeats_and_name_the_known_modes() {
        assert_eq!(
            Coordination::parse_list("lease, quorum,lease").unwrap(),
            [Coordination::Lease, Coordination::Quorum]
        );
        assert_eq!(
            Coordination::parse_list("quorum").unwrap(),
            [Coordination::Quorum]
        );
        let err = Coordination::parse_list("lease,raft").unwrap_err();
        assert!(err.contains("raft") && err.contains("quorum"), "{err}");
        assert!(Coordination::parse_list(" , ").is_err());
    }

    #[test]
    fn variants_run_vipd_once_per_coordination_and_keepalived_once() {
        let v = Variant::all(
            &[Implementation::Vipd, Implementation::Keepalived],
            &[Coordination::Lease, Coordination::Quorum],
        );
        let labels: Vec<String> = v.iter().map(|v| v.label(true)).collect();
        assert_eq!(labels, ["vipd lease", "vipd quorum", "keepalived"]);
        let names: Vec<&str> = v.iter().map(|v| v.coordination_name()).collect();
        assert_eq!(names, ["lease", "quorum", "vrrp"]);
        // Lease-only runs keep their old names.
        let v = Variant::all(&[Implementation::Vipd], &[Coordination::Lease]);
        assert_eq!(v[0].label(false), "vipd");
    }
}
