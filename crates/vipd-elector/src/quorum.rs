//! The thin async shell around the sans-IO quorum core
//! [`vipd_quorum::Node`] (SPEC §5a): one UDP socket, the core's timer, and
//! the holder's bind/remove. The core decides; this only moves bytes and
//! time.
//!
//! ```text
//!   UDP socket ──Datagram──▶ ┌──────┐ ──Send──▶ UDP socket
//!   control ──Stop/Healthy─▶ │ Node │ ──Announce/Fence──▶ QuorumHolder (VIP manager)
//!   timer (poll_timeout) ──▶ └──────┘ ◀──AddressesRemoved── (only once the address is gone)
//!                               │ Leadership after every step
//!   "VG1" datagrams ────────▶ ┌────────┐ ──Send──▶ UDP socket (same socket, same key)
//!   Services view (watch) ──▶ │ Grants │ ──Announce(set)──▶ GrantSink (Services addresses)
//!                             └────────┘
//! ```
//!
//! With Services on the quorum ([`run_with_grants`], issue 13) the same
//! loop drives the grant core ([`vipd_grants::Grants`]): datagrams are
//! routed by their magic, the grant core hears the quorum core's
//! [`vipd_quorum::Leadership`] after every quorum step, and a quorum Fence
//! first lets the grant core drop what it bound as holder and waits until
//! the sink confirms that everything it stopped binding is gone, then the
//! VIP's own fence runs (the grant core's shell contract).
//!
//! Time: the core gets `origin.elapsed()` of one tokio (monotonic)
//! [`Instant`], read *just before* each input is handled. For a heartbeat
//! the core stamps the round with that time and the datagrams leave after
//! it, so the stamp is never later than the real send (Q4 measures from
//! the send time); for a received request it is never earlier than the
//! real receive (Q3's promise only gets longer). The margin for a late
//! wake-up or a slow removal is the core's `jitter` (20 ms by default).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use vipd_backoff::Backoff;
use vipd_grants::{AddrSet, GrantStatus, Grants, ServiceView};
use vipd_observe::status::Heartbeat;
use vipd_quorum::{Action, FenceReason, Input, Node, Role, Status};

use vipd_election::mem::stamped;
use vipd_election::{LeaseRecord, LeaseStore, Stamp, StoreError, WallTime};

use crate::{result_label, Control, RequestHook};

/// What the core's Announce/Fence act on.
pub trait QuorumHolder: Send {
    /// We hold: bind and announce.
    fn lead(&mut self) -> impl Future<Output = ()> + Send;
    /// Stop announcing and remove the addresses. Return `true` only once
    /// they are provably gone: the core then tells the voters to drop their
    /// promises at once (Q6), which is safe only after the removal.
    fn fence(&mut self, reason: FenceReason) -> impl Future<Output = bool> + Send;
}

/// Where the grant core's Services addresses go (issue 13).
pub trait GrantSink: Send {
    /// Bind exactly `set` from now on; removals may finish later, within
    /// the quorum timings' `jitter`.
    fn bind(&mut self, set: AddrSet) -> impl Future<Output = ()> + Send;
    /// Bind exactly `set` and return `true` only once everything else is
    /// provably gone (before a quorum Release, Q6).
    fn settle(&mut self, set: AddrSet) -> impl Future<Output = bool> + Send;
}

/// The grant core, its sink and the Services view it assigns from.
pub struct GrantLink<S> {
    /// The core.
    pub grants: Grants,
    /// Where its addresses go.
    pub sink: S,
    /// The Services as last seen (the API watch; kept through an outage);
    /// `None` until the first full read (see [`vipd_grants::Input::Services`]).
    pub view: watch::Receiver<Option<Arc<ServiceView>>>,
    /// Published after every grant step.
    pub observe: watch::Sender<GrantStatus>,
}

/// What a daemon hands over for Services grants (issue 13): a
/// [`GrantLink`] without the core, which the daemon builds afresh for every
/// shell it starts (after a panic, the dead core's grants are forgotten).
pub struct ServicesLink<S> {
    /// Where the granted addresses go.
    pub sink: S,
    /// The Services as last read from the API (`None` before the first
    /// full read).
    pub view: watch::Receiver<Option<Arc<ServiceView>>>,
    /// The grant core's status, after every grant step.
    pub observe: watch::Sender<GrantStatus>,
    /// `--preempt`: addresses go back to their rendezvous winner.
    pub preempt: bool,
}

/// No Services: the plain quorum shell.
#[derive(Clone, Copy, Debug)]
pub struct NoSink;

impl GrantSink for NoSink {
    async fn bind(&mut self, _set: AddrSet) {}
    async fn settle(&mut self, _set: AddrSet) -> bool {
        true
    }
}

/// A witness holds nothing: every fence is trivially complete.
#[derive(Clone, Copy, Debug)]
pub struct NoAddresses;

impl QuorumHolder for NoAddresses {
    async fn lead(&mut self) {}
    async fn fence(&mut self, _reason: FenceReason) -> bool {
        true
    }
}

/// Published after every step, for metrics, `/status` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumObservation {
    /// The core's status.
    pub status: Status,
    /// Number of voters in the set.
    pub voters: usize,
    /// Whether the quorum socket is bound.
    pub socket_bound: bool,
    /// Datagram bytes sent and received, and failed sends (cost metrics).
    pub traffic: Traffic,
}

/// Datagram counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes handed to the kernel.
    pub sent_bytes: u64,
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Bytes received (before authentication).
    pub received_bytes: u64,
    /// Datagrams received.
    pub received: u64,
    /// Sends the kernel refused (no route, buffer full, ...).
    pub send_errors: u64,
}

/// Binds the quorum socket, retrying with capped back-off while the
/// address is not there yet (R2: a node whose interface comes up late
/// joins when it does). Returns `None` if a shutdown arrives first.
async fn bind(addr: SocketAddr, control: &mut mpsc::Receiver<Control>) -> Option<UdpSocket> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut warned = false;
    loop {
        match UdpSocket::bind(addr).await {
            Ok(s) => {
                info!(%addr, "quorum socket bound");
                return Some(s);
            }
            Err(e) => {
                if !warned {
                    warn!(%addr, error = %e, "cannot bind the quorum socket yet; retrying");
                    warned = true;
                }
            }
        }
        tokio::select! {
            c = control.recv() => if matches!(c, Some(Control::Shutdown) | None) { return None },
            () = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Runs the quorum core on `bind_addr` until a graceful stop completes
/// (after [`Control::Shutdown`], or when the control channel closes).
/// `eligible` is the health gate's value at start (R8).
#[allow(clippy::too_many_arguments)]
pub async fn run<H: QuorumHolder>(
    bind_addr: SocketAddr,
    node: Node,
    origin: Instant,
    holder: H,
    control: &mut mpsc::Receiver<Control>,
    observe: &watch::Sender<QuorumObservation>,
    heartbeat: Heartbeat,
    eligible: bool,
) {
    run_with_grants::<H, NoSink>(
        bind_addr, node, origin, holder, None, control, observe, heartbeat, eligible,
    )
    .await;
}

/// [`run`], also driving Services grants on the same socket (issue 13).
#[allow(clippy::too_many_arguments)]
pub async fn run_with_grants<H: QuorumHolder, S: GrantSink>(
    bind_addr: SocketAddr,
    mut node: Node,
    origin: Instant,
    mut holder: H,
    mut link: Option<GrantLink<S>>,
    control: &mut mpsc::Receiver<Control>,
    observe: &watch::Sender<QuorumObservation>,
    heartbeat: Heartbeat,
    eligible: bool,
) {
    let voters = observe.borrow().voters;
    let mut traffic = Traffic::default();
    let now = || origin.elapsed();
    let Some(socket) = bind(bind_addr, control).await else {
        return;
    };
    let socket = Arc::new(socket);
    let mut queue = std::collections::VecDeque::from([Input::SetHealthy(eligible)]);
    let mut gqueue: std::collections::VecDeque<vipd_grants::Input> =
        std::collections::VecDeque::new();
    if let Some(l) = &mut link {
        if let Some(v) = l.view.borrow_and_update().clone() {
            gqueue.push_back(vipd_grants::Input::Services(v));
        }
        gqueue.push_back(vipd_grants::Input::SetDraining(!eligible));
    }
    let mut grants_stopped = link.is_none();
    let mut control_open = true;
    // A fence whose removal was not confirmed is retried; until then the
    // core stays in Fencing and sends no Release (Q6).
    let mut refence: Option<(Instant, FenceReason)> = None;
    let mut buf = vec![0u8; vipd_quorum::wire::MAX_DATAGRAM + 1];
    let mut last_role = Role::Stopped;
    loop {
        heartbeat.beat(Instant::now());
        if let Some(input) = queue.pop_front() {
            let actions = node.handle(now(), input);
            for action in actions {
                match action {
                    Action::Send { to, bytes } => send(&socket, to, &bytes, &mut traffic).await,
                    Action::Announce { until } => {
                        let left = until.saturating_sub(now());
                        info!(
                            term = node.status(now()).term,
                            hold_ms = left.as_millis() as u64,
                            "quorum granted: holding the addresses"
                        );
                        holder.lead().await;
                    }
                    Action::Fence(reason) => {
                        if let Some(l) = &mut link {
                            // The grant core drops what it bound as holder;
                            // the Release may follow only once it is gone.
                            let lead = node.leadership(now());
                            let acts = l.grants.handle(now(), vipd_grants::Input::Leadership(lead));
                            grant_actions(&socket, l, acts, &mut traffic).await;
                            let bound = l.grants.bound().clone();
                            if !l.sink.settle(bound).await {
                                warn!("Services addresses not confirmed removed; retrying before releasing");
                                refence =
                                    Some((Instant::now() + Duration::from_millis(250), reason));
                                continue;
                            }
                        }
                        match reason {
                            FenceReason::Stop | FenceReason::Unhealthy => {
                                info!(?reason, "stepping down from the quorum hold")
                            }
                            _ => warn!(?reason, "quorum hold lost: removing the addresses"),
                        }
                        if holder.fence(reason).await {
                            queue.push_back(Input::AddressesRemoved);
                        } else {
                            refence = Some((Instant::now() + Duration::from_millis(250), reason));
                        }
                    }
                    Action::Stopped => {
                        info!("quorum node stopped");
                        publish(observe, &node, now(), voters, &traffic);
                        if let Some(l) = &mut link {
                            stop_grants(&socket, l, origin, &mut traffic, grants_stopped).await;
                        }
                        return;
                    }
                }
            }
            if link.is_some() {
                let lead = node.leadership(now());
                gqueue.push_back(vipd_grants::Input::Leadership(lead));
            }
            let st = node.status(now());
            if st.role != last_role {
                info!(role = st.role.label(), term = st.term, holder = ?st.holder, reachable = st.voters_reachable, voters, "quorum role");
                last_role = st.role;
            }
            publish(observe, &node, now(), voters, &traffic);
            continue;
        }
        if let (Some(l), Some(gi)) = (&mut link, gqueue.pop_front()) {
            let acts = l.grants.handle(now(), gi);
            grants_stopped |= acts
                .iter()
                .any(|a| matches!(a, vipd_grants::Action::Stopped));
            grant_actions(&socket, l, acts, &mut traffic).await;
            l.observe.send_replace(l.grants.status(now()));
            continue;
        }
        let gwake = link.as_ref().and_then(|l| l.grants.poll_timeout(now()));
        let wake = [node.poll_timeout(), gwake]
            .into_iter()
            .flatten()
            .min()
            .map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |t| origin + t,
            );
        let view_changed = async {
            match &mut link {
                Some(l) => l.view.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            biased;
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _from)) => {
                    traffic.received += 1;
                    traffic.received_bytes += n as u64;
                    let bytes = buf[..n].to_vec();
                    if link.is_some() && vipd_grants::wire::is_grant_datagram(&bytes) {
                        gqueue.push_back(vipd_grants::Input::Datagram(bytes));
                        continue;
                    }
                    Input::Datagram(bytes)
                }
                Err(e) => {
                    recv_error(&e).await;
                    Input::Tick
                }
            },
            c = control.recv(), if control_open => match c {
                Some(Control::Shutdown) | None => {
                    control_open = false;
                    gqueue.push_back(vipd_grants::Input::Stop);
                    Input::Stop
                }
                Some(Control::Eligible(e)) => {
                    gqueue.push_back(vipd_grants::Input::SetDraining(!e));
                    Input::SetHealthy(e)
                }
                // Quorum mode has no record to re-read: a duplicate claim
                // is answered by re-announcing (done by the glue).
                Some(Control::Reread) => Input::Tick,
            },
            () = sleep_until_opt(refence.map(|r| r.0)) => {
                let (_, reason) = refence.take().unwrap_or((Instant::now(), FenceReason::Stop));
                let settled = match &mut link {
                    Some(l) => l.sink.settle(l.grants.bound().clone()).await,
                    None => true,
                };
                if settled && holder.fence(reason).await {
                    Input::AddressesRemoved
                } else {
                    refence = Some((Instant::now() + Duration::from_millis(250), reason));
                    Input::Tick
                }
            }
            changed = view_changed => {
                if changed {
                    if let Some(l) = &mut link {
                        if let Some(v) = l.view.borrow_and_update().clone() {
                            gqueue.push_back(vipd_grants::Input::Services(v));
                        }
                    }
                }
                continue;
            }
            () = tokio::time::sleep_until(wake) => {
                gqueue.push_back(vipd_grants::Input::Tick);
                Input::Tick
            }
        };
        queue.push_back(input);
    }
}

/// One datagram out of the quorum socket, counted (both protocols).
async fn send(socket: &UdpSocket, to: SocketAddr, bytes: &[u8], traffic: &mut Traffic) {
    match socket.send_to(bytes, to).await {
        Ok(n) => {
            traffic.sent += 1;
            traffic.sent_bytes += n as u64;
        }
        Err(e) => {
            traffic.send_errors += 1;
            debug!(%to, error = %e, "quorum socket send failed");
        }
    }
}

/// Runs the grant core's actions: datagrams out of the quorum socket,
/// bindings to the sink.
async fn grant_actions<S: GrantSink>(
    socket: &UdpSocket,
    l: &mut GrantLink<S>,
    acts: Vec<vipd_grants::Action>,
    traffic: &mut Traffic,
) {
    for a in acts {
        match a {
            vipd_grants::Action::Send { to, bytes } => send(socket, to, &bytes, traffic).await,
            vipd_grants::Action::Announce(set) => {
                debug!(addresses = set.len(), "Services addresses granted");
                l.sink.bind(set).await;
            }
            vipd_grants::Action::Stopped => {}
        }
    }
}

/// After the quorum core stopped: let the grant core finish its stop
/// (nothing bound, a `Leave` to the holder once the removal settled).
async fn stop_grants<S: GrantSink>(
    socket: &UdpSocket,
    l: &mut GrantLink<S>,
    origin: Instant,
    traffic: &mut Traffic,
    mut stopped: bool,
) {
    let now = || origin.elapsed();
    let acts = l.grants.handle(now(), vipd_grants::Input::Stop);
    stopped |= acts
        .iter()
        .any(|a| matches!(a, vipd_grants::Action::Stopped));
    grant_actions(socket, l, acts, traffic).await;
    let empty: AddrSet = Arc::new(std::collections::BTreeSet::new());
    if !l.sink.settle(empty).await {
        warn!("Services addresses not confirmed removed at stop");
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while !stopped && Instant::now() < deadline {
        let wake = l
            .grants
            .poll_timeout(now())
            .map_or(deadline, |t| (origin + t).min(deadline));
        tokio::time::sleep_until(wake).await;
        let acts = l.grants.handle(now(), vipd_grants::Input::Tick);
        stopped |= acts
            .iter()
            .any(|a| matches!(a, vipd_grants::Action::Stopped));
        grant_actions(socket, l, acts, traffic).await;
    }
    l.observe.send_replace(l.grants.status(now()));
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn recv_error(e: &io::Error) {
    // Unconnected UDP sockets get no ICMP errors on Linux; anything else
    // is transient (ENOMEM, ...): say so, and do not spin on it.
    debug!(error = %e, "quorum receive failed");
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn publish(
    tx: &watch::Sender<QuorumObservation>,
    node: &Node,
    now: Duration,
    voters: usize,
    traffic: &Traffic,
) {
    tx.send_replace(QuorumObservation {
        status: node.status(now),
        voters,
        socket_bound: true,
        traffic: *traffic,
    });
}

/// Mirrors the quorum holder, best effort, into a lease record of its own
/// (`<lease name>-quorum`, so a kube-vip on the real lease name never takes
/// it for its lock): `kubectl get lease` shows who holds, and the Events
/// name the same node. Runs beside the quorum, never in its way: every
/// request is bounded by `timeout`, failures only delay the next try, and
/// nothing here feeds back into the core.
pub async fn mirror<S: LeaseStore>(
    store: Arc<S>,
    me: String,
    lease_duration_seconds: u32,
    mut obs: watch::Receiver<QuorumObservation>,
    on_request: RequestHook,
) {
    const PERIOD: Duration = Duration::from_secs(2);
    const TIMEOUT: Duration = Duration::from_secs(2);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut last_write: Option<Instant> = None;
    let mut mirrored_as_holder = false;
    let mut retry_at: Option<Instant> = None;
    loop {
        let holding = obs.borrow_and_update().status.role == Role::Holder;
        let now = Instant::now();
        let due = retry_at.is_none_or(|t| now >= t)
            && ((holding && (!mirrored_as_holder || last_write.is_none_or(|t| now >= t + PERIOD)))
                || (!holding && mirrored_as_holder));
        if due {
            let started = Instant::now();
            let r = tokio::time::timeout(
                TIMEOUT,
                write_mirror(&*store, &me, holding, lease_duration_seconds),
            )
            .await;
            let label = match &r {
                Ok(Ok(())) => "ok",
                Ok(Err(e)) => result_label(&Err(e.clone())),
                Err(_) => "timeout",
            };
            on_request("update", label, started.elapsed(), false);
            if label == "ok" {
                last_write = Some(Instant::now());
                mirrored_as_holder = holding;
                retry_at = None;
                backoff.reset();
            } else {
                debug!(result = label, "quorum mirror write failed; retrying later");
                store.reset();
                retry_at = Some(Instant::now() + backoff.next_delay());
            }
        }
        let wake = retry_at.unwrap_or_else(|| Instant::now() + PERIOD);
        tokio::select! {
            r = obs.changed() => if r.is_err() { return },
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

async fn write_mirror<S: LeaseStore>(
    store: &S,
    me: &str,
    holding: bool,
    lease_duration_seconds: u32,
) -> Result<(), StoreError> {
    let current = store.get().await?;
    let wall = WallTime::now();
    match current {
        None if !holding => Ok(()),
        None => {
            let record = LeaseRecord {
                holder_identity: me.to_owned(),
                lease_duration_seconds,
                acquire_time: None,
                renew_time: None,
                lease_transitions: 0,
            };
            store
                .create(&stamped(&record, Stamp::AcquireAndRenew, wall))
                .await
                .map(|_| ())
        }
        Some(v) => {
            let mut record = v.record.clone();
            let ours = record.holder_identity == me;
            let stamp = if holding && ours {
                Stamp::Renew
            } else if holding {
                record.lease_transitions = record.lease_transitions.saturating_add(1);
                record.holder_identity = me.to_owned();
                Stamp::AcquireAndRenew
            } else if ours {
                // Released, as client-go writes a release.
                record.holder_identity.clear();
                Stamp::AcquireAndRenew
            } else {
                return Ok(());
            };
            record.lease_duration_seconds = lease_duration_seconds;
            store
                .update(&stamped(&record, stamp, wall), &v.version)
                .await
                .map(|_| ())
        }
    }
}
