//! The router harness against itself: gobgpd, BIRD and FRR peering each other
//! in namespaces (vipd's own speaker takes gobgpd's place later).
//!
//! Every test prints its measured times (`cargo test -p netlab --test router
//! -- --nocapture`).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
#![allow(clippy::disallowed_types)] // wall-clock timing of real processes

use netlab::router::{
    kernel_next_hops, BfdState, Family, Neighbor, Prefix, RibEntry, Router, RouterConfig,
    RouterKind,
};
use netlab::{Topology, TopologyBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const SPEAKER_AS: u32 = 64501;
const FRR_AS: u32 = 64502;
const BIRD_AS: u32 = 64503;
const SETUP: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Skips (with a message) unless root and every router is installed.
fn have_routers(kinds: &[RouterKind]) -> bool {
    if !netlab::is_root() {
        eprintln!("SKIPPED: this test needs root (network namespaces)");
        return false;
    }
    for k in kinds {
        if !k.installed() {
            eprintln!("SKIPPED: {k} not installed (scripts/install-deps.sh)");
            return false;
        }
    }
    true
}

/// One LAN; each host gets 192.0.2.X/24 and 2001:db8::X/64.
fn lan(tag: &str, hosts: &[(&str, u8)]) -> Topology {
    let mut b = TopologyBuilder::new(&netlab::unique_prefix(tag));
    for (name, x) in hosts {
        b = b.host(
            name,
            &[
                (ip(&format!("192.0.2.{x}")), 24),
                (ip(&format!("2001:db8::{x}")), 64),
            ],
        );
    }
    b.build().unwrap()
}

fn ns(topo: &Topology, host: &str) -> String {
    topo.host(host).ns.name().to_string()
}

fn has_path(routes: &[RibEntry], prefix: Prefix, via: IpAddr) -> bool {
    routes
        .iter()
        .any(|e| e.prefix == prefix && e.next_hops.contains(&via) && e.from_peer == Some(via))
}

fn has_prefix(routes: &[RibEntry], prefix: Prefix) -> bool {
    routes.iter().any(|e| e.prefix == prefix)
}

/// Runs `n` RIB queries and prints min/avg/max: the resolution of every
/// "route gone at the router" time the lab measures with this router.
fn time_queries(r: &Router, family: Family, n: u32) -> Duration {
    let mut all = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        r.routes(family).unwrap();
        all.push(t.elapsed());
    }
    let sum: Duration = all.iter().sum();
    let avg = sum / n;
    eprintln!(
        "CLI RIB query {}: min {:?} avg {:?} max {:?} over {n}: `{}`",
        r.kind(),
        all.iter().min().unwrap(),
        avg,
        all.iter().max().unwrap(),
        r.routes_command(family)
    );
    avg
}

/// gobgpd (in `a`) announces a /32 and a /128 to FRR (`b`) and BIRD (`c`),
/// each over an IPv4 and an IPv6 session; a graceful stop of gobgpd removes
/// them at both; FRR restarted comes back to the same routes.
#[test]
fn gobgp_routes_reach_frr_and_bird_and_go_when_it_stops() {
    if !have_routers(&[RouterKind::Gobgp, RouterKind::Frr, RouterKind::Bird]) {
        return;
    }
    let topo = lan("rt", &[("a", 1), ("b", 2), ("c", 3)]);
    let (a4, a6) = (ip("192.0.2.1"), ip("2001:db8::1"));

    let mut g = RouterConfig::new(
        RouterKind::Gobgp,
        &ns(&topo, "a"),
        v4("192.0.2.1"),
        SPEAKER_AS,
    );
    g.listen = vec![a4, a6];
    for (x, asn) in [(2, FRR_AS), (3, BIRD_AS)] {
        g.neighbors
            .push(Neighbor::new(ip(&format!("192.0.2.{x}")), asn));
        g.neighbors
            .push(Neighbor::new(ip(&format!("2001:db8::{x}")), asn));
    }
    // The routers accept, the announcer connects: like our speaker.
    let router_cfg = |kind, host: &str, x: u8, asn| {
        let mut c = RouterConfig::new(kind, &ns(&topo, host), v4(&format!("192.0.2.{x}")), asn);
        c.listen = vec![ip(&format!("192.0.2.{x}")), ip(&format!("2001:db8::{x}"))];
        c.neighbors = vec![
            Neighbor::new(a4, SPEAKER_AS).passive(),
            Neighbor::new(a6, SPEAKER_AS).passive(),
        ];
        c
    };
    let mut frr = Router::spawn(router_cfg(RouterKind::Frr, "b", 2, FRR_AS)).unwrap();
    let bird = Router::spawn(router_cfg(RouterKind::Bird, "c", 3, BIRD_AS)).unwrap();
    let mut gobgp = Router::spawn(g).unwrap();

    for r in [&frr, &bird] {
        for a in [a4, a6] {
            let t = r.wait_established(a, SETUP).unwrap();
            eprintln!("{} session with {a} established after {t:?}", r.kind());
        }
    }
    let p4: Prefix = "203.0.113.10/32".parse().unwrap();
    let p6: Prefix = "2001:db8:99::10/128".parse().unwrap();
    gobgp.announce(p4).unwrap();
    gobgp.announce(p6).unwrap();
    let local = gobgp.routes(Family::Ipv4).unwrap();
    assert!(
        local
            .iter()
            .any(|e| e.prefix == p4 && e.best && e.from_peer.is_none()),
        "gobgp's own RIB holds its route: {local:?}"
    );
    for r in [&frr, &bird] {
        for (fam, p, via) in [(Family::Ipv4, p4, a4), (Family::Ipv6, p6, a6)] {
            // Best-path selection runs after the path is stored (FRR
            // queues it), so wait for the selected path, not just any.
            let (_, t) = r
                .wait_for(fam, Duration::from_secs(10), |rs| {
                    has_path(rs, p, via) && rs.iter().any(|e| e.prefix == p && e.best)
                })
                .unwrap();
            eprintln!("{p} via {via} selected at {} after {t:?}", r.kind());
        }
        // Nothing else arrived: the announcer's connected /24 and /64 are not announced.
        assert_eq!(r.routes(Family::Ipv4).unwrap().len(), 1);
    }
    for r in [&gobgp, &frr, &bird] {
        time_queries(r, Family::Ipv4, 20);
    }

    // Graceful stop: gobgpd sends a Cease NOTIFICATION and the routes go
    // at once, not after the 9 s hold time.
    let t = Instant::now();
    gobgp.stop().unwrap();
    for r in [&frr, &bird] {
        for (fam, p) in [(Family::Ipv4, p4), (Family::Ipv6, p6)] {
            r.wait_for(fam, Duration::from_secs(5), |rs| !has_prefix(rs, p))
                .unwrap();
            eprintln!(
                "{p} gone at {} {:?} after gobgpd's SIGTERM",
                r.kind(),
                t.elapsed()
            );
        }
    }
    assert!(
        gobgp.routes(Family::Ipv4).is_err(),
        "a stopped router has no CLI"
    );

    // Back again, and FRR restarted: sessions and routes recover.
    gobgp.start().unwrap();
    gobgp.announce(p4).unwrap();
    frr.restart().unwrap();
    frr.wait_established(a4, SETUP).unwrap();
    frr.wait_for(Family::Ipv4, Duration::from_secs(10), |rs| {
        has_path(rs, p4, a4)
    })
    .unwrap();
    bird.wait_for(Family::Ipv4, Duration::from_secs(10), |rs| {
        has_path(rs, p4, a4)
    })
    .unwrap();
    gobgp.withdraw(p4).unwrap();
    let (_, t) = frr
        .wait_for(Family::Ipv4, Duration::from_secs(5), |rs| {
            !has_prefix(rs, p4)
        })
        .unwrap();
    eprintln!("{p4} gone at frr {t:?} after `gobgp global rib del`");

    let dir = frr.dir().to_path_buf();
    drop(frr);
    assert!(!dir.exists(), "router directory removed on drop");
    assert!(
        topo.host("b").ns.pids().is_empty(),
        "no FRR daemon left in b"
    );
}

/// Two announcers of the same /32: FRR (`maximum-paths`, zebra) and BIRD
/// (`merge paths`, kernel protocol) hold both paths and install one multipath
/// kernel route; a client behind FRR reaches the address through it, and
/// losing one announcer leaves the other next hop.
#[test]
fn ecmp_two_announcers_end_in_the_kernel_as_one_multipath_route() {
    if !have_routers(&[RouterKind::Gobgp, RouterKind::Frr, RouterKind::Bird]) {
        return;
    }
    let topo = lan(
        "ecmp",
        &[
            ("a1", 11),
            ("a2", 12),
            ("frr", 2),
            ("bird", 3),
            ("client", 50),
        ],
    );
    let vip = ip("203.0.113.10");
    let p = Prefix::host(vip);
    let (a1, a2, r_frr, r_bird) = (
        ip("192.0.2.11"),
        ip("192.0.2.12"),
        ip("192.0.2.2"),
        ip("192.0.2.3"),
    );
    let mut announcers = Vec::new();
    let mut responders = Vec::new();
    for (host, me) in [("a1", a1), ("a2", a2)] {
        let h = topo.host(host);
        // The announcers really hold the address, so the client's ping is
        // answered by whichever one the router's hash picks.
        h.ns.ip(&["addr", "add", "203.0.113.10/32", "dev", "lo"])
            .unwrap();
        responders.push(netlab::Responder::start(&h.ns, host, 8080).unwrap());
        let IpAddr::V4(id) = me else { unreachable!() };
        let mut c = RouterConfig::new(RouterKind::Gobgp, h.ns.name(), id, SPEAKER_AS);
        c.listen = vec![me];
        c.neighbors = vec![Neighbor::new(r_frr, FRR_AS), Neighbor::new(r_bird, BIRD_AS)];
        announcers.push(Router::spawn(c).unwrap());
    }
    let routers: Vec<Router> = [
        (RouterKind::Frr, "frr", r_frr, FRR_AS),
        (RouterKind::Bird, "bird", r_bird, BIRD_AS),
    ]
    .into_iter()
    .map(|(kind, host, me, asn)| {
        let IpAddr::V4(id) = me else { unreachable!() };
        let mut c = RouterConfig::new(kind, &ns(&topo, host), id, asn);
        c.listen = vec![me];
        c.neighbors = vec![
            Neighbor::new(a1, SPEAKER_AS).passive(),
            Neighbor::new(a2, SPEAKER_AS).passive(),
        ];
        c.max_paths = 8;
        c.install_kernel = true;
        Router::spawn(c).unwrap()
    })
    .collect();
    for r in &announcers {
        r.announce(p).unwrap();
    }
    for r in &routers {
        let (rib, t) = r
            .wait_for(Family::Ipv4, SETUP, |rs| {
                let paths = || rs.iter().filter(|e| e.prefix == p);
                has_path(rs, p, a1)
                    && has_path(rs, p, a2)
                    && paths().filter(|e| e.best).count() == 1
                    // FRR flags the paths it uses besides the best one;
                    // BIRD merges only when exporting to the kernel.
                    && (r.kind() != RouterKind::Frr || paths().all(|e| e.best || e.multipath))
            })
            .unwrap();
        eprintln!("{}: both paths after {t:?}: {rib:?}", r.kind());
        let ns_name = &r.config().netns;
        let mut hops = poll_kernel(ns_name, p, 2);
        hops.sort();
        assert_eq!(
            hops,
            vec![a1, a2],
            "{} installs a multipath route",
            r.kind()
        );
    }

    // A client whose route to the VIP points at FRR reaches it.
    let frr_ns = &topo.host("frr").ns;
    frr_ns.sysctl("net.ipv4.ip_forward", "1").unwrap();
    // A redirect would send the client straight to an announcer.
    frr_ns
        .sysctl("net.ipv4.conf.all.send_redirects", "0")
        .unwrap();
    frr_ns
        .sysctl("net.ipv4.conf.eth0.send_redirects", "0")
        .unwrap();
    let client = &topo.host("client").ns;
    client
        .ip(&["route", "add", "203.0.113.10/32", "via", "192.0.2.2"])
        .unwrap();
    let first = ask(client, vip).unwrap();
    assert!(first == "a1" || first == "a2", "answered by {first:?}");

    // Announcer a1 stops (Cease NOTIFICATION): only a2 remains everywhere.
    let t = Instant::now();
    announcers[0].stop().unwrap();
    for r in &routers {
        r.wait_for(Family::Ipv4, Duration::from_secs(5), |rs| {
            !has_path(rs, p, a1) && has_path(rs, p, a2)
        })
        .unwrap();
        let hops = poll_kernel(&r.config().netns, p, 1);
        assert_eq!(hops, vec![a2], "{}", r.kind());
        eprintln!(
            "{}: a1's path gone from RIB and kernel {:?} after its stop",
            r.kind(),
            t.elapsed()
        );
    }
    assert_eq!(
        ask(client, vip).as_deref(),
        Some("a2"),
        "only a2 is routed to"
    );
}

/// Asks the VIP's responder (port 8080) from inside `ns`; `None` on failure.
fn ask(ns: &netlab::NetNs, vip: IpAddr) -> Option<String> {
    ns.enter(move || {
        use std::io::Read;
        let addr = std::net::SocketAddr::new(vip, 8080);
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out.trim().to_string())
    })
    .unwrap()
}

/// Waits (≤ 5 s) until the kernel route has `n` next hops; returns them.
fn poll_kernel(netns: &str, p: Prefix, n: usize) -> Vec<IpAddr> {
    let start = Instant::now();
    loop {
        let hops = kernel_next_hops(netns, p).unwrap();
        if hops.len() == n || start.elapsed() > Duration::from_secs(5) {
            return hops;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// TCP MD5 (RFC 2385) between gobgpd and FRR/BIRD: the right key
/// establishes, a wrong one never does.
#[test]
fn md5_key_must_match_for_the_session_to_come_up() {
    if !have_routers(&[RouterKind::Gobgp, RouterKind::Frr, RouterKind::Bird]) {
        return;
    }
    let topo = lan("md5", &[("good", 1), ("bad", 4), ("frr", 2), ("bird", 3)]);
    let (good, bad) = (ip("192.0.2.1"), ip("192.0.2.4"));
    let mut routers = Vec::new();
    for (kind, host, x, asn) in [
        (RouterKind::Frr, "frr", 2u8, FRR_AS),
        (RouterKind::Bird, "bird", 3, BIRD_AS),
    ] {
        let mut c = RouterConfig::new(kind, &ns(&topo, host), v4(&format!("192.0.2.{x}")), asn);
        c.neighbors = vec![
            Neighbor::new(good, SPEAKER_AS)
                .passive()
                .md5("lab-secret.1"),
            Neighbor::new(bad, SPEAKER_AS).passive().md5("lab-secret.1"),
        ];
        routers.push(Router::spawn(c).unwrap());
    }
    let mut speakers = Vec::new();
    for (host, id, key) in [
        ("good", "192.0.2.1", "lab-secret.1"),
        ("bad", "192.0.2.4", "wrong"),
    ] {
        let mut c = RouterConfig::new(RouterKind::Gobgp, &ns(&topo, host), v4(id), SPEAKER_AS);
        c.neighbors = vec![
            Neighbor::new(ip("192.0.2.2"), FRR_AS).md5(key),
            Neighbor::new(ip("192.0.2.3"), BIRD_AS).md5(key),
        ];
        speakers.push(Router::spawn(c).unwrap());
    }
    for r in &routers {
        let t = r.wait_established(good, SETUP).unwrap();
        eprintln!("{}: MD5 session with the right key after {t:?}", r.kind());
    }
    // gobgp retries every second: several attempts were refused by now.
    std::thread::sleep(Duration::from_secs(4));
    for r in &routers {
        let s = r.neighbor_state(bad).unwrap();
        assert!(
            !s.is_established(),
            "{}: wrong key established: {s:?}",
            r.kind()
        );
        assert!(r.neighbor_state(good).unwrap().is_established());
    }
    let s = speakers[1].neighbor_state(ip("192.0.2.2")).unwrap();
    assert!(!s.is_established(), "gobgp side agrees: {s:?}");
}

/// BFD (RFC 5880) from FRR to FRR and to BIRD at 100 ms × 3: SIGKILL of the
/// peer is seen as Down within the detection time, with the diagnostic,
/// and takes the BGP session down long before its 9 s hold time.
#[test]
fn bfd_sees_a_killed_peer_within_the_detection_time() {
    if !have_routers(&[RouterKind::Frr, RouterKind::Bird]) {
        return;
    }
    let topo = lan("bfd", &[("x", 1), ("y", 2), ("z", 3)]);
    let (x, y, z) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
    let (rx, tx, mult) = (100, 100, 3u8);
    let detect = Duration::from_millis(u64::from(rx) * u64::from(mult));

    let mut yc = RouterConfig::new(RouterKind::Frr, &ns(&topo, "y"), v4("192.0.2.2"), FRR_AS);
    yc.neighbors = vec![
        Neighbor::new(x, 64510).passive().bfd(rx, tx, mult),
        Neighbor::new(z, BIRD_AS).passive().bfd(rx, tx, mult),
    ];
    let ry = Router::spawn(yc).unwrap();
    let mut xc = RouterConfig::new(RouterKind::Frr, &ns(&topo, "x"), v4("192.0.2.1"), 64510);
    xc.neighbors = vec![Neighbor::new(y, FRR_AS).bfd(rx, tx, mult)];
    let mut rx_ = Router::spawn(xc).unwrap();
    let mut zc = RouterConfig::new(RouterKind::Bird, &ns(&topo, "z"), v4("192.0.2.3"), BIRD_AS);
    zc.neighbors = vec![Neighbor::new(y, FRR_AS).bfd(rx, tx, mult)];
    let mut rz = Router::spawn(zc).unwrap();

    for peer in [x, z] {
        ry.wait_established(peer, SETUP).unwrap();
    }
    let up = |r: &Router, peer: IpAddr| {
        r.bfd_peers()
            .unwrap()
            .iter()
            .any(|b| b.peer == peer && b.state == BfdState::Up)
    };
    let start = Instant::now();
    while !(up(&ry, x) && up(&ry, z) && up(&rx_, y) && up(&rz, y)) {
        assert!(
            start.elapsed() < SETUP,
            "BFD not up everywhere: y {:?}, x {:?}, z {:?}",
            ry.bfd_peers(),
            rx_.bfd_peers(),
            rz.bfd_peers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    ry.bfd_peers().unwrap();
    eprintln!("CLI BFD query frr: {:?}", t.elapsed());

    for (name, peer, victim) in [("frr x", x, &mut rx_), ("bird z", z, &mut rz)] {
        let t = Instant::now();
        victim.kill().unwrap();
        let down = loop {
            let peers = ry.bfd_peers().unwrap();
            if let Some(b) = peers
                .iter()
                .find(|b| b.peer == peer && b.state != BfdState::Up)
            {
                break (t.elapsed(), b.clone());
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "BFD still up: {peers:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let bgp_down = loop {
            if !ry.neighbor_state(peer).unwrap().is_established() {
                break t.elapsed();
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "BGP with {peer} still up"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        eprintln!(
            "SIGKILL {name}: BFD {:?} at frr y after {:?} (detection {detect:?}), diag {:?}; BGP down after {bgp_down:?}",
            down.1.state, down.0, down.1.diagnostic
        );
        assert_eq!(down.1.state, BfdState::Down);
        assert_eq!(
            down.1.diagnostic.as_deref(),
            Some("control detection time expired")
        );
        // Detection time plus one query and a little scheduling slack.
        assert!(
            down.0 < detect + Duration::from_millis(200),
            "BFD down after {:?}",
            down.0
        );
        assert!(
            bgp_down < Duration::from_secs(2),
            "BGP followed BFD: {bgp_down:?}"
        );
    }
}

/// A SIGKILLed router (stale sockets and pid files left behind) starts again
/// and answers its CLI; every process is gone after drop.
#[test]
fn routers_start_again_after_sigkill() {
    if !have_routers(&[RouterKind::Gobgp, RouterKind::Frr, RouterKind::Bird]) {
        return;
    }
    let topo = lan("kill", &[("a", 1)]);
    for kind in [RouterKind::Gobgp, RouterKind::Bird, RouterKind::Frr] {
        let mut c = RouterConfig::new(kind, &ns(&topo, "a"), v4("192.0.2.1"), SPEAKER_AS);
        c.neighbors = vec![Neighbor::new(ip("192.0.2.9"), FRR_AS).passive()];
        let mut r = Router::spawn(c).unwrap();
        assert!(r.routes(Family::Ipv4).unwrap().is_empty());
        let first = r.pids();
        r.kill().unwrap();
        assert!(!r.is_running());
        assert!(matches!(
            r.routes(Family::Ipv4),
            Err(netlab::router::RouterError::NotRunning { .. })
        ));
        r.start().unwrap();
        assert!(r.is_running());
        assert_ne!(r.pids(), first, "{kind}: new processes");
        let s = r.neighbor_state(ip("192.0.2.9")).unwrap();
        assert!(!s.is_established(), "{kind}: nobody at 192.0.2.9: {s:?}");
        assert!(matches!(
            r.neighbor_state(ip("192.0.2.8")),
            Err(netlab::router::RouterError::NoSuchNeighbor { .. })
        ));
        drop(r);
        assert!(
            topo.host("a").ns.pids().is_empty(),
            "{kind}: nothing left in the namespace"
        );
    }
}
