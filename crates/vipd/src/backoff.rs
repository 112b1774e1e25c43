//! Capped, jittered back-off and a seed source for the daemon's loops (R2).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static STATE: AtomicU64 = AtomicU64::new(0);

/// A pseudo-random u64 (xorshift64*), seeded from the pid and the address of
/// a stack variable. Only for jitter and elector seeds: nothing secret.
pub fn next_u64() -> u64 {
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        let local = 0u8;
        x = (u64::from(std::process::id()) << 32)
            ^ (&local as *const u8 as u64)
            ^ 0x9e37_79b9_7f4a_7c15;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// `d` scaled by a random factor in [0.8, 1.2).
pub fn jittered(d: Duration) -> Duration {
    #[allow(clippy::cast_precision_loss)]
    let frac = (next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(0.8 + 0.4 * frac)
}

/// Exponential back-off between `min` and `max`, with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cur: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, cur: min }
    }

    /// The next delay (jittered), growing the base.
    pub fn next_delay(&mut self) -> Duration {
        let d = jittered(self.cur);
        self.cur = (self.cur * 2).min(self.max);
        d
    }

    /// Back to the minimum after a success.
    pub fn reset(&mut self) {
        self.cur = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        for (d, base) in delays.iter().zip([100u64, 200, 400, 800, 800, 800]) {
            let base = Duration::from_millis(base);
            assert!(
                *d >= base.mul_f64(0.8) && *d < base.mul_f64(1.2),
                "{d:?} vs {base:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() < Duration::from_millis(120));
    }
}
