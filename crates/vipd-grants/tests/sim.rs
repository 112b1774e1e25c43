//! Seeded randomized simulation of the quorum cores with their grant
//! cores (issue 13): thousands of schedules of 3 or 5 voters (3 with a
//! witness half the time) and up to 60 addresses, with drifting clocks
//! (within ±1%, the configured bound), random delay (reordering), loss,
//! partitions (including of the holder, the assigner), crashes with
//! restart (a holder crash is an assigner change), drains, graceful stops
//! and changes of the Services view. Checked throughout: no address is
//! ever bound by two nodes at one real instant, lingering removals and
//! dead nodes' leftovers included (`common::Cluster`). After the last
//! fault heals: every address is bound by exactly one node within
//! `LIVENESS`.
//!
//! `VIPD_SIM_SCHEDULES` (default 2,000; `docs/BENCHMARKS.md` has larger
//! runs) and `VIPD_SIM_SEED` override the run; a failure prints the seed
//! that replays it alone.

#![allow(clippy::unwrap_used)]
// Wall time of the run, for the printed report only (never in logic).
#![allow(clippy::disallowed_types)]

mod common;

use common::{addresses, voters, Cluster};
use std::collections::BTreeMap;
use std::time::Duration;
use vipd_grants::{Input as GInput, ServiceView};
use vipd_quorum::{Input as QInput, Timings};
use vipd_services::Policy;
use vipd_sim::{
    env_u64, failure_message, run_schedules, DriftClock, Rng, MS, SCHEDULES_VAR, SEC, SEED_VAR,
};

const BASE_SEED: u64 = 0x5eed_0013;
/// Quiet 620 ms + a promise 600 ms + two election waits 400 ms + the grant
/// period 1 s + slack for loss.
const LIVENESS: u64 = 4 * SEC;
const GRANT: Duration = Duration::from_millis(1_000);

#[derive(Default)]
struct Stats {
    schedules: u64,
    faults: [u64; 6],
    binds: u64,
    /// Schedules that needed more than `LIVENESS` to converge.
    late: u64,
}

const KINDS: [&str; 6] = [
    "crash",
    "partition",
    "drain",
    "stop",
    "view",
    "holder-partition",
];

/// `n` nodes that may bind (witness excluded by the caller).
fn view(r: &mut Rng, k: u32, n: usize) -> ServiceView {
    let addresses = addresses(k);
    let mut policies = BTreeMap::new();
    for a in &addresses {
        // Some addresses may live only on some nodes (endpoints, zones).
        if r.chance(0.2) {
            let mut nodes: std::collections::BTreeSet<String> = (0..n)
                .filter(|_| r.chance(0.6))
                .map(|i| format!("n{i}"))
                .collect();
            if nodes.is_empty() {
                nodes.insert(format!("n{}", r.index(n)));
            }
            policies.insert(
                *a,
                Policy {
                    nodes: Some(nodes),
                    zone: None,
                },
            );
        }
    }
    ServiceView {
        addresses,
        policies,
    }
}

fn holder(c: &Cluster) -> Option<usize> {
    (0..c.n()).find(|&i| {
        c.g[i]
            .as_ref()
            .is_some_and(|g| g.status(c.local(i)).assigner)
    })
}

fn one(seed: u64) -> (Stats, Option<String>) {
    let mut r = Rng::new(seed);
    let n = if r.chance(0.5) { 3 } else { 5 };
    let witness = n == 3 && r.chance(0.5);
    let rates: Vec<i64> = (0..n)
        .map(|_| DriftClock::random(&mut r, 10_000).ppm)
        .collect();
    let mut c = Cluster::new(voters(n, witness), Timings::default(), GRANT, &rates, seed);
    c.keep_log = std::env::var("VIPD_SIM_LOG").is_ok();
    c.loss = [0.0, 0.05, 0.2][r.index(3)];
    c.max_delay = [500, 2 * MS, 5 * MS][r.index(3)];
    let k = r.range(1, 61) as u32;
    let binders = if witness { n - 1 } else { n };
    let v = view(&mut r, k, binders);
    c.set_view(v);
    let mut st = Stats::default();
    let fault_end = r.range(3 * SEC, 10 * SEC);
    let mut t = SEC + r.range(0, SEC);
    // Active faults: (heal time, node, kind).
    let mut active: Vec<(u64, usize, usize)> = Vec::new();
    while t < fault_end {
        c.run_until(t);
        if c.violation.is_some() {
            break;
        }
        heal(&mut c, &mut active, t);
        let kind = r.index(KINDS.len());
        let target = match kind {
            5 => holder(&c),
            _ => Some(r.index(n)),
        };
        if let Some(i) = target.filter(|i| !active.iter().any(|a| a.1 == *i)) {
            let until = t + r.range(100 * MS, 3 * SEC);
            let applied = match kind {
                0 => {
                    c.crash(i);
                    true
                }
                1 | 5 => {
                    c.side[i] = 1;
                    true
                }
                2 if !c.is_witness(i) => {
                    c.q_input(i, QInput::SetHealthy(false));
                    c.g_input(i, GInput::SetDraining(true));
                    true
                }
                3 => {
                    c.q_input(i, QInput::Stop);
                    c.g_input(i, GInput::Stop);
                    true
                }
                4 => {
                    let k = r.range(1, 61) as u32;
                    let v = view(&mut r, k, binders);
                    c.set_view(v);
                    false
                }
                _ => false,
            };
            st.faults[kind] += 1;
            if c.keep_log {
                c.log.push(format!(
                    "t={} FAULT {} n{i} until {until}",
                    c.now(),
                    KINDS[kind]
                ));
            }
            if applied {
                active.push((until, i, kind));
            }
        }
        t += r.range(50 * MS, SEC);
    }
    let last = active.iter().map(|a| a.0).max().unwrap_or(t).max(t);
    c.run_until(last);
    heal(&mut c, &mut active, u64::MAX);
    c.run_until(last + LIVENESS);
    // The quorum itself may still change holder now and then under 20 %
    // loss (a new holder waits up to G for nodes it has not heard); what
    // must hold is that the cluster converges: give it up to 6 s more, in
    // steps, and accept the first instant at which everything is bound.
    let mut extra = 0;
    while !c.dark().is_empty() && extra < 60 && c.violation.is_none() {
        c.run_until(c.now() + 100 * MS);
        extra += 1;
    }
    st.late = u64::from(extra > 0);
    st.schedules = 1;
    st.binds = c.moves;
    if let Some(v) = c.violation.take() {
        if c.keep_log {
            let from = c.log.len().saturating_sub(400);
            for l in &c.log[from..] {
                eprintln!("{l}");
            }
        }
        return (st, Some(v));
    }
    let dark = c.dark();
    if !dark.is_empty() {
        if c.keep_log {
            let from = c.log.len().saturating_sub(20_000);
            for l in &c.log[from..] {
                eprintln!("{l}");
            }
            for i in 0..c.n() {
                if let Some(q) = &c.q[i] {
                    eprintln!("n{i}: {:?}", q.status(c.local(i)));
                }
            }
        }
        return (
            st,
            Some(format!(
                "{} of {} addresses unbound {} s after the last fault healed (holder {:?})",
                dark.len(),
                c.view.addresses.len(),
                LIVENESS / SEC + 6,
                holder(&c)
            )),
        );
    }
    (st, None)
}

fn heal(c: &mut Cluster, active: &mut Vec<(u64, usize, usize)>, now: u64) {
    active.retain(|&(at, i, kind)| {
        if now < at {
            return true;
        }
        match kind {
            0 | 3 => {
                c.crash(i);
                c.start(i);
            }
            1 | 5 => c.side[i] = 0,
            2 => {
                c.q_input(i, QInput::SetHealthy(true));
                c.g_input(i, GInput::SetDraining(false));
            }
            _ => {}
        }
        false
    });
}

#[test]
fn randomized_schedules_never_bind_one_address_twice_and_converge() {
    let count = env_u64(SCHEDULES_VAR, 2_000);
    let base = env_u64(SEED_VAR, BASE_SEED);
    let start = std::time::Instant::now();
    let (st, failure) = run_schedules(count, base, one, |t: &mut Stats, s: &Stats| {
        t.schedules += s.schedules;
        t.binds += s.binds;
        t.late += s.late;
        for (a, b) in t.faults.iter_mut().zip(s.faults) {
            *a += b;
        }
    });
    eprintln!(
        "grant sim: {} schedules, {} address binds, {} converged later than {} s, faults {} in {:.1} s",
        st.schedules,
        st.binds,
        st.late,
        LIVENESS / SEC,
        KINDS
            .iter()
            .zip(st.faults)
            .map(|(k, c)| format!("{k}={c}"))
            .collect::<Vec<_>>()
            .join(" "),
        start.elapsed().as_secs_f64()
    );
    if let Some((seed, report)) = failure {
        panic!("{}", failure_message(seed, &report));
    }
}
