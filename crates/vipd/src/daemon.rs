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
use tracing::{error, info, warn};
use vipd::config::{Backend, Config, Coordination};
use vipd_election::{Elector, FenceReason, LeaseStore};
use vipd_health::{HealthCheckSpec, HealthMonitor};
use vipd_vip::{preflight, PreflightError, Vip, VipEvent, VipManager, VipManagerConfig};

use vipd_elector::quorum::{GrantSink, NoSink, ServicesLink};
use vipd_elector::{self as elect, Control, Holder, Observation};

mod events;
mod glue;
mod guard;
mod health;
mod quorum;

#[cfg(feature = "kubernetes")]
use crate::routing::bgp_node;
use crate::routing::{bgp, table};
use events::Events;
use glue::{glue, GlueCtx};
use health::health_loop;

#[cfg(feature = "kubernetes")]
use crate::context::load_kube;
use crate::context::{
    eligibility_patience, health_specs, wait_for_signal, watch_eligibility, Obs, EXIT_CONFIG,
};
use vipd_backoff::{random_u64, Backoff};

pub use guard::guard_main;
pub use quorum::witness_main;

/// Entry point of `vipd run`.
pub fn main(cfg: Config, caps: std::io::Result<vipd_sys::process::NetCapabilities>) -> ExitCode {
    init_logging(&cfg);
    for w in &cfg.warnings {
        warn!("{w}");
    }
    // Without these nothing can be bound or announced; say so once, at
    // start, rather than only in every failed bind (R2: vipd keeps
    // running; a pod fixed by the operator needs no other restart).
    match caps {
        Ok(c) if c.net_admin && c.net_raw => {}
        Ok(c) => error!(
            cap_net_admin = c.net_admin,
            cap_net_raw = c.net_raw,
            "vipd lacks CAP_NET_ADMIN and/or CAP_NET_RAW: it cannot bind or announce addresses; grant them (pod: securityContext.capabilities.add [NET_ADMIN, NET_RAW], and do not set allowPrivilegeEscalation: false with the non-root image; systemd: see vipd.service)"
        ),
        Err(e) => warn!(error = %e, "cannot read this process's capabilities (capget)"),
    }
    for e in &cfg.errors {
        error!("{e}");
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
    init_logging_with(cfg.log_level, cfg.log_json);
}

fn init_logging_with(level: tracing::Level, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIPD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{level},h2=warn,tower=warn,hyper=warn,tonic=warn"
        ))
    });
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for people: log collectors get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Serves `/metrics`, `/healthz`, `/readyz` and `/status` until `stop`.
fn spawn_http(
    addr: std::net::SocketAddr,
    obs: &Obs,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let state = vipd::http::HttpState::new(
        obs.metrics.clone(),
        obs.status.clone(),
        obs.liveness.clone(),
    );
    tokio::spawn(async move {
        // The endpoint is best effort: a port clash must not take the
        // VIP down, so log and keep the daemon running.
        if let Err(e) = vipd::http::serve(addr, state, stop.cancelled_owned()).await {
            error!(%addr, error = %e, "HTTP endpoint failed");
        }
    })
}

async fn run(mut cfg: Config) -> ExitCode {
    if cfg.bgp.is_some() && cfg.arp {
        // Routers reach the VIP through the next hop we announce; an ARP
        // answer for it would pull a LAN neighbour to one node.
        warn!("BGP mode: vip_arp is ignored, the VIP is announced to the BGP peers only");
        cfg.arp = false;
    }
    if cfg.routing_table.is_some() && cfg.arp {
        // kube-vip's docs for this mode: "Ensure that all other modes are
        // turned off"; the routing daemon exports the host route, and an
        // ARP answer would pull a LAN neighbour to one node.
        warn!("routing-table mode: vip_arp is ignored, the VIP is reached through its host route only");
        cfg.arp = false;
    }
    if (cfg.bgp.is_some() || cfg.routing_table.is_some()) && cfg.routed_arp_ignore {
        // Before any VIP is bound: the kernel must not answer ARP for it.
        let mut vip_ifs = vec![cfg.interface.as_str()];
        if let Some(s) = &cfg.services {
            vip_ifs.push(s.interface.as_str());
        }
        crate::routing::arp::quiet(&vip_ifs).await;
    }
    // Before any address or route exists: the guard removes them if this
    // process dies without doing so (SIGKILL, OOM, abort).
    guard::start();
    if let Some(t) = &cfg.routing_table {
        // One sink for the process, like the BGP speaker (routing/table.rs).
        table::start_shared(t, cfg.reconcile_period, guard::pipe());
    }
    let obs = Obs::for_config(&cfg);
    table::report_to(&obs);
    let stop_http = CancellationToken::new();
    let http = cfg
        .http_addr
        .map(|addr| spawn_http(addr, &obs, stop_http.clone()));
    let quorum_mode = matches!(cfg.coordination, Coordination::Quorum(_));
    if let Some(mut settings) = cfg.bgp.clone() {
        // kube-vip's `annotation`: AS, router ID and peers from this
        // node's Node object, once they are there.
        if let Some(prefix) = settings.node_annotations.clone() {
            #[cfg(feature = "kubernetes")]
            match bgp_node::settings_from_node(&cfg, &settings, &prefix).await {
                Ok(s) => settings = s,
                Err(code) => {
                    stop_http.cancel();
                    return code;
                }
            }
            #[cfg(not(feature = "kubernetes"))]
            {
                eprintln!("vipd: BGP settings from node annotations ({prefix}) need the Kubernetes API; this build has no feature `kubernetes`");
                stop_http.cancel();
                return ExitCode::from(EXIT_CONFIG);
            }
        }
        cfg.bgp = Some(settings.clone());
        // One speaker for the process: the control-plane VIP and Services
        // announce through it (a router takes one session per neighbour).
        if let Err(e) = bgp::start_shared(&settings, &obs).await {
            eprintln!("vipd: invalid BGP configuration: {e}");
            stop_http.cancel();
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let code = match (cfg.vip, cfg.services.clone()) {
        (Some(vip), None) => run_vip(cfg, vip, obs, None::<ServicesLink<NoSink>>).await,
        #[cfg(feature = "kubernetes")]
        // Services with owners ride on the quorum's grants; in BGP or
        // routing-table mode without svc_election every eligible node
        // announces and needs no coordination (the VIP still does).
        (vip, Some(svc)) if quorum_mode && !cfg.services_ecmp() => {
            run_quorum_services(cfg, vip, svc, obs).await
        }
        #[cfg(feature = "kubernetes")]
        (None, Some(svc)) => crate::services::run(cfg, svc, obs, guard::pipe()).await,
        #[cfg(feature = "kubernetes")]
        (Some(vip), Some(svc)) => {
            // Both in one process: separate address tags keep the two VIP
            // managers from removing each other's addresses.
            let (a, b) = tokio::join!(
                run_vip(cfg.clone(), vip, obs.clone(), None::<ServicesLink<NoSink>>),
                crate::services::run(cfg, svc, obs, guard::pipe())
            );
            if a == ExitCode::SUCCESS {
                b
            } else {
                a
            }
        }
        #[cfg(not(feature = "kubernetes"))]
        (_, Some(_)) => {
            eprintln!("vipd: this build has no Services mode (built without feature `kubernetes`)");
            ExitCode::from(EXIT_CONFIG)
        }
        (None, None) => {
            eprintln!("vipd: invalid configuration: neither --address nor --services is set");
            ExitCode::from(EXIT_CONFIG)
        }
    };
    // Every mode withdrew its routes before removing its addresses; now
    // the sessions close with an administrative-shutdown Cease.
    bgp::shutdown_shared("vipd shutting down").await;
    // Every mode deleted its routes before removing its addresses; this
    // deletes whatever is left and stops the sink.
    table::shutdown_shared().await;
    stop_http.cancel();
    if let Some(h) = http {
        let _ = h.await;
    }
    code
}

/// Services on the quorum (issue 13): one quorum shell drives the
/// control-plane VIP (if `--address` is set) and the Services grants.
#[cfg(feature = "kubernetes")]
async fn run_quorum_services(
    cfg: Config,
    vip: Option<std::net::IpAddr>,
    svc: vipd::config::ServicesSettings,
    obs: Obs,
) -> ExitCode {
    let Coordination::Quorum(qs) = cfg.coordination.clone() else {
        eprintln!("vipd: internal error: Services on the quorum without quorum settings");
        return ExitCode::from(EXIT_CONFIG);
    };
    let mut services =
        match crate::services::quorum::QuorumServices::start(&cfg, &svc, &obs, guard::pipe()).await
        {
            Ok(s) => s,
            Err(code) => return code,
        };
    let Some(link) = services.take_link() else {
        return ExitCode::FAILURE;
    };
    let code = match vip {
        Some(vip) => run_vip(cfg, vip, obs, Some(link)).await,
        None => {
            let mut health = match health_specs(&cfg) {
                Ok(specs) => specs,
                Err(e) => {
                    eprintln!("vipd: invalid health check: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            services.trust(&mut health);
            quorum::run_services_only(cfg, qs, health, obs, link).await
        }
    };
    services.finish().await;
    code
}

/// The control-plane VIP; in quorum mode `services` also rides on the
/// quorum shell (issue 13).
async fn run_vip<G: GrantSink + Clone + 'static>(
    cfg: Config,
    vip: std::net::IpAddr,
    obs: Obs,
    services: Option<ServicesLink<G>>,
) -> ExitCode {
    let vip = Vip::new(vip, cfg.prefix_len);
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
    if cfg.bgp.as_ref().is_some_and(|b| !b.leader_election)
        || cfg
            .routing_table
            .as_ref()
            .is_some_and(|t| !t.leader_election)
    {
        // BGP or routing-table mode without leader election: no lease,
        // every healthy node announces (ECMP at the router), as kube-vip.
        return run_ecmp(cfg, vip, health, obs).await;
    }
    match &cfg.backend {
        #[cfg(feature = "etcd")]
        Backend::Etcd(s) => {
            let opts = vipd_etcd::EtcdOptions {
                endpoints: s.endpoints.clone(),
                key: vipd_etcd::key_for(&mirror_name(&cfg)),
                ca_cert: s.ca_cert.clone(),
                cert: s.cert.clone(),
                key_file: s.key.clone(),
                connect_timeout: cfg.timings.retry_period().max(Duration::from_millis(500)),
                // The driver bounds every call by the renew deadline; this
                // is the store's own backstop.
                request_timeout: cfg.timings.renew_deadline(),
            };
            match vipd_etcd::EtcdStore::new(opts) {
                Ok(store) => match cfg.coordination.clone() {
                    Coordination::Quorum(qs) => {
                        quorum::run(
                            cfg,
                            qs,
                            vip,
                            health,
                            Some(Arc::new(store)),
                            Events::None,
                            obs,
                            services,
                        )
                        .await
                    }
                    Coordination::Lease => {
                        run_with_store(cfg, vip, health, Arc::new(store), Events::None, obs).await
                    }
                },
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
            let api = match load_kube(&cfg, Some(vip.addr)).await {
                Ok(api) => api,
                Err(code) => return code,
            };
            // The default /livez check verifies the local apiserver with the
            // cluster CA we already trust for the API.
            let (ca_der, ca_file) = api.credentials().cluster_ca();
            for spec in &mut health {
                spec.trust_cluster_ca(ca_der, ca_file);
            }
            let store = api.lease_store(
                &cfg.lease_namespace,
                &mirror_name(&cfg),
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
            let code = match cfg.coordination.clone() {
                Coordination::Quorum(qs) => {
                    quorum::run(
                        cfg,
                        qs,
                        vip,
                        health,
                        Some(Arc::new(store)),
                        events,
                        obs,
                        services,
                    )
                    .await
                }
                Coordination::Lease => {
                    run_with_store(cfg, vip, health, Arc::new(store), events, obs).await
                }
            };
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
        Backend::None => match cfg.coordination.clone() {
            Coordination::Quorum(qs) => {
                quorum::run::<quorum::NoMirror, G>(
                    cfg,
                    qs,
                    vip,
                    health,
                    None,
                    Events::None,
                    obs,
                    services,
                )
                .await
            }
            Coordination::Lease => {
                eprintln!(
                    "vipd: invalid configuration: --backend none needs --coordination quorum"
                );
                ExitCode::from(EXIT_CONFIG)
            }
        },
    }
}

/// BGP mode without leader election (kube-vip's `vip_leaderelection`
/// unset or false): every node binds the VIP while its health checks pass
/// and announces it, so the router spreads clients over all healthy nodes
/// (ECMP). There is no lease to hold: a node's route is its claim, and a
/// node that fails its checks or stops withdraws before it lets go of the
/// address.
async fn run_ecmp(cfg: Config, vip: Vip, health: Vec<HealthCheckSpec>, obs: Obs) -> ExitCode {
    let mut plumbing = match Plumbing::start(&cfg, health) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = plumbing.attach_bgp(&cfg) {
        return code;
    }
    let mut holder = plumbing.holder(vip);
    holder.drain = cfg.withdraw_drain;
    let mut eligible = plumbing.eligible_rx.clone();
    let (_, never) = mpsc::unbounded_channel();
    let mut vip_events = plumbing.vip_ev_rx.take().unwrap_or(never);
    let heartbeat = obs.liveness.register(
        "bgp-ecmp",
        Duration::from_secs(5),
        tokio::time::Instant::now(),
    );
    obs.status.mark_ready();
    info!(vip = %vip.addr, interface = %cfg.interface, node = %cfg.node_name, "vipd started (BGP or routing table, every healthy node announces)");
    let signal = wait_for_signal();
    tokio::pin!(signal);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut serving = false;
    // Without health checks the eligibility sender is gone at once: the
    // node is simply always eligible.
    let mut gated = plumbing.health_monitor.is_some();
    loop {
        heartbeat.beat(tokio::time::Instant::now());
        let want = *eligible.borrow_and_update();
        if want && !serving {
            info!(vip = %vip.addr, "healthy: binding and announcing the VIP");
            holder.lead().await;
        } else if !want && serving {
            info!(vip = %vip.addr, "unhealthy: withdrawing, then removing the VIP");
            holder.fence(FenceReason::Unhealthy).await;
        }
        serving = want;
        tokio::select! {
            () = &mut signal => break,
            _ = tick.tick() => {}
            r = eligible.changed(), if gated => if r.is_err() { gated = false },
            ev = vip_events.recv() => match ev {
                Some(VipEvent::Bound { vip: v, link }) => {
                    info!(vip = %v.addr, interface = %link.name, "VIP bound");
                    obs.metrics.set_vip_bound(&vip.addr.to_string(), &cfg.interface, true);
                    obs.metrics.inc_vip_bind(&vip.addr.to_string());
                    obs.status.update_vip(v.addr, vipd_observe::status::Role::Leader, true);
                }
                Some(VipEvent::Unbound { vip: v }) => {
                    info!(vip = %v.addr, "VIP unbound");
                    obs.metrics.set_vip_bound(&vip.addr.to_string(), &cfg.interface, false);
                    obs.status.update_vip(v.addr, vipd_observe::status::Role::Follower, false);
                }
                Some(VipEvent::Error { vip: v, error }) => {
                    warn!(vip = ?v.map(|x| x.addr), %error, "netlink operation failed; retrying");
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    info!("shutting down: withdrawing the route, then removing the VIP");
    holder.fence(FenceReason::Shutdown).await;
    plumbing.finish(tokio::spawn(async {})).await;
    ExitCode::SUCCESS
}

/// The record the backend works on: the lease itself, or in quorum mode
/// the mirror `<lease name>-quorum`, which a kube-vip on the real lease
/// name never mistakes for its lock (issue 12).
fn mirror_name(cfg: &Config) -> String {
    match cfg.coordination {
        Coordination::Quorum(_) => format!("{}-quorum", cfg.lease_name),
        Coordination::Lease => cfg.lease_name.clone(),
    }
}

/// Lead/Fence act on the desired set of the VIP manager.
#[derive(Clone)]
struct VipHolder {
    vip: Vip,
    desired: Arc<watch::Sender<BTreeSet<Vip>>>,
    bound: watch::Receiver<BTreeSet<Vip>>,
    manager: Arc<VipManager>,
    /// BGP mode: the route follows the address (announced once bound,
    /// withdrawn before the address goes).
    bgp: Option<bgp::BgpGate>,
    /// Routing-table mode: the host route follows the address the same
    /// way (written once bound, deleted before the address goes).
    table: Option<table::TableGate>,
    /// Every node announcing (ECMP): how long the address keeps serving
    /// once its route is withdrawn (`--withdraw-drain`), while the routers
    /// converge; zero with one holder, whose successor waits for it.
    drain: Duration,
}

impl VipHolder {
    /// Wants the VIP bound and, in BGP mode, announced once it is.
    fn want(&self) {
        self.desired.send_replace(BTreeSet::from([self.vip]));
        if let Some(g) = &self.bgp {
            g.announce(self.vip.addr);
        }
        if let Some(g) = &self.table {
            g.announce(self.vip.addr);
        }
    }

    /// BGP mode: the withdrawal reaches the routers before the address
    /// is removed (SPEC §5b).
    async fn withdraw_route(&self) {
        if let Some(g) = &self.bgp {
            g.withdraw(self.vip.addr).await;
        }
        if let Some(g) = &self.table {
            g.withdraw(self.vip.addr).await;
        }
        let routed = self.bgp.is_some() || self.table.is_some();
        if routed && !self.drain.is_zero() && !self.bound.borrow().is_empty() {
            // Routers still send packets until they have taken the path
            // out of their forwarding table (FRR: ~70 ms in the lab); the
            // other nodes' paths are already there, so serving them here
            // a little longer loses nothing and drops nothing.
            info!(vip = %self.vip.addr, drain = ?self.drain, "route withdrawn; serving while the routers converge");
            tokio::time::sleep(self.drain).await;
        }
    }
}

impl Holder for VipHolder {
    async fn lead(&mut self) {
        info!(vip = %self.vip.addr, "binding the VIP");
        self.want();
    }

    async fn fence(&mut self, reason: FenceReason) {
        info!(vip = %self.vip.addr, ?reason, "removing the VIP");
        self.withdraw_route().await;
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

/// What both coordination modes share: the VIP manager (desired set in,
/// events out) and the health gate (R8).
struct Plumbing {
    cancel: CancellationToken,
    desired_tx: Arc<watch::Sender<BTreeSet<Vip>>>,
    manager: Arc<VipManager>,
    vip_ev_rx: Option<mpsc::UnboundedReceiver<VipEvent>>,
    health_monitor: Option<HealthMonitor>,
    eligible_rx: watch::Receiver<bool>,
    /// Routing-table mode: the process's sink, fed this manager's bound set.
    table: Option<table::TableGate>,
    /// BGP mode: the process's speaker, fed this manager's bound set by
    /// [`Plumbing::attach_bgp`].
    bgp: Option<bgp::BgpGate>,
}

impl Plumbing {
    /// Starts the VIP manager and the health monitor; exit 2 on an invalid
    /// health check.
    fn start(cfg: &Config, health: Vec<HealthCheckSpec>) -> Result<Plumbing, ExitCode> {
        let cancel = CancellationToken::new();
        let (desired_tx, desired_rx) = watch::channel(BTreeSet::new());
        let desired_tx = Arc::new(desired_tx);
        let (vip_ev_tx, vip_ev_rx) = mpsc::unbounded_channel();
        let mut mcfg = VipManagerConfig::new(cfg.interface.clone());
        mcfg.reconcile_period = cfg.reconcile_period;
        mcfg.guard = guard::pipe();
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
                    return Err(ExitCode::from(EXIT_CONFIG));
                }
            }
        };
        // Routing-table mode: this manager's addresses are routed via its
        // interface, and a leftover route of the VIP is ours to remove.
        let table = table::shared_gate();
        if let Some(g) = &table {
            g.attach(manager.bound(), cfg.interface.clone());
            if let Some(v) = cfg.vip {
                g.manage(v);
            }
        }
        Ok(Plumbing {
            table,
            cancel,
            desired_tx,
            manager,
            vip_ev_rx: Some(vip_ev_rx),
            health_monitor,
            eligible_rx,
            bgp: None,
        })
    }

    /// BGP mode: feeds this manager's bound set to the process's speaker
    /// (started by `run`; nothing is announced until a holder wants the
    /// VIP).
    fn attach_bgp(&mut self, cfg: &Config) -> Result<(), ExitCode> {
        if cfg.bgp.is_none() {
            return Ok(());
        }
        let Some(gate) = bgp::shared_gate() else {
            eprintln!("vipd: internal error: BGP mode without a speaker");
            self.cancel.cancel();
            return Err(ExitCode::FAILURE);
        };
        gate.attach(self.manager.bound());
        self.bgp = Some(gate);
        Ok(())
    }

    /// The holder the coordination core drives.
    fn holder(&self, vip: Vip) -> VipHolder {
        VipHolder {
            vip,
            desired: self.desired_tx.clone(),
            bound: self.manager.bound(),
            manager: self.manager.clone(),
            bgp: self.bgp.clone(),
            table: self.table.clone(),
            drain: Duration::ZERO,
        }
    }

    /// Starts the glue (VIP events → announcer, observations → metrics and
    /// `/status`) and the health forwarding; returns the glue's handle.
    #[allow(clippy::too_many_arguments)]
    fn start_glue(
        &mut self,
        cfg: &Config,
        obs: &Obs,
        control_tx: mpsc::Sender<Control>,
        obs_rx: watch::Receiver<Observation>,
        events: Events,
        lease_label: String,
        vip_label: String,
    ) -> tokio::task::JoinHandle<()> {
        let Obs {
            metrics,
            status,
            liveness,
        } = obs.clone();
        let glue_ctx = GlueCtx {
            cfg: cfg.clone(),
            metrics: metrics.clone(),
            status: status.clone(),
            control: control_tx.clone(),
            lease_label,
            vip_label,
            bound: self.manager.bound(),
            cancel: self.cancel.child_token(),
            liveness: liveness.clone(),
            events: events.clone(),
        };
        let (_, never) = mpsc::unbounded_channel();
        let vip_ev_rx = self.vip_ev_rx.take().unwrap_or(never);
        let glue_inputs = Arc::new(Mutex::new((vip_ev_rx, obs_rx)));
        let glue = tokio::spawn(crate::supervise::supervise(
            "glue",
            self.cancel.child_token(),
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
        if let Some(monitor) = self.health_monitor.as_mut() {
            watch_eligibility(
                &status,
                &metrics,
                monitor.eligible(),
                eligibility_patience(cfg),
                self.cancel.child_token(),
            );
            tokio::spawn(health_loop(
                monitor.eligible(),
                monitor.take_events(),
                control_tx,
                metrics.clone(),
                events,
                self.cancel.child_token(),
            ));
            let mut checks = monitor.status();
            let status = status.clone();
            let stop = self.cancel.child_token();
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
        glue
    }

    /// The end of every run: leave no VIP behind, stop the tasks.
    async fn finish(mut self, glue: tokio::task::JoinHandle<()>) {
        // BGP: the holder's fence withdrew the route before the address
        // went; make sure nothing of ours stays announced, whatever
        // happened (the sessions close in `run`).
        if let Some(g) = self.bgp.take() {
            g.withdraw_all(
                &self
                    .manager
                    .bound()
                    .borrow()
                    .iter()
                    .map(|v| v.addr)
                    .collect(),
            )
            .await;
        }
        // Routing table: the fence deleted the route before the address
        // went; make sure none of ours stays (the sink stops in `run`).
        if let Some(g) = self.table.take() {
            let ours: BTreeSet<std::net::IpAddr> = self
                .desired_tx
                .borrow()
                .iter()
                .chain(self.manager.bound().borrow().iter())
                .map(|v| v.addr)
                .collect();
            g.withdraw_all(&ours).await;
        }
        // Belt and braces: whatever happened above, leave no VIP behind.
        if tokio::time::timeout(Duration::from_secs(2), self.manager.remove_all_now())
            .await
            .is_err()
        {
            warn!("could not confirm that the VIP is gone");
        }
        self.cancel.cancel();
        let _ = glue.await;
        info!("vipd stopped");
    }
}

async fn run_with_store<S: LeaseStore>(
    cfg: Config,
    vip: Vip,
    health: Vec<HealthCheckSpec>,
    store: Arc<S>,
    events: Events,
    obs: Obs,
) -> ExitCode {
    let lease_label = format!("{}/{}", cfg.lease_namespace, cfg.lease_name);
    let vip_label = vip.addr.to_string();
    let mut plumbing = match Plumbing::start(&cfg, health) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = plumbing.attach_bgp(&cfg) {
        return code;
    }
    let metrics = obs.metrics.clone();
    let liveness = obs.liveness.clone();
    let eligible_rx = plumbing.eligible_rx.clone();
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
        let holder_parts = (
            vip,
            plumbing.desired_tx.clone(),
            plumbing.manager.clone(),
            plumbing.bgp.clone(),
            plumbing.table.clone(),
        );
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
                    bgp: holder_parts.3.clone(),
                    table: holder_parts.4.clone(),
                    // One holder: its successor waits for the release.
                    drain: Duration::ZERO,
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
                        if let Some(g) = &holder_parts.3 {
                            g.withdraw(holder_parts.0.addr).await;
                        }
                        if let Some(g) = &holder_parts.4 {
                            g.withdraw(holder_parts.0.addr).await;
                        }
                        holder_parts.1.send_replace(BTreeSet::new());
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
        })
    };

    // Glue: VIP events → announcer + metrics; announcer events → metrics,
    // and duplicate claims → re-read the lease (R5).
    let glue = plumbing.start_glue(
        &cfg,
        &obs,
        control_tx.clone(),
        obs_rx,
        events,
        lease_label.clone(),
        vip_label,
    );

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
    plumbing.finish(glue).await;
    ExitCode::SUCCESS
}
