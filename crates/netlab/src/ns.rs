//! One network namespace with a guard that deletes it, and small command helpers.

use std::net::IpAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Errors from building or tearing down lab namespaces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command could not be started at all (missing binary, usually).
    #[error("cannot run `{cmd}`: {source} (is the package installed?)")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{cmd}` failed with {status}: {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status as text.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// An address outside the documentation ranges was about to be configured.
    #[error("address {0} is outside the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32)")]
    NotDocAddr(IpAddr),
    /// A socket or thread operation of the lab's probes failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done (e.g. `listen on [::]:8080 in vx-n1`).
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Entering a namespace failed.
    #[error("cannot enter namespace {name}: {source}")]
    Enter {
        /// Namespace name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// True when the process runs as root (uid 0).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Refuses any address outside the documentation ranges.
pub fn check_doc_addr(addr: IpAddr) -> Result<(), Error> {
    let ok = match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            matches!(
                (o[0], o[1], o[2]),
                (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
            )
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            s[0] == 0x2001 && s[1] == 0x0db8
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::NotDocAddr(addr))
    }
}

/// A short prefix unique to this process and call, for namespace and
/// interface names (interface names are limited to 15 bytes).
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(4)
        .collect();
    format!("v{tag}{:x}{n:x}", std::process::id() % 0xffff)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command and returns its output, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<Output, Error> {
    let line = describe(cmd);
    let out = cmd.output().map_err(|source| Error::Spawn {
        cmd: line.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Failed {
            cmd: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Runs `program args...` and returns stdout as text.
pub fn run_ok(program: &str, args: &[&str]) -> Result<String, Error> {
    let out = run(Command::new(program).args(args))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A network namespace owned by this guard. Dropping it kills every process
/// still inside (our own, started for the test) and deletes the namespace.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates namespace `name` with `lo` up.
    pub fn new(name: &str) -> Result<Self, Error> {
        run_ok("ip", &["netns", "add", name])?;
        let ns = NetNs {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) -> Result<String, Error> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// `ip netns exec NAME program args...`, waiting for it.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, Error> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// A `Command` that runs `program` inside this namespace (not started).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.name.as_str(), program]);
        c
    }

    /// Sets a sysctl inside the namespace (`sysctl -w key=value`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), Error> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Loads an nftables ruleset (text for `nft -f -`) inside the namespace.
    pub fn nft(&self, ruleset: &str) -> Result<(), Error> {
        use std::io::Write;
        let mut child = self
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                cmd: "nft -f -".into(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ruleset.as_bytes())
                .map_err(|source| Error::Spawn {
                    cmd: "nft -f -".into(),
                    source,
                })?;
        }
        let out = child.wait_with_output().map_err(|source| Error::Spawn {
            cmd: "nft -f -".into(),
            source,
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Failed {
                cmd: format!("ip netns exec {} nft -f - <<{ruleset}", self.name),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// Pids of the processes inside this namespace.
    pub fn pids(&self) -> Vec<i32> {
        run_ok("ip", &["netns", "pids", &self.name])
            .map(|s| {
                s.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Runs `f` on a fresh OS thread that has entered this namespace, so
    /// sockets (netlink, raw, TCP) created inside `f` live in it. Returns
    /// what `f` returns.
    pub fn enter<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let path = format!("/run/netns/{}", self.name);
        let name = self.name.clone();
        let file = std::fs::File::open(&path).map_err(|source| Error::Enter {
            name: name.clone(),
            source,
        })?;
        let handle = std::thread::spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::Enter {
                    name,
                    source: std::io::Error::from(e),
                })
                .map(|()| f())
        });
        match handle.join() {
            Ok(r) => r,
            // Re-raise the test's own panic with its message intact.
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Spawns a long-running OS thread that enters this namespace and then
    /// runs `f`; unlike [`NetNs::enter`] it does not wait for `f`. The
    /// handle yields `Err` when entering the namespace failed (then `f`
    /// never ran). Used for servers and probes that live for a whole test.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T, Error>>, Error> {
        let path = format!("/run/netns/{}", self.name);
        let name = self.name.clone();
        let file = std::fs::File::open(&path).map_err(|source| Error::Enter {
            name: name.clone(),
            source,
        })?;
        std::thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::Enter {
                        name,
                        source: std::io::Error::from(e),
                    })
                    .map(|()| f())
            })
            .map_err(|source| Error::Spawn {
                cmd: "thread spawn".into(),
                source,
            })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // End our processes first, or the namespace lingers (NETLAB-TIPS).
        for _ in 0..3 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = run_ok("ip", &["netns", "del", &self.name]);
    }
}
