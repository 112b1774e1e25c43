//! The grant cores at the scale, simulated (no kernel, no API):
//! 5 nodes and 1,000 addresses (IPv4 and IPv6) with default timings and a
//! 1 s grant period, 1 ms LAN delay, no loss. Prints what the lab will
//! have to confirm on real processes: grant traffic in steady state, the
//! time until a killed node's addresses are bound elsewhere, and whether
//! live nodes lose anything when the assigner dies. Asserts only generous
//! bounds; the numbers go to `docs/BENCHMARKS.md`.

#![allow(clippy::unwrap_used)]

mod common;

use common::{voters, Cluster};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use vipd_grants::ServiceView;
use vipd_quorum::Timings;
use vipd_sim::{MS, SEC};

fn view(k: u32) -> ServiceView {
    let addresses: BTreeSet<IpAddr> = (0..k)
        .map(|i| {
            if i % 4 == 0 {
                IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0,
                    0,
                    0,
                    (i >> 16) as u16,
                    i as u16,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + (i % 250) + ((i / 250) << 8)))
            }
        })
        .collect();
    ServiceView {
        addresses,
        policies: Default::default(),
    }
}

fn holder(c: &Cluster) -> usize {
    (0..c.n())
        .find(|&i| {
            c.g[i]
                .as_ref()
                .is_some_and(|g| g.status(c.local(i)).assigner)
        })
        .unwrap()
}

fn bound_by(c: &Cluster, i: usize) -> BTreeSet<IpAddr> {
    c.bound[i]
        .iter()
        .filter(|(_, &u)| u == u64::MAX)
        .map(|(a, _)| *a)
        .collect()
}

fn cluster() -> Cluster {
    let mut c = Cluster::new(
        voters(5, false),
        Timings::default(),
        Duration::from_secs(1),
        &[0, 3_000, -3_000, 6_000, -6_000],
        13,
    );
    c.max_delay = MS;
    c.set_view(view(1_000));
    c.run_until(3 * SEC);
    assert!(c.dark().is_empty());
    c
}

#[test]
fn steady_state_cost_at_1000_addresses() {
    let mut c = cluster();
    let before = c.sent.clone();
    c.run_until(c.now() + 10 * SEC);
    assert!(c.violation.is_none(), "{:?}", c.violation);
    let h = holder(&c);
    for (i, was) in before.iter().enumerate() {
        let d: Vec<u64> = (0..4).map(|k| (c.sent[i][k] - was[k]) / 10).collect();
        eprintln!(
            "n{i}{}: {} addresses; grant layer {} datagrams/s {} B/s; quorum {} datagrams/s {} B/s",
            if i == h { " (assigner)" } else { "" },
            bound_by(&c, i).len(),
            d[0],
            d[1],
            d[2],
            d[3]
        );
        assert!(
            d[1] < 20_000,
            "steady state grant traffic stays small: {} B/s",
            d[1]
        );
    }
}

#[test]
fn busiest_node_killed_its_addresses_move_and_nothing_else_does() {
    let mut c = cluster();
    let h = holder(&c);
    let busiest = (0..5)
        .filter(|&i| i != h)
        .max_by_key(|&i| bound_by(&c, i).len())
        .unwrap();
    let before: Vec<BTreeSet<IpAddr>> = (0..5).map(|i| bound_by(&c, i)).collect();
    let t0 = c.now();
    c.crash(busiest);
    let mut served = None;
    while c.now() < t0 + 3 * SEC {
        c.run_until(c.now() + MS);
        if served.is_none() && c.dark().is_empty() {
            served = Some(c.now() - t0);
        }
    }
    assert!(c.violation.is_none(), "{:?}", c.violation);
    let served = served.unwrap();
    let kept = (0..5)
        .filter(|&i| i != busiest)
        .all(|i| before[i].is_subset(&bound_by(&c, i)));
    eprintln!(
        "busiest node n{busiest} ({} addresses) killed: all bound elsewhere after {} ms; live nodes kept theirs: {kept}",
        before[busiest].len(),
        served / MS
    );
    assert!(kept);
    assert!(served < 2 * SEC);
}

#[test]
fn assigner_killed_live_nodes_keep_serving() {
    let mut c = cluster();
    let h = holder(&c);
    let before: Vec<BTreeSet<IpAddr>> = (0..5).map(|i| bound_by(&c, i)).collect();
    let t0 = c.now();
    c.crash(h);
    let (mut missing_ms, mut served) = (0u64, None);
    while c.now() < t0 + 4 * SEC {
        c.run_until(c.now() + MS);
        let missing = (0..5)
            .filter(|&i| i != h)
            .any(|i| !before[i].is_subset(&bound_by(&c, i)));
        missing_ms += u64::from(missing);
        if served.is_none() && c.dark().is_empty() {
            served = Some(c.now() - t0);
        }
    }
    assert!(c.violation.is_none(), "{:?}", c.violation);
    let new = holder(&c);
    eprintln!(
        "assigner n{h} ({} addresses) killed: new assigner n{new}; live nodes' addresses missing for {missing_ms} ms; the old assigner's bound elsewhere after {} ms",
        before[h].len(),
        served.unwrap() / MS
    );
    assert_eq!(missing_ms, 0);
    assert!(served.unwrap() < 3 * SEC);
}
