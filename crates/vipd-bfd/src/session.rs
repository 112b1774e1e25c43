//! The sans-IO BFD session (RFC 5880 asynchronous mode): state machine,
//! timers, Poll/Final sequence. No sockets, no clock: the shell passes
//! `now` and executes the returned [`Action`]s.
//!
//! Time is [`tokio::time::Instant`] so tests can run on paused or simulated
//! time; randomness (transmit jitter, §6.8.7) comes from a seeded xorshift
//! inside the session, so a seed replays exactly.

use crate::packet::{ControlPacket, Diag, State};
use std::time::Duration;
use tokio::time::Instant;

/// §6.8.3: "When bfd.SessionState is not Up, the system MUST set
/// bfd.DesiredMinTxInterval to a value of not less than one second".
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// How many AdminDown packets a graceful shutdown sends: the first at once,
/// the others one transmit interval apart, so that one lost datagram does
/// not turn a graceful stop into a detection timeout (diag 1) at the peer.
pub const ADMIN_DOWN_PACKETS: u8 = 3;

/// Largest interval the 32-bit µs fields can carry.
const MAX_INTERVAL_US: u64 = u32::MAX as u64;

/// Session timers, as configured (kube-vip's `bgp_peers` 7th field
/// `enable;rx;tx;mult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdConfig {
    /// `bfd.DesiredMinTxInterval` once Up: how often we would like to send.
    pub desired_min_tx: Duration,
    /// `bfd.RequiredMinRxInterval`: the fastest we accept the peer sending.
    pub required_min_rx: Duration,
    /// `bfd.DetectMult`: packets the peer may miss before it declares us
    /// down (its detection time is this × the negotiated interval).
    pub detect_mult: u8,
}

impl Default for BfdConfig {
    /// kube-vip's defaults: rx 300 ms, tx 300 ms, multiplier 3.
    fn default() -> Self {
        BfdConfig {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
        }
    }
}

/// A [`BfdConfig`] that cannot be put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Detect multiplier 0 (§6.8.6 makes the peer discard such packets).
    #[error("BFD detect multiplier must be at least 1")]
    ZeroDetectMult,
    /// DesiredMinTx 0 is reserved (§4.1).
    #[error("BFD desired min tx must be at least 1 µs")]
    ZeroTx,
    /// An interval does not fit the 32-bit µs field.
    #[error("BFD interval {0:?} exceeds the 32-bit microsecond field")]
    TooLong(Duration),
}

impl BfdConfig {
    /// Checks the values can be advertised. `required_min_rx` 0 is allowed
    /// (it asks the peer not to send, §6.8.7), though rarely useful.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.detect_mult == 0 {
            return Err(ConfigError::ZeroDetectMult);
        }
        if self.desired_min_tx.is_zero() {
            return Err(ConfigError::ZeroTx);
        }
        for d in [self.desired_min_tx, self.required_min_rx] {
            if d.as_micros() > u128::from(MAX_INTERVAL_US) {
                return Err(ConfigError::TooLong(d));
            }
        }
        Ok(())
    }
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn dur(us: u64) -> Duration {
    Duration::from_micros(us)
}

/// What the shell feeds the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A decoded Control packet selected for this session (by Your
    /// Discriminator, or by source address when that is 0).
    Packet(ControlPacket),
    /// [`Session::next_deadline`] has passed (spurious calls are harmless).
    Timer,
    /// Our side stops: go AdminDown with diag 7 and send
    /// [`ADMIN_DOWN_PACKETS`] AdminDown packets (§6.8.16).
    Shutdown,
    /// New timer configuration (a Poll Sequence if Up, §6.8.3). Invalid
    /// values are ignored.
    Configure(BfdConfig),
}

/// What the shell must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the peer.
    Send(ControlPacket),
    /// `bfd.SessionState` changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// `bfd.LocalDiag` after the change (why we left Up, if we did).
        diag: Diag,
    },
}

/// A snapshot of the session, for status pages and for the BGP speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// `bfd.SessionState`.
    pub state: State,
    /// `bfd.LocalDiag`.
    pub local_diag: Diag,
    /// `bfd.RemoteSessionState`.
    pub remote_state: State,
    /// The diagnostic in the peer's last packet (7 when it shut down
    /// gracefully).
    pub remote_diag: Diag,
    /// `bfd.LocalDiscr`.
    pub local_disc: u32,
    /// `bfd.RemoteDiscr` (0 until known, and again after a detection time
    /// without packets).
    pub remote_disc: u32,
    /// Negotiated transmit interval before jitter.
    pub tx_interval: Duration,
    /// Current detection time (§6.8.4).
    pub detection_time: Duration,
    /// State changes so far: a watcher that sees the same state with a
    /// higher count missed a flap.
    pub transitions: u64,
}

/// One BFD session, sans IO (RFC 5880 §6.8).
#[derive(Debug, Clone)]
pub struct Session {
    cfg: BfdConfig,
    state: State,
    remote_state: State,
    local_disc: u32,
    remote_disc: u32,
    local_diag: Diag,
    remote_diag: Diag,
    /// `bfd.DesiredMinTxInterval` / `bfd.RequiredMinRxInterval`: the values
    /// we advertise (µs).
    desired_tx: u32,
    required_rx: u32,
    /// The values actually in force for our transmit interval and our
    /// detection time. They differ from the advertised ones only during a
    /// Poll Sequence (§6.8.3: an increased tx, or a reduced rx, takes effect
    /// only once the peer has acknowledged it with a Final).
    tx_in_use: u32,
    rx_in_use: u32,
    /// `bfd.RemoteMinRxInterval`, initialised to 1 µs (§6.8.1).
    remote_min_rx: u32,
    remote_desired_tx: u32,
    remote_detect_mult: u8,
    /// `bfd.RemoteDemandMode`.
    remote_demand: bool,
    /// A Poll Sequence is in progress (P set on every packet until a Final).
    polling: bool,
    /// Timers changed again during a Poll: start another once it ends.
    poll_again: bool,
    next_tx: Option<Instant>,
    last_tx: Option<Instant>,
    /// The interval `next_tx` was drawn from; a change reschedules.
    scheduled_interval: u64,
    detect_deadline: Option<Instant>,
    admin_down_left: u8,
    transitions: u64,
    rng: u64,
}

impl Session {
    /// A new session in state Down that sends its first packet at `now`.
    /// `local_disc` must be non-zero and unique on this system (§6.8.1);
    /// `seed` drives the transmit jitter. An invalid `cfg` is rejected.
    pub fn new(
        cfg: BfdConfig,
        local_disc: u32,
        seed: u64,
        now: Instant,
    ) -> Result<Session, ConfigError> {
        cfg.validate()?;
        let slow = us(cfg.desired_min_tx.max(SLOW_TX));
        Ok(Session {
            cfg,
            state: State::Down,
            remote_state: State::Down,
            local_disc: local_disc.max(1),
            remote_disc: 0,
            local_diag: Diag::None,
            remote_diag: Diag::None,
            desired_tx: slow,
            required_rx: us(cfg.required_min_rx),
            tx_in_use: slow,
            rx_in_use: us(cfg.required_min_rx),
            remote_min_rx: 1,
            remote_desired_tx: 0,
            remote_detect_mult: 0,
            remote_demand: false,
            polling: false,
            poll_again: false,
            next_tx: Some(now),
            last_tx: None,
            scheduled_interval: 0,
            detect_deadline: None,
            admin_down_left: 0,
            transitions: 0,
            // xorshift64 must not start at 0.
            rng: (seed ^ 0x9e37_79b9_7f4a_7c15) | 1,
        })
    }

    /// The session's state.
    pub fn state(&self) -> State {
        self.state
    }

    /// `bfd.LocalDiscr`.
    pub fn local_disc(&self) -> u32 {
        self.local_disc
    }

    /// A status snapshot.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            local_diag: self.local_diag,
            remote_state: self.remote_state,
            remote_diag: self.remote_diag,
            local_disc: self.local_disc,
            remote_disc: self.remote_disc,
            tx_interval: dur(self.tx_interval()),
            detection_time: dur(self.detection_time()),
            transitions: self.transitions,
        }
    }

    /// When [`Input::Timer`] is next due (next transmission or detection
    /// timeout); `None` once a shutdown has sent all its packets, or while
    /// nothing is scheduled at all.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.next_tx, self.detect_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True once a [`Input::Shutdown`] has sent every AdminDown packet.
    pub fn shutdown_complete(&self) -> bool {
        self.state == State::AdminDown && self.admin_down_left == 0 && self.next_tx.is_none()
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Packet(p) => self.on_packet(now, p, &mut out),
            Input::Timer => self.on_timer(now, &mut out),
            Input::Shutdown => self.on_shutdown(now, &mut out),
            Input::Configure(cfg) => {
                if cfg.validate().is_ok() && self.state != State::AdminDown {
                    self.cfg = cfg;
                    self.update_timers();
                    self.reschedule(now);
                }
            }
        }
        out
    }

    // ----- timers -----

    /// §6.8.7: "the interval MUST be no less than the larger of
    /// bfd.DesiredMinTxInterval and bfd.RemoteMinRxInterval".
    fn tx_interval(&self) -> u64 {
        u64::from(self.tx_in_use.max(self.remote_min_rx))
    }

    /// §6.8.4, asynchronous mode: the remote Detect Mult × the larger of our
    /// RequiredMinRx and the peer's last DesiredMinTx. Before the first
    /// packet (no remote multiplier yet) there is nothing to detect.
    fn detection_time(&self) -> u64 {
        u64::from(self.remote_detect_mult) * u64::from(self.rx_in_use.max(self.remote_desired_tx))
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64 (Marsaglia): deterministic per seed, no dependency.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// §6.8.7 jitter: the interval reduced by 0–25 %, i.e. 75–100 % of it;
    /// with a Detect Mult of 1, 75–90 %, so that one late packet cannot
    /// trip the peer's detection timer.
    fn jittered(&mut self, interval: u64) -> u64 {
        let lo = interval * 3 / 4;
        let hi = if self.cfg.detect_mult == 1 {
            interval * 9 / 10
        } else {
            interval
        };
        lo + self.next_random() % (hi - lo + 1)
    }

    /// §6.8.7: no periodic packets while the peer asks for none
    /// (RequiredMinRx 0), while remote Demand mode is active (both Up, D
    /// set, no Poll of ours running), or once a shutdown has finished.
    fn may_send_periodic(&self) -> bool {
        if self.state == State::AdminDown {
            return self.admin_down_left > 0 && self.remote_min_rx != 0;
        }
        let remote_demand_active =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        self.remote_min_rx != 0 && (self.polling || !remote_demand_active)
    }

    fn schedule_from(&mut self, base: Instant) {
        let interval = self.tx_interval();
        self.scheduled_interval = interval;
        let j = self.jittered(interval);
        self.next_tx = Some(base + dur(j));
    }

    /// After anything that may change the transmit interval or the right to
    /// send: redraw the next transmission from the last one if the interval
    /// changed (never earlier than now), start or stop periodic sending.
    fn reschedule(&mut self, now: Instant) {
        if !self.may_send_periodic() {
            self.next_tx = None;
            return;
        }
        match (self.next_tx, self.last_tx) {
            (Some(_), _) if self.scheduled_interval == self.tx_interval() => {}
            (_, Some(last)) => {
                self.schedule_from(last);
                if self.next_tx.is_some_and(|t| t < now) {
                    self.next_tx = Some(now);
                }
            }
            (_, None) => self.next_tx = Some(now),
        }
    }

    /// Brings the advertised intervals to what the state and configuration
    /// call for, following §6.8.3.
    fn update_timers(&mut self) {
        let want_tx = if self.state == State::Up {
            us(self.cfg.desired_min_tx)
        } else {
            us(self.cfg.desired_min_tx.max(SLOW_TX))
        };
        let want_rx = us(self.cfg.required_min_rx);
        if self.state != State::Up {
            // Outside Up the peer's detection does not depend on us: apply
            // at once and drop any Poll in progress.
            self.desired_tx = want_tx;
            self.required_rx = want_rx;
            self.tx_in_use = want_tx;
            self.rx_in_use = want_rx;
            self.polling = false;
            self.poll_again = false;
            return;
        }
        if want_tx == self.desired_tx && want_rx == self.required_rx {
            return;
        }
        if self.polling {
            // A Final would not tell which values it acknowledges: finish
            // this Poll first, then start another (§6.5).
            self.poll_again = true;
            return;
        }
        // §6.8.3: advertise at once with P set; a faster tx and a slower
        // rx are safe immediately, a slower tx and a faster rx wait for the
        // Final (the peer must first adapt its detection time / sending).
        self.desired_tx = want_tx;
        self.required_rx = want_rx;
        self.tx_in_use = self.tx_in_use.min(want_tx);
        self.rx_in_use = self.rx_in_use.max(want_rx);
        self.polling = true;
    }

    fn end_poll(&mut self) {
        self.polling = false;
        self.tx_in_use = self.desired_tx;
        self.rx_in_use = self.required_rx;
        if std::mem::take(&mut self.poll_again) {
            self.update_timers();
        }
    }

    // ----- packets -----

    fn packet(&self, poll: bool, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.cfg.detect_mult,
            my_disc: self.local_disc,
            your_disc: self.remote_disc,
            desired_min_tx: self.desired_tx,
            required_min_rx: self.required_rx,
            required_min_echo_rx: 0,
        }
    }

    fn set_state(&mut self, to: State, diag: Diag, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.state = to;
        self.local_diag = diag;
        self.transitions += 1;
        self.update_timers();
        out.push(Action::StateChanged { from, to, diag });
    }

    /// §6.8.6, from "Set bfd.RemoteDiscr to the value of My Discriminator"
    /// on (the packet-only checks were done by the decoder).
    fn on_packet(&mut self, now: Instant, p: ControlPacket, out: &mut Vec<Action>) {
        if p.your_disc != 0 && p.your_disc != self.local_disc {
            return; // Not ours: the demultiplexer should not have sent it.
        }
        self.remote_disc = p.my_disc;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_demand = p.demand;
        self.remote_min_rx = p.required_min_rx;
        self.remote_desired_tx = p.desired_min_tx;
        self.remote_detect_mult = p.detect_mult;
        if p.final_ && self.polling {
            self.end_poll();
        }
        if self.state == State::AdminDown {
            return;
        }
        // §6.8.6 state table.
        match (self.state, p.state) {
            (State::Init | State::Up, State::AdminDown) => {
                self.set_state(State::Down, Diag::NeighborSignaledDown, out);
            }
            (State::Down, State::Down) => self.set_state(State::Init, self.local_diag, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                // Up clears the diagnostic: it says why we last went down.
                self.set_state(State::Up, Diag::None, out);
            }
            (State::Up, State::Down) => {
                self.set_state(State::Down, Diag::NeighborSignaledDown, out);
            }
            _ => {}
        }
        // §6.8.7: a Poll is answered at once, P clear and F set, whatever
        // the timer, the state or Demand mode.
        if p.poll {
            out.push(Action::Send(self.packet(false, true)));
        }
        // "the packet ... has been received for purposes of the Detection
        // Time expiration rules" (§6.8.4).
        self.detect_deadline = Some(now + dur(self.detection_time()));
        self.reschedule(now);
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.detect_deadline.is_some_and(|d| d <= now) {
            self.detect_deadline = None;
            // §6.8.4: Init or Up → Down with diag 1. §6.8.1: RemoteDiscr is
            // zeroed after a detection time without packets, in any state;
            // we also forget the peer's timers and state (a fresh start).
            if matches!(self.state, State::Init | State::Up) {
                self.set_state(State::Down, Diag::ControlDetectionTimeExpired, out);
            }
            self.remote_disc = 0;
            self.remote_state = State::Down;
            self.remote_min_rx = 1;
            self.remote_desired_tx = 0;
            self.remote_detect_mult = 0;
            self.remote_demand = false;
            self.reschedule(now);
        }
        if self.next_tx.is_some_and(|t| t <= now) {
            out.push(Action::Send(self.packet(self.polling, false)));
            self.last_tx = Some(now);
            if self.state == State::AdminDown {
                self.admin_down_left = self.admin_down_left.saturating_sub(1);
            }
            if self.may_send_periodic() {
                self.schedule_from(now);
            } else {
                self.next_tx = None;
            }
        }
    }

    /// §6.8.16: AdminDown with diag 7. The packets advertise the slow
    /// DesiredMinTx (§6.8.3, not Up), but the burst goes out at the interval
    /// in force before the stop, not at 1 s: the peer's detection time was
    /// computed from the fast rate, and the point is that an AdminDown
    /// arrives before it fires. Three packets, so the deviation from the
    /// slow rate is bounded. The first is sent now.
    fn on_shutdown(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state == State::AdminDown {
            return;
        }
        let from = self.state;
        self.state = State::AdminDown;
        self.local_diag = Diag::AdminDown;
        self.transitions += 1;
        self.polling = false;
        self.poll_again = false;
        self.detect_deadline = None;
        self.desired_tx = us(self.cfg.desired_min_tx.max(SLOW_TX));
        out.push(Action::StateChanged {
            from,
            to: State::AdminDown,
            diag: Diag::AdminDown,
        });
        out.push(Action::Send(self.packet(false, false)));
        self.last_tx = Some(now);
        self.admin_down_left = ADMIN_DOWN_PACKETS.saturating_sub(1);
        if self.may_send_periodic() {
            self.schedule_from(now);
        } else {
            self.admin_down_left = 0;
            self.next_tx = None;
        }
    }
}
