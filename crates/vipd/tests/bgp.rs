//! BGP mode end to end (issue 14): real `vipd run` processes with
//! kube-vip's `bgp_*` environment, in namespaces, announcing the
//! control-plane VIP to a real FRR router, which spreads traffic over them
//! (ECMP) and installs the paths in its kernel. Checked from the router's
//! own CLI and kernel table, and from a client that pings the VIP through
//! the router.
//!
//! Times are printed (`cargo test -p vipd --test bgp -- --nocapture`);
//! assertions hold only generous liveness bounds.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
#![allow(clippy::disallowed_types)] // wall-clock timing of real processes

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use netlab::router::{
    kernel_next_hops, Family, Neighbor, Prefix, Router, RouterConfig, RouterKind,
};
use netlab::{Topology, TopologyBuilder};

mod common;
use common::routed::{have_frr, ip, node_ip};

const VIP: &str = "203.0.113.10";
const NODE_AS: u32 = 65001;
const ROUTER_AS: u32 = 65000;
const SETUP: Duration = Duration::from_secs(30);

/// r1 = FRR (.1), nodes n1 (.11) and n2 (.12), a client (.50) whose route
/// to the VIP goes through r1.
struct Lab {
    topo: Topology,
    router: Router,
    nodes: Vec<(String, Child)>,
    logs: PathBuf,
}

impl Lab {
    /// `nodes` nodes n1, n2, … at 192.0.2.11, .12, …
    fn new(tag: &str, bfd: bool, nodes: usize) -> Lab {
        let mut b = TopologyBuilder::new(&netlab::unique_prefix(tag))
            .host("r1", &[(ip("192.0.2.1"), 24)])
            .host("client", &[(ip("192.0.2.50"), 24)]);
        for i in 1..=nodes {
            b = b.host(&format!("n{i}"), &[(node_ip(i), 24)]);
        }
        let topo = b.build().unwrap();
        topo.host("r1")
            .ns
            .sysctl("net.ipv4.ip_forward", "1")
            .unwrap();
        // The router would otherwise tell the client to go straight to a
        // node on the shared LAN, which skips the ECMP choice.
        topo.host("r1")
            .ns
            .sysctl("net.ipv4.conf.all.send_redirects", "0")
            .unwrap();
        topo.host("r1")
            .ns
            .sysctl("net.ipv4.conf.eth0.send_redirects", "0")
            .unwrap();
        topo.host("client")
            .ns
            .ip(&["route", "add", &format!("{VIP}/32"), "via", "192.0.2.1"])
            .unwrap();
        let mut cfg = RouterConfig::new(
            RouterKind::Frr,
            topo.host("r1").ns.name(),
            Ipv4Addr::new(192, 0, 2, 1),
            ROUTER_AS,
        );
        cfg.listen = vec![ip("192.0.2.1")];
        cfg.max_paths = 4;
        cfg.install_kernel = true;
        for i in 1..=nodes {
            let mut nb = Neighbor::new(node_ip(i), NODE_AS).passive();
            if bfd {
                nb = nb.bfd(300, 300, 3);
            }
            cfg.neighbors.push(nb);
        }
        let router = Router::spawn(cfg).unwrap();
        let logs = std::env::temp_dir().join(netlab::unique_prefix(&format!("{tag}-logs")));
        std::fs::create_dir_all(&logs).unwrap();
        Lab {
            topo,
            router,
            nodes: Vec::new(),
            logs,
        }
    }

    /// `vipd run` on `node` configured as a kube-vip user would, plus
    /// `extra` environment.
    fn start(&mut self, node: &str, bfd: bool, extra: &[(&str, &str)]) {
        let host = self.topo.host(node);
        let me = host.ipv4().unwrap().to_string();
        let bfd_field = if bfd { ":::::true;300;300;3" } else { "" };
        let log = std::fs::File::create(self.logs.join(format!("{node}.log"))).unwrap();
        let mut cmd = host.ns.command(env!("CARGO_BIN_EXE_vipd"));
        cmd.arg("run")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("cp_enable", "true")
            .env("address", VIP)
            .env("vip_interface", "lo")
            .env("vip_nodename", node)
            .env("bgp_enable", "true")
            .env("bgp_routerid", &me)
            .env("bgp_as", NODE_AS.to_string())
            .env("bgp_peers", format!("192.0.2.1:{ROUTER_AS}{bfd_field}"))
            .env("bgp_hold_time", "9")
            .env("bgp_keepalive_interval", "3")
            .env("prometheus_server", format!("{me}:2112"))
            .env("vip_loglevel", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        self.nodes.push((node.to_string(), child));
    }

    fn child(&mut self, node: &str) -> &mut Child {
        &mut self.nodes.iter_mut().find(|(n, _)| n == node).unwrap().1
    }

    fn signal(&mut self, node: &str, sig: &str) {
        let pid = self.child(node).id().to_string();
        std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
    }

    fn wait_exit(&mut self, node: &str) -> std::process::ExitStatus {
        let t = Instant::now();
        loop {
            if let Some(st) = self.child(node).try_wait().unwrap() {
                return st;
            }
            assert!(
                t.elapsed() < SETUP,
                "{node} did not exit:\n{}",
                self.log(node)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{node}.log"))).unwrap_or_default()
    }

    /// Next hops of the VIP in the router's BGP table (waits for `want`).
    fn wait_paths(&self, want: &[&str], timeout: Duration) -> Duration {
        let want: Vec<IpAddr> = want.iter().map(|a| ip(a)).collect();
        let vip = Prefix::host(ip(VIP));
        let r = self.router.wait_for(Family::Ipv4, timeout, |rs| {
            let mut hops: Vec<IpAddr> = rs
                .iter()
                .filter(|e| e.prefix == vip)
                .flat_map(|e| e.next_hops.clone())
                .collect();
            hops.sort();
            hops.dedup();
            hops == want
        });
        match r {
            Ok((_, took)) => took,
            Err(e) => panic!(
                "router paths for {VIP} never became {want:?}: {e}\n{}",
                self.nodes
                    .iter()
                    .map(|(n, _)| format!("--- {n}\n{}", self.log(n)))
                    .collect::<String>()
            ),
        }
    }

    /// Waits until the router's kernel has `n` next hops for the VIP (zebra
    /// installs what bgpd selected a few milliseconds later).
    fn wait_kernel(&self, n: usize) {
        let t = Instant::now();
        loop {
            let hops =
                kernel_next_hops(self.topo.host("r1").ns.name(), Prefix::host(ip(VIP))).unwrap();
            if hops.len() == n {
                return;
            }
            assert!(
                t.elapsed() < SETUP,
                "router kernel next hops {hops:?}, want {n}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn has_vip(&self, node: &str) -> bool {
        self.topo
            .host(node)
            .ns
            .ip(&["-4", "addr", "show", "dev", "lo"])
            .unwrap()
            .contains(&format!("{VIP}/32"))
    }

    fn ping(&self) -> bool {
        self.topo
            .host("client")
            .ns
            .command("ping")
            .args(["-c", "1", "-W", "1", VIP])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn http(&self, node: &str, path: &str) -> String {
        let host = self.topo.host(node);
        let out = host
            .ns
            .command("curl")
            .args([
                "-s",
                "-m",
                "2",
                &format!("http://{}:2112{path}", host.ipv4().unwrap()),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, c) in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.logs);
    }
}

#[test]
fn every_healthy_node_announces_and_sigterm_withdraws_before_the_address_goes() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpe2e", false, 2);
    // No API server here: the default /livez gate would keep both nodes
    // ineligible (and unannounced), which the health test covers.
    lab.start(
        "n1",
        false,
        &[("vip_arp", "true"), ("VIPD_HEALTH_CHECKS", "none")],
    );
    lab.start("n2", false, &[("VIPD_HEALTH_CHECKS", "none")]);
    let took = lab.wait_paths(&["192.0.2.11", "192.0.2.12"], SETUP);
    println!("BGP ECMP: both nodes' paths at the router {took:?} after the last poll");
    assert!(lab.has_vip("n1") && lab.has_vip("n2"));
    // Both paths are in the router's kernel (ECMP), and the client reaches
    // the VIP through the router.
    lab.wait_kernel(2);
    assert!(lab.ping(), "client cannot reach the VIP through the router");
    // vip_arp is ignored in BGP mode, and says so.
    assert!(lab.log("n1").contains("vip_arp is ignored"));
    // /status and metrics show the session.
    let status = lab.http("n1", "/status");
    assert!(
        status.contains("\"mode\":\"ecmp\"") && status.contains("Established"),
        "{status}"
    );
    let metrics = lab.http("n1", "/metrics");
    assert!(
        metrics.contains("vipd_bgp_session_up{peer=\"192.0.2.1:179\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("bgp"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Graceful stop of n1: its path leaves the router, n2's stays, and
    // n1's address is gone only after the withdrawal (its log says so in
    // that order).
    let t = Instant::now();
    lab.signal("n1", "TERM");
    let gone = lab.wait_paths(&["192.0.2.12"], SETUP);
    let at = t.elapsed();
    assert!(lab.wait_exit("n1").success(), "{}", lab.log("n1"));
    println!("BGP SIGTERM: n1's path gone at the router after {at:?} (last poll {gone:?})");
    assert!(!lab.has_vip("n1"));
    let log = lab.log("n1");
    let w = log.find("withdrawing the route").unwrap_or(usize::MAX);
    let u = log.find("VIP unbound").unwrap_or(0);
    assert!(w < u, "withdraw must come before the address goes:\n{log}");
    assert!(lab.ping(), "n2 still serves");

    // SIGKILL of n2: the kernel closes its TCP session, the router drops
    // the path at once, and the address guard removes the address.
    let t = Instant::now();
    lab.signal("n2", "KILL");
    lab.wait_paths(&[], SETUP);
    println!(
        "BGP SIGKILL: n2's path gone at the router after {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    while lab.has_vip("n2") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "guard did not remove the VIP from n2"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // No stale route anywhere.
    lab.wait_kernel(0);
}

#[test]
fn a_failing_health_check_withdraws_and_recovery_announces_again() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgphc", false, 1);
    // The check is a TCP port in n1's namespace that the test opens and
    // closes.
    let listen = |lab: &Lab| {
        lab.topo
            .host("n1")
            .ns
            .enter(|| TcpListener::bind("127.0.0.1:18080").unwrap())
            .unwrap()
    };
    let l = listen(&lab);
    let hc = [
        ("VIPD_HEALTH_CHECKS", "tcp://127.0.0.1:18080"),
        ("VIPD_HEALTH_CHECK_PERIOD", "0.2"),
        ("VIPD_HEALTH_CHECK_TIMEOUT", "0.2"),
        ("VIPD_HEALTH_CHECK_FAILURE_THRESHOLD", "2"),
    ];
    lab.start("n1", false, &hc);
    lab.wait_paths(&["192.0.2.11"], SETUP);
    let t = Instant::now();
    drop(l);
    lab.wait_paths(&[], SETUP);
    println!(
        "BGP health failure: path gone at the router {:?} after the check target closed",
        t.elapsed()
    );
    let t = Instant::now();
    while lab.has_vip("n1") {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "VIP kept after the withdrawal"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _l = listen(&lab);
    let t = Instant::now();
    lab.wait_paths(&["192.0.2.11"], SETUP);
    println!(
        "BGP health recovery: announced again after {:?}",
        t.elapsed()
    );
    assert!(lab.has_vip("n1"));
}

/// BFD (kube-vip's 7th peer field `true;300;300;3`): a node that dies
/// without a word (its link goes down) loses its path at the router within
/// about a second, instead of the 9 s hold time.
#[test]
fn bfd_withdraws_a_dead_nodes_path_within_about_a_second() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpbfd", true, 2);
    lab.start("n1", true, &[("VIPD_HEALTH_CHECKS", "none")]);
    lab.start("n2", true, &[("VIPD_HEALTH_CHECKS", "none")]);
    lab.wait_paths(&["192.0.2.11", "192.0.2.12"], SETUP);
    // BFD Up on our side before the failure.
    let t = Instant::now();
    while !lab.http("n1", "/status").contains("\"state\":\"Up\"") {
        assert!(
            t.elapsed() < SETUP,
            "BFD never up: {}",
            lab.http("n1", "/status")
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    lab.topo.host("n1").link_down().unwrap();
    lab.wait_paths(&["192.0.2.12"], SETUP);
    let gone = t.elapsed();
    println!("BGP+BFD 300x3: dead node's path gone at the router after {gone:?} (hold time 9 s)");
    assert!(gone < Duration::from_secs(4), "BFD did not act: {gone:?}");
    lab.topo.host("n1").link_up().unwrap();
    let t = Instant::now();
    lab.wait_paths(&["192.0.2.11", "192.0.2.12"], Duration::from_secs(60));
    println!(
        "BGP+BFD: path back {:?} after the link returned",
        t.elapsed()
    );
}

/// With a quorum (SPEC §5a) only the holder announces; when it is killed
/// the route moves to the new holder, and there is never more than one
/// path at the router.
#[test]
fn with_a_quorum_only_the_holder_announces_and_the_route_follows_a_failover() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpq", false, 3);
    let key = lab.logs.join("peer.key");
    vipd_lab::cluster::write_peer_key(&key, 0o600).unwrap();
    let peers = (1..=3)
        .map(|i| format!("n{i}={}:{}", node_ip(i), vipd_quorum::DEFAULT_PORT))
        .collect::<Vec<_>>()
        .join(",");
    let key = key.display().to_string();
    let env = [
        ("VIPD_HEALTH_CHECKS", "none"),
        ("VIPD_COORDINATION", "quorum"),
        ("VIPD_BACKEND", "none"),
        ("VIPD_PEERS", peers.as_str()),
        ("VIPD_PEER_KEY_FILE", key.as_str()),
    ];
    for n in ["n1", "n2", "n3"] {
        lab.start(n, false, &env);
    }
    let vip = Prefix::host(ip(VIP));
    let one_path = |lab: &Lab, not: Option<IpAddr>| {
        let (rs, took) = lab
            .router
            .wait_for(Family::Ipv4, SETUP, |rs| {
                let hops: Vec<IpAddr> = rs
                    .iter()
                    .filter(|e| e.prefix == vip)
                    .flat_map(|e| e.next_hops.clone())
                    .collect();
                hops.len() == 1 && Some(hops[0]) != not
            })
            .unwrap();
        let hop = rs.iter().find(|e| e.prefix == vip).unwrap().next_hops[0];
        (hop, took)
    };
    let (holder, _) = one_path(&lab, None);
    let name = format!(
        "n{}",
        match holder {
            IpAddr::V4(a) => a.octets()[3] - 10,
            IpAddr::V6(_) => 0,
        }
    );
    // Stays one path for a while: followers never announce.
    std::thread::sleep(Duration::from_secs(2));
    let (still, _) = one_path(&lab, None);
    assert_eq!(still, holder);
    assert!(lab.http(&name, "/status").contains("\"mode\":\"leader\""));
    let t = Instant::now();
    lab.signal(&name, "KILL");
    let (next, _) = one_path(&lab, Some(holder));
    println!(
        "BGP+quorum: holder {name} killed → route moved to {next} after {:?}",
        t.elapsed()
    );
}

/// The MAC address of `node`'s eth0.
fn mac_of(lab: &Lab, node: &str) -> String {
    let out = lab
        .topo
        .host(node)
        .ns
        .ip(&["-j", "link", "show", "eth0"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["address"].as_str().unwrap().to_lowercase()
}

#[test]
fn the_kernel_does_not_answer_arp_for_the_vip_on_lo_unless_told_to_leave_the_node_alone() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgparp", false, 2);
    lab.start("n1", false, &[("VIPD_HEALTH_CHECKS", "none")]);
    lab.start(
        "n2",
        false,
        &[
            ("VIPD_HEALTH_CHECKS", "none"),
            ("VIPD_ROUTED_ARP_IGNORE", "false"),
        ],
    );
    lab.wait_paths(&["192.0.2.11", "192.0.2.12"], SETUP);
    assert!(lab.has_vip("n1") && lab.has_vip("n2"));
    // A LAN neighbour asks who has the VIP: only the node left alone
    // (kernel default arp_ignore=0) answers.
    let out = lab
        .topo
        .host("r1")
        .ns
        .command("arping")
        .args(["-c", "3", "-w", "3", "-I", "eth0", VIP])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    let (m1, m2) = (mac_of(&lab, "n1"), mac_of(&lab, "n2"));
    println!("arping {VIP} from the router:\n{text}");
    assert!(
        !text.contains(&m1),
        "n1 answered ARP for the VIP on lo:\n{text}"
    );
    assert!(
        text.contains(&m2),
        "the control (n2, left alone) did not answer:\n{text}"
    );
    let conf = |node: &str, key: &str| {
        let out = lab
            .topo
            .host(node)
            .ns
            .command("cat")
            .arg(format!("/proc/sys/net/ipv4/conf/eth0/{key}"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(conf("n1", "arp_ignore"), "1");
    assert_eq!(conf("n1", "arp_announce"), "2");
    assert_eq!(conf("n2", "arp_ignore"), "0");
    assert!(lab
        .log("n1")
        .contains("raised so the kernel neither answers ARP"));
}
