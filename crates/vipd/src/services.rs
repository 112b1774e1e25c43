//! Services mode (issue 5): LoadBalancer addresses owned per address by one
//! node, at O(nodes) API writes per retry period.
//!
//! ```text
//!  Services, EndpointSlices, Nodes, IPAM ConfigMap ──reflectors──▶ KubeWorld ──Addresses/Policies──┐
//!        ▲ status + vipHost (owner), IPAM annotation (assigner), Events ◀──┘                        ▼
//!  node leases ──list/watch──▶ ┌───────────────────────────┐ ◀──IsAssigner── Elector (assigner lease)
//!  assignment ───watch───────▶ │ ownership core (sans-IO)  │ ──WriteAssignment/Tombstone──▶ API (CAS)
//!  own renewal ──OwnRenewal──▶ └───────────────────────────┘ ──PublishHeld──▶ own renewal (every retry period)
//!                                            │ Announce(set)
//!                                            ▼
//!                             VipManager (IFA_PROTO 0x77) ──Bound/Unbound──▶ Announcer (paced GARP/NA)
//! ```
//!
//! Shutdown (R7): stop announcing, confirm the kernel has none of our
//! addresses, publish the node lease with nothing held and `expired` set (so
//! the assigner moves our addresses at once), release the assigner lease.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, info, warn};
use vipd::config::{Config, ServicesSettings};
use vipd_election::{Elector, FenceReason};
use vipd_kube::nodes::{AssignmentStore, NodeLeaseStore};
use vipd_services::{Input, Node};
use vipd_services_kube::world::WorldConfig;
use vipd_services_kube::{core, kubeworld, own, wire};
use vipd_vip::{VipManager, VipManagerConfig, VIPD_SVC_ADDR_PROTO};

use crate::context::{
    eligibility_patience, health_specs, load_kube, wait_for_signal, watch_eligibility, Obs,
    EXIT_CONFIG,
};
use vipd_elector::{self as elect, Control, Holder, Observation};

pub(crate) mod quorum;

/// Name of the ConfigMap that carries the assignment.
pub(crate) const ASSIGNMENT_CONFIGMAP: &str = "vipd-services-assignment";
/// Name of the Lease that elects the assigner.
pub(crate) const ASSIGNER_LEASE: &str = "vipd-services-assigner";

/// The assigner elector's Lead/Fence: tell the core.
struct AssignerHolder {
    core: mpsc::Sender<Input>,
    relist: Arc<tokio::sync::Notify>,
}

impl Holder for AssignerHolder {
    async fn lead(&mut self) {
        info!("elected Services assigner");
        let _ = self.core.send(Input::IsAssigner(true)).await;
        // The core acts as assigner only after a full list that follows.
        self.relist.notify_one();
    }

    async fn fence(&mut self, reason: FenceReason) {
        info!(?reason, "no longer the Services assigner");
        let _ = self.core.send(Input::IsAssigner(false)).await;
    }
}

/// Runs Services mode until SIGTERM/SIGINT.
/// `guard`: the process's address guard, kept informed by the Services VIP
/// manager (see `vipd_vip::guard`).
pub(crate) async fn run(
    cfg: Config,
    svc: ServicesSettings,
    obs: Obs,
    guard: Option<vipd_vip::guard::GuardPipe>,
) -> ExitCode {
    let api = match load_kube(&cfg, cfg.vip).await {
        Ok(api) => api,
        Err(code) => return code,
    };
    let cancel = CancellationToken::new();
    let timings = cfg.timings;
    // R6: every ownership request is bounded well inside the renew
    // deadline, as for the control-plane lease.
    let request_timeout = timings.retry_period().max(timings.renew_deadline() / 2);
    let nodes = Arc::new(NodeLeaseStore::new(
        api.credentials().clone(),
        api.endpoints(),
        cfg.lease_namespace.clone(),
        request_timeout,
    ));
    let assignments = Arc::new(AssignmentStore::new(
        api.credentials().clone(),
        api.endpoints(),
        cfg.lease_namespace.clone(),
        ASSIGNMENT_CONFIGMAP,
        request_timeout,
    ));
    let (general, recorder, _recorder_task) = clients(&api, &cfg);
    let kernel = Kernel::start(&cfg, &svc, &obs, guard, &cancel);
    let (desired_tx, manager, wire_task, mut relayed) =
        (kernel.desired, kernel.manager, kernel.wire, kernel.relayed);
    // BGP or routing-table mode without svc_election: every eligible node
    // announces (ECMP), no node leases, no assignment; the assigner role
    // serves IPAM only.
    let ecmp = cfg.services_ecmp();

    // The ownership core and its IO loops.
    let (core_tx, core_rx) = mpsc::channel::<Input>(1024);
    // Health gate (R8): an unhealthy node drains (announces nothing, its
    // record says so, the assigner moves its addresses at once) and gives
    // up the assigner role until healthy.
    let mut specs = match health_specs(&cfg) {
        Ok(specs) => specs,
        Err(e) => {
            eprintln!("vipd: invalid health check: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let (ca_der, ca_file) = api.credentials().cluster_ca();
    for spec in &mut specs {
        spec.trust_cluster_ca(ca_der, ca_file);
    }
    let (control_tx, control_rx) = mpsc::channel::<Control>(8);
    let (_health_monitor, initially_eligible) = if specs.is_empty() {
        (None, true)
    } else {
        match vipd_health::HealthMonitor::spawn(specs, cancel.child_token()) {
            Ok(monitor) => {
                watch_eligibility(
                    &obs.status,
                    &obs.metrics,
                    monitor.eligible(),
                    eligibility_patience(&cfg),
                    cancel.child_token(),
                );
                let mut rx = monitor.eligible();
                let initial = *rx.borrow_and_update();
                // The first input the core sees (nothing else is queued
                // yet): with checks, a node starts drained until they pass.
                let _ = core_tx.try_send(Input::Eligible(initial));
                let (core, control, stop) =
                    (core_tx.clone(), control_tx.clone(), cancel.child_token());
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return,
                            r = rx.changed() => if r.is_err() { return },
                        }
                        let e = *rx.borrow_and_update();
                        info!(eligible = e, "Services health gate");
                        let _ = core.send(Input::Eligible(e)).await;
                        let _ = control.send(Control::Eligible(e)).await;
                    }
                });
                (Some(monitor), initial)
            }
            Err(e) => {
                eprintln!("vipd: invalid health check: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };

    let (view_tx, view_rx) = watch::channel(core::CoreView::default());
    let core_cancel = CancellationToken::new();
    let relist = Arc::new(tokio::sync::Notify::new());
    let core_heartbeat =
        obs.liveness
            .register("services-core", Duration::from_secs(3), Instant::now());
    let (core_task, leases) = if ecmp {
        let task = tokio::spawn(
            vipd_services_kube::ecmp::EcmpTask {
                core: vipd_services::ecmp::Ecmp::new(cfg.node_name.clone()),
                inputs: core_rx,
                desired: desired_tx,
                bound: manager.bound(),
                view: view_tx,
                metrics: obs.metrics.clone(),
                status: obs.status.clone(),
                heartbeat: core_heartbeat,
            }
            .run(core_cancel.clone()),
        );
        (task, None)
    } else {
        let (publish_tx, publish_rx) = watch::channel(None);
        let task = tokio::spawn(
            core::CoreTask {
                node: Node::new(cfg.node_name.clone(), timings, svc.preempt),
                inputs: core_rx,
                feedback: core_tx.clone(),
                nodes: nodes.clone(),
                assignments: assignments.clone(),
                desired: desired_tx,
                publish: publish_tx,
                view: view_tx,
                metrics: obs.metrics.clone(),
                status: obs.status.clone(),
                heartbeat: core_heartbeat,
            }
            .run(core_cancel.clone()),
        );
        let renew_cancel = CancellationToken::new();
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let renewer = tokio::spawn(
            own::Renewer {
                nodes: nodes.clone(),
                node: cfg.node_name.clone(),
                timings,
                publish: publish_rx,
                bound: manager.bound(),
                core: core_tx.clone(),
                metrics: obs.metrics.clone(),
            }
            .run(renew_cancel.clone(), stopped_rx),
        );
        let watches = [
            AbortOnDropHandle::new(tokio::spawn(own::watch_nodes(
                nodes.clone(),
                core_tx.clone(),
                obs.metrics.clone(),
                relist.clone(),
                cancel.child_token(),
            ))),
            AbortOnDropHandle::new(tokio::spawn(own::watch_assignment(
                assignments.clone(),
                core_tx.clone(),
                obs.metrics.clone(),
                cancel.child_token(),
            ))),
        ];
        (
            task,
            Some(LeaseSide {
                renew_cancel,
                renewer,
                stopped_tx,
                _watches: watches,
            }),
        )
    };
    let _world = spawn_world(
        general,
        recorder,
        &cfg,
        &svc,
        core_tx.clone(),
        view_rx,
        &obs,
        &cancel,
    );

    // The assigner: the existing Elector on its own Lease.
    let assigner_store = Arc::new(api.lease_store(
        &cfg.lease_namespace,
        ASSIGNER_LEASE,
        timings.renew_deadline(),
    ));
    let (obs_tx, _obs_rx) = watch::channel(Observation {
        status: Elector::new(cfg.node_name.clone(), timings, 0, Instant::now()).status(),
        store_reachable: false,
        last_result: None,
    });
    let assigner = {
        let core = core_tx.clone();
        let relist = relist.clone();
        let node = cfg.node_name.clone();
        let metrics = obs.metrics.clone();
        let heartbeat = obs.liveness.register(
            "services-assigner",
            timings.renew_deadline() + timings.retry_period() * 3 + Duration::from_secs(1),
            Instant::now(),
        );
        let control_rx = Arc::new(Mutex::new(control_rx));
        tokio::spawn(async move {
            let elector = Elector::new(node, timings, vipd_backoff::random_u64(), Instant::now());
            let on_request: elect::RequestHook = Arc::new(move |verb, result, took, _| {
                metrics.observe_api_request(verb, result, took);
            });
            let mut rx = control_rx.lock().await;
            elect::run(
                assigner_store,
                elector,
                AssignerHolder { core, relist },
                &mut rx,
                elect::Reporting {
                    observe: &obs_tx,
                    on_request,
                    heartbeat,
                },
                initially_eligible,
            )
            .await;
        })
    };

    obs.status.mark_ready();
    info!(
        interface = %svc.interface, node = %cfg.node_name, namespace = ?svc.namespace,
        lease_namespace = %cfg.lease_namespace, preempt = svc.preempt,
        ipam = ?svc.ipam_configmap, "Services mode started"
    );

    wait_for_signal().await;
    info!("shutting down Services mode: removing addresses, then releasing the node lease");
    // 1. Stop the core (it announces nothing from now on) and empty the set.
    core_cancel.cancel();
    let _ = core_task.await;
    // 2. BGP: the routes are withdrawn before the addresses go.
    if let Some(r) = relayed.as_mut() {
        r.withdrawn().await;
    }
    // 3. Confirm the kernel has none of our addresses.
    let removed = match tokio::time::timeout(Duration::from_secs(2), manager.remove_all_now()).await
    {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            error!(error = %e, "cannot confirm Service address removal");
            false
        }
        Err(_) => {
            error!("Service address removal not confirmed within 2 s");
            false
        }
    };
    // 4. Publish the release, and hand the assigner role over.
    let grace = timings.renew_deadline() + Duration::from_secs(1);
    if let Some(l) = leases {
        if removed {
            let _ = l.stopped_tx.send(true);
        }
        l.renew_cancel.cancel();
        if tokio::time::timeout(grace, l.renewer).await.is_err() {
            warn!("node lease release did not finish within {grace:?}");
        }
    }
    let _ = control_tx.send(Control::Shutdown).await;
    if tokio::time::timeout(grace, assigner).await.is_err() {
        warn!("assigner lease release did not finish within {grace:?}");
    }
    cancel.cancel();
    drop(wire_task);
    info!("Services mode stopped");
    ExitCode::SUCCESS
}

/// The lease-mode side of Services mode: the node-lease renewal and the
/// watches of node leases and the assignment (ECMP has none of them).
struct LeaseSide {
    renew_cancel: CancellationToken,
    renewer: tokio::task::JoinHandle<()>,
    /// Tells the renewer the kernel is clean (publish "nothing held").
    stopped_tx: watch::Sender<bool>,
    _watches: [AbortOnDropHandle<()>; 2],
}

/// The general API client (reflectors, status, IPAM) and the Event
/// recorder, which gets its own client and rate limit: a burst of
/// acquisitions must not delay status writes or the watches. The
/// recorder's task stops when its handle (the third value) drops.
fn clients(
    api: &vipd_kube::KubeApi,
    cfg: &Config,
) -> (
    Arc<vipd_kube::GeneralClient>,
    vipd_kube::EventRecorder,
    AbortOnDropHandle<()>,
) {
    let opts = vipd_kube::GeneralOptions {
        qps: f64::from(cfg.kube_api.qps),
        burst: cfg.kube_api.burst,
        timeout: cfg.kube_api.timeout,
    };
    let general = Arc::new(api.general_client(opts));
    let (recorder, task) = vipd_kube::EventRecorder::spawn(
        Arc::new(api.general_client(opts)),
        vipd_kube::EventTarget {
            namespace: cfg.lease_namespace.clone(),
            lease: ASSIGNER_LEASE.into(),
            component: "vipd".into(),
            host: Some(cfg.node_name.clone()),
        },
    );
    (general, recorder, task)
}

/// The kernel side of Services mode: the VIP manager with the Services
/// address tag (`IFA_PROTO` 0x77, apart from the control-plane VIP's) and
/// the paced announcer of what it binds.
struct Kernel {
    desired: watch::Sender<BTreeSet<vipd_vip::Vip>>,
    manager: Arc<VipManager>,
    wire: AbortOnDropHandle<()>,
    /// BGP mode: the relay between the core and the manager.
    relayed: Option<Relayed>,
}

/// The route relay (`routing::routes::relay`): it withdraws a route before it
/// lets the address go to the manager.
struct Relayed {
    /// What the relay has passed to the manager.
    passed: watch::Receiver<BTreeSet<vipd_vip::Vip>>,
    _task: AbortOnDropHandle<()>,
}

impl Relayed {
    /// Waits (at most a second) until the relay has withdrawn every route
    /// and passed "nothing" to the manager, so a removal that follows
    /// never beats the withdrawal.
    async fn withdrawn(&mut self) {
        let wait = self.passed.wait_for(BTreeSet::is_empty);
        if tokio::time::timeout(Duration::from_secs(1), wait)
            .await
            .is_err()
        {
            warn!("Service routes not withdrawn within 1 s; removing the addresses anyway");
        }
    }
}

impl Kernel {
    fn start(
        cfg: &Config,
        svc: &ServicesSettings,
        obs: &Obs,
        guard: Option<vipd_vip::guard::GuardPipe>,
        cancel: &CancellationToken,
    ) -> Kernel {
        let (desired, mut desired_rx) = watch::channel(BTreeSet::new());
        // BGP or routing-table mode (SPEC §5b): routes follow the
        // addresses through the process's speaker or table sink, withdrawn
        // before an address goes.
        let gate = crate::routing::routes::RouteGate::shared(cfg);
        let mut relayed = None;
        if let Some(gate) = gate.clone() {
            let (to_manager, manager_rx) = watch::channel(BTreeSet::new());
            let watched = to_manager.subscribe();
            // Every node announcing: serve on while the routers converge.
            let drain = if cfg.services_ecmp() {
                cfg.withdraw_drain
            } else {
                Duration::ZERO
            };
            let relay = tokio::spawn(crate::routing::routes::relay(
                desired_rx, to_manager, gate, drain,
            ));
            relayed = Some(Relayed {
                passed: watched,
                _task: AbortOnDropHandle::new(relay),
            });
            desired_rx = manager_rx;
        }
        let (vip_ev_tx, vip_ev_rx) = mpsc::unbounded_channel();
        let mut mcfg = VipManagerConfig::new(svc.interface.clone());
        mcfg.reconcile_period = cfg.reconcile_period;
        mcfg.tag = VIPD_SVC_ADDR_PROTO;
        mcfg.guard = guard;
        let manager = Arc::new(VipManager::spawn(
            mcfg,
            desired_rx,
            vip_ev_tx,
            cancel.child_token(),
        ));
        if let Some(gate) = &gate {
            gate.attach(manager.bound(), &svc.interface);
        }
        let wire = AbortOnDropHandle::new(tokio::spawn(
            wire::Wire {
                interface: svc.interface.clone(),
                refresh: cfg.arp_refresh.unwrap_or(Duration::ZERO),
                max_pps: svc.announce_max_pps,
                arp: cfg.arp,
                metrics: obs.metrics.clone(),
            }
            .run(vip_ev_rx, cancel.child_token()),
        ));
        Kernel {
            desired,
            manager,
            wire,
            relayed,
        }
    }
}

/// The Kubernetes side: reflectors into a `KubeWorld` that sends the
/// Services' addresses and policies to `core` and writes status,
/// annotations, IPAM allocations and Events from what `view` says.
#[allow(clippy::too_many_arguments)]
fn spawn_world(
    general: Arc<vipd_kube::GeneralClient>,
    recorder: vipd_kube::EventRecorder,
    cfg: &Config,
    svc: &ServicesSettings,
    core: mpsc::Sender<Input>,
    view: watch::Receiver<core::CoreView>,
    obs: &Obs,
    cancel: &CancellationToken,
) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(
        kubeworld::KubeWorld {
            general,
            cfg: WorldConfig {
                namespace: svc.namespace.clone(),
                lb_class_only: svc.lb_class_only,
                lb_class_name: svc.lb_class_name.clone(),
                node_selector: svc.node_selector.clone(),
                zone_fallback: svc.zone_fallback,
            },
            ipam: svc.ipam_configmap.clone(),
            node: cfg.node_name.clone(),
            core,
            view,
            metrics: obs.metrics.clone(),
            events: Some(recorder),
            heartbeat: obs.liveness.register(
                "services-world",
                Duration::from_secs(5),
                Instant::now(),
            ),
            // Every eligible node announces (BGP / routing table, ECMP).
            shared: cfg.services_ecmp(),
        }
        .run(cancel.child_token()),
    ))
}
