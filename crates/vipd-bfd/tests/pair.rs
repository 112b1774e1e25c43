//! Two session cores feeding each other's packets over a simulated link
//! (random 0.1–2 ms delay, 1 % loss) on simulated time: both reach Up
//! within a bound, stay Up, and one side going silent takes the other Down
//! within its detection time; a graceful shutdown reads as AdminDown.

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tokio::time::Instant;
use vipd_bfd::{Action, BfdConfig, ControlPacket, Diag, Input, Session, State};
use vipd_sim::{env_u64, Rng, MS, SEC};

struct Link {
    s: [Session; 2],
    /// Whether each side still runs, and when it started (µs); a side
    /// hears nothing before it starts.
    alive: [bool; 2],
    start: [u64; 2],
    inflight: Vec<(u64, usize, ControlPacket)>,
    t0: Instant,
    now: u64,
    rng: Rng,
    loss: f64,
    /// (time µs, side, from, to, diag)
    changes: Vec<(u64, usize, State, State, Diag)>,
}

impl Link {
    fn new(seed: u64, start_b: u64) -> Link {
        let t0 = Instant::now();
        let cfg = BfdConfig::default();
        Link {
            s: [
                Session::new(cfg, 0xa, seed, t0).unwrap(),
                Session::new(cfg, 0xb, seed ^ 0xffff, t0 + Duration::from_micros(start_b)).unwrap(),
            ],
            alive: [true, true],
            start: [0, start_b],
            inflight: Vec::new(),
            t0,
            now: 0,
            rng: Rng::new(seed),
            loss: 0.01,
            changes: Vec::new(),
        }
    }

    fn at(&self, us: u64) -> Instant {
        self.t0 + Duration::from_micros(us)
    }

    fn us(&self, t: Instant) -> u64 {
        u64::try_from((t - self.t0).as_micros()).unwrap()
    }

    fn apply(&mut self, side: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(p) => {
                    if !self.rng.chance(self.loss) {
                        let at = self.now + self.rng.range(100, 2_000);
                        self.inflight.push((at, 1 - side, p));
                    }
                }
                Action::StateChanged { from, to, diag } => {
                    self.changes.push((self.now, side, from, to, diag));
                }
            }
        }
    }

    fn input(&mut self, side: usize, i: Input) {
        let now = self.at(self.now);
        let actions = self.s[side].handle(now, i);
        self.apply(side, actions);
    }

    /// Runs every event up to `until` µs.
    fn run_until(&mut self, until: u64) {
        loop {
            let mut next: Option<(u64, Option<usize>)> = None;
            for side in 0..2 {
                if !self.alive[side] {
                    continue;
                }
                if let Some(d) = self.s[side].next_deadline() {
                    let d = self.us(d);
                    if next.is_none_or(|(t, _)| d < t) {
                        next = Some((d, Some(side)));
                    }
                }
            }
            if let Some(&(t, _, _)) = self.inflight.iter().min_by_key(|f| f.0) {
                if next.is_none_or(|(n, _)| t < n) {
                    next = Some((t, None));
                }
            }
            let Some((t, what)) = next.filter(|(t, _)| *t <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(t);
            match what {
                Some(side) => self.input(side, Input::Timer),
                None => {
                    let k = self.inflight.iter().position(|f| f.0 == t).unwrap();
                    let (_, to, p) = self.inflight.swap_remove(k);
                    if self.alive[to] && t >= self.start[to] {
                        self.input(to, Input::Packet(p));
                    }
                }
            }
        }
    }

    fn up_at(&self, side: usize) -> Option<u64> {
        self.changes
            .iter()
            .find(|c| c.1 == side && c.3 == State::Up)
            .map(|c| c.0)
    }
}

#[test]
fn two_cores_come_up_and_detect_a_silent_peer_within_detection_time() {
    let schedules = env_u64("VIPD_SIM_SCHEDULES", 300);
    let base = env_u64("VIPD_SIM_SEED", 1);
    let (mut worst_up, mut min_down, mut max_down) = (0u64, u64::MAX, 0u64);
    for seed in base..base + schedules {
        let mut rng = Rng::new(seed);
        let start_b = rng.range(0, 2 * SEC);
        let mut l = Link::new(seed, start_b);
        l.run_until(start_b + 5 * SEC);
        let up = [l.up_at(0), l.up_at(1)];
        let (Some(a), Some(b)) = (up[0], up[1]) else {
            panic!("seed {seed}: not Up after 5 s: {:?}", l.changes);
        };
        // Slow (1 s) timers until Up: two exchanges after the later start.
        let took = a.max(b) - start_b;
        assert!(took <= 2_100 * MS, "seed {seed}: Up after {took} µs");
        worst_up = worst_up.max(took);
        // Steady for 30 s with 1 % loss: no flap.
        let settled = l.changes.len();
        l.run_until(start_b + 35 * SEC);
        assert_eq!(
            l.changes.len(),
            settled,
            "seed {seed}: flapped: {:?}",
            &l.changes[settled..]
        );
        // B goes silent (crash: no AdminDown).
        let silent = l.now;
        l.alive[1] = false;
        l.run_until(silent + 3 * SEC);
        let down = l.changes[settled..]
            .iter()
            .find(|c| c.1 == 0)
            .unwrap_or_else(|| panic!("seed {seed}: A never went down"));
        assert_eq!(
            (down.3, down.4),
            (State::Down, Diag::ControlDetectionTimeExpired)
        );
        let after = down.0 - silent;
        // The last packet from B arrived at most one 300 ms interval (and a
        // lost one more, at 1 % loss) before the silence; A must give up
        // 900 ms after it.
        assert!(
            after <= 900 * MS + 2 * MS,
            "seed {seed}: Down after {after} µs"
        );
        assert!(after >= 300 * MS, "seed {seed}: Down too early, {after} µs");
        min_down = min_down.min(after);
        max_down = max_down.max(after);
    }
    println!(
        "pair: {schedules} schedules; Up within {} ms of the later start; silent peer detected after {}–{} ms (detection time 900 ms)",
        worst_up / MS,
        min_down / MS,
        max_down / MS
    );
}

#[test]
fn graceful_shutdown_reads_as_admin_down_at_the_peer() {
    for seed in 1..=50 {
        let mut l = Link::new(seed, 0);
        l.loss = 0.0;
        l.run_until(5 * SEC);
        assert!(l.up_at(0).is_some() && l.up_at(1).is_some(), "seed {seed}");
        let settled = l.changes.len();
        l.input(1, Input::Shutdown);
        let stop = l.now;
        l.run_until(stop + 3 * SEC);
        let a: Vec<_> = l.changes[settled..].iter().filter(|c| c.1 == 0).collect();
        assert_eq!(a.len(), 1, "seed {seed}: {a:?}");
        assert_eq!((a[0].3, a[0].4), (State::Down, Diag::NeighborSignaledDown));
        assert!(
            a[0].0 - stop <= 2 * MS,
            "seed {seed}: first AdminDown packet"
        );
        assert_eq!(l.s[0].status().remote_diag, Diag::AdminDown);
        assert!(l.s[1].shutdown_complete());
        // A stays Down (not Init) while B is AdminDown and then silent.
        assert_eq!(l.s[0].state(), State::Down);
    }
}
