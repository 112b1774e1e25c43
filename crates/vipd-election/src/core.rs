//! The election state machine.
//!
//! It follows client-go's `LeaderElector` (`tryAcquireOrRenew`): a follower
//! reads the record and remembers *when it first saw each version* on its own
//! monotonic clock (`observedTime`); it may take over only when the holder is
//! empty, is itself, or the record has not changed for the lease duration.
//! Every write carries the version it read (optimistic concurrency), so two
//! candidates can never both succeed against the same version.
//!
//! On top of client-go it adds the fence that makes R1 hold even when the
//! holder is cut from the store: the holder stops announcing at
//! `renew_deadline` after the *send time* of its last successful renewal. Any
//! peer that saw that renewal saw it after it was sent, and waits
//! `lease_duration >= renew_deadline + margin` from then, so the holder has
//! fenced before any peer can acquire (see [`crate::Timings`]).
//!
//! ```text
//!            acquire ok (sent_at + renew_deadline > now)
//!  Follower ───────────────────────────────────────────▶ Leader
//!     ▲  ▲                                                 │
//!     │  └──── conflict + foreign holder on re-read ───────┤
//!     │  └──── now >= last_ok_send + renew_deadline ───────┤ (Fence)
//!     └──────── shutdown / unhealthy: Fence, then release ─┘
//! ```
//!
//! The core never sleeps and never exits on an error (R2): every failure
//! leads back to a scheduled retry.

use crate::record::{LeaseRecord, Versioned};
use crate::store::{StoreError, WatchEvent};
use crate::timings::Timings;
use std::time::Duration;
use tokio::time::Instant;

/// Identifies one request so a late answer to an abandoned one is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// How the driver stamps wall-clock times into a record before writing it.
/// The core never reads wall time (STYLE.md lesson 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamp {
    /// Set `renewTime` to now; keep `acquireTime`.
    Renew,
    /// Set both `acquireTime` and `renewTime` to now (new holder, or release
    /// as client-go writes it).
    AcquireAndRenew,
}

/// A store operation for the driver to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read the record.
    Get,
    /// Create the record (it was absent).
    Create {
        /// Record to write, before stamping.
        record: LeaseRecord,
        /// Which times to stamp.
        stamp: Stamp,
    },
    /// Replace the record if it is still at `version`.
    Update {
        /// Record to write, before stamping.
        record: LeaseRecord,
        /// The version read; the write fails with `Conflict` otherwise.
        version: crate::record::Version,
        /// Which times to stamp.
        stamp: Stamp,
    },
}

/// Why the holder stopped announcing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceReason {
    /// No successful renewal within the renew deadline (R1).
    RenewDeadline,
    /// The store shows another holder.
    Lost,
    /// Graceful shutdown (R7).
    Shutdown,
    /// Health checks failed (R8).
    Unhealthy,
}

/// What the driver must do, in order. A [`Action::Fence`] must have taken
/// effect (the address is gone) before the driver sends the next request:
/// the release that follows a fence relies on it (R7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Perform `op` and report the outcome as [`Input::Response`] with this
    /// `id`. Give up at `deadline` (the core also treats the request as
    /// timed out then): R6, no request outlives the renew deadline.
    Request {
        /// Request identity.
        id: RequestId,
        /// What to do.
        op: Op,
        /// When to give up.
        deadline: Instant,
    },
    /// We hold the lease: bind the VIP and announce it.
    Lead,
    /// Stop announcing and remove the VIP now.
    Fence(FenceReason),
    /// Shutdown finished (lease released or not ours); the driver may exit.
    Stopped,
}

/// Something that happened, fed to [`Elector::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed (the driver woke at [`Elector::poll_timeout`]).
    Tick,
    /// The outcome of a request. Writes answer `Ok(Some(written))`.
    Response {
        /// Which request.
        id: RequestId,
        /// Its outcome.
        result: Result<Option<Versioned>, StoreError>,
    },
    /// A watch saw the record change.
    Watched(WatchEvent),
    /// SIGTERM/SIGINT: fence, release, stop.
    Shutdown,
    /// Health gate (R8): an ineligible node releases and does not campaign.
    SetEligible(bool),
    /// Something suggests the record changed (a duplicate claim on the
    /// wire, R5): read it again now.
    Reread,
}

/// The node's role as seen by the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not holding; campaigning when eligible.
    Follower,
    /// Holding and announcing.
    Leader,
    /// Shutdown finished.
    Stopped,
}

/// A read-only view for `/status` and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Our role.
    pub role: Role,
    /// Holder in the last record we saw (`None`: absent or unknown; empty
    /// string: released).
    pub holder: Option<String>,
    /// Send time of our last successful renewal while leading.
    pub last_renewal: Option<Instant>,
    /// `leaseTransitions` of the last record we saw.
    pub transitions: u32,
    /// When the current version of the record was first seen.
    pub observed_at: Option<Instant>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Read,
    Acquire,
    Renew,
    Release,
}

#[derive(Debug)]
struct InFlight {
    id: RequestId,
    purpose: Purpose,
    sent_at: Instant,
    deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Observed {
    /// Never read successfully.
    Unknown,
    /// The record does not exist.
    Absent,
    /// The record as last seen.
    Present(Versioned),
}

/// The election core for one lease. See the module docs.
#[derive(Debug)]
pub struct Elector {
    identity: String,
    timings: Timings,
    rng: u64,
    leading: bool,
    /// While leading: last successful renewal's send time + renew deadline.
    fence_at: Instant,
    last_renewal: Option<Instant>,
    observed: Observed,
    observed_at: Instant,
    in_flight: Option<InFlight>,
    next_id: u64,
    /// When the next request is due.
    next_at: Instant,
    reread: bool,
    /// A watch event arrived while a request was in flight: its content
    /// may be newer than that request's answer, so read again after it.
    watched_in_flight: bool,
    eligible: bool,
    shutting_down: bool,
    stopped: bool,
}

impl Elector {
    /// A follower that will read the record at once. `seed` drives the
    /// jitter (deterministic in tests and the simulation).
    pub fn new(identity: impl Into<String>, timings: Timings, seed: u64, now: Instant) -> Self {
        Elector {
            identity: identity.into(),
            timings,
            // xorshift must not start at zero.
            rng: seed | 1,
            leading: false,
            fence_at: now,
            last_renewal: None,
            observed: Observed::Unknown,
            observed_at: now,
            in_flight: None,
            next_id: 0,
            next_at: now,
            reread: false,
            watched_in_flight: false,
            eligible: true,
            shutting_down: false,
            stopped: false,
        }
    }

    /// Our identity (the record's `holderIdentity` when we hold it).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The timings in force.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Current role.
    pub fn role(&self) -> Role {
        if self.stopped {
            Role::Stopped
        } else if self.leading {
            Role::Leader
        } else {
            Role::Follower
        }
    }

    /// A snapshot for status reporting.
    pub fn status(&self) -> Status {
        let (holder, transitions) = match &self.observed {
            Observed::Present(v) => (
                Some(v.record.holder_identity.clone()),
                v.record.lease_transitions,
            ),
            _ => (None, 0),
        };
        Status {
            role: self.role(),
            holder,
            last_renewal: if self.leading {
                self.last_renewal
            } else {
                None
            },
            transitions,
            observed_at: match self.observed {
                Observed::Present(_) => Some(self.observed_at),
                _ => None,
            },
        }
    }

    /// When the driver must call [`Elector::handle`] with [`Input::Tick`]
    /// at the latest (fence deadline, request deadline, next request).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let mut t = if let Some(f) = &self.in_flight {
            f.deadline
        } else {
            self.next_at
        };
        if self.leading {
            t = t.min(self.fence_at);
        }
        Some(t)
    }

    /// Feeds one input; returns the actions to execute in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match input {
            Input::Tick => {}
            Input::Response { id, result } => self.on_response(now, id, result, &mut out),
            Input::Watched(ev) => self.on_watch(now, ev),
            Input::Shutdown => {
                self.shutting_down = true;
                if self.leading {
                    self.fence(FenceReason::Shutdown, &mut out);
                }
                self.next_at = now;
            }
            Input::SetEligible(e) => {
                if self.eligible != e {
                    self.eligible = e;
                    if !e && self.leading {
                        self.fence(FenceReason::Unhealthy, &mut out);
                    }
                    self.next_at = now;
                }
            }
            Input::Reread => {
                self.reread = true;
                self.next_at = now;
            }
        }
        self.step(now, &mut out);
        out
    }

    fn on_response(
        &mut self,
        now: Instant,
        id: RequestId,
        result: Result<Option<Versioned>, StoreError>,
        out: &mut Vec<Action>,
    ) {
        let Some(f) = self.in_flight.take_if(|f| f.id == id) else {
            // An answer to a request we already timed out: its outcome is
            // unknown to us by now and the record will be re-read.
            return;
        };
        let watched = std::mem::take(&mut self.watched_in_flight);
        match (f.purpose, result) {
            (Purpose::Read, Ok(v)) => {
                self.reread = false;
                self.observe(now, v);
                if self.leading && !self.holder_is_us() {
                    // Someone else holds it: we must have been fenced
                    // already on their clock; stop at once.
                    self.fence(FenceReason::Lost, out);
                }
                self.schedule_after_observation(now);
            }
            (Purpose::Acquire | Purpose::Renew | Purpose::Release, Ok(Some(v))) => {
                self.observe(now, Some(v));
                if self.holder_is_us() {
                    let fence_at = f.sent_at + self.timings.renew_deadline();
                    // Our write is in the store. It protects us only until
                    // its send time + renew deadline (R1): a reply that came
                    // back later than that buys nothing.
                    if fence_at > now && self.eligible && !self.shutting_down {
                        self.last_renewal = Some(f.sent_at);
                        if self.leading {
                            self.fence_at = self.fence_at.max(fence_at);
                        } else {
                            self.leading = true;
                            self.fence_at = fence_at;
                            out.push(Action::Lead);
                        }
                        self.next_at = (f.sent_at + self.timings.retry_period()).max(now);
                    } else {
                        self.next_at = now;
                    }
                } else {
                    // A release went through.
                    self.schedule_after_observation(now);
                }
            }
            (_, Ok(None)) => {
                // A write answered without the record: treat as unknown.
                self.reread = true;
                self.next_at = now;
            }
            (_, Err(StoreError::Conflict | StoreError::AlreadyExists)) => {
                // We lost a race: re-read, never retry blindly (lesson 4).
                self.reread = true;
                self.next_at = now;
            }
            (purpose, Err(e)) => {
                self.after_failure(now, purpose, e == StoreError::Timeout);
            }
        }
        if watched {
            // The watched change may be newer than this answer (a watch
            // stream and a GET are not ordered): look again now, or a
            // release seen by the watch would wait for the next poll.
            self.reread = true;
            self.next_at = now;
        }
    }

    /// Schedules the next attempt after a failed request (outcome unknown:
    /// a write may have been applied). A holder whose request timed out
    /// retries at once: the wait already happened and the driver has
    /// re-dialled, so the retry travels on a fresh connection and can still
    /// land before the fence. Other failures back off for half a retry
    /// period (holder, release) or a retry period (follower), jittered.
    fn after_failure(&mut self, now: Instant, purpose: Purpose, timed_out: bool) {
        if timed_out && self.leading {
            self.next_at = now;
            return;
        }
        let base = if purpose == Purpose::Renew || self.leading || self.shutting_down {
            self.timings.retry_period() / 2
        } else {
            self.timings.retry_period()
        };
        self.next_at = now + self.jitter(base);
    }

    fn on_watch(&mut self, now: Instant, ev: WatchEvent) {
        let v = match ev {
            WatchEvent::Changed(v) => Some(v),
            WatchEvent::Deleted => None,
        };
        if self.leading {
            let ours = v
                .as_ref()
                .is_some_and(|v| v.record.holder_identity == self.identity);
            // Our own writes echo back; anything else may be stale or real:
            // confirm with a read before giving up the VIP.
            if !ours {
                self.reread = true;
                self.next_at = now;
            }
            return;
        }
        if self.in_flight.is_none() {
            self.observe(now, v);
            self.schedule_after_observation(now);
        } else {
            // Look again right after the in-flight answer.
            self.watched_in_flight = true;
        }
    }

    fn observe(&mut self, now: Instant, v: Option<Versioned>) {
        let new = match v {
            Some(v) => Observed::Present(v),
            None => Observed::Absent,
        };
        // client-go: observedTime moves only when the record changes.
        if new != self.observed {
            self.observed = new;
            self.observed_at = now;
        }
    }

    fn holder_is_us(&self) -> bool {
        matches!(&self.observed, Observed::Present(v) if v.record.holder_identity == self.identity)
    }

    /// When a foreign holder's lease runs out on our clock.
    fn expiry(&self) -> Option<Instant> {
        match &self.observed {
            Observed::Present(v) if !v.record.holder_identity.is_empty() => {
                // Honour the longer of our duration and the writer's, so a
                // kube-vip with longer timings sharing the lease is safe.
                let theirs = Duration::from_secs(u64::from(v.record.lease_duration_seconds));
                Some(self.observed_at + self.timings.lease_duration().max(theirs))
            }
            _ => None,
        }
    }

    fn may_campaign(&self) -> bool {
        self.eligible && !self.shutting_down
    }

    /// True when the record as observed lets us write ourselves in now.
    fn can_acquire(&self, now: Instant) -> bool {
        if !self.may_campaign() {
            return false;
        }
        match &self.observed {
            Observed::Unknown => false,
            Observed::Absent => true,
            Observed::Present(v) => {
                v.record.holder_identity.is_empty()
                    || v.record.holder_identity == self.identity
                    || self.expiry().is_some_and(|e| now >= e)
            }
        }
    }

    fn schedule_after_observation(&mut self, now: Instant) {
        let act_now = self.leading
            || self.shutting_down
            || self.can_acquire(now)
            || (!self.eligible && self.holder_is_us());
        if act_now {
            self.next_at = now;
        } else if !self.eligible {
            self.next_at = now + self.jitter(self.timings.retry_period());
        } else {
            let poll = now + self.jitter(self.timings.retry_period());
            self.next_at = match self.expiry() {
                Some(e) if e > now => poll.min(e),
                _ => poll,
            };
        }
    }

    fn fence(&mut self, reason: FenceReason, out: &mut Vec<Action>) {
        if self.leading {
            self.leading = false;
            self.last_renewal = None;
            out.push(Action::Fence(reason));
        }
    }

    fn step(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.leading && now >= self.fence_at {
            self.fence(FenceReason::RenewDeadline, out);
            // Keep trying: the next successful write makes us leader again.
            self.next_at = self.next_at.min(now);
        }
        if let Some(f) = &self.in_flight {
            if now < f.deadline {
                return;
            }
            // The core enforces the deadline itself (R6), whatever the
            // driver does; a late answer is ignored by id.
            let purpose = f.purpose;
            self.in_flight = None;
            self.after_failure(now, purpose, true);
            self.reread = true;
        }
        if now < self.next_at {
            return;
        }
        let releasing = (self.shutting_down || !self.eligible) && self.holder_is_us();
        if self.shutting_down && !releasing && self.observed != Observed::Unknown && !self.reread {
            self.stopped = true;
            out.push(Action::Stopped);
            return;
        }
        let (purpose, op) = if self.reread || self.observed == Observed::Unknown {
            (Purpose::Read, Op::Get)
        } else if releasing {
            (Purpose::Release, self.release_op())
        } else if self.leading {
            match self.write_op(false) {
                Some(op) => (Purpose::Renew, op),
                None => (Purpose::Read, Op::Get),
            }
        } else if self.can_acquire(now) {
            match self.write_op(true) {
                Some(op) => (Purpose::Acquire, op),
                None => (Purpose::Read, Op::Get),
            }
        } else {
            // Waiting for a foreign lease to run out, or ineligible: keep an
            // eye on the record.
            (Purpose::Read, Op::Get)
        };
        // R6: no request outlives the renew deadline, and none may eat the
        // whole of it either: a request stuck on a dead connection gives up
        // after half the renew deadline (at least one retry period), so the
        // driver can re-dial and the holder still renews before its fence.
        let per_request = self
            .timings
            .retry_period()
            .max(self.timings.renew_deadline() / 2);
        let deadline = if self.leading {
            self.fence_at.min(now + per_request)
        } else {
            now + per_request
        };
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.in_flight = Some(InFlight {
            id,
            purpose,
            sent_at: now,
            deadline,
        });
        out.push(Action::Request { id, op, deadline });
    }

    /// The write that makes (or keeps) us the holder, client-go style:
    /// `acquireTime` and `leaseTransitions` change only when the holder does.
    fn write_op(&self, acquiring: bool) -> Option<Op> {
        let lease_duration_seconds = self.timings.lease_duration_seconds();
        match &self.observed {
            Observed::Absent if acquiring => Some(Op::Create {
                record: LeaseRecord {
                    holder_identity: self.identity.clone(),
                    lease_duration_seconds,
                    acquire_time: None,
                    renew_time: None,
                    lease_transitions: 0,
                },
                stamp: Stamp::AcquireAndRenew,
            }),
            Observed::Present(v) => {
                let ours = v.record.holder_identity == self.identity;
                let (acquire_time, transitions, stamp) = if ours {
                    (
                        v.record.acquire_time,
                        v.record.lease_transitions,
                        Stamp::Renew,
                    )
                } else {
                    (
                        None,
                        v.record.lease_transitions.saturating_add(1),
                        Stamp::AcquireAndRenew,
                    )
                };
                Some(Op::Update {
                    record: LeaseRecord {
                        holder_identity: self.identity.clone(),
                        lease_duration_seconds,
                        acquire_time,
                        renew_time: v.record.renew_time,
                        lease_transitions: transitions,
                    },
                    version: v.version.clone(),
                    stamp,
                })
            }
            _ => None,
        }
    }

    /// client-go's release: empty holder, `leaseDurationSeconds: 1`, times
    /// set to now, transitions kept.
    fn release_op(&self) -> Op {
        match &self.observed {
            Observed::Present(v) => Op::Update {
                record: LeaseRecord {
                    holder_identity: String::new(),
                    lease_duration_seconds: 1,
                    acquire_time: None,
                    renew_time: None,
                    lease_transitions: v.record.lease_transitions,
                },
                version: v.version.clone(),
                stamp: Stamp::AcquireAndRenew,
            },
            _ => Op::Get,
        }
    }

    /// `d` stretched by a random factor in [1.0, 1.2): peers polling on the
    /// same period drift apart instead of colliding (client-go jitters its
    /// acquire loop the same way).
    fn jitter(&mut self, d: Duration) -> Duration {
        // xorshift64*: tiny, deterministic, good enough for jitter.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        #[allow(clippy::cast_precision_loss)]
        let frac = (r as f64) / ((1u64 << 53) as f64);
        d.mul_f64(1.0 + 0.2 * frac)
    }
}

#[cfg(test)]
mod tests;
