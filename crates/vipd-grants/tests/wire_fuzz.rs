//! Seeded random-bytes and mutation fuzzing of the grant decoder and the
//! core's datagram path, as `vipd-quorum`'s: ≥ 100,000 cases over every
//! message kind, sent to an assigner and to a node; a panic anywhere
//! fails the test. `VIPD_FUZZ_CASES` overrides the count.

#![allow(clippy::unwrap_used)]

mod common;

use common::{addresses, voters, KEY};
use std::sync::Arc;
use std::time::Duration;
use vipd_grants::wire::{Body, Claim, Message, Part, PART_BUDGET};
use vipd_grants::{digest_of, split, GrantTimings, Grants, Input, ServiceView};
use vipd_quorum::{AuthKey, Config, DropReason, Leadership, Timings};
use vipd_sim::{env_u64, Rng};

fn core(me: &str, holder: bool) -> Grants {
    let key = AuthKey::new(&KEY).unwrap();
    let t = Timings::default();
    let cfg = Config::new(voters(3, false), me, t, key, 1, 1).unwrap();
    let mut g = Grants::new(
        cfg,
        GrantTimings::new(Duration::from_secs(1), &t).unwrap(),
        1,
    );
    let _ = g.handle(
        Duration::ZERO,
        Input::Services(Arc::new(ServiceView {
            addresses: addresses(50),
            policies: Default::default(),
        })),
    );
    let lead = Leadership {
        term: 1,
        holder: Some(0),
        holding: holder.then_some(Duration::from_secs(3_600)),
        held_term: holder.then_some(1),
    };
    let _ = g.handle(Duration::ZERO, Input::Leadership(lead));
    g
}

#[test]
fn decoder_and_cores_never_panic_on_random_or_mutated_datagrams() {
    let key = AuthKey::new(&KEY).unwrap();
    let cases = env_u64("VIPD_FUZZ_CASES", 100_000);
    let mut rng = Rng::new(0xf022_0013);
    let mut assigner = core("n0", true);
    let mut node = core("n1", false);
    let set = addresses(300);
    let parts = split(&set, PART_BUDGET);
    let mut outcomes = [0u64; 8];
    for i in 0..cases {
        let part = Part {
            digest: digest_of(&set),
            count: set.len() as u32,
            part: rng.index(parts.len()) as u16,
            parts: parts.len() as u16,
            addrs: parts[rng.index(parts.len())].clone(),
        };
        let body = match rng.index(5) {
            0 => Body::Claim(Claim {
                epoch: rng.range(0, 3),
                draining: rng.chance(0.2),
                refv: rng.range(0, 4),
                floor: rng.range(0, 4),
                have: rng.range(0, 4),
                explicit: rng.chance(0.5).then(|| (set.len() as u32, digest_of(&set))),
                current: rng.chance(0.5).then(|| (set.len() as u32, digest_of(&set))),
            }),
            1 => Body::Held(part),
            2 => Body::Share {
                epoch: rng.range(0, 3),
                version: rng.range(0, 4),
                part,
            },
            3 => Body::Grant {
                epoch: rng.range(0, 3),
                reply_to: rng.range(0, 10),
                version: rng.range(0, 4),
            },
            _ => Body::Leave,
        };
        let base = Message {
            from: ["n0", "n2", "n1", "x"][rng.index(4)].into(),
            set: voters(3, false).hash(),
            seq: rng.next(),
            term: rng.range(0, 3),
            body,
        };
        let mut b = base.encode(&key);
        match rng.index(6) {
            0 => b = (0..rng.range(0, 1_300)).map(|_| rng.next() as u8).collect(),
            1 => {
                for _ in 0..rng.range(1, 4) {
                    let k = rng.index(b.len());
                    b[k] ^= 1 << rng.range(0, 7);
                }
            }
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
                b = vipd_quorum::wire::seal(data, &key);
            }
            _ => {}
        }
        let r = Message::decode(&b, &key);
        outcomes[match r {
            Ok(_) => 7,
            Err(e) => e.index(),
        }] += 1;
        let now = Duration::from_micros(i * 50);
        let _ = assigner.handle(now, Input::Datagram(b.clone()));
        let _ = node.handle(now, Input::Datagram(b));
    }
    println!(
        "grant fuzz: {cases} cases; {}",
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
