//! Measurements of one run, as pure functions of what was recorded: the
//! client's probe samples ([`Sample`]), who held the VIP ([`HoldingLog`])
//! and the claims seen on the wire ([`Claim`]).
//!
//! A run's time line (all on the lab clock):
//! ```text
//!   start ── fault (inject) ── heal ── settle … ── end
//! ```
//! - *gap during fault*: longest time without a successful probe in
//!   `[fault, heal]` ([`netlab::probe::longest_gap`]).
//! - *gap after heal*: the same over `[heal, end]`.
//! - *recover after heal*: from `heal` until the client is served without a
//!   single failure for [`SERVED_HOLD`] (1 s); `None` when that never happened.
//! - *two-holder time*: time with two or more nodes holding the VIP
//!   (address on an up interface) in `[count_from, end]`.
//! - *two-MAC time*: see [`crate::wire`].
//! - *announcements*: gratuitous ARP / unsolicited NA frames in `[fault, end]`.
//! - *leadership changes*: acquisitions in `(count_from, end]` by a node
//!   other than the previous acquirer, starting from the holder before the
//!   fault (a re-add on the same node is not a change).
//! - *end state OK*: exactly one node holds the VIP at `end` and every probe
//!   of the last [`SERVED_HOLD`] before `end` was answered by that node.

use crate::wire::{two_mac_time, Claim};
use netlab::probe::{longest_gap, served_continuously_after};
use netlab::{HoldingLog, Sample};
use std::collections::HashMap;
use std::time::Duration;

/// How long the client must be served without a failure to count as served.
pub const SERVED_HOLD: Duration = Duration::from_secs(1);
/// How late the first probe of a period may start and still cover it
/// (several probe intervals: a loaded machine delays probe threads).
pub const PROBE_SLACK: Duration = Duration::from_millis(100);
/// Window of [`crate::wire::two_mac_time`].
pub const TWO_MAC_WINDOW: Duration = Duration::from_secs(1);

/// The instants that delimit one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunWindow {
    /// Steady state reached, just before the fault.
    pub start: Duration,
    /// Fault injected.
    pub fault: Duration,
    /// Fault healed.
    pub heal: Duration,
    /// Settled (or gave up settling).
    pub end: Duration,
    /// Two-holder time, two-MAC time and leadership changes are counted
    /// from here (equals `start`, except where a scenario's own setup fences
    /// a second copy off at layer 2: stale-vip counts from the heal).
    pub count_from: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Longest client-visible gap during the fault.
    pub gap_fault: Duration,
    /// Longest client-visible gap after the heal.
    pub gap_after_heal: Duration,
    /// From heal until served continuously for [`SERVED_HOLD`].
    pub recover_after_heal: Option<Duration>,
    /// Time with two or more holders (addresses).
    pub two_holder: Duration,
    /// Time with two MACs claiming the VIP on the wire.
    pub two_mac: Duration,
    /// Gratuitous ARP / unsolicited NA frames seen.
    pub announcements: u32,
    /// Leadership changes.
    pub leadership_changes: u32,
    /// The single holder at the end, if exactly one.
    pub end_holder: Option<String>,
    /// Exactly one holder, serving the client for the last second.
    pub end_ok: bool,
}

/// Computes every metric of one run (see the module docs).
pub fn measure(
    samples: &[Sample],
    log: &HoldingLog,
    claims: &[Claim],
    node_of_mac: &HashMap<String, String>,
    holder_before: Option<&str>,
    w: &RunWindow,
) -> Metrics {
    let (end_holder, end_ok) = end_state(samples, log, w.end);
    let announcements = claims
        .iter()
        .filter(|c| c.t >= w.fault && c.t <= w.end && c.kind.is_announcement())
        .count();
    Metrics {
        gap_fault: longest_gap(samples, w.fault..w.heal),
        gap_after_heal: longest_gap(samples, w.heal..w.end),
        recover_after_heal: served_continuously_after(samples, w.heal, SERVED_HOLD, None),
        two_holder: log.two_holder_time(w.count_from..w.end),
        two_mac: two_mac_time(
            claims,
            node_of_mac,
            log,
            w.count_from..w.end,
            TWO_MAC_WINDOW,
        ),
        announcements: u32::try_from(announcements).unwrap_or(u32::MAX),
        leadership_changes: leadership_changes(log, holder_before, w.count_from, w.end),
        end_holder,
        end_ok,
    }
}

/// Acquisitions in `(from, to]` by a node other than the previous acquirer;
/// the previous acquirer at `from` is `initial` when given, else the last
/// one the log shows before `from`.
pub fn leadership_changes(
    log: &HoldingLog,
    initial: Option<&str>,
    from: Duration,
    to: Duration,
) -> u32 {
    let acquisitions = log.transitions().iter().filter(|t| t.holding && t.t <= to);
    let mut last: Option<&str> = initial;
    let mut n = 0;
    for t in acquisitions {
        if t.t <= from {
            if initial.is_none() {
                last = Some(&t.host);
            }
            continue;
        }
        if last.is_some_and(|l| l != t.host) {
            n += 1;
        }
        last = Some(&t.host);
    }
    n
}

/// The single holder at `end` and whether it served every probe of the last
/// [`SERVED_HOLD`] before `end` (at least one probe must exist there).
pub fn end_state(samples: &[Sample], log: &HoldingLog, end: Duration) -> (Option<String>, bool) {
    let holders = log.holders_at(end);
    let [holder] = holders.as_slice() else {
        return (None, false);
    };
    let from = end.saturating_sub(SERVED_HOLD);
    let mut last = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= end)
        .peekable();
    // The probes must cover the whole second, not just its end (a prober
    // that started 100 ms ago has not shown a second of service).
    let covered = last.peek().is_some_and(|s| s.t <= from + PROBE_SLACK);
    let served = covered && last.all(|s| s.served_by.as_deref() == Some(holder.as_str()));
    (Some(holder.clone()), served)
}

/// Periods during which the client was served by one node (`Some`) or
/// failed (`None`), from consecutive samples: each segment runs from its
/// first sample to the next segment's first sample (or `end`).
pub fn client_segments(
    samples: &[Sample],
    end: Duration,
) -> Vec<(Duration, Duration, Option<String>)> {
    let mut out: Vec<(Duration, Duration, Option<String>)> = Vec::new();
    for s in samples {
        match out.last_mut() {
            Some(last) if last.2 == s.served_by => last.1 = s.t,
            Some(last) => {
                last.1 = s.t;
                out.push((s.t, s.t, s.served_by.clone()));
            }
            None => out.push((s.t, s.t, s.served_by.clone())),
        }
    }
    if let Some(last) = out.last_mut() {
        last.1 = end.max(last.1);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::wire::ClaimKind;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn samples(spans: &[(u64, u64, Option<&str>)]) -> Vec<Sample> {
        spans
            .iter()
            .flat_map(|(f, t, by)| {
                (*f..*t).step_by(10).map(move |x| Sample {
                    t: ms(x),
                    served_by: by.map(str::to_string),
                })
            })
            .collect()
    }

    fn log(ev: &[(u64, &str, bool)]) -> HoldingLog {
        let mut l = HoldingLog::new();
        for (t, h, on) in ev {
            l.observe(ms(*t), h, *on);
        }
        l
    }

    /// A recorded crash failover: n1 serves, crashes at 1000 (link down, its
    /// address stays but it stops holding), n2 takes over at 4200 and
    /// announces; n1 comes back at 6000 as a follower.
    fn crash_failover() -> (Vec<Sample>, HoldingLog, Vec<Claim>, RunWindow) {
        let s = samples(&[
            (0, 1000, Some("n1")),
            (1000, 4300, None),
            (4300, 9000, Some("n2")),
        ]);
        let l = log(&[(0, "n1", true), (1000, "n1", false), (4200, "n2", true)]);
        let claims = [
            (4210, ClaimKind::GarpRequest),
            (4211, ClaimKind::GarpReply),
            (5320, ClaimKind::GarpRequest),
        ]
        .iter()
        .map(|(t, k)| Claim {
            t: ms(*t),
            mac: "02:00:00:00:00:02".into(),
            kind: *k,
        })
        .collect();
        let w = RunWindow {
            start: ms(900),
            fault: ms(1000),
            heal: ms(6000),
            end: ms(8990),
            count_from: ms(900),
        };
        (s, l, claims, w)
    }

    fn macs() -> HashMap<String, String> {
        [
            ("02:00:00:00:00:01".to_string(), "n1".to_string()),
            ("02:00:00:00:00:02".to_string(), "n2".to_string()),
        ]
        .into()
    }

    #[test]
    fn crash_failover_measures_gap_changes_and_clean_end() {
        let (s, l, c, w) = crash_failover();
        let m = measure(&s, &l, &c, &macs(), Some("n1"), &w);
        assert_eq!(
            m.gap_fault,
            ms(4300 - 1000),
            "from the fault to the first answer"
        );
        assert_eq!(m.gap_after_heal, ms(10));
        assert_eq!(m.recover_after_heal, Some(Duration::ZERO));
        assert_eq!(m.two_holder, Duration::ZERO);
        assert_eq!(m.two_mac, Duration::ZERO);
        assert_eq!(m.announcements, 3);
        assert_eq!(m.leadership_changes, 1);
        assert_eq!(m.end_holder.as_deref(), Some("n2"));
        assert!(m.end_ok);
    }

    #[test]
    fn outage_lasting_past_the_heal_delays_recovery() {
        let s = samples(&[
            (0, 1000, Some("n1")),
            (1000, 3500, None),
            (3500, 6000, Some("n1")),
        ]);
        let l = log(&[(0, "n1", true)]);
        let w = RunWindow {
            start: ms(0),
            fault: ms(1000),
            heal: ms(2000),
            end: ms(5990),
            count_from: ms(0),
        };
        let m = measure(&s, &l, &[], &macs(), Some("n1"), &w);
        assert_eq!(
            m.gap_fault,
            ms(2000 - 1000),
            "no answer for the whole fault"
        );
        assert_eq!(m.gap_after_heal, ms(3500 - 2000));
        assert_eq!(m.recover_after_heal, Some(ms(1500)));
        assert_eq!(m.leadership_changes, 0);
        assert!(m.end_ok);
    }

    #[test]
    fn two_holders_at_the_end_is_not_ok() {
        let s = samples(&[(0, 3000, Some("n1"))]);
        let l = log(&[(0, "n1", true), (2000, "n2", true)]);
        let w = RunWindow {
            start: ms(0),
            fault: ms(500),
            heal: ms(1000),
            end: ms(2990),
            count_from: ms(0),
        };
        let m = measure(&s, &l, &[], &macs(), Some("n1"), &w);
        assert_eq!(m.two_holder, ms(990));
        assert_eq!(m.end_holder, None);
        assert!(!m.end_ok);
    }

    #[test]
    fn holder_not_serving_the_client_at_the_end_is_not_ok() {
        // n2 holds, but the client is still answered by nobody (stale cache).
        let s = samples(&[(0, 1000, Some("n1")), (1000, 5000, None)]);
        let l = log(&[(0, "n1", true), (1000, "n1", false), (1200, "n2", true)]);
        let (holder, ok) = end_state(&s, &l, ms(4990));
        assert_eq!(holder.as_deref(), Some("n2"));
        assert!(!ok);
        // And with no probes at all in the last second, not OK either.
        assert!(!end_state(&[], &l, ms(4990)).1);
        // Probes that cover only the end of the last second do not count.
        let late = samples(&[(4500, 5000, Some("n2"))]);
        assert!(!end_state(&late, &l, ms(4990)).1);
    }

    #[test]
    fn readd_on_the_same_node_is_not_a_leadership_change() {
        let l = log(&[
            (0, "n1", true),
            (1000, "n1", false),
            (1300, "n1", true),
            (5000, "n1", false),
            (5100, "n3", true),
        ]);
        assert_eq!(leadership_changes(&l, None, ms(500), ms(2000)), 0);
        assert_eq!(leadership_changes(&l, None, ms(500), ms(6000)), 1);
        // The first acquisition ever (no previous acquirer) is not a change.
        assert_eq!(leadership_changes(&l, None, Duration::ZERO, ms(100)), 0);
        // A known holder before the window overrides older acquisitions
        // (e.g. a planted copy on another node in an earlier run).
        let planted = log(&[
            (0, "n1", true),
            (100, "n2", true),
            (200, "n2", false),
            (1000, "n1", false),
            (1100, "n1", true),
        ]);
        assert_eq!(leadership_changes(&planted, None, ms(500), ms(2000)), 1);
        assert_eq!(
            leadership_changes(&planted, Some("n1"), ms(500), ms(2000)),
            0
        );
    }

    #[test]
    fn client_segments_follow_who_answered() {
        let s = samples(&[
            (0, 100, Some("n1")),
            (100, 200, None),
            (200, 300, Some("n2")),
        ]);
        let seg = client_segments(&s, ms(400));
        assert_eq!(
            seg,
            vec![
                (ms(0), ms(100), Some("n1".to_string())),
                (ms(100), ms(200), None),
                (ms(200), ms(400), Some("n2".to_string()))
            ]
        );
    }
}
