//! Seeded, deterministic simulation of the Services-mode ownership core
//! (issue 5 item 6): thousands of random schedules over 3–5 nodes sharing one
//! store — API cuts, stale reads, crashes and restarts, late joiners,
//! addresses added and removed, eligibility flips, overlapping assigner
//! terms, ±0.5% clock drift — checking at every event that no address has
//! two announcers, convergence after the last heal, and O(nodes) writes in
//! steady state.
//!
//! `VIPD_SIM_SCHEDULES` (default 2,000) and `VIPD_SIM_SEED` override the run;
//! a failure prints the seed that replays it alone.

#[path = "sim/harness.rs"]
mod harness;

use harness::{Config, Fault, Kind, Rng, Sim, Stats, KINDS, MS, SEC};
use std::time::Duration;
use vipd_election::Timings;

const BASE_SEED: u64 = 0x5eed_0005;

const TIMINGS: [(f64, f64, f64); 3] = [(5.0, 3.0, 1.0), (3.0, 2.0, 0.5), (15.0, 10.0, 2.0)];

fn timings(i: usize) -> Timings {
    let (l, r, p) = TIMINGS[i];
    let [l, r, p] = [l, r, p].map(Duration::from_secs_f64);
    Timings::new(l, r, p).expect("documented timings are valid")
}

fn random_schedule(seed: u64) -> Sim {
    let mut r = Rng::new(seed ^ 0x0f0f_a5a5_5a5a_f0f0);
    // Mostly the short timings: they make the most schedules per second.
    let t = timings(if r.chance(0.1) {
        2
    } else {
        r.range(0, 1) as usize
    });
    let nodes = r.range(3, 5) as usize;
    let lease = harness::us(t.lease_duration());
    let faults = (0..r.range(2, 8))
        .map(|_| {
            let kind = r.pick(&KINDS);
            let dur = match kind {
                Kind::Crash if r.chance(0.5) => r.range(50 * MS, 1_500 * MS),
                Kind::AssignerMove => r.range(0, 3 * SEC),
                _ => r.range(100 * MS, lease * 5 / 2),
            };
            Fault {
                at: r.range(0, 40 * SEC),
                kind,
                node: r.index(nodes),
                dur,
            }
        })
        .collect();
    let cfg = Config {
        nodes,
        timings: t,
        seed,
        addresses: r.range(2, 12) as usize,
        late: r.range(0, 2) as usize,
        preempt: r.chance(0.3),
        never_remove: false,
    };
    let mut sim = Sim::new(cfg, faults);
    // Some addresses start with a policy (Local endpoints, zone pins).
    for i in 0..harness::POOL {
        if r.chance(0.3) {
            let p = sim.random_policy();
            sim.set_policy(harness::ip(i), p);
        }
    }
    sim
}

#[test]
fn random_schedules_never_have_two_announcers_and_converge_at_o_nodes_cost() {
    let count = vipd_sim::env_u64(vipd_sim::SCHEDULES_VAR, 2_000);
    let base = vipd_sim::env_u64(vipd_sim::SEED_VAR, BASE_SEED);
    let (total, failure) = vipd_sim::run_schedules(
        count,
        base,
        |seed| {
            let mut sim = random_schedule(seed);
            sim.run();
            let report = (!sim.violations.is_empty()).then(|| sim.report());
            let mut stats = std::mem::take(&mut sim.stats);
            stats.violations += u64::from(report.is_some());
            (stats, report)
        },
        Stats::add,
    );
    let by_kind = vipd_sim::fault_counts(&KINDS, &total.faults);
    let line = format!(
        "services sim: {count} schedules, {} faults ({}), {} violations, two-owner time {} ms, \
         max convergence after heal {} ms, writes: {} renewals + {} assignment + {} tombstones, \
         steady state max {:.1} writes/retry period with {} non-renewal writes; {} takeovers, \
         {} events, {} s simulated on average",
        total.faults.iter().sum::<u64>(),
        by_kind,
        total.violations,
        total.two_owner_us / MS,
        total.max_convergence / MS,
        total.renewals,
        total.assignment_writes,
        total.tombstones,
        total.steady_writes_per_period_max,
        total.steady_extra_writes,
        total.moves_seen,
        total.events,
        total.sim_us / count.max(1) / SEC,
    );
    println!("{line}");
    eprintln!("{line}");
    if let Some((seed, report)) = failure {
        panic!("{}", vipd_sim::failure_message(seed, &report));
    }
    assert!(total.moves_seen > 0, "nothing was ever announced");
    assert!(total.tombstones > 0, "no dead node was ever tombstoned");
}

fn quiet(nodes: usize, addresses: usize, faults: Vec<Fault>) -> Sim {
    let cfg = Config {
        nodes,
        timings: timings(0),
        seed: 11,
        addresses,
        late: 0,
        preempt: false,
        never_remove: false,
    };
    let mut sim = Sim::new(cfg, faults);
    sim.run();
    assert!(sim.violations.is_empty(), "{}", sim.report());
    sim
}

#[test]
fn oracle_catches_two_announcers_when_the_driver_never_removes() {
    let caught = (0..20).filter(|&seed| {
        let cfg = Config {
            nodes: 3,
            timings: timings(0),
            seed,
            addresses: 12,
            late: 0,
            preempt: false,
            never_remove: true,
        };
        let crash = Fault {
            at: 10 * SEC,
            kind: Kind::Cut,
            node: (seed % 3) as usize,
            dur: 10 * SEC,
        };
        let mut sim = Sim::new(cfg, vec![crash]);
        sim.run();
        sim.stats.two_owner_us > 0 && sim.violations.iter().any(|v| v.contains("TWO OWNERS"))
    });
    assert!(
        caught.count() > 0,
        "a driver that keeps addresses went unnoticed"
    );
}

#[test]
fn thousand_addresses_on_five_nodes_cost_five_writes_per_retry_period() {
    let mut sim = quiet(5, 1000, vec![]);
    assert_eq!(sim.announcers().len(), 1000, "every address is announced");
    assert!(sim.announcers().values().all(|v| v.len() == 1));
    // 20 retry periods of 1 s, well after convergence.
    let end = sim.now();
    let (renewals, other) = sim.writes_in(end - 20 * SEC, end);
    // One renewal per node per period; ±1 per node at the window's edges
    // (0.5% drift over 20 periods).
    assert!(
        (95..=105).contains(&renewals),
        "{renewals} renewals in 20 periods"
    );
    assert_eq!(other, 0, "no assignment or tombstone write in steady state");
    // A per-Service lease design renews one lease per Service per period.
    let per_service = 1000 * 20;
    println!(
        "1000 addresses, 5 nodes: {renewals} writes in 20 retry periods ({:.2}/period) vs {per_service} ({}/period) for per-Service leases",
        renewals as f64 / 20.0,
        per_service / 20
    );
    sim.stats.renewals = 0;
}

#[test]
fn killed_owner_addresses_move_without_duplicates_and_stay_when_it_returns() {
    // n1 crashes at 20 s for 20 s (longer than the lease): its addresses
    // move via a tombstone; when it returns nothing moves back.
    let crash = Fault {
        at: 20 * SEC,
        kind: Kind::Crash,
        node: 1,
        dur: 20 * SEC,
    };
    let sim = quiet(3, 12, vec![crash]);
    assert!(sim.stats.tombstones >= 1, "n1 was tombstoned");
    let owners = sim.announcers();
    assert_eq!(owners.len(), 12);
    assert!(
        owners.values().all(|v| v.len() == 1 && v[0] != "n1"),
        "sticky: n1 took nothing back: {owners:?}"
    );
    assert_eq!(sim.stats.two_owner_us, 0);
}
