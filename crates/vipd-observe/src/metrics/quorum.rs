//! Quorum-mode metrics (SPEC §5a, issue 12). Registered by
//! [`crate::metrics::Metrics::new`] on the same registry; a lease-mode
//! process exports them at zero.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleOnly {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonOnly {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionOnly {
    direction: String,
}

/// Every role label `vipd_quorum_role` carries (one is 1, the rest 0).
pub const QUORUM_ROLES: [&str; 6] = [
    "follower",
    "candidate",
    "holder",
    "fencing",
    "witness",
    "stopped",
];

/// One snapshot of the quorum shell, in plain values (this crate does not
/// know the core's types).
#[derive(Debug, Clone, Default)]
pub struct QuorumSample<'a> {
    /// Current role label (one of [`QUORUM_ROLES`]).
    pub role: &'a str,
    /// Current term.
    pub term: u64,
    /// Voters heard within one promise period, this node included.
    pub voters_reachable: usize,
    /// Seconds left to the hold deadline (0 when not holding).
    pub hold_remaining_seconds: f64,
    /// Cumulative dropped datagrams by reason label.
    pub drops: Vec<(&'a str, u64)>,
    /// Cumulative bytes sent and received.
    pub sent_bytes: u64,
    /// Cumulative bytes received.
    pub received_bytes: u64,
}

/// The quorum-mode metrics.
#[derive(Debug, Default)]
pub struct QuorumMetrics {
    role: Family<RoleOnly, Gauge>,
    term: Gauge,
    reachable: Gauge,
    hold_remaining: Gauge<f64, AtomicU64>,
    drops: Family<ReasonOnly, Counter>,
    bytes: Family<DirectionOnly, Counter>,
}

impl QuorumMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "vipd_quorum_role",
            "1 for this node's current quorum role (follower, candidate, holder, fencing, witness, stopped)",
            self.role.clone(),
        );
        registry.register(
            "vipd_quorum_term",
            "Current quorum term (only grows, Q2)",
            self.term.clone(),
        );
        registry.register(
            "vipd_quorum_voters_reachable",
            "Voters heard from within one promise period, this node included: the holder hears every voter that acks; a follower hears the holder (and candidates), so 2 is a follower's steady state",
            self.reachable.clone(),
        );
        registry.register(
            "vipd_quorum_hold_remaining_seconds",
            "Seconds left of the holder's right to announce (Q4); 0 when not holding",
            self.hold_remaining.clone(),
        );
        registry.register(
            "vipd_quorum_drops",
            "Quorum datagrams dropped, by reason (bad_mac = authentication failure, wrong_set = another voter set, replay, ...)",
            self.drops.clone(),
        );
        registry.register(
            "vipd_quorum_bytes",
            "Quorum datagram bytes, by direction (sent, received)",
            self.bytes.clone(),
        );
    }

    /// Applies one snapshot (counters move by the difference to the last).
    pub fn observe(&self, s: &QuorumSample<'_>) {
        for r in QUORUM_ROLES {
            self.role
                .get_or_create(&RoleOnly { role: r.into() })
                .set(i64::from(r == s.role));
        }
        self.term.set(i64::try_from(s.term).unwrap_or(i64::MAX));
        self.reachable
            .set(i64::try_from(s.voters_reachable).unwrap_or(i64::MAX));
        self.hold_remaining.set(s.hold_remaining_seconds);
        for (reason, n) in &s.drops {
            bump(
                &self.drops.get_or_create(&ReasonOnly {
                    reason: (*reason).into(),
                }),
                *n,
            );
        }
        for (direction, n) in [("sent", s.sent_bytes), ("received", s.received_bytes)] {
            bump(
                &self.bytes.get_or_create(&DirectionOnly {
                    direction: direction.into(),
                }),
                n,
            );
        }
    }
}

fn bump(c: &Counter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}
