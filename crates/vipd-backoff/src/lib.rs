//! Capped, jittered exponential back-off: every vipd loop retries forever
//! (SPEC R2), and never in lock-step with its peers or its neighbours on the
//! same host.
//!
//! No clock is read here: callers sleep with tokio's (pausable) timer.

#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential back-off from `min` to `max` with "equal jitter": each delay
/// is drawn uniformly from `[d/2, d]` where `d` doubles per failure up to
/// `max`, so retries of many nodes spread out but never exceed the cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    /// Starts at `min`; `max` is raised to `min` if smaller.
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(min);
        Self { min, max, cur: min }
    }

    /// The delay before the next attempt; grows the base for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.cur;
        self.cur = (self.cur * 2).min(self.max);
        let half = d / 2;
        let span = u64::try_from((d - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(random_u64() % span.saturating_add(1))
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

/// A random number without a dependency: std seeds every `RandomState` with
/// fresh per-process randomness and bumps it per instance. For jitter and
/// seeds only; nothing secret.
pub fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_jitter_bounds() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(min, max);
        let mut base = min;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} outside [{:?}, {base:?}]",
                base / 2
            );
            base = (base * 2).min(max);
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn random_numbers_differ() {
        let a: Vec<u64> = (0..8).map(|_| random_u64()).collect();
        let mut b = a.clone();
        b.dedup();
        assert_eq!(a.len(), b.len());
    }
}
