//! The one way to drive real daemon processes in lab namespaces: the lab's
//! topology and a [`Daemon`] slot per node. [`crate::lab::Lab`] (the
//! product's lab) and the vipd test suites' clusters
//! (`crates/vipd/tests/common`, the Services benchmark) are built on these,
//! so a node is addressed, started, logged, signalled and killed the same
//! way everywhere.
//!
//! ```text
//!                 [PFX-sw: br0]
//!   ┌───────┬──────┬─────┼────── … ──┬──────────┐
//!  api     n1     n2    n3          nN        client
//!  .2     .11    .12   .13        .10+N      .50
//! ```
//! Addresses: 192.0.2.0/24 and 2001:db8::/64 only (documentation ranges).

use crate::LabError;
use netlab::{LabClock, NetNs, Topology, TopologyBuilder};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::Duration;

/// The API host's IPv4 address (etcd or the Kubernetes API test server).
pub const API_IP: &str = "192.0.2.2";
/// The API host's IPv6 address.
pub const API_IP6: &str = "2001:db8::2";
/// The client's IPv4 address.
pub const CLIENT_IP: &str = "192.0.2.50";
/// The client's IPv6 address.
pub const CLIENT_IP6: &str = "2001:db8::50";

/// The quorum witness's host and voter name (`vipd witness`, quorum mode
/// with two nodes).
pub const WITNESS: &str = "w";
/// The witness's IPv4 address (its quorum socket's too).
pub const WITNESS_IP: &str = "192.0.2.40";
/// The witness's IPv6 address.
pub const WITNESS_IP6: &str = "2001:db8::40";
/// UDP port of every voter's quorum socket (vipd's default).
pub const QUORUM_PORT: u16 = 7480;

/// Node names n1..n`count`.
pub fn node_names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("n{i}")).collect()
}

/// Builds the lab topology: `api`, then `nodes[i]` at .(11 + i) and
/// 2001:db8::(11 + i), then `client`, all on one bridge in the switch
/// namespace. Names are prefixed with `prefix` (unique per run).
pub fn topology(prefix: &str, nodes: &[&str]) -> Result<Topology, LabError> {
    topology_with_witness(prefix, nodes, false)
}

/// [`topology`], plus (`witness`) the quorum witness host [`WITNESS`] at
/// [`WITNESS_IP`], between the nodes and the client.
pub fn topology_with_witness(
    prefix: &str,
    nodes: &[&str],
    witness: bool,
) -> Result<Topology, LabError> {
    let addr = |a: String, len: u8| -> Result<(IpAddr, u8), LabError> {
        a.parse()
            .map(|ip| (ip, len))
            .map_err(|_| LabError::Setup(format!("bad address {a}")))
    };
    let pair = |v4: String, v6: String| -> Result<[(IpAddr, u8); 2], LabError> {
        Ok([addr(v4, 24)?, addr(v6, 64)?])
    };
    let mut b = TopologyBuilder::new(prefix).host("api", &pair(API_IP.into(), API_IP6.into())?);
    for (i, n) in nodes.iter().enumerate() {
        let last = 11 + i;
        b = b.host(
            n,
            &pair(format!("192.0.2.{last}"), format!("2001:db8::{last}"))?,
        );
    }
    if witness {
        b = b.host(WITNESS, &pair(WITNESS_IP.into(), WITNESS_IP6.into())?);
    }
    Ok(
        b.host("client", &pair(CLIENT_IP.into(), CLIENT_IP6.into())?)
            .build()?,
    )
}

/// The IPv4 address [`topology_with_witness`] gives node `index` (0-based).
pub fn node_ip(index: usize) -> String {
    format!("192.0.2.{}", 11 + index)
}

/// The `--peers` list of quorum mode: every node (`n1=192.0.2.11:7480`, in
/// the topology's addresses) and, with `witness`, [`WITNESS`]. The same
/// string on every voter, the witness included.
pub fn quorum_peers(nodes: &[&str], witness: bool) -> String {
    let mut v: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}={}:{QUORUM_PORT}", node_ip(i)))
        .collect();
    if witness {
        v.push(format!("{WITNESS}={WITNESS_IP}:{QUORUM_PORT}"));
    }
    v.join(",")
}

/// Writes a fresh shared quorum key to `path`: 32 bytes from the kernel's
/// random source, hex-encoded (64 characters, a newline), mode `mode`
/// (0o600 unless a non-root container must read it).
pub fn write_peer_key(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what: String| move |source| LabError::Io { what, source };
    let mut raw = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut raw))
        .map_err(io("read /dev/urandom".into()))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    // Replace, never append to, an older key.
    let _ = std::fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(format!("create {}", path.display())))?;
    writeln!(f, "{hex}").map_err(io(format!("write {}", path.display())))
}

/// Quorum timings passed to every voter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuorumTiming {
    /// `--quorum-promise` in seconds.
    pub promise: f64,
    /// `--quorum-heartbeat` in seconds.
    pub heartbeat: f64,
}

impl Default for QuorumTiming {
    /// vipd's defaults (0.6 s promise, 0.1 s heartbeat).
    fn default() -> Self {
        QuorumTiming {
            promise: 0.6,
            heartbeat: 0.1,
        }
    }
}

/// The flags that put `vipd run` in quorum mode: the voter list, the key
/// file and the timings (appended to the lease-mode command line, whose
/// lease flags vipd then ignores).
pub fn quorum_run_args(peers: &str, key: &Path, t: QuorumTiming) -> Vec<String> {
    let mut v = vec!["--coordination".into(), "quorum".into()];
    v.extend(voter_args(peers, key, t));
    v
}

/// What every voter (node or witness) is told: the voter list, the key
/// file and the timings.
fn voter_args(peers: &str, key: &Path, t: QuorumTiming) -> Vec<String> {
    vec![
        "--peers".into(),
        peers.into(),
        "--peer-key-file".into(),
        key.display().to_string(),
        "--quorum-promise".into(),
        t.promise.to_string(),
        "--quorum-heartbeat".into(),
        t.heartbeat.to_string(),
    ]
}

/// `vipd witness`'s command line: voter [`WITNESS`] of `peers`, its HTTP
/// endpoint on [`WITNESS_IP`]:2112.
pub fn witness_args(peers: &str, key: &Path, t: QuorumTiming) -> Vec<String> {
    let mut v = vec!["witness".into(), "--node-name".into(), WITNESS.into()];
    v.extend(voter_args(peers, key, t));
    v.extend([
        "--prometheus-server".into(),
        format!("{WITNESS_IP}:2112"),
        "--log-level".into(),
        "debug".into(),
    ]);
    v
}

/// What the nodes' peers exchange among themselves, as nftables matches:
/// the fault scenarios on peer traffic ([`peer_cut_rules`],
/// [`peer_loss_rules`]) hit exactly this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerTraffic {
    /// vipd's quorum datagrams: every voter's socket is bound to
    /// [`QUORUM_PORT`] and sends to the others' [`QUORUM_PORT`], so each
    /// datagram between voters has that destination port (IPv4 and IPv6).
    Quorum,
    /// keepalived's VRRP adverts (IP protocol 112, IPv4 and IPv6).
    Vrrp,
}

impl PeerTraffic {
    /// One match per line; a packet is peer traffic when it matches any.
    fn matches(self) -> Vec<String> {
        match self {
            PeerTraffic::Quorum => vec![format!("udp dport {QUORUM_PORT}")],
            PeerTraffic::Vrrp => vec!["ip protocol 112".into(), "ip6 nexthdr 112".into()],
        }
    }

    /// A short name for fault descriptions (`quorum UDP`, `VRRP`).
    pub fn name(self) -> &'static str {
        match self {
            PeerTraffic::Quorum => "quorum UDP",
            PeerTraffic::Vrrp => "VRRP",
        }
    }
}

fn bridge_table(table: &str, rules: &[String]) -> String {
    // One rule per line: nft rejects a rule followed by `}` on its line.
    let body: String = rules.iter().map(|r| format!("  {r}\n")).collect();
    format!(
        "table bridge {table}\ndelete table bridge {table}\ntable bridge {table} {{\n chain forward {{\n  type filter hook forward priority 0; policy accept;\n{body} }}\n}}\n"
    )
}

/// nftables rules for the switch namespace dropping all `traffic` that
/// enters or leaves the bridge through `port` (a host's bridge port), in a
/// bridge-family table named `table` (replaced if present): the host's
/// peer traffic to and from every peer is gone while everything else (the
/// client, the API, ARP) still flows.
pub fn peer_cut_rules(table: &str, port: &str, traffic: PeerTraffic) -> String {
    let rules: Vec<String> = traffic
        .matches()
        .iter()
        .flat_map(|m| {
            [
                format!("iifname \"{port}\" {m} drop"),
                format!("oifname \"{port}\" {m} drop"),
            ]
        })
        .collect();
    bridge_table(table, &rules)
}

/// nftables rules for the switch namespace dropping `percent` % of all
/// `traffic` between any two hosts (each packet is matched once, see
/// [`PeerTraffic`]), in a bridge-family table named `table`.
pub fn peer_loss_rules(table: &str, percent: u8, traffic: PeerTraffic) -> String {
    let rules: Vec<String> = traffic
        .matches()
        .iter()
        .map(|m| format!("{m} numgen random mod 100 < {percent} drop"))
        .collect();
    bridge_table(table, &rules)
}

/// nftables rules for `ns` dropping all traffic to and from the API host,
/// in a table named `table` (replaced if present). One rule per line:
/// NETLAB-TIPS, nft rejects `rule }` on one line.
pub fn cut_from_api_rules(table: &str) -> String {
    format!(
        "table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  ip saddr {API_IP} drop\n  ip6 saddr {API_IP6} drop\n }}\n chain output {{\n  type filter hook output priority 0; policy accept;\n  ip daddr {API_IP} drop\n  ip6 daddr {API_IP6} drop\n }}\n}}\n"
    )
}

/// One node's daemon process slot: at most one child at a time, its output
/// appended to one log file across restarts (a marker line per start).
///
/// Invariant: the child, while present, was spawned by this slot in its own
/// process group, so killing the group (pid = group id) reaches only
/// processes the slot started (keepalived's VRRP child included). Dropping
/// the slot SIGKILLs and reaps it.
#[derive(Debug)]
pub struct Daemon {
    node: String,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
    /// The podman container the child runs (`podman run --name`), when the
    /// node's vipd runs from the image: SIGKILL must reach the container,
    /// which lives under conmon, not under the `podman run` child.
    container: Option<Container>,
}

/// A podman container a [`Daemon`] runs: its name, and the
/// `CONTAINERS_CONF` file every podman command for it uses.
#[derive(Debug, Clone)]
pub struct Container {
    /// `podman run --name`.
    pub name: String,
    /// containers.conf (runc, no default ulimits).
    pub conf: PathBuf,
}

impl Container {
    fn podman(&self, args: &[&str]) {
        let _ = std::process::Command::new("podman")
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Daemon {
    /// An empty slot for `node`, logging to `log`.
    pub fn new(node: impl Into<String>, log: PathBuf) -> Daemon {
        Daemon {
            node: node.into(),
            child: None,
            log,
            starts: 0,
            container: None,
        }
    }

    /// The node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// How many times the slot has started a process.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Starts `program args` in `ns` (refused while a child runs). `t` is
    /// the lab time written in the log's marker line. `ip netns exec` execs
    /// the program after setns, so the child pid is the daemon's. Its own
    /// process group keeps a terminal Ctrl-C away from it (the driver
    /// decides when and how its daemons end).
    pub fn spawn(
        &mut self,
        ns: &NetNs,
        program: &Path,
        args: &[String],
        t: Duration,
    ) -> Result<(), LabError> {
        if self.running() {
            return Err(LabError::Setup(format!(
                "{} on {} is already running",
                program.display(),
                self.node
            )));
        }
        let io = |what: String| move |source| LabError::Io { what, source };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io(format!("open {}", self.log.display())))?;
        self.starts += 1;
        let _ = writeln!(
            log,
            "===== start #{} at t={:.3}s: {} {}",
            self.starts,
            t.as_secs_f64(),
            program.display(),
            args.join(" ")
        );
        let err = log.try_clone().map_err(io("dup log".into()))?;
        let mut cmd = match &self.container {
            // podman joins the namespace itself (`--network ns:`); under
            // `ip netns exec` it would see a fresh /sys without the cgroup
            // mounts runc needs.
            Some(c) => {
                let mut cmd = std::process::Command::new(program);
                cmd.env("CONTAINERS_CONF", &c.conf);
                cmd
            }
            None => ns.command(&program.display().to_string()),
        };
        let child = cmd
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io(format!("spawn {} on {}", program.display(), self.node)))?;
        self.child = Some(child);
        Ok(())
    }

    /// True while the child runs (an exited child is reaped, not forgotten:
    /// [`Daemon::wait_exit`] still returns its status).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The child's pid while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        if self.running() {
            self.child.as_ref().map(Child::id)
        } else {
            None
        }
    }

    /// Sends `signal` (a `kill -s` name: TERM, KILL, INT) to the child
    /// (only it, not its group); false when nothing runs.
    pub fn signal(&mut self, signal: &str) -> Result<bool, LabError> {
        let Some(pid) = self.pid() else {
            return Ok(false);
        };
        netlab::run_ok("kill", &["-s", signal, &pid.to_string()])?;
        Ok(true)
    }

    /// Waits up to `timeout` (on the lab's `clock`) for the child to exit;
    /// returns its status and empties the slot (`None`: no child, or still
    /// running).
    pub fn wait_exit(&mut self, clock: LabClock, timeout: Duration) -> Option<ExitStatus> {
        let end = clock.now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            if clock.now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then up to `grace` for the exit; SIGKILL after that.
    /// Returns the exit status when it exited on SIGTERM (`Ok(None)`: it
    /// had to be killed, or nothing ran).
    pub fn stop(
        &mut self,
        clock: LabClock,
        grace: Duration,
    ) -> Result<Option<ExitStatus>, LabError> {
        if !self.signal("TERM")? {
            self.child = None;
            return Ok(None);
        }
        match self.wait_exit(clock, grace) {
            Some(st) => Ok(Some(st)),
            None => {
                self.sigkill();
                Ok(None)
            }
        }
    }

    /// Names the podman container the next [`Daemon::spawn`] starts
    /// (`None`: a plain process).
    pub fn set_container(&mut self, container: Option<Container>) {
        self.container = container;
    }

    /// SIGKILLs the child's whole process group and reaps the child. vipd's
    /// address guard runs in its own group, so it survives this and removes
    /// the addresses vipd held (a process crash); [`Daemon::sigkill_tree`]
    /// takes the guard along (the whole node's processes gone). A
    /// container is killed through podman first (its process is conmon's
    /// child, not ours), then removed.
    pub fn sigkill(&mut self) {
        if let (Some(c), Some(_)) = (&self.container, &self.child) {
            c.podman(&["kill", "--signal", "KILL", &c.name]);
            c.podman(&["rm", "--force", "--time", "0", &c.name]);
        }
        if let Some(mut c) = self.child.take() {
            let _ = netlab::run_ok("kill", &["-s", "KILL", "--", &format!("-{}", c.id())]);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Daemon {
    /// SIGKILLs the child's own children first (vipd's address guard, in
    /// its own process group), then the child as [`Daemon::sigkill`]: an
    /// address vipd held stays configured, as after a crash that took
    /// every vipd process (the leftover R3 must clean up at restart).
    pub fn sigkill_tree(&mut self) {
        if let Some(c) = &self.child {
            for pid in children_of(c.id()) {
                let _ = netlab::run_ok("kill", &["-s", "KILL", &pid.to_string()]);
            }
        }
        self.sigkill();
    }
}

/// The pids whose parent is `pid` (from /proc/*/stat).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| {
                    // "pid (comm) state ppid ...": comm may hold spaces and
                    // parentheses, so split after the last ')'.
                    let rest = st.get(st.rfind(')')? + 1..)?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.sigkill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_peers_name_every_node_at_its_topology_address_and_the_witness() {
        assert_eq!(
            quorum_peers(&["n1", "n2", "n3"], false),
            "n1=192.0.2.11:7480,n2=192.0.2.12:7480,n3=192.0.2.13:7480"
        );
        assert_eq!(
            quorum_peers(&["n1", "n2"], true),
            "n1=192.0.2.11:7480,n2=192.0.2.12:7480,w=192.0.2.40:7480"
        );
    }

    #[test]
    fn peer_rules_cut_one_port_both_ways_and_lose_each_datagram_once() {
        let cut = peer_cut_rules("t", "p3", PeerTraffic::Quorum);
        let rules: Vec<&str> = cut.lines().filter(|l| l.ends_with("drop")).collect();
        assert_eq!(
            rules,
            [
                "  iifname \"p3\" udp dport 7480 drop",
                "  oifname \"p3\" udp dport 7480 drop"
            ]
        );
        assert!(cut.contains("table bridge t {") && cut.contains("hook forward"));
        // No rule shares a line with a closing brace (NETLAB-TIPS).
        assert!(!cut.lines().any(|l| l.contains("drop") && l.contains('}')));
        let vrrp = peer_cut_rules("t", "p1", PeerTraffic::Vrrp);
        assert_eq!(vrrp.lines().filter(|l| l.ends_with("drop")).count(), 4);
        assert!(vrrp.contains("iifname \"p1\" ip6 nexthdr 112 drop"));
        let loss = peer_loss_rules("t", 20, PeerTraffic::Quorum);
        let rules: Vec<&str> = loss.lines().filter(|l| l.ends_with("drop")).collect();
        assert_eq!(rules, ["  udp dport 7480 numgen random mod 100 < 20 drop"]);
    }

    #[test]
    fn quorum_command_lines_carry_the_list_key_and_timings() {
        let key = Path::new("/tmp/k");
        let t = QuorumTiming::default();
        let run = quorum_run_args("n1=192.0.2.11:7480", key, t);
        assert_eq!(
            run,
            [
                "--coordination",
                "quorum",
                "--peers",
                "n1=192.0.2.11:7480",
                "--peer-key-file",
                "/tmp/k",
                "--quorum-promise",
                "0.6",
                "--quorum-heartbeat",
                "0.1"
            ]
        );
        let w = witness_args("L", key, t);
        assert_eq!(&w[..3], ["witness", "--node-name", WITNESS]);
        assert!(w
            .windows(2)
            .any(|p| p == ["--prometheus-server", "192.0.2.40:2112"]));
    }

    #[test]
    fn peer_keys_are_fresh_64_hex_characters_with_the_given_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("vipd-lab-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let p = dir.join("peer.key");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{e}"));
        write_peer_key(&p, 0o600).unwrap_or_else(|e| panic!("{e}"));
        let a = read(&p);
        write_peer_key(&p, 0o644).unwrap_or_else(|e| panic!("{e}"));
        let b = read(&p);
        let mode = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(a.trim_end().len(), 64);
        assert!(a.trim_end().bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b, "a second key must be fresh");
        assert_eq!(mode & 0o777, 0o644);
    }
}
