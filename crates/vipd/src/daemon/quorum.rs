//! `vipd run --coordination quorum` and `vipd witness` (SPEC §5a): the
//! quorum shell ([`vipd_elector::quorum`]) instead of the lease driver, the
//! same VIP manager, announcer, health gate and glue (R3–R5, R8 apply
//! unchanged), and an optional best-effort mirror of the holder into the
//! configured store.
//!
//! ```text
//!  peers ◀─UDP─▶ quorum shell ──Announce/Fence──▶ VipHolder ──▶ VipManager ──▶ kernel
//!                     │ QuorumObservation
//!                     ├──▶ metrics (vipd_quorum_*), /status "quorum"
//!                     ├──▶ Observation ──▶ glue (announcer, vipd_is_leader, Events)
//!                     └──▶ mirror ──▶ <lease name>-quorum record (etcd / Kubernetes), best effort
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Mutex};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use vipd::config::{Config, QuorumSettings, WitnessConfig};
use vipd_election::{LeaseStore, Role as LeaseRole, Status as LeaseStatus};
use vipd_elector::quorum::{
    self as q, GrantLink, GrantSink, NoAddresses, NoSink, QuorumHolder, QuorumObservation,
    ServicesLink,
};
use vipd_elector::{Control, Observation, RequestHook};
use vipd_grants::{GrantTimings, Grants};
use vipd_health::HealthCheckSpec;
use vipd_observe::metrics::{Metrics, QuorumSample};
use vipd_observe::status::{Liveness, QuorumEntry, StatusHandle};
use vipd_quorum::{DropReason, FenceReason, Node, Role, VoterRole, VoterSet};
use vipd_vip::Vip;

use super::events::Events;
use super::{Plumbing, VipHolder};
use crate::context::{eligibility_patience, wait_for_signal, watch_eligibility, Obs, EXIT_CONFIG};

impl QuorumHolder for VipHolder {
    async fn lead(&mut self) {
        info!(vip = %self.vip.addr, "binding the VIP (quorum holder)");
        self.want();
    }

    async fn fence(&mut self, reason: FenceReason) -> bool {
        info!(vip = %self.vip.addr, ?reason, "removing the VIP");
        self.withdraw_route().await;
        self.desired.send_replace(std::collections::BTreeSet::new());
        // Q6: the voters drop their promises as soon as we say the address
        // is gone, so say it only after a kernel dump shows it gone. Not
        // remove_all_now: that drains the manager for good (R7 shutdown,
        // done by Plumbing::finish), and any other fence must leave this
        // node able to bind again in a later term.
        let removal = self
            .manager
            .remove_now(std::collections::BTreeSet::from([self.vip]));
        match tokio::time::timeout(Duration::from_secs(1), removal).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                error!(error = %e, "cannot confirm VIP removal; retrying before releasing");
                false
            }
            Err(_) => {
                error!("VIP removal not confirmed within 1 s; retrying before releasing");
                false
            }
        }
    }
}

/// The core configuration for this node, from validated settings, and
/// the number of voters.
fn build_config(
    node_name: &str,
    q: &QuorumSettings,
    witness: bool,
) -> Result<(vipd_quorum::Config, usize), String> {
    let mut voters = q.voters.clone();
    for v in &mut voters {
        if witness && v.name == node_name {
            v.role = VoterRole::Witness;
        }
    }
    let set = VoterSet::new(voters).map_err(|e| e.to_string())?;
    let n = set.voters().len();
    let key = vipd_quorum::AuthKey::new(q.key.bytes()).map_err(|e| e.to_string())?;
    let first_seq = wall_seq();
    let cfg = vipd_quorum::Config::new(
        set,
        node_name,
        q.timings,
        key,
        vipd_backoff::random_u64(),
        first_seq,
    )
    .map_err(|e| e.to_string())?;
    Ok((cfg, n))
}

/// A first sequence number: sequence numbers grow across restarts, so
/// start from wall-clock nanoseconds (see vipd_quorum::wire on replay
/// protection). Wall time is only this seed; every deadline runs on the
/// monotonic clock.
fn wall_seq() -> u64 {
    #[allow(clippy::disallowed_methods)]
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(1)
}

/// The quorum core for this node.
fn build_node(
    node_name: &str,
    q: &QuorumSettings,
    witness: bool,
    origin: Instant,
) -> Result<(Node, usize), String> {
    let (cfg, n) = build_config(node_name, q, witness)?;
    Ok((Node::new(cfg, origin.elapsed()), n))
}

/// Asks the shell for its graceful stop (removals confirmed, promises
/// released) and waits for it, at most 3 s.
async fn stop_shell(control: &mpsc::Sender<Control>, shell: tokio::task::JoinHandle<()>) {
    let _ = control.send(Control::Shutdown).await;
    if tokio::time::timeout(Duration::from_secs(3), shell)
        .await
        .is_err()
    {
        warn!("quorum stop did not finish within 3 s; exiting anyway");
    }
}

/// A fresh core for the shell's restart after a panic (R2).
fn remake(
    node_name: &str,
    qs: &QuorumSettings,
    witness: bool,
    origin: Instant,
) -> impl Fn() -> Option<Node> + Send + 'static {
    let (name, qs) = (node_name.to_string(), qs.clone());
    move || build_node(&name, &qs, witness, origin).ok().map(|(n, _)| n)
}

/// This node's quorum socket address and core; exit 2 (said on stderr)
/// when it is not in `--peers` or the settings do not build a core.
fn own_core(
    node_name: &str,
    qs: &QuorumSettings,
    witness: bool,
    origin: Instant,
) -> Result<(std::net::SocketAddr, Node, usize), ExitCode> {
    let Some(bind_addr) = qs.own_addr(node_name) else {
        eprintln!("vipd: invalid configuration: --node-name {node_name} is not in --peers");
        return Err(ExitCode::from(EXIT_CONFIG));
    };
    match build_node(node_name, qs, witness, origin) {
        Ok((node, voters)) => Ok((bind_addr, node, voters)),
        Err(e) => {
            eprintln!("vipd: invalid quorum configuration: {e}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

/// A [`ServicesLink`] and how to make a grant core for it.
struct GrantParts<S> {
    link: ServicesLink<S>,
    cfg: vipd_quorum::Config,
    timings: GrantTimings,
}

impl<S: GrantSink + Clone> GrantParts<S> {
    /// An error (the caller exits 2) when the quorum timings leave no
    /// usable grant window.
    fn new(node_name: &str, qs: &QuorumSettings, link: ServicesLink<S>) -> Result<Self, String> {
        let gt = GrantTimings::for_quorum(&qs.timings)
            .map_err(|e| format!("no usable Services grant window: {e}"))?;
        let (mut cfg, _) = build_config(node_name, qs, false)?;
        cfg.preempt = link.preempt;
        Ok(GrantParts {
            link,
            cfg,
            timings: gt,
        })
    }

    fn link(&self) -> GrantLink<S> {
        GrantLink {
            // Grant datagrams have their own replay windows: a fresh
            // wall-clock seed per core, as for the quorum's.
            grants: Grants::new(self.cfg.clone(), self.timings, wall_seq()),
            sink: self.link.sink.clone(),
            view: self.link.view.clone(),
            observe: self.link.observe.clone(),
        }
    }
}

fn initial_observation(node: &Node, voters: usize, origin: Instant) -> QuorumObservation {
    QuorumObservation {
        status: node.status(origin.elapsed()),
        voters,
        socket_bound: false,
        traffic: q::Traffic::default(),
    }
}

/// Publishes quorum observations to metrics and `/status`; in `run` mode
/// also as the lease-style [`Observation`] the glue consumes.
fn spawn_reporter(
    mut rx: watch::Receiver<QuorumObservation>,
    metrics: Arc<Metrics>,
    status: StatusHandle,
    glue: Option<watch::Sender<Observation>>,
    store_reachable: Arc<AtomicBool>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let o = rx.borrow_and_update().clone();
            let st = &o.status;
            let drops: Vec<(&str, u64)> = DropReason::ALL
                .iter()
                .map(|r| (r.label(), st.drops.get(*r)))
                .collect();
            metrics.quorum.observe(&QuorumSample {
                role: st.role.label(),
                term: st.term,
                voters_reachable: st.voters_reachable,
                hold_remaining_seconds: st.hold_remaining.map_or(0.0, |d| d.as_secs_f64()),
                drops: drops.clone(),
                sent_bytes: o.traffic.sent_bytes,
                received_bytes: o.traffic.received_bytes,
            });
            status.set_quorum(QuorumEntry {
                role: st.role.label().into(),
                term: st.term,
                holder: st.holder.clone(),
                voters: o.voters,
                voters_reachable: st.voters_reachable,
                hold_remaining_seconds: st.hold_remaining.map(|d| d.as_secs_f64()),
                quiet_remaining_seconds: st.quiet_remaining.as_secs_f64(),
                socket_bound: o.socket_bound,
                drops: drops
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(r, n)| ((*r).to_string(), *n))
                    .collect::<BTreeMap<_, _>>(),
            });
            match &glue {
                Some(tx) => {
                    let role = match st.role {
                        Role::Holder => LeaseRole::Leader,
                        Role::Stopped => LeaseRole::Stopped,
                        _ => LeaseRole::Follower,
                    };
                    let reachable = store_reachable.load(Ordering::Relaxed);
                    tx.send_if_modified(|g| {
                        let next = Observation {
                            status: LeaseStatus {
                                role,
                                holder: st.holder.clone(),
                                last_renewal: None,
                                transitions: 0,
                                observed_at: None,
                            },
                            store_reachable: reachable,
                            // Ready (/readyz) once the quorum has a holder
                            // this node knows of, or it holds.
                            last_result: (st.holder.is_some() || role == LeaseRole::Leader)
                                .then_some("ok"),
                        };
                        let changed = g.status != next.status
                            || g.store_reachable != next.store_reachable
                            || g.last_result != next.last_result;
                        *g = next;
                        changed
                    });
                }
                None => {
                    if o.socket_bound && !status.is_ready() {
                        status.mark_ready();
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                r = rx.changed() => if r.is_err() { return },
            }
        }
    });
}

/// `vipd run --coordination quorum` for the control-plane VIP. `mirror`
/// is the store the holder is mirrored into (`<lease name>-quorum`), if a
/// backend is configured.
/// `services`: also drive Services grants (issue 13).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run<S: LeaseStore, G: GrantSink + Clone + 'static>(
    cfg: Config,
    qs: QuorumSettings,
    vip: Vip,
    health: Vec<HealthCheckSpec>,
    mirror: Option<Arc<S>>,
    events: Events,
    obs: Obs,
    services: Option<ServicesLink<G>>,
) -> ExitCode {
    let origin = Instant::now();
    let (bind_addr, node, voters) = match own_core(&cfg.node_name, &qs, false, origin) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let grants = match services
        .map(|l| GrantParts::new(&cfg.node_name, &qs, l))
        .transpose()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("vipd: invalid quorum configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let mut plumbing = match Plumbing::start(&cfg, health) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(code) = plumbing.attach_bgp(&cfg) {
        return code;
    }
    let lease_label = format!("{}/{}-quorum", cfg.lease_namespace, cfg.lease_name);
    let (control_tx, control_rx) = mpsc::channel::<Control>(8);
    let (qobs_tx, qobs_rx) = watch::channel(initial_observation(&node, voters, origin));
    let (gobs_tx, gobs_rx) = watch::channel(Observation {
        status: LeaseStatus {
            role: LeaseRole::Follower,
            holder: None,
            last_renewal: None,
            transitions: 0,
            observed_at: None,
        },
        store_reachable: false,
        last_result: None,
    });
    let store_reachable = Arc::new(AtomicBool::new(false));
    spawn_reporter(
        qobs_rx.clone(),
        obs.metrics.clone(),
        obs.status.clone(),
        Some(gobs_tx),
        store_reachable.clone(),
        plumbing.cancel.child_token(),
    );
    if let Some(store) = mirror {
        let metrics = obs.metrics.clone();
        let reachable = store_reachable.clone();
        let hook: RequestHook = Arc::new(move |verb, result, took, _| {
            metrics.observe_api_request(verb, result, took);
            reachable.store(result == "ok" || result == "conflict", Ordering::Relaxed);
        });
        let secs = u32::try_from(qs.timings.promise().as_secs().max(1)).unwrap_or(u32::MAX);
        let me = cfg.node_name.clone();
        let stop = plumbing.cancel.child_token();
        let rx = qobs_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = q::mirror(store, me, secs, rx, hook) => {}
            }
        });
    }
    let glue = plumbing.start_glue(
        &cfg,
        &obs,
        control_tx.clone(),
        gobs_rx,
        events,
        lease_label,
        vip.addr.to_string(),
    );

    let make = remake(&cfg.node_name, &qs, false, origin);
    let quorum = spawn_shell(
        bind_addr,
        node,
        make,
        origin,
        plumbing.holder(vip),
        grants,
        control_rx,
        qobs_tx,
        &obs.liveness,
        plumbing.eligible_rx.clone(),
    );
    info!(
        vip = %vip.addr, interface = %cfg.interface, node = %cfg.node_name, quorum = %bind_addr,
        voters, promise = ?qs.timings.promise(), heartbeat = ?qs.timings.heartbeat(),
        hold_window = ?qs.timings.hold_window(), "vipd started (quorum mode)"
    );
    wait_for_signal().await;
    info!("shutting down: removing the VIP, then releasing the quorum promises");
    stop_shell(&control_tx, quorum).await;
    plumbing.finish(glue).await;
    ExitCode::SUCCESS
}

/// `vipd run --coordination quorum --services` without `--address`: the
/// quorum only elects the Services assigner (issue 13); no control-plane
/// VIP, so no VIP manager for one (another vipd on this node may own it).
pub(super) async fn run_services_only<G: GrantSink + Clone + 'static>(
    cfg: Config,
    qs: QuorumSettings,
    health: Vec<HealthCheckSpec>,
    obs: Obs,
    link: ServicesLink<G>,
) -> ExitCode {
    let origin = Instant::now();
    let (bind_addr, node, voters) = match own_core(&cfg.node_name, &qs, false, origin) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let grants = match GrantParts::new(&cfg.node_name, &qs, link) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("vipd: invalid quorum configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let cancel = CancellationToken::new();
    let (control_tx, control_rx) = mpsc::channel::<Control>(8);
    // Health gate (R8): an unhealthy node drains its grants.
    let (_monitor, eligible) = if health.is_empty() {
        (None, watch::channel(true).1)
    } else {
        match vipd_health::HealthMonitor::spawn(health, cancel.child_token()) {
            Ok(mut monitor) => {
                watch_eligibility(
                    &obs.status,
                    &obs.metrics,
                    monitor.eligible(),
                    eligibility_patience(&cfg),
                    cancel.child_token(),
                );
                tokio::spawn(super::health::health_loop(
                    monitor.eligible(),
                    monitor.take_events(),
                    control_tx.clone(),
                    obs.metrics.clone(),
                    Events::None,
                    cancel.child_token(),
                ));
                let rx = monitor.eligible();
                (Some(monitor), rx)
            }
            Err(e) => {
                eprintln!("vipd: invalid health check: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    };
    let (qobs_tx, qobs_rx) = watch::channel(initial_observation(&node, voters, origin));
    spawn_reporter(
        qobs_rx,
        obs.metrics.clone(),
        obs.status.clone(),
        None,
        Arc::new(AtomicBool::new(false)),
        cancel.child_token(),
    );
    let make = remake(&cfg.node_name, &qs, false, origin);
    let quorum = spawn_shell(
        bind_addr,
        node,
        make,
        origin,
        NoAddresses,
        Some(grants),
        control_rx,
        qobs_tx,
        &obs.liveness,
        eligible,
    );
    info!(
        node = %cfg.node_name, quorum = %bind_addr, voters, promise = ?qs.timings.promise(),
        "vipd started (quorum mode, Services only)"
    );
    wait_for_signal().await;
    info!("shutting down: removing the Service addresses, then leaving the quorum");
    stop_shell(&control_tx, quorum).await;
    cancel.cancel();
    ExitCode::SUCCESS
}

/// Runs the quorum shell in its own task; a panic fences and restarts it
/// with a fresh core from `make` (R2), which waits out Q5's quiet time like
/// any restart: the dead core's promises are forgotten, never trusted.
#[allow(clippy::too_many_arguments)]
fn spawn_shell<H: QuorumHolder + Clone + 'static, S: GrantSink + Clone + 'static>(
    bind_addr: std::net::SocketAddr,
    node: Node,
    make: impl Fn() -> Option<Node> + Send + 'static,
    origin: Instant,
    holder: H,
    grants: Option<GrantParts<S>>,
    control_rx: mpsc::Receiver<Control>,
    observe: watch::Sender<QuorumObservation>,
    liveness: &Liveness,
    eligible: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let control_rx = Arc::new(Mutex::new(control_rx));
    let observe = Arc::new(observe);
    let liveness = liveness.clone();
    // The shell beats on every input: at least every heartbeat while
    // holding, every election wait while campaigning, every datagram while
    // peers talk; 30 s covers a witness alone on its network.
    let max_age = Duration::from_secs(30);
    tokio::spawn(async move {
        let mut next = Some(node);
        let mut backoff =
            vipd_backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            let Some(core) = next.take().or_else(&make) else {
                return;
            };
            let (rx, obs, holder_copy) = (control_rx.clone(), observe.clone(), holder.clone());
            let heartbeat = liveness.register("quorum", max_age, Instant::now());
            let healthy = *eligible.borrow();
            // A fresh grant core with every quorum core: the dead one's
            // grants are forgotten like its promises.
            let link = grants.as_ref().map(GrantParts::link);
            let task = tokio::spawn(async move {
                let mut rx = rx.lock_owned().await;
                q::run_with_grants(
                    bind_addr,
                    core,
                    origin,
                    holder_copy,
                    link,
                    &mut rx,
                    &obs,
                    heartbeat,
                    healthy,
                )
                .await;
            });
            match task.await {
                Ok(()) => return,
                Err(e) => {
                    // Whatever the dead core held is backed by nothing now:
                    // drop it before a new core campaigns (R1 over R2).
                    error!(error = %e, "quorum task died; fencing and restarting it");
                    if let Some(g) = &grants {
                        let mut sink = g.link.sink.clone();
                        let _ = sink
                            .settle(Arc::new(std::collections::BTreeSet::new()))
                            .await;
                    }
                    let mut h = holder.clone();
                    let _ = h.fence(FenceReason::Stop).await;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    })
}

/// `vipd witness`: a voter that never holds (SPEC §5a).
pub fn witness_main(cfg: WitnessConfig) -> ExitCode {
    super::init_logging_with(cfg.log_level, cfg.log_json);
    for w in &cfg.warnings {
        warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(witness(cfg))
}

async fn witness(cfg: WitnessConfig) -> ExitCode {
    let origin = Instant::now();
    let (bind_addr, node, voters) = match own_core(&cfg.node_name, &cfg.quorum, true, origin) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let metrics = Arc::new(Metrics::new(env!("CARGO_PKG_VERSION")));
    let status = StatusHandle::new(&cfg.node_name, env!("CARGO_PKG_VERSION"), "-", "none");
    let liveness = Liveness::new();
    let cancel = CancellationToken::new();
    let obs = Obs {
        metrics: metrics.clone(),
        status: status.clone(),
        liveness: liveness.clone(),
    };
    let http = cfg
        .http_addr
        .map(|addr| super::spawn_http(addr, &obs, cancel.clone()));
    let (control_tx, control_rx) = mpsc::channel::<Control>(8);
    let (qobs_tx, qobs_rx) = watch::channel(initial_observation(&node, voters, origin));
    spawn_reporter(
        qobs_rx,
        metrics,
        status,
        None,
        Arc::new(AtomicBool::new(false)),
        cancel.child_token(),
    );
    let make = remake(&cfg.node_name, &cfg.quorum, true, origin);
    let quorum = spawn_shell(
        bind_addr,
        node,
        make,
        origin,
        NoAddresses,
        None::<GrantParts<NoSink>>,
        control_rx,
        qobs_tx,
        &liveness,
        watch::channel(true).1,
    );
    info!(node = %cfg.node_name, quorum = %bind_addr, voters, "vipd witness started");
    wait_for_signal().await;
    info!("witness shutting down");
    let _ = control_tx.send(Control::Shutdown).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), quorum).await;
    cancel.cancel();
    if let Some(h) = http {
        let _ = h.await;
    }
    info!("vipd witness stopped");
    ExitCode::SUCCESS
}

/// The mirror type with no store (`--backend none`): uninhabited, so the
/// compiler proves no mirror request is ever made.
pub(super) enum NoMirror {}

impl LeaseStore for NoMirror {
    async fn get(&self) -> Result<Option<vipd_election::Versioned>, vipd_election::StoreError> {
        match *self {}
    }
    async fn create(
        &self,
        _: &vipd_election::LeaseRecord,
    ) -> Result<vipd_election::Versioned, vipd_election::StoreError> {
        match *self {}
    }
    async fn update(
        &self,
        _: &vipd_election::LeaseRecord,
        _: &vipd_election::Version,
    ) -> Result<vipd_election::Versioned, vipd_election::StoreError> {
        match *self {}
    }
    async fn watch(
        &self,
        _: mpsc::Sender<vipd_election::WatchEvent>,
    ) -> Result<(), vipd_election::StoreError> {
        match *self {}
    }
    fn reset(&self) {
        match *self {}
    }
}
