//! The discrete-event simulator behind `tests/sim.rs`: several ownership
//! cores ([`Node`]), one store applying CAS writes atomically on arrival, a
//! network with per-node API faults, and the oracle.
//!
//! Model (global simulated microseconds):
//! - each node's monotonic clock reads `offset + g * (1 + ppm / 1e6)` with
//!   `|ppm| <= MAX_DRIFT_PPM` (0.5%); the core only sees that clock;
//! - every node renews its own record once per retry period (CAS on the
//!   version it last wrote or read; a conflict makes it read its record and
//!   report it) and lists every record plus the assignment once per retry
//!   period, one list in flight at a time;
//! - requests reach the store after 1–50 ms (answers likewise); under a
//!   `StaleReads` fault list answers take up to 2 s, so views go stale; an
//!   API `Cut` drops a node's requests and answers; a renewal not answered
//!   within 0.8 retry periods is reported as failed and its late answer
//!   dropped (R6);
//! - a crash drops the core and its addresses at once; a restart reads the
//!   node's own record before writing it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;
use tokio::time::Instant;
use vipd_election::{Timings, Version};
use vipd_services::{Action, Assignment, Input, Listed, Node, NodeState, Policy, Renewal, ZonePin};

// Simulated microseconds, the PRNG, drifting clocks and the event queue:
// shared with the election simulation (crates/vipd-sim).
pub use vipd_sim::{us, Rng, MAX_DRIFT_PPM, MS, SEC};
use vipd_sim::{DriftClock as Clock, Due, EventQueue};
pub const MAX_DELAY: u64 = 50 * MS;
pub const SLOW_DELAY: u64 = 2 * SEC;
/// Addresses the schedules draw from (198.51.100.0/24, documentation).
pub const POOL: u16 = 24;

/// After the last heal every address with an eligible node is announced by
/// exactly one node within `lease + 3 * retry`, plus what the network may
/// still hold (a stale list answer on its way, a few round trips) and the
/// drift over a lease.
pub fn convergence_bound(t: &Timings) -> u64 {
    let lease = us(t.lease_duration());
    let drift = vipd_sim::drift_margin(lease, MAX_DRIFT_PPM);
    lease + 3 * us(t.retry_period()) + 2 * SLOW_DELAY + 8 * MAX_DELAY + drift
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The node's API requests and answers are dropped.
    Cut,
    /// The node's list answers take up to SLOW_DELAY.
    StaleReads,
    /// SIGKILL; restart after `dur`.
    Crash,
    /// One address's eligibility changes (instantaneous).
    Eligibility,
    /// One address appears or disappears (instantaneous).
    Churn,
    /// The assigner role moves to `node`; the old one keeps it for `dur`.
    AssignerMove,
    /// The node's health checks fail for `dur` (R8: it drains).
    Unhealthy,
}

pub const KINDS: [Kind; 7] = [
    Kind::Cut,
    Kind::StaleReads,
    Kind::Crash,
    Kind::Eligibility,
    Kind::Churn,
    Kind::AssignerMove,
    Kind::Unhealthy,
];

#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub at: u64,
    pub kind: Kind,
    pub node: usize,
    pub dur: u64,
}

pub struct Config {
    pub nodes: usize,
    pub timings: Timings,
    pub seed: u64,
    /// Addresses existing at start (`198.51.100.1..`).
    pub addresses: usize,
    /// The last `late` nodes join at a random time in the first 30 s.
    pub late: usize,
    pub preempt: bool,
    /// A broken driver that never removes an address (to show the oracle
    /// catches two announcers).
    pub never_remove: bool,
}

#[derive(Default)]
struct SimNode {
    name: String,
    clock: Clock,
    core: Option<Node>,
    inc: u32,
    own_version: Option<u64>,
    own_known: bool,
    content: NodeState,
    renew_inflight: Option<(u64, Instant)>,
    read_inflight: Option<u64>,
    wake_gen: u64,
    announced: BTreeSet<IpAddr>,
    cut: u32,
    stale: u32,
    assigner: bool,
    down_fault: bool,
}

enum Req {
    Renew {
        sent: Instant,
        expected: Option<u64>,
        state: NodeState,
    },
    ReadOwn,
    ReadAll,
    Write {
        a: Assignment,
        expected: Option<u64>,
    },
    Tombstone {
        node: String,
        expected: u64,
        generation: u64,
    },
}

enum Ans {
    Renewed { sent: Instant, rv: Option<u64> },
    Own(Option<(u64, NodeState)>),
    All(Vec<(String, u64, NodeState)>, Option<(u64, Assignment)>),
    Written(Option<(u64, Assignment)>),
}

enum Ev {
    Wake {
        n: usize,
        gen: u64,
    },
    RenewTimer {
        n: usize,
        inc: u32,
    },
    ReadTimer {
        n: usize,
        inc: u32,
    },
    RenewTimeout {
        n: usize,
        inc: u32,
        id: u64,
    },
    ReadTimeout {
        n: usize,
        inc: u32,
        id: u64,
    },
    AtStore {
        n: usize,
        inc: u32,
        id: u64,
        req: Req,
    },
    AtNode {
        n: usize,
        inc: u32,
        id: u64,
        ans: Ans,
    },
    Start(usize),
    FaultStart(usize),
    FaultEnd(usize),
    End,
}

#[derive(Default, Clone)]
pub struct Stats {
    pub faults: [u64; KINDS.len()],
    pub violations: u64,
    pub max_convergence: u64,
    pub two_owner_us: u64,
    pub renewals: u64,
    pub assignment_writes: u64,
    pub tombstones: u64,
    /// Writes per retry period in the final steady window, worst run.
    pub steady_writes_per_period_max: f64,
    pub steady_extra_writes: u64,
    pub events: u64,
    pub sim_us: u64,
    pub moves_seen: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        for (a, b) in self.faults.iter_mut().zip(o.faults) {
            *a += b;
        }
        self.violations += o.violations;
        self.max_convergence = self.max_convergence.max(o.max_convergence);
        self.two_owner_us += o.two_owner_us;
        self.renewals += o.renewals;
        self.assignment_writes += o.assignment_writes;
        self.tombstones += o.tombstones;
        self.steady_writes_per_period_max = self
            .steady_writes_per_period_max
            .max(o.steady_writes_per_period_max);
        self.steady_extra_writes += o.steady_extra_writes;
        self.events += o.events;
        self.sim_us += o.sim_us;
        self.moves_seen += o.moves_seen;
    }
}

pub struct Sim {
    cfg: Config,
    rng: Rng,
    base: Instant,
    /// Simulated time and the events still to come.
    queue: EventQueue<Ev>,
    nodes: Vec<SimNode>,
    records: BTreeMap<String, (u64, NodeState)>,
    assignment: Option<(u64, Assignment)>,
    rv: u64,
    next_id: u64,
    addresses: BTreeSet<IpAddr>,
    policies: BTreeMap<IpAddr, Policy>,
    faults: Vec<Fault>,
    unstarted: usize,
    open: u32,
    pub healed_at: Option<u64>,
    bad_since: Option<u64>,
    converged_at: Option<u64>,
    /// (time, is_renewal) of every applied write.
    writes: Vec<(u64, bool)>,
    pub stats: Stats,
    pub violations: Vec<String>,
    owners: BTreeMap<IpAddr, usize>,
    /// Announcements, addresses or policies changed since the last check.
    dirty: bool,
}

/// The `i`-th simulated address: 198.51.100.1.. then 2001:db8::/32.
pub fn ip(i: u16) -> IpAddr {
    match u8::try_from(i) {
        Ok(b) if b < 254 => IpAddr::from([198, 51, 100, b + 1]),
        _ => IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i]),
    }
}

impl Sim {
    pub fn new(cfg: Config, mut faults: Vec<Fault>) -> Sim {
        let mut rng = Rng::new(cfg.seed);
        faults.sort_by_key(|f| f.at);
        let nodes = (0..cfg.nodes)
            .map(|i| SimNode {
                name: format!("n{i}"),
                clock: Clock::random(&mut rng, MAX_DRIFT_PPM),
                assigner: i == 0,
                ..SimNode::default()
            })
            .collect();
        let addresses = (0..cfg.addresses)
            .map(|i| ip(u16::try_from(i).unwrap_or(0)))
            .collect();
        let mut sim = Sim {
            nodes,
            rng,
            base: Instant::now(),
            queue: EventQueue::new(),
            records: BTreeMap::new(),
            assignment: None,
            rv: 0,
            next_id: 0,
            addresses,
            policies: BTreeMap::new(),
            unstarted: faults.len(),
            faults,
            open: 0,
            healed_at: None,
            bad_since: None,
            converged_at: None,
            writes: Vec::new(),
            stats: Stats::default(),
            violations: Vec::new(),
            owners: BTreeMap::new(),
            dirty: true,
            cfg,
        };
        for i in 0..sim.cfg.nodes {
            let at = if i + sim.cfg.late >= sim.cfg.nodes && i > 0 {
                sim.rng.range(SEC, 30 * SEC)
            } else {
                sim.rng.range(0, SEC)
            };
            sim.push(at, Ev::Start(i));
        }
        for i in 0..sim.faults.len() {
            sim.push(sim.faults[i].at, Ev::FaultStart(i));
        }
        sim
    }

    /// A random eligibility policy over the nodes; zones are {n0, n1} and
    /// the rest.
    pub fn random_policy(&mut self) -> Policy {
        let n = self.cfg.nodes;
        let subset = |r: &mut Rng| -> BTreeSet<String> {
            (0..n)
                .filter(|_| r.chance(0.5))
                .map(|i| format!("n{i}"))
                .collect()
        };
        let nodes = if self.rng.chance(0.4) {
            Some(subset(&mut self.rng))
        } else {
            None
        };
        let zone = if self.rng.chance(0.3) {
            let first = self.rng.chance(0.5);
            Some(ZonePin {
                preferred: (0..n)
                    .filter(|i| (*i < 2) == first)
                    .map(|i| format!("n{i}"))
                    .collect(),
                fallback: self.rng.chance(0.5),
            })
        } else {
            None
        };
        Policy { nodes, zone }
    }

    /// Sets an address's policy before the run starts.
    pub fn set_policy(&mut self, a: IpAddr, p: Policy) {
        self.policies.insert(a, p);
    }

    /// Global simulated microseconds (the time of the current event).
    pub fn now(&self) -> u64 {
        self.queue.now()
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.queue.push(t, ev);
    }

    fn local(&self, n: usize) -> Instant {
        self.base + self.nodes[n].clock.reading(self.now())
    }

    /// Global time when node `n`'s clock has advanced by `d` from now.
    fn after_local(&self, n: usize, d: Duration) -> u64 {
        let c = self.nodes[n].clock;
        c.global_for_reading(c.reading(self.now()).saturating_add(d))
    }

    fn delay(&mut self) -> u64 {
        self.rng.range(MS, MAX_DELAY)
    }

    fn up(&self, n: usize) -> bool {
        self.nodes[n].core.is_some()
    }

    pub fn run(&mut self) {
        while let Some(Due { at, elapsed, event }) = self.queue.pop() {
            if self.owners.values().any(|c| *c > 1) {
                self.stats.two_owner_us += elapsed;
            }
            self.stats.events += 1;
            self.stats.sim_us = at;
            let end = matches!(event, Ev::End);
            self.dispatch(event);
            self.check();
            if self.healed_at.is_none() && self.all_healed() {
                self.heal();
            }
            if end {
                self.finish();
                return;
            }
            if at > 3_000 * SEC {
                self.violations.push("never healed (simulator bug)".into());
                return;
            }
        }
    }

    fn all_healed(&self) -> bool {
        self.unstarted == 0 && self.open == 0 && (0..self.nodes.len()).all(|i| self.up(i))
    }

    fn heal(&mut self) {
        self.healed_at = Some(self.now());
        self.dirty = true;
        // One assigner from now on: the lowest-numbered current one, else n0.
        let keep = (0..self.nodes.len())
            .find(|i| self.nodes[*i].assigner)
            .unwrap_or(0);
        for i in 0..self.nodes.len() {
            self.set_assigner(i, i == keep);
        }
        let t = &self.cfg.timings;
        let end =
            self.now() + convergence_bound(t) + us(t.lease_duration()) + 12 * us(t.retry_period());
        self.push(end, Ev::End);
    }

    fn set_assigner(&mut self, n: usize, on: bool) {
        if self.nodes[n].assigner != on {
            self.nodes[n].assigner = on;
            if self.up(n) {
                self.feed(n, Input::IsAssigner(on));
            }
        }
    }

    /// At most one announcer per address, at every event; after the heal,
    /// track when the announcements match the eligible live nodes.
    fn check(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let mut owners: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for node in &self.nodes {
            for a in &node.announced {
                *owners.entry(*a).or_default() += 1;
            }
        }
        for (a, c) in &owners {
            if *c > 1 && self.owners.get(a).is_none_or(|p| *p <= 1) {
                let who: Vec<&str> = self
                    .nodes
                    .iter()
                    .filter(|n| n.announced.contains(a))
                    .map(|n| n.name.as_str())
                    .collect();
                self.violations
                    .push(format!("{} us: TWO OWNERS of {a}: {who:?}", self.now()));
            }
        }
        self.owners = owners;
        let Some(healed) = self.healed_at else {
            return;
        };
        let all: BTreeSet<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let mut by_addr: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
        for node in &self.nodes {
            for a in &node.announced {
                by_addr.entry(*a).or_default().push(&node.name);
            }
        }
        let pool = self
            .pool()
            .max(u16::try_from(self.cfg.addresses).unwrap_or(u16::MAX));
        let good = (0..pool).map(ip).all(|a| {
            let announcers = by_addr.get(&a).map_or(&[][..], |v| v.as_slice());
            if !self.addresses.contains(&a) {
                return announcers.is_empty();
            }
            match self.policies.get(&a) {
                None => announcers.len() == 1,
                Some(p) => {
                    let tier = p.candidates(&all);
                    if tier.is_empty() {
                        announcers.is_empty()
                    } else {
                        announcers.len() == 1 && tier.iter().any(|n| n.as_str() == announcers[0])
                    }
                }
            }
        });
        match (good, self.bad_since) {
            (false, None) => {
                self.bad_since = Some(self.now());
                self.converged_at = None;
            }
            (true, Some(_)) | (true, None) if self.converged_at.is_none() => {
                self.bad_since = None;
                self.converged_at = Some(self.now());
                let took = self.now().saturating_sub(healed);
                self.stats.max_convergence = self.stats.max_convergence.max(took);
            }
            _ => {}
        }
    }

    fn pool(&self) -> u16 {
        POOL
    }

    fn finish(&mut self) {
        let t = &self.cfg.timings;
        let (Some(healed), Some(conv)) = (self.healed_at, self.converged_at) else {
            self.violations
                .push(format!("not converged at the end ({} us)", self.now()));
            return;
        };
        if conv - healed > convergence_bound(t) {
            self.violations.push(format!(
                "converged {} ms after the heal, bound {} ms",
                (conv - healed) / MS,
                convergence_bound(t) / MS
            ));
        }
        // Steady state: the last 10 retry periods.
        let period = us(t.retry_period());
        let from = self.now() - 10 * period;
        let (mut renew, mut extra) = (0u64, 0u64);
        for (at, r) in &self.writes {
            if *at >= from {
                if *r {
                    renew += 1;
                } else {
                    extra += 1;
                }
            }
        }
        let per = (renew + extra) as f64 / 10.0;
        self.stats.steady_writes_per_period_max = per;
        self.stats.steady_extra_writes = extra;
        let n = self.cfg.nodes as u64;
        if extra > 0 || renew > n * 11 {
            self.violations.push(format!(
                "steady state: {renew} renewals and {extra} other writes in 10 retry periods ({n} nodes)"
            ));
        }
    }

    pub fn writes_in(&self, from: u64, to: u64) -> (u64, u64) {
        self.writes
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .fold(
                (0, 0),
                |(r, o), (_, ren)| {
                    if *ren {
                        (r + 1, o)
                    } else {
                        (r, o + 1)
                    }
                },
            )
    }

    pub fn announcers(&self) -> BTreeMap<IpAddr, Vec<String>> {
        let mut m: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for n in &self.nodes {
            for a in &n.announced {
                m.entry(*a).or_default().push(n.name.clone());
            }
        }
        m
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { n, gen } if self.nodes[n].wake_gen == gen && self.up(n) => {
                self.feed(n, Input::Tick);
            }
            Ev::Start(n) => self.start(n),
            Ev::RenewTimer { n, inc } if self.nodes[n].inc == inc && self.up(n) => {
                let next = self.after_local(n, self.cfg.timings.retry_period());
                self.push(next, Ev::RenewTimer { n, inc });
                if !self.nodes[n].own_known {
                    // The read after a start or a conflict was lost: again.
                    self.send(n, Req::ReadOwn);
                } else if self.nodes[n].renew_inflight.is_none() {
                    let sent = self.local(n);
                    let req = Req::Renew {
                        sent,
                        expected: self.nodes[n].own_version,
                        state: self.nodes[n].content.clone(),
                    };
                    let id = self.send(n, req);
                    self.nodes[n].renew_inflight = Some((id, sent));
                    let to = self.after_local(n, self.cfg.timings.retry_period().mul_f64(0.8));
                    self.push(to, Ev::RenewTimeout { n, inc, id });
                }
            }
            Ev::ReadTimer { n, inc } if self.nodes[n].inc == inc && self.up(n) => {
                let next = self.after_local(n, self.cfg.timings.retry_period());
                self.push(next, Ev::ReadTimer { n, inc });
                if self.nodes[n].read_inflight.is_none() {
                    let id = self.send(n, Req::ReadAll);
                    self.nodes[n].read_inflight = Some(id);
                    self.push(self.now() + 3 * SLOW_DELAY, Ev::ReadTimeout { n, inc, id });
                }
            }
            Ev::RenewTimeout { n, inc, id } if self.nodes[n].inc == inc && self.up(n) => {
                if let Some((i, sent)) = self.nodes[n].renew_inflight {
                    if i == id {
                        self.nodes[n].renew_inflight = None;
                        let outcome = Renewal::Failed;
                        self.feed(
                            n,
                            Input::OwnRenewal {
                                sent_at: sent,
                                outcome,
                            },
                        );
                    }
                }
            }
            Ev::ReadTimeout { n, inc, id }
                if self.nodes[n].inc == inc && self.nodes[n].read_inflight == Some(id) =>
            {
                self.nodes[n].read_inflight = None;
            }
            Ev::AtStore { n, inc, id, req } => {
                if self.nodes[n].cut > 0 {
                    return;
                }
                let ans = self.apply(n, req);
                let mut d = self.delay();
                if matches!(ans, Ans::All(..)) && self.nodes[n].stale > 0 {
                    d = self.rng.range(MS, SLOW_DELAY);
                }
                self.push(self.now() + d, Ev::AtNode { n, inc, id, ans });
            }
            Ev::AtNode { n, inc, id, ans }
                if self.nodes[n].inc == inc && self.up(n) && self.nodes[n].cut == 0 =>
            {
                self.answer(n, id, ans);
            }
            Ev::FaultStart(i) => self.fault_start(i),
            Ev::FaultEnd(i) => self.fault_end(i),
            _ => {}
        }
    }

    fn send(&mut self, n: usize, req: Req) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.nodes[n].cut == 0 {
            let d = self.delay();
            let inc = self.nodes[n].inc;
            self.push(self.now() + d, Ev::AtStore { n, inc, id, req });
        }
        id
    }

    fn apply(&mut self, n: usize, req: Req) -> Ans {
        let name = self.nodes[n].name.clone();
        match req {
            Req::Renew {
                sent,
                expected,
                state,
            } => {
                let cur = self.records.get(&name).map(|r| r.0);
                if cur == expected {
                    self.rv += 1;
                    self.records.insert(name, (self.rv, state));
                    self.writes.push((self.now(), true));
                    self.stats.renewals += 1;
                    Ans::Renewed {
                        sent,
                        rv: Some(self.rv),
                    }
                } else {
                    Ans::Renewed { sent, rv: None }
                }
            }
            Req::ReadOwn => Ans::Own(self.records.get(&name).cloned()),
            Req::ReadAll => Ans::All(
                self.records
                    .iter()
                    .map(|(k, (v, s))| (k.clone(), *v, s.clone()))
                    .collect(),
                self.assignment.clone(),
            ),
            Req::Write { a, expected } => {
                if self.assignment.as_ref().map(|x| x.0) == expected {
                    self.rv += 1;
                    self.assignment = Some((self.rv, a.clone()));
                    self.writes.push((self.now(), false));
                    self.stats.assignment_writes += 1;
                    Ans::Written(Some((self.rv, a)))
                } else {
                    Ans::Written(None)
                }
            }
            Req::Tombstone {
                node,
                expected,
                generation,
            } => {
                if self.records.get(&node).map(|r| r.0) == Some(expected) {
                    self.rv += 1;
                    let st = NodeState {
                        generation,
                        held: BTreeSet::new(),
                        expired: true,
                    };
                    self.records.insert(node, (self.rv, st));
                    self.writes.push((self.now(), false));
                    self.stats.tombstones += 1;
                }
                Ans::Written(None)
            }
        }
    }

    fn answer(&mut self, n: usize, id: u64, ans: Ans) {
        match ans {
            Ans::Renewed { sent, rv } => {
                if self.nodes[n].renew_inflight.map(|x| x.0) != Some(id) {
                    return; // timed out already
                }
                self.nodes[n].renew_inflight = None;
                let outcome = match rv {
                    Some(v) => {
                        self.nodes[n].own_version = Some(v);
                        Renewal::Ok
                    }
                    None => {
                        self.nodes[n].own_known = false;
                        self.send(n, Req::ReadOwn);
                        Renewal::Conflict
                    }
                };
                self.feed(
                    n,
                    Input::OwnRenewal {
                        sent_at: sent,
                        outcome,
                    },
                );
            }
            Ans::Own(rec) => {
                if self.nodes[n].own_known {
                    return;
                }
                self.nodes[n].own_known = true;
                self.nodes[n].own_version = rec.as_ref().map(|r| r.0);
                if let Some((_, st)) = rec {
                    self.feed(n, Input::OwnRecord(st));
                }
            }
            Ans::All(recs, assignment) => {
                if self.nodes[n].read_inflight != Some(id) {
                    return;
                }
                self.nodes[n].read_inflight = None;
                if let Some((v, a)) = assignment {
                    self.feed(
                        n,
                        Input::Assignment {
                            assignment: a,
                            version: Version(v.to_string()),
                        },
                    );
                }
                let list = recs
                    .into_iter()
                    .map(|(node, v, state)| Listed {
                        node,
                        state,
                        version: Version(v.to_string()),
                    })
                    .collect();
                self.feed(n, Input::Listed(list));
            }
            Ans::Written(Some((v, a))) => {
                self.feed(
                    n,
                    Input::Assignment {
                        assignment: a,
                        version: Version(v.to_string()),
                    },
                );
            }
            Ans::Written(None) => {}
        }
    }

    fn feed(&mut self, n: usize, input: Input) {
        let now = self.local(n);
        let Some(core) = self.nodes[n].core.as_mut() else {
            return;
        };
        let actions = core.handle(now, input);
        let wake = core.poll_timeout(now);
        for a in actions {
            match a {
                Action::Announce(s) => {
                    let before = &self.nodes[n].announced;
                    self.stats.moves_seen += s.difference(before).count() as u64;
                    if self.cfg.never_remove {
                        self.nodes[n].announced.extend(s);
                    } else {
                        self.nodes[n].announced = s;
                    }
                    self.dirty = true;
                }
                Action::PublishHeld(st) => self.nodes[n].content = st,
                Action::WriteAssignment {
                    assignment,
                    expected_version,
                } => {
                    let expected = expected_version.and_then(|v| v.0.parse().ok());
                    self.send(
                        n,
                        Req::Write {
                            a: assignment,
                            expected,
                        },
                    );
                }
                Action::Tombstone {
                    node,
                    expected_version,
                    generation,
                } => {
                    if let Ok(expected) = expected_version.0.parse() {
                        self.send(
                            n,
                            Req::Tombstone {
                                node,
                                expected,
                                generation,
                            },
                        );
                    }
                }
            }
        }
        if let Some(w) = wake {
            let at = self.nodes[n]
                .clock
                .global_for_reading(w - self.base)
                .max(self.now());
            self.nodes[n].wake_gen += 1;
            let gen = self.nodes[n].wake_gen;
            self.push(at, Ev::Wake { n, gen });
        }
    }

    fn start(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.inc += 1;
        node.core = Some(Node::new(
            node.name.clone(),
            self.cfg.timings,
            self.cfg.preempt,
        ));
        node.own_known = false;
        node.own_version = None;
        node.renew_inflight = None;
        node.read_inflight = None;
        node.content = NodeState::default();
        let inc = node.inc;
        self.feed(n, Input::Addresses(self.addresses.clone()));
        for (address, policy) in self.policies.clone() {
            self.feed(n, Input::Eligibility { address, policy });
        }
        if self.nodes[n].assigner {
            self.feed(n, Input::IsAssigner(true));
        }
        self.send(n, Req::ReadOwn);
        // Renew right after the own read comes back, then every period.
        let first = self.now() + 2 * MAX_DELAY + MS;
        self.push(first, Ev::RenewTimer { n, inc });
        let phase = self.rng.range(0, us(self.cfg.timings.retry_period()));
        self.push(self.now() + phase, Ev::ReadTimer { n, inc });
    }

    fn crash(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        node.core = None;
        node.announced.clear();
        node.inc += 1;
        self.dirty = true;
    }

    fn fault_start(&mut self, i: usize) {
        let f = self.faults[i];
        self.unstarted -= 1;
        self.stats.faults[KINDS.iter().position(|k| *k == f.kind).unwrap_or(0)] += 1;
        let n = f.node;
        match f.kind {
            Kind::Cut => self.nodes[n].cut += 1,
            Kind::StaleReads => self.nodes[n].stale += 1,
            Kind::Crash => {
                if !self.up(n) || self.nodes[n].down_fault {
                    return;
                }
                self.nodes[n].down_fault = true;
                self.crash(n);
            }
            Kind::Eligibility => {
                let a = ip(u16::try_from(self.rng.range(0, u64::from(POOL) - 1)).unwrap_or(0));
                let p = self.random_policy();
                self.policies.insert(a, p.clone());
                self.dirty = true;
                for m in 0..self.nodes.len() {
                    let policy = p.clone();
                    self.feed(m, Input::Eligibility { address: a, policy });
                }
                return;
            }
            Kind::Churn => {
                let a = ip(u16::try_from(self.rng.range(0, u64::from(POOL) - 1)).unwrap_or(0));
                self.dirty = true;
                if !self.addresses.remove(&a) {
                    self.addresses.insert(a);
                }
                for m in 0..self.nodes.len() {
                    self.feed(m, Input::Addresses(self.addresses.clone()));
                }
                return;
            }
            Kind::AssignerMove => {
                self.set_assigner(n, true);
            }
            Kind::Unhealthy => {
                self.dirty = true;
                self.feed(n, Input::Eligible(false));
            }
        }
        self.open += 1;
        self.push(f.at + f.dur, Ev::FaultEnd(i));
    }

    fn fault_end(&mut self, i: usize) {
        let f = self.faults[i];
        self.open -= 1;
        let n = f.node;
        match f.kind {
            Kind::Cut => self.nodes[n].cut -= 1,
            Kind::StaleReads => self.nodes[n].stale -= 1,
            Kind::Unhealthy => {
                self.dirty = true;
                self.feed(n, Input::Eligible(true));
            }
            Kind::Crash if self.nodes[n].down_fault => {
                self.nodes[n].down_fault = false;
                self.start(n);
            }
            Kind::AssignerMove => {
                // The old assigners lose the role (terms overlap until now).
                for m in 0..self.nodes.len() {
                    if m != n {
                        self.set_assigner(m, false);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn report(&self) -> String {
        format!(
            "seed {} ({} nodes, {:?}): {}\nfaults: {:?}\nannouncers: {:?}\nassignment: {:?}",
            self.cfg.seed,
            self.cfg.nodes,
            self.cfg.timings,
            self.violations.join("\n"),
            self.faults,
            self.announcers(),
            self.assignment,
        )
    }
}
