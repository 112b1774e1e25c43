//! Best-effort Kubernetes Events on the Lease (SPEC §6, R5): acquired,
//! lost, duplicate detected, health changed.
//!
//! [`EventRecorder::record`] never blocks and never fails: it puts the event
//! on a bounded queue, or drops it and counts the drop when the queue is
//! full. A background task posts queued events with the [`GeneralClient`]
//! (its own connection and rate limit, so events can never delay a lease
//! renewal); failures are logged at debug and counted.
//!
//! The body is a core/v1 Event as client-go's `EventRecorder` writes it
//! (`generateName: <lease>.`, `involvedObject` the Lease, `source.component`,
//! first/last timestamps, `count: 1`).

use crate::general::GeneralClient;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;
use vipd_election::WallTime;

/// Queue length: events beyond it are dropped (and counted).
pub const EVENT_QUEUE: usize = 64;

/// client-go's event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Reasons vipd emits (the `reason` field, CamelCase as Kubernetes uses).
pub mod reason {
    /// This node acquired the lease.
    pub const ACQUIRED: &str = "LeaderElection";
    /// This node lost (or released) the lease.
    pub const LOST: &str = "LeaderLost";
    /// Another MAC claims an owned VIP on the wire (R5).
    pub const DUPLICATE: &str = "DuplicateVIP";
    /// A health check changed state (R8).
    pub const HEALTH: &str = "HealthChanged";
    /// Services mode: this node started announcing a Service's address.
    pub const SVC_ACQUIRED: &str = "AddressAcquired";
    /// Services mode: a Service's address moved away from this node.
    pub const SVC_MOVED: &str = "AddressMoved";
    /// Services mode: two Services claim one address with overlapping
    /// ports, or an address is invalid.
    pub const SVC_CONFLICT: &str = "AddressConflict";
    /// Services mode: IPAM found no free address in the pool.
    pub const SVC_POOL_EXHAUSTED: &str = "PoolExhausted";
}

/// Counters of the recorder, for metrics.
#[derive(Debug, Default)]
pub struct EventStats {
    /// Events posted.
    pub sent: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Events the API refused or that could not be sent.
    pub failed: AtomicU64,
}

#[derive(Debug)]
struct Pending {
    /// The object the event is about; `None`: the target's Lease.
    about: Option<ObjectReference>,
    reason: String,
    message: String,
    kind: EventType,
    at: WallTime,
}

/// Where events are attached and who reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventTarget {
    /// The Lease's namespace (the Event is created there).
    pub namespace: String,
    /// The Lease's name.
    pub lease: String,
    /// `source.component` (`vipd`).
    pub component: String,
    /// `source.host` (the node name), if known.
    pub host: Option<String>,
}

/// The non-blocking handle. Clone it freely.
#[derive(Clone, Debug)]
pub struct EventRecorder {
    tx: mpsc::Sender<Pending>,
    stats: Arc<EventStats>,
}

impl EventRecorder {
    /// Starts the posting task on the current runtime. The task ends when
    /// every recorder handle is dropped; the returned handle aborts it on
    /// drop (task ownership, STYLE.md lesson 9).
    pub fn spawn(client: Arc<GeneralClient>, target: EventTarget) -> (Self, AbortOnDropHandle<()>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let stats = Arc::new(EventStats::default());
        let task = tokio::spawn(post_loop(client, target, rx, stats.clone()));
        (EventRecorder { tx, stats }, AbortOnDropHandle::new(task))
    }

    /// Queues an event; never blocks. Returns whether it was queued.
    pub fn record(&self, reason: &str, message: impl Into<String>, kind: EventType) -> bool {
        self.queue(Pending {
            about: None,
            reason: reason.to_owned(),
            message: message.into(),
            kind,
            at: WallTime::now(),
        })
    }

    /// Like [`EventRecorder::record`], about another object (a Service in
    /// Services mode); the Event is created in that object's namespace.
    pub fn record_about(
        &self,
        about: ObjectReference,
        reason: &str,
        message: impl Into<String>,
        kind: EventType,
    ) -> bool {
        self.queue(Pending {
            about: Some(about),
            reason: reason.to_owned(),
            message: message.into(),
            kind,
            at: WallTime::now(),
        })
    }

    fn queue(&self, p: Pending) -> bool {
        match self.tx.try_send(p) {
            Ok(()) => true,
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &EventStats {
        &self.stats
    }
}

/// The Event object client-go's recorder would create for `p`.
fn build_event(target: &EventTarget, p: &Pending) -> Event {
    let ts = Timestamp::from_microsecond(p.at.unix_micros).ok().map(Time);
    let involved = p.about.clone().unwrap_or_else(|| ObjectReference {
        api_version: Some("coordination.k8s.io/v1".into()),
        kind: Some("Lease".into()),
        name: Some(target.lease.clone()),
        namespace: Some(target.namespace.clone()),
        ..ObjectReference::default()
    });
    Event {
        metadata: ObjectMeta {
            // The namespace comes from the URL, as in the recorded request.
            generate_name: Some(format!(
                "{}.",
                involved.name.as_deref().unwrap_or(&target.lease)
            )),
            ..ObjectMeta::default()
        },
        involved_object: involved,
        reason: Some(p.reason.clone()),
        message: Some(p.message.clone()),
        type_: Some(p.kind.as_str().to_owned()),
        source: Some(EventSource {
            component: Some(target.component.clone()),
            host: target.host.clone(),
        }),
        first_timestamp: ts.clone(),
        last_timestamp: ts,
        count: Some(1),
        ..Event::default()
    }
}

async fn post_loop(
    client: Arc<GeneralClient>,
    target: EventTarget,
    mut rx: mpsc::Receiver<Pending>,
    stats: Arc<EventStats>,
) {
    while let Some(p) = rx.recv().await {
        let ev = build_event(&target, &p);
        let ns = p
            .about
            .as_ref()
            .and_then(|o| o.namespace.clone())
            .unwrap_or_else(|| target.namespace.clone());
        let res = client
            .call(|c| async move {
                Api::<Event>::namespaced(c, &ns)
                    .create(&PostParams::default(), &ev)
                    .await
            })
            .await;
        match res {
            Ok(_) => {
                stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(reason = %p.reason, error = %e, "kubernetes event not recorded");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_body_matches_the_recorded_event_create() {
        // `event-create` in /work/shared/kube-api/transcripts.json.
        let target = EventTarget {
            namespace: "kube-system".into(),
            lease: "demo-lock".into(),
            component: "vipd".into(),
            host: None,
        };
        let p = Pending {
            about: None,
            reason: reason::ACQUIRED.into(),
            message: "node-a became leader".into(),
            kind: EventType::Normal,
            at: WallTime::parse_rfc3339("2026-11-26T15:30:00Z").expect("time"),
        };
        let ours = serde_json::to_value(build_event(&target, &p)).expect("json");
        let recorded: serde_json::Value = serde_json::from_str(
            r#"{"apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": "demo-lock."},
                "involvedObject": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "name": "demo-lock", "namespace": "kube-system"},
                "reason": "LeaderElection", "message": "node-a became leader", "type": "Normal",
                "source": {"component": "vipd"},
                "firstTimestamp": "2026-11-26T15:30:00Z", "lastTimestamp": "2026-11-26T15:30:00Z",
                "count": 1}"#,
        )
        .expect("fixture");
        assert_eq!(ours, recorded);
    }
}
