//! Who holds an address, and when: [`AddrWatcher`] records, per host, the
//! intervals during which the host could answer for a given address, and
//! [`HoldingLog`] computes exactly how long two or more hosts did so at once.
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
use crate::topo::Topology;
use std::collections::{BTreeMap, HashMap};
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
#[derive(Debug, Clone, Copy, Default)]
struct HostState {
    has_addr: bool,
    link_up: bool,
}

impl HostState {
    fn holding(self) -> bool {
        self.has_addr && self.link_up
    }
}

#[derive(Debug, Default)]
struct Shared {
    log: HoldingLog,
    state: HashMap<String, HostState>,
    /// False until the initial dump is applied; earlier events are already
    /// reflected in the dump.
    ready: bool,
}

/// Watches which of a topology's hosts hold an address (see module docs).
/// Stops (killing its `ip monitor`) when dropped.
#[derive(Debug)]
pub struct AddrWatcher {
    shared: Arc<Mutex<Shared>>,
    child: Child,
    reader: Option<JoinHandle<()>>,
    clock: LabClock,
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
    let (deleted, rest) = match rest.strip_prefix("Deleted ") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let (idx, rest) = rest.split_once(": ")?;
    let ifindex: u32 = idx.trim().parse().ok()?;
    let mut words = rest.split_whitespace();
    if let Some(fam) = words.clone().position(|w| w == "inet" || w == "inet6") {
        let addr: IpAddr = words.nth(fam + 1)?.split('/').next()?.parse().ok()?;
        let dadfailed = rest.split_whitespace().any(|w| w == "dadfailed");
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

fn ifindex_of(ns: &NetNs, ifname: &str) -> Result<u32, Error> {
    let out = ns.ip(&["-o", "link", "show", "dev", ifname])?;
    out.split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .ok_or_else(|| Error::Failed {
            cmd: format!("ip -n {} -o link show dev {ifname}", ns.name()),
            status: "unparsable output".into(),
            stderr: out.clone(),
        })
}

impl AddrWatcher {
    /// Starts watching `addr` on the interfaces of `hosts` (names given to
    /// the [`crate::TopologyBuilder`]). Waits briefly for the monitor to
    /// subscribe, then reads the current state; events in the ~10 ms the
    /// initial dump takes may be missed, so start watchers before faults.
    pub fn start(
        topo: &Topology,
        hosts: &[&str],
        addr: IpAddr,
        clock: LabClock,
    ) -> Result<AddrWatcher, Error> {
        // nsid (in the switch namespace) -> (host name, ifindex of its eth0).
        let ids = topo.switch.ip(&["netns", "list-id"])?;
        let mut by_nsid: HashMap<u32, (String, u32)> = HashMap::new();
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
            by_nsid.insert(
                nsid,
                (host.name.clone(), ifindex_of(&host.ns, &host.ifname)?),
            );
        }

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
        let stdout = child.stdout.take().ok_or_else(|| Error::Io {
            what: "ip monitor stdout".into(),
            source: std::io::Error::other("not piped"),
        })?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let sh = shared.clone();
        let reader = std::thread::Builder::new()
            .name("netlab-addrwatch".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let t = clock.now();
                    let Some(ev) = parse_line(&line) else {
                        continue;
                    };
                    let Ok(mut g) = sh.lock() else { break };
                    if !g.ready {
                        continue;
                    }
                    let (nsid, ifindex) = match ev {
                        Event::Addr { nsid, ifindex, .. } | Event::Link { nsid, ifindex, .. } => {
                            (nsid, ifindex)
                        }
                    };
                    let Some((name, idx)) = by_nsid.get(&nsid) else {
                        continue;
                    };
                    if *idx != ifindex {
                        continue;
                    }
                    let st = g.state.entry(name.clone()).or_default();
                    match ev {
                        Event::Addr {
                            addr: a, present, ..
                        } if a == addr => st.has_addr = present,
                        Event::Link { up, .. } => st.link_up = up,
                        Event::Addr { .. } => continue,
                    }
                    let holding = st.holding();
                    g.log.observe(t, name, holding);
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
        let w = AddrWatcher {
            shared,
            child,
            reader: Some(reader),
            clock,
        };
        // `ip monitor` subscribes right after exec; give it time to do so
        // before the dump, so nothing falls between the two.
        std::thread::sleep(Duration::from_millis(150));
        let mut initial = Vec::new();
        for h in hosts {
            let host = topo.host(h);
            let link = host.ns.ip(&["-o", "link", "show", "dev", &host.ifname])?;
            let flags = link.split_once('<').and_then(|(_, r)| r.split_once('>'));
            let up = flags.is_some_and(|(f, _)| {
                f.split(',').any(|x| x == "UP") && f.split(',').any(|x| x == "LOWER_UP")
            });
            initial.push((
                host.name.clone(),
                HostState {
                    has_addr: host.has_addr(addr),
                    link_up: up,
                },
            ));
        }
        let t = w.clock.now();
        if let Ok(mut g) = w.shared.lock() {
            for (name, st) in initial {
                g.log.observe(t, &name, st.holding());
                g.state.insert(name, st);
            }
            g.ready = true;
        }
        // `w` existed through the fallible dump above, so an error there
        // dropped it and killed `ip monitor`.
        Ok(w)
    }

    /// The clock transitions are stamped with.
    pub fn clock(&self) -> LabClock {
        self.clock
    }

    /// A snapshot of the holding log so far.
    pub fn log(&self) -> HoldingLog {
        self.shared
            .lock()
            .map(|g| g.log.clone())
            .unwrap_or_default()
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
        self.shutdown();
        self.log()
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

impl Drop for AddrWatcher {
    fn drop(&mut self) {
        self.shutdown();
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

    /// Real namespaces: a VIP moved by hand between two responders, with a
    /// deliberate 200 ms overlap, then its holder's link set down.
    #[test]
    fn watcher_and_prober_follow_a_manual_move_in_namespaces() {
        use crate::probe::{last_server, longest_gap, servers, Prober, Responder};
        crate::require_root!();
        let v4 = |s: &str| -> (IpAddr, u8) { (s.parse().unwrap(), 24) };
        let topo = crate::TopologyBuilder::new(&crate::unique_prefix("wt"))
            .host("n1", &[v4("192.0.2.11")])
            .host("n2", &[v4("192.0.2.12")])
            .host("client", &[v4("192.0.2.50")])
            .build()
            .unwrap();
        let vip: IpAddr = "192.0.2.100".parse().unwrap();
        let _r1 = Responder::start(&topo.host("n1").ns, "n1", 8080).unwrap();
        let _r2 = Responder::start(&topo.host("n2").ns, "n2", 8080).unwrap();
        let clock = LabClock::new();
        let w = AddrWatcher::start(&topo, &["n1", "n2"], vip, clock).unwrap();
        let p = Prober::start(&topo.host("client").ns, (vip, 8080).into(), clock).unwrap();
        let settle = Duration::from_millis(600);
        std::thread::sleep(Duration::from_millis(300));
        assert!(w.holders().is_empty());
        assert_eq!(last_server(&p.samples()), None);

        let n1 = &topo.host("n1").ns;
        let n2 = &topo.host("n2").ns;
        n1.ip(&["addr", "add", "192.0.2.100/32", "dev", "eth0"])
            .unwrap();
        // The client's failed ARP resolution retries once a second
        // (`retrans_time`), so the first answer may take that long.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(w.holders(), vec!["n1".to_string()]);
        assert_eq!(last_server(&p.samples()), Some("n1"));
        let clean = clock.now();
        assert_eq!(w.two_holder_time(Duration::ZERO..clean), Duration::ZERO);

        // Overlapping move: n2 adds before n1 deletes.
        let t_move = clock.now();
        n2.ip(&["addr", "add", "192.0.2.100/32", "dev", "eth0"])
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        n1.ip(&["addr", "del", "192.0.2.100/32", "dev", "eth0"])
            .unwrap();
        // The client still has n1's MAC; forget it so it re-resolves.
        topo.host("client")
            .ns
            .ip(&["neigh", "flush", "dev", "eth0"])
            .unwrap();
        std::thread::sleep(settle);
        assert_eq!(w.holders(), vec!["n2".to_string()]);
        let overlap = w.two_holder_time(Duration::ZERO..clock.now());
        assert!(
            overlap >= Duration::from_millis(150) && overlap <= Duration::from_millis(400),
            "overlap {overlap:?}"
        );
        let samples = p.samples();
        assert_eq!(last_server(&samples), Some("n2"));
        let names: Vec<String> = servers(&samples, t_move..clock.now())
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert!(names.contains(&"n2".to_string()), "{names:?}");

        // Crash semantics: address kept, link down -> not a holder.
        let t_down = clock.now();
        topo.host("n2").link_down().unwrap();
        std::thread::sleep(settle);
        assert!(topo.host("n2").has_addr(vip));
        assert!(w.holders().is_empty());
        let samples = p.stop();
        let end = clock.now();
        assert!(longest_gap(&samples, t_down..end) >= settle - Duration::from_millis(50));
        let log = w.stop();
        let ts: Vec<(String, bool)> = log
            .transitions()
            .iter()
            .map(|t| (t.host.clone(), t.holding))
            .collect();
        assert_eq!(
            ts,
            vec![
                ("n1".to_string(), true),
                ("n2".to_string(), true),
                ("n1".to_string(), false),
                ("n2".to_string(), false)
            ]
        );
    }
}
