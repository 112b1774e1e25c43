//! Services mode's wire side: VIP manager events drive one paced announcer
//! for the Services interface (R4 for every address, with a frame-rate cap
//! so a node taking over 1,000 addresses does not flood the segment), and
//! announcer events feed metrics and duplicate handling (R5, per address).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, error, info, warn};
use vipd_announce::{
    AnnounceEvent, Announcer, AnnouncerConfig, Command as AnnounceCommand, MacAddr, Reason,
    SendKind,
};
use vipd_observe::metrics::{AnnouncementKind, Metrics};
use vipd_vip::VipEvent;

/// The wire task's settings.
pub struct Wire {
    /// The interface Services addresses are announced on.
    pub interface: String,
    /// Periodic re-announcement interval (R4's optional refresh; zero: off).
    pub refresh: Duration,
    /// Frame-rate cap for the whole interface (frames per second).
    pub max_pps: u32,
    /// Whether IPv4 addresses are announced with gratuitous ARP (kube-vip `vip_arp`).
    pub arp: bool,
    /// Announcement and duplicate-claim metrics.
    pub metrics: Arc<Metrics>,
}

struct Running {
    ifindex: u32,
    mac: MacAddr,
    tx: mpsc::Sender<AnnounceCommand>,
    _task: AbortOnDropHandle<()>,
}

impl Wire {
    /// Runs until `cancel`.
    pub async fn run(
        self,
        mut vip_events: mpsc::UnboundedReceiver<VipEvent>,
        cancel: CancellationToken,
    ) {
        // Large: a takeover of 1,000 addresses queues 1,000 triggers at once.
        let (ann_tx, mut ann_rx) = mpsc::channel::<AnnounceEvent>(4096);
        let mut running: Option<Running> = None;
        let mut bound = 0usize;
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                ev = vip_events.recv() => {
                    let Some(ev) = ev else { return };
                    match ev {
                        VipEvent::Bound { vip, link } => {
                            bound += 1;
                            debug!(address = %vip.addr, interface = %link.name, "Service address bound; announcing");
                            self.metrics.inc_vip_bind(&vip.addr.to_string());
                            if !self.arp {
                                continue;
                            }
                            let Some(mac) = link.mac else {
                                warn!(interface = %link.name, "interface has no Ethernet address; cannot announce");
                                continue;
                            };
                            let mac = MacAddr(mac);
                            if running.as_ref().is_none_or(|r| r.ifindex != link.ifindex || r.mac != mac) {
                                running = Some(self.spawn(link.ifindex, mac, ann_tx.clone(), &cancel));
                            }
                            if let Some(r) = &running {
                                send(r, AnnounceCommand::Trigger { vip: vip.addr, reason: Reason::Acquired }).await;
                            }
                        }
                        VipEvent::Unbound { vip } => {
                            bound = bound.saturating_sub(1);
                            debug!(address = %vip.addr, "Service address unbound");
                            if let Some(r) = &running {
                                send(r, AnnounceCommand::Stop { vip: vip.addr }).await;
                            }
                        }
                        VipEvent::LinkUp { link } => info!(interface = %link.name, "Services interface up"),
                        VipEvent::LinkDown => warn!(interface = %self.interface, "Services interface down"),
                        VipEvent::Refused { vip, reason } => {
                            error!(address = %vip.addr, %reason, "refusing to manage an address vipd did not add");
                        }
                        VipEvent::Error { vip, error } => {
                            warn!(address = ?vip.map(|v| v.addr), %error, "netlink operation failed; retrying");
                        }
                    }
                    let _ = bound;
                }
                ev = ann_rx.recv() => {
                    let Some(ev) = ev else { continue };
                    match ev {
                        AnnounceEvent::Sent { vip, kind } => {
                            self.metrics.inc_announcement(&vip.to_string(), match kind {
                                SendKind::GarpRequest => AnnouncementKind::GarpRequest,
                                SendKind::GarpReply => AnnouncementKind::GarpReply,
                                SendKind::UnsolicitedNa => AnnouncementKind::UnsolicitedNa,
                            });
                        }
                        AnnounceEvent::DuplicateClaim { vip, mac } => {
                            // R5: only the assigned owner announces an
                            // address (the core proves it), so a foreign MAC
                            // is a device outside vipd: count it and win the
                            // neighbours back.
                            warn!(address = %vip, claimed_by = %mac, "another MAC claims a Service address we announce; re-announcing");
                            self.metrics.inc_duplicate_claim(&vip.to_string());
                            if let Some(r) = &running {
                                send(r, AnnounceCommand::Trigger { vip, reason: Reason::Duplicate }).await;
                            }
                        }
                    }
                }
            }
        }
    }

    fn spawn(
        &self,
        ifindex: u32,
        mac: MacAddr,
        events: mpsc::Sender<AnnounceEvent>,
        cancel: &CancellationToken,
    ) -> Running {
        let (tx, rx) = mpsc::channel(4096);
        let announcer = Announcer::new(
            AnnouncerConfig {
                ifindex,
                mac,
                refresh: self.refresh,
                max_pps: self.max_pps,
            },
            rx,
            events,
        );
        Running {
            ifindex,
            mac,
            tx,
            _task: AbortOnDropHandle::new(tokio::spawn(announcer.run(cancel.child_token()))),
        }
    }
}

async fn send(r: &Running, cmd: AnnounceCommand) {
    // Awaiting (not try_send): a takeover of many addresses must not drop
    // triggers; the announcer drains its queue quickly.
    if r.tx.send(cmd).await.is_err() {
        warn!("announcer stopped; announcement dropped");
    }
}
