//! The I/O side: host and link lookups in the namespaces, and the one
//! `ip -o monitor` process whose reader thread feeds [`super::state`].

use crate::ns::Error;
use crate::probe::LabClock;
use crate::topo::{Host, Topology};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::state::{parse_body, parse_line, Core, Event, HostDump};

/// `(nsid in the switch namespace, name, ifindex of its interface)` of each
/// host.
pub(super) fn resolve_hosts(
    topo: &Topology,
    hosts: &[&str],
) -> Result<Vec<(u32, String, u32)>, Error> {
    let ids = topo.switch.ip(&["netns", "list-id"])?;
    let mut out = Vec::new();
    for h in hosts {
        let host = topo.host(h);
        let nsid = ids
            .lines()
            .find(|l| l.contains(&format!("name: {})", host.ns.name())))
            .and_then(|l| l.strip_prefix("nsid "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::Failed {
                cmd: format!("ip -n {} netns list-id", topo.switch.name()),
                status: format!("no nsid for {}", host.ns.name()),
                stderr: ids.clone(),
            })?;
        let (ifindex, _) = read_link(host)?;
        out.push((nsid, host.name.clone(), ifindex));
    }
    Ok(out)
}

/// The ifindex of the host's interface, and whether it is up with carrier.
pub(super) fn read_link(host: &Host) -> Result<(u32, bool), Error> {
    let out = host.ns.ip(&["-o", "link", "show", "dev", &host.ifname])?;
    match out.lines().next().and_then(|l| parse_body(0, false, l)) {
        Some(Event::Link { ifindex, up, .. }) => Ok((ifindex, up)),
        _ => Err(Error::Failed {
            cmd: format!("ip -n {} -o link show dev {}", host.ns.name(), host.ifname),
            status: "unparsable output".into(),
            stderr: out,
        }),
    }
}

/// Link state and addresses of one host: one `ip -o link show` and one
/// `ip -o addr show`, whatever the number of addresses.
pub(super) fn read_host(host: &Host) -> Result<HostDump, Error> {
    let (_, up) = read_link(host)?;
    let out = host.ns.ip(&["-o", "addr", "show", "dev", &host.ifname])?;
    let addrs = out
        .lines()
        .filter_map(|l| match parse_body(0, false, l) {
            Some(Event::Addr {
                addr,
                present: true,
                ..
            }) => Some(addr),
            _ => None,
        })
        .collect();
    Ok(HostDump { link_up: up, addrs })
}

/// `ip monitor` pipe size: a burst of a thousand address events (~150 bytes
/// each) must fit while the reader catches up; once the pipe is full `ip`
/// stops reading its netlink socket, which then overflows and drops events
/// (ENOBUFS) without telling us.
pub(super) const PIPE_SIZE: i32 = 1 << 20;

/// The monitor process, its reader thread and the state they feed; shared
/// by [`super::AddrWatcher`] and [`super::MultiAddrWatcher`]. Killed and joined
/// on drop.
#[derive(Debug)]
pub(super) struct Monitor {
    pub(super) core: Arc<Mutex<Core>>,
    pub(super) child: Child,
    pub(super) reader: Option<JoinHandle<()>>,
    pub(super) clock: LabClock,
}

impl Monitor {
    pub(super) fn start(
        topo: &Topology,
        hosts: &[&str],
        addrs: &BTreeSet<IpAddr>,
        clock: LabClock,
    ) -> Result<Monitor, Error> {
        let mut child = topo
            .switch
            .command("ip")
            .args(["-o", "monitor", "address", "link", "all-nsid"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Spawn {
                cmd: "ip -o monitor address link all-nsid".into(),
                source,
            })?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Io {
                what: "ip monitor stdout".into(),
                source: std::io::Error::other("not piped"),
            });
        };
        // Best effort: the default 64 KiB still works for small bursts.
        let _ = nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        let core = Arc::new(Mutex::new(Core::default()));
        let sh = core.clone();
        let reader = std::thread::Builder::new()
            .name("netlab-addrwatch".into())
            .spawn(move || {
                // One lock per line, parsing before it: the reader must
                // keep up with bursts (see PIPE_SIZE).
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let t = clock.now();
                    let Some(ev) = parse_line(&line) else {
                        continue;
                    };
                    let Ok(mut g) = sh.lock() else { break };
                    g.apply(t, ev);
                }
            });
        let reader = match reader {
            Ok(r) => r,
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Io {
                    what: "spawn watcher thread".into(),
                    source,
                });
            }
        };
        let m = Monitor {
            core,
            child,
            reader: Some(reader),
            clock,
        };
        // `ip monitor` subscribes right after exec; give it time to do so
        // before the dump, so nothing falls between the two.
        std::thread::sleep(Duration::from_millis(150));
        // `m` exists through the fallible dump, so an error there drops it
        // and kills `ip monitor`.
        m.watch(topo, hosts, addrs)?;
        Ok(m)
    }

    /// Registers hosts and addresses, then reads what is still unknown.
    pub(super) fn watch(
        &self,
        topo: &Topology,
        hosts: &[&str],
        addrs: &BTreeSet<IpAddr>,
    ) -> Result<(), Error> {
        let resolved = resolve_hosts(topo, hosts)?;
        let (keys, names) = {
            let mut g = self.lock()?;
            let keys = g.register(&resolved, addrs);
            let mut nsids: Vec<u32> = keys.iter().map(|k| k.0).collect();
            nsids.dedup(); // keys are sorted
            let names: Vec<(u32, String)> = nsids
                .into_iter()
                .filter_map(|n| g.hosts.get(&n).map(|h| (n, h.name.clone())))
                .collect();
            (keys, names)
        };
        let mut dumps = HashMap::new();
        for (nsid, name) in names {
            dumps.insert(nsid, read_host(topo.host(&name))?);
        }
        let t = self.clock.now();
        self.lock()?.apply_dump(t, &keys, &dumps);
        Ok(())
    }

    pub(super) fn lock(&self) -> Result<std::sync::MutexGuard<'_, Core>, Error> {
        self.core.lock().map_err(|_| Error::Io {
            what: "address watcher state".into(),
            source: std::io::Error::other("reader thread panicked"),
        })
    }

    /// Runs `f` on the state; `default` if the reader thread panicked.
    pub(super) fn with<T>(&self, default: T, f: impl FnOnce(&Core) -> T) -> T {
        self.core.lock().map(|g| f(&g)).unwrap_or(default)
    }

    pub(super) fn shutdown(&mut self) {
        // Our own child, by its pid (never by name).
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
