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

use crate::client::{is_connection_error, ApiEndpoints, Credentials, Dialer};
use crate::mapping;
use crate::store::{map_err, MIN_CONNECT_TIMEOUT, WATCH_GRACE, WATCH_TIMEOUT_SECS};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams, PostParams, WatchEvent as KubeWatchEvent, WatchParams};
use kube::Resource;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use vipd_election::{LeaseRecord, StoreError, Version};
use vipd_services::{Assignment, NodeState};

/// Label key carried (value `"true"`) by every node lease: list and watch
/// select on it, so other Leases in the namespace cost nothing.
pub const NODE_LEASE_LABEL: &str = "vipd.io/node-lease";
/// Annotation holding the JSON of the node's [`NodeState`].
pub const NODE_STATE_ANNOTATION: &str = "vipd.io/node-state";
/// ConfigMap data key holding the JSON of the [`Assignment`].
pub const ASSIGNMENT_KEY: &str = "assignment";

/// Prefix of node lease names.
const LEASE_PREFIX: &str = "vipd-node-";
/// Longest object name (a DNS-1123 subdomain).
const MAX_NAME: usize = 253;

/// One node lease as read from the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLease {
    /// The node (`holderIdentity`).
    pub node: String,
    /// client-go's fields.
    pub record: LeaseRecord,
    /// The ownership content (default when absent or unreadable).
    pub state: NodeState,
    /// `metadata.resourceVersion`.
    pub version: Version,
}

/// A change seen by [`NodeLeaseStore::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeLeaseEvent {
    /// The lease was created or replaced.
    Applied(NodeLease),
    /// The lease was deleted.
    Deleted {
        /// Whose lease.
        node: String,
        /// The resourceVersion of the deletion.
        version: Version,
    },
}

/// Whether a watched object was applied or deleted.
enum Change {
    Applied,
    Deleted,
}

/// One dialer plus the request bounds shared by both stores.
#[derive(Debug)]
struct Conn {
    namespace: String,
    dialer: Dialer,
    request_timeout: Duration,
    /// Woken by `reset` so a watch on the discarded client ends too.
    reset_notify: Notify,
    label: &'static str,
}

impl Conn {
    fn new(
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

    fn reset(&self) {
        self.dialer.reset();
        self.reset_notify.notify_waiters();
    }

    /// Runs one request bounded by the request timeout; a connection error
    /// or timeout discards the client (R6).
    async fn call<K, T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
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
    async fn watch<K, T>(
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
fn version_of(meta: &ObjectMeta, what: &str) -> Result<Version, StoreError> {
    meta.resource_version
        .clone()
        .filter(|rv| !rv.is_empty())
        .map(Version)
        .ok_or_else(|| StoreError::Rejected(format!("{what} without metadata.resourceVersion")))
}

/// A node lease's state annotation; default (and a debug log) when absent
/// or unreadable: generation 0 proves nothing.
fn state_of(lease: &Lease) -> NodeState {
    let name = lease.metadata.name.as_deref().unwrap_or_default();
    match lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(NODE_STATE_ANNOTATION))
    {
        None => {
            tracing::debug!(lease = name, "node lease without state annotation");
            NodeState::default()
        }
        Some(json) => serde_json::from_str(json).unwrap_or_else(|e| {
            tracing::debug!(lease = name, error = %e, "unreadable node state annotation");
            NodeState::default()
        }),
    }
}

/// The [`NodeLease`] of a Lease object, or `None` for a labelled Lease that
/// is not a node lease (no holder, or a name that is not the holder's).
fn node_lease_of(lease: &Lease) -> Result<Option<NodeLease>, StoreError> {
    let version = version_of(&lease.metadata, "lease")?;
    let record = mapping::record_from_spec(lease.spec.as_ref());
    let name = lease.metadata.name.as_deref().unwrap_or_default();
    if record.holder_identity.is_empty()
        || NodeLeaseStore::lease_name(&record.holder_identity) != name
    {
        tracing::debug!(lease = name, holder = %record.holder_identity,
            "labelled lease is not a node lease; ignored");
        return Ok(None);
    }
    Ok(Some(NodeLease {
        node: record.holder_identity.clone(),
        state: state_of(lease),
        record,
        version,
    }))
}

/// Sets the node-lease label and the state annotation on `meta`, keeping
/// every other label and annotation.
fn mark(meta: &mut ObjectMeta, state: &NodeState) -> Result<(), StoreError> {
    let json = serde_json::to_string(state)
        .map_err(|e| StoreError::Rejected(format!("node state does not serialise: {e}")))?;
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(NODE_LEASE_LABEL.to_owned(), "true".to_owned());
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(NODE_STATE_ANNOTATION.to_owned(), json);
    Ok(())
}

/// FNV-1a (64 bit), for shortening over-long lease names.
fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Node leases in one namespace (see the module docs). Cheap to share
/// behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct NodeLeaseStore {
    conn: Conn,
    /// The Lease object last seen per node (read, written, listed or
    /// watched): the base of the next replace, so labels, annotations and
    /// owner references added by others survive (client-go sends back the
    /// object it read), and the spec a tombstone leaves unchanged.
    last: Mutex<HashMap<String, Lease>>,
}

impl NodeLeaseStore {
    /// A store for node leases in `namespace`; `request_timeout` bounds
    /// every request (keep it within the renew deadline). Does not connect:
    /// the first call dials.
    pub fn new(
        credentials: Credentials,
        endpoints: &ApiEndpoints,
        namespace: impl Into<String>,
        request_timeout: Duration,
    ) -> Self {
        NodeLeaseStore {
            conn: Conn::new(
                credentials,
                endpoints,
                namespace.into(),
                request_timeout,
                "node-lease",
            ),
            last: Mutex::new(HashMap::new()),
        }
    }

    /// The Lease name of `node`: `vipd-node-NODE`. A node name too long for
    /// the prefix (node names may have 253 characters) is cut and suffixed
    /// with a hash of the whole name, so the result stays a valid, distinct
    /// DNS-1123 subdomain of at most 253 characters.
    pub fn lease_name(node: &str) -> String {
        if LEASE_PREFIX.len() + node.len() <= MAX_NAME {
            return format!("{LEASE_PREFIX}{node}");
        }
        let suffix = format!("-{:016x}", fnv64(node));
        let mut keep = MAX_NAME - LEASE_PREFIX.len() - suffix.len();
        while !node.is_char_boundary(keep) {
            keep -= 1;
        }
        // Each DNS label must end with an alphanumeric character.
        let head = node[..keep].trim_end_matches(['-', '.']);
        format!("{LEASE_PREFIX}{head}{suffix}")
    }

    /// The lease namespace.
    pub fn namespace(&self) -> &str {
        &self.conn.namespace
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        // A map of plain values, consistent after every statement.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, node: &str, lease: Option<&Lease>) {
        let mut cache = self.cache();
        match lease {
            Some(l) => cache.insert(node.to_owned(), l.clone()),
            None => cache.remove(node),
        };
    }

    fn cached(&self, node: &str) -> Option<Lease> {
        self.cache().get(node).cloned()
    }

    /// Reads `node`'s lease; `Ok(None)` when it does not exist.
    pub async fn read(&self, node: &str) -> Result<Option<NodeLease>, StoreError> {
        let name = Self::lease_name(node);
        let lease = self
            .conn
            .call(
                "get",
                |api: Api<Lease>| async move { api.get_opt(&name).await },
            )
            .await?;
        let Some(lease) = lease else {
            self.remember(node, None);
            return Ok(None);
        };
        let version = version_of(&lease.metadata, "lease")?;
        self.remember(node, Some(&lease));
        // Read by name: report it even if its holder is odd (the node's
        // own driver decides), with the node we asked for.
        let record = mapping::record_from_spec(lease.spec.as_ref());
        Ok(Some(NodeLease {
            node: node.to_owned(),
            state: state_of(&lease),
            record,
            version,
        }))
    }

    /// Writes `node`'s lease: `expected: None` creates it (409 →
    /// [`StoreError::AlreadyExists`]); `Some(v)` replaces it at
    /// resourceVersion `v` (409 → [`StoreError::Conflict`]), keeping the
    /// labels and annotations of the object last seen. Sets the label and
    /// the state annotation. Returns the new version.
    pub async fn write(
        &self,
        node: &str,
        record: &LeaseRecord,
        state: &NodeState,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let name = Self::lease_name(node);
        let written = match expected {
            None => {
                let mut lease = mapping::new_lease(&self.conn.namespace, &name, record)?;
                mark(&mut lease.metadata, state)?;
                self.conn
                    .call("create", |api: Api<Lease>| async move {
                        api.create(&PostParams::default(), &lease).await
                    })
                    .await
                    .map_err(|e| match e {
                        // A create can only lose to an existing object.
                        StoreError::Conflict => StoreError::AlreadyExists,
                        e => e,
                    })?
            }
            Some(expected) => {
                let base = self.cached(node).map_or_else(
                    || mapping::new_lease(&self.conn.namespace, &name, record),
                    Ok,
                )?;
                let mut lease = mapping::replaced_lease(base, record, expected)?;
                mark(&mut lease.metadata, state)?;
                self.replace(&name, lease).await?
            }
        };
        let version = version_of(&written.metadata, "lease")?;
        self.remember(node, Some(&written));
        Ok(version)
    }

    async fn replace(&self, name: &str, lease: Lease) -> Result<Lease, StoreError> {
        let name = name.to_owned();
        self.conn
            .call("replace", |api: Api<Lease>| async move {
                api.replace(&name, &PostParams::default(), &lease).await
            })
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => StoreError::Conflict,
                e => e,
            })
    }

    /// The assigner's tombstone: replaces `node`'s lease at `expected` with
    /// state `{generation, held: {}, expired: true}`, spec unchanged. 409 (or
    /// a lease no longer at `expected`, or gone) → [`StoreError::Conflict`].
    pub async fn tombstone(
        &self,
        node: &str,
        expected: &Version,
        generation: u64,
    ) -> Result<Version, StoreError> {
        // The spec must be the one at `expected`: the object seen by list
        // or watch, else a fresh read. A read that finds another version
        // answers what the PUT would (409) without writing.
        let at_expected = |l: &Lease| l.metadata.resource_version.as_ref() == Some(&expected.0);
        let base = match self.cached(node).filter(at_expected) {
            Some(l) => l,
            None => match self.read(node).await? {
                Some(_) => self
                    .cached(node)
                    .filter(at_expected)
                    .ok_or(StoreError::Conflict)?,
                None => return Err(StoreError::Conflict),
            },
        };
        let state = NodeState {
            generation,
            held: Default::default(),
            expired: true,
        };
        let mut lease = base;
        mark(&mut lease.metadata, &state)?;
        let written = self.replace(&Self::lease_name(node), lease).await?;
        let version = version_of(&written.metadata, "lease")?;
        self.remember(node, Some(&written));
        Ok(version)
    }

    /// Every node lease (`labelSelector vipd.io/node-lease=true`) and the
    /// list's resourceVersion (where a watch resumes).
    pub async fn list(&self) -> Result<(Vec<NodeLease>, String), StoreError> {
        let lp = ListParams::default().labels(&format!("{NODE_LEASE_LABEL}=true"));
        let list = self
            .conn
            .call("list", |api: Api<Lease>| async move { api.list(&lp).await })
            .await?;
        let rv = list
            .metadata
            .resource_version
            .clone()
            .filter(|rv| !rv.is_empty())
            .ok_or_else(|| StoreError::Rejected("lease list without resourceVersion".into()))?;
        let mut out = Vec::with_capacity(list.items.len());
        let mut cache = HashMap::with_capacity(list.items.len());
        for lease in list.items {
            if let Some(nl) = node_lease_of(&lease)? {
                cache.insert(nl.node.clone(), lease);
                out.push(nl);
            }
        }
        // A list is the whole truth: leases gone since are forgotten.
        *self.cache() = cache;
        Ok((out, rv))
    }

    /// Watches node leases from `from_rv` until the server ends the watch
    /// (`timeoutSeconds` = [`WATCH_TIMEOUT_SECS`]) or it fails, sending every
    /// change to `tx`; returns the last resourceVersion seen. An `ERROR`
    /// event (410 Expired) or any failure is an `Err`: re-list. The whole
    /// watch is bounded, so a silently dead connection ends it too.
    pub async fn watch(
        &self,
        from_rv: &str,
        tx: &mpsc::Sender<NodeLeaseEvent>,
    ) -> Result<String, StoreError> {
        let wp = WatchParams::default()
            .labels(&format!("{NODE_LEASE_LABEL}=true"))
            .timeout(WATCH_TIMEOUT_SECS);
        self.conn
            .watch(&wp, from_rv, tx, |change, lease: Lease| {
                let nl = match node_lease_of(&lease) {
                    Ok(Some(nl)) => nl,
                    Ok(None) => return None,
                    Err(e) => {
                        tracing::debug!(error = %e, "unusable node lease in watch; ignored");
                        return None;
                    }
                };
                match change {
                    Change::Applied => {
                        self.remember(&nl.node, Some(&lease));
                        Some(NodeLeaseEvent::Applied(nl))
                    }
                    Change::Deleted => {
                        self.remember(&nl.node, None);
                        Some(NodeLeaseEvent::Deleted {
                            node: nl.node,
                            version: nl.version,
                        })
                    }
                }
            })
            .await
    }

    /// Drops the client: the next call re-dials (and a running watch ends).
    pub fn reset(&self) {
        self.conn.reset();
    }
}

/// The assignment in data key [`ASSIGNMENT_KEY`] of one ConfigMap. Cheap to
/// share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct AssignmentStore {
    conn: Conn,
    name: String,
    /// The ConfigMap last seen: the base of the next replace (other data
    /// keys, labels and annotations survive).
    last: Mutex<Option<ConfigMap>>,
}

/// The assignment in a ConfigMap. A ConfigMap without the key reads as the
/// empty assignment at generation 0, like a missing ConfigMap, so the
/// assigner can write it (with CAS); an unreadable one is rejected rather
/// than overwritten, since restarting generations could reorder them.
fn assignment_of(cm: &ConfigMap) -> Result<(Assignment, Version), StoreError> {
    let version = version_of(&cm.metadata, "configmap")?;
    let assignment = match cm.data.as_ref().and_then(|d| d.get(ASSIGNMENT_KEY)) {
        None => Assignment::default(),
        Some(json) => serde_json::from_str(json).map_err(|e| {
            StoreError::Rejected(format!("unreadable {ASSIGNMENT_KEY} in configmap: {e}"))
        })?,
    };
    Ok((assignment, version))
}

impl AssignmentStore {
    /// A store for ConfigMap `namespace/name`; `request_timeout` bounds
    /// every request. Does not connect: the first call dials.
    pub fn new(
        credentials: Credentials,
        endpoints: &ApiEndpoints,
        namespace: impl Into<String>,
        name: impl Into<String>,
        request_timeout: Duration,
    ) -> Self {
        AssignmentStore {
            conn: Conn::new(
                credentials,
                endpoints,
                namespace.into(),
                request_timeout,
                "assignment",
            ),
            name: name.into(),
            last: Mutex::new(None),
        }
    }

    /// The ConfigMap's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn remember(&self, cm: Option<&ConfigMap>) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = cm.cloned();
    }

    fn cached(&self) -> Option<ConfigMap> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the assignment and its version; `Ok(None)` when the ConfigMap
    /// does not exist.
    pub async fn read(&self) -> Result<Option<(Assignment, Version)>, StoreError> {
        let name = self.name.clone();
        let cm = self
            .conn
            .call("get", |api: Api<ConfigMap>| async move {
                api.get_opt(&name).await
            })
            .await?;
        let Some(cm) = cm else {
            self.remember(None);
            return Ok(None);
        };
        self.remember(Some(&cm));
        assignment_of(&cm).map(Some)
    }

    /// Writes the assignment: `expected: None` creates the ConfigMap (409 →
    /// [`StoreError::AlreadyExists`]); `Some(v)` replaces it at
    /// resourceVersion `v` (409 → [`StoreError::Conflict`]). Returns the new
    /// version.
    pub async fn write(
        &self,
        a: &Assignment,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let json = serde_json::to_string(a)
            .map_err(|e| StoreError::Rejected(format!("assignment does not serialise: {e}")))?;
        let fresh = || ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.conn.namespace.clone()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        let written = match expected {
            None => {
                let mut cm = fresh();
                cm.data = Some([(ASSIGNMENT_KEY.to_owned(), json)].into());
                self.conn
                    .call("create", |api: Api<ConfigMap>| async move {
                        api.create(&PostParams::default(), &cm).await
                    })
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict => StoreError::AlreadyExists,
                        e => e,
                    })?
            }
            Some(expected) => {
                if expected.0.is_empty() {
                    // An empty resourceVersion would make the PUT blind.
                    return Err(StoreError::Rejected("empty resourceVersion".into()));
                }
                let mut cm = self.cached().unwrap_or_else(fresh);
                cm.metadata.resource_version = Some(expected.0.clone());
                cm.data
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ASSIGNMENT_KEY.to_owned(), json);
                let name = self.name.clone();
                self.conn
                    .call("replace", |api: Api<ConfigMap>| async move {
                        api.replace(&name, &PostParams::default(), &cm).await
                    })
                    .await
                    .map_err(|e| match e {
                        StoreError::AlreadyExists => StoreError::Conflict,
                        e => e,
                    })?
            }
        };
        let version = version_of(&written.metadata, "configmap")?;
        self.remember(Some(&written));
        Ok(version)
    }

    /// Watches the ConfigMap (`fieldSelector metadata.name=NAME`) from
    /// `from_rv`, sending the assignment and version of every ADDED or
    /// MODIFIED event; returns the last resourceVersion seen when the server
    /// ends the watch. 410 or any failure → `Err` (re-read). A deletion is
    /// not sent (the next read reports it); an unreadable assignment is
    /// logged and skipped.
    pub async fn watch(
        &self,
        from_rv: &str,
        tx: &mpsc::Sender<(Assignment, Version)>,
    ) -> Result<String, StoreError> {
        let wp = WatchParams::default()
            .fields(&format!("metadata.name={}", self.name))
            .timeout(WATCH_TIMEOUT_SECS);
        self.conn
            .watch(&wp, from_rv, tx, |change, cm: ConfigMap| match change {
                Change::Deleted => {
                    self.remember(None);
                    None
                }
                Change::Applied => {
                    self.remember(Some(&cm));
                    match assignment_of(&cm) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            tracing::warn!(configmap = %self.name, error = %e,
                                "assignment update ignored");
                            None
                        }
                    }
                }
            })
            .await
    }

    /// Drops the client: the next call re-dials (and a running watch ends).
    pub fn reset(&self) {
        self.conn.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_name_is_prefixed_and_long_names_stay_valid_and_distinct() {
        assert_eq!(NodeLeaseStore::lease_name("node-a"), "vipd-node-node-a");
        let base = "a".repeat(240);
        let a = NodeLeaseStore::lease_name(&format!("{base}.b-c-d-e-f-g"));
        let b = NodeLeaseStore::lease_name(&format!("{base}.b-c-d-e-f-h"));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert!(!a.contains(".-") && !a.contains("--"), "{a}");
        let exact = "n".repeat(MAX_NAME - LEASE_PREFIX.len());
        assert_eq!(
            NodeLeaseStore::lease_name(&exact),
            format!("{LEASE_PREFIX}{exact}")
        );
    }

    #[test]
    fn missing_or_garbled_state_reads_as_generation_zero() {
        let mut lease =
            mapping::new_lease("ns", "vipd-node-a", &LeaseRecord::default()).expect("lease");
        assert_eq!(state_of(&lease), NodeState::default());
        lease.metadata.annotations =
            Some([(NODE_STATE_ANNOTATION.to_owned(), "{not json".to_owned())].into());
        assert_eq!(state_of(&lease), NodeState::default());
    }

    #[test]
    fn configmap_without_the_key_is_the_empty_assignment_but_garbage_is_rejected() {
        let mut cm = ConfigMap {
            metadata: ObjectMeta {
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        assert_eq!(
            assignment_of(&cm),
            Ok((Assignment::default(), Version("7".into())))
        );
        cm.data = Some([(ASSIGNMENT_KEY.to_owned(), "[]".to_owned())].into());
        assert!(matches!(assignment_of(&cm), Err(StoreError::Rejected(_))));
    }
}
