//! The glue task: VIP manager events drive the announcer and the metrics,
//! announcer events feed metrics and duplicate-claim handling (R5), and
//! election observations update metrics, `/status` and Events.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, info, warn};
use vipd::config::Config;
use vipd_announce::{
    AnnounceEvent, Announcer, AnnouncerConfig, Command as AnnounceCommand, MacAddr, Reason,
    SendKind,
};
use vipd_election::Role;
use vipd_observe::metrics::{AnnouncementKind, Metrics, Transition};
use vipd_observe::status::{Heartbeat, Liveness, Role as StatusRole, StatusHandle};
use vipd_vip::{Vip, VipEvent};

use super::events::{EventReason, Events};
use std::sync::Arc;
use vipd_elector::{self as elect, Control, Observation};

#[derive(Clone)]
pub(super) struct GlueCtx {
    pub(super) cfg: Config,
    pub(super) metrics: Arc<Metrics>,
    pub(super) status: StatusHandle,
    pub(super) control: mpsc::Sender<Control>,
    pub(super) lease_label: String,
    pub(super) vip_label: String,
    pub(super) bound: watch::Receiver<BTreeSet<Vip>>,
    pub(super) cancel: CancellationToken,
    pub(super) liveness: Liveness,
    pub(super) events: Events,
}

pub(super) async fn glue(
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
                if let Some(vip) = ctx.cfg.vip {
                    let bound = ctx.bound.borrow().iter().any(|v| v.addr == vip);
                    ctx.status.update_vip(vip, current_role(role), bound);
                }
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
pub(super) struct AnnouncerHandle {
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
                max_pps: vipd_announce::DEFAULT_MAX_PPS,
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

pub(super) fn current_role(r: Role) -> StatusRole {
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
