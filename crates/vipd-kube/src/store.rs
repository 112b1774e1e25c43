//! [`KubeLeaseStore`]: the election record in a `coordination.k8s.io/v1`
//! Lease, read and written exactly as client-go's `LeaseLock` does (R9).
//!
//! | operation | API request | failure |
//! |-----------|-------------|---------|
//! | `get`     | `GET .../leases/NAME`; version = `metadata.resourceVersion` | 404 → `Ok(None)` |
//! | `create`  | `POST .../leases` (name, namespace, spec) | 409 → [`StoreError::AlreadyExists`] |
//! | `update`  | `PUT .../leases/NAME`: the object last read, spec replaced, `resourceVersion` = expected | 409 → [`StoreError::Conflict`] |
//! | `watch`   | `GET .../leases?watch=1&fieldSelector=metadata.name=NAME&resourceVersion=LAST` | `ERROR` event (410 Expired) → `Err` |
//!
//! Nothing is retried here: a 409 means "you lost, re-read" and the outcome
//! of a failed write is the core's business (STYLE.md lesson 4).
//!
//! Errors: connection failures, timeouts, 429 and 5xx are
//! [`StoreError::Unavailable`] (the write may have been applied); 400, 401,
//! 403, 422 and undecodable answers are [`StoreError::Rejected`].

use crate::client::{ApiEndpoints, Credentials};
use crate::connection::{is_connection_error, map_err, Dialer};
use crate::mapping;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams, WatchEvent as KubeWatchEvent, WatchParams};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use vipd_election::{LeaseRecord, LeaseStore, StoreError, Version, Versioned, WatchEvent};

/// Server-side duration of one watch request (`timeoutSeconds`); the watch
/// is re-issued from the last resourceVersion when it ends. Short enough
/// that a watch on a connection that died silently is noticed within a
/// minute even if TCP keepalive does not fire.
pub const WATCH_TIMEOUT_SECS: u32 = 60;
/// Grace on top of [`WATCH_TIMEOUT_SECS`] before a watch that has not ended
/// is declared dead.
pub(crate) const WATCH_GRACE: Duration = Duration::from_secs(10);

/// The shortest connect timeout used, whatever the renew deadline.
pub(crate) const MIN_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// The election record in one Kubernetes Lease. Cheap to share behind an
/// `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct KubeLeaseStore {
    namespace: String,
    name: String,
    dialer: Dialer,
    request_timeout: Duration,
    /// The Lease object last seen (read, written or watched): the base of the
    /// next replace, so labels, annotations, owner references and managed
    /// fields survive as with client-go. Held only to clone or swap.
    last: Mutex<Option<Lease>>,
    /// resourceVersion to start the next watch from.
    last_rv: Mutex<Option<String>>,
    /// Woken by `reset` so a watch on the discarded client restarts too.
    reset_notify: Notify,
}

impl KubeLeaseStore {
    /// A store for Lease `namespace/name`, talking to `endpoints` with
    /// `credentials`. `renew_deadline` bounds every request (and connects
    /// are given half of it, so a dead first endpoint falls through to the
    /// next within one deadline). Does not connect: the first call dials.
    pub fn new(
        credentials: Credentials,
        endpoints: &ApiEndpoints,
        namespace: impl Into<String>,
        name: impl Into<String>,
        renew_deadline: Duration,
    ) -> Self {
        let connect_timeout = (renew_deadline / 2).max(MIN_CONNECT_TIMEOUT);
        KubeLeaseStore {
            namespace: namespace.into(),
            name: name.into(),
            dialer: Dialer::new(credentials, endpoints, connect_timeout, "lease"),
            request_timeout: renew_deadline.max(MIN_CONNECT_TIMEOUT),
            last: Mutex::new(None),
            last_rv: Mutex::new(None),
            reset_notify: Notify::new(),
        }
    }

    /// The Lease's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The endpoint the next request goes to (for `/status`).
    pub fn current_endpoint(&self) -> String {
        self.dialer.current_endpoint().url.to_string()
    }

    /// All endpoints, in order of preference.
    pub fn endpoints(&self) -> Vec<String> {
        self.dialer
            .endpoints()
            .iter()
            .map(|e| e.url.to_string())
            .collect()
    }

    fn remember(&self, lease: Option<&Lease>, rv: Option<String>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = lease.cloned();
        if rv.is_some() {
            *self.last_rv.lock().unwrap_or_else(|p| p.into_inner()) = rv;
        }
    }

    fn cached(&self) -> Option<Lease> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs one request on the lease client, bounded by the request timeout;
    /// a connection error or timeout discards the client (R6).
    async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Api<Lease>) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.dialer
            .call::<Lease, _, _, _>(&self.namespace, self.request_timeout, what, f)
            .await
    }

    /// One watch request; `Ok(())` when the server ended it normally.
    async fn watch_once(&self, tx: &mpsc::Sender<WatchEvent>) -> Result<bool, StoreError> {
        let rv = self
            .last_rv
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "0".to_owned());
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={}", self.name))
            .timeout(WATCH_TIMEOUT_SECS);
        let lent = self
            .dialer
            .client()
            .map_err(|e| StoreError::Rejected(format!("cannot build the API client: {e}")))?;
        let generation = lent.generation;
        let api = Api::<Lease>::namespaced(lent.client, &self.namespace);
        let reset = self.reset_notify.notified();
        tokio::pin!(reset);
        let until = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(WATCH_TIMEOUT_SECS))
            + WATCH_GRACE;
        let mut stream = match tokio::time::timeout(self.request_timeout, api.watch(&wp, &rv)).await
        {
            Ok(Ok(s)) => s.boxed(),
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    self.dialer.failed(generation);
                }
                return Err(map_err(e));
            }
            Err(_) => {
                self.dialer.failed(generation);
                return Err(StoreError::Unavailable(
                    "lease watch request timed out".into(),
                ));
            }
        };
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout_at(until, stream.try_next()) => n,
                () = &mut reset => {
                    return Err(StoreError::Unavailable("lease client reset".into()));
                }
                () = tx.closed() => return Ok(false),
            };
            let ev = match next {
                Err(_) => {
                    self.dialer.failed(generation);
                    return Err(StoreError::Unavailable(
                        "lease watch outlived its timeout: connection presumed dead".into(),
                    ));
                }
                Ok(Ok(Some(ev))) => ev,
                Ok(Ok(None)) => return Ok(true),
                Ok(Err(e)) => {
                    if is_connection_error(&e) {
                        self.dialer.failed(generation);
                    }
                    return Err(map_err(e));
                }
            };
            let out = match ev {
                KubeWatchEvent::Added(l) | KubeWatchEvent::Modified(l) => {
                    let v = mapping::versioned_from_lease(&l)?;
                    self.remember(Some(&l), Some(v.version.0.clone()));
                    WatchEvent::Changed(v)
                }
                KubeWatchEvent::Deleted(l) => {
                    self.remember(None, l.metadata.resource_version.clone());
                    WatchEvent::Deleted
                }
                KubeWatchEvent::Bookmark(b) => {
                    self.remember(self.cached().as_ref(), Some(b.metadata.resource_version));
                    continue;
                }
                KubeWatchEvent::Error(s) => {
                    if s.code == 410 {
                        // Our resourceVersion was compacted away ("too old
                        // resource version"): start the next watch from the
                        // current state; the driver re-reads meanwhile.
                        *self.last_rv.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    }
                    return Err(StoreError::Unavailable(format!(
                        "lease watch error {} {}: {}",
                        s.code, s.reason, s.message
                    )));
                }
            };
            if tx.send(out).await.is_err() {
                return Ok(false);
            }
        }
    }
}

impl LeaseStore for KubeLeaseStore {
    async fn get(&self) -> Result<Option<Versioned>, StoreError> {
        let name = self.name.clone();
        let lease = self
            .call("get", |api| async move { api.get_opt(&name).await })
            .await?;
        match lease {
            None => {
                self.remember(None, None);
                Ok(None)
            }
            Some(l) => {
                let v = mapping::versioned_from_lease(&l)?;
                self.remember(Some(&l), Some(v.version.0.clone()));
                Ok(Some(v))
            }
        }
    }

    async fn create(&self, record: &LeaseRecord) -> Result<Versioned, StoreError> {
        let lease = mapping::new_lease(&self.namespace, &self.name, record)?;
        let created = self
            .call("create", |api| async move {
                api.create(&PostParams::default(), &lease).await
            })
            .await
            .map_err(|e| match e {
                // A create can only lose to an existing object.
                StoreError::Conflict => StoreError::AlreadyExists,
                e => e,
            })?;
        let v = mapping::versioned_from_lease(&created)?;
        self.remember(Some(&created), Some(v.version.0.clone()));
        Ok(v)
    }

    async fn update(
        &self,
        record: &LeaseRecord,
        expected: &Version,
    ) -> Result<Versioned, StoreError> {
        // client-go replaces the object it read. If the cache holds another
        // version (a watch moved it on), the expected version still guards
        // the write; metadata then comes from the newer read, which the
        // server checks against nothing but resourceVersion.
        let base = self
            .cached()
            .filter(|l| l.metadata.name.as_deref() == Some(self.name.as_str()))
            .map_or_else(
                || mapping::new_lease(&self.namespace, &self.name, record),
                Ok,
            )?;
        let lease = mapping::replaced_lease(base, record, expected)?;
        let name = self.name.clone();
        let replaced = self
            .call("replace", |api| async move {
                api.replace(&name, &PostParams::default(), &lease).await
            })
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => StoreError::Conflict,
                e => e,
            })?;
        let v = mapping::versioned_from_lease(&replaced)?;
        self.remember(Some(&replaced), Some(v.version.0.clone()));
        Ok(v)
    }

    async fn watch(&self, tx: mpsc::Sender<WatchEvent>) -> Result<(), StoreError> {
        // Re-issue the watch each time the server ends it normally; return
        // only on an error (the driver restarts with back-off) or when the
        // receiver is gone.
        loop {
            if !self.watch_once(&tx).await? {
                return Ok(());
            }
        }
    }

    fn reset(&self) {
        self.dialer.reset();
        self.reset_notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Status::failure("m", reason).with_code(code).boxed())
    }

    #[test]
    fn api_errors_map_like_client_go_sees_them() {
        assert_eq!(
            map_err(api(409, "AlreadyExists")),
            StoreError::AlreadyExists
        );
        assert_eq!(map_err(api(409, "Conflict")), StoreError::Conflict);
        for code in [500, 503, 504, 429] {
            assert!(
                matches!(map_err(api(code, "x")), StoreError::Unavailable(_)),
                "{code}"
            );
        }
        for code in [400, 401, 403, 422] {
            assert!(
                matches!(map_err(api(code, "x")), StoreError::Rejected(_)),
                "{code}"
            );
        }
    }
}
