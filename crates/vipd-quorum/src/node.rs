//! The quorum state machine: voter, candidate and holder in one core.
//!
//! ```text
//!           election wait, healthy, not witness, nobody live
//!  Follower ───────────────▶ pre-vote (term+1, no bump, §9.6)
//!     ▲                          │ majority pre-votes
//!     │                          ▼
//!     │                       vote (term+1) ──majority──▶ Holder
//!     │                                                   │ deadline / stop /
//!     └──── AddressesRemoved: Release ◀── Fencing ◀───────┘ unhealthy / higher term
//! ```
//!
//! # Why two nodes never hold at one real instant (Q4)
//!
//! A holder H holds at real time `x` only on the strength of some
//! heartbeat round R (the vote round counts as round 0) sent at
//! `s_R` on H's clock and granted by a majority M_R (H included, its grant
//! given at `s_R`). H's right from R ends at `s_R + D` on H's clock, and
//! the shell removes the addresses within `jitter` after that, so in real
//! time R's hold interval ends by `real(s_R) + (D + jitter)/(1−ρ) <=
//! real(s_R) + P/(1+ρ)` (see [`crate::Timings::hold_window`]). It starts
//! after every grant in M_R was given.
//!
//! Each voter `v` in M_R granted at real time `a_v >= real(s_R)` a
//! promise that lasts `P` on its clock, i.e. at least until
//! `a_v + P/(1+ρ) >= real(s_R) + P/(1+ρ)`: R's hold interval lies inside
//! `v`'s promise interval. A voter never grants to a node while its
//! promise to another is live (Q2/Q3: [`Node`]'s `may_grant`), and if it
//! crashes and forgets, it grants nothing for `P + jitter` on its own
//! clock, i.e. at least `P/(1+ρ)` real time (Q5), which outlasts any hold
//! interval built on the forgotten promise. A `Release` cuts a promise
//! short only after its holder fenced (Q6). So one voter's promises to
//! different nodes never overlap, and neither do hold intervals resting on
//! them.
//!
//! If H and H' both held at `x`, there would be rounds R (of H) and R' (of
//! H') whose hold intervals contain `x`; their majorities share a voter
//! `v` (quorum intersection), whose promises to H and to H' would both
//! contain `x`. Contradiction. Terms do not enter this argument: they only
//! make an old holder step down quickly and keep one vote per term (Raft
//! §3.4). Leader leases without a log in this shape: Raft thesis §6.4
//! (check-quorum, leader lease with clock-drift bound), PaxosLease (Trencseni
//! et al., 2010: a lease "promise" is held on the acceptor's own clock).

use crate::config::{Config, VoterRole};
use crate::status::{Drops, Role, Status};
use crate::wire::{Body, DropReason, Message, Verdict};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Something that happened, fed to [`Node::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed (the shell woke at [`Node::poll_timeout`]).
    Tick,
    /// A datagram arrived on the quorum socket.
    Datagram(Vec<u8>),
    /// Health gate (R8): an unhealthy node does not campaign; an unhealthy
    /// holder fences and releases (Q6).
    SetHealthy(bool),
    /// Graceful stop (SIGTERM, Q6).
    Stop,
    /// The shell removed the addresses after a [`Action::Fence`].
    AddressesRemoved,
}

/// Why the holder fenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FenceReason {
    /// The hold deadline passed (Q4).
    HoldExpired,
    /// A message with a higher term: someone else may be elected.
    HigherTerm,
    /// Graceful stop (Q6).
    Stop,
    /// Health checks failed (Q6, R8).
    Unhealthy,
    /// A higher-priority node asked (Q7 preemption).
    Preempted,
}

/// What the shell must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `bytes` to the voter at `to`.
    Send {
        /// Destination.
        to: SocketAddr,
        /// The signed datagram.
        bytes: Vec<u8>,
    },
    /// We hold: bind and announce the addresses. The right ends at
    /// `until` (shell clock) unless extended; [`Status::hold_deadline`]
    /// shows the current deadline.
    Announce {
        /// The hold deadline when we became holder.
        until: Duration,
    },
    /// Stop announcing and remove the addresses now; answer with
    /// [`Input::AddressesRemoved`].
    Fence(FenceReason),
    /// The graceful stop finished; the shell may exit.
    Stopped,
}

/// Who holds the quorum, as [`Node::leadership`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leadership {
    /// Our current term.
    pub term: u64,
    /// The holder of `term` as far as we know: ourselves while holding,
    /// else the node whose heartbeat of `term` we back (promise live).
    pub holder: Option<usize>,
    /// While we hold: our hold deadline (Q4).
    pub holding: Option<Duration>,
    /// The last term in which we held (even if only for one step).
    pub held_term: Option<u64>,
}

/// A promise this voter gave (Q3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Promise {
    holder: usize,
    term: u64,
    until: Duration,
}

/// One outstanding round of requests (pre-vote, vote or heartbeat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Round {
    seq: u64,
    sent_at: Duration,
    granted: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum State {
    Follower,
    PreCandidate {
        term: u64,
        round: Round,
        until: Duration,
    },
    Candidate {
        round: Round,
        until: Duration,
    },
    Holder {
        rounds: Vec<Round>,
        deadline: Duration,
        next_beat: Duration,
    },
    Fencing,
    Stopped,
}

/// The quorum core of one voter. See the module docs.
#[derive(Clone, Debug)]
pub struct Node {
    cfg: Arc<Config>,
    state: State,
    term: u64,
    /// Whom we voted for or acked in `term` (one per term, Q2).
    backing: Option<usize>,
    promise: Option<Promise>,
    /// Q5: no grant before this.
    quiet_until: Duration,
    next_seq: u64,
    highest_seen: Vec<Option<u64>>,
    heard: Vec<Option<Duration>>,
    /// When a follower may start a pre-vote.
    next_campaign: Duration,
    /// The priority of the holder we back (from its heartbeats).
    holder_priority: u8,
    /// The last term in which this node held.
    held_term: Option<u64>,
    healthy: bool,
    stopping: bool,
    rng: u64,
    drops: Drops,
}

impl Node {
    /// A core that (re)starts at `now`: it grants nothing until
    /// `now + P + jitter` (Q5).
    pub fn new(cfg: Config, now: Duration) -> Node {
        let n = cfg.voters.voters().len();
        let quiet_until = now + cfg.timings.quiet();
        let mut node = Node {
            rng: cfg.seed,
            next_seq: cfg.first_seq,
            state: State::Follower,
            term: 0,
            backing: None,
            promise: None,
            quiet_until,
            highest_seen: vec![None; n],
            heard: vec![None; n],
            next_campaign: quiet_until,
            holder_priority: 0,
            held_term: None,
            healthy: true,
            stopping: false,
            drops: Drops::default(),
            cfg: Arc::new(cfg),
        };
        node.next_campaign = quiet_until + node.election_wait();
        node
    }

    /// When the shell must call [`Node::handle`] with [`Input::Tick`] at
    /// the latest.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.state {
            State::Holder {
                deadline,
                next_beat,
                ..
            } => Some((*deadline).min(*next_beat)),
            State::PreCandidate { until, .. } | State::Candidate { until, .. } => Some(*until),
            State::Follower if self.may_campaign() => Some(self.campaign_at()),
            _ => None,
        }
    }

    /// Who holds, for layers built on the quorum (the Services grants,
    /// `vipd-grants`). Pure read.
    pub fn leadership(&self, now: Duration) -> Leadership {
        let holder = match &self.state {
            State::Holder { .. } => Some(self.cfg.me),
            _ => self
                .promise
                .filter(|p| p.until > now && p.term == self.term && p.holder != self.cfg.me)
                .map(|p| p.holder),
        };
        let holding = match &self.state {
            State::Holder { deadline, .. } => Some(*deadline),
            _ => None,
        };
        Leadership {
            term: self.term,
            holder,
            holding,
            held_term: self.held_term,
        }
    }

    /// A snapshot for `/status` and metrics.
    pub fn status(&self, now: Duration) -> Status {
        let role = match &self.state {
            State::Follower if self.cfg.is_witness() => Role::Witness,
            State::Follower => Role::Follower,
            State::PreCandidate { .. } | State::Candidate { .. } => Role::Candidate,
            State::Holder { .. } => Role::Holder,
            State::Fencing => Role::Fencing,
            State::Stopped => Role::Stopped,
        };
        let deadline = match &self.state {
            State::Holder { deadline, .. } => Some(*deadline),
            _ => None,
        };
        let holder = self
            .promise
            .filter(|p| p.until > now)
            .map(|p| self.cfg.voters.voters()[p.holder].name.clone());
        let p = self.cfg.timings.promise();
        let reachable = (0..self.heard.len())
            .filter(|&i| i == self.cfg.me || self.heard[i].is_some_and(|t| t + p > now))
            .count();
        Status {
            role,
            term: self.term,
            holder,
            voters_reachable: reachable,
            hold_remaining: deadline.map(|d| d.saturating_sub(now)),
            hold_deadline: deadline,
            quiet_remaining: self.quiet_until.saturating_sub(now),
            drops: self.drops,
        }
    }

    /// Feeds one input at monotonic time `now` (time since any fixed
    /// origin of the shell's monotonic clock); returns the actions to run
    /// in order. Deadlines are enforced on every call, whatever the input.
    pub fn handle(&mut self, now: Duration, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Stopped {
            return out;
        }
        self.timers(now, &mut out);
        match input {
            Input::Tick => {}
            Input::Datagram(bytes) => match self.accept(&bytes) {
                Ok((from, msg)) => self.on_message(now, from, msg, &mut out),
                Err(reason) => self.drops.count(reason),
            },
            Input::SetHealthy(h) => {
                self.healthy = h;
                if !h {
                    self.abandon_campaign(now);
                    self.fence(FenceReason::Unhealthy, &mut out);
                }
            }
            Input::Stop => {
                self.stopping = true;
                self.abandon_campaign(now);
                if !self.fence(FenceReason::Stop, &mut out) && self.state != State::Fencing {
                    self.state = State::Stopped;
                    out.push(Action::Stopped);
                }
            }
            Input::AddressesRemoved => self.on_removed(now, &mut out),
        }
        self.timers(now, &mut out);
        out
    }

    // ----- timers -------------------------------------------------------

    fn timers(&mut self, now: Duration, out: &mut Vec<Action>) {
        match &mut self.state {
            State::Holder {
                deadline,
                next_beat,
                ..
            } => {
                // Q4: the right to announce ends at the hold deadline.
                if now >= *deadline {
                    self.fence(FenceReason::HoldExpired, out);
                } else if now >= *next_beat {
                    *next_beat = now + self.cfg.timings.heartbeat();
                    self.heartbeat(now, out);
                }
            }
            State::PreCandidate { until, .. } | State::Candidate { until, .. } => {
                if now >= *until {
                    self.abandon_campaign(now);
                }
            }
            State::Follower => {
                if self.may_campaign() && now >= self.campaign_at() {
                    self.start_prevote(now, out);
                }
            }
            State::Fencing | State::Stopped => {}
        }
    }

    fn may_campaign(&self) -> bool {
        self.healthy && !self.stopping && !self.cfg.is_witness()
    }

    /// The election wait runs after our own promise to a holder ends (no
    /// pre-vote could succeed before; Q7).
    fn campaign_at(&self) -> Duration {
        let mut at = self.next_campaign.max(self.quiet_until);
        if let Some(p) = self.promise.filter(|p| p.holder != self.cfg.me) {
            at = at.max(p.until);
        }
        at
    }

    /// This node's turn (0 first) among the voters that may hold, counted
    /// in voter order from the one after `holder` (who released, or whom we
    /// back until it may fall silent).
    fn turn_after(&self, holder: usize) -> u32 {
        let voters = self.cfg.voters.voters();
        let n = voters.len();
        let mut turn = 0;
        for step in 1..n {
            let i = (holder + step) % n;
            if i == self.cfg.me {
                break;
            }
            if voters[i].role != VoterRole::Witness {
                turn += 1;
            }
        }
        turn
    }

    /// A quarter heartbeat per turn ([`Self::turn_after`]
    /// `holder`) plus up to an eighth of a heartbeat of jitter. Timing
    /// only: safety never depends on who starts first.
    fn turn_wait(&mut self, holder: usize) -> Duration {
        let hb = self.cfg.timings.heartbeat();
        let eighth = u64::try_from((hb / 8).as_nanos()).unwrap_or(1).max(1);
        let r = u64::try_from(self.election_wait().as_nanos()).unwrap_or(0);
        (hb / 4) * self.turn_after(holder) + Duration::from_nanos(r % eighth)
    }

    fn election_wait(&mut self) -> Duration {
        // splitmix64 seeded by the shell: deterministic, no RNG inside.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let (lo, hi) = self.cfg.timings.election_range();
        let span = u64::try_from((hi - lo).as_nanos()).unwrap_or(u64::MAX);
        lo + Duration::from_nanos(z % span.saturating_add(1))
    }

    fn abandon_campaign(&mut self, now: Duration) {
        if matches!(
            self.state,
            State::PreCandidate { .. } | State::Candidate { .. }
        ) {
            self.state = State::Follower;
            self.next_campaign = now + self.election_wait();
        }
    }

    // ----- voter rules (Q2, Q3, Q5, Q7) ---------------------------------

    /// Whether this voter may promise `to` now. This is the rule the
    /// safety argument rests on: never two live promises to different
    /// nodes.
    fn may_grant(&self, now: Duration, to: usize) -> Result<(), Verdict> {
        if now < self.quiet_until {
            return Err(Verdict::Quiet); // Q5
        }
        match self.promise {
            Some(p) if p.holder != to && p.until > now => Err(Verdict::LiveHolder), // Q2, Q7
            _ => Ok(()),
        }
    }

    fn give_promise(&mut self, now: Duration, to: usize) {
        // Q3: "I back `to` until my receive time + P".
        self.backing = Some(to);
        self.promise = Some(Promise {
            holder: to,
            term: self.term,
            until: now + self.cfg.timings.promise(),
        });
    }

    fn adopt_term(&mut self, now: Duration, term: u64, out: &mut Vec<Action>) {
        if term > self.term {
            // Q2: terms only grow; a new term has no vote yet.
            self.term = term;
            self.backing = None;
            self.abandon_campaign(now);
            self.fence(FenceReason::HigherTerm, out);
        }
    }

    // ----- messages -----------------------------------------------------

    /// Authenticates and checks Q1 and the replay window.
    fn accept(&mut self, bytes: &[u8]) -> Result<(usize, Message), DropReason> {
        let msg = Message::decode(bytes, &self.cfg.key)?;
        if msg.set != self.cfg.voters.hash() {
            return Err(DropReason::WrongSet); // Q1
        }
        let from = self
            .cfg
            .voters
            .index_of(&msg.from)
            .filter(|&i| i != self.cfg.me)
            .ok_or(DropReason::UnknownSender)?;
        if self.highest_seen[from].is_some_and(|h| msg.seq <= h) {
            return Err(DropReason::Replay);
        }
        self.highest_seen[from] = Some(msg.seq);
        Ok((from, msg))
    }

    fn on_message(&mut self, now: Duration, from: usize, m: Message, out: &mut Vec<Action>) {
        self.heard[from] = Some(now);
        match m.body {
            Body::PreVote => {
                // Raft §9.6: answer without changing any state.
                let verdict = if m.term <= self.term {
                    Verdict::StaleTerm
                } else {
                    match self.may_grant(now, from) {
                        Ok(()) => Verdict::Granted,
                        Err(v) => v,
                    }
                };
                self.send(
                    from,
                    Body::PreVoteReply {
                        verdict,
                        reply_to: m.seq,
                    },
                    out,
                );
            }
            Body::Vote | Body::Heartbeat { .. } => {
                self.adopt_term(now, m.term, out);
                // Q2's one vote per term binds votes. A heartbeat of this
                // term proves its sender already won it (only a majority
                // of this term's votes makes a holder), so a voter that
                // voted otherwise, e.g. a candidate that lost the term,
                // backs it once no promise of its own is live: that rule
                // (`may_grant`) is what the safety argument rests on.
                let verdict = if m.term < self.term {
                    Verdict::StaleTerm
                } else if m.body == Body::Vote && self.backing.is_some_and(|b| b != from) {
                    Verdict::AlreadyVoted // Q2: one vote per term
                } else {
                    match self.may_grant(now, from) {
                        Ok(()) => Verdict::Granted,
                        Err(v) => v,
                    }
                };
                if verdict == Verdict::Granted {
                    if m.body != Body::Vote {
                        // The term has a holder: our campaign in it is over.
                        self.abandon_campaign(now);
                    }
                    self.give_promise(now, from);
                    // Wait *after* the promise ends, when every voter's
                    // promise ends at about the same time: the election
                    // minimum, then turns in voter order after the node we
                    // back (see [`Self::turn_wait`]). Raft randomises the
                    // whole wait (§3.4); turns make two followers of one
                    // holder start a quarter heartbeat apart instead of
                    // colliding now and then (a split vote costs a whole
                    // promise, Q2).
                    let (lo, _) = self.cfg.timings.election_range();
                    self.next_campaign =
                        now + self.cfg.timings.promise() + lo + self.turn_wait(from);
                    if let Body::Heartbeat { priority } = m.body {
                        self.holder_priority = priority;
                    }
                }
                let reply = if m.body == Body::Vote {
                    Body::VoteReply {
                        verdict,
                        reply_to: m.seq,
                    }
                } else {
                    Body::Ack {
                        verdict,
                        reply_to: m.seq,
                    }
                };
                self.send(from, reply, out);
                // Q7 preemption: ask a lower-priority holder to hand over.
                if verdict == Verdict::Granted
                    && matches!(m.body, Body::Heartbeat { .. })
                    && self.cfg.preempt
                    && self.may_campaign()
                    && self.cfg.priority > self.holder_priority
                {
                    let priority = self.cfg.priority;
                    self.send(from, Body::Preempt { priority }, out);
                }
            }
            Body::PreVoteReply { verdict, reply_to } => {
                if verdict == Verdict::StaleTerm {
                    self.adopt_term(now, m.term, out);
                }
                self.on_prevote_reply(now, from, verdict, reply_to, out);
            }
            Body::VoteReply { verdict, reply_to } | Body::Ack { verdict, reply_to } => {
                self.adopt_term(now, m.term, out);
                if verdict == Verdict::Granted && m.term == self.term {
                    self.on_grant(now, from, reply_to, out);
                }
            }
            Body::Release => {
                // Q6: the holder has removed its addresses; forget it now.
                if let Some(p) = self.promise {
                    if p.holder == from && p.term <= m.term {
                        self.promise = None;
                        // A preempting node goes first; the others take
                        // turns ([`Self::turn_wait`]). They all hear the
                        // Release at the same instant, so a purely random
                        // wait let two start within a millisecond (lab: 1
                        // of 10 SIGTERMs); each voted for itself, and a
                        // split vote binds both for a whole promise (Q2):
                        // 0.73 s instead of 0.04 s.
                        let wait = if self.cfg.preempt && self.cfg.priority > self.holder_priority {
                            Duration::ZERO
                        } else {
                            self.turn_wait(from)
                        };
                        self.next_campaign = now + wait;
                    }
                }
            }
            Body::Preempt { priority } => {
                if self.cfg.preempt && priority > self.cfg.priority {
                    self.fence(FenceReason::Preempted, out);
                }
            }
        }
    }

    fn start_prevote(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.may_grant(now, self.cfg.me).is_err() {
            self.next_campaign = now + self.election_wait();
            return;
        }
        let seq = self.broadcast(self.term + 1, Body::PreVote, out);
        self.state = State::PreCandidate {
            term: self.term + 1,
            round: Round {
                seq,
                sent_at: now,
                granted: 1 << self.cfg.me,
            },
            until: now + self.cfg.timings.election_range().1,
        };
        self.check_prevotes(now, out);
    }

    fn on_prevote_reply(
        &mut self,
        now: Duration,
        from: usize,
        verdict: Verdict,
        reply_to: u64,
        out: &mut Vec<Action>,
    ) {
        if let State::PreCandidate { round, .. } = &mut self.state {
            if round.seq == reply_to && verdict == Verdict::Granted {
                round.granted |= 1 << from;
            }
        }
        self.check_prevotes(now, out);
    }

    fn check_prevotes(&mut self, now: Duration, out: &mut Vec<Action>) {
        let State::PreCandidate { term, round, .. } = self.state else {
            return;
        };
        if (round.granted.count_ones() as usize) < self.cfg.voters.majority() {
            return;
        }
        if term <= self.term || self.may_grant(now, self.cfg.me).is_err() {
            self.abandon_campaign(now);
            return;
        }
        // The real election: bump the term, vote for ourselves (our own
        // grant is a promise like any other: it starts at the send time).
        self.term = term;
        self.give_promise(now, self.cfg.me);
        let seq = self.broadcast(term, Body::Vote, out);
        self.state = State::Candidate {
            round: Round {
                seq,
                sent_at: now,
                granted: 1 << self.cfg.me,
            },
            until: now + self.cfg.timings.election_range().1,
        };
        self.on_grant(now, self.cfg.me, seq, out);
    }

    fn on_grant(&mut self, now: Duration, from: usize, reply_to: u64, out: &mut Vec<Action>) {
        let majority = self.cfg.voters.majority();
        let window = self.cfg.timings.hold_window();
        match &mut self.state {
            State::Candidate { round, .. } if round.seq == reply_to => {
                round.granted |= 1 << from;
                let round = *round;
                // Q4: hold until the vote round's send time + D.
                let deadline = round.sent_at + window;
                if round.granted.count_ones() as usize >= majority && now < deadline {
                    self.held_term = Some(self.term);
                    self.state = State::Holder {
                        rounds: vec![round],
                        deadline,
                        next_beat: now,
                    };
                    out.push(Action::Announce { until: deadline });
                    self.timers(now, out);
                }
            }
            State::Holder {
                rounds, deadline, ..
            } => {
                if let Some(r) = rounds.iter_mut().find(|r| r.seq == reply_to) {
                    r.granted |= 1 << from;
                    // Q4: the newest majority-acked round's send time + D.
                    if r.granted.count_ones() as usize >= majority {
                        *deadline = (*deadline).max(r.sent_at + window);
                    }
                }
            }
            _ => {}
        }
    }

    fn heartbeat(&mut self, now: Duration, out: &mut Vec<Action>) {
        // Our own ack of the round is a promise to ourselves from the send
        // time (it keeps us from voting for anyone else meanwhile).
        self.give_promise(now, self.cfg.me);
        let priority = self.cfg.priority;
        let seq = self.broadcast(self.term, Body::Heartbeat { priority }, out);
        if let State::Holder { rounds, .. } = &mut self.state {
            // Keep the rounds whose acks could still extend the deadline.
            if rounds.len() >= 8 {
                rounds.remove(0);
            }
            rounds.push(Round {
                seq,
                sent_at: now,
                granted: 1 << self.cfg.me,
            });
        }
        self.on_grant(now, self.cfg.me, seq, out);
    }

    /// Q6: fence first; Release follows the shell's "addresses removed".
    /// Returns whether we were holding.
    fn fence(&mut self, reason: FenceReason, out: &mut Vec<Action>) -> bool {
        if matches!(self.state, State::Holder { .. }) {
            self.state = State::Fencing;
            out.push(Action::Fence(reason));
            true
        } else {
            false
        }
    }

    fn on_removed(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state != State::Fencing {
            return;
        }
        // The addresses are gone: our right has ended, so voters may drop
        // their promises to us at once (Q6).
        self.broadcast(self.term, Body::Release, out);
        if self.promise.is_some_and(|p| p.holder == self.cfg.me) {
            self.promise = None;
        }
        if self.stopping {
            self.state = State::Stopped;
            out.push(Action::Stopped);
        } else {
            self.state = State::Follower;
            // Let a peer win first (one full election wait plus a beat).
            self.next_campaign = now + self.cfg.timings.heartbeat() + self.election_wait();
        }
    }

    // ----- sending ------------------------------------------------------

    fn message(&mut self, term: u64, body: Body) -> (u64, Message) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let me = &self.cfg.voters.voters()[self.cfg.me];
        let m = Message {
            from: me.name.clone(),
            set: self.cfg.voters.hash(),
            seq,
            term,
            body,
        };
        (seq, m)
    }

    fn send(&mut self, to: usize, body: Body, out: &mut Vec<Action>) {
        let (_, m) = self.message(self.term, body);
        let to = self.cfg.voters.voters()[to].addr;
        out.push(Action::Send {
            to,
            bytes: m.encode(&self.cfg.key),
        });
    }

    /// One datagram to every other voter, one sequence number (each
    /// receiver checks it separately).
    fn broadcast(&mut self, term: u64, body: Body, out: &mut Vec<Action>) -> u64 {
        let (seq, m) = self.message(term, body);
        let bytes = m.encode(&self.cfg.key);
        for (i, v) in self.cfg.voters.voters().iter().enumerate() {
            if i != self.cfg.me {
                out.push(Action::Send {
                    to: v.addr,
                    bytes: bytes.clone(),
                });
            }
        }
        seq
    }

    /// Whether `role` is a witness (used by tests and the shell).
    pub fn is_witness(&self) -> bool {
        self.cfg.voters.voters()[self.cfg.me].role == VoterRole::Witness
    }
}
