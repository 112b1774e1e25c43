//! `vipd run`: wires the election, the VIP manager and the announcer
//! together.
//!
//! ```text
//!                    ┌──────────── Control (Shutdown, Reread) ◀── signals, duplicate claims
//!                    ▼
//!  LeaseStore ◀─▶ election driver ──Lead/Fence──▶ VipHolder ──desired set──▶ VipManager ──netlink──▶ kernel
//!                    │                                                          │ VipEvent (Bound, Unbound, ...)
//!                    └──Observation──▶ glue ◀───────────────────────────────────┘
//!                                       │ ├──Trigger/Stop──▶ Announcer ──GARP/NA──▶ wire
//!                                       │ ◀──Sent/DuplicateClaim──┘
//!                                       └──▶ Metrics, Status ──▶ HTTP (/metrics /healthz /readyz /status)
//! ```
//!
//! Startup validation happens before anything is touched (exit 2). Every
//! loop retries on its own; a panicking election or glue task is restarted
//! (R2). SIGTERM/SIGINT: the election fences (VIP removed, confirmed by a
//! kernel dump), releases the lease, and only then does the process exit (R7).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, info, warn};
use vipd::config::{Backend, Config};
use vipd::metrics::{AnnouncementKind, Metrics, Transition};
use vipd::status::{Heartbeat, Liveness, Role as StatusRole, StatusHandle};
use vipd_announce::{
    AnnounceEvent, Announcer, AnnouncerConfig, Command as AnnounceCommand, MacAddr, Reason,
    SendKind,
};
use vipd_election::{Elector, FenceReason, LeaseStore, Role};
use vipd_health::{HealthCheckSpec, HealthEvent, HealthMonitor};
use vipd_vip::{preflight, PreflightError, Vip, VipEvent, VipManager, VipManagerConfig};

use crate::elect::{self, Control, Holder, Observation};
use vipd_backoff::{random_u64, Backoff};

/// Exit status for invalid configuration (SPEC §3).
const EXIT_CONFIG: u8 = 2;

/// What an Event reports; the reason strings live with the Kubernetes
/// backend (`vipd_kube::reason`).
#[derive(Clone, Copy, Debug)]
enum EventReason {
    Acquired,
    Lost,
    Duplicate,
    Health,
}

/// Entry point of `vipd run`.
pub fn main(cfg: Config) -> ExitCode {
    init_logging(&cfg);
    for w in &cfg.warnings {
        warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(cfg))
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIPD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{},h2=warn,tower=warn,hyper=warn,tonic=warn",
            cfg.log_level
        ))
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for people: log collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if cfg.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(cfg: Config) -> ExitCode {
    let vip = Vip::new(cfg.vip, cfg.prefix_len);
    // Validation that needs the kernel, still before touching anything.
    match preflight(&cfg.interface, [&vip]).await {
        Ok(link) => info!(interface = %link.name, ifindex = link.ifindex, "interface found"),
        Err(PreflightError::NoSuchInterface(name)) if cfg.wait_for_interface => {
            warn!(interface = %name, "interface does not exist yet; waiting for it (--wait-for-interface)");
        }
        Err(e) => {
            eprintln!(
                "vipd: invalid configuration: {e} (--address/address, --interface/vip_interface)"
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    #[cfg_attr(not(feature = "kubernetes"), allow(unused_mut))]
    let mut health = match health_specs(&cfg) {
        Ok(specs) => specs,
        Err(e) => {
            eprintln!("vipd: invalid health check: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match &cfg.backend {
        #[cfg(feature = "etcd")]
        Backend::Etcd(s) => {
            let opts = vipd_etcd::EtcdOptions {
                endpoints: s.endpoints.clone(),
                key: vipd_etcd::key_for(&cfg.lease_name),
                ca_cert: s.ca_cert.clone(),
                cert: s.cert.clone(),
                key_file: s.key.clone(),
                connect_timeout: cfg.timings.retry_period().max(Duration::from_millis(500)),
                // The driver bounds every call by the renew deadline; this
                // is the store's own backstop.
                request_timeout: cfg.timings.renew_deadline(),
            };
            match vipd_etcd::EtcdStore::new(opts) {
                Ok(store) => run_with_store(cfg, vip, health, Arc::new(store), Events::None).await,
                Err(e) => {
                    eprintln!("vipd: invalid etcd configuration: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        #[cfg(not(feature = "etcd"))]
        Backend::Etcd(_) => {
            eprintln!("vipd: this build has no etcd backend (built without feature `etcd`)");
            ExitCode::from(EXIT_CONFIG)
        }
        #[cfg(feature = "kubernetes")]
        Backend::Kubernetes => {
            let settings = vipd_kube::KubeSettings {
                kubeconfig: cfg.kubeconfig.clone(),
                kubernetes_addr: cfg.kubernetes_addr.clone(),
                api_port: cfg.api_port,
                control_plane: cfg.control_plane,
                vip: cfg.vip,
            };
            let api = match vipd_kube::KubeApi::load(&settings).await {
                Ok(api) => api,
                Err(e) => {
                    eprintln!("vipd: invalid Kubernetes configuration: {e} (--kubeconfig/k8s_config_file, --kubernetes-addr/kubernetes_addr)");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let endpoints = api.endpoints();
            if !endpoints.dropped.is_empty() {
                // R6: in control-plane mode the API is never reached
                // through the VIP this node may be about to remove.
                info!(dropped = ?endpoints.dropped.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "not using API endpoints that are the control-plane VIP");
            }
            info!(endpoints = ?endpoints.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(), "Kubernetes API endpoints, in order");
            // The default /livez check verifies the local apiserver with the
            // cluster CA we already trust for the API.
            let (ca_der, ca_file) = api.credentials().cluster_ca();
            for spec in &mut health {
                spec.trust_cluster_ca(ca_der, ca_file);
            }
            let store = api.lease_store(
                &cfg.lease_namespace,
                &cfg.lease_name,
                cfg.timings.renew_deadline(),
            );
            let general = Arc::new(api.general_client(vipd_kube::GeneralOptions {
                qps: f64::from(cfg.kube_api.qps),
                burst: cfg.kube_api.burst,
                timeout: cfg.kube_api.timeout,
            }));
            let (recorder, recorder_task) = vipd_kube::EventRecorder::spawn(
                general,
                vipd_kube::EventTarget {
                    namespace: cfg.lease_namespace.clone(),
                    lease: cfg.lease_name.clone(),
                    component: "vipd".into(),
                    host: Some(cfg.node_name.clone()),
                },
            );
            let events = Events::Kube(recorder);
            let code = run_with_store(cfg, vip, health, Arc::new(store), events).await;
            drop(recorder_task);
            code
        }
        #[cfg(not(feature = "kubernetes"))]
        Backend::Kubernetes => {
            eprintln!(
                "vipd: this build has no Kubernetes backend (built without feature `kubernetes`)"
            );
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Kubernetes Events for state changes (best effort, never blocking), or
/// nothing where the backend has no event API.
#[derive(Clone)]
enum Events {
    None,
    #[cfg(feature = "kubernetes")]
    Kube(vipd_kube::EventRecorder),
}

impl Events {
    fn normal(&self, reason: EventReason, message: String) {
        self.emit(reason, message, false);
    }

    fn warning(&self, reason: EventReason, message: String) {
        self.emit(reason, message, true);
    }

    #[cfg_attr(not(feature = "kubernetes"), allow(unused_variables))]
    fn emit(&self, reason: EventReason, message: String, warning: bool) {
        match self {
            Events::None => {}
            #[cfg(feature = "kubernetes")]
            Events::Kube(r) => {
                let kind = if warning {
                    vipd_kube::EventType::Warning
                } else {
                    vipd_kube::EventType::Normal
                };
                use vipd_kube::events::reason;
                let reason = match reason {
                    EventReason::Acquired => reason::ACQUIRED,
                    EventReason::Lost => reason::LOST,
                    EventReason::Duplicate => reason::DUPLICATE,
                    EventReason::Health => reason::HEALTH,
                };
                // record() never blocks; a full queue drops and counts.
                r.record(reason, message, kind);
            }
        }
    }
}

/// Lead/Fence act on the desired set of the VIP manager.
struct VipHolder {
    vip: Vip,
    desired: Arc<watch::Sender<BTreeSet<Vip>>>,
    bound: watch::Receiver<BTreeSet<Vip>>,
    manager: Arc<VipManager>,
}

impl Holder for VipHolder {
    async fn lead(&mut self) {
        self.desired.send_replace(BTreeSet::from([self.vip]));
    }

    async fn fence(&mut self, reason: FenceReason) {
        self.desired.send_replace(BTreeSet::new());
        if reason == FenceReason::Shutdown {
            // R7: the lease is released right after this returns, so the
            // address must provably be gone: wait for a kernel dump.
            match tokio::time::timeout(Duration::from_secs(2), self.manager.remove_all_now()).await
            {
                Ok(Ok(())) => info!(vip = %self.vip.addr, "VIP removed"),
                Ok(Err(e)) => error!(error = %e, "cannot confirm VIP removal"),
                Err(_) => error!("VIP removal not confirmed within 2 s"),
            }
            return;
        }
        // Otherwise wait (briefly) until the manager no longer reports it
        // bound; the reconciler keeps removing it regardless.
        let vip = self.vip;
        let wait = self.bound.wait_for(|b| !b.contains(&vip));
        if tokio::time::timeout(Duration::from_secs(1), wait)
            .await
            .is_err()
        {
            warn!(vip = %vip.addr, "VIP removal not confirmed within 1 s; reconciler keeps trying");
        }
    }
}

async fn run_with_store<S: LeaseStore>(
    cfg: Config,
    vip: Vip,
    health: Vec<HealthCheckSpec>,
    store: Arc<S>,
    events: Events,
) -> ExitCode {
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
    let lease_label = format!("{}/{}", cfg.lease_namespace, cfg.lease_name);
    let vip_label = vip.addr.to_string();
    let status = StatusHandle::for_config(&cfg);
    let liveness = Liveness::new();

    // VIP manager: desired set in, events out.
    let (desired_tx, desired_rx) = watch::channel(BTreeSet::new());
    let desired_tx = Arc::new(desired_tx);
    let (vip_ev_tx, vip_ev_rx) = mpsc::unbounded_channel();
    let mut mcfg = VipManagerConfig::new(cfg.interface.clone());
    mcfg.reconcile_period = cfg.reconcile_period;
    let manager = Arc::new(VipManager::spawn(
        mcfg,
        desired_rx,
        vip_ev_tx,
        cancel.child_token(),
    ));

    // Health gate (R8): every change of eligibility goes to the election;
    // with checks configured a node starts ineligible until they pass.
    let (health_monitor, eligible_rx) = if health.is_empty() {
        (None, watch::channel(true).1)
    } else {
        match HealthMonitor::spawn(health, cancel.child_token()) {
            Ok(monitor) => {
                let rx = monitor.eligible();
                (Some(monitor), rx)
            }
            Err(e) => {
                eprintln!("vipd: invalid health check: {e}");
                cancel.cancel();
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };

    // Election driver, restarted if it ever panics (R2).
    let (control_tx, control_rx) = mpsc::channel::<Control>(8);
    let control_rx = Arc::new(Mutex::new(control_rx));
    let (obs_tx, obs_rx) = watch::channel(Observation {
        status: Elector::new(
            cfg.node_name.clone(),
            cfg.timings,
            0,
            tokio::time::Instant::now(),
        )
        .status(),
        store_reachable: false,
        last_result: None,
    });
    let obs_tx = Arc::new(obs_tx);
    let hook_metrics = metrics.clone();
    let hook_lease = lease_label.clone();
    let on_request: elect::RequestHook = Arc::new(move |verb, result, took, renewal| {
        hook_metrics.observe_api_request(verb, result, took);
        if renewal && result != "ok" {
            hook_metrics.inc_renew_failure(&hook_lease);
        }
    });
    let election = {
        let store = store.clone();
        let node = cfg.node_name.clone();
        let timings = cfg.timings;
        let holder_parts = (vip, desired_tx.clone(), manager.clone());
        let obs_tx = obs_tx.clone();
        // The driver wakes at least once per renew deadline (every request
        // is bounded by it) and once per jittered retry period when idle.
        let max_age =
            timings.renew_deadline() + timings.retry_period() * 3 + Duration::from_secs(1);
        let liveness = liveness.clone();
        let eligible_rx = eligible_rx.clone();
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
            loop {
                let holder = VipHolder {
                    vip: holder_parts.0,
                    desired: holder_parts.1.clone(),
                    bound: holder_parts.2.bound(),
                    manager: holder_parts.2.clone(),
                };
                let elector = Elector::new(
                    node.clone(),
                    timings,
                    random_u64(),
                    tokio::time::Instant::now(),
                );
                let (store, rx, obs, hook) = (
                    store.clone(),
                    control_rx.clone(),
                    obs_tx.clone(),
                    on_request.clone(),
                );
                let heartbeat = liveness.register("election", max_age, tokio::time::Instant::now());
                let eligible = *eligible_rx.borrow();
                let task = tokio::spawn(async move {
                    let mut rx = rx.lock_owned().await;
                    let report = elect::Reporting {
                        observe: &obs,
                        on_request: hook,
                        heartbeat,
                    };
                    elect::run(store, elector, holder, &mut rx, report, eligible).await;
                });
                match task.await {
                    Ok(()) => return,
                    Err(e) => {
                        // Whatever the dead instance held is no longer
                        // backed by a live elector: drop it before a new
                        // one campaigns (R1 over R2).
                        error!(error = %e, "election task died; fencing and restarting it");
                        holder_parts.1.send_replace(BTreeSet::new());
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
        })
    };

    // Glue: VIP events → announcer + metrics; announcer events → metrics,
    // and duplicate claims → re-read the lease (R5).
    let glue_ctx = GlueCtx {
        cfg: cfg.clone(),
        metrics: metrics.clone(),
        status: status.clone(),
        control: control_tx.clone(),
        lease_label: lease_label.clone(),
        vip_label: vip_label.clone(),
        bound: manager.bound(),
        cancel: cancel.child_token(),
        liveness: liveness.clone(),
        events: events.clone(),
    };
    let glue_inputs = Arc::new(Mutex::new((vip_ev_rx, obs_rx)));
    let glue = tokio::spawn(crate::supervise::supervise(
        "glue",
        cancel.child_token(),
        move || {
            let ctx = glue_ctx.clone();
            let inputs = glue_inputs.clone();
            async move {
                let mut inputs = inputs.lock_owned().await;
                let (vip_events, obs) = &mut *inputs;
                glue(ctx, vip_events, obs).await;
            }
        },
    ));

    let mut health_monitor = health_monitor;
    if let Some(monitor) = health_monitor.as_mut() {
        tokio::spawn(health_loop(
            monitor.eligible(),
            monitor.take_events(),
            control_tx.clone(),
            metrics.clone(),
            events.clone(),
            cancel.child_token(),
        ));
        let mut checks = monitor.status();
        let status = status.clone();
        let stop = cancel.child_token();
        // Owned by the cancellation token: ends with the daemon.
        tokio::spawn(async move {
            loop {
                status.set_health(checks.borrow_and_update().clone());
                tokio::select! {
                    () = stop.cancelled() => return,
                    r = checks.changed() => if r.is_err() { return },
                }
            }
        });
    }

    let http = cfg.http_addr.map(|addr| {
        let state = vipd::http::HttpState::new(metrics.clone(), status.clone(), liveness.clone());
        let stop = cancel.child_token();
        tokio::spawn(async move {
            // The endpoint is best effort: a port clash must not take the
            // VIP down, so log and keep the daemon running.
            if let Err(e) = vipd::http::serve(addr, state, stop.cancelled_owned()).await {
                error!(%addr, error = %e, "HTTP endpoint failed");
            }
        })
    });

    info!(
        vip = %vip.addr, interface = %cfg.interface, node = %cfg.node_name, lease = %lease_label,
        lease_duration = ?cfg.timings.lease_duration(), renew_deadline = ?cfg.timings.renew_deadline(),
        retry_period = ?cfg.timings.retry_period(), "vipd started"
    );

    wait_for_signal().await;
    info!("shutting down: removing the VIP, then releasing the lease");
    let _ = control_tx.send(Control::Shutdown).await;
    // Grace: the release is one request bounded by the renew deadline.
    let grace = cfg.timings.renew_deadline() + Duration::from_secs(1);
    if tokio::time::timeout(grace, election).await.is_err() {
        warn!("lease release did not finish within {grace:?}; exiting anyway");
    }
    // Belt and braces: whatever happened above, leave no VIP behind.
    if tokio::time::timeout(Duration::from_secs(2), manager.remove_all_now())
        .await
        .is_err()
    {
        warn!("could not confirm that the VIP is gone");
    }
    cancel.cancel();
    let _ = glue.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    info!("vipd stopped");
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => info!("SIGTERM received"),
                _ = i.recv() => info!("SIGINT received"),
            }
        }
        _ => {
            error!("cannot install signal handlers; running until killed");
            std::future::pending::<()>().await;
        }
    }
}

#[derive(Clone)]
struct GlueCtx {
    cfg: Config,
    metrics: Arc<Metrics>,
    status: StatusHandle,
    control: mpsc::Sender<Control>,
    lease_label: String,
    vip_label: String,
    bound: watch::Receiver<BTreeSet<Vip>>,
    cancel: CancellationToken,
    liveness: Liveness,
    events: Events,
}

async fn glue(
    ctx: GlueCtx,
    vip_events: &mut mpsc::UnboundedReceiver<VipEvent>,
    obs: &mut watch::Receiver<Observation>,
) {
    let heartbeat: Heartbeat =
        ctx.liveness
            .register("glue", Duration::from_secs(5), tokio::time::Instant::now());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let (ann_tx, mut ann_rx) = mpsc::channel::<AnnounceEvent>(256);
    let mut announcer: Option<AnnouncerHandle> = None;
    let mut last_role = Role::Follower;
    let refresh = ctx.cfg.arp_refresh.unwrap_or(Duration::ZERO);
    loop {
        heartbeat.beat(tokio::time::Instant::now());
        tokio::select! {
            () = ctx.cancel.cancelled() => return,
            _ = tick.tick() => {}
            ev = vip_events.recv() => {
                let Some(ev) = ev else { return };
                match ev {
                    VipEvent::Bound { vip, link } => {
                        info!(vip = %vip.addr, interface = %link.name, "VIP bound; announcing");
                        ctx.metrics.set_vip_bound(&ctx.vip_label, &ctx.cfg.interface, true);
                        ctx.status.update_vip(vip.addr, current_role(last_role), true);
                        ctx.metrics.inc_vip_bind(&ctx.vip_label);
                        if !ctx.cfg.arp {
                            continue;
                        }
                        let Some(mac) = link.mac else {
                            warn!(interface = %link.name, "interface has no Ethernet address; cannot announce");
                            continue;
                        };
                        let mac = MacAddr(mac);
                        let stale = announcer.as_ref().is_none_or(|a| a.ifindex != link.ifindex || a.mac != mac);
                        if stale {
                            // The interface was (re)created: new sockets.
                            announcer = Some(AnnouncerHandle::spawn(link.ifindex, mac, refresh, ann_tx.clone(), &ctx.cancel));
                        }
                        if let Some(a) = &announcer {
                            a.send(AnnounceCommand::Trigger { vip: vip.addr, reason: Reason::Acquired });
                        }
                    }
                    VipEvent::Unbound { vip } => {
                        info!(vip = %vip.addr, "VIP unbound");
                        ctx.metrics.set_vip_bound(&ctx.vip_label, &ctx.cfg.interface, false);
                        ctx.status.update_vip(vip.addr, current_role(last_role), false);
                        if let Some(a) = &announcer {
                            a.send(AnnounceCommand::Stop { vip: vip.addr });
                        }
                    }
                    VipEvent::LinkUp { link } => info!(interface = %link.name, "link up"),
                    VipEvent::LinkDown => warn!(interface = %ctx.cfg.interface, "link down"),
                    VipEvent::Refused { vip, reason } => {
                        error!(vip = %vip.addr, %reason, "refusing to manage an address vipd did not add");
                    }
                    VipEvent::Error { vip, error } => {
                        warn!(vip = ?vip.map(|v| v.addr), %error, "netlink operation failed; retrying");
                    }
                }
            }
            ev = ann_rx.recv() => {
                let Some(ev) = ev else { continue };
                match ev {
                    AnnounceEvent::Sent { vip, kind } => {
                        ctx.metrics.inc_announcement(&vip.to_string(), announcement_kind(kind));
                    }
                    AnnounceEvent::DuplicateClaim { vip, mac } => {
                        warn!(vip = %vip, claimed_by = %mac, "another MAC claims our VIP; re-reading the lease and re-announcing");
                        ctx.metrics.inc_duplicate_claim(&vip.to_string());
                        ctx.events.warning(EventReason::Duplicate, format!("{mac} claims {vip} held by {}", ctx.cfg.node_name));
                        // R5: if the lease says another node holds it the
                        // re-read steps us down; otherwise we re-announce.
                        let _ = ctx.control.try_send(Control::Reread);
                        if ctx.bound.borrow().iter().any(|v| v.addr == vip) {
                            if let Some(a) = &announcer {
                                a.send(AnnounceCommand::Trigger { vip, reason: Reason::Duplicate });
                            }
                        }
                    }
                }
            }
            changed = obs.changed() => {
                if changed.is_err() {
                    continue;
                }
                let o = obs.borrow_and_update().clone();
                let role = o.status.role;
                if role != last_role && role != Role::Stopped {
                    info!(from = elect::role_label(last_role), to = elect::role_label(role), holder = ?o.status.holder, "leadership changed");
                    ctx.metrics.inc_transition(&ctx.lease_label, if role == Role::Leader { Transition::Leader } else { Transition::Follower });
                    if role == Role::Leader {
                        ctx.events.normal(EventReason::Acquired, format!("{} acquired the lease and holds {}", ctx.cfg.node_name, ctx.vip_label));
                    } else {
                        ctx.events.warning(EventReason::Lost, format!("{} stopped holding {} (lease holder now {:?})", ctx.cfg.node_name, ctx.vip_label, o.status.holder));
                    }
                    last_role = role;
                }
                ctx.metrics.set_leader(&ctx.vip_label, &ctx.lease_label, role == Role::Leader);
                ctx.metrics.set_api_reachable(o.store_reachable);
                let bound = ctx.bound.borrow().iter().any(|v| v.addr == ctx.cfg.vip);
                ctx.status.update_vip(ctx.cfg.vip, current_role(role), bound);
                ctx.status.set_lease(o.status.holder.clone(), u64::from(o.status.transitions));
                if let Some(at) = o.status.last_renewal {
                    ctx.status.renewed(at);
                }
                ctx.status.set_api_reachable(o.store_reachable);
                if o.last_result == Some("ok") && !ctx.status.is_ready() {
                    // First sync with the store: our role is now known.
                    ctx.status.mark_ready();
                }
            }
        }
    }
}

/// One announcer task for the VIP interface, aborted when replaced or dropped.
struct AnnouncerHandle {
    ifindex: u32,
    mac: MacAddr,
    tx: mpsc::Sender<AnnounceCommand>,
    _task: AbortOnDropHandle<()>,
}

impl AnnouncerHandle {
    fn spawn(
        ifindex: u32,
        mac: MacAddr,
        refresh: Duration,
        events: mpsc::Sender<AnnounceEvent>,
        cancel: &CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let announcer = Announcer::new(
            AnnouncerConfig {
                ifindex,
                mac,
                refresh,
            },
            rx,
            events,
        );
        let task = tokio::spawn(announcer.run(cancel.child_token()));
        AnnouncerHandle {
            ifindex,
            mac,
            tx,
            _task: AbortOnDropHandle::new(task),
        }
    }

    fn send(&self, cmd: AnnounceCommand) {
        // Commands are rare state changes; a full queue means the task is
        // wedged, which the next Bound event (new handle) would not fix
        // either, so say it loudly.
        if let Err(e) = self.tx.try_send(cmd) {
            warn!(error = %e, "announcer queue full or closed; announcement dropped");
        }
    }
}

fn current_role(r: Role) -> StatusRole {
    if r == Role::Leader {
        StatusRole::Leader
    } else {
        StatusRole::Follower
    }
}

fn announcement_kind(k: SendKind) -> AnnouncementKind {
    match k {
        SendKind::GarpRequest => AnnouncementKind::GarpRequest,
        SendKind::GarpReply => AnnouncementKind::GarpReply,
        SendKind::UnsolicitedNa => AnnouncementKind::UnsolicitedNa,
    }
}

/// The health checks to run: explicit `--health-check` specs as written,
/// kube-vip's `control_plane_health_check_address` with kube-vip's period,
/// timeout and threshold, and the local apiserver's `/livez` (verified as
/// `kubernetes`, the name kubeadm's serving certificate carries) as the
/// control-plane default.
fn health_specs(cfg: &Config) -> Result<Vec<HealthCheckSpec>, vipd_health::HealthSpecError> {
    let local = vipd::config::default_health_check(cfg.api_port);
    let h = &cfg.health;
    let secs = |d: Duration| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX);
    cfg.health_checks
        .iter()
        .map(|s| {
            if *s == local {
                let mut spec = HealthCheckSpec::local_apiserver(cfg.api_port, h.ca_path.clone());
                spec.interval = h.period;
                spec.timeout = h.timeout;
                spec.failure_threshold = h.failure_threshold;
                Ok(spec)
            } else if h.address.as_deref() == Some(s.as_str()) {
                HealthCheckSpec::from_kube_vip(
                    s,
                    secs(h.period),
                    secs(h.timeout),
                    i64::from(h.failure_threshold),
                    h.ca_path.clone(),
                )
            } else {
                // --health-check-period/-timeout/-failure-threshold (kube-vip's
                // control_plane_health_check_*) apply to every check.
                HealthCheckSpec::parse(s).map(|mut spec| {
                    spec.interval = h.period;
                    spec.timeout = h.timeout;
                    spec.failure_threshold = h.failure_threshold;
                    if let vipd_health::ProbeSpec::Http(http) = &mut spec.probe {
                        if http.ca_path.is_none() {
                            http.ca_path.clone_from(&h.ca_path);
                        }
                    }
                    spec
                })
            }
        })
        .collect()
}

/// Forwards eligibility to the election and check changes to metrics.
async fn health_loop(
    mut eligible: watch::Receiver<bool>,
    events: Option<mpsc::Receiver<HealthEvent>>,
    control: mpsc::Sender<Control>,
    metrics: Arc<Metrics>,
    kube_events: Events,
    cancel: CancellationToken,
) {
    let mut events = events;
    // The election started with the value current at its start; a change
    // between then and now would be lost, so state the current one again
    // (idempotent for the elector), then forward every change.
    let now = *eligible.borrow_and_update();
    let _ = control.send(Control::Eligible(now)).await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = eligible.changed() => {
                if changed.is_err() {
                    return;
                }
                let e = *eligible.borrow_and_update();
                info!(eligible = e, "health gate changed");
                let _ = control.send(Control::Eligible(e)).await;
            }
            ev = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Some(HealthEvent::CheckChanged { name, up, reason }) => {
                    metrics.set_health_check(&name, up);
                    let msg = match reason {
                        Some(r) => format!("health check {name} is {}: {r}", if up { "up" } else { "down" }),
                        None => format!("health check {name} is {}", if up { "up" } else { "down" }),
                    };
                    if up {
                        kube_events.normal(EventReason::Health, msg);
                    } else {
                        kube_events.warning(EventReason::Health, msg);
                    }
                }
                Some(HealthEvent::Eligible(_)) => {}
                None => events = None,
            },
        }
    }
}
