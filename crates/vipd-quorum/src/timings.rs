//! Quorum timings and the hold-window arithmetic of Q4 and Q5.

use std::time::Duration;

/// One million, the ppm denominator.
const PPM: u128 = 1_000_000;

/// Validated quorum timings.
///
/// * `promise` (P): how long a vote or heartbeat ack backs a holder, on the
///   voter's own clock from its receive time (Q3).
/// * `heartbeat`: how often the holder starts a heartbeat round.
/// * `election_min..=election_max`: the randomised wait before a pre-vote
///   after the last promise to a holder expired (Raft §9.6 pre-vote, with
///   Raft's randomised election timeout, thesis §3.4).
/// * `drift_ppm` (ρ): the bound on any clock's rate error against real time.
/// * `jitter`: how late the shell may act on a deadline (timer wake-up and
///   address removal).
///
/// Derived: the usable hold window
/// `D = P·(1−ρ)/(1+ρ) − jitter` ([`Timings::hold_window`], Q4) and the
/// restart quiet time `P + jitter` ([`Timings::quiet`], Q5). Refused unless
/// `3 × heartbeat <= D`, so a holder gets at least two more rounds before
/// it must fence when one round is lost.
///
/// Defaults ([`Timings::default`]): P = 600 ms, heartbeat 100 ms, election
/// wait 50–200 ms, ρ = 10,000 ppm (1%), jitter 20 ms, hence
/// D = 600·0.99/1.01 − 20 = 568.1 ms (≥ 3 × 100 ms). Hard failover after a
/// holder crash lands `u ∈ [0, 100 ms)` after its last acked round: the
/// voters' promises end `P − u` later, then a follower waits 50–200 ms and
/// needs two round trips (pre-vote, vote; < 2 ms on a LAN), so the failover
/// is `600 − u + U(50, 200) + ~2 ms`: median ≈ 600 − 50 + 125 + 2 = 677 ms,
/// worst ≈ 802 ms without a split vote (SPEC §8 target: ≤ 1 s median).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timings {
    promise: Duration,
    heartbeat: Duration,
    election_min: Duration,
    election_max: Duration,
    drift_ppm: u32,
    jitter: Duration,
}

/// Why a set of quorum timings was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A duration that must be positive was zero.
    #[error("{name} must be greater than zero")]
    Zero {
        /// Which option.
        name: &'static str,
    },
    /// The election wait range is reversed.
    #[error("election timeout minimum {min:?} must not exceed the maximum {max:?}")]
    ElectionRange {
        /// Minimum given.
        min: Duration,
        /// Maximum given.
        max: Duration,
    },
    /// The drift bound is outside 1..=100,000 ppm.
    #[error("drift bound {ppm} ppm must be within 1..=100000 (0.0001% to 10%)")]
    Drift {
        /// Bound given.
        ppm: u32,
    },
    /// The heartbeat does not fit three times into the usable hold window.
    #[error(
        "heartbeat {heartbeat:?} must fit at least 3 times into the usable hold window {window:?} \
         (promise x (1-drift)/(1+drift) - jitter); lengthen the promise or shorten the heartbeat"
    )]
    HeartbeatTooSlow {
        /// Heartbeat given.
        heartbeat: Duration,
        /// The usable window `D`.
        window: Duration,
    },
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            promise: Duration::from_millis(600),
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(50),
            election_max: Duration::from_millis(200),
            drift_ppm: 10_000,
            jitter: Duration::from_millis(20),
        }
    }
}

impl Timings {
    /// Validates and builds timings (see the type docs for the rules).
    pub fn new(
        promise: Duration,
        heartbeat: Duration,
        election_min: Duration,
        election_max: Duration,
        drift_ppm: u32,
        jitter: Duration,
    ) -> Result<Self, TimingError> {
        for (name, d) in [
            ("promise", promise),
            ("heartbeat interval", heartbeat),
            ("election timeout minimum", election_min),
        ] {
            if d.is_zero() {
                return Err(TimingError::Zero { name });
            }
        }
        if election_min > election_max {
            return Err(TimingError::ElectionRange {
                min: election_min,
                max: election_max,
            });
        }
        if !(1..=100_000).contains(&drift_ppm) {
            return Err(TimingError::Drift { ppm: drift_ppm });
        }
        let t = Timings {
            promise,
            heartbeat,
            election_min,
            election_max,
            drift_ppm,
            jitter,
        };
        let window = t.hold_window();
        if heartbeat.saturating_mul(3) > window {
            return Err(TimingError::HeartbeatTooSlow { heartbeat, window });
        }
        Ok(t)
    }

    /// The promise P (Q3).
    pub fn promise(&self) -> Duration {
        self.promise
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// The randomised election wait range.
    pub fn election_range(&self) -> (Duration, Duration) {
        (self.election_min, self.election_max)
    }

    /// The clock-rate drift bound ρ in ppm.
    pub fn drift_ppm(&self) -> u32 {
        self.drift_ppm
    }

    /// The shell's scheduling-jitter margin.
    pub fn jitter(&self) -> Duration {
        self.jitter
    }

    /// Q4's usable hold window `D = P·(1−ρ)/(1+ρ) − jitter` (saturating at
    /// zero), rounded down to the nanosecond.
    ///
    /// Why this factor: a voter's promise lasts P on *its* clock, which may
    /// run fast by ρ, so it lasts at least `P/(1+ρ)` real time from its
    /// receive time. The holder measures D on *its* clock, which may run
    /// slow by ρ, so D lasts at most `D/(1−ρ)` real time from the send time.
    /// The hold must end no later than the promise, from a send time that is
    /// no later than the receive time: `D/(1−ρ) + jitter <= P/(1+ρ)`; the
    /// jitter term is subtracted in the holder's clock, a conservative
    /// rounding (a jitter measured on a slow clock is longer, which only
    /// widens the shell's allowance).
    pub fn hold_window(&self) -> Duration {
        let p = self.promise.as_nanos();
        let rho = u128::from(self.drift_ppm);
        let d = p * (PPM - rho.min(PPM)) / (PPM + rho);
        Duration::from_nanos(u64::try_from(d).unwrap_or(u64::MAX)).saturating_sub(self.jitter)
    }

    /// Q5's quiet time after a (re)start: `P + jitter` on the restarted
    /// node's own clock. Every hold that relied on a promise this voter
    /// gave before it crashed at real time `c` ends by `c + P/(1+ρ)` (the
    /// promise was received before `c`), and `P + jitter` on any clock with
    /// rate error ≤ ρ lasts at least `P/(1+ρ)` real time, even if the clock
    /// itself restarted (a reboot).
    pub fn quiet(&self) -> Duration {
        self.promise + self.jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn defaults_are_valid_and_give_the_documented_window() {
        let d = Timings::default();
        let again = Timings::new(ms(600), ms(100), ms(50), ms(200), 10_000, ms(20));
        assert_eq!(again, Ok(d));
        // 600 ms × 990000 / 1010000 = 588.118811 ms, minus 20 ms.
        assert_eq!(d.hold_window(), Duration::from_nanos(568_118_811));
        assert_eq!(d.quiet(), ms(620));
    }

    #[test]
    fn heartbeat_that_does_not_fit_three_times_is_refused() {
        assert!(matches!(
            Timings::new(ms(600), ms(200), ms(50), ms(200), 10_000, ms(20)),
            Err(TimingError::HeartbeatTooSlow { .. })
        ));
        assert!(matches!(
            Timings::new(ms(300), ms(100), ms(50), ms(200), 10_000, ms(20)),
            Err(TimingError::HeartbeatTooSlow { .. })
        ));
    }

    #[test]
    fn bad_ranges_and_zeroes_are_refused() {
        assert!(matches!(
            Timings::new(ms(600), ms(100), ms(300), ms(200), 10_000, ms(20)),
            Err(TimingError::ElectionRange { .. })
        ));
        assert!(matches!(
            Timings::new(ms(0), ms(100), ms(50), ms(200), 10_000, ms(20)),
            Err(TimingError::Zero { .. })
        ));
        assert!(matches!(
            Timings::new(ms(600), ms(100), ms(50), ms(200), 0, ms(20)),
            Err(TimingError::Drift { .. })
        ));
    }
}
