//! A deterministic simulation harness, used only by tests: the pieces every
//! seeded simulation of a vipd core shares (the election simulation, the
//! Services ownership simulation, and the ones quorum mode will add):
//! simulated microseconds, a seeded PRNG, a drifting per-node clock, the
//! simulated-time event queue, and the runner that spreads N schedules over
//! worker threads and reports the seed that replays a failure alone.
//!
//! Test-only (`publish = false`, a dev-dependency of the core crates). No
//! I/O, no tokio, no dependencies: each suite keeps its own model, faults
//! and oracle; only the machinery lives here.

#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Debug;
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

/// The clock-rate drift bound both simulations give their nodes, in parts
/// per million (±0.5%).
pub const MAX_DRIFT_PPM: i64 = 5_000;

/// How far apart two clocks whose rates are within `±ppm` can drift over
/// `span` simulated microseconds (saturating): the slack a convergence bound
/// adds for drift.
pub fn drift_margin(span: u64, ppm: i64) -> u64 {
    span.saturating_mul(2).saturating_mul(ppm.unsigned_abs()) / 1_000_000
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

    /// Uniform in `0..n`, one draw (the same draw as `range(0, n - 1)`);
    /// `n == 0` gives 0.
    pub fn index(&mut self, n: usize) -> usize {
        let hi = u64::try_from(n).unwrap_or(u64::MAX).saturating_sub(1);
        usize::try_from(self.range(0, hi)).unwrap_or(0)
    }

    /// One element of a non-empty array, uniformly, with one draw.
    pub fn pick<T: Copy, const N: usize>(&mut self, xs: &[T; N]) -> T {
        const { assert!(N > 0, "pick from an empty array") };
        xs[self.index(N)]
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
    /// A clock whose rate error is uniform in `±max_ppm` and whose offset is
    /// a whole millisecond in `0..=1000 s`. Draws the rate, then the offset.
    pub fn random(rng: &mut Rng, max_ppm: i64) -> DriftClock {
        let span = max_ppm.unsigned_abs().saturating_mul(2);
        let ppm = i64::try_from(rng.range(0, span))
            .unwrap_or(0)
            .saturating_sub(max_ppm);
        DriftClock {
            offset_ns: rng.range(0, 1_000_000) * 1_000_000,
            ppm,
        }
    }

    /// The local reading at global microsecond `g`, as time since the
    /// clock's zero (add it to a common base `Instant`).
    pub fn reading(self, g: u64) -> Duration {
        Duration::from_nanos(self.local_ns(g))
    }

    /// The first global microsecond at which [`DriftClock::reading`] is
    /// `>= reading` (saturating for readings past `u64::MAX` nanoseconds).
    pub fn global_for_reading(self, reading: Duration) -> u64 {
        self.global_for(u64::try_from(reading.as_nanos()).unwrap_or(u64::MAX))
    }

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

/// Simulated time and its event queue: events come out in time order, and
/// in push order among equal times, so a run is a pure function of its seed;
/// the clock ([`EventQueue::now`]) moves only when an event is popped.
#[derive(Clone, Debug)]
pub struct EventQueue<E> {
    now: u64,
    /// Min-heap of `(time, seq)` into `slots`.
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    slots: Vec<Option<E>>,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            now: 0,
            heap: BinaryHeap::new(),
            slots: Vec::new(),
        }
    }
}

/// An event taken from an [`EventQueue`], with the simulated time it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due<E> {
    /// Its time: the queue's [`EventQueue::now`] from now on.
    pub at: u64,
    /// Simulated microseconds since the event before it (or since 0).
    pub elapsed: u64,
    /// The event.
    pub event: E,
}

impl<E> EventQueue<E> {
    /// An empty queue at simulated time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current simulated time: when the last popped event was due.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Schedules `ev` at simulated microsecond `at`.
    pub fn push(&mut self, at: u64, ev: E) {
        self.heap.push(Reverse((at, self.slots.len())));
        self.slots.push(Some(ev));
    }

    /// Advances the clock to the earliest event and returns it, or `None`
    /// when the queue is empty. Time never runs backwards: an event pushed
    /// for a time already past comes out at [`EventQueue::now`].
    pub fn pop(&mut self) -> Option<Due<E>> {
        loop {
            let Reverse((at, seq)) = self.heap.pop()?;
            if let Some(event) = self.slots.get_mut(seq).and_then(Option::take) {
                let at = at.max(self.now);
                let elapsed = at - self.now;
                self.now = at;
                return Some(Due { at, elapsed, event });
            }
        }
    }
}

/// The variable that sets how many schedules a randomized suite runs.
pub const SCHEDULES_VAR: &str = "VIPD_SIM_SCHEDULES";
/// The variable that sets the first seed (the others follow it).
pub const SEED_VAR: &str = "VIPD_SIM_SEED";

/// The environment that replays schedule `seed` alone:
/// `VIPD_SIM_SEED=<seed> VIPD_SIM_SCHEDULES=1`.
pub fn replay_env(seed: u64) -> String {
    format!("{SEED_VAR}={seed} {SCHEDULES_VAR}=1")
}

/// The panic message for a failing schedule: the replay environment, then
/// the suite's report.
pub fn failure_message(seed: u64, report: &str) -> String {
    format!(
        "simulation violated an invariant (replay: {}):\n{report}",
        replay_env(seed)
    )
}

/// Per-kind fault counts for a summary line: `Kind=count` pairs, in the
/// order of `kinds`, separated by spaces.
pub fn fault_counts<K: Debug>(kinds: &[K], counts: &[u64]) -> String {
    let parts: Vec<String> = kinds
        .iter()
        .zip(counts)
        .map(|(k, c)| format!("{k:?}={c}"))
        .collect();
    parts.join(" ")
}

/// `name` parsed as a number, else `default` ([`SCHEDULES_VAR`],
/// [`SEED_VAR`]).
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
    fn index_and_pick_draw_once_like_range() {
        let (mut a, mut b) = (Rng::new(9), Rng::new(9));
        for _ in 0..50 {
            assert_eq!(a.index(5) as u64, b.range(0, 4));
            assert_eq!(a.pick(&[10, 20, 30]), [10, 20, 30][b.range(0, 2) as usize]);
        }
        assert_eq!(a.next(), b.next());
    }

    #[test]
    fn random_clock_draws_rate_then_offset_within_bounds() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        for _ in 0..50 {
            let c = DriftClock::random(&mut a, 5_000);
            let ppm = b.range(0, 10_000) as i64 - 5_000;
            assert_eq!(c.ppm, ppm);
            assert_eq!(c.offset_ns, b.range(0, 1_000_000) * 1_000_000);
            let g = c.global_for_reading(c.reading(1_234_567));
            assert!(g <= 1_234_567 && c.reading(g) >= c.reading(1_234_567));
        }
        assert_eq!(drift_margin(5 * SEC, MAX_DRIFT_PPM), 50 * MS);
    }

    #[test]
    fn queue_pops_in_time_order_fifo_among_equal_times_and_keeps_the_clock() {
        let mut q = EventQueue::new();
        for (at, ev) in [(5, 'a'), (1, 'b'), (5, 'c'), (0, 'd'), (5, 'e')] {
            q.push(at, ev);
        }
        let order: Vec<(u64, u64, char)> = std::iter::from_fn(|| q.pop())
            .map(|d| (d.at, d.elapsed, d.event))
            .collect();
        let want = [
            (0, 0, 'd'),
            (1, 1, 'b'),
            (5, 4, 'a'),
            (5, 0, 'c'),
            (5, 0, 'e'),
        ];
        assert_eq!(order, want);
        assert_eq!(q.now(), 5);
        // An event for a time already past comes out now: time never runs back.
        q.push(2, 'f');
        assert_eq!(q.pop().map(|d| (d.at, d.elapsed)), Some((5, 0)));
        assert!(q.pop().is_none());
    }

    #[test]
    fn reports_name_the_replay_environment_and_the_fault_counts() {
        assert_eq!(
            failure_message(42, "boom"),
            "simulation violated an invariant (replay: VIPD_SIM_SEED=42 VIPD_SIM_SCHEDULES=1):\nboom"
        );
        #[derive(Debug)]
        enum K {
            Cut,
            Crash,
        }
        assert_eq!(fault_counts(&[K::Cut, K::Crash], &[3, 0]), "Cut=3 Crash=0");
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
