//! Services mode ownership core: which node announces each LoadBalancer
//! address, at O(nodes) API writes per retry period (issue 5, SPEC R1 and
//! §8), as a sans-IO state machine ([`Node`]) in the style of
//! `vipd_election::Elector`.
//!
//! # Design
//!
//! - **Node leases.** Every node renews one record of its own every retry
//!   period (client-go's fields plus a [`NodeState`]): `generation` (the
//!   assignment generation it has applied) and `held` (the addresses it
//!   announced when the renewal was sent). `held` rides on the regular
//!   renewal: no extra writes. Steady state therefore costs exactly one
//!   write per node per retry period, whatever the number of addresses
//!   (kube-vip's per-Service election costs one per Service).
//! - **Own fence (R1).** A node's own lease protects it until the *send
//!   time* of its last successful renewal + `renew_deadline`; past that it
//!   announces nothing.
//! - **Liveness.** The assigner treats a node as live while it has seen the
//!   node's record change within `lease_duration` on its own clock
//!   (client-go's `observedTime`, as in the Elector).
//! - **Assignment.** One elected assigner (the existing Elector on a
//!   separate lease; here the input [`Input::IsAssigner`]) writes one
//!   [`Assignment`] record, with CAS on its version and a gapless
//!   `generation`, only when the desired content changes: O(changes). One
//!   owner per *address* (Services sharing an IP share the entry). A live
//!   owner still among the best candidates keeps the address (sticky; a
//!   returning node takes nothing back unless `preempt`); otherwise the
//!   rendezvous (HRW) winner among live eligible nodes of the best tier
//!   (pinned zone first, then every eligible node if the pin allows
//!   fallback). Each [`Entry`] records `since` (the generation at which the
//!   owner became owner) and `prior`: earlier owners not yet proven stopped.
//! - **Handoff (R1 per address).** A node announces `A` only if (1) the
//!   assignment it applied names it, at a generation at or above its floor,
//!   (2) its own lease is valid, and (3) every node in `prior(A)` has a
//!   record with `generation >= since(A)` that does not hold `A`. A node
//!   stops announcing `A` as soon as it applies an assignment not naming it,
//!   *before* it publishes that generation.
//! - **Dead nodes: tombstones.** A dead node cannot publish anything, so the
//!   assigner, once a referenced node's record has not changed for
//!   `lease_duration` on its clock, CAS-writes that record as a tombstone
//!   (`expired`, `held: {}`, `generation` = the generation being written).
//!   This write happens only on a failure (O(changes)). Observation alone
//!   ("expired on the new owner's clock") is *not* enough: a node whose
//!   watch lags would take over from an owner that is still renewing, and an
//!   owner returning from a partition would act on its stale view. The CAS
//!   linearises the takeover against the owner's own renewals exactly as
//!   the Elector's acquire does: the renewal after a tombstone conflicts, so
//!   the owner's fence is not extended, and the driver reads the tombstone
//!   and reports it ([`Input::OwnRecord`]); its `generation` becomes the
//!   node's floor, so it never acts on an assignment older than the one
//!   that moved its addresses away.
//!
//! # Proof sketch (at most one announcer per address)
//!
//! Facts: (a) generations are totally ordered by the CAS on the assignment
//! and each names at most one owner per address; (b) a node's effective
//! generation `max(applied, floor)` never decreases, it announces `A` only
//! under an applied generation naming it, and a record it sends carries at
//! most its effective generation at send time; (c) a tombstone lands only
//! after the record stayed unchanged for `lease_duration` on the assigner's
//! clock, so (timings rule of R1, as for the Elector) the node had fenced
//! before it lands, and after it the node announces only at generations
//! `>=` the tombstone's.
//!
//! Suppose `Y` and `P` both announce `A` at instant `t`, `Y` under
//! generation `gY < gP`, `P` under `gP`. `P`'s run started at `tP <= t`
//! under an entry with `since = σ`, and the generations `σ..=gP` all name
//! `P`, so `gY < σ`. `Y` owned `A` at a generation before `σ`, so `Y` is in
//! `prior` at `σ` unless it was pruned — and pruning, like `P`'s own check
//! at `tP`, needs a record of `Y` with `generation >= σ` observed no later
//! than `tP`. A live record was sent when `Y`'s effective generation was
//! already `>= σ > gY`, which by (b) is after `t`: impossible since it was
//! observed by `tP <= t`. A tombstone landed after `Y` fenced and before
//! `tP <= t`, and by (c) `Y` cannot be announcing under `gY < σ` at `t`.
//! Contradiction. Note that the proof never uses the freshness of
//! observations: stale lists and lagging watches only delay handoffs.
//!
//! Liveness: after faults heal, a live prior owner applies the new
//! generation within a read period and publishes on its next renewal; a dead
//! one is tombstoned after `lease_duration` (again when a newer generation
//! references it). Each move costs one assignment write, one renewal delay
//! of the old owner, and one read of the new owner.
//!
//! # Draining (health gate, R8) and graceful stop
//!
//! A node that must stop ([`Input::Eligible`]`(false)`, or SIGTERM in the
//! daemon) announces nothing and publishes its record with `expired` set
//! while it keeps renewing: the assigner treats it as gone at once (no
//! lease expiry) and its later renewals, once it applied the new
//! generation, prove it stopped. Coming back is the delicate part: a
//! renewal *sent while draining* may have been followed by a tombstone, so
//! the fence is reset and only a renewal sent after recovery counts (the
//! CAS makes it conflict if a tombstone landed); the simulation finds two
//! owners without that rule.
//!
//! # Where the IO is
//!
//! Kubernetes IO (node leases with the state in an annotation, the
//! assignment ConfigMap, watches) is `vipd_kube::nodes`; the daemon's
//! `services` module drives this core. IPAM ([`allocate`],
//! kube-vip-cloud-provider's ConfigMap) is here, pure; the caller writes
//! the Service.

#![forbid(unsafe_code)]

mod assign;
pub mod ecmp;
pub mod ipam;
mod model;
mod node;

pub use assign::{desired, View};
pub use ipam::{
    allocate, plan_families, Claim, Family, IpamError, Pool, PoolConfig, PortKey, Request,
    SearchOrder, CONFIG_MAP_NAME, CONFIG_MAP_NAMESPACE, IMPLEMENTATION_LABEL_KEY,
    IMPLEMENTATION_LABEL_VALUE, LOADBALANCER_IPS_ANNOTATION, SERVICE_INTERFACE_ANNOTATION,
};
pub use model::{hrw_pick, hrw_weight, Assignment, Entry, NodeId, NodeState, Policy, ZonePin};
pub use node::{Action, Input, Listed, Node, Renewal};
