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

mod open;
mod update;

use open::{decode_open, encode_open};
pub use open::{Capability, Open};
use update::{decode_update, encode_update};
pub use update::{Attribute, Origin, Segment, Update};

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

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
