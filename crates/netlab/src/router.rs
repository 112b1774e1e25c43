//! Real BGP routers from Debian (gobgpd, BIRD 2, FRR) as peers in test namespaces.
//!
//! A [`Router`] is a guard around one router instance started inside a
//! namespace the test created: its configuration is rendered from a
//! [`RouterConfig`], every file it uses (config, control socket, pid file,
//! log) lives in its own temporary directory, and it is queried only through
//! the router's **own CLI** (`gobgp -j`, `birdc`, `vtysh ... json`), so a test
//! sees what an operator of that router would see. Dropping the guard
//! SIGKILLs every daemon's process group, reaps them and removes the
//! directory, also when the test panics.
//!
//! ```text
//!   test ──RouterConfig──▶ Router::spawn ──ip netns exec NS──▶ gobgpd | bird | zebra+bfdd+bgpd
//!                               │                                   ▲
//!                               └── routes()/neighbor_state() ──CLI─┘ (unix socket in DIR)
//! ```
//!
//! All control sockets are unix sockets in the guard's directory, so the CLIs
//! run from the caller's namespace without an `ip netns exec` hop (which costs
//! a mount-namespace setup per call) and several instances never collide on a
//! TCP port. Nothing is configured in the host's namespace: daemons start
//! only through `ip netns exec`.
//!
//! Which router supports what is in [`RouterKind`]'s documentation; asking
//! for a feature a router does not have is a [`RouterError::Unsupported`],
//! never silently ignored.

mod bird;
mod frr;
mod gobgp;

use crate::ns::check_doc_addr;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a (re)started router may take until its CLI answers.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long [`Router::stop`] waits after SIGTERM before it SIGKILLs.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Poll interval of [`Router::wait_for`]: one CLI query costs a few
/// milliseconds (measured in `tests/router.rs`), so 10 ms keeps the timing
/// error of "route gone at the router" near the query cost itself.
pub const POLL: Duration = Duration::from_millis(10);

/// Which router implementation runs.
///
/// | feature                     | gobgp | bird | frr |
/// |-----------------------------|-------|------|-----|
/// | IPv4/IPv6 unicast, passive, MD5, multihop, timers | yes | yes | yes |
/// | BFD ([`Neighbor::bfd`])     | no    | yes (timers per interface) | yes (per peer) |
/// | ECMP in its RIB (`max_paths`) | no  | yes (`merge paths`, kernel export) | yes (`maximum-paths`) |
/// | routes into the namespace's kernel table (`install_kernel`) | no | yes (kernel protocol) | yes (zebra) |
/// | [`Router::announce`]/[`Router::withdraw`] | yes (`gobgp global rib`) | no | yes (`network`) |
/// | [`Router::bfd_peers`]       | no    | yes (no diagnostic) | yes (state + diagnostic) |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouterKind {
    /// `gobgpd` 3.x (Debian `gobgpd`), CLI `gobgp`.
    Gobgp,
    /// BIRD 2 (Debian `bird2`), CLI `birdc`.
    Bird,
    /// FRR 8 (Debian `frr`): `zebra`, `bgpd`, `bfdd` when BFD is used; CLI `vtysh`.
    Frr,
}

impl RouterKind {
    /// Binaries this implementation needs, with the Debian package holding them.
    fn binaries(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RouterKind::Gobgp => &[(gobgp::GOBGPD_BIN, "gobgpd"), (gobgp::GOBGP_BIN, "gobgpd")],
            RouterKind::Bird => &[(bird::BIRD_BIN, "bird2"), (bird::BIRDC_BIN, "bird2")],
            RouterKind::Frr => &[
                (frr::ZEBRA_BIN, "frr"),
                (frr::BGPD_BIN, "frr"),
                (frr::BFDD_BIN, "frr"),
                (frr::VTYSH_BIN, "frr"),
            ],
        }
    }

    /// True when every binary this implementation needs is installed
    /// (tests skip with a message otherwise).
    pub fn installed(self) -> bool {
        self.binaries().iter().all(|(b, _)| Path::new(b).exists())
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RouterKind::Gobgp => "gobgp",
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
        })
    }
}

/// Why a router could not be started, configured or queried.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A binary of the implementation is not installed.
    #[error("{path} not found: apt-get install {package}")]
    MissingBinary {
        /// The binary's path.
        path: &'static str,
        /// The Debian package holding it.
        package: &'static str,
    },
    /// An address outside the documentation ranges, or a helper command failed.
    #[error(transparent)]
    Lab(#[from] crate::Error),
    /// The configuration cannot be rendered (bad password characters, no neighbour family...).
    #[error("invalid {kind} router configuration: {reason}")]
    Config {
        /// The implementation.
        kind: RouterKind,
        /// What is wrong.
        reason: String,
    },
    /// The implementation has no such feature (see [`RouterKind`]).
    #[error("{kind} does not support {feature}")]
    Unsupported {
        /// The implementation.
        kind: RouterKind,
        /// The feature asked for.
        feature: &'static str,
    },
    /// Filesystem or process trouble (directory, log file, spawn, signal).
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A daemon exited during start-up.
    #[error("{daemon} exited during start-up ({status}); log tail:\n{log}")]
    Exited {
        /// Daemon name (`bgpd`, `bird`...).
        daemon: &'static str,
        /// Exit status as text.
        status: String,
        /// The last lines the router logged.
        log: String,
    },
    /// A daemon's CLI did not answer within [`READY_TIMEOUT`].
    #[error("{daemon} not answering its CLI after {timeout:?}; log tail:\n{log}")]
    NotReady {
        /// Daemon name.
        daemon: &'static str,
        /// How long we waited.
        timeout: Duration,
        /// The last lines the router logged.
        log: String,
    },
    /// A query was made while the router is stopped.
    #[error("{kind} router in {netns} is not running")]
    NotRunning {
        /// The implementation.
        kind: RouterKind,
        /// Its namespace.
        netns: String,
    },
    /// The CLI answered something we cannot read.
    #[error("cannot parse `{cmd}` output: {reason}; output starts: {excerpt}")]
    Parse {
        /// The command line.
        cmd: String,
        /// What did not fit.
        reason: String,
        /// The first few hundred characters of the output.
        excerpt: String,
    },
    /// The router does not know this neighbour.
    #[error("{kind} router has no neighbour {addr}")]
    NoSuchNeighbor {
        /// The implementation.
        kind: RouterKind,
        /// The neighbour asked for.
        addr: IpAddr,
    },
    /// A [`Router::wait_for`]-style condition did not hold in time.
    #[error("{what} not reached within {timeout:?}; last seen: {last}; log tail:\n{log}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long we waited.
        timeout: Duration,
        /// The last query result, as text.
        last: String,
        /// The last lines the router logged.
        log: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RouterError {
    let what = what.into();
    move |source| RouterError::Io { what, source }
}

/// An address family (AFI with SAFI unicast).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 unicast.
    Ipv4,
    /// IPv6 unicast.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::Ipv4
        } else {
            Family::Ipv6
        }
    }
}

/// An IP prefix such as `203.0.113.10/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    /// The network address as written (host bits are not cleared).
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
}

impl Prefix {
    /// A host route (`/32` or `/128`) for `addr`.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// The prefix's family.
    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Error of [`Prefix::from_str`].
#[derive(Debug, thiserror::Error)]
#[error("not a prefix: {0:?}")]
pub struct PrefixParseError(String);

impl FromStr for Prefix {
    type Err = PrefixParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || PrefixParseError(s.to_string());
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(bad());
        }
        Ok(Prefix { addr, len })
    }
}

/// BFD timers for one neighbour (RFC 5880 §6.8.1: desired min TX, required
/// min RX, detect multiplier). Detection time at the peer is about
/// `multiplier × max(our tx, its rx)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdTimers {
    /// Required minimum receive interval, milliseconds.
    pub rx_ms: u32,
    /// Desired minimum transmit interval, milliseconds.
    pub tx_ms: u32,
    /// Detect multiplier.
    pub multiplier: u8,
}

/// One BGP neighbour of the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbour's address (documentation ranges only).
    pub address: IpAddr,
    /// Its AS number (4-octet).
    pub remote_as: u32,
    /// Only accept connections, never connect. Our speaker usually connects
    /// to the router, so either works; `passive` makes the test exercise the
    /// speaker's connect path.
    pub passive: bool,
    /// TCP MD5 signature (RFC 2385) key. Letters, digits and `._-+=@:` only,
    /// at most 80 bytes (the kernel's limit), so it renders safely into every
    /// router's config syntax.
    pub md5_password: Option<String>,
    /// eBGP multihop with this TTL (`None`: directly connected).
    pub multihop: Option<u8>,
    /// Run BFD to this neighbour with these timers.
    pub bfd: Option<BfdTimers>,
    /// Exchange IPv4 unicast routes.
    pub ipv4_unicast: bool,
    /// Exchange IPv6 unicast routes.
    pub ipv6_unicast: bool,
    /// Hold time offered in OPEN, seconds (0 or ≥ 3, RFC 4271 §4.2).
    pub hold_time: u16,
    /// Keepalive interval, seconds.
    pub keepalive: u16,
}

impl Neighbor {
    /// An active neighbour with the family of its address, hold 9 s,
    /// keepalive 3 s (short, so a lost session shows quickly in tests).
    pub fn new(address: IpAddr, remote_as: u32) -> Neighbor {
        Neighbor {
            address,
            remote_as,
            passive: false,
            md5_password: None,
            multihop: None,
            bfd: None,
            ipv4_unicast: address.is_ipv4(),
            ipv6_unicast: address.is_ipv6(),
            hold_time: 9,
            keepalive: 3,
        }
    }

    /// The same neighbour, passive.
    pub fn passive(mut self) -> Neighbor {
        self.passive = true;
        self
    }

    /// The same neighbour with a TCP MD5 key.
    pub fn md5(mut self, password: &str) -> Neighbor {
        self.md5_password = Some(password.to_string());
        self
    }

    /// The same neighbour with BFD.
    pub fn bfd(mut self, rx_ms: u32, tx_ms: u32, multiplier: u8) -> Neighbor {
        self.bfd = Some(BfdTimers {
            rx_ms,
            tx_ms,
            multiplier,
        });
        self
    }
}

/// Everything needed to start one router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// The implementation.
    pub kind: RouterKind,
    /// The namespace to run in (created by the caller, with its addresses).
    pub netns: String,
    /// BGP identifier (a documentation IPv4 address, usually the router's own).
    pub router_id: Ipv4Addr,
    /// Local AS number.
    pub local_as: u32,
    /// The router's own addresses BGP uses as session source (at most one per
    /// family is used). gobgp binds exactly these; BIRD and FRR use them as
    /// the local/update-source address and listen on the whole namespace
    /// (FRR's `-l` would imply `-n`, no kernel routes).
    pub listen: Vec<IpAddr>,
    /// The neighbours.
    pub neighbors: Vec<Neighbor>,
    /// ECMP: how many equal paths per prefix to use (1 = no multipath).
    pub max_paths: u8,
    /// Install selected routes into the namespace's kernel table.
    pub install_kernel: bool,
}

impl RouterConfig {
    /// A config with no neighbours, no ECMP and no kernel routes.
    pub fn new(kind: RouterKind, netns: &str, router_id: Ipv4Addr, local_as: u32) -> Self {
        RouterConfig {
            kind,
            netns: netns.to_string(),
            router_id,
            local_as,
            listen: Vec::new(),
            neighbors: Vec::new(),
            max_paths: 1,
            install_kernel: false,
        }
    }

    /// The listen address of `family`, if any.
    fn local_addr(&self, family: Family) -> Option<IpAddr> {
        self.listen
            .iter()
            .copied()
            .find(|a| Family::of(*a) == family)
    }

    fn config_err(&self, reason: impl Into<String>) -> RouterError {
        RouterError::Config {
            kind: self.kind,
            reason: reason.into(),
        }
    }

    /// Checks what every implementation needs, then what this one supports.
    fn validate(&self) -> Result<(), RouterError> {
        check_doc_addr(IpAddr::V4(self.router_id))?;
        for a in &self.listen {
            check_doc_addr(*a)?;
        }
        if self.max_paths == 0 {
            return Err(self.config_err("max_paths must be at least 1"));
        }
        for n in &self.neighbors {
            check_doc_addr(n.address)?;
            if !n.ipv4_unicast && !n.ipv6_unicast {
                return Err(self.config_err(format!("neighbour {} has no family", n.address)));
            }
            if n.hold_time != 0 && n.hold_time < 3 {
                return Err(self.config_err("hold time must be 0 or at least 3 s (RFC 4271)"));
            }
            if let Some(p) = &n.md5_password {
                let ok = !p.is_empty()
                    && p.len() <= 80
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-+=@:".contains(c));
                if !ok {
                    return Err(
                        self.config_err("md5 password: 1-80 of letters, digits and ._-+=@: only")
                    );
                }
            }
            if let Some(b) = n.bfd {
                if b.rx_ms == 0 || b.tx_ms == 0 || b.multiplier == 0 {
                    return Err(self.config_err("BFD intervals and multiplier must be > 0"));
                }
            }
        }
        match self.kind {
            RouterKind::Gobgp => {
                let unsupported = |feature| RouterError::Unsupported {
                    kind: self.kind,
                    feature,
                };
                if self.neighbors.iter().any(|n| n.bfd.is_some()) {
                    return Err(unsupported("BFD"));
                }
                if self.install_kernel {
                    return Err(unsupported("installing routes into the kernel (no zebra)"));
                }
                if self.max_paths > 1 {
                    return Err(unsupported("ECMP (it selects one best path)"));
                }
            }
            RouterKind::Bird => {
                // BIRD's BFD options live per interface: one set for all.
                let mut timers = self.neighbors.iter().filter_map(|n| n.bfd);
                if let Some(first) = timers.next() {
                    if timers.any(|t| t != first) {
                        return Err(self
                            .config_err("bird applies one set of BFD timers to every neighbour"));
                    }
                }
            }
            RouterKind::Frr => {}
        }
        Ok(())
    }
}

/// One path in a router's BGP table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RibEntry {
    /// The destination.
    pub prefix: Prefix,
    /// Next hops of this path (link-local IPv6 next hops are left out: without
    /// their interface they compare with nothing).
    pub next_hops: Vec<IpAddr>,
    /// The neighbour the path came from; `None` for a locally originated one.
    pub from_peer: Option<IpAddr>,
    /// The router selected this path as best.
    pub best: bool,
    /// The path is used in addition to the best one (ECMP; the best path
    /// itself is not flagged). Only FRR reports it; BIRD merges equal paths
    /// only when exporting to the kernel (see [`kernel_next_hops`]), so it
    /// and gobgp always say `false`.
    pub multipath: bool,
}

/// BGP session state (RFC 4271 §8.2.2) as the router's CLI reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Idle (also administratively down).
    Idle,
    /// Connect.
    Connect,
    /// Active (retrying, or passive and waiting).
    Active,
    /// OpenSent.
    OpenSent,
    /// OpenConfirm.
    OpenConfirm,
    /// Established.
    Established,
    /// Anything else the CLI printed (kept verbatim).
    Other(String),
}

impl SessionState {
    /// Maps a state word, case-insensitive (`ESTABLISHED`, `Established`, `Passive`...).
    fn from_word(s: &str) -> SessionState {
        match s.to_ascii_lowercase().as_str() {
            "idle" | "down" => SessionState::Idle,
            "connect" => SessionState::Connect,
            "active" | "passive" => SessionState::Active,
            "opensent" => SessionState::OpenSent,
            "openconfirm" => SessionState::OpenConfirm,
            "established" => SessionState::Established,
            _ => SessionState::Other(s.to_string()),
        }
    }

    /// True for Established.
    pub fn is_established(&self) -> bool {
        *self == SessionState::Established
    }
}

/// BFD session state (RFC 5880 §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BfdState {
    /// AdminDown.
    AdminDown,
    /// Down.
    Down,
    /// Init.
    Init,
    /// Up.
    Up,
    /// Anything else the CLI printed.
    Other(String),
}

impl BfdState {
    fn from_word(s: &str) -> BfdState {
        match s.to_ascii_lowercase().as_str() {
            "admindown" | "shutdown" => BfdState::AdminDown,
            "down" => BfdState::Down,
            "init" => BfdState::Init,
            "up" => BfdState::Up,
            _ => BfdState::Other(s.to_string()),
        }
    }
}

/// One BFD session as the router reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdPeer {
    /// The peer's address.
    pub peer: IpAddr,
    /// Session state.
    pub state: BfdState,
    /// Local diagnostic (RFC 5880 §4.1) as text, e.g. "control detection time
    /// expired"; `None` when the CLI does not report one (BIRD).
    pub diagnostic: Option<String>,
}

/// A CLI invocation: program and arguments.
type CliArgs = (&'static str, Vec<String>);
/// Reads one neighbour's state out of a CLI answer (`None`: unknown neighbour).
type NeighborParser = fn(&str, IpAddr) -> Result<Option<SessionState>, String>;
/// Reads the BFD sessions out of a CLI answer.
type BfdParser = fn(&str) -> Result<Vec<BfdPeer>, String>;

/// A daemon process of a running router.
#[derive(Debug)]
struct Daemon {
    name: &'static str,
    child: Child,
}

/// Daemon start-up order and arguments, rendered by the implementation module.
struct DaemonSpec {
    name: &'static str,
    bin: &'static str,
    args: Vec<String>,
}

/// A router instance owned by this guard.
///
/// Dropping it SIGKILLs every daemon's process group, waits for them and
/// removes its directory.
#[derive(Debug)]
pub struct Router {
    cfg: RouterConfig,
    dir: PathBuf,
    daemons: Vec<Daemon>,
}

impl Router {
    /// Validates `cfg`, writes the router's files into a fresh directory and
    /// starts it, waiting until its CLI answers. The namespace and its
    /// addresses must already exist. Needs root.
    pub fn spawn(cfg: RouterConfig) -> Result<Router, RouterError> {
        let mut r = Router::new(cfg)?;
        // On error `r` is dropped here: processes killed, directory removed.
        r.start()?;
        Ok(r)
    }

    /// Validates `cfg` and writes the router's files, without starting it.
    pub fn new(cfg: RouterConfig) -> Result<Router, RouterError> {
        for (path, package) in cfg.kind.binaries() {
            if !Path::new(path).exists() {
                return Err(RouterError::MissingBinary { path, package });
            }
        }
        cfg.validate()?;
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "netlab-{}-{}-{n}-{}",
            cfg.kind,
            std::process::id(),
            cfg.netns
        ));
        // A leftover of a crashed run with the same pid must not leak in.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let r = Router {
            cfg,
            dir,
            daemons: Vec::new(),
        };
        for (name, text) in r.config_files() {
            let path = r.dir.join(name);
            std::fs::write(&path, text).map_err(io_err(format!("write {}", path.display())))?;
        }
        if r.cfg.kind == RouterKind::Frr {
            frr::prepare_dir(&r.dir)?;
        }
        Ok(r)
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// The implementation.
    pub fn kind(&self) -> RouterKind {
        self.cfg.kind
    }

    /// The directory with the router's config, sockets, pid files and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pids of the running daemons.
    pub fn pids(&self) -> Vec<u32> {
        self.daemons.iter().map(|d| d.child.id()).collect()
    }

    /// True while every daemon is running.
    pub fn is_running(&mut self) -> bool {
        !self.daemons.is_empty()
            && self
                .daemons
                .iter_mut()
                .all(|d| matches!(d.child.try_wait(), Ok(None)))
    }

    fn config_files(&self) -> Vec<(&'static str, String)> {
        match self.cfg.kind {
            RouterKind::Gobgp => vec![(gobgp::CONFIG, gobgp::render(&self.cfg))],
            RouterKind::Bird => vec![(bird::CONFIG, bird::render(&self.cfg))],
            RouterKind::Frr => frr::render(&self.cfg),
        }
    }

    fn specs(&self) -> Vec<DaemonSpec> {
        match self.cfg.kind {
            RouterKind::Gobgp => gobgp::daemons(&self.dir),
            RouterKind::Bird => bird::daemons(&self.dir),
            RouterKind::Frr => frr::daemons(&self.cfg, &self.dir),
        }
    }

    fn log_path(&self, daemon: &str) -> PathBuf {
        self.dir.join(format!("{daemon}.log"))
    }

    /// Starts the daemons (in dependency order) and waits until each one's CLI
    /// answers. A no-op while running; after a partial failure it starts
    /// what is missing again from scratch.
    pub fn start(&mut self) -> Result<(), RouterError> {
        if self.is_running() {
            return Ok(());
        }
        self.kill_all();
        self.remove_stale_sockets()?;
        for spec in self.specs() {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path(spec.name))
                .map_err(io_err(format!("open {}.log", spec.name)))?;
            let log2 = log.try_clone().map_err(io_err("dup log"))?;
            let mut cmd = Command::new("ip");
            // `ip netns exec` setns()es and then execs the daemon, so the
            // child pid is the daemon itself.
            cmd.args(["netns", "exec", &self.cfg.netns, spec.bin])
                .args(&spec.args)
                // Its own process group, so Drop ends anything it forked too.
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            let child = cmd.spawn().map_err(io_err(format!("spawn {}", spec.bin)))?;
            tracing::debug!(router = %self.cfg.kind, netns = %self.cfg.netns, daemon = spec.name, pid = child.id(), "started");
            self.daemons.push(Daemon {
                name: spec.name,
                child,
            });
            // FRR: bgpd and bfdd register with zebra at start; waiting for
            // each daemon before the next keeps the order deterministic.
            self.wait_ready(spec.name, READY_TIMEOUT)?;
        }
        Ok(())
    }

    /// Ends the router gracefully: SIGTERM to every daemon (FRR's bgpd and
    /// gobgpd send a Cease NOTIFICATION, RFC 4486), then SIGKILL whatever is
    /// left after [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Result<(), RouterError> {
        self.signal_all(nix::sys::signal::Signal::SIGTERM);
        #[allow(clippy::disallowed_types)] // a wall-clock bound on child processes, not logic
        let start = std::time::Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            if self
                .daemons
                .iter_mut()
                .all(|d| !matches!(d.child.try_wait(), Ok(None)))
            {
                break;
            }
            std::thread::sleep(POLL);
        }
        self.kill_all();
        Ok(())
    }

    /// SIGKILLs every daemon (a crashed router: no NOTIFICATION, no BFD
    /// AdminDown) and reaps them.
    pub fn kill(&mut self) -> Result<(), RouterError> {
        self.kill_all();
        Ok(())
    }

    /// [`stop`](Self::stop) then [`start`](Self::start) with the same
    /// configuration. Routes added at run time ([`announce`](Self::announce))
    /// are gone afterwards.
    pub fn restart(&mut self) -> Result<(), RouterError> {
        self.stop()?;
        self.start()
    }

    /// A SIGKILLed daemon leaves its unix sockets behind; gobgpd refuses to
    /// start on an existing socket path ("address already in use") and a
    /// stale FRR vty socket would look like a ready daemon.
    fn remove_stale_sockets(&self) -> Result<(), RouterError> {
        use std::os::unix::fs::FileTypeExt;
        let entries =
            std::fs::read_dir(&self.dir).map_err(io_err(format!("list {}", self.dir.display())))?;
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_socket()).unwrap_or(false) {
                let path = e.path();
                std::fs::remove_file(&path)
                    .map_err(io_err(format!("remove stale {}", path.display())))?;
            }
        }
        Ok(())
    }

    fn signal_all(&mut self, sig: nix::sys::signal::Signal) {
        // Reverse start order: FRR's bgpd goes before zebra and bfdd.
        for d in self.daemons.iter().rev() {
            if let Ok(pid) = i32::try_from(d.child.id()) {
                // The group's id is the daemon's pid (process_group(0)).
                // Fails only when it is already gone.
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), sig);
            }
        }
    }

    fn kill_all(&mut self) {
        self.signal_all(nix::sys::signal::Signal::SIGKILL);
        for mut d in self.daemons.drain(..) {
            if let Err(e) = d.child.wait() {
                tracing::warn!(daemon = d.name, error = %e, "reaping router daemon");
            }
        }
    }

    fn running_or_err(&self) -> Result<(), RouterError> {
        if self.daemons.is_empty() {
            Err(RouterError::NotRunning {
                kind: self.cfg.kind,
                netns: self.cfg.netns.clone(),
            })
        } else {
            Ok(())
        }
    }

    #[allow(clippy::disallowed_types)] // a wall-clock bound on a child process, not logic
    fn wait_ready(&mut self, daemon: &'static str, timeout: Duration) -> Result<(), RouterError> {
        let start = std::time::Instant::now();
        loop {
            if let Some(d) = self.daemons.iter_mut().find(|d| d.name == daemon) {
                if let Ok(Some(status)) = d.child.try_wait() {
                    let log = self.log_tail();
                    self.kill_all();
                    return Err(RouterError::Exited {
                        daemon,
                        status: status.to_string(),
                        log,
                    });
                }
            }
            let ready = match self.cfg.kind {
                RouterKind::Gobgp => self.cli(gobgp::ready_args(&self.dir)).is_ok(),
                RouterKind::Bird => self.cli(bird::ready_args(&self.dir)).is_ok(),
                RouterKind::Frr => {
                    frr::ready(&self.dir, daemon)
                        && self.cli(frr::ready_args(&self.dir, daemon)).is_ok()
                }
            };
            if ready {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(RouterError::NotReady {
                    daemon,
                    timeout,
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the router's CLI (`program`, args) and returns stdout.
    fn cli(&self, (program, args): CliArgs) -> Result<String, RouterError> {
        let out = crate::ns::run(Command::new(program).args(&args).stdin(Stdio::null()))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The CLI command line [`routes`](Self::routes) runs for `family`, for
    /// reports and timing notes.
    pub fn routes_command(&self, family: Family) -> String {
        let (p, a) = self.routes_args(family);
        let mut s = p.to_string();
        for x in a {
            s.push(' ');
            s.push_str(&x);
        }
        s
    }

    fn routes_args(&self, family: Family) -> CliArgs {
        match self.cfg.kind {
            RouterKind::Gobgp => gobgp::rib_args(&self.dir, family),
            RouterKind::Bird => bird::rib_args(&self.dir, family),
            RouterKind::Frr => frr::rib_args(&self.dir, family),
        }
    }

    /// The router's BGP table for `family`, one entry per path, read from its CLI.
    pub fn routes(&self, family: Family) -> Result<Vec<RibEntry>, RouterError> {
        self.running_or_err()?;
        let args = self.routes_args(family);
        let cmd = self.routes_command(family);
        let out = self.cli(args)?;
        match self.cfg.kind {
            RouterKind::Gobgp => gobgp::parse_rib(&out),
            RouterKind::Bird => bird::parse_rib(&out, &self.cfg),
            RouterKind::Frr => frr::parse_rib(&out),
        }
        .map_err(|reason| parse_err(&cmd, reason, &out))
    }

    /// The session state with neighbour `addr`, from the router's CLI.
    pub fn neighbor_state(&self, addr: IpAddr) -> Result<SessionState, RouterError> {
        self.running_or_err()?;
        let no_such = RouterError::NoSuchNeighbor {
            kind: self.cfg.kind,
            addr,
        };
        let (args, parse): (_, NeighborParser) = match self.cfg.kind {
            RouterKind::Gobgp => (gobgp::neighbor_args(&self.dir), gobgp::parse_neighbor),
            RouterKind::Bird => {
                let Some(name) = bird::protocol_name(&self.cfg, addr) else {
                    return Err(no_such);
                };
                (bird::neighbor_args(&self.dir, &name), bird::parse_neighbor)
            }
            RouterKind::Frr => (frr::neighbor_args(&self.dir), frr::parse_neighbor),
        };
        let cmd = args.0.to_string() + " " + &args.1.join(" ");
        let out = self.cli(args)?;
        match parse(&out, addr) {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err(no_such),
            Err(reason) => Err(parse_err(&cmd, reason, &out)),
        }
    }

    /// BFD sessions as the router reports them (FRR: `show bfd peers json`;
    /// BIRD: `show bfd sessions`, without diagnostics).
    pub fn bfd_peers(&self) -> Result<Vec<BfdPeer>, RouterError> {
        self.running_or_err()?;
        let (args, parse): (_, BfdParser) = match self.cfg.kind {
            RouterKind::Gobgp => {
                return Err(RouterError::Unsupported {
                    kind: self.cfg.kind,
                    feature: "BFD",
                })
            }
            // No neighbour with BFD: no bfdd (FRR) or bfd protocol (BIRD) runs.
            _ if self.cfg.neighbors.iter().all(|n| n.bfd.is_none()) => return Ok(Vec::new()),
            RouterKind::Bird => (bird::bfd_args(&self.dir), bird::parse_bfd),
            RouterKind::Frr => (frr::bfd_args(&self.dir), frr::parse_bfd),
        };
        let cmd = args.0.to_string() + " " + &args.1.join(" ");
        let out = self.cli(args)?;
        parse(&out).map_err(|reason| parse_err(&cmd, reason, &out))
    }

    /// Originates `prefix` from this router (gobgp: `global rib add`, next
    /// hop self; FRR: `network` under the family, import check off).
    pub fn announce(&self, prefix: Prefix) -> Result<(), RouterError> {
        self.change_route(prefix, true)
    }

    /// Withdraws a prefix added with [`announce`](Self::announce).
    pub fn withdraw(&self, prefix: Prefix) -> Result<(), RouterError> {
        self.change_route(prefix, false)
    }

    fn change_route(&self, prefix: Prefix, add: bool) -> Result<(), RouterError> {
        check_doc_addr(prefix.addr)?;
        self.running_or_err()?;
        let args = match self.cfg.kind {
            RouterKind::Gobgp => gobgp::route_args(&self.dir, prefix, add),
            RouterKind::Frr => frr::route_args(&self.dir, &self.cfg, prefix, add),
            RouterKind::Bird => {
                return Err(RouterError::Unsupported {
                    kind: self.cfg.kind,
                    feature: "announce/withdraw (no run-time route injection)",
                })
            }
        };
        let out = self.cli(args)?;
        // vtysh reports configuration errors on stdout with exit status 0.
        if self.cfg.kind == RouterKind::Frr && !out.trim().is_empty() {
            return Err(RouterError::Config {
                kind: self.cfg.kind,
                reason: format!("vtysh refused `network {prefix}`: {}", out.trim()),
            });
        }
        Ok(())
    }

    /// Polls [`routes`](Self::routes) every [`POLL`] until `pred` holds, and
    /// returns the routes that satisfied it with the time it took. A failed
    /// query counts as "not yet" (a restarting router), and the last error is
    /// in the timeout message.
    #[allow(clippy::disallowed_types)] // a wall-clock bound on a child process, not logic
    pub fn wait_for(
        &self,
        family: Family,
        timeout: Duration,
        mut pred: impl FnMut(&[RibEntry]) -> bool,
    ) -> Result<(Vec<RibEntry>, Duration), RouterError> {
        let start = std::time::Instant::now();
        let mut last: String;
        loop {
            match self.routes(family) {
                Ok(r) if pred(&r) => return Ok((r, start.elapsed())),
                Ok(r) => last = format!("{r:?}"),
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() > timeout {
                return Err(RouterError::Timeout {
                    what: format!("{} route condition ({family:?})", self.cfg.kind),
                    timeout,
                    last,
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Polls until the session with `addr` is Established; returns how long it took.
    #[allow(clippy::disallowed_types)] // a wall-clock bound on a child process, not logic
    pub fn wait_established(
        &self,
        addr: IpAddr,
        timeout: Duration,
    ) -> Result<Duration, RouterError> {
        let start = std::time::Instant::now();
        let mut last: String;
        loop {
            match self.neighbor_state(addr) {
                Ok(s) if s.is_established() => return Ok(start.elapsed()),
                Ok(s) => last = format!("{s:?}"),
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() > timeout {
                return Err(RouterError::Timeout {
                    what: format!("{} session with {addr} Established", self.cfg.kind),
                    timeout,
                    last,
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// The last few KiB of every daemon's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for spec in self.specs() {
            let tail = read_tail(&self.log_path(spec.name), 3072);
            if !tail.is_empty() {
                out.push_str(&format!("--- {} ---\n{tail}\n", spec.name));
            }
        }
        out
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.kill_all();
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "removing router dir");
        }
    }
}

/// Next hops of `prefix` in namespace `netns`'s main kernel table
/// (`ip -n NS route show PREFIX`), multipath included; empty when there is no
/// such route. What a client behind the router is forwarded by.
pub fn kernel_next_hops(netns: &str, prefix: Prefix) -> Result<Vec<IpAddr>, RouterError> {
    let fam = if prefix.addr.is_ipv4() { "-4" } else { "-6" };
    let p = prefix.to_string();
    let out = crate::ns::run_ok("ip", &[fam, "-n", netns, "route", "show", &p])?;
    Ok(parse_kernel_next_hops(&out))
}

fn parse_kernel_next_hops(out: &str) -> Vec<IpAddr> {
    let mut hops = Vec::new();
    let mut it = out.split_whitespace();
    while let Some(w) = it.next() {
        if w == "via" {
            let mut next = it.next();
            // `via inet6 fe80::1` when the gateway's family differs (RFC 8950).
            if matches!(next, Some("inet") | Some("inet6")) {
                next = it.next();
            }
            if let Some(a) = next.and_then(|s| s.parse().ok()) {
                hops.push(a);
            }
        }
    }
    hops
}

fn parse_err(cmd: &str, reason: String, out: &str) -> RouterError {
    RouterError::Parse {
        cmd: cmd.to_string(),
        reason,
        excerpt: out.chars().take(400).collect(),
    }
}

fn read_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Keeps an IPv6 next hop only when it is not link-local (fe80::/10).
fn useful_next_hop(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => !v4.is_unspecified(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80 && !v6.is_unspecified(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parses_and_rejects() {
        let p: Prefix = "203.0.113.10/32".parse().expect("v4");
        assert_eq!(p, Prefix::host("203.0.113.10".parse().expect("ip")));
        assert_eq!(p.to_string(), "203.0.113.10/32");
        let p6: Prefix = "2001:db8:99::10/128".parse().expect("v6");
        assert_eq!(p6.family(), Family::Ipv6);
        assert!("203.0.113.10/33".parse::<Prefix>().is_err());
        assert!("203.0.113.10".parse::<Prefix>().is_err());
        assert!("x/1".parse::<Prefix>().is_err());
    }

    #[test]
    fn kernel_multipath_next_hops_are_all_read() {
        let out = "203.0.113.10 nhid 18 proto bgp metric 20 \n\tnexthop via 192.0.2.1 dev eth0 weight 1 \n\tnexthop via 192.0.2.3 dev eth0 weight 1 \n";
        assert_eq!(
            parse_kernel_next_hops(out),
            vec![
                "192.0.2.1".parse::<IpAddr>().expect("ip"),
                "192.0.2.3".parse().expect("ip")
            ]
        );
        assert_eq!(
            parse_kernel_next_hops("203.0.113.10 via inet6 2001:db8::1 dev eth0"),
            vec!["2001:db8::1".parse::<IpAddr>().expect("ip")]
        );
        assert!(parse_kernel_next_hops("").is_empty());
    }

    fn cfg(kind: RouterKind) -> RouterConfig {
        let mut c = RouterConfig::new(kind, "ns", Ipv4Addr::new(192, 0, 2, 1), 64500);
        c.neighbors
            .push(Neighbor::new("192.0.2.2".parse().expect("ip"), 64501));
        c
    }

    #[test]
    fn validation_refuses_what_a_router_cannot_do() {
        let mut c = cfg(RouterKind::Gobgp);
        c.neighbors[0].bfd = Some(BfdTimers {
            rx_ms: 100,
            tx_ms: 100,
            multiplier: 3,
        });
        assert!(matches!(
            c.validate(),
            Err(RouterError::Unsupported { feature: "BFD", .. })
        ));
        let mut c = cfg(RouterKind::Frr);
        c.neighbors[0].address = "10.0.0.1".parse().expect("ip");
        assert!(matches!(c.validate(), Err(RouterError::Lab(_))));
        let mut c = cfg(RouterKind::Bird);
        c.neighbors[0].md5_password = Some("has space".into());
        assert!(matches!(c.validate(), Err(RouterError::Config { .. })));
        let mut c = cfg(RouterKind::Frr);
        c.neighbors[0].hold_time = 2;
        assert!(c.validate().is_err());
        assert!(cfg(RouterKind::Frr).validate().is_ok());
    }
}
