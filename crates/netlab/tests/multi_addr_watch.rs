//! [`MultiAddrWatcher`] in real namespaces: many addresses moved by hand,
//! a link going down, addresses watched late, and a burst of a thousand.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use netlab::{LabClock, MultiAddrWatcher, NetNs, Topology, TopologyBuilder};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

fn v4(s: &str) -> (IpAddr, u8) {
    (s.parse().unwrap(), 24)
}

fn three_hosts(tag: &str) -> Topology {
    TopologyBuilder::new(&netlab::unique_prefix(tag))
        .host("a", &[v4("192.0.2.11")])
        .host("b", &[v4("192.0.2.12")])
        .host("c", &[v4("192.0.2.13")])
        .build()
        .unwrap()
}

/// Runs `ip -batch -` in `ns`: many changes in one process, so the kernel
/// emits them as one burst.
fn ip_batch(ns: &NetNs, lines: &[String]) {
    let mut child = Command::new("ip")
        .args(["-n", ns.name(), "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines.join("\n").as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

/// Polls until `cond` holds on the watcher, or panics after `limit`.
fn wait_until(
    w: &MultiAddrWatcher,
    limit: Duration,
    what: &str,
    cond: impl Fn(&BTreeMap<IpAddr, Vec<String>>) -> bool,
) {
    let clock = w.clock();
    let end = clock.now() + limit;
    loop {
        let h = w.holders_all();
        if cond(&h) {
            return;
        }
        assert!(clock.now() < end, "{what}: holders {h:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn held_by<'a>(h: &'a BTreeMap<IpAddr, Vec<String>>, host: &str) -> Vec<&'a IpAddr> {
    h.iter()
        .filter(|(_, hs)| hs.iter().any(|x| x == host))
        .map(|(a, _)| a)
        .collect()
}

#[test]
fn overlapping_moves_are_reported_per_address_and_link_down_releases_all() {
    netlab::require_root!();
    let topo = three_hosts("mw");
    let addrs: Vec<IpAddr> = (10..60)
        .map(|i| format!("203.0.113.{i}").parse().unwrap())
        .collect();
    let set: BTreeSet<IpAddr> = addrs.iter().copied().collect();
    let clock = LabClock::new();
    let w = MultiAddrWatcher::start(&topo, &["a", "b", "c"], &set, clock).unwrap();
    assert!(w.holders_all().is_empty());
    let (a, b) = (&topo.host("a").ns, &topo.host("b").ns);
    let add = |ip: &IpAddr| format!("addr add {ip}/32 dev eth0");
    let del = |ip: &IpAddr| format!("addr del {ip}/32 dev eth0");

    ip_batch(a, &addrs.iter().map(add).collect::<Vec<_>>());
    wait_until(&w, Duration::from_secs(5), "all on a", |h| {
        h.len() == 50 && h.values().all(|hs| hs == &["a"])
    });

    // addrs[0..5]: b adds before a deletes (overlap); addrs[5..10]: a
    // deletes first (clean handover).
    let (overlapping, clean) = (&addrs[0..5], &addrs[5..10]);
    ip_batch(b, &overlapping.iter().map(add).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(200));
    ip_batch(a, &overlapping.iter().map(del).collect::<Vec<_>>());
    ip_batch(a, &clean.iter().map(del).collect::<Vec<_>>());
    ip_batch(b, &clean.iter().map(add).collect::<Vec<_>>());
    wait_until(&w, Duration::from_secs(5), "ten moved to b", |h| {
        h.len() == 50 && held_by(h, "b").len() == 10 && held_by(h, "a").len() == 40
    });
    for ip in &addrs[0..10] {
        assert_eq!(w.holders(*ip), vec!["b".to_string()], "{ip}");
    }
    let now = clock.now();
    let twice = w.two_holder_addresses(Duration::ZERO..now);
    let got: BTreeSet<IpAddr> = twice.keys().copied().collect();
    let want: BTreeSet<IpAddr> = overlapping.iter().copied().collect();
    assert_eq!(got, want, "{twice:?}");
    for (ip, d) in &twice {
        assert!(
            *d >= Duration::from_millis(150) && *d <= Duration::from_millis(600),
            "{ip}: {d:?}"
        );
    }
    assert_eq!(
        w.two_holder_time(Duration::ZERO..now),
        twice.values().sum::<Duration>()
    );
    let logs = w.logs();
    assert_eq!(logs.len(), 50);
    for ip in clean.iter().chain(&addrs[10..]) {
        assert_eq!(
            logs[ip].two_holder_time(Duration::ZERO..now),
            Duration::ZERO
        );
    }

    // Crash semantics: a's addresses stay configured, its link goes down.
    topo.host("a").link_down().unwrap();
    wait_until(&w, Duration::from_secs(5), "a holds nothing", |h| {
        held_by(h, "a").is_empty() && h.len() == 10
    });
    assert!(topo.host("a").has_addr(addrs[20]));

    // Watched late: one already on c (read from the host), one added to b
    // afterwards (seen by the monitor), one on a whose link is down.
    let (on_c, later_b, on_a) = (
        "203.0.113.200".parse::<IpAddr>().unwrap(),
        "203.0.113.201".parse::<IpAddr>().unwrap(),
        "203.0.113.202".parse::<IpAddr>().unwrap(),
    );
    topo.host("c")
        .ns
        .ip(&["addr", "add", "203.0.113.200/32", "dev", "eth0"])
        .unwrap();
    a.ip(&["addr", "add", "203.0.113.202/32", "dev", "eth0"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(w.holders(on_c).is_empty(), "not watched yet");
    w.watch_more(
        &topo,
        &["a", "b", "c"],
        &BTreeSet::from([on_c, later_b, on_a]),
    )
    .unwrap();
    assert_eq!(w.holders(on_c), vec!["c".to_string()]);
    assert!(w.holders(on_a).is_empty());
    b.ip(&["addr", "add", "203.0.113.201/32", "dev", "eth0"])
        .unwrap();
    wait_until(&w, Duration::from_secs(5), "late address on b", |h| {
        h.get(&later_b).is_some_and(|hs| hs == &["b"])
    });

    let logs = w.stop();
    assert_eq!(logs.len(), 53);
    // addrs[0]: a, then b too, then b alone.
    let ts: Vec<(String, bool)> = logs[&addrs[0]]
        .transitions()
        .iter()
        .map(|t| (t.host.clone(), t.holding))
        .collect();
    let s = |h: &str, on| (h.to_string(), on);
    assert_eq!(ts, vec![s("a", true), s("b", true), s("a", false)]);
}

#[test]
fn a_burst_of_a_thousand_addresses_loses_no_event() {
    netlab::require_root!();
    let topo = three_hosts("mwb");
    let addrs: BTreeSet<IpAddr> = (1..=1000u32)
        .map(|i| format!("2001:db8:1::{i:x}").parse().unwrap())
        .collect();
    let clock = LabClock::new();
    let w = MultiAddrWatcher::start(&topo, &["a", "b", "c"], &addrs, clock).unwrap();
    let a = &topo.host("a").ns;
    let cmds = |verb: &str| -> Vec<String> {
        addrs
            .iter()
            .map(|ip| format!("addr {verb} {ip}/128 dev eth0 nodad"))
            .collect()
    };
    ip_batch(a, &cmds("add"));
    wait_until(&w, Duration::from_secs(10), "1000 on a", |h| {
        h.len() == 1000 && h.values().all(|hs| hs == &["a"])
    });
    ip_batch(a, &cmds("del"));
    wait_until(&w, Duration::from_secs(10), "all gone", |h| h.is_empty());
    let logs = w.stop();
    assert!(logs.values().all(|l| l.transitions().len() == 2));
    assert_eq!(
        logs.values()
            .map(|l| l.two_holder_time(Duration::ZERO..clock.now()))
            .sum::<Duration>(),
        Duration::ZERO
    );
}
