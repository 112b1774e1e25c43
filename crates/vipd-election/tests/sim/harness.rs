//! The discrete-event simulator behind `tests/sim.rs`: several [`Elector`]s,
//! one [`MemStore`], a network with per-link faults, and an [`Oracle`].
//!
//! Model (all times are global simulated microseconds):
//! - every node's monotonic clock reads `offset + g * (1 + ppm / 1e6)` with
//!   `|ppm| <= MAX_DRIFT_PPM` (0.5%); the core only sees that local clock, as
//!   a `tokio::time::Instant` past a common base;
//! - a request reaches the store after a random delay, is applied atomically
//!   on arrival, and its answer travels back after another delay. A cut drops
//!   a message at its send time; a store outage drops requests on arrival.
//!   The driver gives up at the request's deadline, so late answers are
//!   dropped (the core also times requests out itself);
//! - a fence removes the address after up to `MAX_REMOVAL` (50 ms) and the
//!   driver sends nothing before that (the contract on `Action::Fence`);
//! - a crash drops the elector and the address at once (SIGKILL + link
//!   down); its messages already on the wire still reach the store.

use crate::oracle::{Oracle, Tr};
use tokio::time::Instant;
use vipd_election::mem::MemStore;
use vipd_election::{
    Action, Elector, Input, Op, RequestId, StoreError, Timings, Versioned, WallTime, WatchEvent,
};

// Simulated microseconds, the PRNG, drifting clocks and the event queue:
// shared with the Services simulation (crates/vipd-sim). R1's margin of
// max(1 s, 20%) tolerates far more drift than MAX_DRIFT_PPM (0.5%): 3/2 s
// timings break near 19%.
pub use vipd_sim::{us, Rng, MAX_DRIFT_PPM, MS, SEC};
use vipd_sim::{DriftClock as Clock, Due, EventQueue};
/// Largest one-way delay on a healthy link.
pub const MAX_DELAY: u64 = 50 * MS;
/// Largest one-way delay on a link under a `Slow` fault.
pub const SLOW_DELAY: u64 = SEC;
/// Longest address removal after `Action::Fence`.
pub const MAX_REMOVAL: u64 = 50 * MS;
/// A shutdown not finished by then is SIGKILLed (kubelet's grace period).
pub const GRACE: u64 = 10 * SEC;
/// `Fault::node` meaning "whoever holds the VIP (else the record) then".
pub const HOLDER: usize = usize::MAX;

/// Invariant (2): one holder within `lease + 2 * retry` of the last heal,
/// plus what the network may still hold then: a message sent on a slow link
/// just before the heal (SLOW_DELAY), a read and an acquire round trip
/// (4 * MAX_DELAY), an address removal, and 2 x 0.5% drift over the lease.
pub fn convergence_bound(t: &Timings) -> u64 {
    let lease = us(t.lease_duration());
    let drift = vipd_sim::drift_margin(lease, MAX_DRIFT_PPM);
    lease + 2 * us(t.retry_period()) + SLOW_DELAY + 4 * MAX_DELAY + MAX_REMOVAL + drift
}

/// What a fault does to `Fault::node`; it lasts `Fault::dur`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Requests to the store dropped.
    CutRequests,
    /// Answers and watch events dropped: writes land unseen.
    CutResponses,
    CutBoth,
    /// The store is down for everyone.
    Outage,
    /// `node` <-> `other` cut: nodes do not talk directly yet.
    PeerCut,
    /// Delays up to SLOW_DELAY on the node's store link.
    Slow,
    /// 30% drops and 20% error answers on the node's store link.
    Lossy,
    /// SIGKILL; restart after `dur`.
    Crash,
    /// SIGTERM; restart `dur` after Stopped (or after the grace kill).
    Shutdown,
    /// Health checks fail (SetEligible(false)).
    Unhealthy,
    /// One `Input::Reread` (instantaneous).
    Reread,
}

pub const KINDS: [Kind; 11] = {
    use Kind::*;
    [
        CutRequests,
        CutResponses,
        CutBoth,
        Outage,
        PeerCut,
        Slow,
        Lossy,
        Crash,
        Shutdown,
        Unhealthy,
        Reread,
    ]
};

#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub at: u64,
    pub kind: Kind,
    pub node: usize,
    pub other: usize,
    pub dur: u64,
}

pub struct Config {
    pub nodes: usize,
    pub timings: Timings,
    pub seed: u64,
    /// Background drops and error answers (1% each) until the last heal.
    pub noise: bool,
    /// Chance that each node sees a write as a watch event.
    pub watch_p: f64,
    /// Start node i at i * 300 ms (node 0 leads first) instead of randomly.
    pub staggered: bool,
    /// Clock-rate drift bound for this run (MAX_DRIFT_PPM but in the test
    /// that shows the oracle catches a broken margin).
    pub drift_ppm: i64,
}

#[derive(Default)]
struct Node {
    name: String,
    clock: Clock,
    wall_offset: i64,
    elector: Option<Elector>,
    stopped: bool,
    /// Process incarnation: messages to an older one are dropped.
    inc: u32,
    wake_gen: u64,
    wake_at: u64,
    spins: u32,
    vip: bool,
    vip_gen: u64,
    send_after: u64,
    eligible: bool,
    shutting_down: bool,
    restart_delay: u64,
    /// Down because of a Crash/Shutdown fault: the restart heals it.
    down_fault: bool,
}

impl Node {
    fn new(i: usize, rng: &mut Rng, drift: i64) -> Node {
        Node {
            name: format!("n{i}"),
            clock: Clock::random(rng, drift),
            wall_offset: i64::try_from(rng.range(0, 600 * SEC)).unwrap_or(0) - 300_000_000,
            wake_at: u64::MAX,
            eligible: true,
            ..Node::default()
        }
    }
}

/// A request or its answer on the wire.
struct Msg {
    n: usize,
    inc: u32,
    id: RequestId,
    deadline: Instant,
}

enum Ev {
    Wake { n: usize, gen: u64 },
    AtStore(Msg, Op, WallTime),
    AtNode(Msg, Result<Option<Versioned>, StoreError>),
    Watch { n: usize, inc: u32, v: Versioned },
    VipGone { n: usize, gen: u64 },
    FaultStart(usize),
    FaultEnd(usize),
    Restart(usize),
    GraceKill { n: usize, inc: u32 },
    Check,
    End,
}

/// Cut counters per node<->store link, so overlapping faults compose.
#[derive(Default, Clone)]
struct Link {
    cut_req: u32,
    cut_resp: u32,
    slow: u32,
    lossy: u32,
}

struct Network {
    links: Vec<Link>,
    outage: u32,
    /// Node pair cuts (`n * n`), for the peer messages still to come.
    pairs: Vec<u32>,
}

pub struct Sim {
    cfg: Config,
    rng: Rng,
    base: Instant,
    /// Simulated time and the events still to come.
    queue: EventQueue<Ev>,
    nodes: Vec<Node>,
    net: Network,
    store: MemStore,
    pub faults: Vec<Fault>,
    unstarted: usize,
    open: u32,
    pub oracle: Oracle,
}

impl Sim {
    pub fn new(cfg: Config, mut faults: Vec<Fault>) -> Sim {
        let mut rng = Rng::new(cfg.seed);
        let n = cfg.nodes;
        faults.sort_by_key(|f| f.at);
        let t = &cfg.timings;
        let target = us(t.lease_duration()) + 2 * us(t.retry_period());
        let oracle = Oracle::new(convergence_bound(t), target);
        let mut sim = Sim {
            nodes: (0..n)
                .map(|i| Node::new(i, &mut rng, cfg.drift_ppm))
                .collect(),
            rng,
            base: Instant::now(),
            queue: EventQueue::new(),
            net: Network {
                links: vec![Link::default(); n],
                outage: 0,
                pairs: vec![0; n * n],
            },
            store: MemStore::new(),
            unstarted: faults.len(),
            faults,
            open: 0,
            oracle,
            cfg,
        };
        for i in 0..n {
            let at = if sim.cfg.staggered {
                i as u64 * 300 * MS
            } else {
                sim.rng.range(0, 2 * SEC)
            };
            sim.push(at, Ev::Restart(i));
        }
        for i in 0..sim.faults.len() {
            sim.push(sim.faults[i].at, Ev::FaultStart(i));
        }
        sim
    }

    /// Global simulated microseconds (the time of the current event).
    pub fn now(&self) -> u64 {
        self.queue.now()
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.queue.push(t, ev);
    }

    fn note(&mut self, n: usize, what: Tr) {
        self.oracle.note(self.now(), n, what);
    }

    fn violation(&mut self, n: usize, msg: String) {
        self.oracle.violation(self.now(), n, msg);
    }

    fn local(&self, n: usize) -> Instant {
        self.base + self.nodes[n].clock.reading(self.now())
    }

    fn running(&self, n: usize) -> bool {
        self.nodes[n].elector.is_some() && !self.nodes[n].stopped
    }

    fn noisy(&self) -> bool {
        self.cfg.noise && self.oracle.healed_at.is_none()
    }

    fn delay(&mut self, n: usize) -> u64 {
        let slow = self.net.links[n].slow > 0;
        self.rng.range(0, if slow { SLOW_DELAY } else { MAX_DELAY })
    }

    /// Runs to the end of the schedule: last heal + bound + a tail of
    /// `lease + 2 * retry` during which the holder must not change.
    pub fn run(&mut self) {
        while let Some(Due { at, elapsed, event }) = self.queue.pop() {
            self.oracle.advance(at - elapsed, at);
            self.oracle.stats.events += 1;
            self.oracle.stats.sim_us = at;
            let end = matches!(event, Ev::End);
            self.dispatch(event);
            let holders =
                (0..self.nodes.len()).fold(0, |m, i| m | u64::from(self.nodes[i].vip) << i);
            self.oracle.check(at, holders);
            if self.oracle.healed_at.is_none() && self.all_healed() {
                self.oracle.healed(at);
                let b = self.oracle.bound;
                self.push(at + b, Ev::Check);
                self.push(at + b + self.oracle.target, Ev::End);
            }
            if end {
                return;
            }
            if at > 3_000 * SEC {
                return self.violation(0, "faults never healed (simulator bug)".into());
            }
        }
        self.violation(0, "event queue ran dry: every node is terminal".into());
    }

    fn all_healed(&self) -> bool {
        let net = &self.net;
        self.unstarted == 0
            && self.open == 0
            && net.outage == 0
            && net.pairs.iter().all(|&c| c == 0)
            && net
                .links
                .iter()
                .all(|l| l.cut_req + l.cut_resp + l.slow + l.lossy == 0)
            && (0..self.nodes.len()).all(|i| self.running(i) && self.nodes[i].eligible)
    }

    fn dispatch(&mut self, ev: Ev) {
        match ev {
            Ev::Wake { n, gen } if self.nodes[n].wake_gen == gen => {
                self.nodes[n].wake_at = u64::MAX;
                self.feed(n, Input::Tick);
            }
            Ev::AtStore(m, op, wall) => self.at_store(m, &op, wall),
            Ev::AtNode(m, result) if self.nodes[m.n].inc == m.inc && self.running(m.n) => {
                if self.local(m.n) >= m.deadline {
                    self.note(m.n, Tr::Late(m.id.0)); // the driver's timeout fired first (R6)
                } else {
                    self.note(m.n, Tr::Recv(m.id.0));
                    self.feed(m.n, Input::Response { id: m.id, result });
                }
            }
            Ev::Watch { n, inc, v } if self.nodes[n].inc == inc && self.running(n) => {
                self.note(n, Tr::Watch(version(&v)));
                self.feed(n, Input::Watched(WatchEvent::Changed(v)));
            }
            Ev::VipGone { n, gen } if self.nodes[n].vip_gen == gen => {
                self.nodes[n].vip = false;
                self.note(n, Tr::VipGone);
            }
            Ev::FaultStart(i) => self.fault_start(i),
            Ev::FaultEnd(i) => self.fault_end(i),
            Ev::Restart(n) => self.restart(n),
            Ev::GraceKill { n, inc } => {
                let node = &self.nodes[n];
                if node.inc == inc && node.shutting_down && !node.stopped {
                    self.crash(n);
                    self.push(self.now() + self.nodes[n].restart_delay, Ev::Restart(n));
                }
            }
            _ => {}
        }
    }

    /// Feeds one input to node `n`, executes its actions in order, re-arms
    /// its timer and checks invariant (3): never parked unless shut down.
    fn feed(&mut self, n: usize, input: Input) {
        let now = self.local(n);
        let Some(e) = self.nodes[n].elector.as_mut() else {
            return;
        };
        let actions = e.handle(now, input);
        let poll = e.poll_timeout();
        for a in actions {
            self.execute(n, a);
        }
        let Some(t) = poll else {
            if !self.nodes[n].shutting_down {
                self.violation(
                    n,
                    "terminal: poll_timeout() is None without Shutdown".into(),
                );
            }
            return;
        };
        let node = &mut self.nodes[n];
        node.spins = if t <= now { node.spins + 1 } else { 0 };
        if node.spins > 100 {
            return self.violation(n, format!("busy loop: poll_timeout() {t:?} <= now {now:?}"));
        }
        let g = node
            .clock
            .global_for_reading(t.duration_since(self.base))
            .max(self.queue.now() + 1);
        if node.wake_at != g {
            node.wake_gen += 1;
            node.wake_at = g;
            let gen = node.wake_gen;
            self.push(g, Ev::Wake { n, gen });
        }
    }

    fn execute(&mut self, n: usize, a: Action) {
        match a {
            Action::Request { id, op, deadline } => {
                self.note(n, Tr::Send(id.0, op_name(&op)));
                let t = self.now().max(self.nodes[n].send_after);
                if self.net.links[n].cut_req > 0 {
                    return self.note(n, Tr::Drop("request: link cut"));
                }
                if self.dropped(n) {
                    return self.note(n, Tr::Drop("request: lossy"));
                }
                let stamp = 1_790_000_000_000_000 + i64::try_from(t).unwrap_or(0);
                let wall = WallTime {
                    unix_micros: stamp + self.nodes[n].wall_offset,
                };
                let m = Msg {
                    n,
                    inc: self.nodes[n].inc,
                    id,
                    deadline,
                };
                let at = t + self.delay(n);
                self.push(at, Ev::AtStore(m, op, wall));
            }
            Action::Lead => {
                if self.nodes[n].shutting_down || !self.nodes[n].eligible {
                    self.violation(n, "Lead while shutting down or ineligible".into());
                }
                if let Some(o) = (0..self.nodes.len()).find(|&o| o != n && self.nodes[o].vip) {
                    self.violation(
                        n,
                        format!("TWO HOLDERS: n{n} leads while n{o} holds the VIP"),
                    );
                }
                self.nodes[n].vip = true;
                self.nodes[n].vip_gen += 1;
                self.oracle.stats.leads += 1;
                self.note(n, Tr::Lead);
            }
            Action::Fence(r) => {
                self.note(n, Tr::Fence(r));
                let gone = self.now() + self.rng.range(0, MAX_REMOVAL);
                let node = &mut self.nodes[n];
                node.vip_gen += 1;
                node.send_after = gone;
                let gen = node.vip_gen;
                self.push(gone, Ev::VipGone { n, gen });
            }
            Action::Stopped => {
                self.note(n, Tr::Stopped);
                if !self.nodes[n].shutting_down {
                    self.violation(n, "Stopped without Shutdown".into());
                }
                self.nodes[n].stopped = true;
                self.push(self.now() + self.nodes[n].restart_delay, Ev::Restart(n));
            }
        }
    }

    /// Random loss on a lossy link, or as background noise.
    fn dropped(&mut self, n: usize) -> bool {
        if self.net.links[n].lossy > 0 && self.rng.chance(0.3) {
            return true;
        }
        let noise = self.noisy() && self.rng.chance(0.01);
        self.oracle.stats.noise_drops += u64::from(noise);
        noise
    }

    fn at_store(&mut self, m: Msg, op: &Op, wall: WallTime) {
        let n = m.n;
        if self.net.outage > 0 {
            return self.note(n, Tr::Drop("request: store down"));
        }
        let lossy = self.net.links[n].lossy > 0;
        let err_p = if lossy {
            0.2
        } else if self.noisy() {
            0.01
        } else {
            0.0
        };
        let (result, landed) = if self.rng.chance(err_p) {
            // An error answer: the write may or may not have been applied.
            self.oracle.stats.noise_errors += 1;
            let landed = self.rng.chance(0.5) && self.apply(n, op, wall).is_ok();
            let timeout = self.rng.chance(0.5);
            let e = if timeout {
                StoreError::Timeout
            } else {
                StoreError::Unavailable("sim".into())
            };
            (Err(e), landed)
        } else {
            let r = self.apply(n, op, wall);
            let landed = r.is_ok() && *op != Op::Get;
            (r, landed)
        };
        if self.net.links[n].cut_resp > 0 || self.dropped(n) {
            self.oracle.stats.lost_applied_answers += u64::from(landed);
            return self.note(n, Tr::AnswerLost);
        }
        let at = self.now() + self.delay(n);
        self.push(at, Ev::AtNode(m, result));
    }

    fn apply(
        &mut self,
        n: usize,
        op: &Op,
        wall: WallTime,
    ) -> Result<Option<Versioned>, StoreError> {
        let r = self.store.apply(op, wall);
        let summary = match &r {
            Ok(v) => Ok(v.as_ref().map_or(0, version)),
            Err(StoreError::Conflict) => Err("conflict"),
            Err(StoreError::AlreadyExists) => Err("exists"),
            Err(_) => Err("error"),
        };
        self.note(n, Tr::Applied(op_name(op), summary));
        if let (Ok(Some(v)), false) = (&r, *op == Op::Get) {
            // A watch: each node may or may not see the write, in any order.
            for j in 0..self.nodes.len() {
                let up = self.running(j) && self.net.links[j].cut_resp == 0;
                if up && self.rng.chance(self.cfg.watch_p) {
                    let (inc, at) = (self.nodes[j].inc, self.now() + self.delay(j));
                    self.push(
                        at,
                        Ev::Watch {
                            n: j,
                            inc,
                            v: v.clone(),
                        },
                    );
                }
            }
        }
        r
    }

    fn crash(&mut self, n: usize) {
        self.note(n, Tr::Crash);
        let node = &mut self.nodes[n];
        node.elector = None;
        (node.vip, node.vip_gen, node.inc) = (false, node.vip_gen + 1, node.inc + 1);
        (node.wake_gen, node.wake_at, node.send_after) = (node.wake_gen + 1, u64::MAX, 0);
    }

    fn restart(&mut self, n: usize) {
        let (seed, now) = (self.rng.next(), self.local(n));
        let node = &mut self.nodes[n];
        node.elector = Some(Elector::new(node.name.clone(), self.cfg.timings, seed, now));
        (node.inc, node.stopped, node.shutting_down, node.wake_at) =
            (node.inc + 1, false, false, u64::MAX);
        if std::mem::take(&mut node.down_fault) {
            self.open -= 1;
        }
        self.note(n, Tr::Restart);
        let eligible = self.nodes[n].eligible;
        self.feed(
            n,
            if eligible {
                Input::Tick
            } else {
                Input::SetEligible(false)
            },
        );
    }

    fn fault_start(&mut self, i: usize) {
        self.unstarted -= 1;
        let c = self.nodes.len();
        if self.faults[i].node == HOLDER {
            let named = self
                .store
                .current()
                .and_then(|v| v.record.holder_identity.get(1..)?.parse().ok());
            let n = (0..c).find(|&j| self.nodes[j].vip).or(named).unwrap_or(0);
            let f = &mut self.faults[i];
            (f.node, f.other) = (n, (n + 1 + f.other % (c - 1)) % c);
        }
        let f = self.faults[i];
        let n = f.node;
        let usable = self.running(n) && !self.nodes[n].down_fault;
        match f.kind {
            _ if self.net_fault(f, 1) => {}
            Kind::CutRequests | Kind::CutResponses | Kind::CutBoth => {}
            Kind::Slow | Kind::Lossy | Kind::Outage | Kind::PeerCut => {}
            Kind::Crash | Kind::Shutdown if !usable => return,
            Kind::Unhealthy if !self.nodes[n].eligible => return,
            Kind::Crash => {
                self.crash(n);
                self.nodes[n].down_fault = true;
                self.push(self.now() + f.dur, Ev::Restart(n));
            }
            Kind::Shutdown => {
                let node = &mut self.nodes[n];
                (node.down_fault, node.shutting_down, node.restart_delay) = (true, true, f.dur);
                let inc = node.inc;
                self.push(self.now() + GRACE, Ev::GraceKill { n, inc });
                self.feed(n, Input::Shutdown);
            }
            Kind::Unhealthy => {
                self.nodes[n].eligible = false;
                self.feed(n, Input::SetEligible(false));
            }
            Kind::Reread => self.feed(n, Input::Reread),
        }
        self.oracle.stats.faults[KINDS.iter().position(|&k| k == f.kind).unwrap_or(0)] += 1;
        self.note(n, Tr::FaultStart(i));
        self.open += u32::from(f.kind != Kind::Reread);
        if !matches!(f.kind, Kind::Reread | Kind::Crash | Kind::Shutdown) {
            self.push(self.now() + f.dur, Ev::FaultEnd(i));
        }
    }

    fn fault_end(&mut self, i: usize) {
        let (n, kind) = (self.faults[i].node, self.faults[i].kind);
        self.open -= 1;
        self.note(n, Tr::FaultEnd(i));
        match kind {
            _ if self.net_fault(self.faults[i], -1) => {}
            Kind::Unhealthy => {
                self.nodes[n].eligible = true;
                self.feed(n, Input::SetEligible(true));
            }
            _ => {}
        }
    }

    /// Applies (`d = 1`) or heals (`d = -1`) a network fault; false for the
    /// other kinds.
    fn net_fault(&mut self, f: Fault, d: i32) -> bool {
        let add = |c: &mut u32| *c = c.saturating_add_signed(d);
        let (l, c) = (&mut self.net.links[f.node], self.nodes.len());
        match f.kind {
            Kind::CutRequests => add(&mut l.cut_req),
            Kind::CutResponses => add(&mut l.cut_resp),
            Kind::CutBoth => (add(&mut l.cut_req), add(&mut l.cut_resp)).1,
            Kind::Slow => add(&mut l.slow),
            Kind::Lossy => add(&mut l.lossy),
            Kind::Outage => add(&mut self.net.outage),
            Kind::PeerCut => {
                add(&mut self.net.pairs[f.node * c + f.other]);
                add(&mut self.net.pairs[f.other * c + f.node]);
            }
            _ => return false,
        }
        true
    }

    /// Seed, settings, faults, violations and the trace.
    pub fn report(&self) -> String {
        let c = &self.cfg;
        format!(
            "seed {} ({} nodes, {:?}, watch_p {}, noise {}); replay: {}\n{}",
            c.seed,
            c.nodes,
            c.timings,
            c.watch_p,
            c.noise,
            vipd_sim::replay_env(c.seed),
            self.oracle.report(&self.faults)
        )
    }
}

fn version(v: &Versioned) -> u64 {
    v.version.0.parse().unwrap_or(0)
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Get => "get",
        Op::Create { .. } => "create",
        Op::Update { record, .. } if record.holder_identity.is_empty() => "release",
        Op::Update { .. } => "update",
    }
}
