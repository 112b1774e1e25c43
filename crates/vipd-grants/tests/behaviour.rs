//! Behaviour of the grant cores on a small simulated cluster: steady
//! state, a node crash, a holder crash (no churn), drain, API view changes.

#![allow(clippy::unwrap_used)]

mod common;

use common::{addresses, voters, Cluster};
use std::time::Duration;
use vipd_grants::ServiceView;
use vipd_quorum::Timings;
use vipd_sim::{MS, SEC};

const GRANT: Duration = Duration::from_millis(1_000);

fn cluster(n: usize, k: u32) -> Cluster {
    let mut c = Cluster::new(voters(n, false), Timings::default(), GRANT, &[0; 7], 7);
    c.set_view(ServiceView {
        addresses: addresses(k),
        policies: Default::default(),
    });
    c
}

fn holder(c: &Cluster) -> Option<usize> {
    (0..c.n()).find(|&i| {
        c.g[i]
            .as_ref()
            .is_some_and(|g| g.status(c.local(i)).assigner)
    })
}

fn counts(c: &Cluster) -> Vec<usize> {
    (0..c.n())
        .map(|i| c.bound[i].values().filter(|&&u| u == u64::MAX).count())
        .collect()
}

#[test]
fn every_address_gets_exactly_one_node_and_the_load_is_spread() {
    let mut c = cluster(5, 200);
    c.run_until(3 * SEC);
    assert!(c.violation.is_none(), "{:?}", c.violation);
    assert!(c.dark().is_empty(), "dark: {:?}", c.dark().len());
    let per = counts(&c);
    assert_eq!(per.iter().sum::<usize>(), 200, "{per:?}");
    assert!(per.iter().all(|&k| k > 15), "HRW spreads the load: {per:?}");
}

#[test]
fn a_crashed_node_s_addresses_move_within_the_grant_period_and_the_rest_stay() {
    let mut c = cluster(5, 200);
    c.run_until(3 * SEC);
    let h = holder(&c).unwrap();
    let victim = (0..5).find(|&i| i != h).unwrap();
    let before: Vec<_> = (0..5).map(|i| c.bound[i].clone()).collect();
    let moved = before[victim].len();
    assert!(moved > 0);
    let t0 = c.now();
    c.crash(victim);
    let mut served_at = None;
    while c.now() < t0 + 3 * SEC {
        c.run_until(c.now() + 10 * MS);
        let dark: Vec<_> = c.dark();
        if dark.is_empty() && served_at.is_none() {
            served_at = Some(c.now() - t0);
        }
    }
    assert!(c.violation.is_none(), "{:?}", c.violation);
    let gap = served_at.expect("the crashed node's addresses are served again");
    eprintln!(
        "crash of n{victim} ({moved} addresses): served again after {} ms",
        gap / MS
    );
    assert!(gap < 1_500 * MS, "{} ms", gap / MS);
    // No churn: live nodes kept what they had.
    for i in (0..5).filter(|&i| i != victim) {
        for a in before[i].keys() {
            assert!(c.bound[i].contains_key(a), "n{i} lost {a}");
        }
    }
}

#[test]
fn the_holder_crashes_live_nodes_keep_their_addresses_without_a_gap() {
    let mut c = cluster(5, 200);
    c.run_until(3 * SEC);
    let h = holder(&c).unwrap();
    let before: Vec<_> = (0..5).map(|i| c.bound[i].clone()).collect();
    let t0 = c.now();
    c.crash(h);
    let mut gaps = 0;
    let mut served_at = None;
    while c.now() < t0 + 4 * SEC {
        c.run_until(c.now() + 10 * MS);
        for i in (0..5).filter(|&i| i != h) {
            for a in before[i].keys() {
                if !c.owners_of(a).contains(&i) {
                    gaps += 1;
                }
            }
        }
        if c.dark().is_empty() && served_at.is_none() {
            served_at = Some(c.now() - t0);
        }
    }
    assert!(c.violation.is_none(), "{:?}", c.violation);
    let new = holder(&c).unwrap();
    assert_ne!(new, h);
    eprintln!(
        "holder n{h} crashed: its {} addresses served again after {} ms; live nodes' samples missing: {gaps}",
        before[h].len(),
        served_at.unwrap_or(u64::MAX) / MS
    );
    assert_eq!(gaps, 0, "live nodes keep serving through a holder change");
    // The dead holder is no exception: its addresses wait for the grant
    // period from the successor's start (see the crate docs).
    assert!(served_at.is_some_and(|g| g < 2_500 * MS));
}

#[test]
fn a_draining_node_hands_its_addresses_over_quickly_and_gets_them_back_only_if_preempting() {
    let mut c = cluster(3, 60);
    c.run_until(3 * SEC);
    let h = holder(&c).unwrap();
    let d = (0..3).find(|&i| i != h).unwrap();
    let had = c.bound[d].len();
    let t0 = c.now();
    c.g_input(d, vipd_grants::Input::SetDraining(true));
    let mut served_at = None;
    while c.now() < t0 + 2 * SEC {
        c.run_until(c.now() + 5 * MS);
        if served_at.is_none() && c.dark().is_empty() {
            served_at = Some(c.now() - t0);
        }
    }
    assert!(c.violation.is_none(), "{:?}", c.violation);
    eprintln!(
        "drain of n{d} ({had} addresses): served elsewhere after {} ms",
        served_at.unwrap() / MS
    );
    assert!(served_at.unwrap() < 300 * MS);
    assert!(c.bound[d].values().all(|&u| u != u64::MAX));
    c.g_input(d, vipd_grants::Input::SetDraining(false));
    c.run_until(c.now() + 2 * SEC);
    assert!(c.violation.is_none(), "{:?}", c.violation);
    assert!(c.dark().is_empty());
}

#[test]
fn a_deleted_service_stops_being_announced_and_a_new_one_starts() {
    let mut c = cluster(3, 30);
    c.run_until(3 * SEC);
    let mut addrs = addresses(30);
    let gone = *addrs.iter().next().unwrap();
    addrs.remove(&gone);
    let new = std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 9));
    addrs.insert(new);
    c.set_view(ServiceView {
        addresses: addrs,
        policies: Default::default(),
    });
    c.run_until(c.now() + 500 * MS);
    assert!(c.violation.is_none(), "{:?}", c.violation);
    assert!(c.owners_of(&gone).is_empty());
    assert_eq!(c.owners_of(&new).len(), 1);
    assert!(c.dark().is_empty());
}

#[test]
fn an_assigner_that_never_read_the_services_keeps_what_nodes_bind() {
    // Every node restarted while the API is down (no view), the holder
    // last: the new holder has never read a Service.
    let mut c = cluster(3, 60);
    c.run_until(3 * SEC);
    let h = holder(&c).unwrap();
    for i in (0..3).filter(|&i| i != h).chain([h]) {
        c.crash(i);
        c.start_with(i, false);
        c.run_until(c.now() + 3 * SEC);
    }
    let new = holder(&c).unwrap();
    assert!(!c.g[new].as_ref().unwrap().status(c.local(new)).view_known);
    let before: Vec<_> = (0..3).map(|i| c.bound[i].clone()).collect();
    let kept: usize = before.iter().map(|b| b.len()).sum();
    c.run_until(c.now() + 3 * SEC);
    assert!(c.violation.is_none(), "{:?}", c.violation);
    for (i, b) in before.iter().enumerate() {
        for a in b.keys() {
            assert!(c.owners_of(a).contains(&i), "{a} left n{i} without a view");
        }
    }
    // The API is back: the full view brings the rest.
    eprintln!("blind assigner kept {kept} of 60 addresses where they were");
    c.set_view(ServiceView {
        addresses: addresses(60),
        policies: Default::default(),
    });
    c.run_until(c.now() + 3 * SEC);
    assert!(c.violation.is_none(), "{:?}", c.violation);
    assert!(
        c.dark().is_empty(),
        "dark after the view: {}",
        c.dark().len()
    );
}

#[test]
fn the_daemon_grant_period_covers_a_holder_change() {
    let d = vipd_grants::GrantTimings::for_quorum(&Timings::default()).unwrap();
    assert_eq!(d.grant(), Duration::from_millis(1_100));
    assert_eq!(d.settle(), vipd_grants::REMOVAL_BUDGET);
    // The window outlasts the worst holder change after the last grant:
    // promise + election wait, counted from a claim one heartbeat old.
    let t = Timings::default();
    assert!(d.window() > t.promise() + t.election_range().1 + t.heartbeat());
    let slow = Timings::new(
        Duration::from_secs(3),
        Duration::from_millis(500),
        Duration::from_millis(100),
        Duration::from_millis(800),
        10_000,
        Duration::from_millis(20),
    )
    .unwrap();
    let g = vipd_grants::GrantTimings::for_quorum(&slow).unwrap();
    assert_eq!(g.grant(), Duration::from_millis(4_900));
}
