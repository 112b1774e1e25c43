//! The packets-per-second cap of one interface: a sans-IO token bucket and
//! the [`Scheduler`] that decides which due announcement goes out now.
//!
//! Why a cap: a node taking over 1,000 addresses at once (Services mode,
//! a node death) would otherwise put 2,000 gratuitous ARP frames on the
//! segment in one instant, and again 1.2 s and 2.4 s later. Broadcast
//! storms like that are dropped by switch storm control and by the
//! neighbours' own ARP input queues (Linux `unres_qlen`/`proxy_qlen`,
//! default ~100 frames), so flooding would lose exactly the announcements
//! it meant to deliver.
//!
//! How deferral works (no send is ever lost): a pacer whose send is held
//! back by the cap is simply **not polled** until the budget has room for
//! it. [`Pacer::peek`] says what is due; only the sends the bucket admits
//! are [`Pacer::poll`]ed, at the instant they really go out, so each
//! pacer's spacing floor ([`crate::pacing::MIN_SPACING`]) still holds on
//! the wire and a late send is followed by the rest of its schedule, later.
//! Nothing is queued outside the pacers, so [`Scheduler::stop`] drops a
//! stopped address's deferred sends by removing its pacer.
//!
//! Order among the sends that are due (strict priority, the first one that
//! does not fit stops the pass so a small IPv6 frame cannot jump a larger
//! IPv4 pair of higher rank):
//! 1. first-wave sends before second-wave sends before refresh sends;
//! 2. within a wave, earlier sends of a burst first: every address's
//!    *initial* announcement goes before any address's first-wave repeat,
//!    which is what makes "first announcement promptly" hold when a second
//!    batch is triggered while the first batch is still being announced;
//! 3. then the oldest trigger first, then the earliest deadline, then the
//!    address (for determinism).
//!
//! Under sustained overload (more new triggers per second than the cap can
//! carry) later waves and refreshes wait; first announcements never do.

use crate::pacing::{Due, Pacer, Reason, Wave};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;
use tokio::time::Instant;

/// Default cap in frames per second per interface. An IPv4 address costs
/// two frames per announcement (gratuitous ARP request + reply), an IPv6
/// address one, so at 1,000 frames/s a node taking over 1,000 IPv4
/// addresses gets every address's first announcement out in about 2 s,
/// while the segment sees at most ~1,000 small broadcasts per second:
/// far below any switch's storm-control threshold on a 1 Gb/s link
/// (64-byte frames: ~0.05 % of line rate) and within what a Linux
/// neighbour's ARP input path absorbs without drops.
pub const DEFAULT_MAX_PPS: u32 = 1000;

/// The bucket holds this fraction of a second's worth of frames (1/50 =
/// 20 ms): large enough that the serve loop wakes ~50 times per second
/// under backlog (see [`Scheduler::next_wake`]) rather than once per frame
/// (tokio timers have 1 ms resolution anyway), small enough that the cap
/// holds over short windows too: at most `cap + cap/50` frames in any 1 s.
const BURST_DIVISOR: u32 = 50;

/// The most frames one announcement needs (IPv4: request + reply). The
/// bucket always holds at least this many, so every send can eventually go.
pub const MAX_FRAMES_PER_SEND: u32 = 2;

/// Bucket level unit: one frame is `NANOS_PER_SEC` units, so a refill of
/// `rate` frames/s adds exactly `rate` units per elapsed nanosecond and all
/// arithmetic is exact integers.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Frames one announcement of `vip` puts on the wire.
pub fn frames_per_send(vip: IpAddr) -> u32 {
    match vip {
        IpAddr::V4(_) => 2,
        IpAddr::V6(_) => 1,
    }
}

/// A token bucket of frames: `rate` frames per second, holding at most
/// [`TokenBucket::capacity`] frames. Over any window of length `T` it lets
/// out at most `capacity + rate × T` frames.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: NonZeroU32,
    /// In units of 1/`NANOS_PER_SEC` frame.
    capacity: u128,
    level: u128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`: `rate` frames per second, capacity
    /// `max(rate / 50, 2)` frames (20 ms worth, at least one IPv4
    /// announcement).
    pub fn new(rate: NonZeroU32, now: Instant) -> Self {
        let frames = (rate.get() / BURST_DIVISOR).max(MAX_FRAMES_PER_SEND);
        let capacity = u128::from(frames) * NANOS_PER_SEC;
        TokenBucket {
            rate,
            capacity,
            level: capacity,
            last: now,
        }
    }

    /// The refill rate in frames per second.
    pub fn rate(&self) -> u32 {
        self.rate.get()
    }

    /// The most frames the bucket holds (the burst allowance).
    pub fn capacity(&self) -> u32 {
        u32::try_from(self.capacity / NANOS_PER_SEC).unwrap_or(u32::MAX)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let add = elapsed.saturating_mul(u128::from(self.rate.get()));
        self.level = self.level.saturating_add(add).min(self.capacity);
        // A `now` earlier than `last` (a caller's stale instant) adds
        // nothing and does not move `last` back.
        self.last = self.last.max(now);
    }

    /// Takes `frames` tokens if the bucket has them at `now`.
    pub fn try_take(&mut self, now: Instant, frames: u32) -> bool {
        self.refill(now);
        let need = u128::from(frames) * NANOS_PER_SEC;
        if self.level >= need {
            self.level -= need;
            true
        } else {
            false
        }
    }

    /// The earliest instant at which `frames` tokens are available (`now`
    /// if they already are). Exact: at the returned instant
    /// [`TokenBucket::try_take`] succeeds, so a caller sleeping until it
    /// never spins.
    pub fn ready_at(&mut self, now: Instant, frames: u32) -> Instant {
        self.refill(now);
        let need = (u128::from(frames) * NANOS_PER_SEC).min(self.capacity);
        let missing = need.saturating_sub(self.level);
        if missing == 0 {
            return now;
        }
        let rate = u128::from(self.rate.get());
        let nanos = missing.div_ceil(rate);
        self.last + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Ordering key of a due send; smaller goes first (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    wave: u8,
    index: usize,
    triggered: Instant,
    deadline: Instant,
    vip: IpAddr,
}

fn wave_class(w: Wave) -> u8 {
    match w {
        Wave::First => 0,
        Wave::Second => 1,
        Wave::Refresh => 2,
    }
}

/// Every VIP's [`Pacer`] of one interface plus the frames-per-second cap.
/// Sans-IO: the caller passes `now`, sends what [`Scheduler::poll`]
/// returns, and sleeps until [`Scheduler::next_wake`].
#[derive(Debug)]
pub struct Scheduler {
    pacers: HashMap<IpAddr, Pacer>,
    refresh: Duration,
    /// `None`: no cap (max_pps = 0).
    bucket: Option<TokenBucket>,
    /// VIPs whose due send was held back by the last [`Scheduler::poll`].
    held: HashSet<IpAddr>,
    held_frames: u64,
    deferred_total: u64,
}

impl Scheduler {
    /// No VIP yet; `refresh` as for [`Pacer::new`]; `max_pps` frames per
    /// second, 0 = unlimited.
    pub fn new(refresh: Duration, max_pps: u32, now: Instant) -> Self {
        Scheduler {
            pacers: HashMap::new(),
            refresh,
            bucket: NonZeroU32::new(max_pps).map(|r| TokenBucket::new(r, now)),
            held: HashSet::new(),
            held_frames: 0,
            deferred_total: 0,
        }
    }

    /// We hold `vip` (now or again): start or restart its burst
    /// ([`Pacer::trigger`]).
    pub fn trigger(&mut self, vip: IpAddr, now: Instant, reason: Reason) {
        let refresh = self.refresh;
        self.pacers
            .entry(vip)
            .or_insert_with(|| Pacer::new(refresh))
            .trigger(now, reason);
    }

    /// We no longer hold `vip`: forget it, including any send the cap was
    /// holding back.
    pub fn stop(&mut self, vip: IpAddr) {
        self.pacers.remove(&vip);
        if self.held.remove(&vip) {
            self.held_frames = self
                .held_frames
                .saturating_sub(u64::from(frames_per_send(vip)));
        }
    }

    /// True while we hold `vip` (between trigger and stop), also while its
    /// sends are deferred: duplicate detection (R5) does not depend on the
    /// cap.
    pub fn holds(&self, vip: IpAddr) -> bool {
        self.pacers.get(&vip).is_some_and(Pacer::is_active)
    }

    /// New periodic refresh interval for every VIP; zero disables it.
    pub fn set_refresh(&mut self, refresh: Duration) {
        self.refresh = refresh;
        for p in self.pacers.values_mut() {
            p.set_refresh(refresh);
        }
    }

    /// New cap (0 = unlimited). The new bucket starts full: at most one
    /// extra burst allowance ([`TokenBucket::capacity`]) on a change.
    pub fn set_max_pps(&mut self, max_pps: u32, now: Instant) {
        self.bucket = NonZeroU32::new(max_pps).map(|r| TokenBucket::new(r, now));
    }

    /// The cap in frames per second, 0 = unlimited.
    pub fn max_pps(&self) -> u32 {
        self.bucket.as_ref().map_or(0, TokenBucket::rate)
    }

    /// Frames that were due but held back by the cap at the last
    /// [`Scheduler::poll`] (a gauge).
    pub fn held_back_frames(&self) -> u64 {
        self.held_frames
    }

    /// Frames held back by the cap since creation, each send counted once
    /// however long it waited (a counter).
    pub fn deferred_frames_total(&self) -> u64 {
        self.deferred_total
    }

    fn rank(&self, vip: IpAddr, p: &Pacer, due: Due) -> Option<Rank> {
        let (triggered, index) = p.position()?;
        Some(Rank {
            wave: wave_class(due.wave),
            index,
            triggered,
            deadline: p.next_deadline()?,
            vip,
        })
    }

    /// The sends to make now, in order, each already recorded in its pacer
    /// as sent at `now` and paid for in the bucket. At most one per VIP.
    pub fn poll(&mut self, now: Instant) -> Vec<(IpAddr, Due)> {
        let mut due: Vec<(Rank, Due)> = self
            .pacers
            .iter()
            .filter_map(|(vip, p)| {
                let d = p.peek(now)?;
                Some((self.rank(*vip, p, d)?, d))
            })
            .collect();
        let mut out = Vec::with_capacity(due.len());
        let mut held = HashSet::new();
        let mut held_frames = 0u64;
        if let Some(bucket) = self.bucket.as_mut() {
            due.sort_unstable_by_key(|(r, _)| *r);
            let mut open = true;
            for (rank, d) in due {
                let frames = frames_per_send(rank.vip);
                if open && bucket.try_take(now, frames) {
                    out.push((rank.vip, d));
                } else {
                    open = false;
                    held_frames += u64::from(frames);
                    if !self.held.contains(&rank.vip) {
                        self.deferred_total += u64::from(frames);
                    }
                    held.insert(rank.vip);
                }
            }
        } else {
            out.extend(due.into_iter().map(|(r, d)| (r.vip, d)));
        }
        self.held = held;
        self.held_frames = held_frames;
        for (vip, _) in &out {
            if let Some(p) = self.pacers.get_mut(vip) {
                p.poll(now);
            }
        }
        out
    }

    /// When [`Scheduler::poll`] next has something to send: the earliest
    /// pacer deadline or, when sends are already due but held back, the
    /// instant the bucket holds enough for all of them, capped at a full
    /// bucket. Waiting for a full bucket rather than for the next single
    /// send keeps wake-ups to ~50 per second under backlog; it costs no
    /// throughput (the bucket is drained in one pass) and no promptness for
    /// new addresses (a trigger wakes the caller, whose next poll spends
    /// whatever tokens have accrued on the new first announcement).
    /// `None` when nothing is scheduled. After a `poll(now)` the result is
    /// later than `now` (no busy loop) unless a trigger came in between.
    pub fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        let earliest = self
            .pacers
            .values()
            .filter_map(Pacer::next_deadline)
            .min()?;
        if earliest > now {
            return Some(earliest);
        }
        let Some(bucket) = self.bucket.as_mut() else {
            return Some(earliest);
        };
        let want: u32 = self
            .pacers
            .iter()
            .filter(|(_, p)| p.peek(now).is_some())
            .map(|(vip, _)| frames_per_send(*vip))
            .fold(0u32, u32::saturating_add);
        // ready_at caps `want` at the capacity, which is at least the
        // frames of any single send.
        Some(bucket.ready_at(now, want))
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
