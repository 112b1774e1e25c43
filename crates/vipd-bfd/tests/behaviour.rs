//! Behaviour of the sans-IO session core, one RFC rule per test, on
//! injected time (no runtime, no sleeps: `now` is an offset from `t0`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tokio::time::Instant;
use vipd_bfd::{Action, BfdConfig, ConfigError, ControlPacket, Diag, Input, Session, State};

const OURS: u32 = 0x1111;
const THEIRS: u32 = 0xbeef;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A packet from the peer: rx 300 ms, mult 3, tx 300 ms when Up and 1 s
/// otherwise (§6.8.3), your-discriminator ours unless Down.
fn from_peer(state: State) -> ControlPacket {
    ControlPacket {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_disc: THEIRS,
        your_disc: if matches!(state, State::Down | State::AdminDown) {
            0
        } else {
            OURS
        },
        desired_min_tx: if state == State::Up {
            300_000
        } else {
            1_000_000
        },
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    }
}

struct Harness {
    s: Session,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new(cfg: BfdConfig) -> Harness {
        let t0 = Instant::now();
        Harness {
            s: Session::new(cfg, OURS, 7, t0).unwrap(),
            t0,
            now: t0,
        }
    }

    fn at(&mut self, offset: Duration) -> &mut Self {
        self.now = self.t0 + offset;
        self
    }

    fn input(&mut self, i: Input) -> Vec<Action> {
        self.s.handle(self.now, i)
    }

    fn rx(&mut self, p: ControlPacket) -> Vec<Action> {
        self.input(Input::Packet(p))
    }

    /// Jumps to the next deadline (if before `limit`) and fires it.
    fn step(&mut self, limit: Instant) -> Option<Vec<Action>> {
        let d = self.s.next_deadline()?;
        if d > limit {
            return None;
        }
        self.now = d;
        Some(self.input(Input::Timer))
    }

    /// Runs timers until `until`, collecting (time, packet) of every send.
    fn run_until(&mut self, until: Duration) -> Vec<(Duration, ControlPacket)> {
        let limit = self.t0 + until;
        let mut sent = Vec::new();
        while let Some(actions) = self.step(limit) {
            for a in actions {
                if let Action::Send(p) = a {
                    sent.push((self.now - self.t0, p));
                }
            }
        }
        self.now = limit;
        sent
    }

    /// Drives the session to Up at `t0` (peer Down, then Up), answering
    /// nothing else.
    fn up(cfg: BfdConfig) -> Harness {
        let mut h = Harness::new(cfg);
        h.input(Input::Timer);
        h.rx(from_peer(State::Down));
        h.rx(from_peer(State::Up));
        assert_eq!(h.s.state(), State::Up);
        h
    }
}

fn sends(actions: &[Action]) -> Vec<ControlPacket> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(p) => Some(*p),
            _ => None,
        })
        .collect()
}

fn changes(actions: &[Action]) -> Vec<(State, State, Diag)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged { from, to, diag } => Some((*from, *to, *diag)),
            _ => None,
        })
        .collect()
}

fn gaps(sent: &[(Duration, ControlPacket)]) -> Vec<Duration> {
    sent.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

#[test]
fn first_packet_goes_out_at_once_down_with_no_your_discriminator() {
    let mut h = Harness::new(BfdConfig::default());
    assert_eq!(h.s.next_deadline(), Some(h.t0));
    let p = sends(&h.input(Input::Timer));
    assert_eq!(p.len(), 1);
    let p = p[0];
    assert_eq!((p.state, p.your_disc, p.my_disc), (State::Down, 0, OURS));
    assert_eq!((p.detect_mult, p.required_min_rx), (3, 300_000));
    assert!(!p.poll && !p.final_ && !p.demand && !p.cpi);
    assert_eq!(p.required_min_echo_rx, 0, "no echo function");
}

#[test]
fn comes_up_through_init_when_peer_says_down() {
    let mut h = Harness::new(BfdConfig::default());
    h.input(Input::Timer);
    let a = h.rx(from_peer(State::Down));
    assert_eq!(changes(&a), vec![(State::Down, State::Init, Diag::None)]);
    assert_eq!(h.s.status().remote_disc, THEIRS);
    // Our next packet names the peer's discriminator.
    let sent = h.run_until(ms(1_100));
    assert_eq!(sent[0].1.state, State::Init);
    assert_eq!(sent[0].1.your_disc, THEIRS);
    let a = h.rx(from_peer(State::Up));
    assert_eq!(changes(&a), vec![(State::Init, State::Up, Diag::None)]);
}

#[test]
fn comes_up_directly_when_peer_says_init() {
    let mut h = Harness::new(BfdConfig::default());
    h.input(Input::Timer);
    let a = h.rx(from_peer(State::Init));
    assert_eq!(changes(&a), vec![(State::Down, State::Up, Diag::None)]);
}

#[test]
fn up_is_not_entered_from_down_on_peer_up() {
    // §6.8.6: in Down, only Down (→ Init) and Init (→ Up) move us.
    let mut h = Harness::new(BfdConfig::default());
    h.input(Input::Timer);
    assert!(changes(&h.rx(from_peer(State::Up))).is_empty());
    assert_eq!(h.s.state(), State::Down);
}

#[test]
fn detection_timeout_goes_down_with_diag_1() {
    let mut h = Harness::up(BfdConfig::default());
    // 3 × max(300 ms ours, 300 ms theirs).
    assert_eq!(h.s.status().detection_time, ms(900));
    let before: Vec<_> = (0..)
        .map_while(|_| h.step(h.t0 + ms(899)))
        .flat_map(|a| changes(&a))
        .collect();
    assert!(
        before.is_empty(),
        "nothing changes before 900 ms: {before:?}"
    );
    h.at(ms(900));
    let a = h.input(Input::Timer);
    assert_eq!(
        changes(&a),
        vec![(State::Up, State::Down, Diag::ControlDetectionTimeExpired)]
    );
    let st = h.s.status();
    assert_eq!(st.remote_disc, 0, "§6.8.1: RemoteDiscr zeroed");
    let sent = h.run_until(ms(2_100));
    let p = sent[0].1;
    assert_eq!(
        (p.state, p.diag, p.your_disc),
        (State::Down, Diag::ControlDetectionTimeExpired, 0)
    );
    assert_eq!(p.desired_min_tx, 1_000_000, "slow again once Down");
}

#[test]
fn detection_time_is_remote_mult_times_slower_of_our_rx_and_their_tx() {
    let mut h = Harness::up(BfdConfig::default());
    h.rx(ControlPacket {
        detect_mult: 5,
        desired_min_tx: 400_000,
        ..from_peer(State::Up)
    });
    assert_eq!(h.s.status().detection_time, ms(2_000));
    h.rx(ControlPacket {
        detect_mult: 2,
        desired_min_tx: 100_000,
        ..from_peer(State::Up)
    });
    assert_eq!(h.s.status().detection_time, ms(600));
}

#[test]
fn every_received_packet_restarts_detection() {
    let mut h = Harness::up(BfdConfig::default());
    for k in 1..=10 {
        h.run_until(ms(800 * k));
        h.rx(from_peer(State::Up));
    }
    assert_eq!(h.s.state(), State::Up, "800 ms gaps never reach 900 ms");
}

#[test]
fn peer_admin_down_goes_down_with_diag_3_not_timeout() {
    let mut h = Harness::up(BfdConfig::default());
    let a = h.rx(ControlPacket {
        diag: Diag::AdminDown,
        ..from_peer(State::AdminDown)
    });
    assert_eq!(
        changes(&a),
        vec![(State::Up, State::Down, Diag::NeighborSignaledDown)]
    );
    let st = h.s.status();
    assert_eq!(
        (st.remote_state, st.remote_diag),
        (State::AdminDown, Diag::AdminDown)
    );
    // Staying Down while the peer stays AdminDown: no Init, no further change.
    let a = h.rx(from_peer(State::AdminDown));
    assert!(changes(&a).is_empty());
    assert_eq!(h.s.state(), State::Down);
}

#[test]
fn peer_down_while_up_goes_down_with_diag_3() {
    let mut h = Harness::up(BfdConfig::default());
    let a = h.rx(from_peer(State::Down));
    assert_eq!(
        changes(&a),
        vec![(State::Up, State::Down, Diag::NeighborSignaledDown)]
    );
}

#[test]
fn up_again_clears_the_diagnostic() {
    let mut h = Harness::up(BfdConfig::default());
    h.rx(from_peer(State::Down));
    h.rx(from_peer(State::Down));
    assert_eq!(
        h.s.status().local_diag,
        Diag::NeighborSignaledDown,
        "kept in Init"
    );
    h.rx(from_peer(State::Up));
    assert_eq!(h.s.status().local_diag, Diag::None);
}

#[test]
fn poll_answered_with_final() {
    let mut h = Harness::up(BfdConfig::default());
    h.at(ms(10));
    let a = h.rx(ControlPacket {
        poll: true,
        ..from_peer(State::Up)
    });
    let p = sends(&a);
    assert_eq!(p.len(), 1, "answered at once, not at the next tick");
    assert!(p[0].final_ && !p[0].poll);
    assert_eq!(p[0].state, State::Up);
    // Periodic packets never carry F.
    assert!(h.run_until(ms(2_000)).iter().all(|(_, p)| !p.final_));
    // Answered in Down too (§6.8.7: "without respect to the session state").
    let mut d = Harness::new(BfdConfig::default());
    let a = d.rx(ControlPacket {
        poll: true,
        ..from_peer(State::Down)
    });
    assert!(sends(&a).iter().any(|p| p.final_));
}

#[test]
fn tx_slow_until_up() {
    let mut h = Harness::new(BfdConfig::default());
    let sent = h.run_until(ms(10_000));
    assert!(
        sent.len() >= 10 && sent.len() <= 14,
        "{} packets in 10 s",
        sent.len()
    );
    assert!(sent.iter().all(|(_, p)| p.desired_min_tx == 1_000_000));
    for g in gaps(&sent) {
        assert!(g >= ms(750) && g <= ms(1_000), "gap {g:?} while Down");
    }
    // Up: the advertised and the actual interval drop to 300 ms; the change
    // is announced with a Poll until the peer's Final (§6.8.3).
    h.rx(from_peer(State::Down));
    h.rx(from_peer(State::Up));
    let mut sent = Vec::new();
    for k in 1..=10u64 {
        sent.extend(h.run_until(ms(10_000 + k * 200)));
        h.rx(from_peer(State::Up));
    }
    assert!(sent.len() >= 6, "{} packets in 2 s", sent.len());
    assert!(sent.iter().all(|(_, p)| p.desired_min_tx == 300_000));
    assert!(sent.iter().all(|(_, p)| p.poll), "Poll until Final");
    for g in gaps(&sent) {
        assert!(g >= ms(225) && g <= ms(300), "gap {g:?} once Up");
    }
    h.rx(ControlPacket {
        final_: true,
        ..from_peer(State::Up)
    });
    let sent = h.run_until(ms(12_800));
    assert!(!sent.is_empty() && sent.iter().all(|(_, p)| !p.poll));
}

#[test]
fn slow_timers_return_when_the_session_goes_down() {
    let mut h = Harness::up(BfdConfig::default());
    h.rx(from_peer(State::Down));
    let sent = h.run_until(ms(5_000));
    assert!(sent.iter().all(|(_, p)| p.desired_min_tx == 1_000_000));
    assert!(sent.iter().all(|(_, p)| !p.poll), "no Poll outside Up");
    for g in gaps(&sent) {
        assert!(g >= ms(750), "gap {g:?}");
    }
}

#[test]
fn jitter_stays_within_75_to_100_percent() {
    for (mult, hi) in [(3u8, 300u64), (1, 270)] {
        let cfg = BfdConfig {
            detect_mult: mult,
            ..BfdConfig::default()
        };
        let mut h = Harness::up(cfg);
        let mut sent = Vec::new();
        for k in 1..=50u64 {
            sent.extend(h.run_until(ms(k * 200)));
            h.rx(from_peer(State::Up)); // keep it Up
        }
        let g = gaps(&sent[1..]);
        assert!(g.len() > 2_000 / 300 * 4, "{} gaps", g.len());
        let min = *g.iter().min().unwrap();
        let max = *g.iter().max().unwrap();
        assert!(min >= ms(225), "mult {mult}: min gap {min:?}");
        assert!(max <= ms(hi), "mult {mult}: max gap {max:?}");
        // Actually spread over the range, not a constant.
        assert!(
            min < ms(240) && max > ms(hi - 15),
            "mult {mult}: {min:?}..{max:?}"
        );
    }
}

#[test]
fn jitter_is_deterministic_per_seed() {
    let run = |seed| {
        let t0 = Instant::now();
        let mut s = Session::new(BfdConfig::default(), OURS, seed, t0).unwrap();
        let mut at = Vec::new();
        for _ in 0..20 {
            let d = s.next_deadline().unwrap();
            s.handle(d, Input::Timer);
            at.push(d - t0);
        }
        at
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn tx_interval_is_the_larger_of_our_tx_and_their_rx() {
    let mut h = Harness::up(BfdConfig::default());
    h.rx(ControlPacket {
        required_min_rx: 500_000,
        ..from_peer(State::Up)
    });
    let mut sent = Vec::new();
    for k in 1..=10u64 {
        sent.extend(h.run_until(ms(k * 800)));
        h.rx(ControlPacket {
            required_min_rx: 500_000,
            ..from_peer(State::Up)
        });
    }
    for g in gaps(&sent[1..]) {
        assert!(g >= ms(375) && g <= ms(500), "gap {g:?}");
    }
    assert_eq!(h.s.status().tx_interval, ms(500));
}

#[test]
fn remote_required_min_rx_zero_stops_sending() {
    let mut h = Harness::up(BfdConfig::default());
    h.at(ms(1));
    h.rx(ControlPacket {
        required_min_rx: 0,
        ..from_peer(State::Up)
    });
    let sent = h.run_until(ms(800));
    assert!(sent.is_empty(), "sent {sent:?}");
    // A Poll is still answered.
    let a = h.rx(ControlPacket {
        required_min_rx: 0,
        poll: true,
        ..from_peer(State::Up)
    });
    assert_eq!(sends(&a).len(), 1);
    // Sending resumes when the peer asks again.
    h.rx(from_peer(State::Up));
    assert!(!h.run_until(ms(1_200)).is_empty());
}

#[test]
fn remote_demand_mode_stops_periodic_tx_once_both_up() {
    let mut h = Harness::up(BfdConfig::default());
    // End our Poll first: while polling we keep sending (§6.8.7).
    let demand = ControlPacket {
        demand: true,
        final_: true,
        ..from_peer(State::Up)
    };
    h.rx(demand);
    assert!(h.run_until(ms(800)).is_empty());
    let a = h.rx(ControlPacket {
        poll: true,
        ..demand
    });
    assert!(sends(&a)[0].final_, "Final even in Demand mode");
}

#[test]
fn slower_tx_waits_for_final() {
    // §6.8.3: an increased DesiredMinTx is advertised at once with P, but
    // the actual interval changes only after the Final.
    let mut h = Harness::up(BfdConfig::default());
    h.rx(ControlPacket {
        final_: true,
        ..from_peer(State::Up)
    });
    h.run_until(ms(100));
    h.input(Input::Configure(BfdConfig {
        desired_min_tx: ms(600),
        ..BfdConfig::default()
    }));
    let mut sent = Vec::new();
    for k in 1..=4u64 {
        sent.extend(h.run_until(ms(100 + k * 400)));
        h.rx(from_peer(State::Up));
    }
    assert!(sent
        .iter()
        .all(|(_, p)| p.poll && p.desired_min_tx == 600_000));
    assert!(
        gaps(&sent).iter().all(|g| *g <= ms(300)),
        "{:?}",
        gaps(&sent)
    );
    h.rx(ControlPacket {
        final_: true,
        ..from_peer(State::Up)
    });
    let mut sent = Vec::new();
    for k in 1..=6u64 {
        sent.extend(h.run_until(ms(1_700 + k * 400)));
        h.rx(from_peer(State::Up));
    }
    assert!(sent.iter().all(|(_, p)| !p.poll));
    for g in gaps(&sent) {
        assert!(g >= ms(450) && g <= ms(600), "gap {g:?}");
    }
}

#[test]
fn reduced_rx_shortens_detection_only_after_final() {
    let mut h = Harness::up(BfdConfig::default());
    h.rx(ControlPacket {
        final_: true,
        desired_min_tx: 50_000,
        ..from_peer(State::Up)
    });
    assert_eq!(h.s.status().detection_time, ms(900));
    h.input(Input::Configure(BfdConfig {
        required_min_rx: ms(100),
        ..BfdConfig::default()
    }));
    let sent = h.run_until(ms(300));
    assert!(sent
        .iter()
        .all(|(_, p)| p.poll && p.required_min_rx == 100_000));
    assert_eq!(h.s.status().detection_time, ms(900), "old rx until Final");
    h.rx(ControlPacket {
        final_: true,
        desired_min_tx: 50_000,
        ..from_peer(State::Up)
    });
    assert_eq!(h.s.status().detection_time, ms(300));
}

#[test]
fn change_during_poll_starts_a_second_poll_after_final() {
    let mut h = Harness::up(BfdConfig::default()); // Poll 1: 1 s → 300 ms.
    h.input(Input::Configure(BfdConfig {
        desired_min_tx: ms(200),
        ..BfdConfig::default()
    }));
    let sent = h.run_until(ms(250));
    assert!(
        sent.iter().all(|(_, p)| p.desired_min_tx == 300_000),
        "held during Poll 1"
    );
    h.rx(ControlPacket {
        final_: true,
        ..from_peer(State::Up)
    });
    let sent = h.run_until(ms(600));
    assert!(!sent.is_empty());
    assert!(sent
        .iter()
        .all(|(_, p)| p.poll && p.desired_min_tx == 200_000));
}

#[test]
fn shutdown_sends_admin_down_with_diag_7_then_stops() {
    let mut h = Harness::up(BfdConfig::default());
    h.rx(ControlPacket {
        final_: true,
        ..from_peer(State::Up)
    });
    h.at(ms(50));
    let a = h.input(Input::Shutdown);
    assert_eq!(
        changes(&a),
        vec![(State::Up, State::AdminDown, Diag::AdminDown)]
    );
    let first = sends(&a);
    assert_eq!(first.len(), 1, "first AdminDown at once");
    assert_eq!(
        (first[0].state, first[0].diag),
        (State::AdminDown, Diag::AdminDown)
    );
    assert_eq!(
        first[0].desired_min_tx, 1_000_000,
        "slow DesiredMinTx advertised"
    );
    let rest = h.run_until(ms(5_000));
    assert_eq!(rest.len(), 2, "{rest:?}");
    assert!(rest
        .iter()
        .all(|(_, p)| p.state == State::AdminDown && p.diag == Diag::AdminDown));
    // At the fast interval in force, so the burst ends well within the
    // peer's 900 ms detection time.
    assert!(rest[1].0 <= ms(50 + 600), "{:?}", rest[1].0);
    assert!(h.s.shutdown_complete());
    assert_eq!(h.s.next_deadline(), None);
    // Packets are ignored in AdminDown (§6.8.6), Polls included.
    let a = h.rx(ControlPacket {
        poll: true,
        ..from_peer(State::Up)
    });
    assert!(a.is_empty());
    assert_eq!(h.s.state(), State::AdminDown);
}

#[test]
fn packet_for_another_discriminator_is_ignored() {
    let mut h = Harness::up(BfdConfig::default());
    let a = h.rx(ControlPacket {
        your_disc: OURS + 1,
        ..from_peer(State::Down)
    });
    assert!(a.is_empty());
    assert_eq!(h.s.state(), State::Up);
}

#[test]
fn invalid_configuration_is_refused() {
    let t0 = Instant::now();
    let bad = |cfg| Session::new(cfg, OURS, 1, t0).err();
    assert_eq!(
        bad(BfdConfig {
            detect_mult: 0,
            ..BfdConfig::default()
        }),
        Some(ConfigError::ZeroDetectMult)
    );
    assert_eq!(
        bad(BfdConfig {
            desired_min_tx: Duration::ZERO,
            ..BfdConfig::default()
        }),
        Some(ConfigError::ZeroTx)
    );
    assert!(matches!(
        bad(BfdConfig {
            required_min_rx: Duration::from_secs(5_000),
            ..BfdConfig::default()
        }),
        Some(ConfigError::TooLong(_))
    ));
    let d = BfdConfig::default();
    assert_eq!(
        (d.desired_min_tx, d.required_min_rx, d.detect_mult),
        (ms(300), ms(300), 3)
    );
}
