//! Seeded random-bytes and mutation fuzzing of the decoder and the core's
//! datagram path (proptest is not in the workspace): ≥ 100,000 cases, and a
//! panic anywhere fails the test. `VIPD_FUZZ_CASES` overrides the count.

#![allow(clippy::unwrap_used)]

mod common;

use common::{voters, KEY};
use std::time::Duration;
use vipd_quorum::{AuthKey, Body, Config, DropReason, Input, Message, Node, Timings, Verdict};
use vipd_sim::{env_u64, Rng};

#[test]
fn decoder_and_core_never_panic_on_random_or_mutated_datagrams() {
    let key = AuthKey::new(&KEY).unwrap();
    let cases = env_u64("VIPD_FUZZ_CASES", 100_000);
    let mut rng = Rng::new(0xf022_0012);
    let cfg = Config::new(
        voters(3, false),
        "n1",
        Timings::default(),
        key.clone(),
        1,
        1,
    )
    .unwrap();
    let mut node = Node::new(cfg, Duration::ZERO);
    let bodies = [
        Body::PreVote,
        Body::Vote,
        Body::Release,
        Body::Heartbeat { priority: 1 },
        Body::Ack {
            verdict: Verdict::Granted,
            reply_to: 3,
        },
    ];
    let mut outcomes = [0u64; 8];
    for i in 0..cases {
        let base = Message {
            from: ["n0", "n2", "n1", "x"][rng.index(4)].into(),
            set: voters(3, false).hash(),
            seq: rng.next(),
            term: rng.range(0, 5),
            body: bodies[rng.index(bodies.len())],
        };
        let mut b = base.encode(&key);
        match rng.index(6) {
            // Random bytes of random length (0..=1,300).
            0 => {
                b = (0..rng.range(0, 1_300)).map(|_| rng.next() as u8).collect();
            }
            // Flip bits.
            1 => {
                for _ in 0..rng.range(1, 4) {
                    let k = rng.index(b.len());
                    b[k] ^= 1 << rng.range(0, 7);
                }
            }
            // Truncate or extend.
            2 => {
                let n = rng.index(b.len() + 1);
                b.truncate(n);
            }
            3 => b.extend((0..rng.range(1, 1_200)).map(|_| rng.next() as u8)),
            // Mutate then re-sign: exercises the parser behind the MAC.
            4 => {
                let mut data = b[..b.len() - 32].to_vec();
                let k = rng.index(data.len());
                data[k] = rng.next() as u8;
                if rng.chance(0.3) {
                    data.truncate(rng.index(data.len() + 1));
                }
                b = sign(&data);
            }
            // Intact (valid messages reach the state machine).
            _ => {}
        }
        let r = Message::decode(&b, &key);
        outcomes[match r {
            Ok(_) => 7,
            Err(e) => e.index(),
        }] += 1;
        let now = Duration::from_micros(i * 50);
        let _ = node.handle(now, Input::Datagram(b));
    }
    println!(
        "fuzz: {cases} cases; {}",
        DropReason::ALL
            .iter()
            .map(|r| format!("{}={}", r.label(), outcomes[r.index()]))
            .chain([format!("ok={}", outcomes[7])])
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(outcomes[7] > 0 && outcomes[DropReason::Malformed.index()] > 0);
    assert!(outcomes[DropReason::BadMac.index()] > 0 && outcomes[DropReason::Short.index()] > 0);
}

fn sign(data: &[u8]) -> Vec<u8> {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &KEY);
    let mut v = data.to_vec();
    v.extend_from_slice(ring::hmac::sign(&k, data).as_ref());
    v
}
