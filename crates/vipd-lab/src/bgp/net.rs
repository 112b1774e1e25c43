//! The BGP lab's network and processes: a router namespace between the
//! client and the nodes, real `vipd run` processes announcing the VIP over
//! BGP, a poller recording the router's kernel route, the client's prober.
//!
//! ```text
//!   [client 198.51.100.50] ──eth0══eth1── [r1 198.51.100.1 | 192.0.2.1] ──eth0── br0 [sw]
//!        default via r1                     FRR/BIRD, ECMP, L4 hash          │  │  │
//!                                                                     n1 .11  n2 .12  …
//!                                          each node: vipd (BGP, VIP on lo), responder :8080,
//!                                          health target :18080
//! ```
//! The client has its own link to the router and another subnet, so every
//! probe crosses the router's ECMP route. n1 peers without BFD, the others
//! with BFD 300 ms × 3 (both sides), so one lab serves both kinds of
//! scenario. Every name carries the run's prefix; guards (drop order of
//! the fields) remove everything, on error and on Ctrl-C too.

use super::Error;
use crate::cluster::Daemon;
use netlab::probe::{LabClock, Responder};
use netlab::router::{
    kernel_next_hops, Family, Neighbor, Prefix, Router, RouterConfig, RouterKind,
};
use netlab::{NetNs, Topology, TopologyBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::measure::RouteLog;

/// The VIP every node announces (a /32 from TEST-NET-3).
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The router's address on the node LAN.
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The router's address on the client's link.
pub const ROUTER_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The client's address.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 50);
/// The router's AS.
pub const ROUTER_AS: u32 = 65000;
/// The nodes' AS.
pub const NODE_AS: u32 = 65001;
/// The port of each node's responder (what the client probes).
pub const SERVICE_PORT: u16 = 8080;
/// The port of each node's health target (vipd's TCP health check).
pub const HEALTH_PORT: u16 = 18080;
/// BGP hold time offered by both sides, seconds (keepalive a third).
pub const HOLD_TIME_S: u16 = 9;
/// BFD timers of the BFD nodes: rx ms, tx ms, multiplier.
pub const BFD: (u32, u32, u8) = (300, 300, 3);
/// How often the poller reads the router's kernel route.
pub const POLL: Duration = Duration::from_millis(10);

/// Node `i`'s (1-based) address: 192.0.2.(10 + i).
pub fn node_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        192,
        0,
        2,
        u8::try_from(10 + i).unwrap_or(u8::MAX),
    ))
}

/// True when node `i` (1-based) runs BFD: every node but n1.
pub fn node_has_bfd(i: usize) -> bool {
    i != 1
}

/// kube-vip's `bgp_peers` value for a node (`ADDR:AS`, and BFD as the
/// seventh field `true;RX;TX;MULT` on BFD nodes).
pub fn peers_value(bfd: bool) -> String {
    let base = format!("{ROUTER_IP}:{ROUTER_AS}");
    if bfd {
        format!("{base}:::::true;{};{};{}", BFD.0, BFD.1, BFD.2)
    } else {
        base
    }
}

/// Which router implementation the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RouterChoice {
    /// FRR (zebra, bgpd, bfdd; Debian `frr`).
    Frr,
    /// BIRD 2 (Debian `bird2`).
    Bird,
}

impl RouterChoice {
    /// netlab's kind.
    pub fn kind(self) -> RouterKind {
        match self {
            RouterChoice::Frr => RouterKind::Frr,
            RouterChoice::Bird => RouterKind::Bird,
        }
    }

    /// The Debian package.
    pub fn package(self) -> &'static str {
        match self {
            RouterChoice::Frr => "frr",
            RouterChoice::Bird => "bird2",
        }
    }

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            RouterChoice::Frr => "frr",
            RouterChoice::Bird => "bird",
        }
    }
}

/// Records the router's kernel next hops for the VIP every [`POLL`] on its
/// own thread; stops and joins when dropped.
#[derive(Debug)]
struct RoutePoller {
    log: Arc<Mutex<RouteLog>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl RoutePoller {
    fn start(netns: String, clock: LabClock) -> Result<RoutePoller, Error> {
        let log = Arc::new(Mutex::new(RouteLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        let prefix = Prefix::host(IpAddr::V4(VIP));
        let handle = std::thread::Builder::new()
            .name("vipd-lab-bgp-routes".into())
            .spawn(move || {
                let mut next = clock.now();
                while !s.load(Ordering::Relaxed) {
                    let t = clock.now();
                    // A failed read (the namespace going away at the end)
                    // records nothing rather than a false "no route".
                    if let Ok(hops) = kernel_next_hops(&netns, prefix) {
                        if let Ok(mut g) = l.lock() {
                            g.record(t, hops);
                        }
                    }
                    next += POLL;
                    let now = clock.now();
                    if next > now {
                        std::thread::sleep(next - now);
                    } else {
                        next = now;
                    }
                }
            })
            .map_err(|source| Error::Io {
                what: "route poller thread".into(),
                source,
            })?;
        Ok(RoutePoller {
            log,
            stop,
            handle: Some(handle),
        })
    }

    fn snapshot(&self) -> RouteLog {
        self.log.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn reset(&self) {
        if let Ok(mut g) = self.log.lock() {
            *g = RouteLog::default();
        }
    }
}

impl Drop for RoutePoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What [`BgpLab::build`] needs.
#[derive(Debug, Clone)]
pub struct BgpLabConfig {
    /// Nodes n1..nN.
    pub nodes: usize,
    /// The router implementation.
    pub router: RouterChoice,
    /// This vipd executable.
    pub exe: PathBuf,
    /// Where logs go.
    pub run_dir: PathBuf,
    /// Namespace name prefix (unique per run).
    pub prefix: String,
}

/// The running BGP lab. Fields drop in declaration order: the daemons and
/// threads first, then the router, then the namespaces.
#[derive(Debug)]
pub struct BgpLab {
    daemons: Vec<Daemon>,
    health: Vec<Option<Responder>>,
    poller: Option<RoutePoller>,
    /// Held for their lifetime: each node's answer to the client's probes.
    _responders: Vec<Responder>,
    router: Router,
    client: NetNs,
    topo: Topology,
    cfg: BgpLabConfig,
    clock: LabClock,
}

impl BgpLab {
    /// Builds the namespaces, starts the router and each node's responder
    /// and health target (no vipd yet).
    pub fn build(cfg: BgpLabConfig) -> Result<BgpLab, Error> {
        let clock = LabClock::new();
        let mut b = TopologyBuilder::new(&cfg.prefix).host("r1", &[(IpAddr::V4(ROUTER_IP), 24)]);
        for i in 1..=cfg.nodes {
            b = b.host(&format!("n{i}"), &[(node_ip(i), 24)]);
        }
        let topo = b.build()?;
        // The client's own link to the router: another subnet, so nothing
        // reaches a node except through the router's route.
        for a in [ROUTER_CLIENT_IP, CLIENT_IP] {
            netlab::check_doc_addr(IpAddr::V4(a))?;
        }
        let client = NetNs::new(&format!("{}-client", cfg.prefix))?;
        let r1 = &topo.host("r1").ns;
        r1.ip(&[
            "link",
            "add",
            "eth1",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            client.name(),
        ])?;
        r1.ip(&[
            "addr",
            "add",
            &format!("{ROUTER_CLIENT_IP}/24"),
            "dev",
            "eth1",
        ])?;
        r1.ip(&["link", "set", "eth1", "up"])?;
        client.ip(&["addr", "add", &format!("{CLIENT_IP}/24"), "dev", "eth0"])?;
        client.ip(&["link", "set", "eth0", "up"])?;
        client.ip(&[
            "route",
            "add",
            "default",
            "via",
            &ROUTER_CLIENT_IP.to_string(),
        ])?;
        r1.sysctl("net.ipv4.ip_forward", "1")?;
        // ECMP by 5-tuple: every probe is a new connection (a new source
        // port), so probes spread over every path (the default hashes on
        // addresses only, and one client would see one node).
        r1.sysctl("net.ipv4.fib_multipath_hash_policy", "1")?;
        r1.sysctl("net.ipv4.conf.all.send_redirects", "0")?;
        r1.sysctl("net.ipv4.conf.eth0.send_redirects", "0")?;
        let client_net = format!("{}/24", Ipv4Addr::new(198, 51, 100, 0));
        for i in 1..=cfg.nodes {
            topo.host(&format!("n{i}")).ns.ip(&[
                "route",
                "add",
                &client_net,
                "via",
                &ROUTER_IP.to_string(),
            ])?;
        }
        let mut rc = RouterConfig::new(cfg.router.kind(), r1.name(), ROUTER_IP, ROUTER_AS);
        rc.listen = vec![IpAddr::V4(ROUTER_IP)];
        rc.max_paths = u8::try_from(cfg.nodes).unwrap_or(u8::MAX);
        rc.install_kernel = true;
        for i in 1..=cfg.nodes {
            let mut nb = Neighbor::new(node_ip(i), NODE_AS).passive();
            nb.hold_time = HOLD_TIME_S;
            nb.keepalive = HOLD_TIME_S / 3;
            if node_has_bfd(i) {
                nb = nb.bfd(BFD.0, BFD.1, BFD.2);
            }
            rc.neighbors.push(nb);
        }
        let router = Router::spawn(rc)?;
        let mut responders = Vec::new();
        let mut health = Vec::new();
        for i in 1..=cfg.nodes {
            let name = format!("n{i}");
            let ns = &topo.host(&name).ns;
            responders.push(Responder::start(ns, &name, SERVICE_PORT)?);
            health.push(Some(Responder::start(ns, &name, HEALTH_PORT)?));
        }
        std::fs::create_dir_all(&cfg.run_dir).map_err(|source| Error::Io {
            what: format!("create {}", cfg.run_dir.display()),
            source,
        })?;
        let daemons = (1..=cfg.nodes)
            .map(|i| Daemon::new(format!("n{i}"), cfg.run_dir.join(format!("n{i}.log"))))
            .collect();
        let poller = Some(RoutePoller::start(r1.name().to_string(), clock)?);
        Ok(BgpLab {
            daemons,
            health,
            poller,
            _responders: responders,
            router,
            client,
            topo,
            cfg,
            clock,
        })
    }

    /// The lab's clock (route log and probes share it).
    pub fn clock(&self) -> LabClock {
        self.clock
    }

    /// Node count.
    pub fn nodes(&self) -> usize {
        self.cfg.nodes
    }

    /// The router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The router, mutably (restart).
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// The client's namespace.
    pub fn client(&self) -> &NetNs {
        &self.client
    }

    /// Where the logs are.
    pub fn run_dir(&self) -> &Path {
        &self.cfg.run_dir
    }

    /// The route history so far.
    pub fn routes(&self) -> RouteLog {
        self.poller
            .as_ref()
            .map(RoutePoller::snapshot)
            .unwrap_or_default()
    }

    /// Forgets the route history (each run starts a fresh one).
    pub fn reset_routes(&self) {
        if let Some(p) = &self.poller {
            p.reset();
        }
    }

    /// Every node's address.
    pub fn all_hops(&self) -> Vec<IpAddr> {
        (1..=self.cfg.nodes).map(node_ip).collect()
    }

    fn daemon(&mut self, i: usize) -> Result<&mut Daemon, Error> {
        self.daemons
            .get_mut(i.wrapping_sub(1))
            .ok_or_else(|| Error::Setup(format!("no node n{i}")))
    }

    /// Starts `vipd run` on node `i` with kube-vip's BGP environment (and
    /// nothing of the lab's own environment).
    pub fn start_vipd(&mut self, i: usize) -> Result<(), Error> {
        let me = node_ip(i).to_string();
        let exe = self.cfg.exe.display().to_string();
        let env = [
            format!("PATH={}", std::env::var("PATH").unwrap_or_default()),
            "cp_enable=true".into(),
            format!("address={VIP}"),
            "vip_interface=lo".into(),
            format!("vip_nodename=n{i}"),
            "bgp_enable=true".into(),
            format!("bgp_routerid={me}"),
            format!("bgp_as={NODE_AS}"),
            format!("bgp_peers={}", peers_value(node_has_bfd(i))),
            format!("bgp_hold_time={HOLD_TIME_S}"),
            format!("bgp_keepalive_interval={}", HOLD_TIME_S / 3),
            format!("prometheus_server={me}:2112"),
            format!("VIPD_HEALTH_CHECKS=tcp://127.0.0.1:{HEALTH_PORT}"),
            "VIPD_HEALTH_CHECK_PERIOD=0.2".into(),
            "VIPD_HEALTH_CHECK_TIMEOUT=0.2".into(),
            "VIPD_HEALTH_CHECK_FAILURE_THRESHOLD=2".into(),
            "vip_loglevel=info".into(),
        ];
        // `env -i` execs vipd, so the slot's pid is vipd's own.
        let mut args = vec!["-i".to_string()];
        args.extend(env);
        args.extend([exe, "run".into()]);
        let t = self.clock.now();
        let ns_name = format!("n{i}");
        let d = self
            .daemons
            .get_mut(i.wrapping_sub(1))
            .ok_or_else(|| Error::Setup(format!("no node n{i}")))?;
        d.spawn(
            &self.topo.host(&ns_name).ns,
            Path::new("/usr/bin/env"),
            &args,
            t,
        )?;
        Ok(())
    }

    /// True while node `i`'s vipd runs.
    pub fn running(&mut self, i: usize) -> bool {
        self.daemon(i).is_ok_and(|d| d.running())
    }

    /// The last lines of node `i`'s log.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let path = self.cfg.run_dir.join(format!("n{i}.log"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let v: Vec<&str> = text.lines().rev().take(lines).collect();
        v.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// SIGTERM to node `i`'s vipd (it withdraws, then exits).
    pub fn sigterm(&mut self, i: usize) -> Result<(), Error> {
        self.daemon(i)?.signal("TERM")?;
        Ok(())
    }

    /// Waits up to `timeout` for node `i`'s vipd to exit; SIGKILLs it after.
    pub fn reap(&mut self, i: usize, timeout: Duration) -> Result<(), Error> {
        let clock = self.clock;
        let d = self.daemon(i)?;
        if d.wait_exit(clock, timeout).is_none() {
            d.sigkill();
        }
        Ok(())
    }

    /// SIGKILL to node `i`'s vipd (its address guard survives, as after a
    /// process crash).
    pub fn sigkill(&mut self, i: usize) -> Result<(), Error> {
        self.daemon(i)?.sigkill();
        Ok(())
    }

    /// Node `i`'s link down (`up` false) or up.
    pub fn link(&self, i: usize, up: bool) -> Result<(), Error> {
        let h = self.topo.host(&format!("n{i}"));
        if !up {
            return Ok(h.link_down()?);
        }
        h.link_up()?;
        // Setting a link down flushes the routes through it: the route back
        // to the client comes again with the link (as a managed host's
        // network configuration would restore it).
        h.ns.ip(&[
            "route",
            "replace",
            &format!("{}/24", Ipv4Addr::new(198, 51, 100, 0)),
            "via",
            &ROUTER_IP.to_string(),
        ])?;
        Ok(())
    }

    /// Node `i`'s health target closed (`up` false) or listening again.
    pub fn health(&mut self, i: usize, up: bool) -> Result<(), Error> {
        let name = format!("n{i}");
        let slot = self
            .health
            .get_mut(i.wrapping_sub(1))
            .ok_or_else(|| Error::Setup(format!("no node {name}")))?;
        if up {
            if slot.is_none() {
                *slot = Some(Responder::start(
                    &self.topo.host(&name).ns,
                    &name,
                    HEALTH_PORT,
                )?);
            }
        } else {
            *slot = None;
        }
        Ok(())
    }

    /// Next hops of the VIP in the router's BGP table (its CLI).
    pub fn rib_hops(&self) -> Result<Vec<IpAddr>, Error> {
        let vip = Prefix::host(IpAddr::V4(VIP));
        let mut hops: Vec<IpAddr> = self
            .router
            .routes(Family::Ipv4)?
            .into_iter()
            .filter(|e| e.prefix == vip)
            .flat_map(|e| e.next_hops)
            .collect();
        hops.sort();
        hops.dedup();
        Ok(hops)
    }

    /// Next hops of the VIP in the router's kernel table, read now.
    pub fn kernel_hops(&self) -> Result<Vec<IpAddr>, Error> {
        let mut hops = kernel_next_hops(
            self.topo.host("r1").ns.name(),
            Prefix::host(IpAddr::V4(VIP)),
        )?;
        hops.sort();
        hops.dedup();
        Ok(hops)
    }

    /// True when the router reports BFD Up with every BFD node.
    pub fn bfd_all_up(&self) -> bool {
        let Ok(peers) = self.router.bfd_peers() else {
            return false;
        };
        (1..=self.cfg.nodes).filter(|i| node_has_bfd(*i)).all(|i| {
            peers
                .iter()
                .any(|p| p.peer == node_ip(i) && p.state == netlab::router::BfdState::Up)
        })
    }

    /// The router's log tail (for failure messages).
    pub fn router_log(&self) -> String {
        self.router.log_tail()
    }

    /// The router's kernel-table query, for the report.
    pub fn route_source(&self) -> String {
        format!(
            "router kernel table (`ip -n {} route show {VIP}/32`)",
            self.topo.host("r1").ns.name()
        )
    }
}
