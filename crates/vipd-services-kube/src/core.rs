//! The task that owns the sans-IO ownership core ([`vipd_services::Node`]):
//! feeds it inputs and timer ticks, and executes its actions — the desired
//! address set for the VIP manager, the content of the next node-lease
//! renewal, and (as assigner) CAS writes of the assignment and tombstones,
//! whose results come back as inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use vipd_election::StoreError;
use vipd_kube::nodes::{AssignmentStore, NodeLeaseStore};
use vipd_services::{Action, Input, Node, NodeState};
use vipd_vip::Vip;

use vipd_observe::metrics::Metrics;
use vipd_observe::status::{Heartbeat, ServicesEntry, StatusHandle};

/// What the rest of the daemon sees of the core after every step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoreView {
    /// Addresses announced now.
    pub announced: BTreeSet<IpAddr>,
    /// Whether this node is the assigner.
    pub assigner: bool,
    /// Owner of every address in the applied assignment.
    pub owners: BTreeMap<IpAddr, Option<String>>,
    /// Applied generation.
    pub generation: u64,
}

/// The core task's wiring.
pub struct CoreTask {
    /// The sans-IO ownership core this task drives.
    pub node: Node,
    /// Inputs from the watches, the renewal loop, the world and the assigner elector.
    pub inputs: mpsc::Receiver<Input>,
    /// For results of the writes the core asked for.
    pub feedback: mpsc::Sender<Input>,
    /// Node-lease store, for the core's tombstone writes.
    pub nodes: Arc<NodeLeaseStore>,
    /// Assignment store, for the core's CAS writes of the assignment.
    pub assignments: Arc<AssignmentStore>,
    /// The addresses the VIP manager should hold (the core's `Announce`).
    pub desired: watch::Sender<BTreeSet<Vip>>,
    /// What the next node-lease renewal carries (the core's `PublishHeld`).
    pub publish: watch::Sender<Option<NodeState>>,
    /// What the rest of the node sees of the core after every step.
    pub view: watch::Sender<CoreView>,
    /// Services metrics.
    pub metrics: Arc<Metrics>,
    /// `/status`, whose Services section this task writes.
    pub status: StatusHandle,
    /// Liveness beat for `/healthz`.
    pub heartbeat: Heartbeat,
}

impl CoreTask {
    /// Runs until `cancel`; then announces nothing.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut known = 0usize;
        loop {
            let now = Instant::now();
            self.heartbeat.beat(now);
            // Wake at the core's deadline, and at least once a second for
            // the heartbeat.
            let wake = self
                .node
                .poll_timeout(now)
                .unwrap_or(now + std::time::Duration::from_secs(1))
                .min(now + std::time::Duration::from_secs(1));
            let input = tokio::select! {
                () = cancel.cancelled() => break,
                i = self.inputs.recv() => match i {
                    Some(i) => i,
                    None => break,
                },
                () = sleep_until(wake) => Input::Tick,
            };
            if let Input::Addresses(a) = &input {
                known = a.len();
            }
            let actions = self.node.handle(Instant::now(), input);
            for a in actions {
                self.execute(a);
            }
            let view = CoreView {
                announced: self.node.announced(),
                assigner: self.node.is_assigner(),
                owners: self
                    .node
                    .assignment()
                    .map(|a| {
                        a.entries
                            .iter()
                            .map(|(ip, e)| (*ip, e.owner.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                generation: self.node.generation(),
            };
            self.metrics
                .services
                .set_addresses(known, view.announced.len());
            self.metrics
                .services
                .set_core(view.assigner, view.generation);
            self.view.send_if_modified(|v| {
                if *v == view {
                    false
                } else {
                    *v = view.clone();
                    true
                }
            });
            self.status.set_services(ServicesEntry {
                assigner: view.assigner,
                generation: view.generation,
                lease_valid: self.node.lease_valid(Instant::now()),
                addresses: known,
                announced: view.announced.iter().copied().collect(),
                granted_by: None,
            });
        }
        self.desired.send_replace(BTreeSet::new());
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Announce(set) => {
                debug!(count = set.len(), "announcing");
                self.desired
                    .send_replace(set.into_iter().map(Vip::host).collect());
            }
            Action::PublishHeld(state) => {
                self.publish.send_replace(Some(state));
            }
            Action::WriteAssignment {
                assignment,
                expected_version,
            } => {
                let (store, tx, metrics) = (
                    self.assignments.clone(),
                    self.feedback.clone(),
                    self.metrics.clone(),
                );
                let generation = assignment.generation;
                tokio::spawn(async move {
                    metrics.services.inc_write("assignment");
                    match store.write(&assignment, expected_version.as_ref()).await {
                        Ok(version) => {
                            info!(
                                generation,
                                entries = assignment.entries.len(),
                                "assignment written"
                            );
                            let _ = tx
                                .send(Input::Assignment {
                                    assignment,
                                    version,
                                })
                                .await;
                        }
                        Err(e) => {
                            debug!(generation, error = %e, "assignment write failed; re-reading");
                            if let Ok(Some((assignment, version))) = store.read().await {
                                let _ = tx
                                    .send(Input::Assignment {
                                        assignment,
                                        version,
                                    })
                                    .await;
                            }
                        }
                    }
                });
            }
            Action::Tombstone {
                node,
                expected_version,
                generation,
            } => {
                let (store, tx, metrics) = (
                    self.nodes.clone(),
                    self.feedback.clone(),
                    self.metrics.clone(),
                );
                tokio::spawn(async move {
                    metrics.services.inc_write("tombstone");
                    let res = store.tombstone(&node, &expected_version, generation).await;
                    match res {
                        Ok(version) => {
                            info!(%node, generation, "node lease expired: tombstone written");
                            let state = NodeState {
                                generation,
                                held: BTreeSet::new(),
                                expired: true,
                            };
                            let _ = tx
                                .send(Input::NodeRecord {
                                    node,
                                    state: Some(state),
                                    version,
                                })
                                .await;
                        }
                        Err(e) => {
                            if !matches!(e, StoreError::Conflict) {
                                debug!(%node, error = %e, "tombstone write failed");
                            }
                            match store.read(&node).await {
                                Ok(Some(l)) => {
                                    let _ = tx
                                        .send(Input::NodeRecord {
                                            node,
                                            state: Some(l.state),
                                            version: l.version,
                                        })
                                        .await;
                                }
                                Ok(None) => {}
                                Err(e) => debug!(%node, error = %e, "re-reading node lease failed"),
                            }
                        }
                    }
                });
            }
        }
    }
}
