//! The ownership IO loops around the sans-IO core ([`vipd_services::Node`]):
//! this node's own lease renewal, the node-lease list/watch and the
//! assignment watch. Each loop feeds [`Input`]s to the core task and never
//! ends on an error (R2): it backs off and starts over from a fresh list.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use vipd_backoff::Backoff;
use vipd_election::{LeaseRecord, StoreError, Timings, Version, WallTime};
use vipd_kube::nodes::{AssignmentStore, NodeLeaseEvent, NodeLeaseStore};
use vipd_services::{Input, Listed, NodeState, Renewal};
use vipd_vip::Vip;

use vipd_observe::metrics::Metrics;

/// Everything the renewal loop needs.
pub struct Renewer {
    /// Node-lease store this node renews its own lease in.
    pub nodes: Arc<NodeLeaseStore>,
    /// This node's name (its lease's holder identity).
    pub node: String,
    /// Lease timings (R1): renew every retry period, fence at the renew deadline.
    pub timings: Timings,
    /// The content the core wants published (its last `PublishHeld`).
    pub publish: watch::Receiver<Option<NodeState>>,
    /// What the kernel has bound now.
    pub bound: watch::Receiver<BTreeSet<Vip>>,
    /// Where renewal results go (the core task's inputs).
    pub core: mpsc::Sender<Input>,
    /// Services metrics.
    pub metrics: Arc<Metrics>,
}

/// The last write's base: the version to CAS on and the client-go fields
/// to keep.
struct Base {
    version: Option<Version>,
    acquire_time: Option<WallTime>,
    transitions: u32,
}

impl Renewer {
    /// Reads our own record (its generation becomes the core's floor) until
    /// it succeeds; `None` when cancelled first.
    async fn read_own(&self, cancel: &CancellationToken) -> Option<Base> {
        let mut backoff = Backoff::new(Duration::from_millis(200), self.timings.retry_period());
        loop {
            match self.nodes.read(&self.node).await {
                Ok(found) => {
                    let base = match found {
                        Some(lease) => {
                            let _ = self.core.send(Input::OwnRecord(lease.state)).await;
                            Base {
                                version: Some(lease.version),
                                acquire_time: lease.record.acquire_time,
                                transitions: lease.record.lease_transitions,
                            }
                        }
                        None => Base {
                            version: None,
                            acquire_time: None,
                            transitions: 0,
                        },
                    };
                    return Some(base);
                }
                Err(e) => debug!(error = %e, "reading own node lease failed; retrying"),
            }
            tokio::select! {
                () = cancel.cancelled() => return None,
                () = sleep(backoff.next_delay()) => {}
            }
        }
    }

    /// Waits (up to `limit`) until every bound address is in `held`: a
    /// record must never claim less than the kernel still carries (the
    /// core's published `held` relies on removals having taken effect).
    async fn settled(&mut self, limit: Duration) -> Option<NodeState> {
        let until = Instant::now() + limit;
        loop {
            let want = self.publish.borrow().clone()?;
            let ok = self
                .bound
                .borrow()
                .iter()
                .all(|v| want.held.contains(&v.addr));
            if ok {
                return Some(want);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            tokio::select! {
                r = self.bound.changed() => if r.is_err() { return None },
                r = self.publish.changed() => if r.is_err() { return None },
                () = sleep(left) => {}
            }
        }
    }

    fn record(&self, base: &Base, now: WallTime) -> LeaseRecord {
        LeaseRecord {
            holder_identity: self.node.clone(),
            lease_duration_seconds: self.timings.lease_duration_seconds(),
            acquire_time: Some(base.acquire_time.unwrap_or(now)),
            renew_time: Some(now),
            lease_transitions: base.transitions,
        }
    }

    /// Renews every retry period until `cancel`; then writes the final
    /// record (`held` empty, `expired`: a self-tombstone) so the assigner
    /// moves our addresses at once instead of after the lease duration.
    /// The caller has removed every address before cancelling.
    pub async fn run(mut self, cancel: CancellationToken, stopped: watch::Receiver<bool>) {
        let Some(mut base) = self.read_own(&cancel).await else {
            return;
        };
        let retry = self.timings.retry_period();
        let mut last: Option<Renewal> = None;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let Some(state) = self.settled(retry).await else {
                if self.publish.borrow().is_some() {
                    warn!("addresses still bound that the core no longer holds; renewal delayed");
                }
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = sleep(Duration::from_millis(50)) => {}
                }
                continue;
            };
            let sent_at = Instant::now();
            let rec = self.record(&base, WallTime::now());
            let res = self
                .nodes
                .write(&self.node, &rec, &state, base.version.as_ref())
                .await;
            self.metrics.services.inc_write("node_lease");
            let outcome = match &res {
                Ok(v) => {
                    base.version = Some(v.clone());
                    base.acquire_time = rec.acquire_time;
                    Renewal::Ok
                }
                Err(StoreError::Conflict | StoreError::AlreadyExists) => Renewal::Conflict,
                Err(e) => {
                    debug!(error = %e, "node lease renewal failed");
                    Renewal::Failed
                }
            };
            if last != Some(outcome) {
                // One line per change, not per renewal.
                info!(node = %self.node, ?outcome, held = state.held.len(),
                    generation = state.generation, "node lease renewal");
                last = Some(outcome);
            }
            let _ = self.core.send(Input::OwnRenewal { sent_at, outcome }).await;
            if outcome == Renewal::Conflict {
                // Someone wrote our record (an assigner's tombstone, or our
                // own write whose answer was lost): read it, report it, and
                // renew at once at the version read.
                info!(node = %self.node, "own node lease changed underneath; re-reading");
                match self.read_own(&cancel).await {
                    Some(b) => base = b,
                    None => break,
                }
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = sleep(retry) => {}
            }
        }
        // Final record: only once the kernel has none of our addresses.
        let mut stopped = stopped;
        if timeout(Duration::from_secs(2), stopped.wait_for(|s| *s))
            .await
            .is_err()
        {
            warn!("addresses not confirmed removed; not publishing the release");
            return;
        }
        let generation = self.publish.borrow().as_ref().map_or(0, |s| s.generation);
        let last = NodeState {
            generation,
            held: BTreeSet::new(),
            expired: true,
        };
        for _ in 0..2 {
            let rec = self.record(&base, WallTime::now());
            match self
                .nodes
                .write(&self.node, &rec, &last, base.version.as_ref())
                .await
            {
                Ok(_) => {
                    info!(node = %self.node, "node lease released");
                    return;
                }
                Err(StoreError::Conflict) => match self.nodes.read(&self.node).await {
                    Ok(Some(l)) => base.version = Some(l.version),
                    _ => return,
                },
                Err(e) => {
                    warn!(error = %e, "could not release the node lease; others take over after the lease duration");
                    return;
                }
            }
        }
    }
}

/// Lists and watches every node lease, feeding the core: `Listed` after
/// each full list, `NodeRecord` per event. Restarts from a list after any
/// error or expired watch (R2), and whenever `relist` is notified (a new
/// assigner term starts from a fresh full list, so it never mistakes a node
/// it has not seen for a dead one).
pub async fn watch_nodes(
    nodes: Arc<NodeLeaseStore>,
    core: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
    relist: Arc<tokio::sync::Notify>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut relists: u64 = 0;
    loop {
        let (list, mut rv) = match nodes.list().await {
            Ok(x) => x,
            Err(e) => {
                debug!(error = %e, "listing node leases failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        debug!(count = list.len(), "node leases listed");
        let listed = list
            .into_iter()
            .map(|l| Listed {
                node: l.node,
                state: l.state,
                version: l.version,
            })
            .collect();
        if core.send(Input::Listed(listed)).await.is_err() {
            return;
        }
        let (tx, mut rx) = mpsc::channel(64);
        loop {
            let res = {
                let watch = nodes.watch(&rv, &tx);
                tokio::pin!(watch);
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = relist.notified() => break Err(StoreError::Rejected("relist requested".into())),
                        r = &mut watch => break r,
                        Some(ev) = rx.recv() => forward_node(&core, ev).await,
                    }
                }
            };
            while let Ok(ev) = rx.try_recv() {
                forward_node(&core, ev).await;
            }
            match res {
                Ok(last) => {
                    backoff.reset();
                    rv = last;
                }
                Err(StoreError::Rejected(why)) if why == "relist requested" => break,
                Err(e) => {
                    relists += 1;
                    metrics.services.set_relists("leases", "error", relists);
                    debug!(error = %e, "node lease watch ended; re-listing");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = sleep(backoff.next_delay()) => {}
                    }
                    break;
                }
            }
        }
    }
}

async fn forward_node(core: &mpsc::Sender<Input>, ev: NodeLeaseEvent) {
    let input = match ev {
        NodeLeaseEvent::Applied(l) => Input::NodeRecord {
            node: l.node,
            state: Some(l.state),
            version: l.version,
        },
        NodeLeaseEvent::Deleted { node, version } => Input::NodeRecord {
            node,
            state: None,
            version,
        },
    };
    let _ = core.send(input).await;
}

/// Reads and watches the assignment record, feeding the core.
pub async fn watch_assignment(
    store: Arc<AssignmentStore>,
    core: mpsc::Sender<Input>,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut relists: u64 = 0;
    loop {
        let rv = match store.read().await {
            Ok(Some((assignment, version))) => {
                let rv = version.0.clone();
                if core
                    .send(Input::Assignment {
                        assignment,
                        version,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                rv
            }
            // No record yet: watch from "now" (empty resourceVersion = from
            // the current state) for its creation.
            Ok(None) => String::new(),
            Err(e) => {
                debug!(error = %e, "reading the assignment failed; retrying");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = sleep(backoff.next_delay()) => {}
                }
                continue;
            }
        };
        let (tx, mut rx) = mpsc::channel(16);
        let mut rv = rv;
        loop {
            let res = {
                let watch = store.watch(&rv, &tx);
                tokio::pin!(watch);
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        r = &mut watch => break r,
                        Some((assignment, version)) = rx.recv() => {
                            let _ = core.send(Input::Assignment { assignment, version }).await;
                        }
                    }
                }
            };
            while let Ok((assignment, version)) = rx.try_recv() {
                let _ = core
                    .send(Input::Assignment {
                        assignment,
                        version,
                    })
                    .await;
            }
            match res {
                Ok(last) if !last.is_empty() => {
                    backoff.reset();
                    rv = last;
                }
                Ok(_) => break,
                Err(e) => {
                    relists += 1;
                    metrics.services.set_relists("assignment", "error", relists);
                    debug!(error = %e, "assignment watch ended; re-reading");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = sleep(backoff.next_delay()) => {}
                    }
                    break;
                }
            }
        }
    }
}
