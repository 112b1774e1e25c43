//! A cluster of quorum cores over an in-memory network, with per-node
//! drifting clocks and the safety oracle, shared by the behaviour tests,
//! the model checker and the randomized simulation.
//!
//! Time: global (real) simulated microseconds; each node reads its own
//! `DriftClock` (vipd-sim). The shell is modelled as executing every
//! action at once: a Fence is followed by `AddressesRemoved` immediately.
//!
//! Oracle (SPEC R1, Q4): a node's right to announce runs from its
//! `Announce` to its `Fence`; a crashed holder's right runs on to its hold
//! deadline plus the jitter allowance, mapped to real time through its
//! clock (the addresses may stay until then). No node may announce while
//! another's right is unexpired.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;
use vipd_quorum::{Action, AuthKey, Config, Input, Node, Timings, Voter, VoterRole, VoterSet};
use vipd_sim::DriftClock;

pub const KEY: [u8; 32] = [0x42; 32];

/// A datagram in flight.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Packet {
    pub from: usize,
    pub to: usize,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub cfgs: Vec<Config>,
    pub clocks: Vec<DriftClock>,
    pub nodes: Vec<Option<Node>>,
    pub now: u64,
    pub net: Vec<Packet>,
    /// Side of the partition each node is on (messages across are lost).
    pub side: Vec<u8>,
    pub holding: Vec<bool>,
    /// Real time until which each node's last right lasted.
    pub right_end: Vec<u64>,
    pub announces: Vec<(u64, usize)>,
    pub violation: Option<String>,
    pub log: Vec<String>,
    pub keep_log: bool,
}

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

pub fn model_timings() -> Timings {
    let ms = Duration::from_millis;
    Timings::new(ms(60), ms(15), ms(1), ms(2), 50_000, ms(2)).unwrap()
}

impl Cluster {
    pub fn new(set: VoterSet, timings: Timings, ppm: &[i64], seed: u64) -> Cluster {
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
        let clocks: Vec<DriftClock> = (0..n)
            .map(|i| DriftClock {
                offset_ns: 1_000_000_000 * (i as u64 + 1),
                ppm: ppm.get(i).copied().unwrap_or(0),
            })
            .collect();
        let mut c = Cluster {
            nodes: vec![None; n],
            cfgs,
            clocks,
            now: 0,
            net: Vec::new(),
            side: vec![0; n],
            holding: vec![false; n],
            right_end: vec![0; n],
            announces: Vec::new(),
            violation: None,
            log: Vec::new(),
            keep_log: false,
        };
        for i in 0..n {
            c.start(i);
        }
        c
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    pub fn local(&self, i: usize) -> Duration {
        self.clocks[i].reading(self.now)
    }

    fn start(&mut self, i: usize) {
        let mut cfg = self.cfgs[i].clone();
        // The shell's wall-clock start: grows across restarts.
        cfg.first_seq = (self.now + 1) * 1_000_000;
        let node = Node::new(cfg, self.local(i));
        self.nodes[i] = Some(node);
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().unwrap()
    }

    pub fn index_of(&self, addr: std::net::SocketAddr) -> usize {
        self.cfgs[0]
            .voters
            .voters()
            .iter()
            .position(|v| v.addr == addr)
            .unwrap()
    }

    /// Feeds `input` to node `i` at the current time and runs its actions.
    pub fn input(&mut self, i: usize, input: Input) -> Vec<Action> {
        let now = self.local(i);
        let Some(node) = self.nodes[i].as_mut() else {
            return Vec::new();
        };
        let acts = node.handle(now, input);
        for a in &acts {
            match a {
                Action::Send { to, bytes } => {
                    let to = self.index_of(*to);
                    if self.side[to] == self.side[i] {
                        self.net.push(Packet {
                            from: i,
                            to,
                            bytes: bytes.clone(),
                        });
                    }
                }
                Action::Announce { .. } => {
                    for j in 0..self.n() {
                        if j != i && (self.holding[j] || self.right_end[j] > self.now) {
                            self.violation = Some(format!(
                                "t={}us: n{i} announces while n{j} holds (right until {}us)",
                                self.now,
                                if self.holding[j] {
                                    self.now
                                } else {
                                    self.right_end[j]
                                }
                            ));
                        }
                    }
                    self.holding[i] = true;
                    self.announces.push((self.now, i));
                }
                Action::Fence(_) => {
                    self.holding[i] = false;
                    self.right_end[i] = self.now;
                }
                Action::Stopped => {}
            }
        }
        if self.keep_log {
            self.log.push(format!(
                "t={} n{i}: {:?}",
                self.now,
                acts.iter().map(short).collect::<Vec<_>>()
            ));
        }
        if acts.iter().any(|a| matches!(a, Action::Fence(_))) {
            self.input(i, Input::AddressesRemoved);
        }
        acts
    }

    /// Delivers packet `k` of the network.
    pub fn deliver(&mut self, k: usize) {
        let p = self.net.remove(k);
        if self.side[p.to] == self.side[p.from] {
            self.input(p.to, Input::Datagram(p.bytes));
        }
    }

    pub fn deliver_all(&mut self) {
        while !self.net.is_empty() {
            self.deliver(0);
        }
    }

    /// The real time of node `i`'s next wake-up.
    pub fn wake(&self, i: usize) -> Option<u64> {
        let t = self.nodes[i].as_ref()?.poll_timeout()?;
        Some(self.clocks[i].global_for_reading(t).max(self.now))
    }

    pub fn next_wake(&self) -> Option<u64> {
        (0..self.n()).filter_map(|i| self.wake(i)).min()
    }

    /// Moves time to `t` (no later than any pending wake-up: the shell
    /// wakes on time), then ticks every node that is due.
    pub fn advance_to(&mut self, t: u64) {
        self.now = self.now.max(t);
        for i in 0..self.n() {
            if self.wake(i).is_some_and(|w| w <= self.now) {
                self.input(i, Input::Tick);
            }
        }
    }

    /// Advances to the next wake-up (or by `max` if none is sooner).
    pub fn step_time(&mut self, max: u64) {
        let t = self.next_wake().unwrap_or(u64::MAX).min(self.now + max);
        self.advance_to(t);
    }

    /// Runs with every packet delivered at once until `until`.
    pub fn run_until(&mut self, until: u64) {
        while self.now < until {
            self.deliver_all();
            let t = self.next_wake().unwrap_or(until).min(until);
            self.advance_to(t.max(self.now + 1).min(until));
            self.deliver_all();
        }
    }

    /// Crash: memory lost. The addresses may stay until the hold deadline
    /// plus jitter, so the holder's right runs on until then.
    pub fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            if self.holding[i] {
                let st = node.status(self.local(i));
                let j = self.cfgs[i].timings.jitter();
                if let Some(d) = st.hold_deadline {
                    self.right_end[i] = self.clocks[i].global_for_reading(d + j);
                }
                self.holding[i] = false;
            }
        }
        self.net.retain(|p| p.from != i);
    }

    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].is_none() {
            self.start(i);
        }
    }

    pub fn holders(&self) -> Vec<usize> {
        (0..self.n()).filter(|&i| self.holding[i]).collect()
    }
}

fn short(a: &Action) -> String {
    match a {
        Action::Send { to, bytes } => {
            let m = vipd_quorum::Message::decode(bytes, &AuthKey::new(&KEY).unwrap());
            match m {
                Ok(m) => format!("->{}:{:?}@{}", to.ip(), m.body, m.term),
                Err(e) => format!("->{to}:{e}"),
            }
        }
        other => format!("{other:?}"),
    }
}
