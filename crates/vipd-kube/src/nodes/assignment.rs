//! The assignment ConfigMap: the assigner's address → node map in data key
//! [`ASSIGNMENT_KEY`], read and replaced with the resourceVersion guard.

use super::conn::{version_of, Change, Conn};
use super::ASSIGNMENT_KEY;
use crate::client::{ApiEndpoints, Credentials};
use crate::store::WATCH_TIMEOUT_SECS;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams, WatchParams};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use vipd_election::{StoreError, Version};
use vipd_services::Assignment;

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
