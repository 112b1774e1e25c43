//! OPEN and its capabilities (RFC 4271 §4.2, RFC 5492, RFC 4760 §8,
//! RFC 2918, RFC 4724 §3, RFC 6793).

use std::net::Ipv4Addr;

use super::{DecodeError, Family, OpenError, HEADER_LEN, SAFI_UNICAST};

// Capability codes (IANA).
const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;

/// One capability of an OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760 §8: a family this speaker carries. Unknown families are
    /// kept by number.
    Multiprotocol {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
    },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 4724 §3. `families` lists (AFI, SAFI, flags).
    GracefulRestart {
        /// The R bit: the sender has just restarted.
        restarting: bool,
        /// Seconds the peer should keep our routes after the session
        /// drops (12 bits).
        restart_time: u16,
        /// (AFI, SAFI, flags) tuples; flag 0x80 = forwarding state kept.
        families: Vec<(u16, u8, u8)>,
    },
    /// RFC 6793: the speaker's real AS number.
    FourOctetAs(u32),
    /// Any other capability, kept opaque.
    Other {
        /// Capability code.
        code: u8,
        /// Value bytes.
        value: Vec<u8>,
    },
}

impl Capability {
    /// The multiprotocol capability of a family.
    pub fn family(fam: Family) -> Self {
        Capability::Multiprotocol {
            afi: fam.afi(),
            safi: SAFI_UNICAST,
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let (code, value) = match self {
            Capability::Multiprotocol { afi, safi } => {
                let a = afi.to_be_bytes();
                (CAP_MULTIPROTOCOL, vec![a[0], a[1], 0, *safi])
            }
            Capability::RouteRefresh => (CAP_ROUTE_REFRESH, Vec::new()),
            Capability::GracefulRestart {
                restarting,
                restart_time,
                families,
            } => {
                let head = (u16::from(*restarting) << 15) | (restart_time & 0x0fff);
                let mut v = head.to_be_bytes().to_vec();
                for (afi, safi, flags) in families {
                    v.extend_from_slice(&afi.to_be_bytes());
                    v.push(*safi);
                    v.push(*flags);
                }
                (CAP_GRACEFUL_RESTART, v)
            }
            Capability::FourOctetAs(asn) => (CAP_FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::Other { code, value } => (*code, value.clone()),
        };
        out.push(code);
        // Capability values we build are a few bytes; an opaque one longer
        // than 255 could only come from a decoded message, which had it ≤ 255.
        out.push(u8::try_from(value.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&value[..value.len().min(255)]);
    }

    pub(super) fn decode(code: u8, value: &[u8]) -> Result<Self, DecodeError> {
        let bad = || DecodeError::Open(OpenError::MalformedCapability(code));
        Ok(match code {
            CAP_MULTIPROTOCOL => {
                let [a0, a1, _reserved, safi] = value else {
                    return Err(bad());
                };
                Capability::Multiprotocol {
                    afi: u16::from_be_bytes([*a0, *a1]),
                    safi: *safi,
                }
            }
            // RFC 2918 §2: length 0. Be lenient about trailing bytes.
            CAP_ROUTE_REFRESH => Capability::RouteRefresh,
            CAP_GRACEFUL_RESTART => {
                let Some((head, rest)) = value.split_first_chunk::<2>() else {
                    return Err(bad());
                };
                if rest.len() % 4 != 0 {
                    return Err(bad());
                }
                let head = u16::from_be_bytes(*head);
                Capability::GracefulRestart {
                    restarting: head & 0x8000 != 0,
                    restart_time: head & 0x0fff,
                    families: rest
                        .chunks_exact(4)
                        .map(|c| (u16::from_be_bytes([c[0], c[1]]), c[2], c[3]))
                        .collect(),
                }
            }
            CAP_FOUR_OCTET_AS => {
                let Ok(b) = <[u8; 4]>::try_from(value) else {
                    return Err(bad());
                };
                Capability::FourOctetAs(u32::from_be_bytes(b))
            }
            _ => Capability::Other {
                code,
                value: value.to_vec(),
            },
        })
    }
}

/// An OPEN message (RFC 4271 §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// Protocol version; 4.
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS when the real
    /// AS number needs 4 octets).
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 or ≥ 3.
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities from all capability optional parameters.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The sender's AS number: from the 4-octet capability if present
    /// (RFC 6793 §3), else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    /// Whether a capability with this predicate is present.
    pub fn has(&self, pred: impl Fn(&Capability) -> bool) -> bool {
        self.capabilities.iter().any(pred)
    }

    /// Unicast families the sender carries. RFC 4760 §8: a speaker that
    /// sends no multiprotocol capability at all carries IPv4 unicast only.
    pub fn families(&self) -> Vec<Family> {
        let mut mp = false;
        let mut out = Vec::new();
        for c in &self.capabilities {
            if let Capability::Multiprotocol { afi, safi } = c {
                mp = true;
                if let Some(f) = Family::from_afi_safi(*afi, *safi) {
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            }
        }
        if !mp {
            out.push(Family::Ipv4);
        }
        out
    }
}

pub(super) fn encode_open(o: &Open, out: &mut Vec<u8>) {
    out.push(o.version);
    out.extend_from_slice(&o.my_as.to_be_bytes());
    out.extend_from_slice(&o.hold_time.to_be_bytes());
    out.extend_from_slice(&o.bgp_id.octets());
    // One capabilities parameter (type 2) holding all capabilities, as
    // RFC 5492 §4 recommends.
    let mut caps = Vec::new();
    for c in &o.capabilities {
        c.encode(&mut caps);
    }
    if caps.is_empty() {
        out.push(0);
    } else {
        out.push(u8::try_from(caps.len() + 2).unwrap_or(u8::MAX));
        out.push(2);
        out.push(u8::try_from(caps.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&caps);
    }
}

pub(super) fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
    let malformed = DecodeError::Open(OpenError::MalformedParameters);
    let Some((fixed, rest)) = body.split_first_chunk::<10>() else {
        return Err(DecodeError::BadLength(
            u16::try_from(body.len() + HEADER_LEN).unwrap_or(u16::MAX),
        ));
    };
    let version = fixed[0];
    if version != 4 {
        return Err(DecodeError::Open(OpenError::UnsupportedVersion(version)));
    }
    let my_as = u16::from_be_bytes([fixed[1], fixed[2]]);
    let hold_time = u16::from_be_bytes([fixed[3], fixed[4]]);
    let bgp_id = Ipv4Addr::new(fixed[5], fixed[6], fixed[7], fixed[8]);
    let opt_len = usize::from(fixed[9]);
    if rest.len() != opt_len {
        return Err(malformed);
    }
    let mut capabilities = Vec::new();
    let mut params = rest;
    while !params.is_empty() {
        let [ptype, plen, tail @ ..] = params else {
            return Err(malformed);
        };
        let Some(value) = tail.get(..usize::from(*plen)) else {
            return Err(malformed);
        };
        if *ptype != 2 {
            // RFC 5492 §4 made type 2 the only optional parameter in use;
            // type 1 (authentication) is deprecated.
            return Err(DecodeError::Open(OpenError::UnsupportedOptionalParameter(
                *ptype,
            )));
        }
        let mut caps = value;
        while !caps.is_empty() {
            let [ccode, clen, ctail @ ..] = caps else {
                return Err(malformed);
            };
            let Some(cval) = ctail.get(..usize::from(*clen)) else {
                return Err(malformed);
            };
            capabilities.push(Capability::decode(*ccode, cval)?);
            caps = &ctail[usize::from(*clen)..];
        }
        params = &tail[usize::from(*plen)..];
    }
    Ok(Open {
        version,
        my_as,
        hold_time,
        bgp_id,
        capabilities,
    })
}
