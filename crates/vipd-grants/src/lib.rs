//! Services mode on the quorum (issue 13): the quorum holder assigns
//! every LoadBalancer address to one node and hands each node
//! time-bounded grants over the authenticated quorum channel, so addresses
//! keep being served, and move off failed nodes, while the Kubernetes API
//! is down for everyone.
//!
//! Sans-IO like [`vipd_quorum::Node`]: the shell passes its monotonic time
//! with every input, runs the returned [`Action`]s in order, wakes the
//! core at [`Grants::poll_timeout`], and feeds it the quorum core's
//! [`vipd_quorum::Leadership`] after every quorum step.
//!
//! # Protocol
//!
//! - Every node (not a witness) sends the holder of its current term a
//!   **claim** every heartbeat: a report of what it may bind (below) and
//!   the newest version of its set it has received complete.
//! - The holder keeps an address → node map, computed with the lease-mode
//!   Services rules ([`vipd_services::desired`]: eligibility, zones,
//!   sharing, stickiness, `--preempt`) over the Services it last saw and
//!   the nodes whose claims arrived within the quorum promise P (node
//!   liveness comes from the quorum channel, not from node leases). Each
//!   node's share is a numbered **version**, sent in datagram-sized
//!   **share** parts.
//! - The holder answers each claim with a **grant** naming the node's
//!   newest version. A grant answering a claim sent at `s` (node's clock)
//!   lets the node bind the set of exactly that version (once it has it
//!   complete), or keep binding the older version it applied, until
//!   `s + W`, where `W = G·(1−ρ)/(1+ρ) −
//!   jitter` for the grant period `G` — exactly Q4's hold window with `G`
//!   in place of P. The holder records that the node may bind until
//!   `r + G` on its own clock, `r` its receive time of the claim: since
//!   `real(s) <= real(r)`, the node's right (plus the shell's removal
//!   jitter) ends in real time before the holder's record does (Q4's
//!   arithmetic, [`vipd_quorum::Timings::hold_window`]). Here "jitter"
//!   is the shell's removal bound, which the daemon sets to at least
//!   [`REMOVAL_BUDGET`] ([`GrantTimings::for_quorum`]).
//! - The holder binds its own share while it holds (its Q4 deadline), and
//!   drops it when it fences.
//!
//! # Claims: what a node may bind
//!
//! A claim reports `refv` (the oldest version of this term the node may
//! still bind), `floor` (it never newly applies a version at or below),
//! and an explicit set for anything bound outside this term's versions
//! (granted in an older term, or self-held as an older holder), sent in
//! **held** parts. It covers what the node binds now and what it stopped
//! binding less than `jitter` ago (the shell may still be removing it).
//! Nodes apply versions in increasing order only and never apply a
//! version of an older term after learning a newer one (grants count only
//! from the holder of the node's current term, answering a claim of that
//! term). So the holder counts, as what node `y` may bind at `now`:
//!
//! - nothing heard this term: every address, until `since + G` (`since`:
//!   our hold began; every older grant was anchored before the old
//!   holder's hold ended, which was before ours began, Q4). No node is
//!   exempt, not even the previous holder: after its own hold it may have
//!   bound grants of a holder we never heard of (terms repeat when voters
//!   restart), so a dead holder's addresses move only at `since + G`;
//! - the explicit set, until `since + G`;
//! - while `now < r + G` for the last grant: the set of `refv` and of every
//!   granted version above `refv` (or above `floor`).
//!
//! An address goes to a node only when no other node may bind it by this
//! count, and the holder itself binds nothing another node may bind. A
//! move takes the address from its owner first (its next version lacks
//! it); the new owner gets it once the old one reported a version without
//! it (after its removal settled) or its grant expired. A new holder keeps
//! every address a node reports binding (**no churn**), and gives out an
//! address nobody reports only when every other node reported or `G`
//! passed since its hold began.
//!
//! # Why two nodes never bind one address at one real instant
//!
//! By induction over the holders' terms, in real time. Within one term, the
//! holder's count is an upper bound of what each node may bind, now and
//! later, unless the holder itself changes it: a node's bindings come from
//! versions granted (counted until their expiry, which bounds the node's
//! right as above), from older terms (counted until `since + G`, which
//! bounds every older right), or are still being removed (covered by the
//! claim for `jitter`). An address is given to `z` only when the count of
//! every other node excludes it, so `z`'s right to it begins after every
//! other node's ended. Across terms, a reported binding is kept only by the
//! node reporting it, and only if nobody else may bind it by the count;
//! the holder's own share comes from what it bound validly when its hold
//! began, which nobody else bound by the induction hypothesis. The
//! randomized simulation (`tests/sim.rs`) checks the property with drifting
//! clocks, loss, reordering, partitions, crashes and holder changes.

#![forbid(unsafe_code)]

mod assigner;
mod grantee;
mod node;
mod set;
pub mod wire;

pub use assigner::ServiceView;
pub use node::{Action, GrantStatus, GrantTimings, Grants, Input, REMOVAL_BUDGET};
pub use set::{digest_of, split, AddrSet};
