//! The announcer task: the thin tokio shell around [`Pacer`](crate::Pacer)s and the raw
//! sockets of one interface.
//!
//! ```text
//!   daemon ──Command──▶ ┌──────────── Announcer (one per interface) ───────────┐
//!                       │ Scheduler (Pacers + pps cap) ─▶ build frame ──▶ send  │──▶ wire
//!   daemon ◀──Event──── │ parse ◀── recv (ARP socket, NA socket) ◀─────────────│◀── wire
//!                       └──────────────────────────────────────────────────────┘
//! ```
//!
//! Sends go through [`Scheduler`]: at most [`AnnouncerConfig::max_pps`]
//! frames per second (plus a 20 ms burst allowance), first announcements
//! first; a deferred send stays in its pacer, unpolled, until the budget
//! has room (see [`crate::budget`]). The loop sleeps until the next pacer
//! deadline or, when sends are held back, exactly until the bucket refills
//! enough for the next one.
//!
//! It never exits on its own (SPEC R2): socket errors are logged, the
//! sockets are reopened after a capped, jittered back-off, and commands are
//! still accepted meanwhile. Only the [`CancellationToken`] ends it.
//!
//! Duplicate detection (SPEC R5): any ARP frame whose sender IP is a VIP we
//! hold (reply, GARP request, or any request sourced from the VIP: all make
//! neighbours cache the sender's MAC) or any NA whose target is a VIP we
//! hold, from a MAC that is not ours, is reported as
//! [`AnnounceEvent::DuplicateClaim`]. The announcer does not react itself:
//! the daemon decides (step down if the lease names another holder, else
//! re-trigger with [`Reason::Duplicate`]).

use crate::budget::Scheduler;
use crate::pacing::Reason;
use crate::packet::{self, MacAddr, SendKind};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use vipd_backoff::Backoff;
use vipd_sys::packet::{PacketSocket, Proto};

/// Back-off before reopening sockets after an error: first delay.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Back-off cap: an interface that comes back is used within this time.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Large enough for any Ethernet frame on a standard-MTU link; longer
/// (jumbo) frames are truncated, which no ARP or NA frame ever is.
const RECV_BUF: usize = 2048;

/// What the announcer needs to know about its interface. The daemon reads
/// both values from netlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// Interface index to bind the raw sockets to.
    pub ifindex: u32,
    /// The interface's MAC: the source of our frames, and the one MAC that
    /// is never a duplicate claim.
    pub mac: MacAddr,
    /// Periodic refresh interval (kube-vip `vip_arpRate`, ms); zero = off.
    pub refresh: Duration,
    /// Cap on announcement frames per second on this interface (an IPv4
    /// announcement is 2 frames, IPv6 1); 0 = unlimited. Usually
    /// [`crate::budget::DEFAULT_MAX_PPS`].
    pub max_pps: u32,
}

/// Instructions from the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// We hold `vip` (now or again): start or restart its burst.
    Trigger {
        /// The VIP (IPv4: gratuitous ARP; IPv6: unsolicited NA).
        vip: IpAddr,
        /// Why; carried into logs.
        reason: Reason,
    },
    /// We no longer hold `vip`: stop announcing it and stop reporting claims.
    Stop {
        /// The VIP.
        vip: IpAddr,
    },
    /// New periodic refresh interval for every VIP; zero disables it.
    SetRefresh(Duration),
    /// New frames-per-second cap ([`AnnouncerConfig::max_pps`]); 0 = none.
    SetMaxPps(u32),
}

/// Read-only counters of one announcer's pps cap, shared with the task
/// (clone freely; get it with [`Announcer::stats`] before running).
#[derive(Debug, Clone, Default)]
pub struct AnnouncerStats {
    held_back: Arc<AtomicU64>,
    deferred_total: Arc<AtomicU64>,
}

impl AnnouncerStats {
    /// Frames due but waiting for the cap right now (a gauge).
    pub fn held_back_frames(&self) -> u64 {
        self.held_back.load(Ordering::Relaxed)
    }

    /// Frames ever held back by the cap, each send counted once (a counter).
    pub fn deferred_frames_total(&self) -> u64 {
        self.deferred_total.load(Ordering::Relaxed)
    }
}

/// What the announcer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// A frame for `vip` went out (for `vipd_announcements_total{vip,kind}`).
    Sent {
        /// The VIP announced.
        vip: IpAddr,
        /// Which frame.
        kind: SendKind,
    },
    /// Another MAC claimed a VIP we hold (for
    /// `vipd_duplicate_claims_total{vip}`, logs and a Kubernetes Event).
    DuplicateClaim {
        /// The VIP claimed.
        vip: IpAddr,
        /// The foreign MAC that claims it.
        mac: MacAddr,
    },
}

/// The announcer of one interface. Build with [`Announcer::new`], run with
/// [`Announcer::run`].
#[derive(Debug)]
pub struct Announcer {
    cfg: AnnouncerConfig,
    commands: mpsc::Receiver<Command>,
    /// False once every command sender is gone: keep serving what we hold
    /// until cancelled, but stop polling a closed channel.
    commands_open: bool,
    events: mpsc::Sender<AnnounceEvent>,
    sched: Scheduler,
    stats: AnnouncerStats,
    backoff: Backoff,
    /// Set after a failed send so a dead link logs one warning, not one per
    /// pacing tick.
    send_failing: bool,
}

struct Sockets {
    arp: PacketSocket,
    na: PacketSocket,
}

impl Sockets {
    fn open(ifindex: u32) -> io::Result<Self> {
        Ok(Sockets {
            arp: PacketSocket::open(ifindex, Proto::Arp)?,
            na: PacketSocket::open(ifindex, Proto::NeighbourAdvert)?,
        })
    }
}

impl Announcer {
    /// An announcer for one interface, holding no VIP yet. Events are sent
    /// with `try_send`: a full channel drops the event (logged at debug)
    /// rather than delaying announcements.
    pub fn new(
        cfg: AnnouncerConfig,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<AnnounceEvent>,
    ) -> Self {
        Announcer {
            cfg,
            commands,
            commands_open: true,
            events,
            sched: Scheduler::new(cfg.refresh, cfg.max_pps, Instant::now()),
            stats: AnnouncerStats::default(),
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            send_failing: false,
        }
    }

    /// The counters of this announcer's pps cap, live while it runs.
    pub fn stats(&self) -> AnnouncerStats {
        self.stats.clone()
    }

    /// Runs until `cancel` fires. Never returns early (SPEC R2).
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match Sockets::open(self.cfg.ifindex) {
                Ok(socks) => match self.serve(&socks, &cancel).await {
                    Ok(()) => return,
                    Err(error) => tracing::warn!(
                        ifindex = self.cfg.ifindex, %error,
                        "announcer socket failed; reopening after back-off"
                    ),
                },
                Err(error) => tracing::warn!(
                    ifindex = self.cfg.ifindex, %error,
                    "cannot open announcer sockets; retrying after back-off"
                ),
            }
            let until = Instant::now() + self.backoff.next_delay();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = sleep_until(until) => break,
                    cmd = self.commands.recv(), if self.commands_open => self.on_command(cmd),
                }
            }
        }
    }

    /// Serves with open sockets until cancelled (`Ok`) or a receive error.
    async fn serve(&mut self, socks: &Sockets, cancel: &CancellationToken) -> io::Result<()> {
        let mut arp_buf = [0u8; RECV_BUF];
        let mut na_buf = [0u8; RECV_BUF];
        loop {
            self.send_due(socks).await;
            // The next pacer deadline, or the bucket refill when sends are
            // held back: never a spin, never later than needed.
            let deadline = self.sched.next_wake(Instant::now());
            // Only polled when `deadline` is Some (select! precondition).
            let wake = deadline.unwrap_or_else(|| Instant::now() + BACKOFF_MAX);
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                cmd = self.commands.recv(), if self.commands_open => self.on_command(cmd),
                _ = sleep_until(wake), if deadline.is_some() => {}
                r = socks.arp.recv(&mut arp_buf) => {
                    let n = r?;
                    self.backoff.reset();
                    if let Some(f) = arp_buf.get(..n).and_then(packet::parse_arp) {
                        self.on_claim(IpAddr::V4(f.sender_ip), f.sender_mac);
                    }
                }
                r = socks.na.recv(&mut na_buf) => {
                    let n = r?;
                    self.backoff.reset();
                    if let Some(f) = na_buf.get(..n).and_then(packet::parse_na) {
                        self.on_claim(IpAddr::V6(f.target), f.claimed_mac());
                    }
                }
            }
        }
    }

    fn on_command(&mut self, cmd: Option<Command>) {
        let now = Instant::now();
        match cmd {
            None => self.commands_open = false,
            Some(Command::Trigger { vip, reason }) => {
                tracing::debug!(%vip, ?reason, "announcement burst triggered");
                self.sched.trigger(vip, now, reason);
            }
            Some(Command::Stop { vip }) => {
                tracing::debug!(%vip, "announcements stopped");
                self.sched.stop(vip);
                self.publish_stats();
            }
            Some(Command::SetRefresh(refresh)) => {
                self.cfg.refresh = refresh;
                self.sched.set_refresh(refresh);
            }
            Some(Command::SetMaxPps(max_pps)) => {
                tracing::debug!(max_pps, "announcement cap changed");
                self.cfg.max_pps = max_pps;
                self.sched.set_max_pps(max_pps, now);
            }
        }
    }

    /// A frame says `mac` owns `ip`: a duplicate when we hold `ip` and the
    /// MAC is not ours.
    fn on_claim(&mut self, ip: IpAddr, mac: MacAddr) {
        if mac == self.cfg.mac || !self.sched.holds(ip) {
            return;
        }
        tracing::debug!(vip = %ip, %mac, "foreign MAC claims a VIP we hold");
        self.emit(AnnounceEvent::DuplicateClaim { vip: ip, mac });
    }

    async fn send_due(&mut self, socks: &Sockets) {
        let now = Instant::now();
        // At most one send per VIP per pass, already paid for in the cap.
        let due = self.sched.poll(now);
        self.publish_stats();
        for (vip, d) in due {
            let reason = d.reason;
            let frames: Vec<(SendKind, &[u8])>;
            let (req, rep, na);
            match vip {
                IpAddr::V4(v4) => {
                    req = packet::garp_request(self.cfg.mac, v4);
                    rep = packet::garp_reply(self.cfg.mac, v4);
                    frames = vec![
                        (SendKind::GarpRequest, &req[..]),
                        (SendKind::GarpReply, &rep[..]),
                    ];
                }
                IpAddr::V6(v6) => {
                    na = packet::unsolicited_na(self.cfg.mac, v6, v6);
                    frames = vec![(SendKind::UnsolicitedNa, &na[..])];
                }
            }
            for (kind, frame) in frames {
                let sock = if kind == SendKind::UnsolicitedNa {
                    &socks.na
                } else {
                    &socks.arp
                };
                match sock.send(frame).await {
                    Ok(()) => {
                        self.send_failing = false;
                        self.backoff.reset();
                        tracing::trace!(%vip, kind = kind.label(), ?reason, "announcement sent");
                        self.emit(AnnounceEvent::Sent { vip, kind });
                    }
                    // Link down is normal and transient: the daemon
                    // re-triggers on LinkUp, so do not tear the sockets down.
                    Err(error) if !self.send_failing => {
                        self.send_failing = true;
                        tracing::warn!(%vip, kind = kind.label(), %error, "announcement send failed");
                    }
                    Err(error) => {
                        tracing::debug!(%vip, kind = kind.label(), %error, "announcement send failed again");
                    }
                }
            }
        }
    }

    fn publish_stats(&self) {
        self.stats
            .held_back
            .store(self.sched.held_back_frames(), Ordering::Relaxed);
        self.stats
            .deferred_total
            .store(self.sched.deferred_frames_total(), Ordering::Relaxed);
    }

    fn emit(&self, ev: AnnounceEvent) {
        if let Err(mpsc::error::TrySendError::Full(ev)) = self.events.try_send(ev) {
            tracing::debug!(?ev, "announcer event channel full; event dropped");
        }
    }
}
