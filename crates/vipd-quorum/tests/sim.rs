//! Seeded randomized simulation of the quorum cores (issue 12): thousands
//! of schedules with drifting clocks (uniform within ±1%, the configured
//! bound), random delivery order and delay, loss, duplication, partitions,
//! crashes with restart, health flips and graceful stops, checking the
//! safety oracle of `common::Cluster` throughout and, after the last fault
//! heals, that a holder is elected within `LIVENESS` (quiet 620 ms + P
//! 600 ms + two election waits 400 ms + six beats 600 ms).
//!
//! `VIPD_SIM_SCHEDULES` (default 10,000) and `VIPD_SIM_SEED` override the
//! run; a failure prints the seed that replays it alone.

#![allow(clippy::unwrap_used)]

mod common;

use common::{voters, Cluster};
use vipd_quorum::{Input, Timings};
use vipd_sim::{run_schedules, DriftClock, Rng, MS, SEC};

const BASE_SEED: u64 = 0x5eed_0012;
const LIVENESS: u64 = 2_220 * MS;

#[derive(Default)]
struct Stats {
    schedules: u64,
    elections: u64,
    faults: u64,
}

fn one(seed: u64) -> (Stats, Option<String>) {
    let mut r = Rng::new(seed);
    let witness = r.chance(0.5);
    let rates: Vec<i64> = (0..3)
        .map(|_| DriftClock::random(&mut r, 10_000).ppm)
        .collect();
    let mut c = Cluster::new(voters(3, witness), Timings::default(), &rates, seed);
    let loss = [0.0, 0.05, 0.2][r.index(3)];
    let fault_end = r.range(2 * SEC, 8 * SEC);
    let mut faults = 0;
    // Active faults: (heal time, node, kind).
    let mut active: Vec<(u64, usize, u8)> = Vec::new();
    let mut next_fault = r.range(0, SEC);
    let end = fault_end + LIVENESS;
    let mut healed_at = 0;
    while c.now < end {
        if c.violation.is_some() {
            break;
        }
        // Heal what is due.
        active.retain(|&(at, i, kind)| {
            if c.now < at {
                return true;
            }
            match kind {
                0 => c.restart(i),
                1 => c.side[i] = 0,
                2 => {
                    c.input(i, Input::SetHealthy(true));
                }
                _ => {
                    c.crash(i);
                    c.restart(i);
                }
            }
            false
        });
        if c.now >= next_fault && c.now < fault_end {
            let i = if r.chance(0.5) && !c.holders().is_empty() {
                c.holders()[0]
            } else {
                r.index(3)
            };
            let kind = r.range(0, 3) as u8;
            if !active.iter().any(|a| a.1 == i) {
                match kind {
                    0 => c.crash(i),
                    1 => c.side[i] = 1,
                    2 => {
                        c.input(i, Input::SetHealthy(false));
                    }
                    _ => {
                        c.input(i, Input::Stop);
                    }
                }
                active.push((c.now + r.range(50 * MS, 2 * SEC), i, kind));
                faults += 1;
            }
            next_fault = c.now + r.range(100 * MS, 1_500 * MS);
        }
        if active.is_empty() && healed_at == 0 && c.now >= fault_end {
            healed_at = c.now;
        }
        let lossy = c.now < fault_end;
        // Deliver, lose or duplicate a random packet, or let time pass.
        if !c.net.is_empty() && r.chance(0.7) {
            let k = r.index(c.net.len());
            if lossy && r.chance(loss) {
                c.net.remove(k);
            } else {
                if lossy && r.chance(0.02) {
                    let p = c.net[k].clone();
                    c.net.push(p);
                }
                c.deliver(k);
            }
        } else {
            let step = r.range(1, 3 * MS);
            let t = c.next_wake().unwrap_or(u64::MAX).min(c.now + step);
            c.advance_to(t);
        }
    }
    if healed_at == 0 || c.now < healed_at + LIVENESS {
        // Faults outlasted the window: heal now and give the bound again.
        for &(_, i, kind) in &active {
            match kind {
                0 | 3 => c.restart(i),
                1 => c.side[i] = 0,
                _ => {
                    c.input(i, Input::SetHealthy(true));
                }
            }
        }
        if healed_at == 0 {
            healed_at = c.now;
        }
        c.run_until(healed_at + LIVENESS);
    }
    let report = |c: &Cluster, why: &str| {
        format!(
            "{why}\nrates {rates:?} witness {witness} loss {loss}\nannounces {:?}\nnodes {:?}",
            c.announces,
            (0..3)
                .map(|i| c.nodes[i].as_ref().map(|n| n.status(c.local(i))))
                .collect::<Vec<_>>()
        )
    };
    let failure = if let Some(v) = &c.violation {
        Some(report(&c, v))
    } else if c.holders().len() != 1 {
        Some(report(
            &c,
            &format!("no holder {LIVENESS} us after healing at {healed_at}"),
        ))
    } else {
        None
    };
    let stats = Stats {
        schedules: 1,
        elections: c.announces.len() as u64,
        faults,
    };
    (stats, failure)
}

#[test]
fn randomized_schedules_never_two_holders_and_always_recover() {
    let count = vipd_sim::env_u64(vipd_sim::SCHEDULES_VAR, 10_000);
    let base = vipd_sim::env_u64(vipd_sim::SEED_VAR, BASE_SEED);
    #[allow(clippy::disallowed_types)] // wall time of the test run, for the report only
    let t0 = std::time::Instant::now();
    let (st, failure) = run_schedules(count, base, one, |t: &mut Stats, s: &Stats| {
        t.schedules += s.schedules;
        t.elections += s.elections;
        t.faults += s.faults;
    });
    println!(
        "sim: {} schedules, {} faults, {} elections, {:.1?}",
        st.schedules,
        st.faults,
        st.elections,
        t0.elapsed()
    );
    if let Some((seed, report)) = failure {
        panic!("{}", vipd_sim::failure_message(seed, &report));
    }
}
