//! Services mode on the quorum (issue 13) with real vipd processes: five
//! nodes with `--coordination quorum --services` in network namespaces
//! against the in-repo Kubernetes API TEST server (not a kube-apiserver);
//! harness in `common/bench.rs`.
//!
//! The API goes down for every node; the node holding the most addresses
//! crashes during the outage; a Service is deleted and another created in
//! the API meanwhile (the nodes cannot see either). Checked: the live
//! nodes keep serving, the crashed node's addresses move during the
//! outage, the deleted Service stays served and the new one unserved until
//! the API is back (nothing created or deleted from stale data), then both
//! change; every Service's status names its holder after the heal; never
//! two holders. Timing targets live in the benchmark
//! (`services_quorum_bench.rs`); the bounds here are generous liveness.

#![allow(clippy::unwrap_used)] // test: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use common::bench::{service, service_addresses, service_name, Bench, Coord};
use netlab::probe::longest_gap;

/// Start-up and heal bound.
const CONVERGE: Duration = Duration::from_secs(60);
/// Bound for a crashed node's addresses to move (target: 1.5 s).
const MOVE_BOUND: Duration = Duration::from_secs(10);

#[test]
fn services_on_the_quorum_keep_serving_and_move_through_an_api_outage() {
    netlab::require_root!();
    let mut b = Bench::new("svcquorum", Coord::Quorum);
    let all = service_addresses(31, 0);
    let (addrs, created) = (&all[..30], all[30]);
    let names: Vec<(String, IpAddr)> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (service_name(i), *a))
        .collect();
    b.seed(addrs);
    b.watch(&all);
    for n in common::bench::NODES {
        b.start(n);
    }
    let held = b
        .wait_for(CONVERGE, Duration::from_millis(20), || {
            b.all_held_once(addrs, None)
        })
        .unwrap_or_else(|| panic!("not bound: {}", b.progress(addrs)));
    b.wait_for(CONVERGE, Duration::from_millis(200), || {
        (b.status_wrong(&names, &held) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("status not written; logs in {}", b.dir.display()));

    let mut per: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for (a, h) in &held {
        per.entry(h.clone()).or_default().push(*a);
    }
    let (victim, theirs) = per
        .iter()
        .max_by_key(|(_, v)| v.len())
        .map(|(n, v)| (n.clone(), v.clone()))
        .unwrap();
    // One probed address per live node.
    let probed: Vec<IpAddr> = per
        .iter()
        .filter(|(n, _)| **n != victim)
        .map(|(_, v)| v[0])
        .collect();
    b.probe(&probed);
    std::thread::sleep(Duration::from_secs(1));

    let t_down = b.clock.now();
    b.api_down();
    std::thread::sleep(Duration::from_secs(2));
    // Changes the nodes cannot see yet.
    let deleted = names[0].clone();
    let gone = deleted.0.clone();
    b.api
        .call(move |s| s.delete_object("v1", "Service", "default", &gone))
        .unwrap();
    b.api.put_object(service("bench-new", created));
    let t_kill = b.clock.now();
    b.crash(&victim);
    b.wait_for(MOVE_BOUND, Duration::from_millis(20), || {
        b.all_held_once(&theirs, Some(&victim))
    })
    .unwrap_or_else(|| {
        panic!(
            "{victim}'s addresses did not move during the outage: {}",
            b.progress(&theirs)
        )
    });
    let moved = b.clock.now() - t_kill;
    std::thread::sleep(Duration::from_secs(3));
    // Stale data: the deleted Service is still served, the new one is not.
    assert_eq!(
        b.watcher().holders(deleted.1).len(),
        1,
        "deleted Service dropped without the API"
    );
    assert!(
        b.watcher().holders(created).is_empty(),
        "new Service served without the API"
    );
    let t_up = b.clock.now();
    let gaps: Vec<Duration> = b
        .probers
        .iter()
        .map(|(_, p)| longest_gap(&p.samples(), t_down..t_up))
        .collect();
    b.api_up();

    // Heal: the deletion and the creation take effect, statuses follow.
    b.wait_for(CONVERGE, Duration::from_millis(50), || {
        (b.watcher().holders(deleted.1).is_empty() && b.watcher().holders(created).len() == 1)
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "after the heal: {} holds the deleted address, {} the new one",
            b.watcher().holders(deleted.1).len(),
            b.watcher().holders(created).len()
        )
    });
    let served_after = b.clock.now() - t_up;
    let mut live: Vec<(String, IpAddr)> = names[1..].to_vec();
    live.push(("bench-new".into(), created));
    let live_addrs: Vec<IpAddr> = live.iter().map(|(_, a)| *a).collect();
    b.wait_for(CONVERGE, Duration::from_millis(200), || {
        let now = b.all_held_once(&live_addrs, Some(&victim))?;
        (b.status_wrong(&live, &now) == 0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "status not right after the heal; logs in {}",
            b.dir.display()
        )
    });
    let status_after = b.clock.now() - t_up;
    let end = b.clock.now();
    let two = b.watcher().two_holder_addresses(Duration::ZERO..end);
    common::print_scenario(
        "SCENARIO name=services-quorum-api-down".into(),
        &[
            ("victim_addresses", theirs.len().to_string()),
            ("moved_ms", moved.as_millis().to_string()),
            (
                "live_gap_ms",
                gaps.iter()
                    .map(|g| g.as_millis().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (
                "changes_after_heal_ms",
                served_after.as_millis().to_string(),
            ),
            ("status_after_heal_ms", status_after.as_millis().to_string()),
            ("two_holder_addresses", two.len().to_string()),
        ],
    );
    assert!(two.is_empty(), "two holders for {two:?}");
    for g in &gaps {
        assert!(
            *g < Duration::from_secs(1),
            "a live node's address went dark for {g:?}"
        );
    }
}
