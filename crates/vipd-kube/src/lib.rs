//! Kubernetes backend of vipd's election: the record in a
//! `coordination.k8s.io/v1` Lease, read and written exactly as client-go's
//! `LeaseLock` does (SPEC R9), over an API client that cannot wedge
//! leadership (R6), plus best-effort Events.
//!
//! ```text
//!   Credentials::load(kubeconfig) ──▶ Credentials ──endpoints(inputs)──▶ ApiEndpoints
//!                                         │                                   │
//!                     ┌───────────────────┴─────────────┬─────────────────────┘
//!                     ▼                                 ▼
//!   KubeLeaseStore (own client, no rate limit,   GeneralClient (own client,
//!   timeouts ≤ renew deadline, re-dial on         qps/burst/timeout)
//!   timeout or connection error)                       │
//!                                                EventRecorder (queue → task)
//! ```
//!
//! The two clients never share a connection pool: a burst of events (or,
//! later, Service reconciles) cannot delay a lease renewal.
//!
//! k8s-openapi's API-version feature is not enabled here (a library never
//! picks it, STYLE.md lesson 12): the binary enables `v1_33`.

#![forbid(unsafe_code)]

mod api;
pub mod client;
mod connection;
pub mod events;
pub mod general;
pub mod mapping;
pub mod nodes;
pub mod reflect;
mod store;

pub use api::{split_lease_name, KubeApi, KubeSettings};
pub use client::{
    ApiEndpoints, CredentialSource, Credentials, Endpoint, EndpointInputs, EndpointSource,
    KubeConfigError, DEFAULT_LOCAL_TLS_SERVER_NAME,
};
pub use events::{EventRecorder, EventTarget, EventType};
pub use general::{GeneralClient, GeneralError, GeneralOptions, TokenBucket};
pub use nodes::{
    AssignmentStore, NodeLease, NodeLeaseEvent, NodeLeaseStore, ASSIGNMENT_KEY, NODE_LEASE_LABEL,
    NODE_STATE_ANNOTATION,
};
pub use reflect::{reflect, ReflectEvent, ReflectorConfig, ReflectorStats};
pub use store::{KubeLeaseStore, WATCH_TIMEOUT_SECS};
