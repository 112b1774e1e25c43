//! The per-node ownership state machine (sans-IO): which addresses this node
//! announces, what it publishes in its node lease, and — while it is the
//! elected assigner — the assignment and tombstone writes.

use crate::assign::{desired, View};
use crate::model::{Assignment, NodeId, NodeState, Policy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use tokio::time::Instant;
use vipd_election::{Timings, Version};

/// How the driver's renewal of this node's own lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The write was applied at the version the driver read.
    Ok,
    /// The store answered 409: someone else wrote the record (an assigner's
    /// tombstone, or our own write whose answer was lost). The driver reads
    /// the record, reports it as [`Input::OwnRecord`] and only then writes
    /// again at the version it read.
    Conflict,
    /// Error or timeout: the outcome is unknown.
    Failed,
}

/// Something that happened, fed to [`Node::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed (the driver woke at [`Node::poll_timeout`]).
    Tick,
    /// The outcome of a renewal of our own node lease sent at `sent_at`
    /// (our monotonic clock) carrying the last [`Action::PublishHeld`].
    OwnRenewal {
        /// When the request was sent.
        sent_at: Instant,
        /// How it ended.
        outcome: Renewal,
    },
    /// Our own record as read at startup or after a conflict: its
    /// `generation` becomes a floor (a tombstone's or a previous
    /// incarnation's promise must keep holding).
    OwnRecord(NodeState),
    /// A node lease as observed now (list or watch); `state: None` when the
    /// record is gone. Our own record may come through here too.
    NodeRecord {
        /// Whose lease.
        node: NodeId,
        /// Its content.
        state: Option<NodeState>,
        /// Its store version (opaque; compared for equality only).
        version: Version,
    },
    /// The assignment record as observed now (or as we just wrote it).
    Assignment {
        /// Its content.
        assignment: Assignment,
        /// Its store version.
        version: Version,
    },
    /// A full list of node leases, as observed now (the assigner acts only
    /// after one, so it never mistakes an unseen node for a dead one).
    Listed(Vec<Listed>),
    /// The addresses that exist (one per LoadBalancer IP; Services sharing
    /// an IP share the entry).
    Addresses(BTreeSet<IpAddr>),
    /// Eligibility of one address (absent: every live node).
    Eligibility {
        /// The address.
        address: IpAddr,
        /// Its policy.
        policy: Policy,
    },
    /// Eligibility of every restricted address at once (replaces all
    /// earlier [`Input::Eligibility`]; an address absent from the map may
    /// be owned by every live node).
    Policies(BTreeMap<IpAddr, Policy>),
    /// Whether this node may announce (health gate, SPEC R8). While not, it
    /// announces nothing and publishes its record with `expired` set, so
    /// the assigner moves its addresses at once; back to eligible, it
    /// announces again only after a renewal *sent* from then on succeeds
    /// (a tombstone written meanwhile makes that renewal conflict, exactly
    /// as after a cut).
    Eligible(bool),
    /// Whether this node is the elected assigner (the Elector on the
    /// assigner lease says so).
    IsAssigner(bool),
}

/// One node lease of a full list ([`Input::Listed`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Whose lease.
    pub node: NodeId,
    /// Its content.
    pub state: NodeState,
    /// Its store version.
    pub version: Version,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Announce exactly these addresses (bind + GARP/NA new ones, remove the
    /// others). Removals must have taken effect before the driver sends the
    /// next renewal: the published `held` relies on it.
    Announce(BTreeSet<IpAddr>),
    /// Content for the next renewal of our node lease (no extra write: it
    /// rides on the periodic renewal).
    PublishHeld(NodeState),
    /// Assigner only: write the assignment if the record is still at
    /// `expected_version` (`None`: create it). Report the written record as
    /// [`Input::Assignment`].
    WriteAssignment {
        /// New content.
        assignment: Assignment,
        /// CAS guard.
        expected_version: Option<Version>,
    },
    /// Assigner only: mark `node`'s lease expired, if it is still at
    /// `expected_version` (client-go's takeover rule: unchanged for the
    /// lease duration on our clock). Writes `NodeState { generation,
    /// held: {}, expired: true }`.
    Tombstone {
        /// The dead node.
        node: NodeId,
        /// CAS guard: the version observed unchanged.
        expected_version: Version,
        /// The floor the node must adopt when it returns.
        generation: u64,
    },
}

#[derive(Clone, Debug)]
struct Seen {
    state: Option<NodeState>,
    version: Version,
    observed_at: Instant,
}

/// The ownership core of one node. See the crate docs for the design and
/// its proof sketch.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    timings: Timings,
    preempt: bool,
    /// Last successful renewal's send time + renew deadline (R1 fence).
    fence_at: Option<Instant>,
    /// Never announce under an assignment older than this.
    floor: u64,
    assignment: Option<(Assignment, Version)>,
    records: BTreeMap<NodeId, Seen>,
    /// The content of `records`, for the pure assignment function.
    states: BTreeMap<NodeId, NodeState>,
    addresses: BTreeSet<IpAddr>,
    policies: BTreeMap<IpAddr, Policy>,
    /// Announced addresses and the `since` of the entry they started under.
    announced: BTreeMap<IpAddr, u64>,
    published: Option<NodeState>,
    assigner: bool,
    synced: bool,
    /// The address set has been reported at least once: an assigner must
    /// not mistake "not read yet" for "no addresses" and drop every entry.
    addresses_known: bool,
    /// Whether our own lease was valid at the previous step.
    was_valid: bool,
    /// Health gate (R8).
    eligible: bool,
    /// When the current assigner term started.
    term_started: Option<Instant>,
    /// Renewals sent before this instant do not extend the fence (set when
    /// eligibility returns).
    renewals_from: Option<Instant>,
    /// Writes recently emitted, by guard, not repeated before the instant.
    sent: BTreeMap<String, Instant>,
}

impl Node {
    /// A node that announces nothing until its first successful renewal.
    pub fn new(id: impl Into<NodeId>, timings: Timings, preempt: bool) -> Self {
        Node {
            id: id.into(),
            timings,
            preempt,
            fence_at: None,
            floor: 0,
            assignment: None,
            records: BTreeMap::new(),
            states: BTreeMap::new(),
            addresses: BTreeSet::new(),
            policies: BTreeMap::new(),
            announced: BTreeMap::new(),
            published: None,
            assigner: false,
            synced: false,
            addresses_known: false,
            was_valid: false,
            eligible: true,
            renewals_from: None,
            term_started: None,
            sent: BTreeMap::new(),
        }
    }

    /// Our identity.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Addresses announced now.
    pub fn announced(&self) -> BTreeSet<IpAddr> {
        self.announced.keys().copied().collect()
    }

    /// Whether this node currently acts as the assigner.
    pub fn is_assigner(&self) -> bool {
        self.assigner
    }

    /// The assignment applied, if any.
    pub fn assignment(&self) -> Option<&Assignment> {
        self.assignment.as_ref().map(|(a, _)| a)
    }

    /// The assignment generation applied (0 before any).
    pub fn generation(&self) -> u64 {
        self.assignment.as_ref().map_or(0, |(a, _)| a.generation)
    }

    /// True while our own lease protects announcements (R1).
    pub fn lease_valid(&self, now: Instant) -> bool {
        self.fence_at.is_some_and(|f| now < f)
    }

    /// When the driver must call [`Node::handle`] with [`Input::Tick`] at
    /// the latest: our fence, and as assigner the next lease expiry or
    /// write retry.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        let mut t = self.fence_at.filter(|f| *f > now);
        let mut at = |x: Instant| {
            if x > now {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if self.assigner {
            for s in self.records.values() {
                if s.state.as_ref().is_some_and(|st| !st.expired) {
                    at(s.observed_at + self.timings.lease_duration());
                }
            }
            self.sent.values().for_each(|x| at(*x));
            if let Some(settled) = self.bootstrap_until() {
                at(settled);
            }
        }
        t
    }

    /// With no assignment record known (a fresh cluster), the assigner
    /// waits this long into its term before the first distribution: nodes
    /// started together all renew within a retry period, and a first
    /// assignment made before their leases are seen would stay lopsided
    /// (sticky ownership never takes addresses back without `preempt`).
    fn bootstrap_until(&self) -> Option<Instant> {
        match (&self.assignment, self.term_started) {
            (None, Some(t)) => Some(t + self.timings.retry_period() * 2),
            _ => None,
        }
    }

    /// Feeds one input; returns the actions to execute in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        match input {
            Input::Tick => {}
            Input::OwnRenewal { sent_at, outcome } => {
                let fence = sent_at + self.timings.renew_deadline();
                // A renewal protects us only until its send time + renew
                // deadline (R1); an answer arriving later buys nothing.
                let current = self.renewals_from.is_none_or(|from| sent_at >= from);
                if outcome == Renewal::Ok && fence > now && current {
                    self.fence_at = Some(self.fence_at.map_or(fence, |f| f.max(fence)));
                }
            }
            Input::OwnRecord(state) => self.floor = self.floor.max(state.generation),
            Input::NodeRecord {
                node,
                state,
                version,
            } => self.observe(now, node, state, version),
            Input::Listed(list) => {
                for l in list {
                    self.observe(now, l.node, Some(l.state), l.version);
                }
                self.synced = true;
            }
            Input::Assignment {
                assignment,
                version,
            } => {
                // Generations only move forward: an older record (a late
                // answer) must not resurrect an ownership.
                if assignment.generation >= self.generation() || self.assignment.is_none() {
                    self.assignment = Some((assignment, version));
                }
            }
            Input::Addresses(a) => {
                self.addresses = a;
                self.addresses_known = true;
            }
            Input::Eligibility { address, policy } => {
                self.policies.insert(address, policy);
            }
            Input::Policies(p) => self.policies = p,
            Input::Eligible(e) => {
                if e && !self.eligible {
                    // Re-prove through a fresh renewal: one sent while we
                    // were draining may have been followed by a tombstone.
                    self.fence_at = None;
                    self.renewals_from = Some(now);
                }
                self.eligible = e;
            }
            Input::IsAssigner(a) => {
                if a != self.assigner {
                    self.assigner = a;
                    // A new term starts from a fresh full list.
                    self.synced = false;
                    self.sent.clear();
                    self.term_started = a.then_some(now);
                }
            }
        }
        let valid = self.lease_valid(now);
        if valid && !self.was_valid {
            // We could not prove anything while our own lease was out (cut
            // from the API, or just started): records we saw unchanged
            // then may have changed unseen. Like client-go's observedTime,
            // liveness is measured from when *we* could observe, so every
            // node gets a fresh lease duration before it can be declared
            // dead. Without this, an assigner back from an API outage
            // would tombstone every node whose renewals it has not yet
            // seen and reshuffle every address.
            for seen in self.records.values_mut() {
                seen.observed_at = now;
            }
        }
        self.was_valid = valid;
        let mut out = Vec::new();
        self.reconcile(now, &mut out);
        if self.assigner && self.synced && self.addresses_known && self.lease_valid(now) {
            self.assign(now, &mut out);
        }
        out
    }

    fn observe(&mut self, now: Instant, node: NodeId, state: Option<NodeState>, version: Version) {
        // client-go's observedTime: it moves only when the record changes,
        // so "unchanged for lease_duration" is measured on our own clock.
        let changed = self.records.get(&node).is_none_or(|s| s.version != version);
        if changed {
            match &state {
                Some(st) => self.states.insert(node.clone(), st.clone()),
                None => self.states.remove(&node),
            };
            self.records.insert(
                node,
                Seen {
                    state,
                    version,
                    observed_at: now,
                },
            );
        }
    }

    /// Recomputes what to announce and to publish.
    fn reconcile(&mut self, now: Instant, out: &mut Vec<Action>) {
        let mut want = BTreeMap::new();
        if let (true, true, Some((a, _))) = (self.eligible, self.lease_valid(now), &self.assignment)
        {
            if a.generation >= self.floor {
                for (addr, e) in &a.entries {
                    if e.owner.as_ref() != Some(&self.id) {
                        continue;
                    }
                    // Same run (same `since`): proven when it started.
                    let keep = self.announced.get(addr) == Some(&e.since);
                    if keep || self.prior_stopped(addr, e.since, &e.prior) {
                        want.insert(*addr, e.since);
                    }
                }
            }
        }
        if want.keys().ne(self.announced.keys()) {
            out.push(Action::Announce(want.keys().copied().collect()));
        }
        self.announced = want;
        let generation = self.generation().max(self.floor);
        let expired = !self.eligible;
        let same = self.published.as_ref().is_some_and(|p| {
            p.generation == generation
                && p.expired == expired
                && p.held.iter().eq(self.announced.keys())
        });
        if !same {
            let state = NodeState {
                generation,
                held: self.announced.keys().copied().collect(),
                // A draining node publishes itself as gone (not live); it is
                // still renewing, so its later records prove what it holds.
                expired,
            };
            self.published = Some(state.clone());
            out.push(Action::PublishHeld(state));
        }
    }

    /// R1 per address: every earlier owner has published (or been given a
    /// tombstone with) a generation at or past `since` without the address.
    fn prior_stopped(&self, addr: &IpAddr, since: u64, prior: &BTreeSet<NodeId>) -> bool {
        prior.iter().filter(|p| **p != self.id).all(|p| {
            self.records
                .get(p)
                .and_then(|s| s.state.as_ref())
                .is_some_and(|st| st.stopped(addr, since))
        })
    }

    fn live(&self, now: Instant) -> BTreeSet<NodeId> {
        self.records
            .iter()
            .filter(|(_, s)| {
                s.state.as_ref().is_some_and(|st| !st.expired)
                    && now < s.observed_at + self.timings.lease_duration()
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The assigner's step: the assignment write when it changes, and a
    /// tombstone for every referenced node whose lease ran out on our clock
    /// (or whose tombstone is older than the generation being written).
    fn assign(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.bootstrap_until().is_some_and(|t| now < t) {
            return;
        }
        let retry = self.timings.retry_period();
        self.sent.retain(|_, until| *until > now);
        let live = self.live(now);
        let version = self.assignment.as_ref().map(|(_, v)| v.clone());
        // No record known: the next one is created. If an earlier record
        // was deleted, nodes still hold its generations (applied, floors,
        // tombstones) and ignore anything older, so the new record starts
        // above every generation seen rather than at 1.
        let empty = Assignment {
            generation: self
                .states
                .values()
                .map(|s| s.generation)
                .chain([self.floor])
                .max()
                .unwrap_or(0),
            ..Assignment::default()
        };
        let current = self.assignment.as_ref().map_or(&empty, |(a, _)| a);
        let mut want = desired(
            current,
            &View {
                live: &live,
                records: &self.states,
                addresses: &self.addresses,
                policies: &self.policies,
                preempt: self.preempt,
            },
        );
        let writing = want.entries != current.entries || version.is_none();
        let target = current.generation + u64::from(writing);
        let referenced: BTreeSet<NodeId> = current
            .referenced()
            .into_iter()
            .chain(want.referenced())
            .cloned()
            .collect();
        for node in referenced {
            let Some(seen) = self.records.get(&node) else {
                continue;
            };
            let due = match &seen.state {
                Some(st) if st.expired => st.generation < target,
                Some(_) => now >= seen.observed_at + self.timings.lease_duration(),
                None => false,
            };
            if !due {
                continue;
            }
            let key = format!("t:{node}:{}", seen.version);
            if let std::collections::btree_map::Entry::Vacant(slot) = self.sent.entry(key) {
                slot.insert(now + retry);
                out.push(Action::Tombstone {
                    node,
                    expected_version: seen.version.clone(),
                    generation: target,
                });
            }
        }
        if !writing {
            return;
        }
        let key = format!("a:{}", version.as_ref().map_or("", |v| v.0.as_str()));
        if let std::collections::btree_map::Entry::Vacant(slot) = self.sent.entry(key) {
            slot.insert(now + retry);
            want.generation = target;
            out.push(Action::WriteAssignment {
                assignment: want,
                expected_version: version,
            });
        }
    }
}

#[cfg(test)]
mod tests;
