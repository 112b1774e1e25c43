//! One BGP session as a sans-IO state machine (RFC 4271 §8), announce-only.
//!
//! The shell feeds [`Input`]s with the current monotonic time and executes
//! the returned [`Action`]s in order (connect, write bytes, close), and
//! calls [`Session::handle`] with [`Input::Tick`] at
//! [`Session::next_deadline`]. Nothing here reads a clock or a socket.
//!
//! Differences from the full RFC 4271 FSM, all because vipd only announces:
//! - vipd always opens the connection (like kube-vip's GoBGP, which does
//!   not listen): there is no Active state and no connection collision
//!   (§6.8) to resolve. A failed or timed-out connect goes back to Idle
//!   and retries after a jittered, capped exponential back-off (§8.1.1's
//!   DampPeerOscillations in spirit), reset once a session reaches
//!   Established.
//! - Routes the peer sends are parsed and counted ([`Status::received`]),
//!   never installed; a malformed attribute is "treat-as-withdraw"
//!   (RFC 7606) rather than a session reset, since a reset would withdraw
//!   our VIPs for the peer's mistake.
//! - The routes we send are the desired set given with
//!   [`Input::Routes`]; [`Session`] keeps what the peer was told in this
//!   session (Adj-RIB-Out) and sends only differences.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tokio::time::Instant;

use crate::packet::{
    code, frame_len, Capability, Codec, DecodeError, Family, Message, Notification, Open,
    OpenError, Prefix, Update, AS_TRANS, SAFI_UNICAST,
};
use crate::updates::{announcements, withdrawals, Origination};

/// RFC 4271 §8.2.2: the hold timer while waiting for the peer's OPEN
/// ("a large value", suggested 4 minutes).
pub const OPEN_HOLD: Duration = Duration::from_secs(240);

/// Received prefixes remembered for counting; beyond this only the total
/// of announcements is counted (a router sending a full table must not
/// grow vipd's memory without bound).
pub const MAX_REMEMBERED: usize = 100_000;

/// Session configuration; see the field docs for defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our AS (4-octet capable).
    pub local_as: u32,
    /// The AS the peer must report in its OPEN.
    pub remote_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Proposed hold time in seconds: 0 (no keepalives) or ≥ 3.
    pub hold_time: u16,
    /// Keepalive interval in seconds; capped at a third of the negotiated
    /// hold time (RFC 4271 §10). 0 means "a third of the hold time".
    pub keepalive: u16,
    /// Families to offer (multiprotocol capabilities).
    pub families: Vec<Family>,
    /// Next hop for IPv4 routes; `None` = the session's local address when
    /// it is IPv4.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes; `None` = the session's local address when
    /// it is IPv6.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// RFC 4724 restart time to advertise, `None` (the default) for no
    /// graceful restart: with it the router keeps a dead node's routes for
    /// this long, which is the opposite of what a VIP needs.
    pub graceful_restart: Option<u16>,
    /// Give up on a TCP connect after this long.
    pub connect_timeout: Duration,
    /// First delay before reconnecting; doubles per failure up to
    /// `retry_max`, with jitter.
    pub retry_min: Duration,
    /// Cap of the reconnect delay.
    pub retry_max: Duration,
    /// Seed of the jitter (the shell passes a random one).
    pub seed: u64,
}

impl Config {
    /// kube-vip's defaults (hold 30 s, keepalive 10 s) for one peer.
    pub fn new(local_as: u32, remote_as: u32, router_id: Ipv4Addr) -> Self {
        Self {
            local_as,
            remote_as,
            router_id,
            hold_time: 30,
            keepalive: 10,
            families: vec![Family::Ipv4, Family::Ipv6],
            next_hop_v4: None,
            next_hop_v6: None,
            graceful_restart: None,
            connect_timeout: Duration::from_secs(5),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            seed: 1,
        }
    }

    fn internal(&self) -> bool {
        self.local_as == self.remote_as
    }
}

/// RFC 4271 §8.2.2 states (without Active: see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not connected; waiting to (re)connect, or stopped.
    Idle,
    /// TCP connect in progress.
    Connect,
    /// Our OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes flow.
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// Why the state changed (for logs and `/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// `Input::Start`.
    Started,
    /// The back-off delay passed.
    Retry,
    /// TCP connected.
    Connected,
    /// The peer's OPEN was acceptable.
    OpenAccepted,
    /// The peer's KEEPALIVE confirmed the OPEN.
    KeepaliveReceived,
    /// TCP connect failed.
    ConnectFailed,
    /// TCP connect took longer than `connect_timeout`.
    ConnectTimeout,
    /// The peer closed the connection (or it broke).
    ConnectionClosed,
    /// We got a NOTIFICATION.
    NotificationReceived(Notification),
    /// We sent a NOTIFICATION (bad message, hold timer, FSM error).
    NotificationSent(Notification),
    /// `Input::Stop`.
    Stopped,
    /// `Input::Down` (BFD, or the shell's own verdict).
    Down(String),
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Started => f.write_str("started"),
            Reason::Retry => f.write_str("retry"),
            Reason::Connected => f.write_str("connected"),
            Reason::OpenAccepted => f.write_str("OPEN accepted"),
            Reason::KeepaliveReceived => f.write_str("KEEPALIVE received"),
            Reason::ConnectFailed => f.write_str("connect failed"),
            Reason::ConnectTimeout => f.write_str("connect timed out"),
            Reason::ConnectionClosed => f.write_str("connection closed"),
            Reason::NotificationReceived(n) => write!(f, "NOTIFICATION received: {n}"),
            Reason::NotificationSent(n) => write!(f, "NOTIFICATION sent: {n}"),
            Reason::Stopped => f.write_str("stopped"),
            Reason::Down(why) => write!(f, "down: {why}"),
        }
    }
}

/// What the session asks the shell to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer; answer with
    /// [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect,
    /// Write these bytes (one or more whole messages).
    Send(Vec<u8>),
    /// Close the connection once what was sent is written (or abort a
    /// connect in progress).
    Close,
    /// The state changed.
    StateChanged {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        reason: Reason,
    },
}

/// What was negotiated with the peer's OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Hold time in seconds (0 = none).
    pub hold_time: u16,
    /// Keepalive interval in seconds (0 = none).
    pub keepalive: u16,
    /// Families both sides carry.
    pub families: Vec<Family>,
    /// Encoding.
    pub codec: Codec,
    /// Both sides support route refresh.
    pub route_refresh: bool,
    /// Both sides advertised graceful restart.
    pub graceful_restart: bool,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
}

/// Counters and the current view, for metrics and `/status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// UPDATE messages sent (all sessions).
    pub updates_sent: u64,
    /// UPDATE messages received (all sessions).
    pub updates_received: u64,
    /// Prefixes the peer announced in this session and did not withdraw
    /// (saturates at [`MAX_REMEMBERED`]).
    pub received: usize,
    /// UPDATEs treated as withdraw (RFC 7606) in this session.
    pub malformed_updates: u64,
    /// Times the session reached Established.
    pub established_count: u64,
    /// Notifications sent.
    pub notifications_sent: u64,
    /// Notifications received.
    pub notifications_received: u64,
    /// The last reason the session left Established or failed to get there.
    pub last_error: Option<String>,
    /// Desired prefixes that cannot be sent on this session: family not
    /// negotiated, or no next hop of that family.
    pub unsendable: usize,
}

/// One input to the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// ManualStart (RFC 4271 §8.1.2 event 1): connect now and keep
    /// reconnecting.
    Start,
    /// ManualStop (event 2): withdraw everything, send Cease /
    /// Administrative Shutdown with this message (RFC 8203), close, and do
    /// not reconnect until the next `Start`.
    Stop(String),
    /// The session is unusable for a reason the shell knows (BFD down,
    /// event 18's cousin): drop it now and reconnect after the back-off.
    Down(String),
    /// TCP connected; `local` is our address of the connection.
    Connected {
        /// Local address (the default next hop of its family).
        local: IpAddr,
    },
    /// TCP connect failed.
    ConnectFailed,
    /// The connection closed or broke.
    Closed,
    /// Bytes read from the connection.
    Received(&'a [u8]),
    /// The desired set of host routes (any mix of IPv4 and IPv6).
    Routes(&'a BTreeSet<IpAddr>),
    /// Time passed: check the timers.
    Tick,
}

/// The session.
#[derive(Debug)]
pub struct Session {
    cfg: Config,
    state: State,
    /// `Start` given and no `Stop` since.
    running: bool,
    desired: BTreeSet<Prefix>,
    /// Adj-RIB-Out: what the peer has been told in this session.
    advertised: BTreeSet<Prefix>,
    received: BTreeSet<Prefix>,
    received_overflow: bool,
    rx: Vec<u8>,
    local: Option<IpAddr>,
    negotiated: Option<Negotiated>,
    retry_at: Option<Instant>,
    connect_deadline: Option<Instant>,
    hold_deadline: Option<Instant>,
    keepalive_at: Option<Instant>,
    retry_delay: Duration,
    rng: u64,
    status: Status,
}

impl Session {
    /// A stopped session (Idle until [`Input::Start`]).
    pub fn new(cfg: Config) -> Self {
        let retry_delay = cfg.retry_min;
        // xorshift must not start at 0.
        let rng = cfg.seed | 1;
        Self {
            cfg,
            state: State::Idle,
            running: false,
            desired: BTreeSet::new(),
            advertised: BTreeSet::new(),
            received: BTreeSet::new(),
            received_overflow: false,
            rx: Vec::new(),
            local: None,
            negotiated: None,
            retry_at: None,
            connect_deadline: None,
            hold_deadline: None,
            keepalive_at: None,
            retry_delay,
            rng,
            status: Status::default(),
        }
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// What was negotiated, while OpenConfirm or Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// The prefixes the peer has been told about in this session.
    pub fn advertised(&self) -> &BTreeSet<Prefix> {
        &self.advertised
    }

    /// Counters.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// When the shell must call [`Input::Tick`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.retry_at,
            self.connect_deadline,
            self.hold_deadline,
            self.keepalive_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.running = true;
                if self.state == State::Idle {
                    self.retry_delay = self.cfg.retry_min;
                    self.connect(now, Reason::Started, &mut out);
                }
            }
            Input::Stop(message) => self.stop(&message, &mut out),
            Input::Down(why) => {
                if self.state != State::Idle {
                    // RFC 9384: Cease subcode 10 "BFD Down". Worth sending:
                    // if only BFD failed, the peer learns why at once.
                    let n = Notification::new(code::CEASE, 10);
                    let reason = Reason::Down(why);
                    self.notify_and_drop(now, n, reason, &mut out);
                }
            }
            Input::Connected { local } => {
                if self.state == State::Connect {
                    self.local = Some(local);
                    self.connect_deadline = None;
                    self.rx.clear();
                    let open = self.our_open();
                    self.send(Message::Open(open), &mut out);
                    self.hold_deadline = Some(now + OPEN_HOLD);
                    self.transition(State::OpenSent, Reason::Connected, &mut out);
                }
            }
            Input::ConnectFailed => {
                if self.state == State::Connect {
                    self.drop_session(now, Reason::ConnectFailed, &mut out);
                }
            }
            Input::Closed => {
                if self.state != State::Idle {
                    self.drop_session(now, Reason::ConnectionClosed, &mut out);
                }
            }
            Input::Received(bytes) => self.receive(now, bytes, &mut out),
            Input::Routes(set) => {
                self.desired = set.iter().map(|a| Prefix::host(*a)).collect();
                if self.state == State::Established {
                    self.sync_routes(now, &mut out);
                }
            }
            Input::Tick => self.tick(now, &mut out),
        }
        out
    }

    fn transition(&mut self, to: State, reason: Reason, out: &mut Vec<Action>) {
        if to == self.state {
            return;
        }
        let from = self.state;
        self.state = to;
        if to == State::Established {
            self.status.established_count += 1;
        }
        out.push(Action::StateChanged { from, to, reason });
    }

    fn connect(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        self.retry_at = None;
        self.connect_deadline = Some(now + self.cfg.connect_timeout);
        out.push(Action::Connect);
        self.transition(State::Connect, reason, out);
    }

    fn stop(&mut self, message: &str, out: &mut Vec<Action>) {
        self.running = false;
        self.retry_at = None;
        match self.state {
            State::Idle => {}
            State::Connect => {
                out.push(Action::Close);
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                if self.state == State::Established {
                    // Explicit withdrawals first: the Cease alone removes
                    // our routes at a router, but a router that keeps
                    // routes across a NOTIFICATION (RFC 8538 N-bit) must
                    // still lose them now (SPEC §5b: withdraw before we
                    // stop serving).
                    let gone: Vec<Prefix> = self.advertised.iter().copied().collect();
                    self.send_withdrawals(&gone, out);
                }
                let n = Notification::admin_shutdown(message);
                self.send(Message::Notification(n), out);
                self.status.notifications_sent += 1;
                out.push(Action::Close);
            }
        }
        self.clear_session();
        self.transition(State::Idle, Reason::Stopped, out);
    }

    fn clear_session(&mut self) {
        self.advertised.clear();
        self.received.clear();
        self.received_overflow = false;
        self.status.received = 0;
        self.rx.clear();
        self.local = None;
        self.negotiated = None;
        self.connect_deadline = None;
        self.hold_deadline = None;
        self.keepalive_at = None;
    }

    /// Leaves the session for Idle and schedules a reconnect.
    fn drop_session(&mut self, now: Instant, reason: Reason, out: &mut Vec<Action>) {
        if self.state != State::Idle {
            out.push(Action::Close);
        }
        self.status.last_error = Some(reason.to_string());
        self.clear_session();
        self.transition(State::Idle, reason, out);
        if self.running {
            let delay = self.next_retry_delay();
            self.retry_at = Some(now + delay);
        }
    }

    fn notify_and_drop(
        &mut self,
        now: Instant,
        n: Notification,
        reason: Reason,
        out: &mut Vec<Action>,
    ) {
        if matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            self.send(Message::Notification(n), out);
            self.status.notifications_sent += 1;
        }
        self.drop_session(now, reason, out);
    }

    /// Equal-jitter exponential back-off: uniform in [d/2, d], d doubling
    /// per failure up to `retry_max`.
    fn next_retry_delay(&mut self) -> Duration {
        let d = self.retry_delay;
        self.retry_delay = (d * 2).min(self.cfg.retry_max.max(self.cfg.retry_min));
        let half = d / 2;
        let span = u64::try_from((d - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(self.random() % span.saturating_add(1))
    }

    /// Keepalive interval with RFC 4271 §10's jitter (75–100 %).
    fn jittered(&mut self, secs: u16) -> Duration {
        let full = Duration::from_secs(u64::from(secs));
        let quarter = u64::try_from((full / 4).as_micros()).unwrap_or(0);
        full - Duration::from_micros(self.random() % quarter.saturating_add(1))
    }

    fn random(&mut self) -> u64 {
        // xorshift64: deterministic per seed, so tests replay.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn our_open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .cfg
            .families
            .iter()
            .map(|f| Capability::family(*f))
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::FourOctetAs(self.cfg.local_as));
        if let Some(t) = self.cfg.graceful_restart {
            capabilities.push(Capability::GracefulRestart {
                restarting: false,
                restart_time: t.min(0x0fff),
                // Forwarding-state bit clear: we keep no forwarding state
                // for routes we only originate.
                families: self
                    .cfg
                    .families
                    .iter()
                    .map(|f| (f.afi(), SAFI_UNICAST, 0))
                    .collect(),
            });
        }
        Open {
            version: 4,
            my_as: u16::try_from(self.cfg.local_as).unwrap_or(AS_TRANS),
            hold_time: self.cfg.hold_time,
            bgp_id: self.cfg.router_id,
            capabilities,
        }
    }

    fn codec(&self) -> Codec {
        self.negotiated
            .as_ref()
            .map(|n| n.codec)
            .unwrap_or_default()
    }

    fn send(&mut self, m: Message, out: &mut Vec<Action>) {
        match m.encode(self.codec()) {
            Ok(bytes) => out.push(Action::Send(bytes)),
            // Only an UPDATE could be too long, and `updates` packs them
            // below the limit; a NOTIFICATION's data is ours and short.
            Err(e) => tracing::error!(error = %e, "BGP message not sent"),
        }
    }

    fn restart_keepalive(&mut self, now: Instant) {
        let secs = self.negotiated.as_ref().map_or(0, |n| n.keepalive);
        self.keepalive_at = (secs > 0).then(|| now + self.jittered(secs));
    }

    fn restart_hold(&mut self, now: Instant) {
        let secs = self.negotiated.as_ref().map_or(0, |n| n.hold_time);
        self.hold_deadline = (secs > 0).then(|| now + Duration::from_secs(u64::from(secs)));
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            if self.running && self.state == State::Idle {
                self.connect(now, Reason::Retry, out);
            }
        }
        if self.connect_deadline.is_some_and(|t| now >= t) {
            self.drop_session(now, Reason::ConnectTimeout, out);
        }
        if self.hold_deadline.is_some_and(|t| now >= t) {
            // RFC 4271 §8.2.2 event 10: HoldTimer_Expires.
            let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
            self.notify_and_drop(now, n.clone(), Reason::NotificationSent(n), out);
        }
        if self.keepalive_at.is_some_and(|t| now >= t) {
            self.send(Message::Keepalive, out);
            self.restart_keepalive(now);
        }
    }

    fn receive(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Action>) {
        if !matches!(
            self.state,
            State::OpenSent | State::OpenConfirm | State::Established
        ) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        loop {
            let n = match frame_len(&self.rx) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(e) => return self.protocol_error(now, &e, out),
            };
            let msg: Vec<u8> = self.rx.drain(..n).collect();
            match Message::decode(&msg, self.codec()) {
                Ok(m) => self.message(now, m, out),
                Err(e) => return self.protocol_error(now, &e, out),
            }
            if self.state == State::Idle {
                return;
            }
        }
    }

    fn protocol_error(&mut self, now: Instant, e: &DecodeError, out: &mut Vec<Action>) {
        let n = e.notification();
        self.notify_and_drop(now, n.clone(), Reason::NotificationSent(n), out);
    }

    fn fsm_error(&mut self, now: Instant, out: &mut Vec<Action>) {
        // RFC 6608 subcodes: which state received the unexpected message.
        let sub = match self.state {
            State::OpenSent => 1,
            State::OpenConfirm => 2,
            _ => 3,
        };
        let n = Notification::new(code::FSM, sub);
        self.notify_and_drop(now, n.clone(), Reason::NotificationSent(n), out);
    }

    fn message(&mut self, now: Instant, m: Message, out: &mut Vec<Action>) {
        if let Message::Notification(n) = m {
            // §8.2.2: a NOTIFICATION in any state drops the session;
            // never answered with one.
            self.status.notifications_received += 1;
            return self.drop_session(now, Reason::NotificationReceived(n), out);
        }
        match (self.state, m) {
            (State::OpenSent, Message::Open(open)) => match self.accept_open(&open) {
                Ok(neg) => {
                    self.negotiated = Some(neg);
                    self.send(Message::Keepalive, out);
                    self.restart_hold(now);
                    self.restart_keepalive(now);
                    self.transition(State::OpenConfirm, Reason::OpenAccepted, out);
                }
                Err(e) => {
                    let n = e.notification();
                    self.notify_and_drop(now, n.clone(), Reason::NotificationSent(n), out);
                }
            },
            (State::OpenConfirm, Message::Keepalive) => {
                self.restart_hold(now);
                self.transition(State::Established, Reason::KeepaliveReceived, out);
                self.retry_delay = self.cfg.retry_min;
                self.status.last_error = None;
                self.sync_routes(now, out);
                if self.negotiated.as_ref().is_some_and(|n| n.graceful_restart) {
                    // RFC 4724 §2: End-of-RIB after the initial update.
                    let fams = self
                        .negotiated
                        .as_ref()
                        .map(|n| n.families.clone())
                        .unwrap_or_default();
                    for f in fams {
                        self.send(Message::Update(Update::end_of_rib(f)), out);
                    }
                }
            }
            (State::Established, Message::Keepalive) => self.restart_hold(now),
            (State::Established, Message::Update(u)) => {
                self.restart_hold(now);
                self.count_update(&u);
            }
            (State::Established, Message::RouteRefresh { afi, safi }) => {
                self.restart_hold(now);
                self.refresh(now, afi, safi, out);
            }
            // RFC 7313 §5: route refresh in OpenConfirm is an FSM error
            // like any other message there; in Established all cases are
            // covered above except OPEN.
            _ => self.fsm_error(now, out),
        }
    }

    /// RFC 4271 §6.2 checks and capability negotiation.
    fn accept_open(&self, open: &Open) -> Result<Negotiated, OpenError> {
        let asn = open.asn();
        if asn != self.cfg.remote_as {
            return Err(OpenError::BadPeerAs(asn));
        }
        // RFC 6286 §2.2: zero is never valid; ours is only invalid on iBGP.
        if open.bgp_id.is_unspecified()
            || (self.cfg.internal() && open.bgp_id == self.cfg.router_id)
        {
            return Err(OpenError::BadBgpId(open.bgp_id));
        }
        if matches!(open.hold_time, 1 | 2) {
            return Err(OpenError::UnacceptableHoldTime(open.hold_time));
        }
        let hold_time = open.hold_time.min(self.cfg.hold_time);
        let wanted = if self.cfg.keepalive == 0 {
            hold_time / 3
        } else {
            self.cfg.keepalive
        };
        let keepalive = if hold_time == 0 {
            0
        } else {
            wanted.min(hold_time / 3).max(1)
        };
        let theirs = open.families();
        let families = self
            .cfg
            .families
            .iter()
            .copied()
            .filter(|f| theirs.contains(f))
            .collect();
        Ok(Negotiated {
            hold_time,
            keepalive,
            families,
            codec: Codec {
                four_octet_as: open.has(|c| matches!(c, Capability::FourOctetAs(_))),
            },
            route_refresh: open.has(|c| matches!(c, Capability::RouteRefresh)),
            graceful_restart: self.cfg.graceful_restart.is_some()
                && open.has(|c| matches!(c, Capability::GracefulRestart { .. })),
            peer_id: open.bgp_id,
        })
    }

    fn count_update(&mut self, u: &Update) {
        self.status.updates_received += 1;
        if u.is_malformed() {
            self.status.malformed_updates += 1;
        }
        for p in u.withdrawn_all() {
            self.received.remove(p);
        }
        // Treat-as-withdraw: a malformed message's routes are not counted.
        if !u.is_malformed() {
            for p in u.announced() {
                if self.received.len() < MAX_REMEMBERED {
                    self.received.insert(*p);
                } else if !self.received.contains(p) && !self.received_overflow {
                    self.received_overflow = true;
                    tracing::warn!(
                        limit = MAX_REMEMBERED,
                        "peer sent more prefixes than vipd counts; the count saturates"
                    );
                }
            }
        }
        self.status.received = self.received.len();
    }

    /// RFC 2918 §4: re-advertise the Adj-RIB-Out of the family.
    fn refresh(&mut self, now: Instant, afi: u16, safi: u8, out: &mut Vec<Action>) {
        let fam = [Family::Ipv4, Family::Ipv6]
            .into_iter()
            .find(|f| f.afi() == afi && safi == SAFI_UNICAST);
        let Some(fam) = fam else {
            return;
        };
        let again: Vec<Prefix> = self
            .advertised
            .iter()
            .copied()
            .filter(|p| p.family() == fam)
            .collect();
        let o = self.origination();
        if let Some(nh) = o.next_hop(fam) {
            for u in announcements(fam, &again, nh, &o) {
                self.send_update(u, out);
            }
            self.restart_keepalive(now);
        }
    }

    fn origination(&self) -> Origination {
        let local = self.local;
        Origination {
            local_as: self.cfg.local_as,
            internal: self.cfg.internal(),
            codec: self.codec(),
            next_hop_v4: self.cfg.next_hop_v4.or(match local {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            }),
            next_hop_v6: self.cfg.next_hop_v6.or(match local {
                Some(IpAddr::V6(a)) => Some(a),
                _ => None,
            }),
        }
    }

    fn sendable(&self, p: &Prefix, o: &Origination) -> bool {
        let negotiated = self
            .negotiated
            .as_ref()
            .is_some_and(|n| n.families.contains(&p.family()));
        negotiated && o.next_hop(p.family()).is_some()
    }

    fn diff_withdraw(&self, target: &BTreeSet<Prefix>) -> Vec<Prefix> {
        self.advertised.difference(target).copied().collect()
    }

    fn send_withdrawals(&mut self, gone: &[Prefix], out: &mut Vec<Action>) {
        let codec = self.codec();
        for fam in [Family::Ipv4, Family::Ipv6] {
            let ps: Vec<Prefix> = gone.iter().copied().filter(|p| p.family() == fam).collect();
            for u in withdrawals(fam, &ps, codec) {
                self.send_update(u, out);
            }
        }
        for p in gone {
            self.advertised.remove(p);
        }
    }

    fn send_update(&mut self, u: Update, out: &mut Vec<Action>) {
        self.status.updates_sent += 1;
        self.send(Message::Update(u), out);
    }

    /// Brings the Adj-RIB-Out to the desired set: withdrawals first, so a
    /// prefix leaving us is gone before anything new appears.
    fn sync_routes(&mut self, now: Instant, out: &mut Vec<Action>) {
        let o = self.origination();
        let target: BTreeSet<Prefix> = self
            .desired
            .iter()
            .copied()
            .filter(|p| self.sendable(p, &o))
            .collect();
        self.status.unsendable = self.desired.len() - target.len();
        let gone = self.diff_withdraw(&target);
        let new: Vec<Prefix> = target.difference(&self.advertised).copied().collect();
        let before = out.len();
        self.send_withdrawals(&gone, out);
        for fam in [Family::Ipv4, Family::Ipv6] {
            let ps: Vec<Prefix> = new.iter().copied().filter(|p| p.family() == fam).collect();
            if let Some(nh) = o.next_hop(fam) {
                for u in announcements(fam, &ps, nh, &o) {
                    self.send_update(u, out);
                }
            }
        }
        self.advertised.extend(new);
        if out.len() > before {
            // §8.2.2: sending an UPDATE restarts the KeepaliveTimer.
            self.restart_keepalive(now);
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
