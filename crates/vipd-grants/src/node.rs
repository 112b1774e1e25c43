//! [`Grants`]: one node's grant core, grantee always, assigner while it
//! holds the quorum.

use crate::assigner::{Assigner, Ctx, ServiceView};
use crate::grantee::{Bound, Grantee};
use crate::set::{digest_of, split, AddrSet};
use crate::wire::{Body, Message, Part, PART_BUDGET};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use vipd_quorum::{Config, DropReason, Drops, Leadership, TimingError, Timings, VoterRole};

/// The removal bound [`GrantTimings::for_quorum`] gives the shell at
/// least: removing 250 addresses from a veth in a namespace took 14.5 ms
/// on the 2-vCPU test machine (`ip -batch`, 2026-12-07), the VIP manager
/// adds its own netlink round trips; 100 ms leaves a wide margin.
pub const REMOVAL_BUDGET: Duration = Duration::from_millis(100);

/// Grant timings: the quorum's, plus the grant period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantTimings {
    grant: Duration,
    window: Duration,
    heartbeat: Duration,
    settle: Duration,
    live: Duration,
}

impl GrantTimings {
    /// The grant period `G` (on the holder's clock from its receive time of
    /// the claim answered) next to the quorum `timings`; the node's usable
    /// window is `G·(1−ρ)/(1+ρ) − jitter` from its claim's send time, as Q4
    /// derives for the quorum promise, and must hold three heartbeats.
    pub fn new(grant: Duration, timings: &Timings) -> Result<GrantTimings, TimingError> {
        let (lo, hi) = timings.election_range();
        let as_promise = Timings::new(
            grant,
            timings.heartbeat(),
            lo,
            hi,
            timings.drift_ppm(),
            timings.jitter(),
        )?;
        Ok(GrantTimings {
            grant,
            window: as_promise.hold_window(),
            heartbeat: timings.heartbeat(),
            settle: timings.jitter(),
            live: timings.promise(),
        })
    }

    /// The grant timings the daemon uses with quorum `timings`. Removals
    /// get [`REMOVAL_BUDGET`] instead of the quorum's `jitter` when that is
    /// shorter: a node reports what it stopped binding that long, and its
    /// window ends that much before the assigner's count, so a kernel
    /// removal of a few hundred addresses (a drain, an expired grant)
    /// finishes before anyone else may bind them. The grant period is long
    /// enough that a holder change (the old promise runs out, an election
    /// wait, the new holder's first round trips) ends before a live node's
    /// window does, so live nodes keep serving through it; at least 1 s.
    /// Defaults: 600 ms + 200 ms + 2 x 100 ms + 100 ms = 1.1 s.
    pub fn for_quorum(timings: &Timings) -> Result<GrantTimings, TimingError> {
        let (lo, hi) = timings.election_range();
        let settle = timings.jitter().max(REMOVAL_BUDGET);
        let t = Timings::new(
            timings.promise(),
            timings.heartbeat(),
            lo,
            hi,
            timings.drift_ppm(),
            settle,
        )?;
        let g = timings.promise() + hi + timings.heartbeat() * 2 + settle;
        GrantTimings::new(g.max(Duration::from_secs(1)), &t)
    }

    /// How long the shell is given to remove what it stops binding.
    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// The grant period `G`.
    pub fn grant(&self) -> Duration {
        self.grant
    }

    /// The node's usable window from its claim's send time.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// Something that happened, fed to [`Grants::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed.
    Tick,
    /// The quorum core's [`vipd_quorum::Node::leadership`], after each of
    /// its steps.
    Leadership(Leadership),
    /// A datagram with the grant magic arrived on the quorum socket.
    Datagram(Vec<u8>),
    /// The Services as last seen (the assigner uses them). Feed only a
    /// view read from the API: until the first one arrives, an assigner
    /// keeps what the nodes report binding and moves nothing it has not
    /// seen (a node started during an API outage must not mistake "not
    /// read yet" for "no Services").
    Services(Arc<ServiceView>),
    /// Health gate (R8): a draining node binds nothing and gets nothing.
    SetDraining(bool),
    /// Graceful stop.
    Stop,
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `bytes` to `to` from the quorum socket.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The signed datagram.
        bytes: Vec<u8>,
    },
    /// Bind exactly this set from now on (add what is new, remove what is
    /// gone, within the quorum's `jitter`).
    Announce(AddrSet),
    /// The graceful stop finished.
    Stopped,
}

/// A snapshot for `/status` and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantStatus {
    /// Whether this node is the assigner (the quorum holder).
    pub assigner: bool,
    /// Addresses this node binds now.
    pub bound: usize,
    /// How long the grant we bind under lasts (none while assigner).
    pub right_remaining: Option<Duration>,
    /// Assigner only: addresses with an owner.
    pub owned: usize,
    /// Assigner only: addresses in the view without one (moving, or no
    /// eligible node).
    pub unowned: usize,
    /// The version of the share this node binds (none while assigner or
    /// before the first grant).
    pub version: Option<u64>,
    /// The assigner whose grant this node binds under (none while
    /// assigner or before the first grant).
    pub granted_by: Option<vipd_services::NodeId>,
    /// Whether a Services view has arrived (see [`Input::Services`]).
    pub view_known: bool,
    /// Dropped datagrams by reason.
    pub drops: Drops,
}

/// `set` as the datagram-sized parts that carry it (`Held`, `Share`).
fn parts_of(set: &BTreeSet<std::net::IpAddr>) -> impl Iterator<Item = Part> {
    let digest = digest_of(set);
    let count = u32::try_from(set.len()).unwrap_or(u32::MAX);
    let parts = split(set, PART_BUDGET);
    let n = u16::try_from(parts.len()).unwrap_or(u16::MAX);
    parts
        .into_iter()
        .take(usize::from(n))
        .enumerate()
        .map(move |(i, addrs)| Part {
            digest,
            count,
            part: u16::try_from(i).unwrap_or(u16::MAX),
            parts: n,
            addrs,
        })
}

/// Anti-replay window per sender (RFC 4303 §3.4.3's sliding window):
/// a claim travels with its held parts and a grant with its share parts,
/// so datagrams reordered by a few places must still count; each sequence
/// number is accepted once, and nothing older than 64 places.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    highest: Option<u64>,
    bits: u64,
}

impl Window {
    fn accept(&mut self, seq: u64) -> bool {
        let Some(h) = self.highest else {
            self.highest = Some(seq);
            self.bits = 1;
            return true;
        };
        if seq > h {
            let shift = seq - h;
            self.bits = if shift >= 64 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.highest = Some(seq);
            true
        } else {
            let back = h - seq;
            if back >= 64 || self.bits & (1 << back) != 0 {
                return false;
            }
            self.bits |= 1 << back;
            true
        }
    }
}

/// One node's grant core. See the crate docs.
///
/// Shell contract, besides running actions in order: after the quorum
/// core's `Fence`, feed the new [`Leadership`] here first, and answer the
/// quorum core's `AddressesRemoved` only once every address this core
/// stopped binding is removed. The quorum `Release` that follows lets a
/// successor hold at once (Q6).
#[derive(Clone, Debug)]
pub struct Grants {
    cfg: Arc<Config>,
    t: GrantTimings,
    ctx: Ctx,
    next_seq: u64,
    replay: Vec<Window>,
    drops: Drops,
    lead: Leadership,
    seen_held_term: Option<u64>,
    g: Grantee,
    a: Option<Assigner>,
    view: Arc<ServiceView>,
    view_known: bool,
    draining: bool,
    stopping: bool,
    stopped: bool,
    announced: AddrSet,
    last_reconcile: Duration,
}

impl Grants {
    /// A grant core for the quorum node of `cfg` (not a witness: it never
    /// binds), starting with nothing bound.
    pub fn new(cfg: Config, t: GrantTimings, first_seq: u64) -> Grants {
        let voters = cfg.voters.voters();
        let n = voters.len();
        Grants {
            ctx: Ctx {
                me: cfg.me,
                grantees: voters
                    .iter()
                    .map(|v| v.role != VoterRole::Witness)
                    .collect(),
                names: voters.iter().map(|v| v.name.clone()).collect(),
                grant: t.grant,
                live_window: t.live,
                preempt: cfg.preempt,
            },
            t,
            next_seq: first_seq,
            replay: vec![Window::default(); n],
            drops: Drops::default(),
            lead: Leadership {
                term: 0,
                holder: None,
                holding: None,
                held_term: None,
            },
            seen_held_term: None,
            g: Grantee::default(),
            a: None,
            view: Arc::new(ServiceView::default()),
            view_known: false,
            draining: false,
            stopping: false,
            stopped: false,
            announced: Arc::new(BTreeSet::new()),
            last_reconcile: Duration::ZERO,
            cfg: Arc::new(cfg),
        }
    }

    /// When the shell must call [`Grants::handle`] with [`Input::Tick`] at
    /// the latest.
    pub fn poll_timeout(&self, now: Duration) -> Option<Duration> {
        if self.stopped {
            return None;
        }
        let mut at: Option<Duration> = None;
        let mut consider = |t: Duration| at = Some(at.map_or(t, |a: Duration| a.min(t)));
        if self.g.pending_until > now {
            consider(self.g.pending_until);
        }
        if let Some(a) = &self.a {
            if let Some(w) = a.next_wake(now, &self.ctx) {
                consider(w);
            }
            if let Some(d) = self.lead.holding {
                consider(d);
            }
        } else {
            if self.g.claimed_to.is_some() {
                consider(self.g.next_claim);
            }
            if self.g.applied.is_some() {
                consider(self.g.until);
            }
        }
        if self.stopping {
            consider(self.g.pending_until.max(now));
        }
        at
    }

    /// The status snapshot.
    pub fn status(&self, now: Duration) -> GrantStatus {
        let (owned, unowned) = match &self.a {
            // Every reconcile drops owners of addresses gone from the view,
            // so a count suffices (the shell asks after every step).
            Some(a) => (
                a.owners.len(),
                self.view.addresses.len().saturating_sub(a.owners.len()),
            ),
            None => (0, 0),
        };
        GrantStatus {
            assigner: self.a.is_some(),
            bound: self.announced.len(),
            right_remaining: match (&self.a, &self.g.applied) {
                (None, Some(_)) => Some(self.g.until.saturating_sub(now)),
                _ => None,
            },
            owned,
            unowned,
            version: match &self.a {
                None => self.g.applied.as_ref().and_then(|b| b.version),
                Some(_) => None,
            },
            granted_by: match &self.a {
                None => self
                    .g
                    .applied
                    .as_ref()
                    .and_then(|b| self.ctx.names.get(b.era.0).cloned()),
                Some(_) => None,
            },
            view_known: self.view_known,
            drops: self.drops,
        }
    }

    /// The set the shell binds now.
    pub fn bound(&self) -> &AddrSet {
        &self.announced
    }

    /// Feeds one input at monotonic time `now`; returns the actions to run
    /// in order.
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match input {
            Input::Tick => {}
            Input::Leadership(l) => self.on_leadership(now, l),
            Input::Datagram(bytes) => match self.accept(&bytes) {
                Ok((from, m)) => self.on_message(now, from, m, &mut out),
                Err(r) => self.drops.count(r),
            },
            Input::Services(v) => {
                if !self.view_known || *v != *self.view {
                    self.view_known = true;
                    self.view = v;
                    if let Some(a) = &mut self.a {
                        a.dirty = true;
                    }
                }
            }
            Input::SetDraining(d) => {
                if d != self.draining {
                    self.draining = d;
                    if d {
                        self.g.drop_applied(now, self.t.settle);
                    }
                    self.g.next_claim = now;
                }
            }
            Input::Stop => {
                self.stopping = true;
                self.g.drop_applied(now, self.t.settle);
                self.step_down(now);
            }
        }
        self.timers(now, &mut out);
        self.sync(now, &mut out);
        out
    }

    // ----- leadership ---------------------------------------------------

    fn on_leadership(&mut self, now: Duration, l: Leadership) {
        self.lead = l;
        let holding = l.holding.is_some_and(|d| now < d) && !self.stopping;
        if holding {
            if self.a.as_ref().is_none_or(|a| a.term != l.term) {
                self.step_down(now);
                self.become_assigner(now, l);
            }
        } else {
            self.step_down(now);
            if l.held_term > self.seen_held_term {
                // We held a term without seeing it (it began and ended
                // within one step): whatever we bound may have been
                // counted as ours by nobody. Drop it, as a holder does.
                self.seen_held_term = l.held_term;
                self.g.drop_applied(now, self.t.settle);
                self.g.floor = None;
            }
            let target = l.holder.map(|h| (l.term, h));
            if target != self.g.claimed_to {
                self.g.claimed_to = target;
                self.g.next_claim = now;
                // A new holder: until it answers, every report is explicit.
                if self.g.era.is_some_and(|e| Some(e.0) != l.holder) {
                    self.g.era = None;
                }
            }
        }
    }

    fn become_assigner(&mut self, now: Duration, l: Leadership) {
        self.seen_held_term = l.held_term;
        // What we validly bind now stays ours: nobody else may bind it
        // (the old holders kept one owner per address).
        let keep = match self.g.applied.take() {
            Some(b) if b.version.is_none() || now < self.g.until => b.set,
            Some(b) => {
                self.g.drop_bound(now, b, self.t.settle);
                Arc::new(BTreeSet::new())
            }
            None => Arc::new(BTreeSet::new()),
        };
        self.g.floor = None;
        self.g.claimed_to = None;
        // Our epoch: a number no earlier process of ours used (sequence
        // numbers start from the wall clock and only grow).
        let epoch = self.next_seq;
        self.next_seq += 1;
        self.a = Some(Assigner::new(
            l.term,
            epoch,
            now,
            self.ctx.names.len(),
            self.cfg.me,
            keep,
        ));
    }

    fn step_down(&mut self, now: Duration) {
        if let Some(a) = self.a.take() {
            // Q4: our right to anything ended with the hold.
            if !a.self_held.is_empty() {
                self.g.drop_bound(
                    now,
                    Bound {
                        era: (self.cfg.me, a.epoch),
                        version: None,
                        set: a.self_held,
                    },
                    self.t.settle,
                );
            }
        }
    }

    // ----- messages -----------------------------------------------------

    fn accept(&mut self, bytes: &[u8]) -> Result<(usize, Message), DropReason> {
        let m = Message::decode(bytes, &self.cfg.key)?;
        if m.set != self.cfg.voters.hash() {
            return Err(DropReason::WrongSet);
        }
        let from = self
            .cfg
            .voters
            .index_of(&m.from)
            .filter(|&i| i != self.cfg.me && self.ctx.grantees[i])
            .ok_or(DropReason::UnknownSender)?;
        if !self.replay[from].accept(m.seq) {
            return Err(DropReason::Replay);
        }
        Ok((from, m))
    }

    fn on_message(&mut self, now: Duration, from: usize, m: Message, out: &mut Vec<Action>) {
        let (window, settle) = (self.t.window, self.t.settle);
        match m.body {
            Body::Claim(c) => {
                let grant = self.t.grant;
                let Some(a) = self.a.as_mut().filter(|a| a.term == m.term) else {
                    return;
                };
                if !a.on_claim(from, m.seq, now, &c) {
                    return;
                }
                self.reconcile(now, out);
                // Answer: the share if it lacks our latest, then the grant.
                let Some(a) = self.a.as_mut() else {
                    return;
                };
                let p = &mut a.peers[from];
                if p.latest == 0 {
                    return;
                }
                let share = (p.have < p.latest).then(|| {
                    (
                        p.latest,
                        p.versions.get(&p.latest).cloned().unwrap_or_default(),
                    )
                });
                p.granted_max = p.latest;
                p.grant_expiry = p.grant_expiry.max(now + grant);
                let version = p.latest;
                let epoch = a.epoch;
                if let Some((v, set)) = share {
                    self.send_share(from, epoch, v, &set, out);
                }
                self.send(
                    from,
                    Body::Grant {
                        epoch,
                        reply_to: m.seq,
                        version,
                    },
                    out,
                );
            }
            Body::Held(part) => {
                if let Some(a) = self.a.as_mut().filter(|a| a.term == m.term) {
                    a.on_held(from, part);
                }
            }
            Body::Leave => {
                if let Some(a) = self.a.as_mut().filter(|a| a.term == m.term) {
                    a.on_leave(from);
                }
            }
            Body::Share {
                epoch,
                version,
                part,
            } => {
                if self.sent_by_holder(from, m.term) && self.g.admit((from, epoch)) {
                    self.g
                        .on_share(now, (from, epoch), version, part, window, settle);
                }
            }
            Body::Grant {
                epoch,
                reply_to,
                version,
            } => {
                if self.sent_by_holder(from, m.term)
                    && self.g.admit((from, epoch))
                    && !self.draining
                    && !self.stopping
                {
                    self.g.on_grant(
                        now,
                        m.term,
                        (from, epoch),
                        reply_to,
                        version,
                        window,
                        settle,
                    );
                }
            }
        }
    }

    /// Grants and shares count only from the holder of our current term.
    fn sent_by_holder(&self, from: usize, term: u64) -> bool {
        self.a.is_none() && self.lead.term == term && self.lead.holder == Some(from)
    }

    // ----- timers and output ----------------------------------------------

    fn timers(&mut self, now: Duration, out: &mut Vec<Action>) {
        if let Some(a) = &self.a {
            if self.lead.holding.is_none_or(|d| now >= d) {
                // Q4: the hold ended; the quorum core is fencing.
                self.step_down(now);
            } else if a.dirty || a.woke(self.last_reconcile, now, &self.ctx) {
                self.reconcile(now, out);
            }
        }
        if self.a.is_none() {
            if self.g.applied.as_ref().is_some_and(|b| b.version.is_some()) && now >= self.g.until {
                self.g.drop_applied(now, self.t.settle);
            }
            if let Some((term, to)) = self.g.claimed_to {
                if now >= self.g.next_claim && !self.stopping {
                    self.g.next_claim = now + self.t.heartbeat;
                    self.claim(now, term, to, out);
                }
            }
        }
        if self.stopping && now >= self.g.pending_until {
            if let Some((term, to)) = self.g.claimed_to.filter(|_| self.a.is_none()) {
                let (_, m) = self.message(term, Body::Leave);
                out.push(Action::Send {
                    to: self.cfg.voters.voters()[to].addr,
                    bytes: m.encode(&self.cfg.key),
                });
            }
            self.stopped = true;
            out.push(Action::Stopped);
        }
    }

    fn reconcile(&mut self, now: Duration, out: &mut Vec<Action>) {
        let me_live = !self.draining && !self.stopping;
        // Disjoint fields: the grantee's removals in flight and the fixed
        // context are read while the assigner changes.
        let pending: &[Bound] = if now < self.g.pending_until {
            &self.g.pending
        } else {
            &[]
        };
        let ctx = &self.ctx;
        let Some(a) = self.a.as_mut() else {
            return;
        };
        let fallback;
        let view = if self.view_known {
            &self.view
        } else {
            // No view read yet: what the nodes report binding is all we
            // know exists; keep it where it is (every node eligible).
            fallback = a.reported_view();
            &fallback
        };
        self.last_reconcile = now;
        let before = Arc::clone(&a.self_held);
        let changed = a.reconcile(now, ctx, view, me_live, pending);
        let (epoch, after) = (a.epoch, Arc::clone(&a.self_held));
        let removed: BTreeSet<_> = before.difference(&after).copied().collect();
        if !removed.is_empty() {
            // Removed from ourselves: nobody gets it before the shell has
            // surely removed it (`jitter`), as for any node.
            self.g.drop_bound(
                now,
                Bound {
                    era: (self.cfg.me, epoch),
                    version: None,
                    set: Arc::new(removed),
                },
                self.t.settle,
            );
        }
        let grant = self.t.grant;
        for y in changed {
            if y == self.cfg.me {
                continue;
            }
            let Some(a) = self.a.as_mut() else {
                return;
            };
            let p = &mut a.peers[y];
            let v = p.latest;
            let set = p.versions.get(&v).cloned().unwrap_or_default();
            // Grant at once on its newest claim if that is still fresh
            // enough to be worth anything (the grant is anchored there).
            let epoch = a.epoch;
            let answer = p.last_claim.filter(|&(_, r)| r + grant > now);
            if let Some((_, r)) = answer {
                p.granted_max = v;
                p.grant_expiry = p.grant_expiry.max(r + grant);
            }
            self.send_share(y, epoch, v, &set, out);
            if let Some((seq, _)) = answer {
                self.send(
                    y,
                    Body::Grant {
                        epoch,
                        reply_to: seq,
                        version: v,
                    },
                    out,
                );
            }
        }
    }

    fn claim(&mut self, now: Duration, term: u64, to: usize, out: &mut Vec<Action>) {
        let (c, sets) = self.g.report(now, self.draining || self.stopping);
        let seq = self.send(to, Body::Claim(c), out);
        self.g.sent(seq, now, term, to);
        for set in sets {
            for part in parts_of(&set) {
                self.send(to, Body::Held(part), out);
            }
        }
    }

    fn send_share(
        &mut self,
        to: usize,
        epoch: u64,
        version: u64,
        set: &BTreeSet<std::net::IpAddr>,
        out: &mut Vec<Action>,
    ) {
        for part in parts_of(set) {
            self.send(
                to,
                Body::Share {
                    epoch,
                    version,
                    part,
                },
                out,
            );
        }
    }

    /// What the shell binds now, pushed when it changes.
    fn sync(&mut self, now: Duration, out: &mut Vec<Action>) {
        let empty = || Arc::new(BTreeSet::new());
        let want: AddrSet = if self.draining || self.stopping || self.stopped {
            empty()
        } else if let Some(a) = &self.a {
            if self.lead.holding.is_some_and(|d| now < d) {
                Arc::clone(&a.self_held)
            } else {
                empty()
            }
        } else {
            match &self.g.applied {
                Some(b) if b.version.is_some() && now < self.g.until => Arc::clone(&b.set),
                _ => empty(),
            }
        };
        if *want != *self.announced {
            self.announced = Arc::clone(&want);
            out.push(Action::Announce(want));
        }
    }

    fn message(&mut self, term: u64, body: Body) -> (u64, Message) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let m = Message {
            from: self.ctx.names[self.cfg.me].clone(),
            set: self.cfg.voters.hash(),
            seq,
            term,
            body,
        };
        (seq, m)
    }

    fn send(&mut self, to: usize, body: Body, out: &mut Vec<Action>) -> u64 {
        let term = self.a.as_ref().map_or(self.lead.term, |a| a.term);
        let (seq, m) = self.message(term, body);
        out.push(Action::Send {
            to: self.cfg.voters.voters()[to].addr,
            bytes: m.encode(&self.cfg.key),
        });
        seq
    }
}
