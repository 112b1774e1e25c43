//! The assigner's pure function: from the current assignment, the live
//! nodes and the policies to the desired assignment.

use crate::model::{hrw_pick, Assignment, Entry, NodeId, NodeState, Policy};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Everything [`desired`] looks at.
#[derive(Debug)]
pub struct View<'a> {
    /// Nodes live on the assigner's clock.
    pub live: &'a BTreeSet<NodeId>,
    /// The latest record seen of each node (for pruning prior owners).
    pub records: &'a BTreeMap<NodeId, NodeState>,
    /// Addresses that exist.
    pub addresses: &'a BTreeSet<IpAddr>,
    /// Eligibility per address (absent: every live node).
    pub policies: &'a BTreeMap<IpAddr, Policy>,
    /// `--preempt`: the rendezvous winner takes an address back from a live
    /// owner.
    pub preempt: bool,
}

/// The assignment the assigner wants, with `generation` left at the
/// current one (the caller bumps it when writing). Equal entries mean no
/// write: the cost is O(changes), not O(addresses) per period.
///
/// Rules, per address: keep a live owner that is still in the best
/// candidate tier (sticky) unless `preempt` and another node wins the
/// rendezvous hash; otherwise the rendezvous winner of the tier, or nobody.
/// An owner change bumps `since` to the next generation and moves the old
/// owner into `prior`; a prior owner is dropped once its record proves it
/// stopped for the entry's `since`; an entry without owner and prior ends.
pub fn desired(current: &Assignment, view: &View<'_>) -> Assignment {
    let next = current.generation + 1;
    let default_policy = Policy::default();
    let keys: BTreeSet<IpAddr> = view
        .addresses
        .iter()
        .chain(current.entries.keys())
        .copied()
        .collect();
    let mut entries = BTreeMap::new();
    for addr in keys {
        let old = current.entries.get(&addr);
        let old_owner = old.and_then(|e| e.owner.as_ref());
        let owner: Option<NodeId> = if view.addresses.contains(&addr) {
            let policy = view.policies.get(&addr).unwrap_or(&default_policy);
            let tier = policy.candidates(view.live);
            match old_owner {
                Some(o) if tier.contains(o) && !view.preempt => Some(o.clone()),
                _ => hrw_pick(&addr, tier).cloned(),
            }
        } else {
            None
        };
        let mut entry = match old {
            Some(e) if e.owner == owner => e.clone(),
            Some(e) => {
                let mut prior = e.prior.clone();
                prior.extend(e.owner.iter().cloned());
                Entry {
                    owner: owner.clone(),
                    since: next,
                    prior,
                }
            }
            None => Entry {
                owner: owner.clone(),
                since: next,
                prior: BTreeSet::new(),
            },
        };
        if let Some(o) = &owner {
            // Moving back to an earlier owner: it checks the others itself.
            entry.prior.remove(o);
        }
        let since = entry.since;
        entry
            .prior
            .retain(|p| !view.records.get(p).is_some_and(|r| r.stopped(&addr, since)));
        if entry.owner.is_some() || !entry.prior.is_empty() {
            entries.insert(addr, entry);
        }
    }
    Assignment {
        generation: current.generation,
        entries,
    }
}
