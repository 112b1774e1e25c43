//! Node leases: one client-go Lease per node, labelled
//! [`NODE_LEASE_LABEL`], carrying the node's [`NodeState`] in
//! [`NODE_STATE_ANNOTATION`] (see the parent module for the rules).

use super::conn::{version_of, Change, Conn};
use super::{NODE_LEASE_LABEL, NODE_STATE_ANNOTATION};
use crate::client::{ApiEndpoints, Credentials};
use crate::mapping;
use crate::store::WATCH_TIMEOUT_SECS;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams, WatchParams};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use vipd_election::{LeaseRecord, StoreError, Version};
use vipd_services::NodeState;

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
}
