//! UPDATE and its path attributes (RFC 4271 §4.3 and §5, RFC 4760 §3–4,
//! RFC 6793, RFC 7606 for what a malformed attribute means).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Codec, DecodeError, Family, Prefix, AS_TRANS, SAFI_UNICAST};

// Path attribute type codes (RFC 4271 §5, RFC 4760, RFC 6793).
// Attribute flags (RFC 4271 §4.3).
const ATTR_ORIGIN: u8 = 1;
const ATTR_AS_PATH: u8 = 2;
const ATTR_NEXT_HOP: u8 = 3;
const ATTR_LOCAL_PREF: u8 = 5;
const ATTR_MP_REACH: u8 = 14;
const ATTR_MP_UNREACH: u8 = 15;
const ATTR_AS4_PATH: u8 = 17;
const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_EXTENDED: u8 = 0x10;

/// ORIGIN values (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Learned from an interior protocol; what a VIP is.
    Igp,
    /// Learned from EGP.
    Egp,
    /// Learned some other way.
    Incomplete,
}

/// An AS_PATH segment (RFC 4271 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// AS_SET (type 1).
    Set(Vec<u32>),
    /// AS_SEQUENCE (type 2).
    Sequence(Vec<u32>),
}

/// The path attributes this speaker builds or reads; everything else is
/// kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// ORIGIN.
    Origin(Origin),
    /// AS_PATH, in 4-octet form when both sides support it, else 2-octet.
    AsPath(Vec<Segment>),
    /// NEXT_HOP of the IPv4 NLRI field.
    NextHop(Ipv4Addr),
    /// LOCAL_PREF (iBGP only).
    LocalPref(u32),
    /// AS4_PATH (RFC 6793 §3): the real path when the session is 2-octet.
    As4Path(Vec<Segment>),
    /// MP_REACH_NLRI (RFC 4760 §3) of a unicast family: one next hop, or
    /// an IPv6 global and link-local pair.
    MpReach {
        /// Family of the NLRI.
        family: Family,
        /// Next-hop addresses.
        next_hops: Vec<IpAddr>,
        /// Reachable prefixes.
        nlri: Vec<Prefix>,
    },
    /// MP_UNREACH_NLRI (RFC 4760 §4) of a unicast family.
    MpUnreach {
        /// Family of the withdrawn prefixes.
        family: Family,
        /// Withdrawn prefixes.
        withdrawn: Vec<Prefix>,
    },
    /// Any other attribute, or a known one in a family we do not carry.
    Other {
        /// Flags octet.
        flags: u8,
        /// Type code.
        code: u8,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// A known attribute whose value could not be read. RFC 7606
    /// "treat-as-withdraw": the message's routes are not usable, but the
    /// session is not reset for it (we install nothing anyway).
    Malformed {
        /// Type code.
        code: u8,
    },
}

/// An UPDATE message (RFC 4271 §4.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 routes.
    pub withdrawn: Vec<Prefix>,
    /// Path attributes in wire order.
    pub attributes: Vec<Attribute>,
    /// Reachable IPv4 routes.
    pub nlri: Vec<Prefix>,
}

impl Update {
    /// Every prefix this UPDATE makes reachable, of any family.
    pub fn announced(&self) -> impl Iterator<Item = &Prefix> {
        self.nlri
            .iter()
            .chain(self.attributes.iter().flat_map(|a| match a {
                Attribute::MpReach { nlri, .. } => nlri.as_slice(),
                _ => &[],
            }))
    }

    /// Every prefix this UPDATE withdraws, of any family.
    pub fn withdrawn_all(&self) -> impl Iterator<Item = &Prefix> {
        self.withdrawn
            .iter()
            .chain(self.attributes.iter().flat_map(|a| match a {
                Attribute::MpUnreach { withdrawn, .. } => withdrawn.as_slice(),
                _ => &[],
            }))
    }

    /// RFC 7606: a message with a malformed attribute is treated as a
    /// withdrawal of its NLRI.
    pub fn is_malformed(&self) -> bool {
        self.attributes
            .iter()
            .any(|a| matches!(a, Attribute::Malformed { .. }))
    }

    /// The End-of-RIB marker of a family (RFC 4724 §2).
    pub fn end_of_rib(fam: Family) -> Self {
        match fam {
            Family::Ipv4 => Update::default(),
            Family::Ipv6 => Update {
                attributes: vec![Attribute::MpUnreach {
                    family: fam,
                    withdrawn: Vec::new(),
                }],
                ..Update::default()
            },
        }
    }

    /// Whether this is an End-of-RIB marker, and of which family.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(Family::Ipv4),
            [Attribute::MpUnreach { family, withdrawn }] if withdrawn.is_empty() => Some(*family),
            _ => None,
        }
    }
}

fn encode_segments(segs: &[Segment], wide: bool, out: &mut Vec<u8>) {
    for s in segs {
        let (ty, ases) = match s {
            Segment::Set(a) => (1u8, a),
            Segment::Sequence(a) => (2u8, a),
        };
        // A segment holds at most 255 AS numbers; ours hold one.
        for chunk in ases.chunks(255) {
            out.push(ty);
            out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
            for a in chunk {
                if wide {
                    out.extend_from_slice(&a.to_be_bytes());
                } else {
                    let narrow = u16::try_from(*a).unwrap_or(AS_TRANS);
                    out.extend_from_slice(&narrow.to_be_bytes());
                }
            }
        }
    }
}

fn decode_segments(mut v: &[u8], wide: bool) -> Option<Vec<Segment>> {
    let w = if wide { 4 } else { 2 };
    let mut out = Vec::new();
    while !v.is_empty() {
        let [ty, n, rest @ ..] = v else {
            return None;
        };
        let bytes = rest.get(..usize::from(*n) * w)?;
        let ases: Vec<u32> = bytes
            .chunks_exact(w)
            .map(|c| match c {
                [a, b] => u32::from(u16::from_be_bytes([*a, *b])),
                [a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]),
                _ => 0,
            })
            .collect();
        out.push(match ty {
            1 => Segment::Set(ases),
            2 => Segment::Sequence(ases),
            // RFC 5065 confederation segments (3, 4): read as sequences;
            // we only count routes.
            3 | 4 => Segment::Sequence(ases),
            _ => return None,
        });
        v = &rest[usize::from(*n) * w..];
    }
    Some(out)
}

fn push_attr(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.push(flags | FLAG_EXTENDED);
        out.push(code);
        out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
    } else {
        out.push(flags & !FLAG_EXTENDED);
        out.push(code);
        out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
    }
    out.extend_from_slice(value);
}

fn encode_attr(a: &Attribute, codec: Codec, out: &mut Vec<u8>) {
    let mut v = Vec::new();
    let (flags, code) = match a {
        Attribute::Origin(o) => {
            v.push(match o {
                Origin::Igp => 0,
                Origin::Egp => 1,
                Origin::Incomplete => 2,
            });
            (FLAG_TRANSITIVE, ATTR_ORIGIN)
        }
        Attribute::AsPath(s) => {
            encode_segments(s, codec.four_octet_as, &mut v);
            (FLAG_TRANSITIVE, ATTR_AS_PATH)
        }
        Attribute::NextHop(nh) => {
            v.extend_from_slice(&nh.octets());
            (FLAG_TRANSITIVE, ATTR_NEXT_HOP)
        }
        Attribute::LocalPref(p) => {
            v.extend_from_slice(&p.to_be_bytes());
            (FLAG_TRANSITIVE, ATTR_LOCAL_PREF)
        }
        Attribute::As4Path(s) => {
            encode_segments(s, true, &mut v);
            (FLAG_OPTIONAL | FLAG_TRANSITIVE, ATTR_AS4_PATH)
        }
        Attribute::MpReach {
            family,
            next_hops,
            nlri,
        } => {
            v.extend_from_slice(&family.afi().to_be_bytes());
            v.push(SAFI_UNICAST);
            let mut nh = Vec::new();
            for h in next_hops {
                match h {
                    IpAddr::V4(a) => nh.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => nh.extend_from_slice(&a.octets()),
                }
            }
            v.push(u8::try_from(nh.len()).unwrap_or(u8::MAX));
            v.extend_from_slice(&nh);
            v.push(0); // reserved (RFC 4760 §3)
            for p in nlri {
                p.encode(&mut v);
            }
            (FLAG_OPTIONAL, ATTR_MP_REACH)
        }
        Attribute::MpUnreach { family, withdrawn } => {
            v.extend_from_slice(&family.afi().to_be_bytes());
            v.push(SAFI_UNICAST);
            for p in withdrawn {
                p.encode(&mut v);
            }
            (FLAG_OPTIONAL, ATTR_MP_UNREACH)
        }
        Attribute::Other { flags, code, value } => {
            v.extend_from_slice(value);
            (*flags, *code)
        }
        // Never re-sent: we do not propagate routes.
        Attribute::Malformed { .. } => return,
    };
    push_attr(out, flags, code, &v);
}

/// The AFI/SAFI header of MP_REACH/MP_UNREACH (RFC 4760 §3–4): the
/// family and the rest, `None` for a family we do not carry (kept opaque).
fn mp_family(v: &[u8]) -> Result<Option<(Family, &[u8])>, DecodeError> {
    let [a0, a1, safi, rest @ ..] = v else {
        return Err(DecodeError::MalformedMpAttribute);
    };
    let afi = u16::from_be_bytes([*a0, *a1]);
    Ok(Family::from_afi_safi(afi, *safi).map(|f| (f, rest)))
}

fn decode_attr(flags: u8, code: u8, v: &[u8], codec: Codec) -> Result<Attribute, DecodeError> {
    let malformed = Attribute::Malformed { code };
    let opaque = || Attribute::Other {
        flags,
        code,
        value: v.to_vec(),
    };
    Ok(match code {
        ATTR_ORIGIN => match v {
            [0] => Attribute::Origin(Origin::Igp),
            [1] => Attribute::Origin(Origin::Egp),
            [2] => Attribute::Origin(Origin::Incomplete),
            _ => malformed,
        },
        ATTR_AS_PATH => {
            decode_segments(v, codec.four_octet_as).map_or(malformed, Attribute::AsPath)
        }
        ATTR_AS4_PATH => decode_segments(v, true).map_or(malformed, Attribute::As4Path),
        ATTR_NEXT_HOP => match <[u8; 4]>::try_from(v) {
            Ok(b) => Attribute::NextHop(Ipv4Addr::from(b)),
            Err(_) => malformed,
        },
        ATTR_LOCAL_PREF => match <[u8; 4]>::try_from(v) {
            Ok(b) => Attribute::LocalPref(u32::from_be_bytes(b)),
            Err(_) => malformed,
        },
        ATTR_MP_REACH => {
            // AFI, SAFI and the next-hop length at least, of any family.
            if v.len() < 4 {
                return Err(DecodeError::MalformedMpAttribute);
            }
            let Some((family, body)) = mp_family(v)? else {
                return Ok(opaque());
            };
            let Some((nh_len, rest)) = body.split_first() else {
                return Err(DecodeError::MalformedMpAttribute);
            };
            let nh_len = usize::from(*nh_len);
            let (Some(nh), Some(nlri)) = (rest.get(..nh_len), rest.get(nh_len + 1..)) else {
                return Err(DecodeError::MalformedMpAttribute);
            };
            let next_hops = match nh.len() {
                4 => vec![IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))],
                16 | 32 => nh
                    .chunks_exact(16)
                    .map(|c| {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(c);
                        IpAddr::V6(Ipv6Addr::from(o))
                    })
                    .collect(),
                _ => return Err(DecodeError::MalformedMpAttribute),
            };
            let nlri =
                Prefix::decode_all(nlri, family).map_err(|_| DecodeError::MalformedMpAttribute)?;
            Attribute::MpReach {
                family,
                next_hops,
                nlri,
            }
        }
        ATTR_MP_UNREACH => {
            let Some((family, rest)) = mp_family(v)? else {
                return Ok(opaque());
            };
            let withdrawn =
                Prefix::decode_all(rest, family).map_err(|_| DecodeError::MalformedMpAttribute)?;
            Attribute::MpUnreach { family, withdrawn }
        }
        _ => opaque(),
    })
}

pub(super) fn encode_update(u: &Update, codec: Codec, out: &mut Vec<u8>) {
    let mut w = Vec::new();
    for p in &u.withdrawn {
        p.encode(&mut w);
    }
    out.extend_from_slice(&u16::try_from(w.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&w);
    let mut attrs = Vec::new();
    for a in &u.attributes {
        encode_attr(a, codec, &mut attrs);
    }
    out.extend_from_slice(&u16::try_from(attrs.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&attrs);
    for p in &u.nlri {
        p.encode(out);
    }
}

pub(super) fn decode_update(body: &[u8], codec: Codec) -> Result<Update, DecodeError> {
    let bad = DecodeError::MalformedAttributeList;
    let (wlen, rest) = body.split_first_chunk::<2>().ok_or(bad.clone())?;
    let wlen = usize::from(u16::from_be_bytes(*wlen));
    let wbytes = rest.get(..wlen).ok_or(bad.clone())?;
    let rest = &rest[wlen..];
    let (alen, rest) = rest.split_first_chunk::<2>().ok_or(bad.clone())?;
    let alen = usize::from(u16::from_be_bytes(*alen));
    let mut abytes = rest.get(..alen).ok_or(bad.clone())?;
    let nlri = &rest[alen..];
    let withdrawn = Prefix::decode_all(wbytes, Family::Ipv4)?;
    let mut attributes = Vec::new();
    let mut seen = [false; 256];
    while !abytes.is_empty() {
        let [flags, code, tail @ ..] = abytes else {
            return Err(bad);
        };
        let (len, tail) = if flags & FLAG_EXTENDED != 0 {
            let (l, t) = tail.split_first_chunk::<2>().ok_or(bad.clone())?;
            (usize::from(u16::from_be_bytes(*l)), t)
        } else {
            let (l, t) = tail.split_first().ok_or(bad.clone())?;
            (usize::from(*l), t)
        };
        let value = tail.get(..len).ok_or(bad.clone())?;
        // RFC 7606 §3(g): a repeated attribute is discarded (MP ones reset
        // the session, as their NLRI would be ambiguous).
        let dup = std::mem::replace(&mut seen[usize::from(*code)], true);
        if dup && matches!(*code, ATTR_MP_REACH | ATTR_MP_UNREACH) {
            return Err(DecodeError::MalformedMpAttribute);
        }
        if !dup {
            // The extended-length bit describes this encoding, not the
            // attribute: kept out so an opaque attribute re-encodes to the
            // same value (found by the fuzz test).
            attributes.push(decode_attr(*flags & !FLAG_EXTENDED, *code, value, codec)?);
        }
        abytes = &tail[len..];
    }
    let nlri = Prefix::decode_all(nlri, Family::Ipv4)?;
    Ok(Update {
        withdrawn,
        attributes,
        nlri,
    })
}
