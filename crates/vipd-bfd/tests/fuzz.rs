//! Seeded random-bytes and mutation fuzzing of the decoder and the session
//! core (proptest is not in the workspace): ≥ 100,000 cases; a panic fails
//! the test, and every packet the core emits must satisfy the wire rules.
//! `VIPD_FUZZ_CASES` overrides the count.

#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tokio::time::Instant;
use vipd_bfd::{Action, BfdConfig, ControlPacket, DecodeError, Diag, Input, Session, State};
use vipd_sim::{env_u64, Rng};

const OURS: u32 = 0x0bfd_0001;

fn random_packet(rng: &mut Rng) -> ControlPacket {
    let state = rng.pick(&[State::AdminDown, State::Down, State::Init, State::Up]);
    ControlPacket {
        diag: Diag::from_code(rng.range(0, 31) as u8),
        state,
        poll: rng.chance(0.2),
        final_: rng.chance(0.2),
        cpi: rng.chance(0.1),
        demand: rng.chance(0.1),
        detect_mult: rng.range(1, 255) as u8,
        my_disc: rng.pick(&[1, 0xbeef, u32::MAX]),
        your_disc: rng.pick(&[OURS, OURS, 0, 7]),
        desired_min_tx: rng.pick(&[0, 1, 50_000, 300_000, 1_000_000, u32::MAX]),
        required_min_rx: rng.pick(&[0, 1, 50_000, 300_000, 1_000_000, u32::MAX]),
        required_min_echo_rx: rng.pick(&[0, 1_000]),
    }
}

#[test]
fn decoder_and_core_never_panic_and_emit_only_valid_packets() {
    let cases = env_u64("VIPD_FUZZ_CASES", 100_000);
    let mut rng = Rng::new(0xbfd_5880);
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = BfdConfig::default();
    let mut s = Session::new(cfg, OURS, 1, t0).unwrap();
    let mut outcomes = [0u64; DecodeError::LABELS.len() + 1];
    let mut states = [0u64; 4];
    for i in 0..cases {
        let mut b = random_packet(&mut rng).encode().to_vec();
        match rng.index(6) {
            0 => b = (0..rng.range(0, 64)).map(|_| rng.next() as u8).collect(),
            1 => {
                for _ in 0..rng.range(1, 3) {
                    let k = rng.index(b.len());
                    b[k] ^= 1 << rng.range(0, 7);
                }
            }
            2 => b.truncate(rng.index(b.len() + 1)),
            3 => b.extend((0..rng.range(1, 40)).map(|_| rng.next() as u8)),
            4 => b[3] = rng.next() as u8,
            _ => {}
        }
        let decoded = ControlPacket::decode(&b);
        outcomes[match &decoded {
            Ok(_) => DecodeError::LABELS.len(),
            Err(e) => e.index(),
        }] += 1;
        // Time moves by up to 1.5 s; sometimes the timer fires first.
        now += Duration::from_micros(rng.range(0, 1_500_000));
        let mut actions = Vec::new();
        if rng.chance(0.5) {
            if let Some(d) = s.next_deadline() {
                now = now.max(d);
            }
            actions.extend(s.handle(now, Input::Timer));
        }
        if let Ok(p) = decoded {
            actions.extend(s.handle(now, Input::Packet(p)));
        }
        if rng.chance(0.0005) {
            actions.extend(s.handle(now, Input::Shutdown));
        }
        if s.shutdown_complete() || (i % 20_000 == 0) {
            s = Session::new(cfg, OURS, i, now).unwrap();
        }
        for a in actions {
            if let Action::Send(p) = a {
                // Our packets pass every reception check (§6.8.6)...
                assert_eq!(ControlPacket::decode(&p.encode()), Ok(p), "case {i}");
                assert!(!(p.poll && p.final_), "case {i}: P and F together");
                // ...and §6.8.3: slow transmission outside Up.
                if p.state != State::Up {
                    assert!(p.desired_min_tx >= 1_000_000, "case {i}: {p:?}");
                }
            }
        }
        // The session is never left without a way forward unless the peer
        // asked for silence or a shutdown has finished.
        let st = s.status();
        states[match st.state {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }] += 1;
        if st.state != State::AdminDown && st.state != State::Down {
            assert!(
                s.next_deadline().is_some(),
                "case {i}: no deadline in {st:?}"
            );
        }
    }
    println!(
        "fuzz: {cases} cases; {} ok={}; states admin-down={} down={} init={} up={}",
        DecodeError::LABELS
            .iter()
            .zip(outcomes)
            .map(|(l, n)| format!("{l}={n}"))
            .collect::<Vec<_>>()
            .join(" "),
        outcomes[DecodeError::LABELS.len()],
        states[0],
        states[1],
        states[2],
        states[3]
    );
    // The mutations reach every decoder path and the core's states.
    if cases >= 100_000 {
        assert!(outcomes.iter().all(|n| *n > 0), "{outcomes:?}");
        assert!(states.iter().all(|n| *n > 0), "{states:?}");
    }
}
