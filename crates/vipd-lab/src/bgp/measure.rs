//! Pure measurements of a BGP run: the router's route history (what a
//! poller saw in the router's kernel table, one entry per change) and the
//! client's probe samples go in; times come out. No I/O, no clock: tested
//! on synthetic histories.

use netlab::probe::Sample;
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

/// One observed state of the router's next hops for the VIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSample {
    /// When the poll that saw this state started, on the lab clock.
    pub t: Duration,
    /// The next hops (sorted, deduplicated); empty: no route.
    pub hops: Vec<IpAddr>,
}

/// The router's route history: the first state, then one entry per change,
/// with how often and how regularly it was polled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteLog {
    /// State changes in time order (the first entry is the first poll).
    pub changes: Vec<RouteSample>,
    /// Polls made.
    pub polls: u64,
    /// Longest time between the starts of two consecutive polls: the worst
    /// timing resolution of every route time measured from this log.
    pub max_poll_interval: Duration,
    /// Time span of the polls (first start to last start).
    pub span: Duration,
}

impl RouteLog {
    /// Records one poll at `t` that saw `hops` (sorted here).
    pub fn record(&mut self, t: Duration, mut hops: Vec<IpAddr>) {
        hops.sort();
        hops.dedup();
        if let Some(first) = self.changes.first() {
            let prev = first.t + self.span;
            self.max_poll_interval = self.max_poll_interval.max(t.saturating_sub(prev));
            self.span = t.saturating_sub(first.t);
        }
        self.polls += 1;
        if self.changes.last().map(|c| &c.hops) != Some(&hops) {
            self.changes.push(RouteSample { t, hops });
        }
    }

    /// The hops in force at `t` (the last change at or before it; empty
    /// before the first poll).
    pub fn at(&self, t: Duration) -> &[IpAddr] {
        self.changes
            .iter()
            .rev()
            .find(|c| c.t <= t)
            .map(|c| c.hops.as_slice())
            .unwrap_or(&[])
    }

    /// The latest state seen.
    pub fn current(&self) -> &[IpAddr] {
        self.changes
            .last()
            .map(|c| c.hops.as_slice())
            .unwrap_or(&[])
    }

    /// Mean time between poll starts (`None` before two polls).
    pub fn mean_poll_interval(&self) -> Option<Duration> {
        let n = u32::try_from(self.polls.checked_sub(1)?).ok()?;
        (n > 0).then(|| self.span / n)
    }
}

/// Time from `from` until `hop` was first seen gone (zero when it was
/// already gone at `from`); `None` when it never went.
pub fn gone_after(log: &RouteLog, hop: IpAddr, from: Duration) -> Option<Duration> {
    if !log.at(from).contains(&hop) && log.changes.iter().any(|c| c.t <= from) {
        return Some(Duration::ZERO);
    }
    log.changes
        .iter()
        .find(|c| c.t > from && !c.hops.contains(&hop))
        .map(|c| c.t - from)
}

/// Time from `from` until the hops were first exactly `want` (sorted);
/// zero when they already were; `None` when never.
pub fn all_back_after(log: &RouteLog, want: &[IpAddr], from: Duration) -> Option<Duration> {
    let mut want = want.to_vec();
    want.sort();
    want.dedup();
    if log.at(from) == want.as_slice() && log.changes.iter().any(|c| c.t <= from) {
        return Some(Duration::ZERO);
    }
    log.changes
        .iter()
        .find(|c| c.t > from && c.hops == want)
        .map(|c| c.t - from)
}

/// Time from `from` until the hops first differed from what they were at
/// `from`; `None` when they never changed.
pub fn first_change_after(log: &RouteLog, from: Duration) -> Option<Duration> {
    let before = log.at(from);
    log.changes
        .iter()
        .find(|c| c.t > from && c.hops != before)
        .map(|c| c.t - from)
}

/// Hops the router has that no announcing node explains: stale routes.
pub fn stale(hops: &[IpAddr], announcing: &[IpAddr]) -> Vec<IpAddr> {
    hops.iter()
        .filter(|h| !announcing.contains(h))
        .copied()
        .collect()
}

/// What the client saw in `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientView {
    /// Longest time without a successful answer (between successful
    /// attempt starts; resolution one probe interval).
    pub gap: Duration,
    /// Longest run of consecutive failed attempts.
    pub longest_failed_run: usize,
    /// Failed attempts.
    pub failed: usize,
    /// Attempts.
    pub probes: usize,
}

/// The client's view of `window` from its probe samples (sorted by start).
pub fn client_view(samples: &[Sample], window: Range<Duration>) -> ClientView {
    let inside: Vec<&Sample> = samples.iter().filter(|s| window.contains(&s.t)).collect();
    let mut run = 0;
    let mut longest = 0;
    let mut failed = 0;
    for s in &inside {
        if s.served_by.is_none() {
            failed += 1;
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    ClientView {
        gap: netlab::probe::longest_gap(samples, window),
        longest_failed_run: longest,
        failed,
        probes: inside.len(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Polls every 10 ms from 0 to `end`, hops given by `f(t_ms)`.
    fn log_of(end: u64, f: impl Fn(u64) -> Vec<&'static str>) -> RouteLog {
        let mut log = RouteLog::default();
        for t in (0..=end).step_by(10) {
            log.record(ms(t), f(t).into_iter().map(ip).collect());
        }
        log
    }

    #[test]
    fn a_withdrawn_path_is_timed_from_the_fault_to_the_first_poll_without_it() {
        let log = log_of(2000, |t| {
            if (500..1300).contains(&t) {
                vec!["192.0.2.12"]
            } else {
                vec!["192.0.2.12", "192.0.2.11"]
            }
        });
        assert_eq!(log.changes.len(), 3);
        assert_eq!(log.polls, 201);
        assert_eq!(log.max_poll_interval, ms(10));
        assert_eq!(log.mean_poll_interval(), Some(ms(10)));
        let n1 = ip("192.0.2.11");
        assert_eq!(gone_after(&log, n1, ms(205)), Some(ms(295)));
        // Already gone at the fault: zero, not the next change.
        assert_eq!(gone_after(&log, n1, ms(600)), Some(Duration::ZERO));
        let both = [ip("192.0.2.11"), ip("192.0.2.12")];
        assert_eq!(all_back_after(&log, &both, ms(1000)), Some(ms(300)));
        assert_eq!(all_back_after(&log, &both, ms(100)), Some(Duration::ZERO));
        assert_eq!(first_change_after(&log, ms(0)), Some(ms(500)));
        assert_eq!(first_change_after(&log, ms(1500)), None);
    }

    #[test]
    fn a_path_that_never_goes_or_never_returns_is_none() {
        let log = log_of(1000, |t| if t < 400 { vec!["192.0.2.11"] } else { vec![] });
        assert_eq!(
            gone_after(&log, ip("192.0.2.12"), ms(0)),
            Some(Duration::ZERO)
        );
        assert_eq!(gone_after(&log, ip("192.0.2.11"), ms(0)), Some(ms(400)));
        assert_eq!(all_back_after(&log, &[ip("192.0.2.11")], ms(500)), None);
        assert!(log.current().is_empty());
        // Before any poll nothing is known: not "already gone".
        let empty = RouteLog::default();
        assert_eq!(gone_after(&empty, ip("192.0.2.11"), ms(0)), None);
    }

    #[test]
    fn poll_irregularity_is_the_resolution() {
        let mut log = RouteLog::default();
        for t in [0, 10, 20, 75, 85] {
            log.record(ms(t), vec![]);
        }
        assert_eq!(log.max_poll_interval, ms(55));
        assert_eq!(log.changes.len(), 1);
    }

    #[test]
    fn stale_routes_are_hops_no_announcing_node_explains() {
        let hops = [ip("192.0.2.11"), ip("192.0.2.12")];
        assert_eq!(stale(&hops, &[ip("192.0.2.12")]), vec![ip("192.0.2.11")]);
        assert!(stale(&hops, &hops).is_empty());
    }

    #[test]
    fn client_view_counts_the_longest_failed_run_and_the_gap() {
        // 10 ms probes; every third fails from 100 to 400 ms (one of three
        // paths dead); 5 in a row fail at 600-640 ms.
        let samples: Vec<Sample> = (0..100u64)
            .map(|i| {
                let t = i * 10;
                let fail = ((100..400).contains(&t) && i % 3 == 0) || (600..650).contains(&t);
                Sample {
                    t: ms(t),
                    served_by: (!fail).then(|| "n1".to_string()),
                }
            })
            .collect();
        let v = client_view(&samples, ms(0)..ms(1000));
        assert_eq!(v.probes, 100);
        assert_eq!(v.failed, 10 + 5);
        assert_eq!(v.longest_failed_run, 5);
        assert_eq!(v.gap, ms(60));
    }
}
