//! [`AddrWatcher`] in real namespaces, next to the prober.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use netlab::probe::{last_server, longest_gap, servers};
use netlab::{AddrWatcher, LabClock, Prober, Responder, TopologyBuilder};
use std::net::IpAddr;
use std::time::Duration;

/// Real namespaces: a VIP moved by hand between two responders, with a
/// deliberate 200 ms overlap, then its holder's link set down.
#[test]
fn watcher_and_prober_follow_a_manual_move_in_namespaces() {
    netlab::require_root!();
    let v4 = |s: &str| -> (IpAddr, u8) { (s.parse().unwrap(), 24) };
    let topo = TopologyBuilder::new(&netlab::unique_prefix("wt"))
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
