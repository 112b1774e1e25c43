//! The watcher's state machine: `ip monitor` lines parsed into events, and
//! events plus the initial dumps applied to per-host tracks and holding logs.
//! Pure (no process, no namespace): the monitor feeds it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use super::log::HoldingLog;

/// What the watcher knows about one host.
#[derive(Debug)]
pub(super) struct HostTrack {
    pub(super) name: String,
    /// Index of the host's interface; events of its other interfaces are ignored.
    pub(super) ifindex: u32,
    pub(super) link_up: bool,
    /// Watched addresses configured on the interface (and not `dadfailed`).
    pub(super) has: HashSet<IpAddr>,
}

/// A piece of state the initial dump fills in: a host's link (`None`) or
/// whether it has an address.
pub(super) type Key = (u32, Option<IpAddr>);

/// State shared by the reader thread and the watcher handle: pure, fed by
/// parsed events and by dumps.
#[derive(Debug, Default)]
pub(super) struct Core {
    /// By nsid in the switch namespace.
    pub(super) hosts: HashMap<u32, HostTrack>,
    pub(super) logs: BTreeMap<IpAddr, HoldingLog>,
    /// Registered but not yet read from the hosts. The monitor is already
    /// subscribed when a key is registered, so an event for it is at least
    /// as new as the dump read afterwards: the event wins and the key
    /// leaves this set. Every later kernel change yields an event too, so
    /// the state converges to the kernel's even when the dump is older.
    pub(super) unknown: HashSet<Key>,
}

impl Core {
    /// Registers hosts `(nsid, name, ifindex)` and addresses; returns the
    /// keys the caller must fill from a dump (new hosts x every address,
    /// every host x new addresses).
    pub(super) fn register(
        &mut self,
        hosts: &[(u32, String, u32)],
        addrs: &BTreeSet<IpAddr>,
    ) -> Vec<Key> {
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
    pub(super) fn apply(&mut self, t: Duration, ev: Event) {
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
    pub(super) fn apply_dump(&mut self, t: Duration, keys: &[Key], dumps: &HashMap<u32, HostDump>) {
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
pub(super) struct HostDump {
    pub(super) link_up: bool,
    pub(super) addrs: HashSet<IpAddr>,
}

/// One parsed `ip -o monitor` line.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
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
pub(super) fn parse_line(line: &str) -> Option<Event> {
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
pub(super) fn parse_body(nsid: u32, deleted: bool, rest: &str) -> Option<Event> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
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
