//! The grant datagrams: typed, authenticated with the quorum key.
//!
//! ```text
//!  0      4     5          21    22..22+n  +8     +8     body   last 32
//! "VG1\x01" kind set-hash  n     sender    seq    term   ...    HMAC-SHA256
//! ```
//!
//! The header is the quorum header ([`vipd_quorum::wire`]) with its own
//! magic: the MAC covers the magic, so a quorum datagram never verifies as
//! a grant datagram or the other way round, although both share one socket
//! and one key. Sequence numbers grow as there; the receiver keeps a
//! 64-place sliding window per sender (a claim travels with its parts, so
//! small reorderings must not lose them) and accepts each number once.
//! Bodies, all integers big-endian:
//!
//! - `Claim` (node → holder, every heartbeat): `epoch: u64`, `flags: u8` (bit 0
//!   draining), `refv: u64`, `floor: u64`, `have: u64` (0 = none),
//!   `explicit_count: u32`, `explicit_digest: [16]`, `current_count: u32`,
//!   `current_digest: [16]`. See [`Claim`].
//! - `Held` (node → holder, with a claim that has an explicit set):
//!   `digest: [16]`, `count: u32`, `part: u16`, `parts: u16`, addresses.
//! - `Share` (holder → node): `epoch: u64`, `version: u64`, `digest: [16]`, `count: u32`,
//!   `part: u16`, `parts: u16`, addresses (the node's set at `version`).
//! - `Grant` (holder → node): `epoch: u64`, `reply_to: u64` (the claim answered),
//!   `version: u64`.
//! - `Leave` (node → holder): empty; "I bind nothing and never will again
//!   in this process".
//!
//! An address is a family byte (4 or 6) and its octets.

use crate::set::encode_addr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use vipd_quorum::wire::{frame, open, seal, Header, Reader};
use vipd_quorum::{AuthKey, DropReason, SetHash, MAX_NAME};

/// Largest datagram accepted or produced, as the quorum's.
pub const MAX_DATAGRAM: usize = vipd_quorum::wire::MAX_DATAGRAM;
const MAGIC: &[u8; 4] = b"VG1\x01";
const TAG: usize = 32;
const HEAD: usize = 4 + 1 + 16 + 1;
/// The fixed part of the largest part-carrying body (`Share`).
const PART_BODY: usize = 8 + 8 + 16 + 4 + 2 + 2;
/// Address bytes that always fit one `Held` or `Share` part, whatever the
/// sender's name length.
pub const PART_BUDGET: usize = MAX_DATAGRAM - (HEAD + MAX_NAME + 8 + 8 + PART_BODY + TAG);

/// What a node reports about the addresses it may bind (see the crate
/// docs, "Claims").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The holder's epoch the report is relative to (0: none heard yet;
    /// then everything is in `explicit`).
    pub epoch: u64,
    /// Health gate or stop: give me nothing.
    pub draining: bool,
    /// The oldest version of this term that I may still bind (0 = none):
    /// everything I bind from this term's grants is in that version or in
    /// a later granted one.
    pub refv: u64,
    /// I never newly apply a version of this term at or below this (0 =
    /// none).
    pub floor: u64,
    /// The newest version of this term whose content I have complete.
    pub have: u64,
    /// Addresses I may bind outside this term's versions (from an older
    /// term, or self-held while I was the holder): their count and digest,
    /// content in `Held` parts. `None`: nothing outside.
    pub explicit: Option<(u32, [u8; 16])>,
    /// The part of `explicit` bound *now* under a valid right (not merely
    /// being removed): the new holder keeps these with the node (no
    /// churn). Content in `Held` parts too (often the same digest).
    pub current: Option<(u32, [u8; 16])>,
}

/// One part of an address set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Part {
    /// The whole set's digest.
    pub digest: [u8; 16],
    /// The whole set's size.
    pub count: u32,
    /// This part's index.
    pub part: u16,
    /// How many parts.
    pub parts: u16,
    /// The addresses in this part.
    pub addrs: Vec<IpAddr>,
}

/// A grant datagram's kind and body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// A node's report and request for grants.
    Claim(Claim),
    /// Part of a claim's explicit set.
    Held(Part),
    /// Part of the node's set at `version`.
    Share {
        /// The holder's epoch (its era, with its name).
        epoch: u64,
        /// The version this part belongs to.
        version: u64,
        /// The part.
        part: Part,
    },
    /// "You may bind the set of `version` (or keep binding the version you
    /// applied, if older), from the send time of claim `reply_to` for the
    /// grant window."
    Grant {
        /// The holder's epoch.
        epoch: u64,
        /// The claim answered.
        reply_to: u64,
        /// The newest version granted.
        version: u64,
    },
    /// The node stopped for good.
    Leave,
}

/// One authenticated grant datagram.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// The sender's voter name.
    pub from: String,
    /// The sender's voter-set hash (Q1).
    pub set: SetHash,
    /// The sender's sequence number (replay window).
    pub seq: u64,
    /// The sender's quorum term.
    pub term: u64,
    /// Kind and body.
    pub body: Body,
}

/// Whether a datagram carries the grant magic (the shell routes on this
/// before authenticating; authentication still decides).
pub fn is_grant_datagram(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn put_part(out: &mut Vec<u8>, p: &Part) {
    out.extend_from_slice(&p.digest);
    out.extend_from_slice(&p.count.to_be_bytes());
    out.extend_from_slice(&p.part.to_be_bytes());
    out.extend_from_slice(&p.parts.to_be_bytes());
    for a in &p.addrs {
        encode_addr(a, out);
    }
}

impl Message {
    /// Encodes and signs. Parts built with [`PART_BUDGET`] always fit
    /// [`MAX_DATAGRAM`].
    pub fn encode(&self, key: &AuthKey) -> Vec<u8> {
        let kind = match &self.body {
            Body::Claim(_) => 1,
            Body::Held(_) => 2,
            Body::Share { .. } => 3,
            Body::Grant { .. } => 4,
            Body::Leave => 5,
        };
        let mut out = frame(MAGIC, kind, &self.set, &self.from, self.seq, self.term);
        match &self.body {
            Body::Claim(c) => {
                out.extend_from_slice(&c.epoch.to_be_bytes());
                out.push(u8::from(c.draining));
                out.extend_from_slice(&c.refv.to_be_bytes());
                out.extend_from_slice(&c.floor.to_be_bytes());
                out.extend_from_slice(&c.have.to_be_bytes());
                for e in [c.explicit, c.current] {
                    let (n, d) = e.unwrap_or((0, [0; 16]));
                    out.extend_from_slice(&n.to_be_bytes());
                    out.extend_from_slice(&d);
                }
            }
            Body::Held(p) => put_part(&mut out, p),
            Body::Share {
                epoch,
                version,
                part,
            } => {
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&version.to_be_bytes());
                put_part(&mut out, part);
            }
            Body::Grant {
                epoch,
                reply_to,
                version,
            } => {
                out.extend_from_slice(&epoch.to_be_bytes());
                out.extend_from_slice(&reply_to.to_be_bytes());
                out.extend_from_slice(&version.to_be_bytes());
            }
            Body::Leave => {}
        }
        seal(out, key)
    }

    /// Verifies and decodes one datagram; never panics.
    pub fn decode(bytes: &[u8], key: &AuthKey) -> Result<Message, DropReason> {
        let (h, mut r) = open(bytes, MAGIC, key)?;
        let Header {
            kind,
            set,
            from,
            seq,
            term,
        } = h;
        let body = match kind {
            1 => {
                let epoch = r.u64()?;
                let draining = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DropReason::Malformed),
                };
                let refv = r.u64()?;
                let floor = r.u64()?;
                let have = r.u64()?;
                let count = r.u32()?;
                let digest = read_digest(&mut r)?;
                let ccount = r.u32()?;
                let cdigest = read_digest(&mut r)?;
                Body::Claim(Claim {
                    epoch,
                    draining,
                    refv,
                    floor,
                    have,
                    explicit: (count > 0).then_some((count, digest)),
                    current: (ccount > 0).then_some((ccount, cdigest)),
                })
            }
            2 => Body::Held(part(&mut r)?),
            3 => {
                let epoch = r.u64()?;
                let version = r.u64()?;
                Body::Share {
                    epoch,
                    version,
                    part: part(&mut r)?,
                }
            }
            4 => Body::Grant {
                epoch: r.u64()?,
                reply_to: r.u64()?,
                version: r.u64()?,
            },
            5 => Body::Leave,
            _ => return Err(DropReason::Malformed),
        };
        r.finish()?;
        Ok(Message {
            from,
            set,
            seq,
            term,
            body,
        })
    }
}

fn read_digest(r: &mut Reader<'_>) -> Result<[u8; 16], DropReason> {
    let mut d = [0u8; 16];
    d.copy_from_slice(r.take(16)?);
    Ok(d)
}

fn part(r: &mut Reader<'_>) -> Result<Part, DropReason> {
    let digest = read_digest(r)?;
    let count = r.u32()?;
    let part = r.u16()?;
    let parts = r.u16()?;
    if parts == 0 || part >= parts {
        return Err(DropReason::Malformed);
    }
    let mut addrs = Vec::new();
    while !r.is_empty() {
        let a = match r.u8()? {
            4 => {
                let mut o = [0u8; 4];
                o.copy_from_slice(r.take(4)?);
                IpAddr::V4(Ipv4Addr::from(o))
            }
            6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(r.take(16)?);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return Err(DropReason::Malformed),
        };
        addrs.push(a);
    }
    Ok(Part {
        digest,
        count,
        part,
        parts,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::set::{digest_of, split};
    use std::collections::BTreeSet;

    fn key() -> AuthKey {
        AuthKey::new(&[7u8; 32]).unwrap()
    }

    fn msg(body: Body) -> Message {
        Message {
            from: "n".repeat(MAX_NAME),
            set: SetHash([3; 16]),
            seq: 9,
            term: 4,
            body,
        }
    }

    #[test]
    fn every_kind_round_trips_and_full_parts_fit() {
        let big: BTreeSet<IpAddr> = (0..500u16)
            .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)))
            .collect();
        let parts = split(&big, PART_BUDGET);
        let d = digest_of(&big);
        let part = Part {
            digest: d,
            count: 500,
            part: 0,
            parts: parts.len() as u16,
            addrs: parts[0].clone(),
        };
        for body in [
            Body::Claim(Claim {
                epoch: 77,
                draining: true,
                refv: 3,
                floor: 2,
                have: 5,
                explicit: Some((500, d)),
                current: Some((499, [1; 16])),
            }),
            Body::Claim(Claim {
                epoch: 0,
                draining: false,
                refv: 0,
                floor: 0,
                have: 0,
                explicit: None,
                current: None,
            }),
            Body::Held(part.clone()),
            Body::Share {
                epoch: 5,
                version: 7,
                part: part.clone(),
            },
            Body::Grant {
                epoch: 5,
                reply_to: 11,
                version: 7,
            },
            Body::Leave,
        ] {
            let m = msg(body);
            let bytes = m.encode(&key());
            assert!(bytes.len() <= MAX_DATAGRAM, "{} bytes", bytes.len());
            assert!(is_grant_datagram(&bytes));
            assert_eq!(Message::decode(&bytes, &key()).unwrap(), m);
        }
    }

    #[test]
    fn forged_truncated_and_quorum_datagrams_are_refused() {
        let bytes = msg(Body::Leave).encode(&key());
        let other = AuthKey::new(&[8u8; 32]).unwrap();
        assert_eq!(Message::decode(&bytes, &other), Err(DropReason::BadMac));
        let mut flipped = bytes.clone();
        flipped[30] ^= 1;
        assert_eq!(Message::decode(&flipped, &key()), Err(DropReason::BadMac));
        assert_eq!(
            Message::decode(&bytes[..20], &key()),
            Err(DropReason::Short)
        );
        // A quorum datagram signed with the same key is not a grant.
        let q = vipd_quorum::Message {
            from: "n1".into(),
            set: SetHash([3; 16]),
            seq: 1,
            term: 1,
            body: vipd_quorum::Body::Release,
        }
        .encode(&key());
        assert!(!is_grant_datagram(&q));
        assert_eq!(Message::decode(&q, &key()), Err(DropReason::Malformed));
    }
}
