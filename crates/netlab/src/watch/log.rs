//! The holding log: intervals during which each host held one address, and
//! the exact time two or more hosts held it at once. Pure: fed by
//! [`super::state`], read by the watchers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

/// One period during which a host held the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// The host's name.
    pub host: String,
    /// When it started holding.
    pub from: Duration,
    /// When it stopped; `None` while it still holds.
    pub to: Option<Duration>,
}

/// A host starting or stopping to hold the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// When it was observed.
    pub t: Duration,
    /// The host's name.
    pub host: String,
    /// `true`: started holding; `false`: stopped.
    pub holding: bool,
}

/// Holding intervals of several hosts; pure, fed by [`HoldingLog::observe`].
#[derive(Debug, Clone, Default)]
pub struct HoldingLog {
    closed: Vec<Interval>,
    open: BTreeMap<String, Duration>,
    transitions: Vec<Transition>,
}

impl HoldingLog {
    /// An empty log (nobody holds).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that at `t` host `host` holds (or not). Repeating the current
    /// state is a no-op, so callers may report state rather than changes.
    pub fn observe(&mut self, t: Duration, host: &str, holding: bool) {
        match (self.open.get(host).copied(), holding) {
            (None, true) => {
                self.open.insert(host.to_string(), t);
            }
            (Some(from), false) => {
                self.open.remove(host);
                self.closed.push(Interval {
                    host: host.to_string(),
                    from,
                    to: Some(t.max(from)),
                });
            }
            _ => return,
        }
        self.transitions.push(Transition {
            t,
            host: host.to_string(),
            holding,
        });
    }

    /// Every interval, closed ones first then those still open.
    pub fn intervals(&self) -> Vec<Interval> {
        let mut v = self.closed.clone();
        v.extend(self.open.iter().map(|(h, f)| Interval {
            host: h.clone(),
            from: *f,
            to: None,
        }));
        v
    }

    /// Every change, in observation order.
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// Hosts holding now (at the last observation), sorted by name.
    pub fn holders_at_end(&self) -> Vec<String> {
        self.open.keys().cloned().collect()
    }

    /// Hosts holding at instant `t` (an interval covers `[from, to)`).
    pub fn holders_at(&self, t: Duration) -> Vec<String> {
        let mut v: Vec<String> = self
            .intervals()
            .into_iter()
            .filter(|i| i.from <= t && i.to.is_none_or(|to| t < to))
            .map(|i| i.host)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Total time inside `window` during which two or more hosts held the
    /// address. Intervals are half-open, so one ending exactly when another
    /// starts does not overlap it; open intervals run to the window's end.
    pub fn two_holder_time(&self, window: Range<Duration>) -> Duration {
        // Sweep line over the clipped interval ends: at equal instants the
        // ends (-1) sort before the starts (+1), which makes touching
        // intervals count as disjoint.
        let mut edges: Vec<(Duration, i32)> = Vec::new();
        for i in self.intervals() {
            let from = i.from.max(window.start);
            let to = i.to.unwrap_or(window.end).min(window.end);
            if from < to {
                edges.push((from, 1));
                edges.push((to, -1));
            }
        }
        edges.sort();
        let (mut count, mut last, mut total) = (0i32, window.start, Duration::ZERO);
        for (t, d) in edges {
            if count >= 2 {
                total += t - last;
            }
            count += d;
            last = t;
        }
        total
    }

    /// Most hosts holding at once inside `window`.
    pub fn max_holders(&self, window: Range<Duration>) -> usize {
        let mut edges: Vec<(Duration, i32)> = Vec::new();
        for i in self.intervals() {
            let from = i.from.max(window.start);
            let to = i.to.unwrap_or(window.end).min(window.end);
            if from < to {
                edges.push((from, 1));
                edges.push((to, -1));
            }
        }
        edges.sort();
        let (mut count, mut max) = (0i32, 0i32);
        for (_, d) in edges {
            count += d;
            max = max.max(count);
        }
        usize::try_from(max).unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn log(events: &[(u64, &str, bool)]) -> HoldingLog {
        let mut l = HoldingLog::new();
        for (t, h, on) in events {
            l.observe(ms(*t), h, *on);
        }
        l
    }

    #[test]
    fn overlapping_holders_count_exactly_their_overlap() {
        let l = log(&[
            (100, "n1", true),
            (300, "n2", true),
            (450, "n1", false),
            (900, "n2", false),
        ]);
        assert_eq!(l.two_holder_time(ms(0)..ms(1000)), ms(150));
        assert_eq!(l.max_holders(ms(0)..ms(1000)), 2);
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        let l = log(&[(100, "n1", true), (300, "n1", false), (300, "n2", true)]);
        assert_eq!(l.two_holder_time(ms(0)..ms(1000)), Duration::ZERO);
        assert_eq!(l.max_holders(ms(0)..ms(1000)), 1);
    }

    #[test]
    fn handover_with_gap_has_no_two_holder_time() {
        let l = log(&[(0, "n1", true), (500, "n1", false), (520, "n2", true)]);
        assert_eq!(l.two_holder_time(ms(0)..ms(2000)), Duration::ZERO);
        assert_eq!(l.holders_at_end(), vec!["n2".to_string()]);
        assert_eq!(l.holders_at(ms(510)), Vec::<String>::new());
        assert_eq!(l.holders_at(ms(500)), Vec::<String>::new());
        assert_eq!(l.holders_at(ms(499)), vec!["n1".to_string()]);
    }

    #[test]
    fn open_intervals_overlap_until_window_end() {
        let l = log(&[(100, "n1", true), (200, "n2", true)]);
        assert_eq!(l.two_holder_time(ms(0)..ms(700)), ms(500));
        assert_eq!(l.holders_at_end(), vec!["n1".to_string(), "n2".to_string()]);
    }

    #[test]
    fn window_clips_overlap() {
        let l = log(&[(100, "n1", true), (200, "n2", true), (600, "n2", false)]);
        assert_eq!(l.two_holder_time(ms(300)..ms(400)), ms(100));
        assert_eq!(l.two_holder_time(ms(650)..ms(900)), Duration::ZERO);
    }

    #[test]
    fn three_holders_count_once() {
        let l = log(&[
            (0, "n1", true),
            (100, "n2", true),
            (200, "n3", true),
            (300, "n1", false),
            (400, "n2", false),
        ]);
        // >= 2 holders from 100 to 400.
        assert_eq!(l.two_holder_time(ms(0)..ms(1000)), ms(300));
        assert_eq!(l.max_holders(ms(0)..ms(1000)), 3);
    }

    #[test]
    fn repeated_state_reports_are_not_transitions() {
        let l = log(&[
            (0, "n1", true),
            (50, "n1", true),
            (80, "n1", false),
            (90, "n1", false),
        ]);
        assert_eq!(l.transitions().len(), 2);
        assert_eq!(
            l.intervals(),
            vec![Interval {
                host: "n1".into(),
                from: ms(0),
                to: Some(ms(80))
            }]
        );
    }
}
