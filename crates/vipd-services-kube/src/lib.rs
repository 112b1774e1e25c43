//! Services mode against the Kubernetes API (issue 5): the I/O shell around
//! the sans-IO ownership core in [`vipd_services`]. LoadBalancer addresses
//! are owned per address by one node, at O(nodes) API writes per retry
//! period.
//!
//! ```text
//!  Services, EndpointSlices, Nodes, IPAM ConfigMap ──reflectors──▶ kubeworld ──Addresses/Policies──┐
//!        ▲ status + vipHost (owner), IPAM annotation (assigner), Events ◀──┘                         ▼
//!  node leases ──own::watch_nodes──▶ ┌──────────────────────────┐ ◀──IsAssigner── (assigner lease, wired by the binary)
//!  assignment ─own::watch_assignment▶│ core: vipd_services::Node │ ──CAS writes──▶ API
//!  own renewal ──own::Renewer───────▶└──────────────────────────┘ ──PublishHeld──▶ own::Renewer
//!                                               │ desired addresses
//!                                               ▼
//!                              VipManager (binary wires it) ──Bound/Unbound──▶ wire (paced GARP/NA)
//! ```
//!
//! - [`world`]: Kubernetes objects → the addresses to serve and which nodes
//!   may own each (pure: no I/O, no clock).
//! - [`kubeworld`]: the reflectors that feed [`world::World`], IPAM, and the
//!   Service status / `kube-vip.io/vipHost` writer.
//! - [`core`]: the task that runs the sans-IO core and executes its actions.
//! - [`own`]: this node's lease renewal and the node-lease and assignment
//!   watches.
//! - [`wire`]: the paced announcer for every owned address (R4, R5).
//!
//! The binary (`vipd/src/services.rs`) builds the stores, the VIP manager and
//! the assigner's elector, and wires these tasks together. Nothing here
//! decides ownership but the core; nothing here parses configuration.

#![forbid(unsafe_code)]

pub mod core;
pub mod ecmp;
pub mod kubeworld;
pub mod own;
pub mod wire;
pub mod world;
