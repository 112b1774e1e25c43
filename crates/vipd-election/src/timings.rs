//! Lease timings and the fencing rule that makes R1 hold.

use std::time::Duration;

/// Validated election timings (client-go's LeaseDuration, RenewDeadline,
/// RetryPeriod).
///
/// Invariant (SPEC R1): `lease_duration >= renew_deadline + fence_margin`
/// with `fence_margin = max(1 s, 20% of lease_duration)`, and
/// `renew_deadline > 1.2 * retry_period` (client-go's `NewLeaderElector`
/// check, so a holder gets at least one retry before its deadline). A holder
/// fences itself at `renew_deadline` after the send time of its last
/// successful renewal; a peer takes over only after `lease_duration` without
/// seeing the record change. The margin absorbs clock-rate drift between the
/// two monotonic clocks and the time to remove the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    lease_duration: Duration,
    renew_deadline: Duration,
    retry_period: Duration,
}

/// Why a set of timings was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A duration was zero.
    #[error("{name} must be greater than zero")]
    Zero {
        /// Which option.
        name: &'static str,
    },
    /// The fencing rule of R1 does not hold.
    #[error(
        "lease duration {lease:?} must be at least renew deadline {renew:?} + fence margin {margin:?} \
         (margin = max(1s, 20% of the lease duration)); otherwise a peer could take over before the holder has fenced"
    )]
    FenceMargin {
        /// Lease duration given.
        lease: Duration,
        /// Renew deadline given.
        renew: Duration,
        /// The margin required.
        margin: Duration,
    },
    /// client-go's rule `renew_deadline > 1.2 * retry_period` does not hold.
    #[error("renew deadline {renew:?} must be greater than 1.2 x retry period {retry:?} (client-go's rule)")]
    RetryTooSlow {
        /// Renew deadline given.
        renew: Duration,
        /// Retry period given.
        retry: Duration,
    },
}

impl Timings {
    /// Validates and builds timings.
    pub fn new(
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, TimingError> {
        for (name, d) in [
            ("lease duration", lease_duration),
            ("renew deadline", renew_deadline),
            ("retry period", retry_period),
        ] {
            if d.is_zero() {
                return Err(TimingError::Zero { name });
            }
        }
        let margin = Self::fence_margin_for(lease_duration);
        if lease_duration < renew_deadline + margin {
            return Err(TimingError::FenceMargin {
                lease: lease_duration,
                renew: renew_deadline,
                margin,
            });
        }
        if renew_deadline.as_secs_f64() <= 1.2 * retry_period.as_secs_f64() {
            return Err(TimingError::RetryTooSlow {
                renew: renew_deadline,
                retry: retry_period,
            });
        }
        Ok(Timings {
            lease_duration,
            renew_deadline,
            retry_period,
        })
    }

    /// The fence margin R1 requires for a lease duration:
    /// `max(1 s, 20% of lease_duration)`.
    pub fn fence_margin_for(lease_duration: Duration) -> Duration {
        Duration::from_secs(1).max(lease_duration / 5)
    }

    /// How long a record must stay unchanged before a peer may take over.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// How long after the send time of its last successful renewal a holder
    /// may keep announcing.
    pub fn renew_deadline(&self) -> Duration {
        self.renew_deadline
    }

    /// How often a holder renews and a follower polls.
    pub fn retry_period(&self) -> Duration {
        self.retry_period
    }

    /// Lease duration in whole seconds for the record's
    /// `leaseDurationSeconds`, rounded up so readers never wait too little.
    pub fn lease_duration_seconds(&self) -> u32 {
        let ms = self.lease_duration.as_millis();
        u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(l: f64, r: f64, p: f64) -> Result<Timings, TimingError> {
        Timings::new(
            Duration::from_secs_f64(l),
            Duration::from_secs_f64(r),
            Duration::from_secs_f64(p),
        )
    }

    #[test]
    fn documented_timing_sets_are_accepted() {
        // kube-vip defaults, kube-vip's recommendation, tight, flaky-link (SPEC R1).
        for (l, r, p) in [
            (15.0, 10.0, 2.0),
            (5.0, 3.0, 1.0),
            (3.0, 2.0, 1.0),
            (30.0, 20.0, 5.0),
        ] {
            assert!(t(l, r, p).is_ok(), "{l}/{r}/{p} must be accepted");
        }
        assert!(t(3.0, 2.0, 0.5).is_ok());
    }

    #[test]
    fn lease_shorter_than_deadline_plus_margin_is_refused() {
        assert!(matches!(
            t(10.0, 10.0, 2.0),
            Err(TimingError::FenceMargin { .. })
        ));
        // 20% of 20 s = 4 s margin: 20 < 17 + 4.
        assert!(matches!(
            t(20.0, 17.0, 2.0),
            Err(TimingError::FenceMargin { .. })
        ));
        assert!(matches!(
            t(2.5, 2.0, 0.5),
            Err(TimingError::FenceMargin { .. })
        ));
    }

    #[test]
    fn retry_period_too_close_to_deadline_is_refused() {
        assert!(matches!(
            t(15.0, 10.0, 9.0),
            Err(TimingError::RetryTooSlow { .. })
        ));
        assert!(matches!(
            t(15.0, 2.4, 2.0),
            Err(TimingError::RetryTooSlow { .. })
        ));
    }

    #[test]
    fn zero_durations_are_refused() {
        assert!(matches!(t(0.0, 1.0, 1.0), Err(TimingError::Zero { .. })));
        assert!(matches!(t(5.0, 3.0, 0.0), Err(TimingError::Zero { .. })));
    }

    #[test]
    fn lease_seconds_round_up() {
        assert_eq!(t(3.5, 2.0, 0.5).map(|t| t.lease_duration_seconds()), Ok(4));
        assert_eq!(
            t(15.0, 10.0, 2.0).map(|t| t.lease_duration_seconds()),
            Ok(15)
        );
    }
}
