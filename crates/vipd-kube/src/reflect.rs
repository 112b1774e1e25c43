//! A reflector: list + watch of one kind that never gives up (SPEC R2), on
//! the rate-limited [`GeneralClient`].
//!
//! ```text
//!   state       outcome                                 next                          counter
//!   LIST        ok                                      Listed(all), WATCH(list rv)   lists
//!   LIST        403                                     back off, LIST                relists_forbidden
//!   LIST        any other error                         back off, LIST                relists_error
//!   WATCH(rv)   ADDED/MODIFIED/DELETED                  Applied/Deleted, rv moves     events
//!   WATCH(rv)   BOOKMARK                                rv moves
//!   WATCH(rv)   ended by the server (timeoutSeconds)    WATCH(last rv)
//!   WATCH(rv)   410 Gone (ERROR event or HTTP status)   LIST at once (*)              relists_gone
//!   WATCH(rv)   403                                     back off, LIST                relists_forbidden
//!   WATCH(rv)   other error, silent past timeout+grace,
//!               or ended at once without events         back off, WATCH(last rv)      relists_error
//! ```
//!
//! (*) with a back-off if the watch started from a list just made got the
//! 410, so a server that expires every version cannot spin us.
//!
//! This is client-go's `Reflector.ListAndWatch` (tools/cache/reflector.go)
//! without the store: the consumer receives [`ReflectEvent::Listed`] (the
//! full state, replacing whatever it had) followed by
//! [`ReflectEvent::Applied`] / [`ReflectEvent::Deleted`], and keeps its own
//! cache. A consumer that rebuilds its state on every `Listed` can never
//! miss a deletion across a relist.
//!
//! The loop is written here rather than taken from kube's `runtime`
//! feature, which pulls in a large dependency tree for a few dozen lines.
//!
//! Requests are built from the resource's URL path (`kube::core::Request`)
//! so that namespaced and cluster-scoped kinds share one code path; a
//! namespace given for a cluster-scoped kind is ignored.

use crate::general::{GeneralClient, GeneralError};
use crate::store::WATCH_TIMEOUT_SECS;
use futures::TryStreamExt;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{ListParams, WatchParams};
use kube::core::{ObjectList, Request, WatchEvent};
use std::any::TypeId;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use vipd_backoff::Backoff;

/// Grace on top of the watch's `timeoutSeconds` before a watch that has not
/// ended is declared dead (its connection died silently).
const WATCH_GRACE: Duration = Duration::from_secs(10);

/// A watch that ends normally sooner than this without delivering a single
/// event counts as a failure, so a server that closes every watch at once
/// cannot spin us (client-go's "very short watch" check in
/// `reflector.go:watchHandler`).
const SHORT_WATCH: Duration = Duration::from_secs(1);

/// Default first retry delay; client-go's reflector backs off from 800 ms.
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(800);
/// Default retry delay cap; client-go's reflector caps at 30 s.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a reflector reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ReflectEvent<K> {
    /// The full state (after the first list and after every relist):
    /// replace everything held so far.
    Listed(Vec<K>),
    /// An object was added or modified.
    Applied(K),
    /// An object was deleted (its last state).
    Deleted(K),
}

/// What to reflect and how to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReflectorConfig {
    /// Namespace to list and watch; `None` = all namespaces. Ignored for
    /// cluster-scoped kinds.
    pub namespace: Option<String>,
    /// `labelSelector` of the list and the watch.
    pub label_selector: Option<String>,
    /// `fieldSelector` of the list and the watch.
    pub field_selector: Option<String>,
    /// Server-side duration of one watch (`timeoutSeconds`); default
    /// [`WATCH_TIMEOUT_SECS`].
    pub watch_timeout_secs: u32,
    /// First retry delay after a failure.
    pub backoff_min: Duration,
    /// Retry delay cap.
    pub backoff_max: Duration,
}

impl Default for ReflectorConfig {
    /// All namespaces, no selectors, default timeout and back-off.
    fn default() -> Self {
        ReflectorConfig {
            namespace: None,
            label_selector: None,
            field_selector: None,
            watch_timeout_secs: WATCH_TIMEOUT_SECS,
            backoff_min: DEFAULT_BACKOFF_MIN,
            backoff_max: DEFAULT_BACKOFF_MAX,
        }
    }
}

impl ReflectorConfig {
    /// All namespaces (or a cluster-scoped kind).
    pub fn all() -> Self {
        Self::default()
    }

    /// One namespace.
    pub fn namespaced(ns: impl Into<String>) -> Self {
        ReflectorConfig {
            namespace: Some(ns.into()),
            ..Self::default()
        }
    }

    /// With a label selector (`app=x,tier!=db`).
    #[must_use]
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// With a field selector (`metadata.name=x`).
    #[must_use]
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }

    /// With another watch `timeoutSeconds` (at least 1).
    #[must_use]
    pub fn watch_timeout(mut self, secs: u32) -> Self {
        self.watch_timeout_secs = secs.max(1);
        self
    }

    /// With another retry back-off.
    #[must_use]
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }
}

/// Counters, shared with metrics (Relaxed atomics: each is independent).
#[derive(Debug, Default)]
pub struct ReflectorStats {
    /// Successful lists (the first one included).
    pub lists: AtomicU64,
    /// 410 Gone answers (watch `ERROR` event or HTTP status): the
    /// resourceVersion was compacted away; each is followed by a relist.
    pub relists_gone: AtomicU64,
    /// 403 answers to a list or watch; each is followed by a back-off and a
    /// relist.
    pub relists_forbidden: AtomicU64,
    /// Other failed lists or watches (disconnects, 5xx, timeouts, a watch
    /// silent past its timeout): each is followed by a back-off and a
    /// re-watch from the last resourceVersion, or a relist if there is none.
    pub relists_error: AtomicU64,
    /// Applied and Deleted events delivered.
    pub events: AtomicU64,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// 410: relist now.
    Gone,
    /// 403: back off, relist.
    Forbidden(String),
    /// Anything else: back off, re-watch (or relist without an rv).
    Failed(String),
}

impl Problem {
    fn of(e: &GeneralError) -> Self {
        match e {
            GeneralError::Api(kube::Error::Api(s)) if s.code == 410 => Problem::Gone,
            GeneralError::Api(kube::Error::Api(s)) if s.code == 403 => {
                Problem::Forbidden(e.to_string())
            }
            _ => Problem::Failed(e.to_string()),
        }
    }

    fn of_status(s: &kube::core::Status) -> Self {
        let msg = format!("watch error {} {}: {}", s.code, s.reason, s.message);
        match s.code {
            410 => Problem::Gone,
            403 => Problem::Forbidden(msg),
            _ => Problem::Failed(msg),
        }
    }
}

/// How one watch request ended (the server answered, or we stopped it).
#[derive(Debug)]
enum WatchEnd {
    /// The server ended the stream (its `timeoutSeconds`).
    Ended,
    /// An `ERROR` event.
    Status(Problem),
    /// The receiver was dropped.
    Closed,
}

/// The health state, for logging one line per change (not per retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Starting,
    Ok,
    Forbidden,
    Failing,
}

/// Whether `K` is cluster-scoped (its URL carries no namespace).
fn cluster_scoped<K>() -> bool
where
    K: kube::Resource,
    K::Scope: 'static,
{
    TypeId::of::<K::Scope>() == TypeId::of::<k8s_openapi::ClusterResourceScope>()
}

/// The collection URL path of `K` in `namespace` (ignored when `K` is
/// cluster-scoped).
fn collection_path<K>(namespace: Option<&str>) -> String
where
    K: kube::Resource,
    K::Scope: 'static,
    K::DynamicType: Default,
{
    let ns = if cluster_scoped::<K>() {
        None
    } else {
        namespace
    };
    K::url_path(&K::DynamicType::default(), ns)
}

/// The error a watch reports when its stream outlived its bound: a
/// connection error, so the general client re-dials (R6).
fn silent_watch() -> kube::Error {
    kube::Error::Service("watch silent past its timeout: connection presumed dead".into())
}

/// Lists and watches `K` until `tx`'s receiver is dropped; never returns
/// earlier and never returns an error.
///
/// list → [`ReflectEvent::Listed`]; watch from the list's resourceVersion
/// (bookmarks requested, and only move the resourceVersion) →
/// [`ReflectEvent::Applied`] / [`ReflectEvent::Deleted`]; a watch the server
/// ends normally is re-issued from the last resourceVersion. 410 → relist
/// at once (after a back-off if the watch began from a list just made and
/// made no progress); 403 → back off, relist; any other error, or a watch silent past
/// its timeout plus a grace period → back off (jittered), then re-watch from
/// the last resourceVersion (relist if there is none). The back-off returns
/// to its minimum once a watch has run (lasted a second or delivered
/// events).
///
/// Each watch takes one token of the general client's rate limit (see
/// [`GeneralClient::streaming`]); the list is an ordinary rate-limited,
/// time-bounded request.
pub async fn reflect<K>(
    client: Arc<GeneralClient>,
    cfg: ReflectorConfig,
    tx: mpsc::Sender<ReflectEvent<K>>,
    stats: Arc<ReflectorStats>,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::Scope: 'static,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let path = collection_path::<K>(cfg.namespace.as_deref());
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    let mut rv: Option<String> = None;
    let mut health = Health::Starting;
    // No watch has made progress since the last list.
    let mut just_listed = false;
    loop {
        let problem = match rv.as_mut() {
            None => match list::<K>(&client, &path, &cfg).await {
                Ok((items, list_rv)) => {
                    stats.lists.fetch_add(1, Ordering::Relaxed);
                    let n = items.len();
                    if tx.send(ReflectEvent::Listed(items)).await.is_err() {
                        return;
                    }
                    rv = Some(list_rv);
                    just_listed = true;
                    match health {
                        Health::Ok => {}
                        Health::Starting => {
                            tracing::debug!(%kind, %path, objects = n, "reflector listed");
                        }
                        Health::Forbidden | Health::Failing => {
                            tracing::info!(%kind, %path, objects = n, "reflector recovered: relisted");
                        }
                    }
                    health = Health::Ok;
                    None
                }
                Err(p) => Some(p),
            },
            Some(cur) => {
                let started = Instant::now();
                let mut events = 0u64;
                let res =
                    watch_once::<K>(&client, &path, &cfg, cur, &tx, &stats, &mut events).await;
                // A watch that ran (a second, or delivered events) proves the
                // API works: the next failure retries from the minimum.
                if events > 0 || started.elapsed() >= SHORT_WATCH {
                    backoff.reset();
                    just_listed = false;
                }
                match res {
                    Ok(WatchEnd::Closed) => return,
                    Ok(WatchEnd::Ended) if events == 0 && started.elapsed() < SHORT_WATCH => {
                        Some(Problem::Failed("watch ended at once without events".into()))
                    }
                    Ok(WatchEnd::Ended) => None,
                    Ok(WatchEnd::Status(p)) => Some(p),
                    Err(e) => Some(Problem::of(&e)),
                }
            }
        };
        let delay = match problem {
            None => {
                if health != Health::Ok {
                    tracing::info!(%kind, %path, "reflector recovered: watching");
                    health = Health::Ok;
                }
                continue;
            }
            Some(Problem::Gone) => {
                // Routine (etcd compaction while we were away): no back-off,
                // as client-go relists at once on "too old resource version".
                stats.relists_gone.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%kind, %path, "resourceVersion expired (410 Gone); relisting");
                rv = None;
                if !just_listed {
                    continue;
                }
                backoff.next_delay()
            }
            Some(Problem::Forbidden(msg)) => {
                stats.relists_forbidden.fetch_add(1, Ordering::Relaxed);
                if health != Health::Forbidden {
                    tracing::warn!(%kind, %path, error = %msg,
                        "reflector forbidden (403); backing off and relisting until allowed");
                    health = Health::Forbidden;
                }
                // Whatever we were allowed to see may have changed.
                rv = None;
                backoff.next_delay()
            }
            Some(Problem::Failed(msg)) => {
                stats.relists_error.fetch_add(1, Ordering::Relaxed);
                if health != Health::Failing {
                    tracing::warn!(%kind, %path, error = %msg,
                        "reflector failing; backing off and retrying");
                    health = Health::Failing;
                }
                backoff.next_delay()
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tx.closed() => return,
        }
    }
}

/// One list: all objects and the list's resourceVersion.
async fn list<K>(
    client: &GeneralClient,
    path: &str,
    cfg: &ReflectorConfig,
) -> Result<(Vec<K>, String), Problem>
where
    K: kube::Resource + Clone + DeserializeOwned,
{
    let mut lp = ListParams::default();
    lp.label_selector.clone_from(&cfg.label_selector);
    lp.field_selector.clone_from(&cfg.field_selector);
    // No `limit`: one request, one consistent snapshot (no continue tokens
    // that can expire with 410 half-way through).
    let list: ObjectList<K> = client
        .call(|c| async move {
            let req = Request::new(path)
                .list(&lp)
                .map_err(kube::Error::BuildRequest)?;
            c.request::<ObjectList<K>>(req).await
        })
        .await
        .map_err(|e| match Problem::of(&e) {
            // A list without a resourceVersion cannot be too old; relisting
            // at once would spin on a server that says so anyway.
            Problem::Gone => Problem::Failed(e.to_string()),
            p => p,
        })?;
    let rv = list
        .metadata
        .resource_version
        .filter(|rv| !rv.is_empty())
        .ok_or_else(|| Problem::Failed("list without a resourceVersion".into()))?;
    Ok((list.items, rv))
}

/// One watch request from `rv`, which follows the events and bookmarks.
/// `Err` is a request or connection failure (or a silent stream).
async fn watch_once<K>(
    client: &GeneralClient,
    path: &str,
    cfg: &ReflectorConfig,
    rv: &mut String,
    tx: &mpsc::Sender<ReflectEvent<K>>,
    stats: &ReflectorStats,
    events: &mut u64,
) -> Result<WatchEnd, GeneralError>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut wp = WatchParams::default().timeout(cfg.watch_timeout_secs);
    wp.bookmarks = true;
    wp.label_selector.clone_from(&cfg.label_selector);
    wp.field_selector.clone_from(&cfg.field_selector);
    let until =
        Instant::now() + Duration::from_secs(u64::from(cfg.watch_timeout_secs)) + WATCH_GRACE;
    client
        .streaming(|c| async move {
            let req = Request::new(path)
                .watch(&wp, rv)
                .map_err(kube::Error::BuildRequest)?;
            let stream = tokio::select! {
                s = tokio::time::timeout_at(until, c.request_events::<K>(req)) => match s {
                    Ok(s) => s?,
                    Err(_) => return Err(silent_watch()),
                },
                () = tx.closed() => return Ok(WatchEnd::Closed),
            };
            let mut stream = std::pin::pin!(stream);
            loop {
                let next = tokio::select! {
                    n = tokio::time::timeout_at(until, stream.try_next()) => n,
                    () = tx.closed() => return Ok(WatchEnd::Closed),
                };
                let ev = match next {
                    Err(_) => return Err(silent_watch()),
                    Ok(Err(e)) => return Err(e),
                    Ok(Ok(None)) => return Ok(WatchEnd::Ended),
                    Ok(Ok(Some(ev))) => ev,
                };
                let out = match ev {
                    WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                        note_rv(rv, &o);
                        ReflectEvent::Applied(o)
                    }
                    WatchEvent::Deleted(o) => {
                        note_rv(rv, &o);
                        ReflectEvent::Deleted(o)
                    }
                    WatchEvent::Bookmark(b) => {
                        // A bookmark only moves the resourceVersion (so the
                        // next watch starts after changes we were not sent).
                        if !b.metadata.resource_version.is_empty() {
                            *rv = b.metadata.resource_version;
                        }
                        continue;
                    }
                    WatchEvent::Error(s) => return Ok(WatchEnd::Status(Problem::of_status(&s))),
                };
                *events += 1;
                stats.events.fetch_add(1, Ordering::Relaxed);
                if tx.send(out).await.is_err() {
                    return Ok(WatchEnd::Closed);
                }
            }
        })
        .await
}

fn note_rv<K: kube::Resource>(rv: &mut String, o: &K) {
    if let Some(v) = o.meta().resource_version.as_deref() {
        if !v.is_empty() {
            v.clone_into(rv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Node};

    fn api_error(code: u16) -> GeneralError {
        let mut s = kube::core::Status::failure("nope", "Reason");
        s.code = code;
        GeneralError::Api(kube::Error::Api(Box::new(s)))
    }

    #[test]
    fn gone_and_forbidden_are_told_apart_from_other_failures() {
        assert_eq!(Problem::of(&api_error(410)), Problem::Gone);
        assert!(matches!(
            Problem::of(&api_error(403)),
            Problem::Forbidden(_)
        ));
        assert!(matches!(Problem::of(&api_error(500)), Problem::Failed(_)));
        assert!(matches!(
            Problem::of(&GeneralError::Timeout(Duration::from_secs(1))),
            Problem::Failed(_)
        ));
        assert!(matches!(
            Problem::of(&GeneralError::Api(silent_watch())),
            Problem::Failed(_)
        ));
    }

    #[test]
    fn watch_error_events_map_like_http_errors() {
        let mut s = kube::core::Status::failure("too old resource version: 5 (9)", "Expired");
        s.code = 410;
        assert_eq!(Problem::of_status(&s), Problem::Gone);
        s.code = 403;
        assert!(matches!(Problem::of_status(&s), Problem::Forbidden(_)));
        s.code = 500;
        assert!(matches!(Problem::of_status(&s), Problem::Failed(_)));
    }

    #[test]
    fn namespace_is_used_for_namespaced_kinds_and_ignored_for_cluster_scoped() {
        assert_eq!(
            collection_path::<ConfigMap>(Some("kube-system")),
            "/api/v1/namespaces/kube-system/configmaps"
        );
        assert_eq!(collection_path::<ConfigMap>(None), "/api/v1/configmaps");
        assert_eq!(
            collection_path::<Node>(Some("kube-system")),
            "/api/v1/nodes"
        );
    }

    #[test]
    fn silent_watch_counts_as_a_connection_failure() {
        assert!(crate::connection::is_connection_error(&silent_watch()));
    }
}
