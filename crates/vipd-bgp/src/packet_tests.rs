//! Wire tests: byte-exact encodings checked against the RFCs' layouts,
//! round trips, and the NOTIFICATION each malformed input earns.

use super::*;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap_or(Ipv4Addr::UNSPECIFIED))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED))
}

fn wide() -> Codec {
    Codec {
        four_octet_as: true,
    }
}

fn roundtrip(m: &Message, codec: Codec) -> Message {
    let bytes = m.encode(codec).expect("encodes");
    Message::decode(&bytes, codec).expect("decodes")
}

#[test]
fn keepalive_is_exactly_the_19_byte_header() {
    let b = Message::Keepalive
        .encode(Codec::default())
        .expect("encodes");
    let mut want = vec![0xff; 16];
    want.extend_from_slice(&[0, 19, 4]);
    assert_eq!(b, want);
}

#[test]
fn open_with_capabilities_matches_rfc_layout_and_round_trips() {
    let open = Open {
        version: 4,
        my_as: AS_TRANS,
        hold_time: 30,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![
            Capability::family(Family::Ipv4),
            Capability::family(Family::Ipv6),
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_000),
        ],
    };
    let b = Message::Open(open.clone())
        .encode(Codec::default())
        .expect("encodes");
    // Header 19 + fixed 10 + one parameter (2) holding 4 capabilities:
    // MP 6 + MP 6 + RR 2 + AS4 6 = 20.
    assert_eq!(b.len(), 19 + 10 + 2 + 20);
    assert_eq!(b[18], TYPE_OPEN);
    assert_eq!(&b[19..29], &[4, 0x5b, 0xa0, 0, 30, 192, 0, 2, 1, 22]);
    assert_eq!(&b[29..31], &[2, 20]);
    assert_eq!(&b[31..37], &[1, 4, 0, 1, 0, 1]);
    assert_eq!(
        Message::decode(&b, Codec::default()),
        Ok(Message::Open(open.clone()))
    );
    assert_eq!(open.asn(), 4_200_000_000);
    assert_eq!(open.families(), vec![Family::Ipv4, Family::Ipv6]);
}

#[test]
fn open_without_multiprotocol_capability_means_ipv4_only() {
    let open = Open {
        version: 4,
        my_as: 65002,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities: vec![Capability::RouteRefresh],
    };
    assert_eq!(open.families(), vec![Family::Ipv4]);
    assert_eq!(open.asn(), 65002);
}

#[test]
fn open_errors_earn_the_rfc_4271_subcodes() {
    let good = Message::Open(Open {
        version: 4,
        my_as: 65002,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities: vec![Capability::FourOctetAs(65002)],
    })
    .encode(Codec::default())
    .expect("encodes");
    // Version 3.
    let mut b = good.clone();
    b[19] = 3;
    let e = Message::decode(&b, Codec::default()).expect_err("version");
    assert_eq!(
        e.notification(),
        Notification {
            code: 2,
            subcode: 1,
            data: vec![0, 4]
        }
    );
    // An authentication parameter (type 1).
    let mut b = good.clone();
    b[29] = 1;
    let e = Message::decode(&b, Codec::default()).expect_err("param type");
    assert_eq!(e.notification(), Notification::new(2, 4));
    // Optional parameter length larger than the message.
    let mut b = good.clone();
    b[28] += 1;
    let e = Message::decode(&b, Codec::default()).expect_err("param length");
    assert_eq!(e.notification().code, 2);
    // A 4-octet AS capability of 3 bytes.
    let mut b = good;
    b[32] = 3;
    assert!(Message::decode(&b, Codec::default()).is_err());
}

#[test]
fn header_errors_earn_header_notifications() {
    let mut b = Message::Keepalive
        .encode(Codec::default())
        .expect("encodes");
    b[3] = 0;
    assert_eq!(frame_len(&b), Err(DecodeError::BadMarker));
    assert_eq!(
        DecodeError::BadMarker.notification(),
        Notification::new(1, 1)
    );
    let mut b = Message::Keepalive
        .encode(Codec::default())
        .expect("encodes");
    b[17] = 18;
    assert_eq!(frame_len(&b), Err(DecodeError::BadLength(18)));
    let mut b = Message::Keepalive
        .encode(Codec::default())
        .expect("encodes");
    b[18] = 9;
    let e = Message::decode(&b, Codec::default()).expect_err("type");
    assert_eq!(
        e.notification(),
        Notification {
            code: 1,
            subcode: 3,
            data: vec![9]
        }
    );
    // A KEEPALIVE with a body is a length error (§6.1).
    let mut b = Message::Keepalive
        .encode(Codec::default())
        .expect("encodes");
    b.push(0);
    b[17] = 20;
    assert_eq!(
        Message::decode(&b, Codec::default()),
        Err(DecodeError::BadLength(20))
    );
    // 4097 bytes is too long even before it arrives.
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&[0x10, 0x01, 2]);
    assert_eq!(frame_len(&b), Err(DecodeError::BadLength(4097)));
}

#[test]
fn frame_len_waits_for_the_whole_message() {
    let b = Message::Keepalive
        .encode(Codec::default())
        .expect("encodes");
    for cut in 0..b.len() {
        assert_eq!(frame_len(&b[..cut]), Ok(None), "cut at {cut}");
    }
    assert_eq!(frame_len(&b), Ok(Some(19)));
    let mut two = b.clone();
    two.extend_from_slice(&b);
    assert_eq!(frame_len(&two), Ok(Some(19)));
}

#[test]
fn ipv4_update_layout_is_rfc_4271_section_4_3() {
    let u = Update {
        withdrawn: vec![Prefix::host(v4("203.0.113.9"))],
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            Attribute::AsPath(vec![Segment::Sequence(vec![65001])]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 11)),
        ],
        nlri: vec![Prefix::host(v4("203.0.113.10"))],
    };
    let b = Message::Update(u.clone()).encode(wide()).expect("encodes");
    let body = &b[19..];
    assert_eq!(&body[..2], &[0, 5]);
    assert_eq!(&body[2..7], &[32, 203, 0, 113, 9]);
    // ORIGIN 4 + AS_PATH (3 + 2 + 4) 9 + NEXT_HOP 7 = 20.
    assert_eq!(&body[7..9], &[0, 20]);
    assert_eq!(&body[9..13], &[0x40, 1, 1, 0]);
    assert_eq!(&body[13..22], &[0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9]);
    assert_eq!(&body[22..29], &[0x40, 3, 4, 192, 0, 2, 11]);
    assert_eq!(&body[29..], &[32, 203, 0, 113, 10]);
    assert_eq!(
        roundtrip(&Message::Update(u.clone()), wide()),
        Message::Update(u)
    );
}

#[test]
fn two_octet_as_path_is_read_with_the_session_codec() {
    let u = Update {
        attributes: vec![Attribute::AsPath(vec![Segment::Sequence(vec![
            65001, 65002,
        ])])],
        ..Update::default()
    };
    let narrow = Message::Update(u.clone())
        .encode(Codec::default())
        .expect("encodes");
    assert_eq!(
        Message::decode(&narrow, Codec::default()),
        Ok(Message::Update(u.clone()))
    );
    // The same bytes read as 4-octet are malformed: treat-as-withdraw, no
    // error.
    let Ok(Message::Update(d)) = Message::decode(&narrow, wide()) else {
        panic!("should decode");
    };
    assert!(d.is_malformed());
}

#[test]
fn ipv6_mp_reach_and_unreach_round_trip_with_global_and_link_local_next_hops() {
    let u = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            Attribute::AsPath(vec![]),
            Attribute::MpReach {
                family: Family::Ipv6,
                next_hops: vec![v6("2001:db8::11"), v6("fe80::1")],
                nlri: vec![
                    Prefix::host(v6("2001:db8:99::10")),
                    Prefix::new(v6("2001:db8:1::"), 48).expect("ok"),
                ],
            },
        ],
        ..Update::default()
    };
    assert_eq!(
        roundtrip(&Message::Update(u.clone()), wide()),
        Message::Update(u.clone())
    );
    assert_eq!(u.announced().count(), 2);
    let w = Update {
        attributes: vec![Attribute::MpUnreach {
            family: Family::Ipv6,
            withdrawn: vec![Prefix::host(v6("2001:db8:99::10"))],
        }],
        ..Update::default()
    };
    assert_eq!(
        roundtrip(&Message::Update(w.clone()), wide()),
        Message::Update(w.clone())
    );
    assert_eq!(w.withdrawn_all().count(), 1);
}

#[test]
fn end_of_rib_markers_are_recognised() {
    for f in [Family::Ipv4, Family::Ipv6] {
        let m = roundtrip(&Message::Update(Update::end_of_rib(f)), wide());
        let Message::Update(u) = m else {
            panic!("update")
        };
        assert_eq!(u.end_of_rib_family(), Some(f));
    }
    let b = Message::Update(Update::end_of_rib(Family::Ipv4))
        .encode(wide())
        .expect("encodes");
    assert_eq!(b.len(), 23);
}

#[test]
fn prefix_host_bits_are_masked_so_equal_prefixes_compare_equal() {
    // 203.0.113.0/24 sent as "24, 203, 0, 113" decodes to the same value
    // as Prefix::new with stray host bits.
    assert_eq!(
        Prefix::new(v4("203.0.113.77"), 24),
        Prefix::new(v4("203.0.113.0"), 24)
    );
    assert_eq!(Prefix::new(v4("203.0.113.1"), 33), None);
    assert_eq!(Prefix::new(v6("2001:db8::1"), 129), None);
    assert_eq!(
        Prefix::new(v4("203.0.113.1"), 0).map(|p| p.addr()),
        Some(v4("0.0.0.0"))
    );
}

#[test]
fn update_framing_errors_reset_but_attribute_errors_treat_as_withdraw() {
    let u = Update {
        attributes: vec![
            Attribute::Origin(Origin::Igp),
            Attribute::AsPath(vec![Segment::Sequence(vec![65001])]),
            Attribute::NextHop(Ipv4Addr::new(192, 0, 2, 11)),
        ],
        nlri: vec![Prefix::host(v4("203.0.113.10"))],
        ..Update::default()
    };
    let good = Message::Update(u).encode(wide()).expect("encodes");
    // ORIGIN value 7: malformed attribute, message kept as withdraw.
    let mut b = good.clone();
    b[19 + 4 + 3] = 7;
    let Ok(Message::Update(d)) = Message::decode(&b, wide()) else {
        panic!("decodes");
    };
    assert!(d.is_malformed());
    // Attribute length running past the attribute block: reset (3/1).
    let mut b = good.clone();
    b[19 + 4 + 2] = 200;
    let e = Message::decode(&b, wide()).expect_err("framing");
    assert_eq!(e.notification(), Notification::new(3, 1));
    // An NLRI prefix of length 33: invalid network field (3/10).
    let mut b = good;
    let n = b.len();
    b[n - 5] = 33;
    let e = Message::decode(&b, wide()).expect_err("nlri");
    assert_eq!(e.notification(), Notification::new(3, 10));
}

#[test]
fn repeated_mp_reach_resets_the_session() {
    let reach = Attribute::MpReach {
        family: Family::Ipv6,
        next_hops: vec![v6("2001:db8::11")],
        nlri: vec![Prefix::host(v6("2001:db8:99::10"))],
    };
    let u = Update {
        attributes: vec![reach.clone(), reach],
        ..Update::default()
    };
    let b = Message::Update(u).encode(wide()).expect("encodes");
    assert_eq!(
        Message::decode(&b, wide()),
        Err(DecodeError::MalformedMpAttribute)
    );
}

#[test]
fn admin_shutdown_message_round_trips_and_is_truncated_on_a_char_boundary() {
    let n = Notification::admin_shutdown("vipd stopping (SIGTERM)");
    assert_eq!((n.code, n.subcode), (6, 2));
    assert_eq!(n.data[0], 23);
    let Message::Notification(d) = roundtrip(&Message::Notification(n), wide()) else {
        panic!("notification");
    };
    assert_eq!(
        d.shutdown_message().as_deref(),
        Some("vipd stopping (SIGTERM)")
    );
    // 200 two-byte characters = 400 bytes: cut to ≤ 255 bytes, valid UTF-8.
    let long = "é".repeat(200);
    let n = Notification::admin_shutdown(&long);
    let msg = n.shutdown_message().expect("valid");
    assert_eq!(msg.len(), 254);
    assert!(n.to_string().contains("administrative shutdown"));
}

#[test]
fn route_refresh_round_trips_and_wrong_length_is_an_error() {
    let m = Message::RouteRefresh { afi: 2, safi: 1 };
    assert_eq!(roundtrip(&m, wide()), m);
    let mut b = m.encode(wide()).expect("encodes");
    b.push(0);
    b[17] += 1;
    assert!(Message::decode(&b, wide()).is_err());
}

#[test]
fn graceful_restart_capability_round_trips() {
    let c = Capability::GracefulRestart {
        restarting: true,
        restart_time: 120,
        families: vec![(1, 1, 0), (2, 1, 0x80)],
    };
    let mut b = Vec::new();
    c.encode(&mut b);
    assert_eq!(&b[..4], &[64, 10, 0x80, 120]);
    assert_eq!(Capability::decode(b[0], &b[2..]), Ok(c));
}

#[test]
fn unknown_attributes_and_capabilities_are_kept_opaque() {
    let u = Update {
        attributes: vec![Attribute::Other {
            flags: 0xc0,
            code: 8,
            value: vec![0xfd, 0xe9, 0, 1],
        }],
        ..Update::default()
    };
    assert_eq!(
        roundtrip(&Message::Update(u.clone()), wide()),
        Message::Update(u)
    );
    let c = Capability::Other {
        code: 73,
        value: b"router".to_vec(),
    };
    let mut b = Vec::new();
    c.encode(&mut b);
    assert_eq!(Capability::decode(b[0], &b[2..]), Ok(c));
}

#[test]
fn an_opaque_attribute_sent_with_a_needless_extended_length_round_trips() {
    // Found by tests/wire_fuzz.rs: flags 0xfd (extended length) on a
    // 0-byte value; the extended bit belongs to the encoding, not the
    // attribute, so the decoded value must re-encode to itself.
    let mut b = vec![0xff; 16];
    b.extend_from_slice(&[0, 0, TYPE_UPDATE, 0, 0, 0, 4, 0xfd, 232, 0, 0]);
    let n = u16::try_from(b.len()).unwrap_or(0).to_be_bytes();
    b[16..18].copy_from_slice(&n);
    let m = Message::decode(&b, wide()).expect("decodes");
    let Message::Update(u) = &m else {
        panic!("update")
    };
    assert_eq!(
        u.attributes,
        vec![Attribute::Other {
            flags: 0xed,
            code: 232,
            value: vec![]
        }]
    );
    assert_eq!(roundtrip(&m, wide()), m);
}
