//! Seeded random-bytes and mutation fuzzing of the BGP decoder and of the
//! session's receive path: ≥ 100,000 cases (`VIPD_FUZZ_CASES` overrides),
//! a panic anywhere fails the test, and every decoded message must encode
//! back to a message that decodes to the same value.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use tokio::time::{Duration, Instant};
use vipd_bgp::packet::{
    frame_len, Attribute, Capability, Codec, Family, Message, Notification, Open, Origin, Prefix,
    Segment, Update,
};
use vipd_bgp::{Config, Input, Session, State};
use vipd_sim::{env_u64, Rng};

fn seeds() -> Vec<Message> {
    let v6: IpAddr = "2001:db8:99::10".parse().unwrap();
    vec![
        Message::Keepalive,
        Message::Open(Open {
            version: 4,
            my_as: 65000,
            hold_time: 90,
            bgp_id: Ipv4Addr::new(192, 0, 2, 1),
            capabilities: vec![
                Capability::family(Family::Ipv4),
                Capability::family(Family::Ipv6),
                Capability::RouteRefresh,
                Capability::FourOctetAs(65000),
                Capability::GracefulRestart {
                    restarting: false,
                    restart_time: 120,
                    families: vec![(1, 1, 0)],
                },
            ],
        }),
        Message::Update(Update {
            withdrawn: vec![Prefix::host("203.0.113.9".parse().unwrap())],
            attributes: vec![
                Attribute::Origin(Origin::Igp),
                Attribute::AsPath(vec![Segment::Sequence(vec![65000, 65010])]),
                Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 1)),
                Attribute::Other {
                    flags: 0xc0,
                    code: 8,
                    value: vec![0xfd, 0xe8, 0, 1],
                },
            ],
            nlri: vec![Prefix::new("198.51.100.0".parse().unwrap(), 24).unwrap()],
        }),
        Message::Update(Update {
            attributes: vec![
                Attribute::Origin(Origin::Igp),
                Attribute::AsPath(vec![]),
                Attribute::MpReach {
                    family: Family::Ipv6,
                    next_hops: vec!["2001:db8::1".parse().unwrap(), "fe80::1".parse().unwrap()],
                    nlri: vec![Prefix::host(v6)],
                },
                Attribute::MpUnreach {
                    family: Family::Ipv6,
                    withdrawn: vec![Prefix::new(v6, 64).unwrap()],
                },
            ],
            ..Update::default()
        }),
        Message::Notification(Notification::admin_shutdown("maintenance")),
        Message::RouteRefresh { afi: 1, safi: 1 },
    ]
}

fn established(now: Instant) -> Session {
    let mut s = Session::new(Config::new(65001, 65000, Ipv4Addr::new(192, 0, 2, 11)));
    s.handle(
        now,
        Input::Routes(&BTreeSet::from(["203.0.113.10".parse().unwrap()])),
    );
    s.handle(now, Input::Start);
    s.handle(
        now,
        Input::Connected {
            local: "192.0.2.11".parse().unwrap(),
        },
    );
    let wide = Codec {
        four_octet_as: true,
    };
    let Message::Open(open) = &seeds()[1] else {
        unreachable!()
    };
    s.handle(
        now,
        Input::Received(
            &Message::Open(open.clone())
                .encode(Codec::default())
                .unwrap(),
        ),
    );
    s.handle(
        now,
        Input::Received(&Message::Keepalive.encode(wide).unwrap()),
    );
    assert_eq!(s.state(), State::Established);
    s
}

#[test]
fn decoder_and_session_never_panic_on_random_or_mutated_messages() {
    let cases = env_u64("VIPD_FUZZ_CASES", 100_000);
    let mut rng = Rng::new(0xb6_0014);
    let seeds = seeds();
    let t0 = Instant::now();
    let mut session = established(t0);
    let (mut ok, mut err, mut resets) = (0u64, 0u64, 0u64);
    for i in 0..cases {
        let codec = Codec {
            four_octet_as: rng.chance(0.5),
        };
        let mut b = seeds[rng.index(seeds.len())].encode(codec).unwrap();
        match rng.index(6) {
            0 => b = (0..rng.range(0, 4_200)).map(|_| rng.next() as u8).collect(),
            1 => {
                for _ in 0..rng.range(1, 5) {
                    let k = rng.index(b.len());
                    b[k] ^= 1 << rng.range(0, 7);
                }
            }
            2 => {
                // Mutate past the header, keeping its length field right,
                // so the body parsers see the damage.
                for _ in 0..rng.range(1, 4) {
                    if b.len() > 19 {
                        let k = 19 + rng.index(b.len() - 19);
                        b[k] = rng.next() as u8;
                    }
                }
            }
            3 => {
                let n = rng.index(b.len() + 1);
                b.truncate(n);
                let l = u16::try_from(b.len()).unwrap_or(0).to_be_bytes();
                if b.len() >= 18 {
                    b[16..18].copy_from_slice(&l);
                }
            }
            4 => {
                b.extend((0..rng.range(1, 300)).map(|_| rng.next() as u8));
                let l = u16::try_from(b.len()).unwrap_or(0).to_be_bytes();
                b[16..18].copy_from_slice(&l);
            }
            _ => {}
        }
        match frame_len(&b) {
            Ok(Some(n)) => match Message::decode(&b[..n], codec) {
                Ok(m) => {
                    ok += 1;
                    // Whatever decodes re-encodes to the same meaning
                    // (malformed attributes are not re-sent, so skip those).
                    let malformed = matches!(&m, Message::Update(u) if u.is_malformed());
                    if !malformed {
                        if let Ok(again) = m.encode(codec) {
                            assert_eq!(Message::decode(&again, codec), Ok(m), "case {i}");
                        }
                    }
                }
                Err(e) => {
                    err += 1;
                    let _ = e.notification();
                }
            },
            Ok(None) => {}
            Err(_) => err += 1,
        }
        let now = t0 + Duration::from_micros(i * 100);
        let _ = session.handle(now, Input::Received(&b));
        if session.state() != State::Established {
            resets += 1;
            session = established(now);
        }
    }
    println!("fuzz: {cases} cases; decoded {ok}, refused {err}, session resets {resets}");
    assert!(
        ok > cases / 10 && err > cases / 10,
        "fuzz mix is off: ok {ok}, err {err}"
    );
}
