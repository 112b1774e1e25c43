//! The invariant checker of the simulation, its trace and its counters.

use crate::harness::{Fault, KINDS, MS};
use vipd_election::FenceReason;

const TRACE_LEN: usize = 120;

/// One traced event (cheap to record: no strings on the hot path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tr {
    Send(u64, &'static str),
    Drop(&'static str),
    Applied(&'static str, Result<u64, &'static str>),
    AnswerLost,
    Recv(u64),
    Late(u64),
    Watch(u64),
    Lead,
    Fence(FenceReason),
    VipGone,
    Stopped,
    FaultStart(usize),
    FaultEnd(usize),
    Crash,
    Restart,
    Violation,
}

/// Counters summed over schedules.
#[derive(Default, Clone, Debug)]
pub struct Stats {
    pub faults: [u64; KINDS.len()],
    pub noise_drops: u64,
    pub noise_errors: u64,
    /// Writes applied by the store whose answer never reached the writer.
    pub lost_applied_answers: u64,
    pub failover_after_heal: u64,
    /// Failover after heal, per mille of `lease + 2 * retry`.
    pub failover_permille: u64,
    pub two_holder_us: u64,
    pub leads: u64,
    pub events: u64,
    pub sim_us: u64,
}

impl Stats {
    pub fn add(&mut self, s: &Stats) {
        for (t, c) in self.faults.iter_mut().zip(s.faults) {
            *t += c;
        }
        self.noise_drops += s.noise_drops;
        self.noise_errors += s.noise_errors;
        self.lost_applied_answers += s.lost_applied_answers;
        self.failover_after_heal = self.failover_after_heal.max(s.failover_after_heal);
        self.failover_permille = self.failover_permille.max(s.failover_permille);
        self.two_holder_us += s.two_holder_us;
        self.leads += s.leads;
        self.events += s.events;
        self.sim_us += s.sim_us;
    }
}

/// Checks, after every event: (1) at most one node holds the VIP; (2) once
/// everything has healed, exactly one holder by `healed + bound` and the
/// same one until the end. Invariant (3) is checked where the core is fed.
#[derive(Default)]
pub struct Oracle {
    /// Convergence bound after the last heal, microseconds.
    pub bound: u64,
    /// Target for the failover ratio: `lease + 2 * retry`.
    pub target: u64,
    pub healed_at: Option<u64>,
    holders: u64,
    settled: Option<u64>,
    last_change: u64,
    converge_failed: bool,
    /// Lead / Fence / Stopped / Crash / Restart, in order: `(t, node, what)`.
    pub log: Vec<(u64, usize, Tr)>,
    trace: std::collections::VecDeque<(u64, usize, Tr)>,
    frozen: Option<Vec<(u64, usize, Tr)>>,
    pub violations: Vec<String>,
    pub stats: Stats,
}

impl Oracle {
    pub fn new(bound: u64, target: u64) -> Oracle {
        Oracle {
            bound,
            target,
            ..Oracle::default()
        }
    }

    pub fn note(&mut self, now: u64, n: usize, what: Tr) {
        if self.trace.len() == TRACE_LEN {
            self.trace.pop_front();
        }
        self.trace.push_back((now, n, what));
        if matches!(
            what,
            Tr::Lead | Tr::Fence(_) | Tr::Stopped | Tr::Crash | Tr::Restart
        ) {
            self.log.push((now, n, what));
        }
    }

    pub fn violation(&mut self, now: u64, n: usize, msg: String) {
        self.note(now, n, Tr::Violation);
        if self.frozen.is_none() {
            self.frozen = Some(self.trace.iter().copied().collect());
        }
        if self.violations.len() < 10 {
            self.violations
                .push(format!("t={}ms n{n}: {msg}", now / MS));
        }
    }

    /// Time passes from `self`'s last event to `now` with the holder set
    /// unchanged: account two-holder time.
    pub fn advance(&mut self, from: u64, now: u64) {
        if self.holders.count_ones() >= 2 {
            self.stats.two_holder_us += now - from;
        }
    }

    /// The last heal happened at `now`: start the convergence clock.
    pub fn healed(&mut self, now: u64) {
        self.healed_at = Some(now);
        self.last_change = now;
    }

    /// `holders` is the bit mask of nodes holding the VIP after the event.
    pub fn check(&mut self, now: u64, holders: u64) {
        if holders != self.holders {
            self.holders = holders;
            self.last_change = now;
            if holders.count_ones() >= 2 {
                self.violation(now, 0, format!("two holders at once: mask {holders:#b}"));
            }
        }
        let Some(healed) = self.healed_at else { return };
        if now < healed + self.bound || self.converge_failed {
            return;
        }
        if holders.count_ones() != 1 || self.settled.is_some_and(|s| s != holders) {
            self.converge_failed = true;
            let msg = format!(
                "holders {holders:#b} (settled {:?}) {} ms after the last heal; bound {} ms",
                self.settled,
                (now - healed) / MS,
                self.bound / MS
            );
            self.violation(now, 0, msg);
        } else if self.settled.is_none() {
            self.settled = Some(holders);
            self.stats.failover_after_heal = self.last_change - healed;
            self.stats.failover_permille = self.stats.failover_after_heal * 1000 / self.target;
        }
    }

    /// The holder after convergence, if any.
    pub fn settled_holder(&self) -> Option<usize> {
        self.settled.map(|m| m.trailing_zeros() as usize)
    }

    /// Faults, violations and the trace up to the first violation.
    pub fn report(&self, faults: &[Fault]) -> String {
        let mut s = String::from("faults:\n");
        for (i, f) in faults.iter().enumerate() {
            s += &format!(
                "  #{i} at {} ms: {:?} n{} (other n{}) for {} ms\n",
                f.at / MS,
                f.kind,
                f.node,
                f.other,
                f.dur / MS
            );
        }
        let healed = self.healed_at.map(|h| h / MS);
        s += &format!(
            "healed at {healed:?} ms, bound {} ms\nviolations:\n",
            self.bound / MS
        );
        for v in &self.violations {
            s += &format!("  {v}\n");
        }
        s += "trace (last events up to the first violation, t in us):\n";
        for (t, n, what) in self.frozen.as_deref().unwrap_or(&[]) {
            s += &format!("  {t:>10} n{n} {what:?}\n");
        }
        s
    }
}
