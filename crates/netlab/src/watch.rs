//! Who holds an address, and when: [`AddrWatcher`] records, per host, the
//! intervals during which the host could answer for a given address, and
//! [`HoldingLog`] computes exactly how long two or more hosts did so at once.
//! [`MultiAddrWatcher`] does the same for many addresses (Services mode) with
//! the same single monitor process.
//!
//! ## How it watches
//!
//! One `ip -o monitor address link all-nsid` process runs in the **switch**
//! namespace. Creating the veth pairs gave every host namespace an nsid
//! there, so this single netlink socket receives the address and link events
//! of all hosts in the order the kernels emitted them (`ip-monitor(8)`,
//! `all-nsid`; NETLAB-TIPS: monitor address is a cheap, exact way to see who
//! holds a VIP). One queue means a removal on one host that causally
//! precedes an addition on another (through etcd) is always seen first: no
//! false overlap from reader-thread scheduling, which per-host pollers or
//! per-host monitors could produce.
//!
//! A host *holds* the address while the address is on its interface **and**
//! the interface is up with carrier: a crashed node (SIGKILL + link down)
//! keeps its IPv4 address configured but cannot answer, and must not count
//! as a second holder. An address flagged `dadfailed` does not count either.

use crate::ns::{run_ok, Error, NetNs};
use crate::probe::LabClock;
use crate::topo::{Host, Topology};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::ops::Range;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One period during which a host held the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// The host's name.
    pub host: String,
    /// When it started holding.
    pub from: Duration,
    /// When it stopped; `None` while it still holds.
    pub to: Option<Duration>,
}

/// A host starting or stopping to hold the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When it was observed.
    pub t: Duration,
    /// The host's name.
    pub host: String,
    /// `true`: started holding; `false`: stopped.
    pub holding: bool,
}

/// Holding intervals of several hosts; pure, fed by [`HoldingLog::observe`].
#[derive(Debug, Clone, Default)]
pub struct HoldingLog {
    closed: Vec<Interval>,
    open: BTreeMap<String, Duration>,
    transitions: Vec<Transition>,
}

impl HoldingLog {
    /// An empty log (nobody holds).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that at `t` host `host` holds (or not). Repeating the current
    /// state is a no-op, so callers may report state rather than changes.
    pub fn observe(&mut self, t: Duration, host: &str, holding: bool) {
        match (self.open.get(host).copied(), holding) {
            (None, true) => {
                self.open.insert(host.to_string(), t);
            }
            (Some(from), false) => {
                self.open.remove(host);
                self.closed.push(Interval {
                    host: host.to_string(),
                    from,
                    to: Some(t.max(from)),
                });
            }
            _ => return,
        }
        self.transitions.push(Transition {
            t,
            host: host.to_string(),
            holding,
        });
    }

    /// Every interval, closed ones first then those still open.
    pub fn intervals(&self) -> Vec<Interval> {
        let mut v = self.closed.clone();
        v.extend(self.open.iter().map(|(h, f)| Interval {
            host: h.clone(),
            from: *f,
            to: None,
        }));
        v
    }

    /// Every change, in observation order.
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// Hosts holding now (at the last observation), sorted by name.
    pub fn holders_at_end(&self) -> Vec<String> {
        self.open.keys().cloned().collect()
    }

    /// Hosts holding at instant `t` (an interval covers `[from, to)`).
    pub fn holders_at(&self, t: Duration) -> Vec<String> {
        let mut v: Vec<String> = self
            .intervals()
            .into_iter()
            .filter(|i| i.from <= t && i.to.is_none_or(|to| t < to))
            .map(|i| i.host)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Total time inside `window` during which two or more hosts held the
    /// address. Intervals are half-open, so one ending exactly when another
    /// starts does not overlap it; open intervals run to the window's end.
    pub fn two_holder_time(&self, window: Range<Duration>) -> Duration {
        // Sweep line over the clipped interval ends: at equal instants the
        // ends (-1) sort before the starts (+1), which makes touching
        // intervals count as disjoint.
        let mut edges: Vec<(Duration, i32)> = Vec::new();
        for i in self.intervals() {
            let from = i.from.max(window.start);
            let to = i.to.unwrap_or(window.end).min(window.end);
            if from < to {
                edges.push((from, 1));
                edges.push((to, -1));
            }
        }
        edges.sort();
        let (mut count, mut last, mut total) = (0i32, window.start, Duration::ZERO);
        for (t, d) in edges {
            if count >= 2 {
                total += t - last;
            }
            count += d;
            last = t;
        }
        total
    }

    /// Most hosts holding at once inside `window`.
    pub fn max_holders(&self, window: Range<Duration>) -> usize {
        let mut edges: Vec<(Duration, i32)> = Vec::new();
        for i in self.intervals() {
            let from = i.from.max(window.start);
            let to = i.to.unwrap_or(window.end).min(window.end);
            if from < to {
                edges.push((from, 1));
                edges.push((to, -1));
            }
        }
        edges.sort();
        let (mut count, mut max) = (0i32, 0i32);
        for (_, d) in edges {
            count += d;
            max = max.max(count);
        }
        usize::try_from(max).unwrap_or(0)
    }
}

/// What the watcher knows about one host.
#[derive(Debug)]
struct HostTrack {
    name: String,
    /// Index of the host's interface; events of its other interfaces are ignored.
    ifindex: u32,
    link_up: bool,
    /// Watched addresses configured on the interface (and not `dadfailed`).
    has: HashSet<IpAddr>,
}

/// A piece of state the initial dump fills in: a host's link (`None`) or
/// whether it has an address.
type Key = (u32, Option<IpAddr>);

/// State shared by the reader thread and the watcher handle: pure, fed by
/// parsed events and by dumps.
#[derive(Debug, Default)]
struct Core {
    /// By nsid in the switch namespace.
    hosts: HashMap<u32, HostTrack>,
    logs: BTreeMap<IpAddr, HoldingLog>,
    /// Registered but not yet read from the hosts. The monitor is already
    /// subscribed when a key is registered, so an event for it is at least
    /// as new as the dump read afterwards: the event wins and the key
    /// leaves this set. Every later kernel change yields an event too, so
    /// the state converges to the kernel's even when the dump is older.
    unknown: HashSet<Key>,
}

impl Core {
    /// Registers hosts `(nsid, name, ifindex)` and addresses; returns the
    /// keys the caller must fill from a dump (new hosts x every address,
    /// every host x new addresses).
    fn register(&mut self, hosts: &[(u32, String, u32)], addrs: &BTreeSet<IpAddr>) -> Vec<Key> {
        let mut keys = Vec::new();
        for (nsid, name, ifindex) in hosts {
            if self.hosts.contains_key(nsid) {
                continue;
            }
            self.hosts.insert(
                *nsid,
                HostTrack {
                    name: name.clone(),
                    ifindex: *ifindex,
                    link_up: false,
                    has: HashSet::new(),
                },
            );
            keys.push((*nsid, None));
            keys.extend(self.logs.keys().map(|a| (*nsid, Some(*a))));
        }
        for a in addrs {
            if self.logs.contains_key(a) {
                continue;
            }
            self.logs.insert(*a, HoldingLog::new());
            keys.extend(self.hosts.keys().map(|n| (*n, Some(*a))));
        }
        keys.sort();
        keys.dedup();
        self.unknown.extend(keys.iter().copied());
        keys
    }

    /// Applies one monitor event observed at `t`.
    fn apply(&mut self, t: Duration, ev: Event) {
        match ev {
            Event::Addr {
                nsid,
                ifindex,
                addr,
                present,
            } => {
                let Some(h) = self.hosts.get_mut(&nsid) else {
                    return;
                };
                let Some(log) = self.logs.get_mut(&addr) else {
                    return;
                };
                if h.ifindex != ifindex {
                    return;
                }
                if present {
                    h.has.insert(addr);
                } else {
                    h.has.remove(&addr);
                }
                if !self.unknown.is_empty() {
                    self.unknown.remove(&(nsid, Some(addr)));
                }
                log.observe(t, &h.name, present && h.link_up);
            }
            Event::Link { nsid, ifindex, up } => {
                let Some(h) = self.hosts.get_mut(&nsid) else {
                    return;
                };
                if h.ifindex != ifindex {
                    return;
                }
                h.link_up = up;
                self.unknown.remove(&(nsid, None));
                for a in &h.has {
                    if let Some(log) = self.logs.get_mut(a) {
                        log.observe(t, &h.name, up);
                    }
                }
            }
        }
    }

    /// Fills the still-unknown `keys` from per-host dumps read at about `t`.
    fn apply_dump(&mut self, t: Duration, keys: &[Key], dumps: &HashMap<u32, HostDump>) {
        for key in keys {
            let (nsid, addr) = *key;
            let (Some(h), Some(d)) = (self.hosts.get_mut(&nsid), dumps.get(&nsid)) else {
                continue;
            };
            if !self.unknown.remove(key) {
                continue; // an event came first and is at least as new
            }
            match addr {
                None => {
                    h.link_up = d.link_up;
                    for a in &h.has {
                        if let Some(log) = self.logs.get_mut(a) {
                            log.observe(t, &h.name, h.link_up);
                        }
                    }
                }
                Some(a) => {
                    let present = d.addrs.contains(&a);
                    if present {
                        h.has.insert(a);
                    } else {
                        h.has.remove(&a);
                    }
                    if let Some(log) = self.logs.get_mut(&a) {
                        log.observe(t, &h.name, present && h.link_up);
                    }
                }
            }
        }
    }
}

/// One host's state as read by `ip -o link show` and `ip -o addr show`.
#[derive(Debug, Default)]
struct HostDump {
    link_up: bool,
    addrs: HashSet<IpAddr>,
}

/// One parsed `ip -o monitor` line.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Addr {
        nsid: u32,
        ifindex: u32,
        addr: IpAddr,
        present: bool,
    },
    Link {
        nsid: u32,
        ifindex: u32,
        up: bool,
    },
}

/// Parses a line of `ip -o monitor address link all-nsid`, e.g.
/// `[nsid 0]Deleted 2: br0    inet 192.0.2.100/32 scope global eth0\ ...`
/// (the interface *name* is resolved in the monitor's namespace and is
/// wrong; the index is the host's) or
/// `[nsid 1]2: eth0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ...`.
fn parse_line(line: &str) -> Option<Event> {
    let rest = line.strip_prefix("[nsid ")?;
    let (nsid, rest) = rest.split_once(']')?;
    let nsid: u32 = nsid.parse().ok()?; // "current" (the switch itself) is skipped
    match rest.strip_prefix("Deleted ") {
        Some(r) => parse_body(nsid, true, r),
        None => parse_body(nsid, false, rest),
    }
}

/// Parses what follows the nsid (and `Deleted `) of a monitor line; the
/// lines of `ip -o addr show` and `ip -o link show` have the same form.
fn parse_body(nsid: u32, deleted: bool, rest: &str) -> Option<Event> {
    let (idx, rest) = rest.split_once(": ")?;
    let ifindex: u32 = idx.trim().parse().ok()?;
    let mut words = rest.split_whitespace();
    if let Some(fam) = words.clone().position(|w| w == "inet" || w == "inet6") {
        let addr: IpAddr = words.nth(fam + 1)?.split('/').next()?.parse().ok()?;
        let dadfailed = words.any(|w| w == "dadfailed");
        return Some(Event::Addr {
            nsid,
            ifindex,
            addr,
            present: !deleted && !dadfailed,
        });
    }
    let flags = rest.split_once('<')?.1.split_once('>')?.0;
    let has = |f: &str| flags.split(',').any(|x| x == f);
    Some(Event::Link {
        nsid,
        ifindex,
        up: !deleted && has("UP") && has("LOWER_UP"),
    })
}

/// `(nsid in the switch namespace, name, ifindex of its interface)` of each
/// host.
fn resolve_hosts(topo: &Topology, hosts: &[&str]) -> Result<Vec<(u32, String, u32)>, Error> {
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
fn read_link(host: &Host) -> Result<(u32, bool), Error> {
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
fn read_host(host: &Host) -> Result<HostDump, Error> {
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
const PIPE_SIZE: i32 = 1 << 20;

/// The monitor process, its reader thread and the state they feed; shared
/// by [`AddrWatcher`] and [`MultiAddrWatcher`]. Killed and joined on drop.
#[derive(Debug)]
struct Monitor {
    core: Arc<Mutex<Core>>,
    child: Child,
    reader: Option<JoinHandle<()>>,
    clock: LabClock,
}

impl Monitor {
    fn start(
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
    fn watch(
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

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Core>, Error> {
        self.core.lock().map_err(|_| Error::Io {
            what: "address watcher state".into(),
            source: std::io::Error::other("reader thread panicked"),
        })
    }

    /// Runs `f` on the state; `default` if the reader thread panicked.
    fn with<T>(&self, default: T, f: impl FnOnce(&Core) -> T) -> T {
        self.core.lock().map(|g| f(&g)).unwrap_or(default)
    }

    fn shutdown(&mut self) {
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

/// Watches which of a topology's hosts hold an address (see module docs).
/// Stops (killing its `ip monitor`) when dropped.
#[derive(Debug)]
pub struct AddrWatcher {
    mon: Monitor,
    addr: IpAddr,
}

impl AddrWatcher {
    /// Starts watching `addr` on the interfaces of `hosts` (names given to
    /// the [`crate::TopologyBuilder`]). Waits briefly for the monitor to
    /// subscribe, then reads the current state; an event seen meanwhile
    /// takes precedence over that read. Start watchers before faults.
    pub fn start(
        topo: &Topology,
        hosts: &[&str],
        addr: IpAddr,
        clock: LabClock,
    ) -> Result<AddrWatcher, Error> {
        let mon = Monitor::start(topo, hosts, &BTreeSet::from([addr]), clock)?;
        Ok(AddrWatcher { mon, addr })
    }

    /// The clock transitions are stamped with.
    pub fn clock(&self) -> LabClock {
        self.mon.clock
    }

    /// A snapshot of the holding log so far.
    pub fn log(&self) -> HoldingLog {
        self.mon.with(HoldingLog::default(), |c| {
            c.logs.get(&self.addr).cloned().unwrap_or_default()
        })
    }

    /// Hosts holding the address now, sorted.
    pub fn holders(&self) -> Vec<String> {
        self.log().holders_at_end()
    }

    /// Time with two or more holders inside `window` (see [`HoldingLog`]).
    pub fn two_holder_time(&self, window: Range<Duration>) -> Duration {
        self.log().two_holder_time(window)
    }

    /// Every start/stop of holding so far.
    pub fn transitions(&self) -> Vec<Transition> {
        self.log().transitions().to_vec()
    }

    /// Stops watching and returns the final log.
    pub fn stop(mut self) -> HoldingLog {
        self.mon.shutdown();
        self.log()
    }
}

/// Like [`AddrWatcher`], for a set of addresses at once (one `ip monitor`
/// process, one reader thread): Services mode has hundreds of
/// LoadBalancer addresses, each of which must have at most one holder at
/// every instant. Stops (killing its `ip monitor`) when dropped.
#[derive(Debug)]
pub struct MultiAddrWatcher {
    mon: Monitor,
}

impl MultiAddrWatcher {
    /// Starts watching `addrs` on the interfaces of `hosts`; the initial
    /// state is read with one `ip -o addr show` per host (see
    /// [`AddrWatcher::start`] for the timing caveat).
    pub fn start(
        topo: &Topology,
        hosts: &[&str],
        addrs: &BTreeSet<IpAddr>,
        clock: LabClock,
    ) -> Result<MultiAddrWatcher, Error> {
        Ok(MultiAddrWatcher {
            mon: Monitor::start(topo, hosts, addrs, clock)?,
        })
    }

    /// Adds addresses (and hosts) to watch later, e.g. allocated by IPAM at
    /// run time; their initial state is read from the hosts, and an event
    /// arriving meanwhile takes precedence. Already watched ones are kept.
    pub fn watch_more(
        &self,
        topo: &Topology,
        hosts: &[&str],
        addrs: &BTreeSet<IpAddr>,
    ) -> Result<(), Error> {
        self.mon.watch(topo, hosts, addrs)
    }

    /// The clock transitions are stamped with.
    pub fn clock(&self) -> LabClock {
        self.mon.clock
    }

    /// Snapshot of every address's [`HoldingLog`].
    pub fn logs(&self) -> BTreeMap<IpAddr, HoldingLog> {
        self.mon.with(BTreeMap::new(), |c| c.logs.clone())
    }

    /// Hosts holding `addr` now (sorted); empty for an unwatched address.
    pub fn holders(&self, addr: IpAddr) -> Vec<String> {
        self.mon.with(Vec::new(), |c| {
            c.logs
                .get(&addr)
                .map(HoldingLog::holders_at_end)
                .unwrap_or_default()
        })
    }

    /// Address -> its holders now (only addresses held by at least one host).
    pub fn holders_all(&self) -> BTreeMap<IpAddr, Vec<String>> {
        self.mon.with(BTreeMap::new(), |c| {
            c.logs
                .iter()
                .map(|(a, l)| (*a, l.holders_at_end()))
                .filter(|(_, h)| !h.is_empty())
                .collect()
        })
    }

    /// Sum over addresses of the time two or more hosts held it, within
    /// `window` (see [`HoldingLog::two_holder_time`]).
    pub fn two_holder_time(&self, window: Range<Duration>) -> Duration {
        self.two_holder_addresses(window).values().sum()
    }

    /// The addresses whose two-holder time in `window` is non-zero, with
    /// that time.
    pub fn two_holder_addresses(&self, window: Range<Duration>) -> BTreeMap<IpAddr, Duration> {
        self.mon.with(BTreeMap::new(), |c| {
            c.logs
                .iter()
                .map(|(a, l)| (*a, l.two_holder_time(window.clone())))
                .filter(|(_, d)| !d.is_zero())
                .collect()
        })
    }

    /// Stops watching and returns every address's final log.
    pub fn stop(mut self) -> BTreeMap<IpAddr, HoldingLog> {
        self.mon.shutdown();
        self.logs()
    }
}

/// `ip -o addr show` of every given namespace, for failure reports.
pub fn dump_addresses(nss: &[&NetNs]) -> String {
    nss.iter()
        .map(|ns| {
            format!(
                "{}:\n{}",
                ns.name(),
                run_ok("ip", &["-n", ns.name(), "-o", "addr", "show"]).unwrap_or_default()
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn log(events: &[(u64, &str, bool)]) -> HoldingLog {
        let mut l = HoldingLog::new();
        for (t, h, on) in events {
            l.observe(ms(*t), h, *on);
        }
        l
    }

    #[test]
    fn overlapping_holders_count_exactly_their_overlap() {
        let l = log(&[
            (100, "n1", true),
            (300, "n2", true),
            (450, "n1", false),
            (900, "n2", false),
        ]);
        assert_eq!(l.two_holder_time(ms(0)..ms(1000)), ms(150));
        assert_eq!(l.max_holders(ms(0)..ms(1000)), 2);
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        let l = log(&[(100, "n1", true), (300, "n1", false), (300, "n2", true)]);
        assert_eq!(l.two_holder_time(ms(0)..ms(1000)), Duration::ZERO);
        assert_eq!(l.max_holders(ms(0)..ms(1000)), 1);
    }

    #[test]
    fn handover_with_gap_has_no_two_holder_time() {
        let l = log(&[(0, "n1", true), (500, "n1", false), (520, "n2", true)]);
        assert_eq!(l.two_holder_time(ms(0)..ms(2000)), Duration::ZERO);
        assert_eq!(l.holders_at_end(), vec!["n2".to_string()]);
        assert_eq!(l.holders_at(ms(510)), Vec::<String>::new());
        assert_eq!(l.holders_at(ms(500)), Vec::<String>::new());
        assert_eq!(l.holders_at(ms(499)), vec!["n1".to_string()]);
    }

    #[test]
    fn open_intervals_overlap_until_window_end() {
        let l = log(&[(100, "n1", true), (200, "n2", true)]);
        assert_eq!(l.two_holder_time(ms(0)..ms(700)), ms(500));
        assert_eq!(l.holders_at_end(), vec!["n1".to_string(), "n2".to_string()]);
    }

    #[test]
    fn window_clips_overlap() {
        let l = log(&[(100, "n1", true), (200, "n2", true), (600, "n2", false)]);
        assert_eq!(l.two_holder_time(ms(300)..ms(400)), ms(100));
        assert_eq!(l.two_holder_time(ms(650)..ms(900)), Duration::ZERO);
    }

    #[test]
    fn three_holders_count_once() {
        let l = log(&[
            (0, "n1", true),
            (100, "n2", true),
            (200, "n3", true),
            (300, "n1", false),
            (400, "n2", false),
        ]);
        // >= 2 holders from 100 to 400.
        assert_eq!(l.two_holder_time(ms(0)..ms(1000)), ms(300));
        assert_eq!(l.max_holders(ms(0)..ms(1000)), 3);
    }

    #[test]
    fn repeated_state_reports_are_not_transitions() {
        let l = log(&[
            (0, "n1", true),
            (50, "n1", true),
            (80, "n1", false),
            (90, "n1", false),
        ]);
        assert_eq!(l.transitions().len(), 2);
        assert_eq!(
            l.intervals(),
            vec![Interval {
                host: "n1".into(),
                from: ms(0),
                to: Some(ms(80))
            }]
        );
    }

    fn addr_ev(nsid: u32, addr: &str, present: bool) -> Event {
        Event::Addr {
            nsid,
            ifindex: 2,
            addr: addr.parse().unwrap(),
            present,
        }
    }

    fn dump(up: bool, addrs: &[&str]) -> HostDump {
        HostDump {
            link_up: up,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    /// Two hosts (nsid 0 "a", 1 "b"), addresses .1 and .2 registered.
    fn core_with_keys() -> (Core, Vec<Key>) {
        let mut c = Core::default();
        let hosts = [(0, "a".to_string(), 2), (1, "b".to_string(), 2)];
        let addrs: BTreeSet<IpAddr> = ["203.0.113.1", "203.0.113.2"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let keys = c.register(&hosts, &addrs);
        (c, keys)
    }

    #[test]
    fn event_during_the_initial_read_outranks_the_older_dump() {
        let (mut c, keys) = core_with_keys();
        assert_eq!(keys.len(), 6); // 2 links + 2 hosts x 2 addresses
                                   // b gains .1 after its dump was read: the dump (without .1) is older.
        c.apply(ms(10), addr_ev(1, "203.0.113.1", true));
        let dumps = HashMap::from([
            (0, dump(true, &["203.0.113.1", "203.0.113.2"])),
            (1, dump(true, &[])),
        ]);
        c.apply_dump(ms(20), &keys, &dumps);
        let a1: IpAddr = "203.0.113.1".parse().unwrap();
        let a2: IpAddr = "203.0.113.2".parse().unwrap();
        assert_eq!(c.logs[&a1].holders_at_end(), vec!["a", "b"]);
        assert_eq!(c.logs[&a2].holders_at_end(), vec!["a"]);
        assert!(c.unknown.is_empty());
        // Link down releases every address of that host, none of the other's.
        c.apply(
            ms(30),
            Event::Link {
                nsid: 0,
                ifindex: 2,
                up: false,
            },
        );
        assert_eq!(c.logs[&a1].holders_at_end(), vec!["b"]);
        assert!(c.logs[&a2].holders_at_end().is_empty());
        assert_eq!(c.logs[&a1].two_holder_time(ms(0)..ms(100)), ms(10));
    }

    #[test]
    fn events_of_other_interfaces_and_unwatched_addresses_are_ignored() {
        let (mut c, keys) = core_with_keys();
        let dumps = HashMap::from([(0, dump(true, &[])), (1, dump(true, &[]))]);
        c.apply_dump(ms(0), &keys, &dumps);
        c.apply(ms(5), addr_ev(0, "203.0.113.9", true));
        c.apply(
            ms(6),
            Event::Addr {
                nsid: 0,
                ifindex: 1,
                addr: "203.0.113.1".parse().unwrap(),
                present: true,
            },
        );
        c.apply(ms(7), addr_ev(7, "203.0.113.1", true));
        assert!(c.logs.values().all(|l| l.transitions().is_empty()));
        assert_eq!(c.logs.len(), 2);
    }

    #[test]
    fn late_registration_reads_only_new_keys() {
        let (mut c, keys) = core_with_keys();
        let dumps = HashMap::from([(0, dump(true, &[])), (1, dump(false, &[]))]);
        c.apply_dump(ms(0), &keys, &dumps);
        let more: BTreeSet<IpAddr> = ["203.0.113.2", "203.0.113.3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let hosts = [(0, "a".to_string(), 2), (4, "c".to_string(), 2)];
        let keys = c.register(&hosts, &more);
        // c: link + .1 .2 .3; a and b: .3 only (.2 was already watched).
        let want: Vec<Key> = vec![
            (0, Some("203.0.113.3".parse().unwrap())),
            (1, Some("203.0.113.3".parse().unwrap())),
            (4, None),
            (4, Some("203.0.113.1".parse().unwrap())),
            (4, Some("203.0.113.2".parse().unwrap())),
            (4, Some("203.0.113.3".parse().unwrap())),
        ];
        assert_eq!(keys, want);
        let dumps = HashMap::from([
            (0, dump(true, &["203.0.113.3"])),
            (1, dump(false, &["203.0.113.3"])),
            (4, dump(true, &["203.0.113.1"])),
        ]);
        c.apply_dump(ms(50), &keys, &dumps);
        let a = |s: &str| -> IpAddr { s.parse().unwrap() };
        // b has .3 but its link is down: not a holder.
        assert_eq!(c.logs[&a("203.0.113.3")].holders_at_end(), vec!["a"]);
        assert_eq!(c.logs[&a("203.0.113.1")].holders_at_end(), vec!["c"]);
    }

    #[test]
    fn parses_monitor_lines() {
        let add = "[nsid 0]2: br0    inet 192.0.2.100/32 scope global eth0\\       valid_lft forever preferred_lft forever";
        assert_eq!(
            parse_line(add),
            Some(Event::Addr {
                nsid: 0,
                ifindex: 2,
                addr: "192.0.2.100".parse().unwrap(),
                present: true
            })
        );
        let del = "[nsid 1]Deleted 2: br0    inet6 2001:db8::100/128 scope global nodad \\       valid_lft forever preferred_lft forever";
        assert_eq!(
            parse_line(del),
            Some(Event::Addr {
                nsid: 1,
                ifindex: 2,
                addr: "2001:db8::100".parse().unwrap(),
                present: false
            })
        );
        let down = "[nsid 0]2: eth0@if3: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether b2:0c:4c:be:36:dc brd ff:ff:ff:ff:ff:ff link-netns x";
        assert_eq!(
            parse_line(down),
            Some(Event::Link {
                nsid: 0,
                ifindex: 2,
                up: false
            })
        );
        let up = "[nsid 3]2: eth0@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP";
        assert_eq!(
            parse_line(up),
            Some(Event::Link {
                nsid: 3,
                ifindex: 2,
                up: true
            })
        );
        let own = "[nsid current]2: br0    inet6 fe80::9c1c:12ff:fecc:1fe9/64 scope link";
        assert_eq!(parse_line(own), None);
    }
}
