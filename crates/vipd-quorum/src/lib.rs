//! vipd's quorum mode core (SPEC §5a, issue 12): a leader lease granted by
//! a majority of configured voters over authenticated UDP, without a log
//! (Raft thesis §6.4 leader lease / check-quorum, §9.6 pre-vote;
//! PaxosLease).
//!
//! The core ([`Node`]) never sleeps, never does I/O and never reads a
//! clock: the shell passes its monotonic time with every input, executes
//! the returned [`Action`]s in order, and wakes it at
//! [`Node::poll_timeout`]. See [`node`](crate::Node) for the safety
//! argument and [`Timings`] for the hold-window arithmetic.

#![forbid(unsafe_code)]

mod config;
mod node;
mod status;
mod timings;
pub mod wire;

pub use config::{
    parse_peers, AuthKey, Config, ConfigError, PeersError, SetHash, Voter, VoterRole, VoterSet,
    DEFAULT_PORT, MAX_NAME, MAX_VOTERS,
};
pub use node::{Action, FenceReason, Input, Leadership, Node};
pub use status::{Drops, Role, Status};
pub use timings::{TimingError, Timings};
pub use wire::{Body, DropReason, Message, Verdict};
