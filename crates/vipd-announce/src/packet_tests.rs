//! Golden-byte and cross-parser tests for the frame builders.
//!
//! The golden arrays were written by hand from RFC 826 / RFC 4861 layouts,
//! field by field; the NA checksum was computed independently (one's
//! complement sum over pseudo-header + message) and is re-verified below
//! with `etherparse`.

use super::*;
use etherparse::{ArpOperation, EtherType, Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};

const OUR_MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa]);
const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x64);

#[rustfmt::skip]
const GOLDEN_GARP_REQUEST: [u8; 42] = [
    // Ethernet: dst broadcast, src ours, type ARP
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa,
    0x08, 0x06,
    // ARP: htype 1, ptype IPv4, hlen 6, plen 4, op 1 (request)
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01,
    // sender hw, sender ip = VIP
    0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa, 192, 0, 2, 100,
    // target hw zero (RFC 5227 §2.3), target ip = VIP
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 100,
];

#[rustfmt::skip]
const GOLDEN_GARP_REPLY: [u8; 42] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa,
    0x08, 0x06,
    // op 2 (reply)
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
    0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa, 192, 0, 2, 100,
    // target hw = our MAC (RFC 5944 §4.6)
    0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa, 192, 0, 2, 100,
];

#[rustfmt::skip]
const GOLDEN_NA: [u8; 86] = [
    // Ethernet: dst 33:33:00:00:00:01, src ours, type IPv6
    0x33, 0x33, 0x00, 0x00, 0x00, 0x01,
    0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa,
    0x86, 0xdd,
    // IPv6: version 6, payload 32, next header 58, hop limit 255
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 58, 255,
    // source 2001:db8::64
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
    // destination ff02::1
    0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
    // ICMPv6: type 136, code 0, checksum 0x99bb, flags O=1 S=0 R=0, reserved
    136, 0, 0x99, 0xbb, 0x20, 0, 0, 0,
    // target 2001:db8::64
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
    // option 2 (TLLA), length 1 (8 octets), our MAC
    2, 1, 0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa,
];

#[test]
fn garp_request_matches_golden_bytes() {
    assert_eq!(garp_request(OUR_MAC, VIP4), GOLDEN_GARP_REQUEST);
}

#[test]
fn garp_reply_matches_golden_bytes() {
    assert_eq!(garp_reply(OUR_MAC, VIP4), GOLDEN_GARP_REPLY);
}

#[test]
fn unsolicited_na_matches_golden_bytes() {
    assert_eq!(unsolicited_na(OUR_MAC, VIP6, VIP6), GOLDEN_NA);
}

fn etherparse_arp(frame: &[u8]) -> (etherparse::Ethernet2Header, etherparse::ArpEthIpv4Packet) {
    let p = SlicedPacket::from_ethernet(frame).expect("etherparse accepts the frame");
    let eth = p
        .link
        .expect("ethernet header")
        .to_header()
        .expect("ethernet II");
    let Some(NetSlice::Arp(arp)) = p.net else {
        panic!("not ARP: {:?}", p.net);
    };
    let arp = arp.to_packet().try_eth_ipv4().expect("Ethernet/IPv4 ARP");
    (eth.ethernet2().expect("ethernet II"), arp)
}

#[test]
fn garp_request_parses_back_with_etherparse() {
    let (eth, arp) = etherparse_arp(&garp_request(OUR_MAC, VIP4));
    assert_eq!(eth.destination, [0xff; 6]);
    assert_eq!(eth.source, OUR_MAC.0);
    assert_eq!(eth.ether_type, EtherType::ARP);
    assert_eq!(arp.operation, ArpOperation::REQUEST);
    assert_eq!(arp.sender_mac, OUR_MAC.0);
    assert_eq!(arp.sender_ipv4_addr(), VIP4);
    assert_eq!(arp.target_mac, [0; 6]);
    assert_eq!(arp.target_ipv4_addr(), VIP4);
}

#[test]
fn garp_reply_parses_back_with_etherparse() {
    let (eth, arp) = etherparse_arp(&garp_reply(OUR_MAC, VIP4));
    assert_eq!(eth.destination, [0xff; 6]);
    assert_eq!(eth.source, OUR_MAC.0);
    assert_eq!(arp.operation, ArpOperation::REPLY);
    assert_eq!(arp.sender_mac, OUR_MAC.0);
    assert_eq!(arp.sender_ipv4_addr(), VIP4);
    assert_eq!(arp.target_mac, OUR_MAC.0);
    assert_eq!(arp.target_ipv4_addr(), VIP4);
}

#[test]
fn unsolicited_na_parses_back_with_etherparse_and_valid_checksum() {
    // A source other than the target, to prove both are placed correctly.
    let src = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    let frame = unsolicited_na(OUR_MAC, src, VIP6);
    let p = SlicedPacket::from_ethernet(&frame).expect("etherparse accepts the NA");
    let eth = p
        .link
        .expect("link")
        .to_header()
        .expect("eth")
        .ethernet2()
        .expect("eth2");
    assert_eq!(eth.destination, [0x33, 0x33, 0, 0, 0, 1]);
    assert_eq!(eth.source, OUR_MAC.0);
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        panic!("not IPv6");
    };
    let h = ip.header();
    assert_eq!(h.hop_limit(), 255);
    assert_eq!(h.source_addr(), src);
    assert_eq!(h.destination_addr(), ALL_NODES);
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
        panic!("not ICMPv6: {:?}", p.transport);
    };
    assert!(icmp.is_checksum_valid(src.octets(), ALL_NODES.octets()));
    let Icmpv6Type::NeighborAdvertisement(na) = icmp.icmp_type() else {
        panic!("not an NA: {:?}", icmp.icmp_type());
    };
    assert!(na.r#override);
    assert!(!na.solicited);
    assert!(!na.router);
    // Payload after the 8-byte header: target, then the TLLA option.
    let payload = icmp.payload();
    assert_eq!(payload[..16], VIP6.octets());
    assert_eq!(payload[16..], [2, 1, 0x02, 0x00, 0x5e, 0x00, 0x00, 0xaa]);
}

#[test]
fn own_parsers_read_back_every_field() {
    let req = parse_arp(&garp_request(OUR_MAC, VIP4)).expect("request parses");
    assert_eq!(req.op, ArpOp::Request);
    assert_eq!(
        (req.sender_mac, req.sender_ip, req.target_ip),
        (OUR_MAC, VIP4, VIP4)
    );
    let rep = parse_arp(&garp_reply(OUR_MAC, VIP4)).expect("reply parses");
    assert_eq!(
        (rep.op, rep.target_mac, rep.eth_src),
        (ArpOp::Reply, OUR_MAC, OUR_MAC)
    );

    let na = parse_na(&unsolicited_na(OUR_MAC, VIP6, VIP6)).expect("NA parses");
    assert_eq!(na.target, VIP6);
    assert_eq!(na.tlla, Some(OUR_MAC));
    assert_eq!(na.claimed_mac(), OUR_MAC);
    assert!(na.override_ && !na.solicited && !na.router);
}

#[test]
fn parsers_accept_ethernet_padding() {
    let mut padded = garp_reply(OUR_MAC, VIP4).to_vec();
    padded.resize(60, 0);
    assert!(parse_arp(&padded).is_some());
    let mut padded = unsolicited_na(OUR_MAC, VIP6, VIP6).to_vec();
    padded.extend_from_slice(&[0; 10]);
    assert!(parse_na(&padded).is_some());
}

#[test]
fn na_with_bad_checksum_or_forwarded_is_rejected() {
    let mut f = unsolicited_na(OUR_MAC, VIP6, VIP6);
    f[ETH_HDR_LEN + IPV6_HDR_LEN + 2] ^= 0x01;
    assert_eq!(parse_na(&f), None, "corrupted checksum must not be trusted");
    let mut f = unsolicited_na(OUR_MAC, VIP6, VIP6);
    f[ETH_HDR_LEN + 7] = 64; // hop limit != 255: came through a router
    assert_eq!(parse_na(&f), None);
}

#[test]
fn na_without_tlla_claims_ethernet_source() {
    // Build an NA without the option: shorten payload to 24 and re-checksum.
    let mut f = unsolicited_na(OUR_MAC, VIP6, VIP6).to_vec();
    f.truncate(ETH_HDR_LEN + IPV6_HDR_LEN + 24);
    f[ETH_HDR_LEN + 5] = 24;
    let icmp_at = ETH_HDR_LEN + IPV6_HDR_LEN;
    f[icmp_at + 2] = 0;
    f[icmp_at + 3] = 0;
    let sum = icmpv6_checksum(VIP6, ALL_NODES, &f[icmp_at..]);
    f[icmp_at + 2..icmp_at + 4].copy_from_slice(&sum.to_be_bytes());
    let na = parse_na(&f).expect("NA without options is valid");
    assert_eq!(na.tlla, None);
    assert_eq!(na.claimed_mac(), OUR_MAC);
}

#[test]
fn non_matching_frames_are_not_parsed() {
    assert_eq!(parse_arp(&GOLDEN_NA), None);
    assert_eq!(parse_na(&GOLDEN_GARP_REQUEST), None);
    assert_eq!(parse_arp(&GOLDEN_GARP_REQUEST[..30]), None, "truncated");
}

#[test]
fn mac_text_round_trips_and_rejects_garbage() {
    let m: MacAddr = "02:00:5e:00:00:aa".parse().expect("valid mac");
    assert_eq!(m, OUR_MAC);
    assert_eq!(m.to_string(), "02:00:5e:00:00:aa");
    for bad in [
        "",
        "02:00:5e:00:00",
        "02:00:5e:00:00:aa:bb",
        "02:00:5e:00:00:zz",
        "002:0:5e:0:0:aa",
    ] {
        assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} accepted");
    }
}

#[test]
fn send_kind_labels_match_metric_values() {
    assert_eq!(SendKind::GarpRequest.label(), "garp_request");
    assert_eq!(SendKind::GarpReply.label(), "garp_reply");
    assert_eq!(SendKind::UnsolicitedNa.label(), "unsolicited_na");
}
