//! Address sets as they travel: a digest that names a set, the split into
//! datagram-sized parts, and the reassembly of parts.

use ring::digest;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

/// A shared, immutable set of addresses (versions are kept by both sides
/// and handed to the shell without copying).
pub type AddrSet = Arc<BTreeSet<IpAddr>>;

/// Names a set: SHA-256 over the count and the sorted encoded addresses,
/// truncated to 16 bytes. Collisions need a forger with the key (every
/// datagram is authenticated) and 2^64 work; an honest mismatch only
/// makes the receiver wait for the right parts.
pub fn digest_of(set: &BTreeSet<IpAddr>) -> [u8; 16] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&(set.len() as u64).to_be_bytes());
    let mut buf = Vec::with_capacity(17);
    for a in set {
        buf.clear();
        encode_addr(a, &mut buf);
        ctx.update(&buf);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&ctx.finish().as_ref()[..16]);
    out
}

/// Appends one address: family byte (4 or 6), then its octets.
pub fn encode_addr(a: &IpAddr, out: &mut Vec<u8>) {
    match a {
        IpAddr::V4(v) => {
            out.push(4);
            out.extend_from_slice(&v.octets());
        }
        IpAddr::V6(v) => {
            out.push(6);
            out.extend_from_slice(&v.octets());
        }
    }
}

/// Encoded size of one address.
pub fn addr_len(a: &IpAddr) -> usize {
    match a {
        IpAddr::V4(_) => 5,
        IpAddr::V6(_) => 17,
    }
}

/// Splits `set` into parts of at most `budget` encoded bytes each, in
/// order; an empty set is one empty part (a receiver must learn that the
/// set is empty too).
pub fn split(set: &BTreeSet<IpAddr>, budget: usize) -> Vec<Vec<IpAddr>> {
    let mut parts = vec![Vec::new()];
    let mut used = 0;
    for a in set {
        let n = addr_len(a);
        if used + n > budget && !parts.last().is_none_or(Vec::is_empty) {
            parts.push(Vec::new());
            used = 0;
        }
        used += n;
        if let Some(p) = parts.last_mut() {
            p.push(*a);
        }
    }
    parts
}

/// One set being received in parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembly {
    /// The set's digest (what the parts must add up to).
    pub digest: [u8; 16],
    count: u32,
    parts: Vec<Option<Vec<IpAddr>>>,
}

impl Assembly {
    /// A new assembly of `parts` parts for a set of `count` addresses.
    pub fn new(digest: [u8; 16], count: u32, parts: u16) -> Assembly {
        Assembly {
            digest,
            count,
            parts: vec![None; usize::from(parts.max(1))],
        }
    }

    /// Whether a part with these header fields belongs to this assembly.
    pub fn matches(&self, digest: &[u8; 16], count: u32, parts: u16) -> bool {
        self.digest == *digest && self.count == count && self.parts.len() == usize::from(parts)
    }

    /// Adds part `i`; returns the set once every part arrived and the
    /// digest checks (a mismatch drops the assembly's content).
    pub fn add(&mut self, i: u16, addrs: Vec<IpAddr>) -> Option<AddrSet> {
        let slot = self.parts.get_mut(usize::from(i))?;
        *slot = Some(addrs);
        if self.parts.iter().any(Option::is_none) {
            return None;
        }
        let set: BTreeSet<IpAddr> = self.parts.iter().flatten().flatten().copied().collect();
        if set.len() as u64 == u64::from(self.count) && digest_of(&set) == self.digest {
            Some(Arc::new(set))
        } else {
            self.parts.iter_mut().for_each(|p| *p = None);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn addrs(n: u32) -> BTreeSet<IpAddr> {
        (0..n)
            .map(|i| {
                if i % 3 == 0 {
                    IpAddr::V6(format!("2001:db8::{i:x}").parse().unwrap())
                } else {
                    IpAddr::V4(std::net::Ipv4Addr::from(0xc633_6400 + i))
                }
            })
            .collect()
    }

    #[test]
    fn parts_reassemble_in_any_order_and_respect_the_budget() {
        let set = addrs(700);
        let parts = split(&set, 1_000);
        assert!(parts.len() > 5);
        for p in &parts {
            assert!(p.iter().map(addr_len).sum::<usize>() <= 1_000);
        }
        let d = digest_of(&set);
        let mut asm = Assembly::new(d, set.len() as u32, parts.len() as u16);
        let mut got = None;
        for (i, p) in parts.iter().enumerate().rev() {
            assert!(got.is_none());
            got = asm.add(i as u16, p.clone());
        }
        assert_eq!(*got.unwrap(), set);
    }

    #[test]
    fn an_empty_set_is_one_part_and_a_wrong_part_is_refused() {
        let empty = BTreeSet::new();
        assert_eq!(split(&empty, 100), vec![Vec::<IpAddr>::new()]);
        let set = addrs(10);
        let mut asm = Assembly::new(digest_of(&set), 10, 1);
        assert!(asm.add(0, addrs(9).into_iter().collect()).is_none());
        assert!(asm.add(3, Vec::new()).is_none());
        assert_eq!(*asm.add(0, set.iter().copied().collect()).unwrap(), set);
    }
}
