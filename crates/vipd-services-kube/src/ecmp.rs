//! The task around the sans-IO ECMP decision ([`vipd_services::ecmp`]):
//! Services in BGP mode without leader election, where every eligible
//! node announces. It takes the same inputs as the ownership core's task
//! (from the world, the health gate and the assigner elector, which in
//! this mode serves IPAM only) and publishes the same [`CoreView`], so the
//! Kubernetes side (status, Events, IPAM) works unchanged.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::info;
use vipd_observe::metrics::Metrics;
use vipd_observe::status::{Heartbeat, ServicesEntry, StatusHandle};
use vipd_services::ecmp::Ecmp;
use vipd_services::Input;
use vipd_vip::Vip;

use crate::core::CoreView;

/// The ECMP task's wiring.
pub struct EcmpTask {
    /// The decision core.
    pub core: Ecmp,
    /// Inputs from the world, the health gate and the assigner elector.
    pub inputs: mpsc::Receiver<Input>,
    /// The addresses to bind (and, through the BGP relay, announce).
    pub desired: watch::Sender<BTreeSet<Vip>>,
    /// What the VIP manager has confirmed in the kernel.
    pub bound: watch::Receiver<BTreeSet<Vip>>,
    /// What the rest of the node sees after every step.
    pub view: watch::Sender<CoreView>,
    /// Services metrics.
    pub metrics: Arc<Metrics>,
    /// `/status`, whose Services section this task writes.
    pub status: StatusHandle,
    /// Liveness beat for `/healthz`.
    pub heartbeat: Heartbeat,
}

impl EcmpTask {
    /// Runs until `cancel` (or the inputs close); then wants nothing.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last: Option<BTreeSet<IpAddr>> = None;
        loop {
            self.heartbeat.beat(Instant::now());
            let want = self.core.announce();
            if last.as_ref() != Some(&want) {
                info!(
                    count = want.len(),
                    eligible = self.core.is_eligible(),
                    "Services (BGP, every eligible node): announcing"
                );
                self.desired
                    .send_replace(want.iter().copied().map(Vip::host).collect());
                last = Some(want.clone());
            }
            self.publish(&want);
            tokio::select! {
                () = cancel.cancelled() => break,
                i = self.inputs.recv() => match i {
                    Some(i) => { self.core.handle(i); }
                    None => break,
                },
                r = self.bound.changed() => if r.is_err() { break },
                _ = tick.tick() => {}
            }
        }
        self.desired.send_replace(BTreeSet::new());
    }

    /// Announced = wanted and confirmed in the kernel: what a router's
    /// traffic finds here.
    fn publish(&self, want: &BTreeSet<IpAddr>) {
        let announced: BTreeSet<IpAddr> = self
            .bound
            .borrow()
            .iter()
            .map(|v| v.addr)
            .filter(|a| want.contains(a))
            .collect();
        let view = CoreView {
            announced,
            assigner: self.core.is_assigner(),
            owners: Default::default(),
            generation: 0,
        };
        let known = self.core.known();
        self.metrics
            .services
            .set_addresses(known, view.announced.len());
        self.metrics.services.set_core(view.assigner, 0);
        self.status.set_services(ServicesEntry {
            assigner: view.assigner,
            generation: 0,
            // No node lease in this mode: nothing to fence on.
            lease_valid: true,
            addresses: known,
            announced: view.announced.iter().copied().collect(),
            granted_by: None,
        });
        self.view.send_if_modified(|v| {
            if *v == view {
                false
            } else {
                *v = view;
                true
            }
        });
    }
}
