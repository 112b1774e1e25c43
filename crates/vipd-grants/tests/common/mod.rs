//! A cluster of quorum cores with their grant cores over an in-memory
//! network, with drifting clocks and the per-address safety oracle, shared
//! by the behaviour tests and the randomized simulation.
//!
//! Time: global (real) simulated microseconds; each node reads its own
//! `DriftClock`. The shell: a grant `Announce` adds addresses at once and
//! removes the others only `jitter` later on the node's clock (the slowest
//! removal the timings allow), except on a quorum `Fence`: then it removes
//! what it bound as holder, and finishes every removal under way, before
//! it answers `AddressesRemoved` (the shell contract of
//! `vipd_grants::Grants`: the Release that follows may let a successor in
//! at once). A crashed node's addresses stay
//! bound until its right would have ended (its grant window, or its hold
//! deadline while holder) plus `jitter`: the worst a dead process can
//! leave behind when something removes leftovers at the deadline; a node
//! that restarts removes them first (the daemon's startup sweep, R3).
//!
//! Oracle (R1 per address): whenever a node starts binding an address, no
//! other node may have it bound, lingering removals included.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use vipd_grants::{wire, Action as GAction, GrantTimings, Grants, Input as GInput, ServiceView};
use vipd_quorum::{
    Action as QAction, AuthKey, Config, Input as QInput, Node, Timings, Voter, VoterRole, VoterSet,
};
use vipd_sim::{DriftClock, EventQueue, Rng, MS};

pub const KEY: [u8; 32] = [0x42; 32];

pub fn voters(n: usize, witness: bool) -> VoterSet {
    let v = (0..n)
        .map(|i| Voter {
            name: format!("n{i}"),
            addr: format!("192.0.2.{}:7946", i + 1).parse().unwrap(),
            role: if witness && i == n - 1 {
                VoterRole::Witness
            } else {
                VoterRole::Node
            },
        })
        .collect();
    VoterSet::new(v).unwrap()
}

pub fn addresses(k: u32) -> BTreeSet<IpAddr> {
    (0..k)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i)))
        .collect()
}

#[derive(Clone, Debug)]
pub enum Ev {
    Deliver { to: usize, bytes: Vec<u8> },
    Wake { node: usize, at: u64 },
}

#[derive(Clone)]
pub struct Cluster {
    pub cfgs: Vec<Config>,
    pub gt: GrantTimings,
    pub clocks: Vec<DriftClock>,
    pub q: Vec<Option<Node>>,
    pub g: Vec<Option<Grants>>,
    pub q_ev: EventQueue<Ev>,
    pub rng: Rng,
    pub loss: f64,
    pub max_delay: u64,
    pub side: Vec<u8>,
    /// Per node: address → global time until which it is bound
    /// (u64::MAX: bound now).
    pub bound: Vec<BTreeMap<IpAddr, u64>>,
    pub view: Arc<ServiceView>,
    pub violation: Option<String>,
    pub log: Vec<String>,
    pub keep_log: bool,
    pub moves: u64,
    /// The one wake-up scheduled per node (global time; 0: none).
    pub wake_at: Vec<u64>,
    sync_removal: bool,
    /// Model-checker mode: datagrams wait here until the explorer
    /// delivers (any order), drops or duplicates them; no random loss.
    pub bag: Option<Vec<(usize, Vec<u8>)>>,
    /// Per node: grant datagrams and bytes sent, quorum datagrams and
    /// bytes sent (cost).
    pub sent: Vec<[u64; 4]>,
}

impl Cluster {
    pub fn new(
        set: VoterSet,
        timings: Timings,
        grant: Duration,
        ppm: &[i64],
        seed: u64,
    ) -> Cluster {
        let n = set.voters().len();
        let key = AuthKey::new(&KEY).unwrap();
        let cfgs: Vec<Config> = (0..n)
            .map(|i| {
                Config::new(
                    set.clone(),
                    &format!("n{i}"),
                    timings,
                    key.clone(),
                    seed.wrapping_mul(31).wrapping_add(i as u64),
                    1,
                )
                .unwrap()
            })
            .collect();
        let clocks = (0..n)
            .map(|i| DriftClock {
                offset_ns: 1_000_000_000 * (i as u64 + 1),
                ppm: ppm.get(i).copied().unwrap_or(0),
            })
            .collect();
        let mut c = Cluster {
            gt: GrantTimings::new(grant, &timings).unwrap(),
            cfgs,
            clocks,
            q: (0..n).map(|_| None).collect(),
            g: (0..n).map(|_| None).collect(),
            q_ev: EventQueue::new(),
            rng: Rng::new(seed ^ 0xfeed),
            loss: 0.0,
            max_delay: 2 * MS,
            side: vec![0; n],
            bound: vec![BTreeMap::new(); n],
            view: Arc::new(ServiceView::default()),
            violation: None,
            log: Vec::new(),
            keep_log: false,
            moves: 0,
            wake_at: vec![0; n],
            sync_removal: false,
            bag: None,
            sent: vec![[0; 4]; n],
        };
        for i in 0..n {
            c.start(i);
        }
        c
    }

    pub fn n(&self) -> usize {
        self.q.len()
    }

    pub fn now(&self) -> u64 {
        self.q_ev.now()
    }

    pub fn local(&self, i: usize) -> Duration {
        self.clocks[i].reading(self.now())
    }

    pub fn is_witness(&self, i: usize) -> bool {
        self.cfgs[i].is_witness()
    }

    /// (Re)starts node `i`. Like the daemon, it first removes whatever an
    /// earlier process of it left bound (R3's startup sweep of tagged
    /// addresses), then starts with nothing bound.
    pub fn start(&mut self, i: usize) {
        self.start_with(i, true);
    }

    /// (Re)starts node `i` like [`Cluster::start`], without a Services
    /// view when `view` is false (a process started while the API is
    /// down); a later [`Cluster::set_view`] reaches it.
    pub fn start_with(&mut self, i: usize, view: bool) {
        self.bound[i].clear();
        let mut cfg = self.cfgs[i].clone();
        cfg.first_seq = (self.now() + 1) * 1_000_000;
        let now = self.local(i);
        self.q[i] = Some(Node::new(cfg.clone(), now));
        if !self.is_witness(i) {
            let mut g = Grants::new(cfg, self.gt, (self.now() + 1) * 1_000_000 + 500_000);
            let acts = if view {
                g.handle(now, GInput::Services(Arc::clone(&self.view)))
            } else {
                Vec::new()
            };
            self.g[i] = Some(g);
            self.g_actions(i, acts);
        }
        self.schedule(i);
    }

    /// Kills node `i`: its addresses stay bound until its right would
    /// have ended, plus jitter.
    pub fn crash(&mut self, i: usize) {
        let now_l = self.local(i);
        let jitter = self.cfgs[i].timings.jitter();
        if let Some(g) = &self.g[i] {
            let st = g.status(now_l);
            let end_local = if st.assigner {
                self.q[i]
                    .as_ref()
                    .and_then(|q| q.leadership(now_l).holding)
                    .unwrap_or(now_l)
            } else {
                now_l + st.right_remaining.unwrap_or_default()
            };
            let end = self.clocks[i].global_for_reading(end_local + jitter);
            for v in self.bound[i].values_mut() {
                if *v == u64::MAX {
                    *v = end;
                }
            }
        }
        self.q[i] = None;
        self.g[i] = None;
        self.wake_at[i] = 0;
    }

    pub fn alive(&self, i: usize) -> bool {
        self.q[i].is_some()
    }

    pub fn set_view(&mut self, view: ServiceView) {
        self.view = Arc::new(view);
        for i in 0..self.n() {
            self.g_input(i, GInput::Services(Arc::clone(&self.view)));
        }
    }

    pub fn q_input(&mut self, i: usize, input: QInput) {
        let now = self.local(i);
        let Some(q) = self.q[i].as_mut() else {
            return;
        };
        let acts = q.handle(now, input);
        let lead = q.leadership(now);
        let mut fenced = false;
        for a in acts {
            match a {
                QAction::Send { to, bytes } => self.send(i, to, bytes),
                QAction::Fence(r) => {
                    fenced = true;
                    if self.keep_log {
                        self.log.push(format!("t={} n{i} FENCE {r:?}", self.now()));
                    }
                }
                QAction::Announce { .. } | QAction::Stopped => {}
            }
        }
        if self.keep_log && self.g[i].is_some() {
            self.log
                .push(format!("t={} n{i} lead {lead:?}", self.now()));
        }
        // The shell's contract (as the daemon's): on a quorum Fence it
        // removes what the grant core bound as holder *before* answering
        // `AddressesRemoved` (after which voters may back a successor).
        self.sync_removal = fenced;
        self.g_input(i, GInput::Leadership(lead));
        self.sync_removal = false;
        if fenced {
            // ... and only once every address it was still removing is
            // gone (the Release that follows lets a successor in at once).
            let now = self.now();
            for u in self.bound[i].values_mut() {
                if *u != u64::MAX {
                    *u = (*u).min(now);
                }
            }
            self.bound[i].retain(|_, u| *u > now);
            self.q_input(i, QInput::AddressesRemoved);
        }
        self.schedule(i);
    }

    pub fn g_input(&mut self, i: usize, input: GInput) {
        let now = self.local(i);
        let Some(g) = self.g[i].as_mut() else {
            return;
        };
        let acts = g.handle(now, input);
        self.g_actions(i, acts);
        self.schedule(i);
    }

    fn g_actions(&mut self, i: usize, acts: Vec<GAction>) {
        for a in acts {
            match a {
                GAction::Send { to, bytes } => self.send(i, to, bytes),
                GAction::Announce(set) => self.announce(i, &set),
                GAction::Stopped => {}
            }
        }
    }

    fn announce(&mut self, i: usize, set: &BTreeSet<IpAddr>) {
        let now = self.now();
        let jitter = self.cfgs[i].timings.jitter();
        let linger = if self.sync_removal {
            now
        } else {
            self.clocks[i].global_for_reading(self.local(i) + jitter)
        };
        if self.keep_log {
            let short = |a: &IpAddr| a.to_string().rsplit('.').next().unwrap_or("").to_string();
            let added: Vec<String> = set
                .iter()
                .filter(|a| self.bound[i].get(a).is_none_or(|&u| u != u64::MAX))
                .map(short)
                .collect();
            let removed: Vec<String> = self.bound[i]
                .iter()
                .filter(|(a, u)| **u == u64::MAX && !set.contains(a))
                .map(|(a, _)| short(a))
                .collect();
            let st = self.g[i].as_ref().map(|g| g.status(self.local(i)));
            self.log.push(format!(
                "t={now} n{i} +{added:?} -{removed:?} (assigner {:?}, right {:?})",
                st.as_ref().map(|s| s.assigner),
                st.and_then(|s| s.right_remaining)
            ));
        }
        for a in set {
            let already = self.bound[i].get(a).is_some_and(|&u| u > now);
            if !already {
                for j in 0..self.n() {
                    if j != i {
                        if let Some(&u) = self.bound[j].get(a) {
                            if u > now && self.violation.is_none() {
                                self.violation =
                                    Some(format!(
                                    "t={now}us: n{i} binds {a} while n{j} has it bound (until {})",
                                    if u == u64::MAX { "now".to_string() } else { format!("{u}us") }
                                ));
                            }
                        }
                    }
                }
                self.moves += 1;
            }
            self.bound[i].insert(*a, u64::MAX);
        }
        for (a, u) in self.bound[i].iter_mut() {
            if *u == u64::MAX && !set.contains(a) {
                *u = linger;
            }
        }
        self.bound[i].retain(|_, u| *u > now);
    }

    fn index_of(&self, addr: std::net::SocketAddr) -> usize {
        self.cfgs[0]
            .voters
            .voters()
            .iter()
            .position(|v| v.addr == addr)
            .unwrap()
    }

    fn send(&mut self, from: usize, to: std::net::SocketAddr, bytes: Vec<u8>) {
        let k = if wire::is_grant_datagram(&bytes) {
            0
        } else {
            2
        };
        self.sent[from][k] += 1;
        self.sent[from][k + 1] += bytes.len() as u64;
        let to = self.index_of(to);
        if self.side[to] != self.side[from] {
            return;
        }
        if let Some(bag) = &mut self.bag {
            bag.push((to, bytes));
            return;
        }
        if self.rng.chance(self.loss) {
            return;
        }
        let at = self.now() + self.rng.range(50, self.max_delay.max(51));
        self.q_ev.push(at, Ev::Deliver { to, bytes });
    }

    fn schedule(&mut self, i: usize) {
        let now = self.local(i);
        let qt = self.q[i].as_ref().and_then(Node::poll_timeout);
        let gt = self.g[i].as_ref().and_then(|g| g.poll_timeout(now));
        if let Some(t) = [qt, gt].into_iter().flatten().min() {
            let at = self.clocks[i].global_for_reading(t).max(self.now() + 1);
            if self.wake_at[i] == 0 || at < self.wake_at[i] {
                self.wake_at[i] = at;
                self.q_ev.push(at, Ev::Wake { node: i, at });
            }
        }
    }

    /// Runs events until global time `until`.
    pub fn run_until(&mut self, until: u64) {
        while self.violation.is_none() {
            let Some(due) = self.peek_before(until) else {
                break;
            };
            match due {
                Ev::Deliver { to, bytes } => {
                    if !self.alive(to) {
                        continue;
                    }
                    if wire::is_grant_datagram(&bytes) {
                        self.g_input(to, GInput::Datagram(bytes));
                    } else {
                        self.q_input(to, QInput::Datagram(bytes));
                    }
                }
                Ev::Wake { node, at } => {
                    if self.wake_at[node] != at {
                        continue;
                    }
                    self.wake_at[node] = 0;
                    if self.alive(node) {
                        self.q_input(node, QInput::Tick);
                        self.g_input(node, GInput::Tick);
                    }
                }
            }
        }
    }

    fn peek_before(&mut self, until: u64) -> Option<Ev> {
        // EventQueue has no peek: pop, and push back what is too late.
        let due = self.q_ev.pop()?;
        if due.at > until {
            self.q_ev.push(due.at, due.event);
            return None;
        }
        Some(due.event)
    }

    /// Delivers datagram `k` of the bag.
    pub fn deliver(&mut self, k: usize) {
        let Some(bag) = &mut self.bag else {
            return;
        };
        let (to, bytes) = bag.remove(k);
        if !self.alive(to) {
            return;
        }
        if wire::is_grant_datagram(&bytes) {
            self.g_input(to, GInput::Datagram(bytes));
        } else {
            self.q_input(to, QInput::Datagram(bytes));
        }
    }

    /// The next scheduled wake-up of any node (global time).
    pub fn next_wake(&self) -> Option<u64> {
        self.wake_at.iter().copied().filter(|&w| w > 0).min()
    }

    /// A fair run for `span`: deliver everything in order, wake on time.
    pub fn settle(&mut self, span: u64) {
        let end = self.now() + span;
        while self.now() < end && self.violation.is_none() {
            while self.bag.as_ref().is_some_and(|b| !b.is_empty()) {
                self.deliver(0);
            }
            let next = self.next_wake().unwrap_or(end).min(end);
            self.run_until(next);
            if next >= end {
                break;
            }
        }
    }

    /// Nodes that bind `a` now.
    pub fn owners_of(&self, a: &IpAddr) -> Vec<usize> {
        (0..self.n())
            .filter(|&i| self.bound[i].get(a).is_some_and(|&u| u == u64::MAX) && self.alive(i))
            .collect()
    }

    /// Addresses of the view that nobody binds.
    pub fn dark(&self) -> Vec<IpAddr> {
        self.view
            .addresses
            .iter()
            .filter(|a| self.owners_of(a).is_empty())
            .copied()
            .collect()
    }
}
