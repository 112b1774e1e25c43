//! The seam between the election core and a coordination backend.
//!
//! A backend stores one [`LeaseRecord`] under one name with optimistic
//! concurrency: every write names the [`Version`] it read, and a write against
//! a stale version fails with [`StoreError::Conflict`] ("you lost, re-read",
//! never "retry blindly" — STYLE.md lesson 4). Backends: etcd (this issue),
//! Kubernetes `coordination.k8s.io/v1` Lease (next issue), and the in-memory
//! store of the tests and the simulation.
//!
//! Timeouts are not the store's business: the election driver bounds every
//! call by the time left before the renew deadline (R6) and calls
//! [`LeaseStore::reset`] after a timeout or a connection error so the next
//! call dials a fresh connection instead of reusing a half-dead one.

use crate::record::{LeaseRecord, Version, Versioned};
use std::future::Future;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The record changed since the version we wrote against (HTTP 409
    /// Conflict, or an etcd transaction whose revision guard failed).
    #[error("conflict: the record changed since it was read")]
    Conflict,
    /// A create found the record already there (HTTP 409 AlreadyExists, or an
    /// etcd transaction whose create_revision==0 guard failed): someone else won.
    #[error("already exists: another node created the record first")]
    AlreadyExists,
    /// The store could not be reached or did not answer (connection refused,
    /// reset, TLS failure, 5xx, etcd unavailable). The outcome of a write is
    /// unknown: it may have been applied.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The driver gave up waiting (deadline before the renew deadline).
    /// Like `Unavailable`, the write may have been applied.
    #[error("timed out")]
    Timeout,
    /// The store answered with something we cannot use (malformed record,
    /// 401/403, 422). Logged and retried like any failure (R2).
    #[error("store rejected the request: {0}")]
    Rejected(String),
}

/// A change seen on the record by a watch, outside our own request flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The record now has this content (created or updated).
    Changed(Versioned),
    /// The record was deleted.
    Deleted,
}

/// One named election record in a coordination backend.
///
/// Implementations hold their connection state internally and must be cheap
/// to call concurrently (`&self`). No method retries on its own: retry policy
/// belongs to the election core.
pub trait LeaseStore: Send + Sync + 'static {
    /// Reads the record. `Ok(None)` when it does not exist.
    fn get(&self) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Creates the record; [`StoreError::AlreadyExists`] when it exists.
    fn create(
        &self,
        record: &LeaseRecord,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;

    /// Replaces the record if its version is still `expected`;
    /// [`StoreError::Conflict`] otherwise.
    fn update(
        &self,
        record: &LeaseRecord,
        expected: &Version,
    ) -> impl Future<Output = Result<Versioned, StoreError>> + Send;

    /// Streams changes of the record into `tx` until the watch breaks, then
    /// returns the error (the driver restarts it with back-off). A backend
    /// that cannot watch returns `Ok(())` at once and the core just polls.
    fn watch(
        &self,
        tx: tokio::sync::mpsc::Sender<WatchEvent>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops any pooled connection so the next call re-dials (R6: never
    /// reuse a connection after a timeout or connection error).
    fn reset(&self);
}
