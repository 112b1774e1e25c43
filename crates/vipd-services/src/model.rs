//! What the ownership core reads and writes: the extra content of a node
//! lease, the assignment record, eligibility policies and the rendezvous
//! hash. See the crate docs for how they fit together.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// A node's identity: its node lease's `holderIdentity` (the Kubernetes node
/// name in Services mode).
pub type NodeId = String;

/// What a node publishes in its own lease besides client-go's fields (the
/// Kubernetes backend will carry it in an annotation of the Lease).
///
/// Meaning (the fact other nodes rely on): when the record was *sent*, the
/// node had applied assignment generation `generation` (or adopted it as a
/// floor) and was announcing nothing outside `held`; from then on it
/// announces an address only under a generation `>= generation` that names
/// it. A record with `expired` set was written by an assigner on behalf of a
/// dead node (a *tombstone*); its `held` is empty and the node, when it
/// returns, adopts `generation` as its floor before announcing anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    /// Assignment generation applied (or floor adopted) by the writer.
    pub generation: u64,
    /// Addresses the node was announcing when the record was sent.
    #[serde(default)]
    pub held: BTreeSet<IpAddr>,
    /// Written by an assigner after the lease expired (a tombstone).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
}

impl NodeState {
    /// True when this record proves its writer no longer announces `addr`
    /// under any generation before `since`: it had applied `since` or later
    /// and did not hold `addr` when it was sent (a tombstone holds nothing).
    pub fn stopped(&self, addr: &IpAddr, since: u64) -> bool {
        self.generation >= since && !self.held.contains(addr)
    }
}

/// One address in the assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The node that should announce the address; `None` while no eligible
    /// live node exists or after the address was removed (the entry stays
    /// until every prior owner has provably stopped).
    pub owner: Option<NodeId>,
    /// The generation at which `owner` became the owner. It does not change
    /// while the owner stays the same.
    pub since: u64,
    /// Earlier owners not yet proven to have stopped announcing. The owner
    /// starts only once each of them has published a record with
    /// `generation >= since` that does not hold the address (R1 per address).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub prior: BTreeSet<NodeId>,
}

/// The assignment record: which node announces each address. Written only
/// by the elected assigner, with optimistic concurrency on the record's
/// version; `generation` grows by one with every write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// Write counter: totally orders assignments (CAS makes it gapless).
    pub generation: u64,
    /// Owner per address.
    #[serde(default)]
    pub entries: BTreeMap<IpAddr, Entry>,
}

impl Assignment {
    /// Every node the assignment names, as owner or prior owner.
    pub fn referenced(&self) -> BTreeSet<&NodeId> {
        self.entries
            .values()
            .flat_map(|e| e.owner.iter().chain(e.prior.iter()))
            .collect()
    }
}

/// Zone affinity for one address (`topology.kubernetes.io/zone`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZonePin {
    /// Nodes of the pinned zone, tried first.
    pub preferred: BTreeSet<NodeId>,
    /// Whether the address may move out of the zone when no node of the
    /// zone is live and eligible (otherwise it stays unannounced).
    pub fallback: bool,
}

/// Which nodes may announce one address. The Kubernetes layer derives it
/// from `externalTrafficPolicy: Local` endpoints, the
/// `node.kubernetes.io/exclude-from-external-load-balancers` label, a node
/// selector and zone annotations; the core only sees node sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Eligible nodes; `None` means every live node.
    pub nodes: Option<BTreeSet<NodeId>>,
    /// Optional zone pin.
    pub zone: Option<ZonePin>,
}

impl Policy {
    /// The policy of an address shared by several Services: a node may own
    /// it only if every sharing Service allows it (one owner per address).
    /// Zone pins: the first pin wins; fallback only if both allow it.
    pub fn shared_with(&self, other: &Policy) -> Policy {
        let nodes = match (&self.nodes, &other.nodes) {
            (Some(a), Some(b)) => Some(a.intersection(b).cloned().collect()),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        let zone = match (&self.zone, &other.zone) {
            (Some(a), Some(b)) => Some(ZonePin {
                preferred: a.preferred.clone(),
                fallback: a.fallback && b.fallback,
            }),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        Policy { nodes, zone }
    }

    /// The nodes among `live` that may own the address, best tier first:
    /// the pinned zone if any node of it qualifies, else (with fallback, or
    /// without a pin) every qualifying node.
    pub fn candidates<'a>(&self, live: &'a BTreeSet<NodeId>) -> BTreeSet<&'a NodeId> {
        let eligible: BTreeSet<&NodeId> = live
            .iter()
            .filter(|n| self.nodes.as_ref().is_none_or(|s| s.contains(*n)))
            .collect();
        match &self.zone {
            None => eligible,
            Some(pin) => {
                let zone: BTreeSet<&NodeId> = eligible
                    .iter()
                    .copied()
                    .filter(|n| pin.preferred.contains(*n))
                    .collect();
                if !zone.is_empty() {
                    zone
                } else if pin.fallback {
                    eligible
                } else {
                    BTreeSet::new()
                }
            }
        }
    }
}

/// Rendezvous (highest-random-weight) hashing weight of `node` for `addr`
/// (Thaler & Ravishankar, 1998): each node's share changes only by the
/// addresses that must move when a node joins or leaves. FNV-1a over the
/// bytes, finished with the splitmix64 mixer so close inputs spread.
pub fn hrw_weight(addr: &IpAddr, node: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    match addr {
        IpAddr::V4(a) => a.octets().iter().for_each(|b| eat(*b)),
        IpAddr::V6(a) => a.octets().iter().for_each(|b| eat(*b)),
    }
    // A separator so ("1.2.3.4", "5n") and ("1.2.3.45", "n") differ.
    eat(0xff);
    node.bytes().for_each(eat);
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The rendezvous winner for `addr` among `nodes` (ties broken by name, so
/// every assigner picks the same node).
pub fn hrw_pick<'a>(
    addr: &IpAddr,
    nodes: impl IntoIterator<Item = &'a NodeId>,
) -> Option<&'a NodeId> {
    nodes
        .into_iter()
        .max_by_key(|n| (hrw_weight(addr, n), std::cmp::Reverse(n.as_str())))
}
