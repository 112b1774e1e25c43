//! Building the UPDATEs that announce and withdraw our host routes, packed
//! into as few ≤ 4096-byte messages as fit (RFC 4271 §4.1, §4.3).
//!
//! The attributes are the minimum RFC 4271 §5 requires of an originated
//! route: ORIGIN IGP, AS_PATH (our AS on eBGP, empty on iBGP), NEXT_HOP for
//! IPv4 NLRI or MP_REACH_NLRI's next hop for IPv6 (RFC 4760 §3), and
//! LOCAL_PREF on iBGP (§5.1.5). Nothing a router would need to be told to
//! accept: no communities, no MED.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::packet::{
    Attribute, Codec, Family, Message, Origin, Prefix, Segment, Update, AS_TRANS, HEADER_LEN,
    MAX_MESSAGE_LEN,
};

/// LOCAL_PREF we send to iBGP peers: the common default, so a VIP competes
/// with nothing on preference and ECMP across nodes stays possible.
pub const LOCAL_PREF: u32 = 100;

/// Everything about the session that shapes an UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origination {
    /// Our AS number.
    pub local_as: u32,
    /// Peer in our AS (iBGP).
    pub internal: bool,
    /// Negotiated encoding.
    pub codec: Codec,
    /// Next hop for IPv4 routes, if any can be given.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes, if any can be given.
    pub next_hop_v6: Option<Ipv6Addr>,
}

impl Origination {
    /// The next hop of a family, `None` when routes of it cannot be sent.
    pub fn next_hop(&self, fam: Family) -> Option<IpAddr> {
        match fam {
            Family::Ipv4 => self.next_hop_v4.map(IpAddr::V4),
            Family::Ipv6 => self.next_hop_v6.map(IpAddr::V6),
        }
    }

    /// ORIGIN, AS_PATH (and AS4_PATH when a 4-octet AS rides a 2-octet
    /// session, RFC 6793 §4.2.2), LOCAL_PREF on iBGP.
    fn path_attributes(&self) -> Vec<Attribute> {
        let mut attrs = vec![Attribute::Origin(Origin::Igp)];
        if self.internal {
            // RFC 4271 §5.1.2: a route originated into iBGP has an empty
            // AS_PATH.
            attrs.push(Attribute::AsPath(Vec::new()));
            attrs.push(Attribute::LocalPref(LOCAL_PREF));
        } else if !self.codec.four_octet_as && self.local_as > u32::from(u16::MAX) {
            attrs.push(Attribute::AsPath(vec![Segment::Sequence(vec![u32::from(
                AS_TRANS,
            )])]));
            attrs.push(Attribute::As4Path(vec![Segment::Sequence(vec![
                self.local_as,
            ])]));
        } else {
            attrs.push(Attribute::AsPath(vec![Segment::Sequence(vec![
                self.local_as,
            ])]));
        }
        attrs
    }
}

/// Encoded size of an UPDATE (header included).
fn size(u: &Update, codec: Codec) -> usize {
    Message::Update(u.clone())
        .encode(codec)
        .map_or(usize::MAX, |b| b.len())
}

/// UPDATEs withdrawing `prefixes` (one family), packed.
pub fn withdrawals(fam: Family, prefixes: &[Prefix], codec: Codec) -> Vec<Update> {
    let empty = match fam {
        Family::Ipv4 => Update::default(),
        Family::Ipv6 => Update {
            attributes: vec![Attribute::MpUnreach {
                family: fam,
                withdrawn: Vec::new(),
            }],
            ..Update::default()
        },
    };
    // The MP_UNREACH attribute switches to a 2-octet length above 255
    // bytes: budget for the larger header throughout.
    let overhead = size(&empty, codec) + 1;
    pack(prefixes, overhead, |chunk| {
        let mut u = empty.clone();
        match fam {
            Family::Ipv4 => u.withdrawn = chunk.to_vec(),
            Family::Ipv6 => {
                u.attributes = vec![Attribute::MpUnreach {
                    family: fam,
                    withdrawn: chunk.to_vec(),
                }]
            }
        }
        u
    })
}

/// UPDATEs announcing `prefixes` (one family) with our attributes and
/// `next_hop`, packed.
pub fn announcements(
    fam: Family,
    prefixes: &[Prefix],
    next_hop: IpAddr,
    o: &Origination,
) -> Vec<Update> {
    let build = |chunk: &[Prefix]| {
        let mut attributes = o.path_attributes();
        match fam {
            Family::Ipv4 => {
                if let IpAddr::V4(nh) = next_hop {
                    attributes.push(Attribute::NextHop(nh));
                    return Update {
                        withdrawn: Vec::new(),
                        attributes,
                        nlri: chunk.to_vec(),
                    };
                }
                // An IPv6 next hop for IPv4 NLRI (RFC 8950) is only legal
                // in MP_REACH_NLRI; the session never asks for it, as
                // `Origination::next_hop` only gives an IPv4 one.
                attributes.push(Attribute::MpReach {
                    family: fam,
                    next_hops: vec![next_hop],
                    nlri: chunk.to_vec(),
                });
            }
            Family::Ipv6 => attributes.push(Attribute::MpReach {
                family: fam,
                next_hops: vec![next_hop],
                nlri: chunk.to_vec(),
            }),
        }
        Update {
            withdrawn: Vec::new(),
            attributes,
            nlri: Vec::new(),
        }
    };
    let overhead = size(&build(&[]), o.codec) + 1;
    pack(prefixes, overhead, build)
}

/// Splits `prefixes` into runs that fit beside `overhead` bytes in one
/// message and builds one UPDATE per run.
fn pack(prefixes: &[Prefix], overhead: usize, build: impl Fn(&[Prefix]) -> Update) -> Vec<Update> {
    let budget = MAX_MESSAGE_LEN.saturating_sub(overhead.max(HEADER_LEN));
    let mut out = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, p) in prefixes.iter().enumerate() {
        if used + p.wire_len() > budget && i > start {
            out.push(build(&prefixes[start..i]));
            start = i;
            used = 0;
        }
        used += p.wire_len();
    }
    if start < prefixes.len() {
        out.push(build(&prefixes[start..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: u32, fam: Family) -> Vec<Prefix> {
        (0..n)
            .map(|i| match fam {
                Family::Ipv4 => Prefix::host(IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i))),
                Family::Ipv6 => Prefix::host(IpAddr::V6(Ipv6Addr::from(
                    0x2001_0db8_u128 << 96 | u128::from(i),
                ))),
            })
            .collect()
    }

    fn origination(internal: bool, four: bool, local_as: u32) -> Origination {
        Origination {
            local_as,
            internal,
            codec: Codec {
                four_octet_as: four,
            },
            next_hop_v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            next_hop_v6: Some("2001:db8::1".parse().unwrap_or(Ipv6Addr::UNSPECIFIED)),
        }
    }

    fn roundtrip_all(us: &[Update], codec: Codec) -> (Vec<Prefix>, Vec<Prefix>) {
        let mut ann = Vec::new();
        let mut wd = Vec::new();
        for u in us {
            let bytes = Message::Update(u.clone()).encode(codec).expect("fits");
            assert!(bytes.len() <= MAX_MESSAGE_LEN);
            let Ok(Message::Update(d)) = Message::decode(&bytes, codec) else {
                panic!("not an update")
            };
            assert_eq!(&d, u);
            ann.extend(d.announced().copied());
            wd.extend(d.withdrawn_all().copied());
        }
        (ann, wd)
    }

    #[test]
    fn thousands_of_host_routes_pack_into_full_messages_and_round_trip() {
        for fam in [Family::Ipv4, Family::Ipv6] {
            let ps = hosts(3000, fam);
            let o = origination(false, true, 65001);
            let nh = o.next_hop(fam).expect("next hop");
            let ann = announcements(fam, &ps, nh, &o);
            let (got, _) = roundtrip_all(&ann, o.codec);
            assert_eq!(got, ps, "{fam}");
            // Packed: every message but the last is within one prefix of full.
            for u in &ann[..ann.len() - 1] {
                let n = size(u, o.codec);
                assert!(
                    n + 17 > MAX_MESSAGE_LEN,
                    "{fam}: message of {n} bytes not full"
                );
            }
            let wd = withdrawals(fam, &ps, o.codec);
            let (_, got) = roundtrip_all(&wd, o.codec);
            assert_eq!(got, ps, "{fam}");
        }
    }

    #[test]
    fn ebgp_path_is_our_as_ibgp_path_is_empty_with_local_pref() {
        let e = origination(false, true, 65001).path_attributes();
        assert!(e.contains(&Attribute::AsPath(vec![Segment::Sequence(vec![65001])])));
        assert!(!e.iter().any(|a| matches!(a, Attribute::LocalPref(_))));
        let i = origination(true, true, 65001).path_attributes();
        assert!(i.contains(&Attribute::AsPath(Vec::new())));
        assert!(i.contains(&Attribute::LocalPref(LOCAL_PREF)));
    }

    #[test]
    fn four_octet_as_on_a_two_octet_session_uses_as_trans_and_as4_path() {
        let a = origination(false, false, 4_200_000_001).path_attributes();
        assert!(a.contains(&Attribute::AsPath(vec![Segment::Sequence(vec![
            u32::from(AS_TRANS)
        ])])));
        assert!(a.contains(&Attribute::As4Path(vec![Segment::Sequence(vec![
            4_200_000_001
        ])])));
        let wide = origination(false, true, 4_200_000_001).path_attributes();
        assert!(!wide.iter().any(|a| matches!(a, Attribute::As4Path(_))));
    }

    #[test]
    fn nothing_to_send_builds_no_update() {
        let o = origination(false, true, 65001);
        assert!(announcements(Family::Ipv4, &[], IpAddr::V4(Ipv4Addr::LOCALHOST), &o).is_empty());
        assert!(withdrawals(Family::Ipv6, &[], o.codec).is_empty());
    }
}
