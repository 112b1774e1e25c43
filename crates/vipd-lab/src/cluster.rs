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

/// Node names n1..n`count`.
pub fn node_names(count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("n{i}")).collect()
}

/// Builds the lab topology: `api`, then `nodes[i]` at .(11 + i) and
/// 2001:db8::(11 + i), then `client`, all on one bridge in the switch
/// namespace. Names are prefixed with `prefix` (unique per run).
pub fn topology(prefix: &str, nodes: &[&str]) -> Result<Topology, LabError> {
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
    Ok(
        b.host("client", &pair(CLIENT_IP.into(), CLIENT_IP6.into())?)
            .build()?,
    )
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

    /// SIGKILLs the child's whole process group and reaps the child (an
    /// address it held stays configured, as after a real crash). A
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

impl Drop for Daemon {
    fn drop(&mut self) {
        self.sigkill();
    }
}
