//! Services mode end to end (issue 5 §6): three real vipd processes with
//! `--services` against the in-repo Kubernetes API TEST server
//! (`vipd-kube-testserver`, not a kube-apiserver) inside the `api`
//! namespace; 20 LoadBalancer Services (some sharing an address, some
//! `externalTrafficPolicy: Local`, some without an address for IPAM).
//!
//! The truth is the kernel: which node has which Service address on `eth0`
//! (with carrier), watched from address and link events of all nodes in one
//! queue (`netlab::MultiAddrWatcher`). Every step asserts zero time with two
//! holders for every address (R1 per address). Lease settings: 3 s lease,
//! 2 s renew deadline, 0.5 s retry period (the `common` constants).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use common::k8s::{meta, to_value};
use common::{Backend, Cluster, Family, NODES};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use netlab::MultiAddrWatcher;
use serde_json::Value;

/// Liveness bound for every address to be announced after start.
const CONVERGE: Duration = Duration::from_secs(30);
/// Liveness bound for a dead node's addresses to move (lease expiry +
/// tombstone + a few retry periods).
const MOVE_BOUND: Duration = Duration::from_secs(15);

fn node(name: &str, zone: &str) -> Value {
    let mut m = meta(None, name);
    m.labels = Some(BTreeMap::from([(
        "topology.kubernetes.io/zone".to_string(),
        zone.to_string(),
    )]));
    to_value(
        "Node",
        "v1",
        &Node {
            metadata: m,
            ..Node::default()
        },
    )
}

fn service(name: &str, ips: Option<&str>, port: i32, local: bool) -> Value {
    let mut m = meta(Some("default"), name);
    if let Some(ips) = ips {
        m.annotations = Some(BTreeMap::from([(
            "kube-vip.io/loadbalancerIPs".to_string(),
            ips.to_string(),
        )]));
    }
    to_value(
        "Service",
        "v1",
        &Service {
            metadata: m,
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some(if local { "Local" } else { "Cluster" }.into()),
                ports: Some(vec![ServicePort {
                    port,
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
    )
}

fn slice(service: &str, node: &str) -> Value {
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
            endpoints: vec![Endpoint {
                addresses: vec!["192.0.2.200".into()],
                node_name: Some(node.into()),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            }],
            ports: None,
        },
    )
}

fn ipam_pool() -> Value {
    to_value(
        "ConfigMap",
        "v1",
        &ConfigMap {
            metadata: meta(Some("kube-system"), "kubevip"),
            data: Some(BTreeMap::from([(
                "range-global".to_string(),
                "203.0.113.10-203.0.113.14".to_string(),
            )])),
            ..ConfigMap::default()
        },
    )
}

/// The 20 Services: 10 with their own address (one of them dual-stack,
/// IPv4 + IPv6), 2 pairs sharing one, 2 `Local` ones whose only ready
/// endpoint is on n2, 4 for IPAM (19 addresses). Returns (name, its fixed
/// addresses; empty for IPAM's).
fn seed(c: &Cluster) -> Vec<(String, Vec<IpAddr>)> {
    let api = c.api();
    for (n, z) in [("n1", "zone-a"), ("n2", "zone-a"), ("n3", "zone-b")] {
        api.put_object(node(n, z));
    }
    api.put_object(ipam_pool());
    let mut out = Vec::new();
    for i in 0..9 {
        let ip = format!("198.51.100.{}", 10 + i);
        api.put_object(service(&format!("own-{i}"), Some(&ip), 80, false));
        out.push((format!("own-{i}"), vec![ip.parse().unwrap()]));
    }
    let mut dual = service("own-9", Some("198.51.100.19,2001:db8::19"), 80, false);
    dual["spec"]["ipFamilyPolicy"] = "RequireDualStack".into();
    dual["spec"]["ipFamilies"] = serde_json::json!(["IPv4", "IPv6"]);
    api.put_object(dual);
    out.push((
        "own-9".into(),
        vec![
            "198.51.100.19".parse().unwrap(),
            "2001:db8::19".parse().unwrap(),
        ],
    ));
    for (i, ip) in ["198.51.100.40", "198.51.100.41"].iter().enumerate() {
        api.put_object(service(&format!("share-{i}-a"), Some(ip), 80, false));
        api.put_object(service(&format!("share-{i}-b"), Some(ip), 443, false));
        out.push((format!("share-{i}-a"), vec![ip.parse().unwrap()]));
        out.push((format!("share-{i}-b"), vec![ip.parse().unwrap()]));
    }
    for i in 0..2 {
        let name = format!("local-{i}");
        let ip = format!("198.51.100.{}", 50 + i);
        api.put_object(slice(&name, "n2"));
        api.put_object(service(&name, Some(&ip), 80, true));
        out.push((name, vec![ip.parse().unwrap()]));
    }
    for i in 0..4 {
        api.put_object(service(&format!("ipam-{i}"), None, 80, false));
        out.push((format!("ipam-{i}"), Vec::new()));
    }
    assert_eq!(out.len(), 20);
    out
}

fn get_service(c: &Cluster, name: &str) -> Option<Value> {
    let name = name.to_string();
    c.api()
        .call(move |s| s.get_object("v1", "Service", "default", &name))
}

fn annotation(svc: &Value, key: &str) -> Option<String> {
    svc["metadata"]["annotations"][key]
        .as_str()
        .map(String::from)
}

fn ingress(svc: &Value) -> BTreeSet<String> {
    svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["ip"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Addresses of every Service as the API shows them now (IPAM included).
fn service_addresses(
    c: &Cluster,
    names: &[(String, Vec<IpAddr>)],
) -> BTreeMap<String, Vec<IpAddr>> {
    names
        .iter()
        .filter_map(|(n, fixed)| {
            if !fixed.is_empty() {
                return Some((n.clone(), fixed.clone()));
            }
            let ips: Vec<IpAddr> = get_service(c, n)
                .and_then(|s| annotation(&s, "kube-vip.io/loadbalancerIPs"))?
                .split(',')
                .filter_map(|a| a.trim().parse().ok())
                .collect();
            (!ips.is_empty()).then(|| (n.clone(), ips))
        })
        .collect()
}

/// Every fixed address of the seeded Services.
fn fixed_addresses(names: &[(String, Vec<IpAddr>)]) -> BTreeSet<IpAddr> {
    names.iter().flat_map(|(_, a)| a.iter().copied()).collect()
}

fn services_cluster(name: &str) -> Cluster {
    let mut c = Cluster::with_backend(name, Family::V4, Backend::Kube);
    c.with_address = false;
    c.extra_args = vec!["--services".into()];
    c
}

/// Waits until every address in `want` has exactly one holder; returns
/// address → holder.
fn wait_all_held(
    c: &Cluster,
    w: &MultiAddrWatcher,
    want: &BTreeSet<IpAddr>,
    bound: Duration,
) -> BTreeMap<IpAddr, String> {
    c.wait_for(bound, || {
        let all = w.holders_all();
        let ok = want
            .iter()
            .all(|a| all.get(a).is_some_and(|h| h.len() == 1));
        ok.then(|| {
            want.iter()
                .map(|a| (*a, all[a][0].clone()))
                .collect::<BTreeMap<_, _>>()
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "not every address held exactly once within {bound:?}: {:?}",
            w.holders_all()
        )
    })
}

/// The node (n1 or n3: n2 carries the Local Services' only endpoint) that
/// announces the most addresses in `owners`, and those addresses.
fn busiest(owners: &BTreeMap<IpAddr, String>) -> (&'static str, BTreeSet<IpAddr>) {
    let victim = ["n1", "n3"]
        .into_iter()
        .max_by_key(|n| owners.values().filter(|h| h == n).count())
        .unwrap();
    let held: BTreeSet<IpAddr> = owners
        .iter()
        .filter(|(_, h)| h.as_str() == victim)
        .map(|(a, _)| *a)
        .collect();
    assert!(!held.is_empty(), "{victim} holds nothing: {owners:?}");
    (victim, held)
}

/// Waits until every address in `held` is held by exactly one node other
/// than `victim`; returns every address's holders at that moment.
fn wait_moved_off(
    c: &Cluster,
    w: &MultiAddrWatcher,
    held: &BTreeSet<IpAddr>,
    victim: &str,
) -> BTreeMap<IpAddr, Vec<String>> {
    c.wait_for(MOVE_BOUND, || {
        let all = w.holders_all();
        held.iter()
            .all(|a| all.get(a).is_some_and(|h| h.len() == 1 && h[0] != victim))
            .then_some(all)
    })
    .unwrap_or_else(|| {
        panic!(
            "addresses of {victim} did not move within {MOVE_BOUND:?}: {:?}",
            w.holders_all()
        )
    })
}

#[test]
fn services_mode_moves_addresses_of_a_dead_node_once_and_never_takes_them_back() {
    netlab::require_root!();
    let mut c = services_cluster("svc-move");
    let names = seed(&c);
    // The 19 addresses: 9 own + 2 of the dual-stack one + 2 shared + 2
    // Local + 4 IPAM (pool of 5).
    let pool: BTreeSet<IpAddr> = (10..=14)
        .map(|i| format!("203.0.113.{i}").parse().unwrap())
        .collect();
    let fixed: BTreeSet<IpAddr> = fixed_addresses(&names);
    let watched: BTreeSet<IpAddr> = fixed.union(&pool).copied().collect();
    let w = MultiAddrWatcher::start(&c.topo, &NODES, &watched, c.clock).unwrap();
    let t0 = c.clock.now();
    c.start_all();

    // 1. IPAM gives the four Services distinct pool addresses, and every
    //    address ends up on exactly one node.
    let allocated = c
        .wait_for(CONVERGE, || {
            let m = service_addresses(&c, &names);
            (m.len() == 20).then_some(m)
        })
        .unwrap_or_else(|| panic!("IPAM did not allocate within {CONVERGE:?}"));
    let ipam: BTreeSet<IpAddr> = (0..4).map(|i| allocated[&format!("ipam-{i}")][0]).collect();
    assert_eq!(ipam.len(), 4, "IPAM handed out an address twice: {ipam:?}");
    assert!(ipam.is_subset(&pool), "IPAM outside the pool: {ipam:?}");
    let want: BTreeSet<IpAddr> = allocated.values().flatten().copied().collect();
    assert_eq!(want.len(), 19);
    let first = wait_all_held(&c, &w, &want, CONVERGE);
    let converged = c.clock.now() - t0;
    for i in 0..2 {
        let a: IpAddr = format!("198.51.100.{}", 50 + i).parse().unwrap();
        assert_eq!(
            first[&a], "n2",
            "Local Service address {a} not on the endpoint's node"
        );
    }
    // Status and vipHost by the owner of each Service's address.
    c.wait_for(CONVERGE, || {
        allocated
            .iter()
            .all(|(n, a)| {
                // Every address of the Service (both families for own-9);
                // vipHost = the owner of its first address.
                let all: BTreeSet<String> = a.iter().map(ToString::to_string).collect();
                get_service(&c, n).is_some_and(|s| {
                    ingress(&s) == all
                        && annotation(&s, "kube-vip.io/vipHost").as_deref() == Some(&first[&a[0]])
                })
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("status.loadBalancer / vipHost not written within {CONVERGE:?}"));

    // 2. Steady state: API writes per retry period at the server (after
    //    the start-up Events have drained).
    std::thread::sleep(Duration::from_secs(2));
    c.api().call(|s| s.reset_stats());
    std::thread::sleep(Duration::from_secs(5));
    let stats = c.api().stats();
    let writes: u64 = stats
        .requests
        .iter()
        .filter(|r| matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .map(|r| r.count)
        .sum();
    let per_period = writes as f64 / 10.0;
    let by_resource: BTreeMap<String, u64> =
        stats.requests.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(format!("{} {}", r.verb, r.resource)).or_default() += r.count;
            m
        });
    println!("steady-state requests in 5 s: {by_resource:?}");

    // 3. Kill the node that holds the most addresses (not n2, which the
    //    Local Services need): its addresses move, once, with no overlap.
    let (victim, moved) = busiest(&first);
    let t_kill = c.clock.now();
    c.crash(victim);
    let after = wait_moved_off(&c, &w, &moved, victim);
    let move_time = c.clock.now() - t_kill;
    for (a, h) in &first {
        if h.as_str() != victim {
            assert_eq!(
                after[a],
                vec![h.clone()],
                "{a} moved although its owner lived"
            );
        }
    }

    // 4. The node returns: nothing moves back (no --preempt).
    // Like a reboot: vipd starts (and removes its stale addresses, R3)
    // before the link carries traffic again.
    c.restart(victim);
    std::thread::sleep(Duration::from_secs(2));
    c.topo.host(victim).link_up().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let settled: BTreeMap<IpAddr, Vec<String>> = w.holders_all();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        w.holders_all(),
        settled,
        "addresses moved after {victim} returned"
    );

    // 5. IPAM release: delete one IPAM Service, its address is withdrawn;
    //    a new Service gets a free pool address.
    let gone = allocated["ipam-0"][0];
    c.api()
        .call(|s| s.delete_object("v1", "Service", "default", "ipam-0"))
        .unwrap();
    c.wait_for(Duration::from_secs(10), || {
        w.holders(gone).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("{gone} still announced after its Service was deleted"));
    c.api().put_object(service("ipam-new", None, 8080, false));
    let fresh: IpAddr = c
        .wait_for(CONVERGE, || {
            get_service(&c, "ipam-new")
                .and_then(|s| annotation(&s, "kube-vip.io/loadbalancerIPs"))
                .and_then(|a| a.parse().ok())
        })
        .unwrap_or_else(|| panic!("ipam-new got no address"));
    assert!(pool.contains(&fresh) && !ipam.contains(&fresh) || fresh == gone);
    c.wait_for(CONVERGE, || (w.holders(fresh).len() == 1).then_some(()))
        .unwrap_or_else(|| panic!("{fresh} not announced"));

    let end = c.clock.now();
    let two = w.two_holder_addresses(Duration::ZERO..end);
    println!(
        "SCENARIO name=services-move converged_ms={} writes_per_retry_period={per_period:.2} victim={victim} moved={} move_ms={} two_holder_ms={}",
        converged.as_millis(),
        moved.len(),
        move_time.as_millis(),
        w.two_holder_time(Duration::ZERO..end).as_millis()
    );
    assert!(two.is_empty(), "two holders for {two:?}");
    // O(nodes): one renewal per node per retry period (3) plus the
    // assigner's lease (1), whatever the number of Services.
    assert!(
        per_period <= 4.5,
        "steady state wrote {per_period:.2} times per retry period"
    );
}

#[test]
fn services_mode_goes_dark_during_a_total_api_outage_and_recovers_after() {
    netlab::require_root!();
    let mut c = services_cluster("svc-apidown");
    let names = seed(&c);
    let fixed: BTreeSet<IpAddr> = fixed_addresses(&names);
    let w = MultiAddrWatcher::start(&c.topo, &NODES, &fixed, c.clock).unwrap();
    c.start_all();
    wait_all_held(&c, &w, &fixed, CONVERGE);
    let before = w.holders_all();

    // R1: without the API no node can prove its lease, so every node stops
    // announcing within the renew deadline (2 s) of its last renewal.
    let t_down = c.clock.now();
    c.api_down();
    c.wait_for(Duration::from_secs(6), || {
        fixed.iter().all(|a| w.holders(*a).is_empty()).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "addresses still announced without the API: {:?}",
            w.holders_all()
        )
    });
    let dark_after = c.clock.now() - t_down;
    std::thread::sleep(Duration::from_secs(3));
    let t_up = c.clock.now();
    c.api_up();
    let back = wait_all_held(&c, &w, &fixed, CONVERGE);
    let recovered = c.clock.now() - t_up;
    let end = c.clock.now();
    println!(
        "SCENARIO name=services-apidown fenced_ms={} recovered_ms={} two_holder_ms={}",
        dark_after.as_millis(),
        recovered.as_millis(),
        w.two_holder_time(Duration::ZERO..end).as_millis()
    );
    // Sticky: every node's lease survived in the record, so the same owners
    // come back.
    for a in &fixed {
        assert_eq!(
            vec![back[a].clone()],
            before[a],
            "{a} changed owner across the outage"
        );
    }
    let two = w.two_holder_addresses(Duration::ZERO..end);
    assert!(two.is_empty(), "two holders for {two:?}");
}

#[test]
fn services_mode_node_cut_from_the_api_fences_then_hands_over_without_overlap() {
    netlab::require_root!();
    let mut c = services_cluster("svc-cut");
    let names = seed(&c);
    let fixed: BTreeSet<IpAddr> = fixed_addresses(&names);
    let w = MultiAddrWatcher::start(&c.topo, &NODES, &fixed, c.clock).unwrap();
    c.start_all();
    let first = wait_all_held(&c, &w, &fixed, CONVERGE);
    let (victim, held) = busiest(&first);
    let t_cut = c.clock.now();
    c.cut_from_etcd(victim); // drops all traffic between the node and `api`
                             // R1: the cut node fences at its renew deadline (2 s) ...
    c.wait_for(Duration::from_secs(6), || {
        held.iter()
            .all(|a| !w.holders(*a).contains(&victim.to_string()))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{victim} kept announcing without the API"));
    let fenced = c.clock.now() - t_cut;
    // ... and the others take over after the tombstone.
    let moved = wait_all_held(&c, &w, &fixed, MOVE_BOUND);
    let taken = c.clock.now() - t_cut;
    assert!(held.iter().all(|a| moved[a] != victim));
    // Heal: the node rejoins as a follower; nothing moves back.
    c.heal_etcd(victim);
    std::thread::sleep(Duration::from_secs(4));
    let after = w.holders_all();
    for a in &fixed {
        assert_eq!(after[a], vec![moved[a].clone()], "{a} moved after the heal");
    }
    let end = c.clock.now();
    println!(
        "SCENARIO name=services-cut victim={victim} held={} fenced_ms={} taken_over_ms={} two_holder_ms={}",
        held.len(),
        fenced.as_millis(),
        taken.as_millis(),
        w.two_holder_time(Duration::ZERO..end).as_millis()
    );
    let two = w.two_holder_addresses(Duration::ZERO..end);
    assert!(two.is_empty(), "two holders for {two:?}");
}

#[test]
fn control_plane_vip_and_service_addresses_share_a_process_and_sigterm_hands_both_over_fast() {
    netlab::require_root!();
    // `--address` and `--services` in one process: two VIP managers on one
    // interface, each removing only its own tag's addresses.
    let mut c = services_cluster("svc-both");
    c.with_address = true;
    let names = seed(&c);
    let fixed: BTreeSet<IpAddr> = fixed_addresses(&names);
    let w = MultiAddrWatcher::start(&c.topo, &NODES, &fixed, c.clock).unwrap();
    c.start_all();
    let first = wait_all_held(&c, &w, &fixed, CONVERGE);
    let vip_holder = c
        .wait_holder(None, CONVERGE)
        .unwrap_or_else(|| panic!("no control-plane VIP holder: {:?}", c.holders()));
    // Neither manager removes the other's addresses: both sets stay put.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.holder().as_deref(), Some(vip_holder.as_str()));
    for (a, h) in &first {
        assert_eq!(
            w.holders(*a),
            vec![h.clone()],
            "{a} changed while nothing failed"
        );
    }

    // SIGTERM a node that announces Service addresses (not n2: the Local
    // Services have their only endpoint there).
    let (victim, held) = busiest(&first);
    let t_stop = c.clock.now();
    let status = c.stop(victim);
    assert!(status.success(), "vipd on {victim} exited with {status}");
    let moved = wait_all_held(&c, &w, &fixed, MOVE_BOUND);
    let handover = c.clock.now() - t_stop;
    assert!(held.iter().all(|a| moved[a] != victim));
    // The released node lease lets the assigner move the addresses at once:
    // well before the 3 s lease could have expired.
    assert!(
        handover < Duration::from_secs(2),
        "graceful handover took {handover:?} (lease expiry, not the release?)"
    );
    let vip_after = c.wait_holder(Some(victim), CONVERGE).unwrap_or_else(|| {
        panic!(
            "control-plane VIP not held after the stop: {:?}",
            c.holders()
        )
    });
    let end = c.clock.now();
    println!(
        "SCENARIO name=services-sigterm victim={victim} held={} handover_ms={} vip_holder={vip_after} two_holder_ms={} vip_two_holder_ms={}",
        held.len(),
        handover.as_millis(),
        w.two_holder_time(Duration::ZERO..end).as_millis(),
        c.watcher.two_holder_time(Duration::ZERO..end).as_millis()
    );
    let two = w.two_holder_addresses(Duration::ZERO..end);
    assert!(two.is_empty(), "two holders for {two:?}");
    assert_eq!(
        c.watcher.two_holder_time(Duration::ZERO..end),
        Duration::ZERO
    );
}

fn ipam_service(name: &str, ip: &str, created: &str) -> Value {
    let mut v = service(name, Some(ip), 80, false);
    v["metadata"]["labels"] = serde_json::json!({ "implementation": "kube-vip" });
    v["metadata"]["creationTimestamp"] = created.into();
    v
}

#[test]
fn ipam_repairs_a_duplicate_allocation_and_reports_an_exhausted_pool() {
    netlab::require_root!();
    let mut c = services_cluster("svc-ipam");
    let api = c.api();
    for (n, z) in [("n1", "zone-a"), ("n2", "zone-a"), ("n3", "zone-b")] {
        api.put_object(node(n, z));
    }
    // A two-address pool. Two Services were given the same address by
    // racing allocators (both labelled as IPAM's); a third wants one too.
    let mut pool = ipam_pool();
    pool["data"]["range-global"] = "203.0.113.10-203.0.113.11".into();
    api.put_object(pool);
    api.put_object(ipam_service(
        "dup-old",
        "203.0.113.10",
        "2026-11-26T10:00:00Z",
    ));
    api.put_object(ipam_service(
        "dup-new",
        "203.0.113.10",
        "2026-11-26T11:00:00Z",
    ));
    c.start_all();
    let lb = |name: &str| {
        get_service(&c, name).and_then(|s| annotation(&s, "kube-vip.io/loadbalancerIPs"))
    };
    // The older Service keeps the address; the younger gets the other one.
    c.wait_for(CONVERGE, || {
        (lb("dup-new").as_deref() == Some("203.0.113.11")).then_some(())
    })
    .unwrap_or_else(|| panic!("duplicate not repaired: dup-new = {:?}", lb("dup-new")));
    assert_eq!(lb("dup-old").as_deref(), Some("203.0.113.10"));
    // The pool is now full: a new Service gets an Event and a metric, and
    // every daemon keeps running.
    c.api().put_object(service("starved", None, 80, false));
    let events = c
        .wait_for(CONVERGE, || {
            let evs = c.api().call(|s| s.list_objects("v1", "Event"));
            let hit: Vec<Value> = evs
                .into_iter()
                .filter(|e| {
                    e["involvedObject"]["name"] == "starved" && e["reason"] == "PoolExhausted"
                })
                .collect();
            (!hit.is_empty()).then_some(hit)
        })
        .unwrap_or_else(|| panic!("no PoolExhausted Event on the starved Service"));
    assert_eq!(events[0]["type"], "Warning");
    let exhausted = c
        .wait_for(Duration::from_secs(5), || {
            NODES.iter().find_map(|n| {
                let m = c.http_get(n, "/metrics")?;
                m.lines()
                    .find(|l| l.starts_with("vipd_ipam_pool_exhausted_total "))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                    .filter(|v| *v >= 1.0)
            })
        })
        .unwrap_or_else(|| panic!("vipd_ipam_pool_exhausted_total never counted"));
    assert!(lb("starved").is_none());
    for n in NODES {
        assert!(c.pid(n).is_some(), "vipd on {n} exited");
    }
    println!("SCENARIO name=services-ipam repaired=dup-new exhausted_total={exhausted}");
}

#[test]
fn unhealthy_node_drains_its_service_addresses_at_once_and_takes_nothing_back() {
    netlab::require_root!();
    use common::kube::HttpOk;
    const PORT: u16 = 9099;
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let mut c = services_cluster("svc-health");
    // Every node checks a TCP endpoint on its own loopback (R8).
    c.extra_args.extend(
        [
            "--health-check",
            &format!("tcp://127.0.0.1:{PORT}"),
            "--health-check-period",
            "0.5",
            "--health-check-timeout",
            "0.4",
            "--health-check-failure-threshold",
            "2",
        ]
        .map(String::from),
    );
    let mut checks: BTreeMap<&str, HttpOk> = NODES
        .iter()
        .map(|n| (*n, HttpOk::start(&c.topo.host(n).ns, lo, PORT)))
        .collect();
    let names = seed(&c);
    let fixed: BTreeSet<IpAddr> = fixed_addresses(&names);
    let w = MultiAddrWatcher::start(&c.topo, &NODES, &fixed, c.clock).unwrap();
    c.start_all();
    let first = wait_all_held(&c, &w, &fixed, CONVERGE);
    let (victim, held) = busiest(&first);
    let t_fail = c.clock.now();
    drop(checks.remove(victim));
    wait_moved_off(&c, &w, &held, victim);
    let moved = wait_all_held(&c, &w, &fixed, MOVE_BOUND);
    let drained = c.clock.now() - t_fail;
    assert!(held.iter().all(|a| moved[a] != victim));
    // Two failed checks (~1 s) + the drain record: no lease expiry needed.
    assert!(
        drained < Duration::from_secs(3),
        "drain took {drained:?} (waited for the lease instead of the drain record?)"
    );
    // Healthy again: it rejoins, and nothing moves back.
    checks.insert(victim, HttpOk::start(&c.topo.host(victim).ns, lo, PORT));
    std::thread::sleep(Duration::from_secs(4));
    for a in &fixed {
        assert_eq!(
            w.holders(*a),
            vec![moved[a].clone()],
            "{a} moved after recovery"
        );
    }
    let end = c.clock.now();
    println!(
        "SCENARIO name=services-health victim={victim} held={} drained_ms={} two_holder_ms={}",
        held.len(),
        drained.as_millis(),
        w.two_holder_time(Duration::ZERO..end).as_millis()
    );
    let two = w.two_holder_addresses(Duration::ZERO..end);
    assert!(two.is_empty(), "two holders for {two:?}");
}

#[test]
fn with_preempt_a_returning_node_takes_its_addresses_back_without_overlap() {
    netlab::require_root!();
    let mut c = services_cluster("svc-preempt");
    c.extra_args.push("--preempt".into());
    let names = seed(&c);
    let fixed: BTreeSet<IpAddr> = fixed_addresses(&names);
    let w = MultiAddrWatcher::start(&c.topo, &NODES, &fixed, c.clock).unwrap();
    c.start_all();
    // With every node seen before the first distribution, each address
    // starts on its rendezvous winner (Local ones on n2).
    let first = wait_all_held(&c, &w, &fixed, CONVERGE);
    let (victim, held) = busiest(&first);
    c.crash(victim);
    wait_moved_off(&c, &w, &held, victim);
    // Back (vipd first, then the link, like a reboot): its addresses return.
    c.restart(victim);
    std::thread::sleep(Duration::from_secs(2));
    let t_back = c.clock.now();
    c.topo.host(victim).link_up().unwrap();
    c.wait_for(MOVE_BOUND, || {
        let all = w.holders_all();
        first
            .iter()
            .all(|(a, h)| all.get(a).is_some_and(|x| x == &vec![h.clone()]))
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "with --preempt the original owners did not return: {:?} (was {first:?})",
            w.holders_all()
        )
    });
    let returned = c.clock.now() - t_back;
    let end = c.clock.now();
    println!(
        "SCENARIO name=services-preempt victim={victim} held={} returned_ms={} two_holder_ms={}",
        held.len(),
        returned.as_millis(),
        w.two_holder_time(Duration::ZERO..end).as_millis()
    );
    let two = w.two_holder_addresses(Duration::ZERO..end);
    assert!(two.is_empty(), "two holders for {two:?}");
}
