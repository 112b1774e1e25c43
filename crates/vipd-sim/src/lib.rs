//! The pieces every seeded, deterministic simulation of a vipd core shares
//! (the election simulation, the Services ownership simulation, and the
//! ones quorum mode will add): simulated microseconds, a seeded PRNG, a
//! drifting per-node clock, and the runner that spreads N schedules over
//! worker threads and reports the seed that replays a failure alone.
//!
//! Test-only (`publish = false`, a dev-dependency of the core crates). No
//! I/O, no tokio, no dependencies: each suite keeps its own model, faults
//! and oracle; only the machinery lives here.

#![forbid(unsafe_code)]

use std::time::Duration;

/// One millisecond of simulated time, in microseconds (the unit of every
/// simulated timestamp).
pub const MS: u64 = 1_000;
/// One second of simulated time, in microseconds.
pub const SEC: u64 = 1_000_000;

/// A duration in simulated microseconds (saturating).
pub fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A small deterministic PRNG (splitmix64): the same seed gives the same
/// schedule on every machine, so a failing seed replays exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits. (Not an `Iterator`: a generator never ends,
    /// and the suites call it as `rng.next()`.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `p`. `p <= 0` draws nothing (a zero-probability
    /// knob leaves the rest of the schedule unchanged).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next() >> 11) as f64) < p * (1u64 << 53) as f64
    }
}

/// A node's monotonic clock: an offset and a constant rate error against
/// global simulated time, the drift that R1's margin (and quorum's Q4
/// margin) must cover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriftClock {
    /// The local reading at global time 0, in nanoseconds.
    pub offset_ns: u64,
    /// Rate error in parts per million (positive: runs fast).
    pub ppm: i64,
}

impl DriftClock {
    /// The local reading, in nanoseconds, at global microsecond `g`.
    pub fn local_ns(self, g: u64) -> u64 {
        let g = i128::from(g) * 1000;
        let ns = i128::from(self.offset_ns) + g + g * i128::from(self.ppm) / 1_000_000;
        u64::try_from(ns).unwrap_or(0)
    }

    /// The first global microsecond at which the local clock reads `>= ns`.
    pub fn global_for(self, ns: u64) -> u64 {
        let rel = i128::from(ns) - i128::from(self.offset_ns);
        let g = rel * 1_000 / (1_000_000 + i128::from(self.ppm));
        let mut g = u64::try_from(g).unwrap_or(0).saturating_sub(1);
        while self.local_ns(g) < ns {
            g += 1;
        }
        g
    }
}

/// `name` parsed as a number, else `default` (`VIPD_SIM_SCHEDULES`,
/// `VIPD_SIM_SEED`).
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one schedule left: its statistics, and the failure report if it
/// violated an invariant.
pub type Outcome<S> = (S, Option<String>);

/// Runs schedules with seeds `base .. base + count` on two worker threads
/// (worker `w` takes every second index from `w`); a worker stops at its
/// first failing schedule. Returns the statistics summed with `add` and the
/// failure with the lowest seed: `VIPD_SIM_SEED=<seed> VIPD_SIM_SCHEDULES=1`
/// replays it alone.
pub fn run_schedules<S, F, A>(count: u64, base: u64, one: F, add: A) -> (S, Option<(u64, String)>)
where
    S: Default + Send,
    F: Fn(u64) -> Outcome<S> + Sync,
    A: Fn(&mut S, &S) + Sync,
{
    const WORKERS: u64 = 2;
    let (one, add) = (&one, &add);
    let results: Vec<(S, Option<(u64, String)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                s.spawn(move || {
                    let mut total = S::default();
                    for i in (w..count).step_by(WORKERS as usize) {
                        let seed = base.wrapping_add(i);
                        let (stats, failure) = one(seed);
                        add(&mut total, &stats);
                        if let Some(report) = failure {
                            return (total, Some((seed, report)));
                        }
                    }
                    (total, None)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    let mut total = S::default();
    let mut failure: Option<(u64, String)> = None;
    for (st, f) in results {
        add(&mut total, &st);
        if let Some(f) = f {
            if failure.as_ref().is_none_or(|g| f.0 < g.0) {
                failure = Some(f);
            }
        }
    }
    (total, failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws_and_ranges_are_inclusive() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..100).map(|_| a.range(3, 5)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.range(3, 5)).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (3..=5).contains(x)));
        assert!(xs.contains(&3) && xs.contains(&5));
        let mut c = Rng::new(7);
        assert!(!c.chance(0.0));
        assert_eq!(c.next(), Rng::new(7).next(), "chance(0) must not draw");
    }

    #[test]
    fn drift_clock_inverts_exactly() {
        for ppm in [-5_000, 0, 5_000] {
            let c = DriftClock {
                offset_ns: 123_456,
                ppm,
            };
            for g in [0, 1, 999, 1_000_000, 86_400_000_000] {
                let ns = c.local_ns(g);
                let back = c.global_for(ns);
                assert!(back <= g && c.local_ns(back) >= ns, "{ppm} {g} {back}");
            }
        }
    }

    #[test]
    fn runner_sums_every_schedule_and_reports_the_lowest_failing_seed() {
        let (n, failure) = run_schedules(
            10,
            100,
            |seed| {
                (
                    1u64,
                    (seed == 104 || seed == 107).then(|| format!("bad {seed}")),
                )
            },
            |t, s| *t += s,
        );
        // Worker 0 stops at 104 (100, 102, 104), worker 1 at 107 (101..107).
        assert_eq!(n, 3 + 4);
        assert_eq!(failure, Some((104, "bad 104".into())));
    }
}
