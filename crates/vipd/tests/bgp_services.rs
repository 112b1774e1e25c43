//! BGP mode for Services end to end (issue 14): real `vipd run` processes
//! with kube-vip's `svc_enable` + `bgp_*` environment, reading
//! LoadBalancer Services and EndpointSlices from the in-repo Kubernetes
//! API TEST server (`vipd-kube-testserver`, not a kube-apiserver), and
//! announcing the Service addresses to a real FRR router. Checked from the
//! router's own CLI.
//!
//! - `externalTrafficPolicy: Cluster` → every node announces;
//! - `Local` → only nodes hosting a ready endpoint, and a rolling update
//!   on a node never withdraws while one ready endpoint remains there
//!   (kube-vip #1397);
//! - status carries the address, no `vipHost` (many nodes announce);
//! - SIGTERM withdraws before the addresses go; no stale route at the end.
//!
//! Times are printed (`cargo test -p vipd --test bgp_services --
//! --nocapture`); assertions hold only generous liveness bounds.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
#![allow(clippy::disallowed_types)] // wall-clock timing of real processes

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::k8s::{meta, to_value};
use common::kube::KubeApi;
use common::routed::{have_frr, ip, node_ip};
use k8s_openapi::api::core::v1::{Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use netlab::router::{Family, Neighbor, Router, RouterConfig, RouterKind};
use netlab::{Topology, TopologyBuilder};
use serde_json::Value;

const CLUSTER_IP: &str = "203.0.113.20";
const LOCAL_IP: &str = "203.0.113.21";
const NODE_AS: u32 = 65001;
const ROUTER_AS: u32 = 65000;
const SETUP: Duration = Duration::from_secs(30);

fn node(name: &str) -> Value {
    to_value(
        "Node",
        "v1",
        &Node {
            metadata: meta(None, name),
            ..Node::default()
        },
    )
}

fn service(name: &str, addr: &str, local: bool) -> Value {
    let mut m = meta(Some("default"), name);
    m.annotations = Some(BTreeMap::from([(
        "kube-vip.io/loadbalancerIPs".to_string(),
        addr.to_string(),
    )]));
    to_value(
        "Service",
        "v1",
        &Service {
            metadata: m,
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some(if local { "Local" } else { "Cluster" }.into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
    )
}

/// The Service's one EndpointSlice with `(pod address, node, ready)`.
fn slice(service: &str, eps: &[(&str, &str, bool)]) -> Value {
    let mut m = meta(Some("default"), &format!("{service}-abc"));
    m.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_string(),
        service.to_string(),
    )]));
    to_value(
        "EndpointSlice",
        "discovery.k8s.io/v1",
        &EndpointSlice {
            metadata: m,
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .map(|(addr, node, ready)| Endpoint {
                    addresses: vec![(*addr).into()],
                    node_name: Some((*node).into()),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        serving: Some(true),
                        terminating: Some(!*ready),
                    }),
                    ..Endpoint::default()
                })
                .collect(),
            ports: None,
        },
    )
}

/// Next hops per announced address, as the router shows them.
type Paths = BTreeMap<IpAddr, BTreeSet<IpAddr>>;

/// r1 = FRR (.1), the API test server (.2), nodes n1.. (.11..).
struct Lab {
    topo: Topology,
    router: Router,
    api: KubeApi,
    nodes: Vec<(String, Child)>,
    logs: PathBuf,
    /// Flags after `run` for every node started from now on.
    args: Vec<String>,
}

impl Lab {
    fn new(tag: &str, nodes: usize) -> Lab {
        let mut b = TopologyBuilder::new(&netlab::unique_prefix(tag))
            .host("r1", &[(ip("192.0.2.1"), 24)])
            .host("api", &[(ip(common::API_IP), 24)]);
        for i in 1..=nodes {
            b = b.host(&format!("n{i}"), &[(node_ip(i), 24)]);
        }
        let topo = b.build().unwrap();
        let mut cfg = RouterConfig::new(
            RouterKind::Frr,
            topo.host("r1").ns.name(),
            Ipv4Addr::new(192, 0, 2, 1),
            ROUTER_AS,
        );
        cfg.listen = vec![ip("192.0.2.1")];
        cfg.max_paths = 4;
        for i in 1..=nodes {
            cfg.neighbors
                .push(Neighbor::new(node_ip(i), NODE_AS).passive());
        }
        let router = Router::spawn(cfg).unwrap();
        let logs = std::env::temp_dir().join(netlab::unique_prefix(&format!("{tag}-logs")));
        std::fs::create_dir_all(&logs).unwrap();
        let api = KubeApi::start(&topo.host("api").ns, &logs).unwrap();
        Lab {
            topo,
            router,
            api,
            nodes: Vec::new(),
            args: Vec::new(),
            logs,
        }
    }

    /// `vipd run` on `node` configured as a kube-vip user would.
    fn start(&mut self, node: &str) {
        self.start_with(node, &[]);
    }

    /// [`Lab::start`] plus `extra` environment (an empty value removes a
    /// variable).
    fn start_with(&mut self, node: &str, extra: &[(&str, &str)]) {
        let host = self.topo.host(node);
        let me = host.ipv4().unwrap().to_string();
        let log = std::fs::File::create(self.logs.join(format!("{node}.log"))).unwrap();
        let mut cmd = host.ns.command(env!("CARGO_BIN_EXE_vipd"));
        cmd.arg("run")
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("svc_enable", "true")
            .env("vip_interface", "lo")
            .env("vip_nodename", node)
            .env("k8s_config_file", self.api.kubeconfig_path())
            .env("bgp_enable", "true")
            .env("bgp_routerid", &me)
            .env("bgp_as", NODE_AS.to_string())
            .env("bgp_peers", format!("192.0.2.1:{ROUTER_AS}"))
            .env("bgp_hold_time", "9")
            .env("bgp_keepalive_interval", "3")
            .env("prometheus_server", format!("{me}:2112"))
            .env("vip_loglevel", "debug")
            .env("VIPD_HEALTH_CHECKS", "none")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        // An empty value removes the variable.
        for (k, v) in extra {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        self.nodes.push((node.to_string(), cmd.spawn().unwrap()));
    }

    fn child(&mut self, node: &str) -> &mut Child {
        &mut self.nodes.iter_mut().find(|(n, _)| n == node).unwrap().1
    }

    /// Nodes started from now on vote in a quorum of n1..n3 (kube-vip's
    /// environment plus vipd's `--coordination quorum` flags).
    fn quorum(&mut self) {
        let key = self.logs.join("peer.key");
        std::fs::write(
            &key,
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        self.args = [
            "--coordination",
            "quorum",
            "--peers",
            "n1=192.0.2.11:7480,n2=192.0.2.12:7480,n3=192.0.2.13:7480",
            "--peer-key-file",
            &key.display().to_string(),
            "--quorum-promise",
            "0.6",
            "--quorum-heartbeat",
            "0.1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    }

    /// Polls the router's paths every 10 ms until `done` holds; returns
    /// how long that took (panics with every log after [`SETUP`]).
    fn wait_until(&self, done: impl Fn(&Paths) -> bool) -> Duration {
        let t = Instant::now();
        loop {
            let p = self.paths();
            if done(&p) {
                return t.elapsed();
            }
            assert!(t.elapsed() < SETUP, "paths {p:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Samples the router's paths every 20 ms for `span`, `check`ing each;
    /// returns the number of samples.
    fn hold(&self, span: Duration, check: impl Fn(&Paths)) -> usize {
        let (t, mut n) = (Instant::now(), 0);
        while t.elapsed() < span {
            check(&self.paths());
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
        n
    }

    /// The node whose address is `a`.
    fn node_at(&self, a: IpAddr) -> &'static str {
        ["n1", "n2", "n3"]
            .into_iter()
            .find(|n| self.topo.host(n).ipv4() == Some(a))
            .unwrap()
    }

    /// Waits until exactly one node announces `addr`; returns it.
    fn sole_path(&self, addr: &str) -> IpAddr {
        let t = Instant::now();
        loop {
            let p = self.paths();
            if let Some(h) = p.get(&ip(addr)) {
                assert_eq!(
                    h.len(),
                    1,
                    "one node announces {addr}: {p:?}\n{}",
                    self.logs()
                );
                return *h.iter().next().unwrap();
            }
            assert!(
                t.elapsed() < SETUP,
                "{addr} never announced: {p:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` (`TERM`, `KILL`) to `node`'s vipd.
    fn signal(&mut self, node: &str, sig: &str) {
        let pid = self.child(node).id().to_string();
        std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
    }

    /// Waits (at most [`SETUP`]) until `node`'s vipd exited 0.
    fn wait_clean_exit(&mut self, node: &str) {
        let t = Instant::now();
        let st = loop {
            if let Some(st) = self.child(node).try_wait().unwrap() {
                break st;
            }
            assert!(
                t.elapsed() < SETUP,
                "{node} did not exit\n{}",
                self.log(node)
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(st.success(), "{}", self.log(node));
    }

    fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.logs.join(format!("{node}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|(n, _)| format!("--- {n}\n{}", self.log(n)))
            .collect()
    }

    /// Next hops per announced address in the router's BGP table.
    fn paths(&self) -> Paths {
        let mut out: BTreeMap<IpAddr, BTreeSet<IpAddr>> = BTreeMap::new();
        for e in self.router.routes(Family::Ipv4).unwrap() {
            out.entry(e.prefix.addr)
                .or_default()
                .extend(e.next_hops.iter().copied());
        }
        out
    }

    /// Waits until the router shows exactly `want` (address → next hops).
    fn wait_paths(&self, want: &[(&str, &[usize])], timeout: Duration) -> Duration {
        let want: BTreeMap<IpAddr, BTreeSet<IpAddr>> = want
            .iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(a, n)| (ip(a), n.iter().map(|i| node_ip(*i)).collect()))
            .collect();
        let t = Instant::now();
        loop {
            let got = self.paths();
            if got == want {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < timeout,
                "router paths {got:?}, want {want:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn service_json(&self, name: &str) -> Value {
        let name = name.to_string();
        self.api
            .call(move |s| s.get_object("v1", "Service", "default", &name))
            .unwrap()
    }

    fn has_addr(&self, node: &str, addr: &str) -> bool {
        self.topo
            .host(node)
            .ns
            .ip(&["-4", "addr", "show", "dev", "lo"])
            .unwrap()
            .contains(&format!("{addr}/32"))
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
fn services_are_announced_by_eligible_nodes_and_a_rolling_update_never_withdraws_a_serving_node() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpsvc", 3);
    for n in ["n1", "n2", "n3"] {
        lab.api.put_object(node(n));
    }
    lab.api.put_object(service("web", CLUSTER_IP, false));
    lab.api.put_object(service("app", LOCAL_IP, true));
    // app: two pods on n1, one on n2.
    lab.api.put_object(slice(
        "app",
        &[
            ("198.51.100.110", "n1", true),
            ("198.51.100.111", "n1", true),
            ("198.51.100.210", "n2", true),
        ],
    ));
    for n in ["n1", "n2", "n3"] {
        lab.start(n);
    }
    let took = lab.wait_paths(&[(CLUSTER_IP, &[1, 2, 3]), (LOCAL_IP, &[1, 2])], SETUP);
    println!("BGP Services: Cluster from 3 nodes, Local from the 2 with endpoints, {took:?} after the last poll");
    assert!(lab.has_addr("n3", CLUSTER_IP) && !lab.has_addr("n3", LOCAL_IP));

    // Status: the address, and no single vipHost (every node announces).
    let t = Instant::now();
    loop {
        let svc = lab.service_json("web");
        let ingress = svc["status"]["loadBalancer"]["ingress"][0]["ip"].as_str();
        if ingress == Some(CLUSTER_IP) {
            assert!(
                svc["metadata"]["annotations"]["kube-vip.io/vipHost"].is_null(),
                "{svc}"
            );
            break;
        }
        assert!(t.elapsed() < SETUP, "no status on web: {svc}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Rolling update of app on n1, one pod at a time (new pod comes up,
    // old one terminates), while the router's paths are sampled: n1 must
    // never leave, since a ready endpoint remains on it at every step.
    let steps: [&[(&str, &str, bool)]; 4] = [
        &[
            ("198.51.100.110", "n1", true),
            ("198.51.100.111", "n1", true),
            ("198.51.100.112", "n1", false),
            ("198.51.100.210", "n2", true),
        ],
        &[
            ("198.51.100.110", "n1", false),
            ("198.51.100.111", "n1", true),
            ("198.51.100.112", "n1", true),
            ("198.51.100.210", "n2", true),
        ],
        &[
            ("198.51.100.111", "n1", false),
            ("198.51.100.112", "n1", true),
            ("198.51.100.113", "n1", false),
            ("198.51.100.210", "n2", true),
        ],
        &[
            ("198.51.100.112", "n1", true),
            ("198.51.100.113", "n1", true),
            ("198.51.100.210", "n2", true),
        ],
    ];
    let mut samples = 0;
    for step in steps {
        lab.api.put_object(slice("app", step));
        samples += lab.hold(Duration::from_millis(500), |p| {
            let hops = p.get(&ip(LOCAL_IP)).cloned().unwrap_or_default();
            assert!(
                hops.contains(&node_ip(1)) && hops.contains(&node_ip(2)),
                "a node with a ready endpoint lost its path during the rolling update: {p:?}\n{}",
                lab.logs()
            );
        });
    }
    println!("BGP Services: rolling update on n1, {samples} router samples, n1's path never left");

    // The last pod on n2 goes: n2 withdraws app, keeps web.
    let t = Instant::now();
    lab.api.put_object(slice(
        "app",
        &[
            ("198.51.100.112", "n1", true),
            ("198.51.100.113", "n1", true),
            ("198.51.100.210", "n2", false),
        ],
    ));
    lab.wait_paths(&[(CLUSTER_IP, &[1, 2, 3]), (LOCAL_IP, &[1])], SETUP);
    println!(
        "BGP Services: last ready endpoint on n2 gone → path withdrawn after {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    while lab.has_addr("n2", LOCAL_IP) {
        assert!(t.elapsed() < SETUP, "n2 kept {LOCAL_IP}");
        std::thread::sleep(Duration::from_millis(10));
    }

    // One replica left and it terminates before its successor is ready:
    // no ready endpoint anywhere, so the terminating-but-serving one
    // counts (kube-proxy serves it) and n1 keeps the route instead of the
    // address going dark everywhere; then the new pod on n1 turns ready.
    for step in [
        &[("198.51.100.112", "n1", false)][..],
        &[
            ("198.51.100.112", "n1", false),
            ("198.51.100.114", "n1", true),
        ][..],
    ] {
        lab.api.put_object(slice("app", step));
        lab.hold(Duration::from_millis(500), |p| {
            assert_eq!(
                p.get(&ip(LOCAL_IP)),
                Some(&BTreeSet::from([node_ip(1)])),
                "{step:?}: {p:?}\n{}",
                lab.logs()
            );
        });
    }

    // SIGTERM n1: its paths leave before its addresses, web stays on n2
    // and n3, app has nobody (no stale path).
    let t = Instant::now();
    lab.signal("n1", "TERM");
    lab.wait_paths(&[(CLUSTER_IP, &[2, 3]), (LOCAL_IP, &[])], SETUP);
    println!(
        "BGP Services: SIGTERM n1 → its paths gone at the router after {:?}",
        t.elapsed()
    );
    lab.wait_clean_exit("n1");
    assert!(!lab.has_addr("n1", CLUSTER_IP) && !lab.has_addr("n1", LOCAL_IP));
    // The Service is deleted: every path leaves, nothing stale.
    lab.api
        .call(|s| s.delete_object("v1", "Service", "default", "web"))
        .unwrap();
    let t = Instant::now();
    lab.wait_paths(&[], SETUP);
    println!(
        "BGP Services: Service deleted → paths gone after {:?}",
        t.elapsed()
    );
    // The addresses go after the routes and the withdraw drain.
    let t = Instant::now();
    while ["n2", "n3"].iter().any(|n| lab.has_addr(n, CLUSTER_IP)) {
        assert!(
            t.elapsed() < SETUP,
            "{CLUSTER_IP} kept after its Service went"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "BGP Services: addresses removed {:?} after the paths (withdraw drain 0.5 s)",
        t.elapsed()
    );
}

#[test]
fn with_svc_election_only_the_owner_announces_and_the_route_moves_on_sigterm() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpsvcel", 2);
    for n in ["n1", "n2"] {
        lab.api.put_object(node(n));
    }
    lab.api.put_object(service("web", CLUSTER_IP, false));
    // Lease settings short enough for a test; the owner is one node.
    let timing = [
        ("svc_election", "true"),
        ("vip_leaseduration", "3"),
        ("vip_renewdeadline", "2"),
        ("vip_retryperiod", "0.5"),
    ];
    lab.start_with("n1", &timing);
    lab.start_with("n2", &timing);
    let t = Instant::now();
    let owner = lab.sole_path(CLUSTER_IP);
    println!(
        "BGP Services with svc_election: {owner} announces, {:?} after start",
        t.elapsed()
    );
    let (from, to) = if owner == node_ip(1) {
        ("n1", 2)
    } else {
        ("n2", 1)
    };
    let t = Instant::now();
    lab.signal(from, "TERM");
    lab.wait_paths(&[(CLUSTER_IP, &[to])], SETUP);
    println!(
        "BGP Services with svc_election: SIGTERM of the owner → route on the other node after {:?}",
        t.elapsed()
    );
}

#[test]
fn the_control_plane_vip_and_services_share_one_session_per_router() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpsvccp", 1);
    lab.api.put_object(node("n1"));
    lab.api.put_object(service("web", CLUSTER_IP, false));
    lab.start_with("n1", &[("cp_enable", "true"), ("address", "203.0.113.10")]);
    let took = lab.wait_paths(&[("203.0.113.10", &[1]), (CLUSTER_IP, &[1])], SETUP);
    println!("BGP control plane + Services: both routes over one session {took:?} after start");
    // One session: a second speaker would have reset the first (FRR
    // takes one connection per neighbour), so the session counter is 1.
    let st = lab.router.neighbor_state(node_ip(1)).unwrap();
    assert!(format!("{st:?}").contains("Established"), "{st:?}");
    let t = Instant::now();
    lab.signal("n1", "TERM");
    lab.wait_paths(&[], SETUP);
    println!(
        "BGP control plane + Services: SIGTERM → both routes gone after {:?}",
        t.elapsed()
    );
    lab.wait_clean_exit("n1");
    let log = lab.log("n1");
    assert_eq!(
        log.matches("starting BGP session").count(),
        1,
        "one speaker per process:\n{log}"
    );
}

#[test]
fn node_annotations_supply_as_router_id_and_peers_once_they_appear() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpsvcann", 1);
    lab.api.put_object(node("n1"));
    lab.api.put_object(service("web", CLUSTER_IP, false));
    // kube-vip's Equinix Metal form: no bgp_peers, no router ID in the
    // environment; the node's annotations carry them.
    lab.start_with(
        "n1",
        &[
            ("annotation", "metal.equinix.com"),
            ("bgp_peers", ""),
            ("bgp_routerid", ""),
            ("bgp_as", ""),
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        lab.paths().is_empty(),
        "announced before the annotations exist"
    );
    assert!(
        lab.log("n1").contains("waiting"),
        "no waiting message:\n{}",
        lab.log("n1")
    );
    let mut n = node("n1");
    n["metadata"]["annotations"] = serde_json::json!({
        "metal.equinix.com/node-asn": NODE_AS.to_string(),
        "metal.equinix.com/src-ip": "192.0.2.11",
        "metal.equinix.com/peer-asn": ROUTER_AS.to_string(),
        "metal.equinix.com/peer-ip": "192.0.2.1",
    });
    let t = Instant::now();
    lab.api.put_object(n);
    lab.wait_paths(&[(CLUSTER_IP, &[1])], SETUP);
    println!(
        "BGP node annotations: route announced {:?} after the annotations appeared",
        t.elapsed()
    );
}

/// Host routes in `node`'s table 198 with protocol 248 (routing-table mode).
fn table_routes(lab: &Lab, node: &str) -> BTreeSet<String> {
    let out = lab
        .topo
        .host(node)
        .ns
        .ip(&["-4", "route", "show", "table", "198", "proto", "248"])
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn routing_table_mode_writes_service_routes_where_they_may_be_served() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("tblsvc", 2);
    for n in ["n1", "n2"] {
        lab.api.put_object(node(n));
    }
    lab.api.put_object(service("web", CLUSTER_IP, false));
    lab.api.put_object(service("app", LOCAL_IP, true));
    lab.api
        .put_object(slice("app", &[("198.51.100.110", "n1", true)]));
    // kube-vip's routing-table variables instead of BGP.
    let table = [
        ("bgp_enable", ""),
        ("bgp_peers", ""),
        ("bgp_routerid", ""),
        ("bgp_as", ""),
        ("vip_routingtable", "true"),
    ];
    lab.start_with("n1", &table);
    lab.start_with("n2", &table);
    let want = |n1: &[&str], n2: &[&str]| {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        (set(n1), set(n2))
    };
    let wait = |lab: &Lab, w: (BTreeSet<String>, BTreeSet<String>)| {
        let t = Instant::now();
        loop {
            let got = (table_routes(lab, "n1"), table_routes(lab, "n2"));
            if got == w {
                return t.elapsed();
            }
            assert!(
                t.elapsed() < SETUP,
                "routes {got:?}, want {w:?}\n{}",
                lab.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let took = wait(&lab, want(&[CLUSTER_IP, LOCAL_IP], &[CLUSTER_IP]));
    println!(
        "routing table Services: Cluster on both nodes, Local only with the endpoint, {took:?}"
    );
    assert!(lab.has_addr("n1", LOCAL_IP) && !lab.has_addr("n2", LOCAL_IP));
    // The endpoint moves to n2: the route follows.
    lab.api
        .put_object(slice("app", &[("198.51.100.210", "n2", true)]));
    let took = wait(&lab, want(&[CLUSTER_IP], &[CLUSTER_IP, LOCAL_IP]));
    println!("routing table Services: endpoint moved, route followed after {took:?}");
    // SIGTERM n1: its route goes before its address, n2 keeps its own.
    lab.signal("n1", "TERM");
    let took = wait(&lab, want(&[], &[CLUSTER_IP, LOCAL_IP]));
    println!("routing table Services: SIGTERM n1 → its routes gone after {took:?}");
    lab.wait_clean_exit("n1");
    assert!(!lab.has_addr("n1", CLUSTER_IP));
    if std::env::var_os("VIPD_TEST_SHOW_LOG").is_some() {
        println!("{}", lab.log("n1"));
    }
}

#[test]
fn with_lease_election_only_the_holder_announces_the_vip_and_a_killed_holder_is_replaced() {
    if !have_frr() {
        return;
    }
    const VIP: &str = "203.0.113.10";
    let mut lab = Lab::new("bgplease", 2);
    // Control plane only, elected through a Kubernetes Lease (the test
    // server), kube-vip's vip_leaderelection with short lease timings.
    let env = [
        ("svc_enable", ""),
        ("cp_enable", "true"),
        ("address", VIP),
        ("vip_leaderelection", "true"),
        ("vip_leaseduration", "3"),
        ("vip_renewdeadline", "2"),
        ("vip_retryperiod", "0.5"),
    ];
    lab.start_with("n1", &env);
    lab.start_with("n2", &env);
    let t = Instant::now();
    let holder = lab.sole_path(VIP);
    println!(
        "BGP lease election: {holder} holds and announces, {:?} after start",
        t.elapsed()
    );
    // And stays alone (the follower never announces).
    lab.hold(Duration::from_secs(1), |p| {
        assert_eq!(p.get(&ip(VIP)).map(BTreeSet::len), Some(1), "{p:?}");
    });
    let (dead, other) = if holder == node_ip(1) {
        ("n1", 2)
    } else {
        ("n2", 1)
    };
    // SIGKILL: the kernel closes the session (the router drops the path at
    // once); the other node announces after the lease expires.
    let t = Instant::now();
    lab.signal(dead, "KILL");
    lab.wait_paths(&[(VIP, &[other])], SETUP);
    println!(
        "BGP lease election: SIGKILL of the holder → route on the other node after {:?} (lease 3 s)",
        t.elapsed()
    );
}

#[test]
fn on_the_quorum_the_holder_announces_the_vip_and_every_node_the_services() {
    if !have_frr() {
        return;
    }
    const VIP: &str = "203.0.113.10";
    let mut lab = Lab::new("bgpquorum", 3);
    for n in ["n1", "n2", "n3"] {
        lab.api.put_object(node(n));
    }
    lab.api.put_object(service("web", CLUSTER_IP, false));
    lab.quorum();
    let env = [("cp_enable", "true"), ("address", VIP)];
    for n in ["n1", "n2", "n3"] {
        lab.start_with(n, &env);
    }
    let t = Instant::now();
    lab.wait_until(|p| p.get(&ip(CLUSTER_IP)).map(BTreeSet::len) == Some(3));
    let holder = lab.sole_path(VIP);
    println!(
        "BGP on the quorum: {holder} announces the VIP, all 3 the Service, {:?} after start",
        t.elapsed()
    );
    let t = Instant::now();
    lab.signal(lab.node_at(holder), "KILL");
    // The VIP moves to one live node; the Service keeps the live two.
    lab.wait_until(|p| {
        let vip = p.get(&ip(VIP)).cloned().unwrap_or_default();
        let web = p.get(&ip(CLUSTER_IP)).cloned().unwrap_or_default();
        vip.len() == 1 && !vip.contains(&holder) && web.len() == 2 && !web.contains(&holder)
    });
    println!(
        "BGP on the quorum: SIGKILL of the holder → VIP on a new holder, Service on the live two, after {:?}",
        t.elapsed()
    );
}

#[test]
fn with_svc_election_on_the_quorum_the_granted_owner_announces_and_a_killed_owner_is_replaced() {
    if !have_frr() {
        return;
    }
    let mut lab = Lab::new("bgpqsvc", 3);
    for n in ["n1", "n2", "n3"] {
        lab.api.put_object(node(n));
    }
    lab.api.put_object(service("web", CLUSTER_IP, false));
    lab.quorum();
    for n in ["n1", "n2", "n3"] {
        lab.start_with(n, &[("svc_election", "true")]);
    }
    let t = Instant::now();
    let owner = lab.sole_path(CLUSTER_IP);
    println!(
        "BGP Services on the quorum with svc_election: {owner} (granted) announces, {:?} after start",
        t.elapsed()
    );
    // Stays alone.
    lab.hold(Duration::from_secs(1), |p| {
        assert_eq!(
            p.get(&ip(CLUSTER_IP)),
            Some(&BTreeSet::from([owner])),
            "{p:?}"
        );
    });
    let t = Instant::now();
    lab.signal(lab.node_at(owner), "KILL");
    lab.wait_until(|p| {
        let h = p.get(&ip(CLUSTER_IP)).cloned().unwrap_or_default();
        h.len() == 1 && !h.contains(&owner)
    });
    println!(
        "BGP Services on the quorum with svc_election: SIGKILL of the owner → another node announces after {:?}",
        t.elapsed()
    );
}
