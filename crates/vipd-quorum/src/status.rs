//! The read-only view the shell serves on `/status` and as metrics.

use crate::wire::DropReason;
use std::time::Duration;

/// A node's role (`vipd_quorum_role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Backing a holder or waiting to campaign.
    Follower,
    /// Asking for pre-votes or votes.
    Candidate,
    /// Holding: the shell announces the addresses.
    Holder,
    /// Fenced, waiting for the shell's "addresses removed" before Release.
    Fencing,
    /// A witness: votes, never campaigns or holds.
    Witness,
    /// Stopped after a graceful stop.
    Stopped,
}

impl Role {
    /// A stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Holder => "holder",
            Role::Fencing => "fencing",
            Role::Witness => "witness",
            Role::Stopped => "stopped",
        }
    }
}

/// Drop counters by reason (`vipd_quorum_drops_total{reason}`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Drops(pub [u64; DropReason::ALL.len()]);

impl Drops {
    /// The count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// Counts one drop (also used by the grant layer on the same socket).
    pub fn count(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }
}

/// A snapshot of the core for `/status` and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// Role (`vipd_quorum_role`).
    pub role: Role,
    /// Current term (`vipd_quorum_term`).
    pub term: u64,
    /// The holder we back or are, if known and its promise is live.
    pub holder: Option<String>,
    /// Voters heard from within the last promise period, counting
    /// ourselves (`vipd_quorum_voters_reachable`).
    pub voters_reachable: usize,
    /// While holding: time left to the hold deadline
    /// (`vipd_quorum_hold_remaining_seconds`).
    pub hold_remaining: Option<Duration>,
    /// While holding: the hold deadline itself (the shell's clock).
    pub hold_deadline: Option<Duration>,
    /// Q5: time left before we may grant again.
    pub quiet_remaining: Duration,
    /// Dropped datagrams by reason.
    pub drops: Drops,
}
