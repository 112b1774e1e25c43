//! What both Services-mode stores share: one [`Dialer`] with the request
//! bounds of a store whose writes carry R1 fences (no rate limit, a timeout
//! within the renew deadline), and the list-then-watch loop over it.

use crate::client::{ApiEndpoints, Credentials};
use crate::connection::map_err;
use crate::connection::{is_connection_error, Dialer};
use crate::store::{MIN_CONNECT_TIMEOUT, WATCH_GRACE, WATCH_TIMEOUT_SECS};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, WatchEvent as KubeWatchEvent, WatchParams};
use kube::Resource;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use vipd_election::{StoreError, Version};

/// Whether a watched object was applied or deleted.
pub(super) enum Change {
    Applied,
    Deleted,
}

/// One dialer plus the request bounds shared by both stores.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) namespace: String,
    pub(super) dialer: Dialer,
    pub(super) request_timeout: Duration,
    /// Woken by `reset` so a watch on the discarded client ends too.
    pub(super) reset_notify: Notify,
    pub(super) label: &'static str,
}

impl Conn {
    pub(super) fn new(
        credentials: Credentials,
        endpoints: &ApiEndpoints,
        namespace: String,
        request_timeout: Duration,
        label: &'static str,
    ) -> Self {
        // As KubeLeaseStore: connects get half the request budget, so a dead
        // first endpoint falls through to the next within one request.
        let connect_timeout = (request_timeout / 2).max(MIN_CONNECT_TIMEOUT);
        Conn {
            namespace,
            dialer: Dialer::new(credentials, endpoints, connect_timeout, label),
            request_timeout: request_timeout.max(MIN_CONNECT_TIMEOUT),
            reset_notify: Notify::new(),
            label,
        }
    }

    pub(super) fn reset(&self) {
        self.dialer.reset();
        self.reset_notify.notify_waiters();
    }

    /// Runs one request bounded by the request timeout; a connection error
    /// or timeout discards the client (R6).
    pub(super) async fn call<K, T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
        F: FnOnce(Api<K>) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.dialer
            .call::<K, _, _, _>(&self.namespace, self.request_timeout, what, f)
            .await
    }

    /// One watch request from `from_rv`: every object event goes through
    /// `map`, whose `Some` results are sent to `tx`. Returns the last
    /// resourceVersion seen when the server ends the watch (or `tx` is
    /// closed); `Err` on an `ERROR` event (410 Expired: the caller must
    /// re-list), a failure, a reset, or a watch that outlives its
    /// `timeoutSeconds` by [`WATCH_GRACE`] (a connection that died silently).
    pub(super) async fn watch<K, T>(
        &self,
        wp: &WatchParams,
        from_rv: &str,
        tx: &mpsc::Sender<T>,
        mut map: impl FnMut(Change, K) -> Option<T>,
    ) -> Result<String, StoreError>
    where
        K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
        K::DynamicType: Default,
    {
        let until = tokio::time::Instant::now()
            + Duration::from_secs(u64::from(WATCH_TIMEOUT_SECS))
            + WATCH_GRACE;
        let lent = self
            .dialer
            .client()
            .map_err(|e| StoreError::Rejected(format!("cannot build the API client: {e}")))?;
        let generation = lent.generation;
        let api = Api::<K>::namespaced(lent.client, &self.namespace);
        let reset = self.reset_notify.notified();
        tokio::pin!(reset);
        let mut stream =
            match tokio::time::timeout(self.request_timeout, api.watch(wp, from_rv)).await {
                Ok(Ok(s)) => s.boxed(),
                Ok(Err(e)) => {
                    if is_connection_error(&e) {
                        self.dialer.failed(generation);
                    }
                    return Err(map_err(e));
                }
                Err(_) => {
                    self.dialer.failed(generation);
                    return Err(StoreError::Unavailable(format!(
                        "{} watch request timed out",
                        self.label
                    )));
                }
            };
        self.dialer.succeeded(generation);
        let mut last = from_rv.to_owned();
        loop {
            let next = tokio::select! {
                n = tokio::time::timeout_at(until, stream.try_next()) => n,
                () = &mut reset => {
                    return Err(StoreError::Unavailable(format!("{} client reset", self.label)));
                }
                () = tx.closed() => return Ok(last),
            };
            let ev = match next {
                Err(_) => {
                    self.dialer.failed(generation);
                    return Err(StoreError::Unavailable(format!(
                        "{} watch outlived its timeout: connection presumed dead",
                        self.label
                    )));
                }
                Ok(Ok(Some(ev))) => ev,
                Ok(Ok(None)) => return Ok(last),
                Ok(Err(e)) => {
                    if is_connection_error(&e) {
                        self.dialer.failed(generation);
                    }
                    return Err(map_err(e));
                }
            };
            let (change, obj) = match ev {
                KubeWatchEvent::Added(o) | KubeWatchEvent::Modified(o) => (Change::Applied, o),
                KubeWatchEvent::Deleted(o) => (Change::Deleted, o),
                KubeWatchEvent::Bookmark(b) => {
                    last = b.metadata.resource_version;
                    continue;
                }
                KubeWatchEvent::Error(s) => {
                    // 410 Expired: `from_rv` was compacted away ("too old
                    // resource version"); the caller re-lists, as client-go's
                    // reflector does.
                    return Err(StoreError::Unavailable(format!(
                        "{} watch error {} {}: {}",
                        self.label, s.code, s.reason, s.message
                    )));
                }
            };
            if let Some(rv) = obj.meta().resource_version.clone() {
                last = rv;
            }
            if let Some(out) = map(change, obj) {
                if tx.send(out).await.is_err() {
                    return Ok(last);
                }
            }
        }
    }
}

/// The resourceVersion of an object read from the API (required: it guards
/// the next write).
pub(super) fn version_of(meta: &ObjectMeta, what: &str) -> Result<Version, StoreError> {
    meta.resource_version
        .clone()
        .filter(|rv| !rv.is_empty())
        .map(Version)
        .ok_or_else(|| StoreError::Rejected(format!("{what} without metadata.resourceVersion")))
}
