//! A real single-member etcd (Debian's `etcd-server`, 3.4) for tests and the lab.
//!
//! [`EtcdServer`] is a guard: it starts `/usr/bin/etcd` with a fresh data
//! directory under [`std::env::temp_dir`], waits until the member answers, and
//! on `Drop` SIGKILLs it, reaps it and removes the directory. [`EtcdServer::stop`]
//! and [`EtcdServer::start`] take the same member down and bring it back with
//! its data intact, for the "etcd down for everyone, then back" scenario.
//!
//! Inside a namespace the process runs as `ip netns exec NS etcd ...`; `ip`
//! execs etcd after `setns`, so the child pid is etcd itself and SIGKILL
//! reaches it directly (NETLAB-TIPS: end our processes before deleting the
//! namespace, or it lingers).

use crate::ns::check_doc_addr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The etcd server binary of Debian's `etcd-server` package.
pub const ETCD_BIN: &str = "/usr/bin/etcd";
/// The etcd client binary of Debian's `etcd-client` package (used for health checks).
pub const ETCDCTL_BIN: &str = "/usr/bin/etcdctl";

/// How long [`EtcdServer`] waits for a (re)started member to answer. A single
/// member elects itself after one election timeout (1 s by default); the rest
/// is start-up and slow CI.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Why an etcd member could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum EtcdServerError {
    /// `/usr/bin/etcd` does not exist.
    #[error("{ETCD_BIN} not found: apt-get install etcd-server")]
    MissingBinary,
    /// A namespace member was asked to listen outside the documentation ranges.
    #[error(transparent)]
    Address(#[from] crate::Error),
    /// Filesystem or process trouble (data dir, log file, spawn, kill).
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// etcd exited during start-up (address in use, bad flags...).
    #[error("etcd exited during start-up ({status}); log tail:\n{log}")]
    Exited {
        /// Exit status as text.
        status: String,
        /// The last lines etcd printed.
        log: String,
    },
    /// etcd did not answer within [`READY_TIMEOUT`].
    #[error("etcd on {endpoint} not healthy after {timeout:?}; log tail:\n{log}")]
    NotReady {
        /// The client URL we polled.
        endpoint: String,
        /// How long we waited.
        timeout: Duration,
        /// The last lines etcd printed.
        log: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> EtcdServerError {
    let what = what.into();
    move |source| EtcdServerError::Io { what, source }
}

/// Where and how one etcd member listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdServerConfig {
    /// Network namespace to run in (`ip netns exec`), `None` for the caller's own.
    pub netns: Option<String>,
    /// Address for both the client and the peer listener.
    pub ip: IpAddr,
    /// Client port (etcd's usual 2379).
    pub client_port: u16,
    /// Peer port (etcd's usual 2380); nobody joins, but etcd must bind one.
    pub peer_port: u16,
}

/// A free TCP port on 127.0.0.1 right now (bind port 0, read it, close).
///
/// Racy by nature: another process may take it before etcd binds it, which is
/// why [`EtcdServer::start_local_any`] retries with fresh ports.
pub fn free_local_port() -> Result<u16, EtcdServerError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("bind 127.0.0.1:0"))?;
    let port = l.local_addr().map_err(io_err("local_addr"))?.port();
    Ok(port)
}

/// A running (or stopped) single-member etcd owned by this guard.
///
/// Dropping it SIGKILLs etcd, waits for it and deletes its directory.
#[derive(Debug)]
pub struct EtcdServer {
    cfg: EtcdServerConfig,
    /// Unique per guard; holds `data/` and `etcd.log`.
    dir: PathBuf,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts a member on 127.0.0.1:`port` in the caller's namespace, with a
    /// free peer port picked for it. Not root-only.
    pub fn start_local(port: u16) -> Result<Self, EtcdServerError> {
        let peer_port = free_local_port()?;
        Self::start_with(EtcdServerConfig {
            netns: None,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            client_port: port,
            peer_port,
        })
    }

    /// Starts a member on 127.0.0.1 with free client and peer ports, retrying
    /// with new ports a few times when a port was taken in the meantime (tests
    /// running in parallel).
    pub fn start_local_any() -> Result<Self, EtcdServerError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::start_local(free_local_port()?) {
                // Only a lost port race is worth another try; the log says
                // "address already in use" then.
                Err(EtcdServerError::Exited { .. }) if attempt < 4 => continue,
                other => return other,
            }
        }
    }

    /// Starts a member inside namespace `ns` listening on `ip:port` (client)
    /// and `ip:port+1` (peer). `ip` must be a documentation address already
    /// configured in `ns`. Needs root.
    pub fn start_in_ns(ns: &str, ip: IpAddr, port: u16) -> Result<Self, EtcdServerError> {
        check_doc_addr(ip)?;
        Self::start_with(EtcdServerConfig {
            netns: Some(ns.to_string()),
            ip,
            client_port: port,
            peer_port: port.wrapping_add(1),
        })
    }

    /// Starts a member as configured, with a fresh data directory, and waits
    /// until it answers.
    pub fn start_with(cfg: EtcdServerConfig) -> Result<Self, EtcdServerError> {
        if !Path::new(ETCD_BIN).exists() {
            return Err(EtcdServerError::MissingBinary);
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "netlab-etcd-{}-{n}-{}",
            std::process::id(),
            cfg.client_port
        ));
        // A leftover from a crashed earlier run with the same pid must not
        // leak its data into this member.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let mut server = EtcdServer {
            cfg,
            dir,
            child: None,
        };
        // On error `server` is dropped here, which removes the directory.
        server.start()?;
        Ok(server)
    }

    /// The client URL, e.g. `http://127.0.0.1:23791`.
    pub fn endpoint(&self) -> String {
        format!(
            "http://{}",
            SocketAddr::new(self.cfg.ip, self.cfg.client_port)
        )
    }

    /// Where and how this member listens.
    pub fn config(&self) -> &EtcdServerConfig {
        &self.cfg
    }

    /// The member's data directory (kept across [`stop`](Self::stop)/[`start`](Self::start)).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// etcd's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    /// The etcd process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process is started (not stopped and not reaped).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) | None => false,
        }
    }

    /// (Re)starts etcd with the same data directory and waits until it is
    /// healthy. A no-op while it is already running.
    pub fn start(&mut self) -> Result<(), EtcdServerError> {
        if self.is_running() {
            return Ok(());
        }
        self.child = None;
        let data = self.data_dir();
        std::fs::create_dir_all(&data).map_err(io_err(format!("create {}", data.display())))?;
        // etcd checks that its data dir is 0700 (3.4 warns otherwise).
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod data dir"))?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io_err("open etcd.log"))?;
        let log2 = log.try_clone().map_err(io_err("dup etcd.log"))?;

        let client = self.endpoint();
        let peer = format!(
            "http://{}",
            SocketAddr::new(self.cfg.ip, self.cfg.peer_port)
        );
        let name = "netlab";
        let mut cmd = match &self.cfg.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, ETCD_BIN]);
                c
            }
            None => Command::new(ETCD_BIN),
        };
        cmd.arg(format!("--name={name}"))
            .arg(format!("--data-dir={}", data.display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={name}={peer}"))
            // Ignored when the data dir already holds a member (restart).
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd.spawn().map_err(io_err(format!("spawn {ETCD_BIN}")))?;
        tracing::debug!(endpoint = %client, pid = child.id(), "etcd started");
        self.child = Some(child);
        self.wait_ready(READY_TIMEOUT)
    }

    /// SIGKILLs etcd and reaps it, keeping the data directory for
    /// [`start`](Self::start). A no-op when it is not running.
    pub fn stop(&mut self) -> Result<(), EtcdServerError> {
        if let Some(mut child) = self.child.take() {
            // SIGKILL, not SIGTERM: the scenario is a crashed or unreachable
            // store, not a graceful shutdown. `kill` fails only if it already
            // exited, which `wait` then reaps.
            let _ = child.kill();
            child.wait().map_err(io_err("wait for etcd"))?;
            tracing::debug!(endpoint = %self.endpoint(), "etcd stopped");
        }
        Ok(())
    }

    /// Polls until the member answers a health check, or fails with the log tail.
    #[allow(clippy::disallowed_types)] // a wall-clock bound on a child process, not election logic
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), EtcdServerError> {
        let start = std::time::Instant::now();
        let use_etcdctl = Path::new(ETCDCTL_BIN).exists();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(EtcdServerError::Exited {
                        status: status.to_string(),
                        log: self.log_tail(),
                    });
                }
            }
            let healthy = if use_etcdctl {
                self.etcdctl_healthy()
            } else {
                // Fallback without etcd-client: the port accepts connections.
                TcpStream::connect_timeout(
                    &SocketAddr::new(self.cfg.ip, self.cfg.client_port),
                    Duration::from_millis(300),
                )
                .is_ok()
            };
            if healthy {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(EtcdServerError::NotReady {
                    endpoint: self.endpoint(),
                    timeout,
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `etcdctl endpoint health`: a quorum read, so it passes only once the
    /// member has elected itself leader and serves requests.
    fn etcdctl_healthy(&self) -> bool {
        let mut cmd = match &self.cfg.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, ETCDCTL_BIN]);
                c
            }
            None => Command::new(ETCDCTL_BIN),
        };
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args([
                "--dial-timeout=1s",
                "--command-timeout=1s",
                "endpoint",
                "health",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        matches!(cmd.status(), Ok(s) if s.success())
    }

    /// The last few KiB of etcd's log, for error messages.
    pub fn log_tail(&self) -> String {
        let Ok(mut f) = File::open(self.log_path()) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %e, "stopping etcd");
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "removing etcd dir");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_member_answers_survives_restart_and_cleans_up() {
        if !Path::new(ETCD_BIN).exists() {
            eprintln!("SKIPPED: {ETCD_BIN} missing (apt-get install etcd-server)");
            return;
        }
        let mut s = EtcdServer::start_local_any().expect("start etcd");
        let addr = SocketAddr::new(s.config().ip, s.config().client_port);
        assert!(TcpStream::connect(addr).is_ok(), "client port answers");
        let dir = s.dir.clone();
        assert!(s.data_dir().join("member").exists(), "data dir populated");

        s.stop().expect("stop");
        assert!(!s.is_running());
        assert!(TcpStream::connect(addr).is_err(), "port closed after stop");
        assert!(
            s.data_dir().join("member").exists(),
            "data kept across stop"
        );

        s.start().expect("restart");
        assert!(s.is_running());
        assert!(
            TcpStream::connect(addr).is_ok(),
            "answers again after start"
        );

        drop(s);
        assert!(!dir.exists(), "directory removed on drop");
    }

    #[test]
    fn namespace_member_listens_on_the_namespace_address_only() {
        crate::require_root!();
        let ns = crate::NetNs::new(&crate::unique_prefix("etcd")).expect("netns");
        ns.ip(&["addr", "add", "192.0.2.10/24", "dev", "lo"])
            .expect("addr");
        let ip: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
        let s = EtcdServer::start_in_ns(ns.name(), ip, 2379).expect("start etcd in ns");
        assert_eq!(s.endpoint(), "http://192.0.2.10:2379");
        assert!(s.pid().is_some());
        // Reachable from inside the namespace, i.e. it is listening there.
        ns.exec(
            ETCDCTL_BIN,
            &["--endpoints=http://192.0.2.10:2379", "endpoint", "health"],
        )
        .expect("etcdctl inside the namespace");
        drop(s);
        assert!(ns.pids().is_empty(), "etcd ended before the namespace goes");
    }

    #[test]
    fn namespace_member_refuses_non_documentation_address() {
        let err =
            EtcdServer::start_in_ns("nonexistent", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 2379)
                .expect_err("10.0.0.1 is not a documentation address");
        assert!(matches!(err, EtcdServerError::Address(_)), "{err}");
    }
}
