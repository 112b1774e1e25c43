//! When to announce a VIP: a sans-IO burst scheduler (SPEC R4).
//!
//! ```text
//! trigger                                   second wave
//!   |  1.2 s   1.2 s                          |  1.2 s
//!   S ------ S ------ S ....................  S ------ S ---- refresh ---- R ---- R ...
//!   0        1.2      2.4                     5.0      6.2
//! ```
//!
//! Why this shape:
//! - one send at once: neighbours learn the move as early as possible
//!   (kube-vip sends its first GARP up to 3 s late);
//! - repeats spaced 1.2 s, i.e. more than Linux's default ARP `locktime`
//!   (1 s): a kernel ignores a second update within `locktime` of the last
//!   one, so closer repeats could all be discarded by a neighbour that had
//!   just refreshed its entry;
//! - a second wave about 5 s later catches neighbours that lost the first
//!   wave (a switch still converging, a peer's link flapping);
//! - an optional periodic refresh (kube-vip's `vip_arpRate`) keeps switch
//!   FDB entries and neighbour caches warm.
//!
//! Every send of one VIP is at least [`MIN_SPACING`] after the previous,
//! also across re-triggers: a new trigger restarts the schedule rather than
//! overlapping a second burst on the first.
//!
//! The per-interface packets-per-second cap sits above the pacers
//! ([`crate::budget::Scheduler`]): it [`Pacer::peek`]s every pacer and calls
//! [`Pacer::poll`] only for the sends it lets out now, so the pacer records
//! the real send time and its spacing floor holds on the wire.

use std::time::Duration;
use tokio::time::Instant;

/// Minimum time between two announcements of one VIP: above Linux's 1 s
/// `locktime` (`/proc/sys/net/ipv4/neigh/*/locktime`, 100 jiffies).
pub const MIN_SPACING: Duration = Duration::from_millis(1100);

/// Offsets from the trigger of each send of a burst: wave one (3 sends,
/// 1.2 s apart), wave two (2 sends, starting 5 s after the trigger).
pub const BURST_OFFSETS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(1200),
    Duration::from_millis(2400),
    Duration::from_millis(5000),
    Duration::from_millis(6200),
];

/// Number of sends in the first wave (the rest of [`BURST_OFFSETS`] is the
/// second wave).
pub const FIRST_WAVE_SENDS: usize = 3;

/// Why an announcement burst was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// We just bound the VIP (first acquisition).
    Acquired,
    /// We bound it again after an outage or after someone removed it.
    Rebound,
    /// The interface came back up.
    LinkUp,
    /// Someone else claimed the VIP and we still hold the lease (R5).
    Duplicate,
    /// The periodic refresh (also used when the caller wants one burst).
    Refresh,
}

/// Which part of the schedule a send belongs to (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wave {
    /// The immediate wave after a trigger.
    First,
    /// The wave a few seconds later.
    Second,
    /// A periodic refresh send.
    Refresh,
}

/// One announcement that is due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The reason of the burst this send belongs to ([`Reason::Refresh`] for
    /// refresh sends).
    pub reason: Reason,
    /// The part of the schedule.
    pub wave: Wave,
}

/// The announcement schedule of one VIP.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// `None` while we do not hold the VIP (never triggered, or stopped).
    burst: Option<Burst>,
    /// Zero means no periodic refresh.
    refresh: Duration,
    last_sent: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    /// When the schedule starts (the trigger, or the spacing floor after it).
    start: Instant,
    /// When the trigger happened: the order of first waves under the cap.
    triggered: Instant,
    reason: Reason,
    /// Index into [`BURST_OFFSETS`] of the next send; past the end means the
    /// burst is done and only refreshes remain.
    next: usize,
}

impl Pacer {
    /// A pacer that is idle until [`Pacer::trigger`]. `refresh` is the
    /// periodic refresh interval (kube-vip `vip_arpRate`); zero disables it.
    pub fn new(refresh: Duration) -> Self {
        Pacer {
            burst: None,
            refresh,
            last_sent: None,
        }
    }

    /// Starts (or restarts) a burst at `now`. A burst already running is
    /// replaced, so two triggers never produce two overlapping bursts. When
    /// the last send was less than [`MIN_SPACING`] ago, the whole new
    /// schedule starts at the spacing floor instead: the send just made
    /// already told neighbours our (unchanged) MAC, and a repeat inside
    /// `locktime` could be dropped.
    pub fn trigger(&mut self, now: Instant, reason: Reason) {
        let start = match self.last_sent {
            Some(last) => now.max(last + MIN_SPACING),
            None => now,
        };
        self.burst = Some(Burst {
            start,
            triggered: now,
            reason,
            next: 0,
        });
    }

    /// We no longer hold the VIP: nothing more is sent until the next trigger.
    pub fn stop(&mut self) {
        self.burst = None;
    }

    /// True between a trigger and a stop: we hold the VIP.
    pub fn is_active(&self) -> bool {
        self.burst.is_some()
    }

    /// Changes the refresh interval (zero disables it); takes effect for the
    /// next refresh deadline.
    pub fn set_refresh(&mut self, refresh: Duration) {
        self.refresh = refresh;
    }

    /// When the next send is due, if any. Never earlier than
    /// [`MIN_SPACING`] after the previous send.
    pub fn next_deadline(&self) -> Option<Instant> {
        let burst = self.burst?;
        let planned = match BURST_OFFSETS.get(burst.next) {
            Some(offset) => burst.start + *offset,
            None if self.refresh.is_zero() => return None,
            // After the burst, refreshes follow the last send.
            None => self.last_sent.unwrap_or(burst.start) + self.refresh,
        };
        Some(match self.last_sent {
            Some(last) => planned.max(last + MIN_SPACING),
            None => planned,
        })
    }

    /// The send that [`Pacer::poll`] would return at `now`, without
    /// advancing the schedule (for a caller that must choose which VIP sends
    /// first).
    pub fn peek(&self, now: Instant) -> Option<Due> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let burst = self.burst.as_ref()?;
        Some(match burst.next {
            i if i < FIRST_WAVE_SENDS => Due {
                reason: burst.reason,
                wave: Wave::First,
            },
            i if i < BURST_OFFSETS.len() => Due {
                reason: burst.reason,
                wave: Wave::Second,
            },
            _ => Due {
                reason: Reason::Refresh,
                wave: Wave::Refresh,
            },
        })
    }

    /// Returns the send that is due at `now`, if any, and advances the
    /// schedule. Call again until it returns `None`: at most one send per
    /// call, and never two within [`MIN_SPACING`], so a late caller gets one
    /// send, not a catch-up volley. Call it when the frame really goes out:
    /// the spacing floor counts from `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Due> {
        let due = self.peek(now)?;
        if let Some(burst) = self.burst.as_mut() {
            burst.next = burst.next.saturating_add(1).min(BURST_OFFSETS.len());
        }
        self.last_sent = Some(now);
        Some(due)
    }

    /// Trigger instant and index (into [`BURST_OFFSETS`], or its length for
    /// a refresh) of the next send: the cap's ordering keys.
    pub(crate) fn position(&self) -> Option<(Instant, usize)> {
        self.burst.map(|b| (b.triggered, b.next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives the pacer from `t0` until `until`, jumping straight to each
    /// deadline, and returns (offset from t0, due) for every send.
    fn run(p: &mut Pacer, t0: Instant, until: Duration) -> Vec<(Duration, Due)> {
        let mut out = Vec::new();
        while let Some(d) = p.next_deadline() {
            if d > t0 + until {
                break;
            }
            let due = p.poll(d).expect("due at its own deadline");
            assert_eq!(p.poll(d), None, "two sends at one instant");
            out.push((d - t0, due));
        }
        out
    }

    #[test]
    fn trigger_sends_at_once_then_two_waves_without_refresh() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::ZERO);
        p.trigger(t0, Reason::Acquired);
        let sends = run(&mut p, t0, Duration::from_secs(600));
        let times: Vec<_> = sends.iter().map(|s| s.0).collect();
        assert_eq!(times, vec![ms(0), ms(1200), ms(2400), ms(5000), ms(6200)]);
        let waves: Vec<_> = sends.iter().map(|s| s.1.wave).collect();
        assert_eq!(
            waves,
            vec![
                Wave::First,
                Wave::First,
                Wave::First,
                Wave::Second,
                Wave::Second
            ]
        );
        assert!(sends.iter().all(|s| s.1.reason == Reason::Acquired));
        assert_eq!(p.next_deadline(), None, "no refresh configured: done");
        assert!(p.is_active(), "still holding the VIP");
    }

    #[test]
    fn sends_are_never_closer_than_min_spacing() {
        let t0 = Instant::now();
        let mut p = Pacer::new(ms(500)); // refresh below the floor is clamped
        p.trigger(t0, Reason::LinkUp);
        let sends = run(&mut p, t0, Duration::from_secs(30));
        assert!(sends.len() > 10);
        for w in sends.windows(2) {
            assert!(w[1].0 - w[0].0 >= MIN_SPACING, "{:?} then {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn nothing_is_due_before_its_deadline() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::ZERO);
        assert_eq!(p.poll(t0), None, "idle pacer sends nothing");
        p.trigger(t0, Reason::Acquired);
        assert!(p.poll(t0).is_some());
        assert_eq!(p.poll(t0 + ms(1199)), None);
        assert!(p.poll(t0 + ms(1200)).is_some());
    }

    #[test]
    fn late_poll_sends_once_and_keeps_spacing() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::ZERO);
        p.trigger(t0, Reason::Acquired);
        assert!(p.poll(t0).is_some());
        // The caller was stalled past both the 1.2 s and 2.4 s sends.
        let late = t0 + ms(3000);
        assert!(p.poll(late).is_some());
        assert_eq!(p.poll(late), None, "no catch-up volley");
        assert_eq!(p.next_deadline(), Some(late + MIN_SPACING));
    }

    #[test]
    fn retrigger_restarts_the_schedule_without_overlap() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::ZERO);
        p.trigger(t0, Reason::Acquired);
        assert!(p.poll(t0).is_some());
        assert!(p.poll(t0 + ms(1200)).is_some());
        // Re-trigger 1.5 s in: 0.3 s after the last send, so the new
        // schedule starts at the spacing floor (2.3 s) and reruns in full.
        let t1 = t0 + ms(1500);
        p.trigger(t1, Reason::Duplicate);
        let sends = run(&mut p, t0, Duration::from_secs(60));
        let times: Vec<_> = sends.iter().map(|s| s.0).collect();
        assert_eq!(
            times,
            vec![ms(2300), ms(3500), ms(4700), ms(7300), ms(8500)]
        );
        assert!(sends.iter().all(|s| s.1.reason == Reason::Duplicate));
    }

    #[test]
    fn retrigger_long_after_last_send_sends_at_once() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::ZERO);
        p.trigger(t0, Reason::Acquired);
        run(&mut p, t0, Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(100);
        p.trigger(t1, Reason::LinkUp);
        assert_eq!(p.next_deadline(), Some(t1));
    }

    #[test]
    fn stop_cancels_pending_sends_and_refresh() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(3));
        p.trigger(t0, Reason::Acquired);
        assert!(p.poll(t0).is_some());
        p.stop();
        assert!(!p.is_active());
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.poll(t0 + Duration::from_secs(3600)), None);
    }

    #[test]
    fn refresh_follows_the_burst_at_its_cadence() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::from_secs(3));
        p.trigger(t0, Reason::Acquired);
        let sends = run(&mut p, t0, ms(16_000));
        let refresh: Vec<_> = sends
            .iter()
            .filter(|s| s.1.wave == Wave::Refresh)
            .map(|s| (s.0, s.1.reason))
            .collect();
        assert_eq!(
            refresh,
            vec![
                (ms(9200), Reason::Refresh),
                (ms(12200), Reason::Refresh),
                (ms(15200), Reason::Refresh)
            ]
        );
    }

    #[test]
    fn set_refresh_turns_refresh_on_and_off() {
        let t0 = Instant::now();
        let mut p = Pacer::new(Duration::ZERO);
        p.trigger(t0, Reason::Acquired);
        run(&mut p, t0, Duration::from_secs(60));
        assert_eq!(p.next_deadline(), None);
        p.set_refresh(Duration::from_secs(10));
        assert_eq!(p.next_deadline(), Some(t0 + ms(16_200)));
        p.set_refresh(Duration::ZERO);
        assert_eq!(p.next_deadline(), None);
    }
}
