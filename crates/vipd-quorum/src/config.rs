//! The voter set (Q1), the node's own configuration and the shared key.

use crate::timings::Timings;
use ring::{digest, hmac};
use std::net::SocketAddr;

/// Most voters a set may hold (vote bitmaps are `u64`; quorum mode targets
/// a handful of control-plane nodes).
pub const MAX_VOTERS: usize = 15;
/// Longest voter name, in bytes (it travels in every datagram).
pub const MAX_NAME: usize = 64;

/// What a voter may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VoterRole {
    /// Votes, campaigns and may hold.
    Node,
    /// Votes but never campaigns or holds (`vipd witness`, SPEC §5a).
    Witness,
}

/// One configured voter.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Voter {
    /// Its name (node name), unique in the set.
    pub name: String,
    /// Where its quorum socket listens.
    pub addr: SocketAddr,
    /// Node or witness.
    pub role: VoterRole,
}

/// The first 16 bytes of SHA-256 over the set's canonical encoding (Q1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SetHash(pub [u8; 16]);

/// The configured voter set, sorted by name, identical on every member (Q1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VoterSet {
    voters: Vec<Voter>,
    hash: SetHash,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No voters, or more than [`MAX_VOTERS`].
    #[error("the voter set must have 1..={MAX_VOTERS} voters, got {0}")]
    VoterCount(usize),
    /// A name is empty, too long or repeated.
    #[error("voter name {0:?} is empty, longer than {MAX_NAME} bytes, or repeated")]
    BadName(String),
    /// This node's name is not in the set.
    #[error("this node {0:?} is not in the voter set")]
    NotAVoter(String),
    /// Fewer than 16 key bytes.
    #[error("the shared quorum key must be at least 16 bytes, got {0}")]
    ShortKey(usize),
}

impl VoterSet {
    /// Validates and sorts the set, and computes its hash.
    pub fn new(mut voters: Vec<Voter>) -> Result<Self, ConfigError> {
        if voters.is_empty() || voters.len() > MAX_VOTERS {
            return Err(ConfigError::VoterCount(voters.len()));
        }
        voters.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, v) in voters.iter().enumerate() {
            let repeated = i > 0 && voters[i - 1].name == v.name;
            if v.name.is_empty() || v.name.len() > MAX_NAME || repeated {
                return Err(ConfigError::BadName(v.name.clone()));
            }
        }
        // Canonical encoding: per voter, sorted by name, `name NUL addr LF`.
        // Names cannot hold NUL (they are node names), and SocketAddr's
        // Display is canonical, so equal sets and only equal sets encode
        // equally. The role is left out on purpose: a witness marks only
        // its own entry (`vipd witness`), so every member is given the same
        // `--peers` list and still computes the same hash.
        let mut ctx = digest::Context::new(&digest::SHA256);
        for v in &voters {
            ctx.update(format!("{}\0{}\n", v.name, v.addr).as_bytes());
        }
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&ctx.finish().as_ref()[..16]);
        Ok(VoterSet {
            voters,
            hash: SetHash(hash),
        })
    }

    /// The voters, sorted by name (indices used by the core).
    pub fn voters(&self) -> &[Voter] {
        &self.voters
    }

    /// The set's hash (Q1).
    pub fn hash(&self) -> SetHash {
        self.hash
    }

    /// Index of the voter called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.voters
            .binary_search_by(|v| v.name.as_str().cmp(name))
            .ok()
    }

    /// Votes needed: a strict majority of all voters, witnesses included.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }
}

/// The shared HMAC-SHA256 key every datagram is signed with.
#[derive(Clone)]
pub struct AuthKey(pub(crate) hmac::Key);

impl AuthKey {
    /// A key from raw bytes (at least 16; 32 random bytes recommended).
    pub fn new(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() < 16 {
            return Err(ConfigError::ShortKey(bytes.len()));
        }
        Ok(AuthKey(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }
}

impl std::fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (SPEC §6: no secrets in logs).
        f.write_str("AuthKey(..)")
    }
}

/// Everything one node's core needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The voter set.
    pub voters: VoterSet,
    /// Index of this node in [`VoterSet::voters`].
    pub me: usize,
    /// Timings.
    pub timings: Timings,
    /// The shared key.
    pub key: AuthKey,
    /// Q7 preemption: when true, a healthy node with a higher `priority`
    /// asks a lower-priority holder to hand over gracefully (Q6), and a
    /// holder honours such requests. Off by default: no disruption.
    pub preempt: bool,
    /// Preemption priority (higher wins), carried in heartbeats.
    pub priority: u8,
    /// Seed of the core's election-timeout PRNG (from the shell's RNG).
    pub seed: u64,
    /// First datagram sequence number: the shell passes wall-clock
    /// nanoseconds at process start, so it grows across restarts (see
    /// [`crate::wire`]).
    pub first_seq: u64,
}

impl Config {
    /// A configuration for the voter called `me`.
    pub fn new(
        voters: VoterSet,
        me: &str,
        timings: Timings,
        key: AuthKey,
        seed: u64,
        first_seq: u64,
    ) -> Result<Self, ConfigError> {
        let idx = voters
            .index_of(me)
            .ok_or_else(|| ConfigError::NotAVoter(me.to_owned()))?;
        Ok(Config {
            voters,
            me: idx,
            timings,
            key,
            preempt: false,
            priority: 0,
            seed,
            first_seq,
        })
    }

    /// Whether this node is a witness.
    pub fn is_witness(&self) -> bool {
        self.voters.voters()[self.me].role == VoterRole::Witness
    }
}

/// The quorum port a `--peers` entry gets when it names none.
pub const DEFAULT_PORT: u16 = 7480;

/// Why a `--peers` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeersError {
    /// An entry is not `NAME=IP[:PORT]`.
    #[error("peer entry {entry:?} is not NAME=IP[:PORT] (IPv6 as NAME=[2001:db8::1]:PORT)")]
    Entry {
        /// The offending entry.
        entry: String,
    },
    /// The list is empty.
    #[error("the peer list is empty")]
    Empty,
}

/// Parses `NAME=IP[:PORT],...` (IPv6 addresses in brackets when a port
/// follows) into voters of role [`VoterRole::Node`]; a missing port is
/// [`DEFAULT_PORT`]. Names and count are checked by [`VoterSet::new`].
pub fn parse_peers(list: &str) -> Result<Vec<Voter>, PeersError> {
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || PeersError::Entry {
            entry: entry.to_owned(),
        };
        let (name, addr) = entry.split_once('=').ok_or_else(bad)?;
        let (name, addr) = (name.trim(), addr.trim());
        if name.is_empty() {
            return Err(bad());
        }
        let addr = if let Ok(sa) = addr.parse::<SocketAddr>() {
            sa
        } else if let Ok(ip) = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
        {
            SocketAddr::new(ip, DEFAULT_PORT)
        } else {
            return Err(bad());
        };
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Err(bad());
        }
        out.push(Voter {
            name: name.to_owned(),
            addr,
            role: VoterRole::Node,
        });
    }
    if out.is_empty() {
        return Err(PeersError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_with_and_without_ports_and_ipv6() {
        let v =
            parse_peers("n1=192.0.2.11:7000, n2=192.0.2.12,n3=[2001:db8::3]:7001,n4=2001:db8::4")
                .unwrap();
        let addrs: Vec<String> = v.iter().map(|v| v.addr.to_string()).collect();
        assert_eq!(
            addrs,
            [
                "192.0.2.11:7000",
                "192.0.2.12:7480",
                "[2001:db8::3]:7001",
                "[2001:db8::4]:7480"
            ]
        );
        assert_eq!(v[1].name, "n2");
        for bad in [
            "n1",
            "=192.0.2.1",
            "n1=host:1",
            "n1=192.0.2.1:0",
            "n1=0.0.0.0:7480",
        ] {
            assert!(
                matches!(parse_peers(bad), Err(PeersError::Entry { .. })),
                "{bad}"
            );
        }
        assert_eq!(parse_peers(" , "), Err(PeersError::Empty));
    }

    #[test]
    fn the_set_hash_ignores_roles_and_order_but_not_addresses() {
        let a = parse_peers("a=192.0.2.1,b=192.0.2.2,w=192.0.2.3").unwrap();
        let mut b = parse_peers("w=192.0.2.3,b=192.0.2.2,a=192.0.2.1").unwrap();
        b[0].role = VoterRole::Witness;
        let c = parse_peers("a=192.0.2.1,b=192.0.2.2,w=192.0.2.4").unwrap();
        let (a, b, c) = (
            VoterSet::new(a).unwrap(),
            VoterSet::new(b).unwrap(),
            VoterSet::new(c).unwrap(),
        );
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), c.hash());
    }
}
