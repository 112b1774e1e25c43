//! Kubernetes IO of the Services-mode ownership core (`vipd_services`):
//! one node lease per node and the assignment ConfigMap (issue 5 item 3).
//!
//! | operation | API request | failure |
//! |-----------|-------------|---------|
//! | [`NodeLeaseStore::read`] | `GET .../leases/vipd-node-NODE` | 404 → `Ok(None)` |
//! | [`NodeLeaseStore::write`] | `POST .../leases` or `PUT .../leases/NAME` at `resourceVersion` | 409 → [`StoreError::AlreadyExists`] / [`StoreError::Conflict`] |
//! | [`NodeLeaseStore::tombstone`] | `PUT`, spec unchanged, annotation = expired state | 409 → [`StoreError::Conflict`] |
//! | [`NodeLeaseStore::list`] | `GET .../leases?labelSelector=vipd.io/node-lease=true` | — |
//! | [`NodeLeaseStore::watch`] | the same with `watch=1&resourceVersion=RV&timeoutSeconds=60` | `ERROR` event (410 Expired) → `Err` |
//! | [`AssignmentStore`] | the same verbs on ConfigMap `NAME`, `data.assignment` | as above |
//!
//! Both stores own a [`Dialer`] (their own connection pool, no rate limit),
//! like [`crate::KubeLeaseStore`]: node renewals carry the R1 fence of every
//! address the node announces, so they never queue behind Service
//! reconciles on the rate-limited general client. Errors map exactly as
//! `KubeLeaseStore`'s (connection failures, timeouts, 429 and 5xx are
//! [`StoreError::Unavailable`]; 400/401/403/422 and undecodable answers
//! [`StoreError::Rejected`]); nothing is retried here (STYLE.md lesson 4).
//!
//! A node lease is a client-go Lease (`holderIdentity` = node name, the
//! same spec fields as [`crate::mapping`]) labelled [`NODE_LEASE_LABEL`]`=true`
//! with the node's [`NodeState`] as JSON in annotation
//! [`NODE_STATE_ANNOTATION`]. A lease without the annotation, or with one
//! that does not parse, reads as `NodeState::default()`: generation 0 proves
//! nothing (no entry has `since` 0 once written), so misreading it can only
//! delay a handoff, never allow a second announcer.
//!
//! | file | concept |
//! |------|---------|
//! | `conn` | one [`Dialer`] with the request bounds and the list/watch loop both stores share |
//! | `lease` | node leases: [`NodeLease`], [`NodeLeaseStore`] |
//! | `assignment` | the assignment ConfigMap: [`AssignmentStore`] |
//!
//! [`Dialer`]: crate::connection::Dialer

mod assignment;
mod conn;
mod lease;

pub use assignment::AssignmentStore;
pub use lease::{NodeLease, NodeLeaseEvent, NodeLeaseStore};

/// Label key carried (value `"true"`) by every node lease: list and watch
/// select on it, so other Leases in the namespace cost nothing.
pub const NODE_LEASE_LABEL: &str = "vipd.io/node-lease";
/// Annotation holding the JSON of the node's [`NodeState`].
pub const NODE_STATE_ANNOTATION: &str = "vipd.io/node-state";
/// ConfigMap data key holding the JSON of the [`Assignment`].
pub const ASSIGNMENT_KEY: &str = "assignment";
