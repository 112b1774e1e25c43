//! The datagram format: typed messages with `encode`/`decode`, each
//! authenticated with HMAC-SHA256 over the whole datagram.
//!
//! ```text
//!  0      4     5          21    22..22+n  +8     +8     body   last 32
//! "VQ1\x01" kind set-hash  n     sender    seq    term   ...    HMAC-SHA256
//! ```
//!
//! All integers are big-endian. Bodies: replies carry `verdict: u8` and
//! `reply_to: u64` (the sequence number of the request answered);
//! `Heartbeat` and `Preempt` carry `priority: u8`; the others are empty.
//!
//! **Replay.** Every sender numbers its datagrams with a strictly increasing
//! `seq`, started by the shell from wall-clock nanoseconds at process start
//! (so it keeps growing across restarts); a receiver keeps the highest
//! `seq` it accepted per sender and drops anything not greater. A recorded
//! datagram therefore cannot be replayed to a receiver that has seen a
//! newer one from that sender; UDP reordering costs the older datagram,
//! which is harmless because every message is periodic or retried. A
//! receiver that restarted forgot its table and accepts one replay per
//! sender; that can only (a) make it promise a holder (it is quiet, Q5,
//! and grants nothing for P + margin anyway), or (b) deliver an old reply,
//! which is ignored because a reply counts only if its `reply_to` names a
//! request of the requester's current round, and requesters' sequence
//! numbers never repeat (wall-clock start). A replayed `Release` drops only
//! a promise of the same or an older term, which the holder had already
//! fenced. An attacker without the key can do nothing but drop or delay.

use crate::config::{AuthKey, SetHash, MAX_NAME};
use ring::hmac;

/// Largest datagram accepted or produced (fits any Internet path's MTU).
pub const MAX_DATAGRAM: usize = 1_200;
const MAGIC: &[u8; 4] = b"VQ1\x01";
const TAG: usize = 32;
/// Header bytes before the sender name.
const HEAD: usize = 4 + 1 + 16 + 1;
/// The shortest well-formed datagram: empty body, one-byte name.
const MIN_DATAGRAM: usize = HEAD + 1 + 8 + 8 + TAG;

/// A voter's answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Granted: a promise (Q3), except for a pre-vote, which promises nothing.
    Granted,
    /// The request's term is older than ours (the reply carries ours).
    StaleTerm,
    /// "I hear a live holder": a promise to another holder is unexpired
    /// (Q2, Q7).
    LiveHolder,
    /// We (re)started less than P + margin ago (Q5).
    Quiet,
    /// We already back another node in this term (Q2).
    AlreadyVoted,
}

/// A message's kind and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// Pre-vote request for the proposed `term` (Raft §9.6): changes nothing.
    PreVote,
    /// Answer to a pre-vote.
    PreVoteReply {
        /// The answer.
        verdict: Verdict,
        /// The request answered.
        reply_to: u64,
    },
    /// Vote request for `term`.
    Vote,
    /// Answer to a vote request.
    VoteReply {
        /// The answer.
        verdict: Verdict,
        /// The request answered.
        reply_to: u64,
    },
    /// A heartbeat round of the holder of `term`.
    Heartbeat {
        /// The holder's preemption priority.
        priority: u8,
    },
    /// Answer to a heartbeat.
    Ack {
        /// The answer.
        verdict: Verdict,
        /// The heartbeat answered.
        reply_to: u64,
    },
    /// The holder of `term` has removed its addresses: drop its promise (Q6).
    Release,
    /// Ask the holder to hand over gracefully (Q7 preemption).
    Preempt {
        /// The asker's priority.
        priority: u8,
    },
}

/// One authenticated datagram's content.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    /// The sender's voter name.
    pub from: String,
    /// The sender's voter-set hash (Q1).
    pub set: SetHash,
    /// The sender's sequence number.
    pub seq: u64,
    /// The term (for `PreVote`: the proposed term).
    pub term: u64,
    /// Kind and body.
    pub body: Body,
}

/// Why a datagram was dropped. Every drop is counted by reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// Shorter than the smallest valid datagram.
    #[error("datagram too short")]
    Short,
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram longer than {MAX_DATAGRAM} bytes")]
    Oversized,
    /// The HMAC does not verify (wrong key, corruption, forgery).
    #[error("bad MAC")]
    BadMac,
    /// Authentic but not parseable (bad magic, kind, lengths, verdict).
    #[error("malformed datagram")]
    Malformed,
    /// From another voter set (Q1).
    #[error("voter-set hash differs")]
    WrongSet,
    /// Sender not in our set, or ourselves.
    #[error("unknown sender")]
    UnknownSender,
    /// Sequence number not above the highest seen from that sender.
    #[error("replayed or reordered datagram")]
    Replay,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 7] = [
        DropReason::Short,
        DropReason::Oversized,
        DropReason::BadMac,
        DropReason::Malformed,
        DropReason::WrongSet,
        DropReason::UnknownSender,
        DropReason::Replay,
    ];

    /// A stable label for metrics (`reason="bad_mac"`).
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Short => "short",
            DropReason::Oversized => "oversized",
            DropReason::BadMac => "bad_mac",
            DropReason::Malformed => "malformed",
            DropReason::WrongSet => "wrong_set",
            DropReason::UnknownSender => "unknown_sender",
            DropReason::Replay => "replay",
        }
    }

    /// Index into a counter array.
    pub fn index(self) -> usize {
        self as usize
    }
}

fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Granted => 0,
        Verdict::StaleTerm => 1,
        Verdict::LiveHolder => 2,
        Verdict::Quiet => 3,
        Verdict::AlreadyVoted => 4,
    }
}

fn verdict_of(b: u8) -> Option<Verdict> {
    Some(match b {
        0 => Verdict::Granted,
        1 => Verdict::StaleTerm,
        2 => Verdict::LiveHolder,
        3 => Verdict::Quiet,
        4 => Verdict::AlreadyVoted,
        _ => return None,
    })
}

impl Message {
    /// Encodes and signs. Names longer than [`MAX_NAME`] are refused by
    /// [`crate::VoterSet::new`], so the result always fits [`MAX_DATAGRAM`].
    pub fn encode(&self, key: &AuthKey) -> Vec<u8> {
        let (kind, extra): (u8, Option<(u8, Option<u64>)>) = match self.body {
            Body::PreVote => (1, None),
            Body::PreVoteReply { verdict, reply_to } => {
                (2, Some((verdict_code(verdict), Some(reply_to))))
            }
            Body::Vote => (3, None),
            Body::VoteReply { verdict, reply_to } => {
                (4, Some((verdict_code(verdict), Some(reply_to))))
            }
            Body::Heartbeat { priority } => (5, Some((priority, None))),
            Body::Ack { verdict, reply_to } => (6, Some((verdict_code(verdict), Some(reply_to)))),
            Body::Release => (7, None),
            Body::Preempt { priority } => (8, Some((priority, None))),
        };
        let mut out = frame(MAGIC, kind, &self.set, &self.from, self.seq, self.term);
        if let Some((b, r)) = extra {
            out.push(b);
            if let Some(r) = r {
                out.extend_from_slice(&r.to_be_bytes());
            }
        }
        seal(out, key)
    }

    /// Verifies and decodes one datagram. Never panics; the set hash and
    /// the sequence number are checked by the core, which owns the state.
    pub fn decode(bytes: &[u8], key: &AuthKey) -> Result<Message, DropReason> {
        let (h, mut r) = open(bytes, MAGIC, key)?;
        let Header {
            kind,
            set,
            from,
            seq,
            term,
        } = h;
        let reply = |r: &mut Reader| -> Result<(Verdict, u64), DropReason> {
            let v = verdict_of(r.u8()?).ok_or(DropReason::Malformed)?;
            Ok((v, r.u64()?))
        };
        let body = match kind {
            1 => Body::PreVote,
            2 => {
                let (verdict, reply_to) = reply(&mut r)?;
                Body::PreVoteReply { verdict, reply_to }
            }
            3 => Body::Vote,
            4 => {
                let (verdict, reply_to) = reply(&mut r)?;
                Body::VoteReply { verdict, reply_to }
            }
            5 => Body::Heartbeat { priority: r.u8()? },
            6 => {
                let (verdict, reply_to) = reply(&mut r)?;
                Body::Ack { verdict, reply_to }
            }
            7 => Body::Release,
            8 => Body::Preempt { priority: r.u8()? },
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

/// The header both protocols on the quorum socket share (this one and the
/// Services grants, `vipd-grants`), each with its own magic; the MAC covers
/// the magic, so a datagram of one never verifies as the other's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The message kind (the protocol's own numbering).
    pub kind: u8,
    /// The sender's voter-set hash (Q1).
    pub set: SetHash,
    /// The sender's voter name.
    pub from: String,
    /// The sender's sequence number.
    pub seq: u64,
    /// The sender's term.
    pub term: u64,
}

/// Starts a datagram: magic, kind, set hash, name (cut to [`MAX_NAME`]),
/// seq, term. The caller appends the body and calls [`seal`].
pub fn frame(magic: &[u8; 4], kind: u8, set: &SetHash, from: &str, seq: u64, term: u64) -> Vec<u8> {
    let name = &from.as_bytes()[..from.len().min(MAX_NAME)];
    let mut out = Vec::with_capacity(HEAD + name.len() + 16 + 48 + TAG);
    out.extend_from_slice(magic);
    out.push(kind);
    out.extend_from_slice(&set.0);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&term.to_be_bytes());
    out
}

/// Appends the HMAC-SHA256 of everything before it.
pub fn seal(mut out: Vec<u8>, key: &AuthKey) -> Vec<u8> {
    let tag = hmac::sign(&key.0, &out);
    out.extend_from_slice(tag.as_ref());
    out
}

/// Checks size, authenticates (before parsing anything; constant-time
/// compare inside ring) and reads the header of a datagram with `magic`;
/// returns the header and a reader over the body. Never panics.
pub fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8; 4],
    key: &AuthKey,
) -> Result<(Header, Reader<'a>), DropReason> {
    if bytes.len() < MIN_DATAGRAM {
        return Err(DropReason::Short);
    }
    if bytes.len() > MAX_DATAGRAM {
        return Err(DropReason::Oversized);
    }
    let (data, tag) = bytes.split_at(bytes.len() - TAG);
    hmac::verify(&key.0, data, tag).map_err(|_| DropReason::BadMac)?;
    let mut r = Reader(data);
    if r.take(4)? != magic {
        return Err(DropReason::Malformed);
    }
    let kind = r.u8()?;
    let mut set = [0u8; 16];
    set.copy_from_slice(r.take(16)?);
    let n = usize::from(r.u8()?);
    if n == 0 || n > MAX_NAME {
        return Err(DropReason::Malformed);
    }
    let from = std::str::from_utf8(r.take(n)?)
        .map_err(|_| DropReason::Malformed)?
        .to_owned();
    let seq = r.u64()?;
    let term = r.u64()?;
    let header = Header {
        kind,
        set: SetHash(set),
        from,
        seq,
        term,
    };
    Ok((header, r))
}

/// A bounds-checked cursor over a datagram body (big-endian): every read
/// fails with `Malformed` instead of panicking.
#[derive(Debug)]
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DropReason> {
        if self.0.len() < n {
            return Err(DropReason::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DropReason> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DropReason> {
        let mut b = [0u8; 2];
        b.copy_from_slice(self.take(2)?);
        Ok(u16::from_be_bytes(b))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DropReason> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DropReason> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Malformed` unless every byte was read.
    pub fn finish(&self) -> Result<(), DropReason> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DropReason::Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuthKey {
        AuthKey::new(&[7u8; 32]).expect("key")
    }

    #[test]
    fn every_kind_round_trips() {
        let bodies = [
            Body::PreVote,
            Body::PreVoteReply {
                verdict: Verdict::LiveHolder,
                reply_to: 9,
            },
            Body::Vote,
            Body::VoteReply {
                verdict: Verdict::Granted,
                reply_to: u64::MAX,
            },
            Body::Heartbeat { priority: 3 },
            Body::Ack {
                verdict: Verdict::Quiet,
                reply_to: 1,
            },
            Body::Release,
            Body::Preempt { priority: 200 },
        ];
        for body in bodies {
            let m = Message {
                from: "node-a".into(),
                set: SetHash([5; 16]),
                seq: 42,
                term: 7,
                body,
            };
            let b = m.encode(&key());
            assert!(b.len() <= MAX_DATAGRAM);
            assert_eq!(Message::decode(&b, &key()), Ok(m));
        }
    }

    #[test]
    fn tampering_and_sizes_are_typed_drops() {
        let m = Message {
            from: "n".into(),
            set: SetHash([0; 16]),
            seq: 1,
            term: 1,
            body: Body::Release,
        };
        let mut b = m.encode(&key());
        assert_eq!(b.len(), MIN_DATAGRAM);
        assert_eq!(
            Message::decode(&b[..b.len() - 1], &key()),
            Err(DropReason::Short)
        );
        assert_eq!(
            Message::decode(&vec![0u8; MAX_DATAGRAM + 1], &key()),
            Err(DropReason::Oversized)
        );
        b[6] ^= 1;
        assert_eq!(Message::decode(&b, &key()), Err(DropReason::BadMac));
        let other = AuthKey::new(&[8u8; 32]).expect("key");
        assert_eq!(
            Message::decode(&m.encode(&other), &key()),
            Err(DropReason::BadMac)
        );
    }
}
