//! BGP-4 messages on the wire (RFC 4271 §4), with the extensions an
//! announce-only speaker of host routes needs: capabilities (RFC 5492),
//! 4-octet AS numbers (RFC 6793), multiprotocol IPv6 unicast (RFC 4760),
//! route refresh (RFC 2918), graceful restart's capability (RFC 4724) and
//! the administrative-shutdown message (RFC 8203 as updated by RFC 9003).
//!
//! Pure functions over byte slices: no I/O, no clock. Decoding never
//! panics on any input (checked by `tests/wire_fuzz.rs`); every error maps
//! to the NOTIFICATION RFC 4271 §6 says to send ([`DecodeError::notification`]).
//!
//! What is deliberately *not* here: extended messages (RFC 8654, > 4096
//! bytes), extended optional parameters (RFC 9072), ADD-PATH, and any
//! family other than IPv4/IPv6 unicast. A peer that sends those in a
//! message gets them kept as opaque attributes or capabilities, which is
//! all an announce-only speaker needs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every message starts with 16 bytes of ones (RFC 4271 §4.1).
pub const MARKER: [u8; 16] = [0xff; 16];
/// Marker, length and type.
pub const HEADER_LEN: usize = 19;
/// RFC 4271 §4.1: the largest message without RFC 8654.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// RFC 6793 §9: the 2-octet stand-in for an AS number above 65535.
pub const AS_TRANS: u16 = 23456;

/// Address family identifiers (IANA) for the two families we carry.
pub const AFI_IPV4: u16 = 1;
/// IPv6 AFI.
pub const AFI_IPV6: u16 = 2;
/// Unicast SAFI.
pub const SAFI_UNICAST: u8 = 1;

const TYPE_OPEN: u8 = 1;
const TYPE_UPDATE: u8 = 2;
const TYPE_NOTIFICATION: u8 = 3;
const TYPE_KEEPALIVE: u8 = 4;
const TYPE_ROUTE_REFRESH: u8 = 5;

// Path attribute type codes (RFC 4271 §5, RFC 4760, RFC 6793).
const ATTR_ORIGIN: u8 = 1;
const ATTR_AS_PATH: u8 = 2;
const ATTR_NEXT_HOP: u8 = 3;
const ATTR_LOCAL_PREF: u8 = 5;
const ATTR_MP_REACH: u8 = 14;
const ATTR_MP_UNREACH: u8 = 15;
const ATTR_AS4_PATH: u8 = 17;

// Attribute flags (RFC 4271 §4.3).
const FLAG_OPTIONAL: u8 = 0x80;
const FLAG_TRANSITIVE: u8 = 0x40;
const FLAG_EXTENDED: u8 = 0x10;

// Capability codes (IANA).
const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;

/// An IPv4 or IPv6 family, always unicast here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// AFI 1 / SAFI 1.
    Ipv4,
    /// AFI 2 / SAFI 1.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// IANA AFI.
    pub fn afi(self) -> u16 {
        match self {
            Family::Ipv4 => AFI_IPV4,
            Family::Ipv6 => AFI_IPV6,
        }
    }

    fn from_afi_safi(afi: u16, safi: u8) -> Option<Self> {
        match (afi, safi) {
            (AFI_IPV4, SAFI_UNICAST) => Some(Family::Ipv4),
            (AFI_IPV6, SAFI_UNICAST) => Some(Family::Ipv6),
            _ => None,
        }
    }

    fn max_len(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4-unicast",
            Family::Ipv6 => "ipv6-unicast",
        })
    }
}

/// An IP prefix. Invariant: `len` ≤ the family's width and the bits after
/// `len` are zero (decoding masks them: RFC 4271 §4.3 says they are
/// irrelevant), so equal prefixes compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// The host route of one address (/32 or /128): what vipd announces.
    pub fn host(addr: IpAddr) -> Self {
        let len = Family::of(addr).max_len();
        Self { addr, len }
    }

    /// A prefix; `None` when `len` is too long for the family. Host bits
    /// are cleared.
    pub fn new(addr: IpAddr, len: u8) -> Option<Self> {
        let fam = Family::of(addr);
        if len > fam.max_len() {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Some(Self { addr, len })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The prefix's family.
    pub fn family(&self) -> Family {
        Family::of(self.addr)
    }

    /// Bytes on the wire: one length octet and the significant octets
    /// (RFC 4271 §4.3, RFC 4760 §5).
    pub fn wire_len(&self) -> usize {
        1 + usize::from(self.len).div_ceil(8)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.len);
        let n = usize::from(self.len).div_ceil(8);
        match self.addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
        }
    }

    /// Decodes a run of prefixes filling `buf` exactly.
    fn decode_all(mut buf: &[u8], fam: Family) -> Result<Vec<Prefix>, DecodeError> {
        let mut out = Vec::new();
        while let Some((&len, rest)) = buf.split_first() {
            if len > fam.max_len() {
                return Err(DecodeError::InvalidNetworkField);
            }
            let n = usize::from(len).div_ceil(8);
            let Some(bytes) = rest.get(..n) else {
                return Err(DecodeError::InvalidNetworkField);
            };
            let addr = match fam {
                Family::Ipv4 => {
                    let mut o = [0u8; 4];
                    o[..n].copy_from_slice(bytes);
                    IpAddr::V4(Ipv4Addr::from(o))
                }
                Family::Ipv6 => {
                    let mut o = [0u8; 16];
                    o[..n].copy_from_slice(bytes);
                    IpAddr::V6(Ipv6Addr::from(o))
                }
            };
            // `len` was checked against the family width above.
            out.extend(Prefix::new(addr, len));
            buf = &rest[n..];
        }
        Ok(out)
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

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

    fn encode(&self, out: &mut Vec<u8>) {
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

    fn decode(code: u8, value: &[u8]) -> Result<Self, DecodeError> {
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

/// A NOTIFICATION message (RFC 4271 §4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Error code.
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Data.
    pub data: Vec<u8>,
}

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313).
pub mod code {
    /// Message header error.
    pub const HEADER: u8 = 1;
    /// OPEN message error.
    pub const OPEN: u8 = 2;
    /// UPDATE message error.
    pub const UPDATE: u8 = 3;
    /// Hold timer expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite state machine error (subcodes: RFC 6608).
    pub const FSM: u8 = 5;
    /// Cease (subcodes: RFC 4486).
    pub const CEASE: u8 = 6;
    /// ROUTE-REFRESH message error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
    /// Cease subcode: administrative shutdown.
    pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
    /// Cease subcode: administrative reset.
    pub const CEASE_ADMIN_RESET: u8 = 4;
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: u8, subcode: u8) -> Self {
        Self {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// Cease / Administrative Shutdown carrying a human-readable reason
    /// (RFC 8203 §2, length limit 255 octets per RFC 9003 §2): truncated
    /// at a character boundary so the peer always gets valid UTF-8.
    pub fn admin_shutdown(message: &str) -> Self {
        let mut end = message.len().min(255);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let msg = &message.as_bytes()[..end];
        let mut data = Vec::with_capacity(1 + msg.len());
        data.push(u8::try_from(msg.len()).unwrap_or(u8::MAX));
        data.extend_from_slice(msg);
        Self {
            code: code::CEASE,
            subcode: code::CEASE_ADMIN_SHUTDOWN,
            data,
        }
    }

    /// The RFC 8203 message of an administrative shutdown or reset, if the
    /// data carries a well-formed one.
    pub fn shutdown_message(&self) -> Option<String> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                code::CEASE_ADMIN_SHUTDOWN | code::CEASE_ADMIN_RESET
            )
        {
            return None;
        }
        let (len, rest) = self.data.split_first()?;
        let msg = rest.get(..usize::from(*len))?;
        std::str::from_utf8(msg).ok().map(str::to_owned)
    }
}

impl std::fmt::Display for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match (self.code, self.subcode) {
            (code::HEADER, _) => "message header error",
            (code::OPEN, 2) => "OPEN error: bad peer AS",
            (code::OPEN, 6) => "OPEN error: unacceptable hold time",
            (code::OPEN, _) => "OPEN message error",
            (code::UPDATE, _) => "UPDATE message error",
            (code::HOLD_TIMER_EXPIRED, _) => "hold timer expired",
            (code::FSM, _) => "finite state machine error",
            (code::CEASE, code::CEASE_ADMIN_SHUTDOWN) => "cease: administrative shutdown",
            (code::CEASE, code::CEASE_ADMIN_RESET) => "cease: administrative reset",
            (code::CEASE, _) => "cease",
            (code::ROUTE_REFRESH, _) => "ROUTE-REFRESH message error",
            _ => "unknown error",
        };
        write!(f, "{name} ({}/{})", self.code, self.subcode)?;
        if let Some(m) = self.shutdown_message() {
            write!(f, ": {m:?}")?;
        }
        Ok(())
    }
}

/// One BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918) for one family; the "reserved" octet is the
    /// RFC 7313 subtype and is ignored.
    RouteRefresh {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
    },
}

/// What the session negotiated that changes the encoding: AS numbers in
/// AS_PATH are 4 octets once both sides sent the RFC 6793 capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Codec {
    /// Both sides support 4-octet AS numbers.
    pub four_octet_as: bool,
}

/// Why a message could not be decoded. Each maps to the NOTIFICATION the
/// receiver must send (RFC 4271 §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// §6.1: the marker is not all ones.
    #[error("connection not synchronised (bad marker)")]
    BadMarker,
    /// §6.1: length outside 19..=4096 or wrong for the type.
    #[error("bad message length {0}")]
    BadLength(u16),
    /// §6.1: unknown type.
    #[error("bad message type {0}")]
    BadType(u8),
    /// §6.2.
    #[error("OPEN: {0}")]
    Open(OpenError),
    /// §6.3: attribute list does not add up.
    #[error("UPDATE: malformed attribute list")]
    MalformedAttributeList,
    /// §6.3: a prefix is too long or runs past its field.
    #[error("UPDATE: invalid network field")]
    InvalidNetworkField,
    /// RFC 4760 §7: MP_REACH/MP_UNREACH unreadable, so the NLRI cannot be
    /// located (RFC 7606 §7.11: session reset).
    #[error("UPDATE: malformed multiprotocol attribute")]
    MalformedMpAttribute,
    /// §4.5: a NOTIFICATION shorter than its fixed part.
    #[error("malformed NOTIFICATION")]
    MalformedNotification,
}

/// OPEN errors (RFC 4271 §6.2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Subcode 1; data is the version we support.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Subcode 2.
    #[error("bad peer AS {0}")]
    BadPeerAs(u32),
    /// Subcode 3.
    #[error("bad BGP identifier {0}")]
    BadBgpId(Ipv4Addr),
    /// Subcode 4.
    #[error("unsupported optional parameter {0}")]
    UnsupportedOptionalParameter(u8),
    /// Subcode 6.
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    /// A capability whose value has the wrong size (subcode 0: RFC 4271
    /// has no better one).
    #[error("malformed capability {0}")]
    MalformedCapability(u8),
    /// The optional parameters do not add up.
    #[error("malformed optional parameters")]
    MalformedParameters,
}

impl DecodeError {
    /// The NOTIFICATION to send for this error (RFC 4271 §6).
    pub fn notification(&self) -> Notification {
        match self {
            DecodeError::BadMarker => Notification::new(code::HEADER, 1),
            DecodeError::BadLength(l) => Notification {
                code: code::HEADER,
                subcode: 2,
                data: l.to_be_bytes().to_vec(),
            },
            DecodeError::BadType(t) => Notification {
                code: code::HEADER,
                subcode: 3,
                data: vec![*t],
            },
            DecodeError::Open(e) => e.notification(),
            DecodeError::MalformedAttributeList | DecodeError::MalformedMpAttribute => {
                Notification::new(code::UPDATE, 1)
            }
            DecodeError::InvalidNetworkField => Notification::new(code::UPDATE, 10),
            // RFC 4271 has no subcode for this; "header error, bad length"
            // is the closest a peer would understand.
            DecodeError::MalformedNotification => Notification::new(code::HEADER, 2),
        }
    }
}

impl OpenError {
    /// The NOTIFICATION to send for this error (RFC 4271 §6.2).
    pub fn notification(&self) -> Notification {
        match self {
            OpenError::UnsupportedVersion(_) => Notification {
                code: code::OPEN,
                subcode: 1,
                // The largest version we support, as a 2-octet number.
                data: 4u16.to_be_bytes().to_vec(),
            },
            OpenError::BadPeerAs(_) => Notification::new(code::OPEN, 2),
            OpenError::BadBgpId(_) => Notification::new(code::OPEN, 3),
            OpenError::UnsupportedOptionalParameter(_) => Notification::new(code::OPEN, 4),
            OpenError::UnacceptableHoldTime(_) => Notification::new(code::OPEN, 6),
            OpenError::MalformedCapability(_) | OpenError::MalformedParameters => {
                Notification::new(code::OPEN, 0)
            }
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Over 4096 bytes (RFC 4271 §4.1); callers split UPDATEs first.
    #[error("message of {0} bytes exceeds the 4096-byte limit")]
    TooLong(usize),
}

/// Length of the first complete message in `buf`: `Ok(None)` while more
/// bytes are needed. Checks the marker and the length bounds, so a stream
/// that lost framing is reported as soon as its header is in.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if head[..16] != MARKER {
        return Err(DecodeError::BadMarker);
    }
    let len = u16::from_be_bytes([head[16], head[17]]);
    if usize::from(len) < HEADER_LEN || usize::from(len) > MAX_MESSAGE_LEN {
        return Err(DecodeError::BadLength(len));
    }
    Ok((buf.len() >= usize::from(len)).then_some(usize::from(len)))
}

impl Message {
    /// Decodes one complete message (exactly as long as its header says).
    pub fn decode(msg: &[u8], codec: Codec) -> Result<Message, DecodeError> {
        match frame_len(msg)? {
            Some(n) if n == msg.len() => {}
            _ => {
                let l = msg
                    .get(16..18)
                    .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
                return Err(DecodeError::BadLength(l));
            }
        }
        let len = u16::try_from(msg.len()).unwrap_or(u16::MAX);
        let body = &msg[HEADER_LEN..];
        match msg[18] {
            TYPE_OPEN => decode_open(body).map(Message::Open),
            TYPE_UPDATE => {
                // Withdrawn length + attribute length fields: 23 bytes in all.
                if body.len() < 4 {
                    return Err(DecodeError::BadLength(len));
                }
                decode_update(body, codec).map(Message::Update)
            }
            TYPE_NOTIFICATION => match body {
                [code, subcode, data @ ..] => Ok(Message::Notification(Notification {
                    code: *code,
                    subcode: *subcode,
                    data: data.to_vec(),
                })),
                _ => Err(DecodeError::MalformedNotification),
            },
            TYPE_KEEPALIVE if body.is_empty() => Ok(Message::Keepalive),
            TYPE_KEEPALIVE => Err(DecodeError::BadLength(len)),
            TYPE_ROUTE_REFRESH => match body {
                [a0, a1, _subtype, safi] => Ok(Message::RouteRefresh {
                    afi: u16::from_be_bytes([*a0, *a1]),
                    safi: *safi,
                }),
                _ => Err(DecodeError::BadLength(len)),
            },
            t => Err(DecodeError::BadType(t)),
        }
    }

    /// Encodes the message with its header.
    pub fn encode(&self, codec: Codec) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&MARKER);
        out.extend_from_slice(&[0, 0, 0]);
        let ty = match self {
            Message::Open(o) => {
                encode_open(o, &mut out);
                TYPE_OPEN
            }
            Message::Update(u) => {
                encode_update(u, codec, &mut out);
                TYPE_UPDATE
            }
            Message::Notification(n) => {
                out.push(n.code);
                out.push(n.subcode);
                out.extend_from_slice(&n.data);
                TYPE_NOTIFICATION
            }
            Message::Keepalive => TYPE_KEEPALIVE,
            Message::RouteRefresh { afi, safi } => {
                out.extend_from_slice(&afi.to_be_bytes());
                out.push(0);
                out.push(*safi);
                TYPE_ROUTE_REFRESH
            }
        };
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLong(out.len()));
        }
        let len = u16::try_from(out.len()).map_err(|_| EncodeError::TooLong(out.len()))?;
        out[16..18].copy_from_slice(&len.to_be_bytes());
        out[18] = ty;
        Ok(out)
    }
}

fn encode_open(o: &Open, out: &mut Vec<u8>) {
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

fn decode_open(body: &[u8]) -> Result<Open, DecodeError> {
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

fn decode_attr(flags: u8, code: u8, v: &[u8], codec: Codec) -> Result<Attribute, DecodeError> {
    let malformed = Attribute::Malformed { code };
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
            let [a0, a1, safi, nh_len, rest @ ..] = v else {
                return Err(DecodeError::MalformedMpAttribute);
            };
            let afi = u16::from_be_bytes([*a0, *a1]);
            let Some(family) = Family::from_afi_safi(afi, *safi) else {
                return Ok(Attribute::Other {
                    flags,
                    code,
                    value: v.to_vec(),
                });
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
            let [a0, a1, safi, rest @ ..] = v else {
                return Err(DecodeError::MalformedMpAttribute);
            };
            let afi = u16::from_be_bytes([*a0, *a1]);
            let Some(family) = Family::from_afi_safi(afi, *safi) else {
                return Ok(Attribute::Other {
                    flags,
                    code,
                    value: v.to_vec(),
                });
            };
            let withdrawn =
                Prefix::decode_all(rest, family).map_err(|_| DecodeError::MalformedMpAttribute)?;
            Attribute::MpUnreach { family, withdrawn }
        }
        _ => Attribute::Other {
            flags,
            code,
            value: v.to_vec(),
        },
    })
}

fn encode_update(u: &Update, codec: Codec, out: &mut Vec<u8>) {
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

fn decode_update(body: &[u8], codec: Codec) -> Result<Update, DecodeError> {
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
            attributes.push(decode_attr(*flags, *code, value, codec)?);
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

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
