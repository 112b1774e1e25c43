//! The thin tokio shell around [`Reconciler`]: one task per VIP interface.
//!
//! ```text
//!   desired (watch) ──┐
//!   netlink monitor ──┼──▶ [ VipManager task ] ── dump link + addrs ──▶ Reconciler
//!   period tick ──────┤          │                                        │
//!   remove_all_now ───┘          │◀──────── actions (Add/Remove) ─────────┘
//!                                ├──▶ add/del address (netlink)
//!                                ├──▶ VipEvent (mpsc)  → announcer, metrics
//!                                └──▶ bound set (watch) → /status
//! ```
//!
//! Every pass re-reads the truth from the kernel (never a cached belief), so
//! a lost event, a failed request or a restart all heal on the next pass
//! (R3). Failures never end the task: the interface missing, a netlink
//! socket error or a failed add are retried with capped, jittered back-off
//! (R2). Only cancellation ends it, and cancellation leaves addresses as they
//! are: removal is explicit ([`VipManager::remove_all_now`]) so that a
//! crash-like exit and a graceful one are told apart by the caller (R7).

use std::collections::BTreeSet;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::guard::{GuardPipe, ManagerGuard};
use crate::netlink::{LinkInfo, Monitor, MonitorEvent, Netlink, NetlinkError};
use crate::reconcile::{Observed, ReconcileAction, Reconciler, RefuseReason, Vip};
use vipd_backoff::Backoff;

/// Settings of one [`VipManager`].
#[derive(Debug, Clone)]
pub struct VipManagerConfig {
    /// Name of the interface the VIPs live on (`vip_interface`).
    pub ifname: String,
    /// Full reconcile at least this often, even without netlink events.
    pub reconcile_period: Duration,
    /// First retry delay after a failure (interface missing, netlink error).
    pub retry_min: Duration,
    /// Cap of the retry delay.
    pub retry_max: Duration,
    /// `IFA_PROTO` tag of the addresses this manager owns
    /// ([`crate::VIPD_ADDR_PROTO`] or [`crate::VIPD_SVC_ADDR_PROTO`]).
    pub tag: u8,
    /// The address guard to keep informed ([`crate::guard`]): told of an
    /// address before it is added and after it is removed, so that it can
    /// remove what this manager leaves behind if the process dies.
    pub guard: Option<GuardPipe>,
}

impl VipManagerConfig {
    /// Defaults: reconcile every 5 s, retry from 200 ms up to 5 s.
    pub fn new(ifname: impl Into<String>) -> Self {
        Self {
            ifname: ifname.into(),
            reconcile_period: Duration::from_secs(5),
            retry_min: Duration::from_millis(200),
            retry_max: Duration::from_secs(5),
            tag: crate::VIPD_ADDR_PROTO,
            guard: None,
        }
    }
}

/// What the manager reports to the daemon (announcer, metrics, logs).
#[derive(Debug)]
pub enum VipEvent {
    /// The VIP is on the interface and usable: send a GARP / unsolicited NA
    /// burst now (R4). Emitted on every acquisition, re-bind and link-up.
    Bound {
        /// The VIP.
        vip: Vip,
        /// The interface, with the MAC to announce.
        link: LinkInfo,
    },
    /// The VIP is no longer announced (not wanted, removed, link down).
    Unbound {
        /// The VIP.
        vip: Vip,
    },
    /// The interface came (back) up.
    LinkUp {
        /// The interface.
        link: LinkInfo,
    },
    /// The interface went down or disappeared.
    LinkDown,
    /// A wanted VIP is configured on the interface without vipd's tag and
    /// is left alone (R3). Reported once per occurrence.
    Refused {
        /// The VIP.
        vip: Vip,
        /// Why.
        reason: RefuseReason,
    },
    /// A kernel operation failed; it is retried. Reported once per
    /// distinct error until a pass succeeds again.
    Error {
        /// The VIP concerned, if the failed operation was about one.
        vip: Option<Vip>,
        /// What failed.
        error: NetlinkError,
    },
}

/// Errors of [`VipManager`] calls.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The manager task is not running any more (cancelled or aborted).
    #[error("the VIP manager task has stopped")]
    Stopped,
}

enum Command {
    /// Want nothing from now on; answer once a dump shows none of ours.
    Drain(oneshot::Sender<()>),
    /// Stop wanting these now; answer once a dump shows none of them ours.
    Remove(BTreeSet<Vip>, oneshot::Sender<()>),
}

/// Handle to a running VIP manager task. Dropping it aborts the task
/// (addresses stay as they are, like after a crash).
#[derive(Debug)]
pub struct VipManager {
    cmd_tx: mpsc::Sender<Command>,
    bound_rx: watch::Receiver<BTreeSet<Vip>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Drain(_) => f.write_str("Drain"),
            Command::Remove(vips, _) => write!(f, "Remove({vips:?})"),
        }
    }
}

impl VipManager {
    /// Spawns the manager on the current tokio runtime, in the network
    /// namespace of the runtime's threads.
    ///
    /// `desired` is the set of VIPs this node should announce (the daemon
    /// sets it on leadership changes); `events` receives [`VipEvent`]s
    /// (unbounded: events are rare state changes and must never stall the
    /// reconcile loop); `cancel` stops the task without touching addresses.
    pub fn spawn(
        config: VipManagerConfig,
        desired: watch::Receiver<BTreeSet<Vip>>,
        events: mpsc::UnboundedSender<VipEvent>,
        cancel: CancellationToken,
    ) -> Self {
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let (bound_tx, bound_rx) = watch::channel(BTreeSet::new());
        let backoff = Backoff::new(config.retry_min, config.retry_max);
        let guard = config
            .guard
            .as_ref()
            .map(|p| p.for_manager(&config.ifname, config.tag));
        let shell = Shell {
            config,
            desired_rx: desired,
            desired_closed: false,
            events,
            bound_tx,
            cmd_rx,
            cancel,
            rec: Reconciler::new(),
            draining: false,
            drain_waiters: Vec::new(),
            removal_waiters: Vec::new(),
            guard,
            nl: None,
            monitor: Monitor::new(),
            backoff,
            ifindex: None,
            missing_reported: false,
            reported_errors: BTreeSet::new(),
        };
        Self {
            cmd_tx,
            bound_rx,
            task: Some(tokio::spawn(shell.run())),
        }
    }

    /// The VIPs currently bound (present, ours, usable), for `/status`.
    pub fn bound(&self) -> watch::Receiver<BTreeSet<Vip>> {
        self.bound_rx.clone()
    }

    /// Graceful shutdown step of R7: stop wanting every VIP (the desired
    /// watch is ignored from now on, irreversibly), remove ours, and return
    /// once a fresh kernel dump shows none of vipd's addresses on the
    /// interface (or the interface is gone). Only then may the lease be
    /// released. Retries forever; bound the wait with `tokio::time::timeout`.
    pub async fn remove_all_now(&self) -> Result<(), ManagerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Drain(tx))
            .await
            .map_err(|_| ManagerError::Stopped)?;
        rx.await.map_err(|_| ManagerError::Stopped)
    }

    /// Removes `vips` at once and returns once a fresh kernel dump shows
    /// none of them carrying vipd's tag on the interface (or the interface
    /// is gone). Unlike [`VipManager::remove_all_now`] this is not a
    /// shutdown: the desired watch keeps applying, so the caller must have
    /// dropped `vips` from it already (or a later change brings them back,
    /// and this call may then never return). Quorum mode needs this
    /// confirmation on every fence (SPEC §5a Q6: the voters are released
    /// only after the address is gone) and must be able to hold again
    /// afterwards. Retries forever; bound the wait with
    /// `tokio::time::timeout`.
    pub async fn remove_now(&self, vips: BTreeSet<Vip>) -> Result<(), ManagerError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Command::Remove(vips, tx))
            .await
            .map_err(|_| ManagerError::Stopped)?;
        rx.await.map_err(|_| ManagerError::Stopped)
    }

    /// Waits for the task to end (after cancellation). Returns the panic,
    /// if any, so a supervisor can restart it (R2).
    pub async fn join(mut self) -> Result<(), tokio::task::JoinError> {
        match self.task.take() {
            Some(t) => t.await,
            None => Ok(()),
        }
    }
}

impl Drop for VipManager {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

struct Shell {
    config: VipManagerConfig,
    desired_rx: watch::Receiver<BTreeSet<Vip>>,
    desired_closed: bool,
    events: mpsc::UnboundedSender<VipEvent>,
    bound_tx: watch::Sender<BTreeSet<Vip>>,
    cmd_rx: mpsc::Receiver<Command>,
    cancel: CancellationToken,
    rec: Reconciler,
    draining: bool,
    drain_waiters: Vec<oneshot::Sender<()>>,
    /// [`Command::Remove`] callers, each with the addresses it waits for.
    removal_waiters: Vec<(BTreeSet<Vip>, oneshot::Sender<()>)>,
    /// The address guard, told of every change (from `config.guard`).
    guard: Option<ManagerGuard>,
    nl: Option<Netlink>,
    monitor: Monitor,
    backoff: Backoff,
    /// Index of the interface at the last pass, to filter monitor events.
    ifindex: Option<u32>,
    missing_reported: bool,
    /// Errors already reported since the last healthy pass.
    reported_errors: BTreeSet<String>,
}

/// Result of one reconcile pass.
struct Pass {
    /// Everything worked (no back-off needed).
    healthy: bool,
    /// Addresses were added or removed: re-read at once to confirm.
    changed: bool,
}

/// Immediate re-reads after a pass that changed addresses; the monitor
/// and the period cover anything beyond.
const MAX_SETTLE_PASSES: usize = 3;

impl Shell {
    async fn run(mut self) {
        let initial = self.desired_rx.borrow_and_update().clone();
        self.rec.set_desired(initial);
        loop {
            let mut healthy = true;
            for _ in 0..MAX_SETTLE_PASSES {
                let p = self.pass().await;
                healthy &= p.healthy;
                if !p.changed || !p.healthy {
                    break;
                }
            }
            let delay = if healthy {
                self.backoff.reset();
                self.reported_errors.clear();
                self.config.reconcile_period
            } else {
                self.backoff.next_delay().min(self.config.reconcile_period)
            };
            let deadline = Instant::now() + delay;
            if !self.wait_for_trigger(deadline).await {
                return;
            }
        }
    }

    /// Waits until something may have changed. False when cancelled.
    async fn wait_for_trigger(&mut self, deadline: Instant) -> bool {
        loop {
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return false,
                Some(cmd) = self.cmd_rx.recv() => {
                    match cmd {
                        Command::Drain(tx) => {
                            self.draining = true;
                            self.drain_waiters.push(tx);
                        }
                        Command::Remove(vips, tx) => {
                            let want = self.rec.desired().difference(&vips).copied().collect();
                            self.rec.set_desired(want);
                            self.removal_waiters.push((vips, tx));
                        }
                    }
                    return true;
                }
                r = self.desired_rx.changed(), if !self.desired_closed => {
                    match r {
                        Ok(()) => {
                            let want = self.desired_rx.borrow_and_update().clone();
                            self.rec.set_desired(want);
                        }
                        // The daemon dropped the sender: keep the last set.
                        Err(_) => self.desired_closed = true,
                    }
                    return true;
                }
                ev = self.monitor.next() => {
                    if self.relevant(&ev) {
                        // Coalesce a burst (a link flap brings one event per
                        // address) into a single pass.
                        while let Some(more) = self.monitor.next().now_or_never() {
                            tracing::trace!(?more, "coalesced netlink event");
                        }
                        return true;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return true,
            }
        }
    }

    fn relevant(&self, ev: &MonitorEvent) -> bool {
        match ev {
            MonitorEvent::Resync => true,
            MonitorEvent::Link { ifindex, name, .. } => {
                Some(*ifindex) == self.ifindex || *name == self.config.ifname
            }
            MonitorEvent::LinkRemoved { ifindex }
            | MonitorEvent::AddrAdded { ifindex, .. }
            | MonitorEvent::AddrRemoved { ifindex, .. } => Some(*ifindex) == self.ifindex,
        }
    }

    fn emit(&self, ev: VipEvent) {
        // A closed receiver means the daemon is shutting down; nothing to do.
        let _ = self.events.send(ev);
    }

    /// Logs and emits a failure once per distinct error until a healthy
    /// pass: a persistent failure retried every few seconds must not fill
    /// the logs (SPEC §6, one line per state change).
    fn netlink_failed(&mut self, vip: Option<Vip>, error: NetlinkError) {
        if !self.reported_errors.insert(error.to_string()) {
            tracing::trace!(interface = %self.config.ifname, %error, "VIP netlink operation still failing");
            return;
        }
        tracing::warn!(interface = %self.config.ifname, %error, "VIP netlink operation failed, retrying");
        self.emit(VipEvent::Error { vip, error });
    }

    /// Reads the kernel state of the interface. `Ok(None)` when it does not exist.
    async fn observe(&mut self) -> Result<Option<(LinkInfo, Observed)>, NetlinkError> {
        if self.nl.is_none() {
            self.nl = Some(Netlink::with_tag(self.config.tag)?);
        }
        let Some(nl) = self.nl.as_ref() else {
            return Ok(None);
        };
        // Addresses first, link second: the kernel clears IFF_UP before it
        // flushes IPv6 addresses on link down, so a dump that misses a
        // flushed address is always followed by a link dump showing the
        // link down, and we never re-add into a link that is going down.
        let all = nl.all_addresses().await?;
        let link = match nl.link_by_name(&self.config.ifname).await {
            Ok(l) => l,
            Err(NetlinkError::NoSuchInterface(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let addrs = all
            .into_iter()
            .filter(|(i, _)| *i == link.ifindex)
            .map(|(_, a)| a)
            .collect();
        let observed = Observed {
            link_up: link.usable(),
            addrs,
        };
        Ok(Some((link, observed)))
    }

    async fn pass(&mut self) -> Pass {
        let mut pass = Pass {
            healthy: true,
            changed: false,
        };
        let (link, observed) = match self.observe().await {
            Ok(Some((link, observed))) => {
                if self.missing_reported {
                    tracing::info!(interface = %self.config.ifname, "VIP interface found");
                }
                self.missing_reported = false;
                (Some(link), observed)
            }
            Ok(None) => {
                if !self.missing_reported {
                    self.missing_reported = true;
                    let ifname = self.config.ifname.clone();
                    self.netlink_failed(None, NetlinkError::NoSuchInterface(ifname));
                }
                // Treated as down and empty; retried with back-off.
                pass.healthy = false;
                (None, Observed::default())
            }
            Err(e) => {
                // Re-open the socket next time: a timed-out or broken
                // connection is never reused.
                self.nl = None;
                self.netlink_failed(None, e);
                return Pass {
                    healthy: false,
                    changed: false,
                };
            }
        };
        self.ifindex = link.as_ref().map(|l| l.ifindex);
        if link.is_some() {
            self.sync_guard(&observed);
        }
        if self.draining {
            self.rec.set_desired(BTreeSet::new());
            if Reconciler::none_of_ours(&observed) {
                for w in self.drain_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
        if !self.removal_waiters.is_empty() {
            // Answered from this dump, taken after the command: an address
            // removed by an earlier pass shows here as gone.
            let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.removal_waiters)
                .into_iter()
                .partition(|(vips, _)| Reconciler::none_of(&observed, vips));
            self.removal_waiters = waiting;
            for (_, w) in done {
                let _ = w.send(());
            }
        }
        let actions = self.rec.reconcile(&observed);
        for action in actions {
            if !self.execute(action, link.as_ref()).await {
                pass.healthy = false;
            } else if matches!(action, ReconcileAction::Add(_) | ReconcileAction::Remove(_)) {
                pass.changed = true;
            }
        }
        self.bound_tx.send_replace(self.rec.bound().clone());
        pass
    }

    /// Tells the guard what a fresh dump shows as ours (adopted leftovers,
    /// addresses someone else deleted): it then lists exactly the kernel's
    /// truth, plus whatever [`Self::execute`] is about to add.
    fn sync_guard(&mut self, observed: &Observed) {
        if let Some(g) = self.guard.as_mut() {
            let ours = observed
                .addrs
                .iter()
                .filter(|a| a.ours)
                .map(|a| a.vip())
                .collect();
            g.sync(&ours);
        }
    }

    /// Executes one action; false when a kernel operation failed.
    async fn execute(&mut self, action: ReconcileAction, link: Option<&LinkInfo>) -> bool {
        let ifname = self.config.ifname.clone();
        match action {
            ReconcileAction::LinkDown => {
                tracing::warn!(interface = %ifname, "VIP interface down or missing");
                self.emit(VipEvent::LinkDown);
            }
            ReconcileAction::LinkUp => {
                if let Some(link) = link {
                    tracing::info!(interface = %ifname, "VIP interface up");
                    self.emit(VipEvent::LinkUp { link: link.clone() });
                }
            }
            ReconcileAction::Unbound(vip) => {
                tracing::info!(%vip, interface = %ifname, "VIP unbound");
                self.emit(VipEvent::Unbound { vip });
            }
            ReconcileAction::Bound(vip) => {
                if let Some(link) = link {
                    tracing::info!(%vip, interface = %ifname, "VIP bound");
                    self.emit(VipEvent::Bound {
                        vip,
                        link: link.clone(),
                    });
                }
            }
            ReconcileAction::Refuse { vip, reason } => {
                tracing::error!(%vip, interface = %ifname, %reason, "refusing to bind VIP");
                self.emit(VipEvent::Refused { vip, reason });
            }
            ReconcileAction::Add(vip) | ReconcileAction::Remove(vip) => {
                let (Some(link), Some(nl)) = (link, self.nl.as_ref()) else {
                    return true;
                };
                let res = if matches!(action, ReconcileAction::Add(_)) {
                    tracing::debug!(%vip, interface = %ifname, "adding VIP");
                    // The guard hears of it first: if we die right after
                    // the kernel took it, the guard knows to remove it.
                    if let Some(g) = self.guard.as_mut() {
                        g.adding(vip);
                    }
                    nl.add_vip(link.ifindex, vip).await
                } else {
                    tracing::info!(%vip, interface = %ifname, "removing VIP we do not want");
                    let r = nl.del_vip(link.ifindex, vip).await;
                    if let (Ok(()), Some(g)) = (&r, self.guard.as_mut()) {
                        g.removed(vip);
                    }
                    r
                };
                if let Err(e) = res {
                    if matches!(e, NetlinkError::Timeout { .. }) {
                        self.nl = None;
                    }
                    self.netlink_failed(Some(vip), e);
                    return false;
                }
            }
        }
        true
    }
}

/// Why startup validation failed (the daemon exits with status 2, SPEC §3).
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// The VIP interface does not exist.
    #[error("vip_interface {0:?} does not exist on this node")]
    NoSuchInterface(String),
    /// A configured VIP is already one of the node's own addresses.
    #[error("VIP {addr} is already configured on this node (as {addr}/{prefix_len}, interface index {ifindex}) and was not added by vipd: it is a node address and cannot be used as a VIP")]
    NodeAddress {
        /// The offending address.
        addr: std::net::IpAddr,
        /// Its prefix length on the node.
        prefix_len: u8,
        /// The interface carrying it.
        ifindex: u32,
    },
    /// Netlink itself failed.
    #[error(transparent)]
    Netlink(NetlinkError),
}

/// One-shot startup check: `ifname` exists and none of `vips` is already
/// on the node (any interface) unless vipd tagged it (a leftover, which
/// the manager adopts or removes). Touches nothing.
pub async fn preflight<'a>(
    ifname: &str,
    vips: impl IntoIterator<Item = &'a Vip>,
) -> Result<LinkInfo, PreflightError> {
    let nl = Netlink::new().map_err(PreflightError::Netlink)?;
    let link = match nl.link_by_name(ifname).await {
        Ok(l) => l,
        Err(NetlinkError::NoSuchInterface(n)) => return Err(PreflightError::NoSuchInterface(n)),
        Err(e) => return Err(PreflightError::Netlink(e)),
    };
    let all = nl.all_addresses().await.map_err(PreflightError::Netlink)?;
    for vip in vips {
        if let Some((ifindex, a)) = all.iter().find(|(_, a)| a.addr == vip.addr && !a.ours) {
            return Err(PreflightError::NodeAddress {
                addr: a.addr,
                prefix_len: a.prefix_len,
                ifindex: *ifindex,
            });
        }
    }
    Ok(link)
}
