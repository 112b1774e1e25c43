//! Services mode on the quorum (issue 13, `--coordination quorum
//! --services`): the quorum holder assigns the LoadBalancer addresses and
//! hands each node time-bounded grants over the quorum socket
//! ([`vipd_grants`], driven by the quorum shell); no node leases, no
//! assignment record, no assigner lease. The API is read for the Services
//! and written for status, annotations, IPAM and Events only, so the
//! addresses stay served, and move off dead nodes, while it is down.
//!
//! ```text
//!  Services, EndpointSlices, Nodes, IPAM ──reflectors──▶ KubeWorld ──Addresses/Policies──▶ services_view
//!        ▲ status + vipHost (owner), IPAM (assigner), Events ◀── CoreView ◀── publish ◀──┐      │ ServiceView
//!                                                                                        │      ▼
//!                                   quorum socket ◀──▶ quorum shell (vipd_quorum + vipd_grants) ──GrantStatus
//!                                                                        │ bind / settle
//!                                                                        ▼
//!                                  ServicesSink ──▶ VipManager (IFA_PROTO 0x77) ──▶ announcer (paced GARP/NA)
//! ```
//!
//! Nothing here decides who binds what: the grant core does, from the
//! last Services view it got (kept through an API outage, replaced by the
//! relist after it, so a Service deleted meanwhile goes then).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, warn};
use vipd::config::{Config, ServicesSettings};
use vipd_elector::quorum::{GrantSink, ServicesLink};
use vipd_grants::{AddrSet, GrantStatus, ServiceView};
use vipd_health::HealthCheckSpec;
use vipd_observe::metrics::Metrics;
use vipd_observe::status::{ServicesEntry, StatusHandle};
use vipd_services::Input;
use vipd_services_kube::core::CoreView;
use vipd_vip::{Vip, VipManager};

use crate::context::{load_kube, Obs};

/// The grant core's addresses go to the Services VIP manager.
#[derive(Clone)]
pub(crate) struct ServicesSink {
    desired: Arc<watch::Sender<BTreeSet<Vip>>>,
    manager: Arc<VipManager>,
    /// BGP / routing-table mode: what the route relay has passed to the
    /// manager (it withdraws a route before it lets the address go).
    passed: Option<watch::Receiver<BTreeSet<Vip>>>,
}

fn vips(set: &AddrSet) -> BTreeSet<Vip> {
    set.iter().copied().map(Vip::host).collect()
}

impl GrantSink for ServicesSink {
    async fn bind(&mut self, set: AddrSet) {
        self.desired.send_replace(vips(&set));
    }

    async fn settle(&mut self, set: AddrSet) -> bool {
        let want = vips(&set);
        let before = self.desired.send_replace(want.clone());
        if let Some(passed) = self.passed.as_mut() {
            // The routes of what goes are withdrawn first (the relay's
            // bounded wait), and only then is the removal confirmed.
            let wait = passed.wait_for(|p| p.is_subset(&want));
            if tokio::time::timeout(Duration::from_secs(1), wait)
                .await
                .is_err()
            {
                warn!("Service routes not withdrawn within 1 s; removing the addresses anyway");
            }
        }
        // Whatever was wanted or is still bound, and is not wanted now,
        // must be gone from the kernel (a fresh dump) before we say so.
        let mut gone: BTreeSet<Vip> = before.difference(&want).copied().collect();
        gone.extend(self.manager.bound().borrow().difference(&want).copied());
        if gone.is_empty() {
            return true;
        }
        let n = gone.len();
        match tokio::time::timeout(Duration::from_secs(1), self.manager.remove_now(gone)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                error!(error = %e, addresses = n, "cannot confirm Service address removal");
                false
            }
            Err(_) => {
                warn!(
                    addresses = n,
                    "Service address removal not confirmed within 1 s"
                );
                false
            }
        }
    }
}

/// The Services side of a quorum-mode node: API clients and reflectors,
/// the Services VIP manager and announcer, and the link the quorum shell
/// drives. Tasks stop when this drops.
pub(crate) struct QuorumServices {
    link: Option<ServicesLink<ServicesSink>>,
    api: vipd_kube::KubeApi,
    manager: Arc<VipManager>,
    cancel: CancellationToken,
    _tasks: Vec<AbortOnDropHandle<()>>,
    /// BGP / routing-table mode's route relay (its task lives as long).
    _relayed: Option<super::Relayed>,
}

impl QuorumServices {
    /// Starts reading the API (exit 2 on an invalid Kubernetes
    /// configuration) and the kernel side; binds nothing until a grant.
    pub(crate) async fn start(
        cfg: &Config,
        svc: &ServicesSettings,
        obs: &Obs,
        guard: Option<vipd_vip::guard::GuardPipe>,
    ) -> Result<QuorumServices, ExitCode> {
        let api = load_kube(cfg, cfg.vip).await?;
        let cancel = CancellationToken::new();
        let (general, recorder, recorder_task) = super::clients(&api, cfg);
        let kernel = super::Kernel::start(cfg, svc, obs, guard, &cancel);
        let desired = Arc::new(kernel.desired);
        let (world_tx, world_rx) = mpsc::channel::<Input>(64);
        let (view_tx, view_rx) = watch::channel(None);
        let (grants_tx, grants_rx) = watch::channel(GrantStatus::default());
        let (core_tx, core_rx) = watch::channel(CoreView::default());
        let tasks = vec![
            recorder_task,
            kernel.wire,
            AbortOnDropHandle::new(tokio::spawn(services_view(world_rx, view_tx))),
            AbortOnDropHandle::new(tokio::spawn(publish(
                grants_rx,
                desired.subscribe(),
                view_rx.clone(),
                core_tx,
                obs.metrics.clone(),
                obs.status.clone(),
                cancel.child_token(),
            ))),
            super::spawn_world(general, recorder, cfg, svc, world_tx, core_rx, obs, &cancel),
        ];
        Ok(QuorumServices {
            link: Some(ServicesLink {
                sink: ServicesSink {
                    desired,
                    manager: kernel.manager.clone(),
                    passed: kernel.relayed.as_ref().map(|r| r.passed.clone()),
                },
                view: view_rx,
                observe: grants_tx,
                preempt: svc.preempt,
            }),
            api,
            manager: kernel.manager,
            cancel,
            _tasks: tasks,
            _relayed: kernel.relayed,
        })
    }

    /// The link for the quorum shell (once).
    pub(crate) fn take_link(&mut self) -> Option<ServicesLink<ServicesSink>> {
        self.link.take()
    }

    /// Lets health checks of the local API server trust the cluster CA.
    pub(crate) fn trust(&self, specs: &mut [HealthCheckSpec]) {
        let (ca_der, ca_file) = self.api.credentials().cluster_ca();
        for spec in specs {
            spec.trust_cluster_ca(ca_der, ca_file);
        }
    }

    /// After the quorum shell stopped (its stop settled the grants): make
    /// sure no Service address is left (R7), then stop the tasks.
    pub(crate) async fn finish(self) {
        match tokio::time::timeout(Duration::from_secs(2), self.manager.remove_all_now()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "cannot confirm Service address removal"),
            Err(_) => error!("Service address removal not confirmed within 2 s"),
        }
        self.cancel.cancel();
    }
}

/// The KubeWorld's addresses and policies as the grant core's view. The
/// first view goes out once both arrived (the world sends them after its
/// first full lists only); a burst of changes becomes one view.
async fn services_view(mut rx: mpsc::Receiver<Input>, tx: watch::Sender<Option<Arc<ServiceView>>>) {
    let mut addresses = None;
    let mut policies = None;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        loop {
            while let Some(input) = next.take() {
                match input {
                    Input::Addresses(a) => addresses = Some(a),
                    Input::Policies(p) => policies = Some(p),
                    _ => {}
                }
                next = rx.try_recv().ok();
            }
            // The world sends addresses and policies back to back.
            tokio::task::yield_now().await;
            next = rx.try_recv().ok();
            if next.is_none() {
                break;
            }
        }
        if let (Some(a), Some(p)) = (&addresses, &policies) {
            let v = ServiceView {
                addresses: a.clone(),
                policies: p.clone(),
            };
            tx.send_if_modified(|cur| {
                if cur.as_deref() == Some(&v) {
                    false
                } else {
                    *cur = Some(Arc::new(v));
                    true
                }
            });
        }
    }
}

/// The grant core's state as the rest of the node sees it: the
/// KubeWorld's [`CoreView`] (what this node announces, whether it assigns),
/// the Services metrics and `/status`.
async fn publish(
    mut grants: watch::Receiver<GrantStatus>,
    mut desired: watch::Receiver<BTreeSet<Vip>>,
    mut view: watch::Receiver<Option<Arc<ServiceView>>>,
    core: watch::Sender<CoreView>,
    metrics: Arc<Metrics>,
    status: StatusHandle,
    cancel: CancellationToken,
) {
    let mut last: Option<ServicesEntry> = None;
    loop {
        let st = grants.borrow_and_update().clone();
        let announced: BTreeSet<std::net::IpAddr> =
            desired.borrow_and_update().iter().map(|v| v.addr).collect();
        let known = view
            .borrow_and_update()
            .as_ref()
            .map_or(0, |v| v.addresses.len());
        let generation = st.version.unwrap_or(0);
        // Binding is backed by the quorum hold (assigner) or a grant.
        let valid = st.assigner || st.right_remaining.is_some();
        let entry = ServicesEntry {
            assigner: st.assigner,
            generation,
            lease_valid: valid,
            addresses: known,
            announced: announced.iter().copied().collect(),
            granted_by: st.granted_by.clone(),
        };
        // The grant status changes on every grant step; act on changes.
        if last.as_ref() != Some(&entry) {
            metrics.services.set_addresses(known, announced.len());
            metrics.services.set_core(st.assigner, generation);
            status.set_services(entry.clone());
            last = Some(entry);
        }
        core.send_if_modified(|v| {
            if v.announced == announced && v.assigner == st.assigner && v.generation == generation {
                false
            } else {
                *v = CoreView {
                    announced,
                    assigner: st.assigner,
                    owners: Default::default(),
                    generation,
                };
                true
            }
        });
        tokio::select! {
            () = cancel.cancelled() => return,
            r = grants.changed() => if r.is_err() { return },
            r = desired.changed() => if r.is_err() { return },
            r = view.changed() => if r.is_err() { return },
        }
    }
}
