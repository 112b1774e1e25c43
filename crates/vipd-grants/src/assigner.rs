//! The holder half: the address → node map, per-node versions, and the
//! claims that decide when an address may go to a new owner (R1 per
//! address).

use crate::grantee::Bound;
use crate::set::{AddrSet, Assembly};
use crate::wire::{Claim, Part};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use vipd_services::{desired, Assignment, Entry, NodeId, NodeState, Policy};

/// The Services the holder last saw (from its API watch; kept through an
/// API outage).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceView {
    /// Every LoadBalancer address that exists.
    pub addresses: BTreeSet<IpAddr>,
    /// Eligibility per address (absent: every live node), as in lease mode.
    pub policies: BTreeMap<IpAddr, Policy>,
}

/// What the holder knows of one other node in its term.
#[derive(Clone, Debug, Default)]
pub(crate) struct Peer {
    /// A claim of this term arrived.
    pub reported: bool,
    /// Its last claim was relative to another epoch (it has not heard
    /// from us yet): what it binds under that epoch is unknown to us.
    pub foreign: bool,
    /// The newest claim: (seq, receive time).
    pub last_claim: Option<(u64, Duration)>,
    pub draining: bool,
    /// It sent `Leave`: it binds nothing and never will (this process).
    pub left: bool,
    pub refv: u64,
    pub floor: u64,
    pub have: u64,
    pub explicit: Option<(u32, [u8; 16])>,
    pub explicit_set: Option<AddrSet>,
    pub current: Option<(u32, [u8; 16])>,
    pub current_set: Option<AddrSet>,
    asm: Vec<Assembly>,
    /// Sets completed before the claim naming them arrived (reordering).
    spare: Vec<AddrSet>,
    /// Sequence number of the newest claim applied (an older one that
    /// arrives late is ignored).
    claim_seq: u64,
    inherited: bool,
    /// The sets we made for it, by version.
    pub versions: BTreeMap<u64, AddrSet>,
    pub latest: u64,
    pub granted_max: u64,
    /// On our clock: every grant we sent it ends before this (receive time
    /// of the claim answered + the grant period).
    pub grant_expiry: Duration,
}

/// The holder's state for one term.
#[derive(Clone, Debug)]
pub(crate) struct Assigner {
    pub term: u64,
    /// Our epoch (see `grantee::Era`).
    pub epoch: u64,
    /// When we (first saw that we) became holder.
    pub since: Duration,
    pub owners: BTreeMap<IpAddr, usize>,
    pub peers: Vec<Peer>,
    /// What we bind ourselves (while holder).
    pub self_held: AddrSet,
    pub dirty: bool,
}

/// Timings and identity the assigner needs on each call (fixed for the
/// life of the core).
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub me: usize,
    /// Per voter: whether it may bind (not a witness).
    pub grantees: Vec<bool>,
    pub names: Vec<NodeId>,
    pub grant: Duration,
    pub live_window: Duration,
    pub preempt: bool,
}

impl Assigner {
    pub fn new(
        term: u64,
        epoch: u64,
        since: Duration,
        n: usize,
        me: usize,
        self_held: AddrSet,
    ) -> Assigner {
        let owners = self_held.iter().map(|a| (*a, me)).collect();
        Assigner {
            term,
            epoch,
            since,
            owners,
            peers: vec![Peer::default(); n],
            self_held,
            dirty: true,
        }
    }

    /// The view an assigner that has read no Services yet works from:
    /// every address a node reports binding (its own included), each
    /// eligible anywhere. Nothing it has not seen gets an owner.
    pub fn reported_view(&self) -> Arc<ServiceView> {
        let mut addresses: BTreeSet<IpAddr> = self.self_held.iter().copied().collect();
        for p in self.peers.iter().filter(|p| !p.left) {
            for set in [&p.current_set, &p.explicit_set].into_iter().flatten() {
                addresses.extend(set.iter().copied());
            }
        }
        Arc::new(ServiceView {
            addresses,
            policies: BTreeMap::new(),
        })
    }

    /// Whether `y` may bind `a` at `now`, on everything we know. The rules
    /// are the crate docs' "Claims"; each errs towards "yes".
    pub fn claimed(&self, y: usize, a: &IpAddr, now: Duration, grant: Duration) -> bool {
        let p = &self.peers[y];
        if p.left {
            return false;
        }
        let old_live = now < self.since + grant;
        if !p.reported || p.foreign {
            // Anything it was granted by an older holder ends before
            // `since + grant` (it was anchored before our hold began). No
            // node is exempt, not even the previous holder: it may have
            // bound grants of a holder we never heard of after its own
            // hold ended (terms repeat when voters restart; the simulation
            // found a term-based exemption unsafe).
            if old_live {
                return true;
            }
            if !p.reported {
                return false;
            }
        }
        if old_live && p.explicit.is_some() {
            match &p.explicit_set {
                Some(s) if !s.contains(a) => {}
                _ => return true,
            }
        }
        if now < p.grant_expiry {
            if p.refv > 0 {
                match p.versions.get(&p.refv) {
                    Some(s) if !s.contains(a) => {}
                    _ => return true,
                }
            }
            let base = if p.refv > 0 { p.refv } else { p.floor };
            if base < p.granted_max
                && p.versions
                    .range(base + 1..=p.granted_max)
                    .any(|(_, s)| s.contains(a))
            {
                return true;
            }
        }
        false
    }

    /// Whether `a` may be given to `z` now: nobody else may bind it.
    pub fn grantable(
        &self,
        a: &IpAddr,
        z: usize,
        now: Duration,
        ctx: &Ctx,
        self_pending: &[Bound],
    ) -> bool {
        if z != ctx.me
            && (self.self_held.contains(a) || self_pending.iter().any(|b| b.set.contains(a)))
        {
            return false;
        }
        (0..self.peers.len())
            .filter(|&y| y != z && y != ctx.me && ctx.grantees[y])
            .all(|y| !self.claimed(y, a, now, ctx.grant))
    }

    fn live(&self, y: usize, now: Duration, ctx: &Ctx) -> bool {
        let p = &self.peers[y];
        !p.left
            && !p.draining
            && p.last_claim
                .is_some_and(|(_, at)| at + ctx.live_window > now)
    }

    /// The live set, as node names.
    pub fn live_names(&self, now: Duration, ctx: &Ctx, me_live: bool) -> BTreeSet<NodeId> {
        (0..self.peers.len())
            .filter(|&y| {
                ctx.grantees[y]
                    && if y == ctx.me {
                        me_live
                    } else {
                        self.live(y, now, ctx)
                    }
            })
            .map(|y| ctx.names[y].clone())
            .collect()
    }

    /// Records a claim from `y`, received at `now` (marking the map dirty
    /// if anything it depends on changed). Returns `false` for a claim
    /// older than one already applied, which is ignored.
    pub fn on_claim(&mut self, y: usize, seq: u64, now: Duration, c: &Claim) -> bool {
        let p = &mut self.peers[y];
        if p.reported && seq < p.claim_seq {
            return false;
        }
        p.claim_seq = seq;
        // A report relative to another epoch says nothing about ours.
        let foreign = c.epoch != self.epoch;
        let (refv, floor) = if foreign { (0, 0) } else { (c.refv, c.floor) };
        let c = &Claim {
            refv,
            floor,
            have: if foreign { 0 } else { c.have },
            ..*c
        };
        let changed_foreign = p.foreign != foreign;
        p.foreign = foreign;
        let was_live = p.reported && !p.draining && !p.left;
        let changed = !p.reported
            || changed_foreign
            || p.left
            || p.draining != c.draining
            || p.refv != c.refv
            || p.floor != c.floor
            || p.explicit != c.explicit
            || p.current != c.current;
        if p.explicit != c.explicit {
            p.explicit_set = None;
        }
        if p.current != c.current {
            p.current_set = None;
            p.inherited = false;
        }
        p.current = c.current;
        for set in &p.spare {
            let d = crate::set::digest_of(set);
            if p.explicit.is_some_and(|(_, e)| e == d) && p.explicit_set.is_none() {
                p.explicit_set = Some(Arc::clone(set));
            }
            if p.current.is_some_and(|(_, e)| e == d) && p.current_set.is_none() {
                p.current_set = Some(Arc::clone(set));
            }
        }
        p.reported = true;
        p.left = false;
        p.last_claim = Some((seq, now));
        p.draining = c.draining;
        p.refv = c.refv;
        p.floor = c.floor;
        p.explicit = c.explicit;
        p.have = c.have;
        // Versions below what it reports are no longer needed.
        let keep_from = if c.refv > 0 { c.refv } else { c.floor + 1 };
        let latest = p.latest;
        p.versions.retain(|&v, _| v >= keep_from || v == latest);
        if changed || !was_live {
            self.dirty = true;
        }
        true
    }

    /// A part of one of `y`'s reported sets (explicit or current). Parts
    /// may arrive before their claim: a few assemblies and completed sets
    /// are kept for it.
    pub fn on_held(&mut self, y: usize, part: Part) {
        const KEPT: usize = 4;
        let p = &mut self.peers[y];
        let i = match p
            .asm
            .iter()
            .position(|a| a.matches(&part.digest, part.count, part.parts))
        {
            Some(i) => i,
            None => {
                if p.asm.len() >= KEPT {
                    p.asm.remove(0);
                }
                p.asm
                    .push(Assembly::new(part.digest, part.count, part.parts));
                p.asm.len() - 1
            }
        };
        let Some(set) = p.asm[i].add(part.part, part.addrs) else {
            return;
        };
        p.asm.remove(i);
        let mut used = false;
        if p.explicit.is_some_and(|(_, d)| d == part.digest) && p.explicit_set.is_none() {
            p.explicit_set = Some(Arc::clone(&set));
            used = true;
        }
        if p.current.is_some_and(|(_, d)| d == part.digest) && p.current_set.is_none() {
            p.current_set = Some(Arc::clone(&set));
            used = true;
        }
        if used {
            self.dirty = true;
        } else {
            if p.spare.len() >= 2 {
                p.spare.remove(0);
            }
            p.spare.push(set);
        }
    }

    pub fn on_leave(&mut self, y: usize) {
        self.peers[y].left = true;
        self.dirty = true;
    }

    /// Recomputes the map: inherits reported sets, asks the Services rules
    /// for the desired owner of every address, and moves an address only
    /// when nobody else may bind it. Returns the nodes whose set changed.
    pub fn reconcile(
        &mut self,
        now: Duration,
        ctx: &Ctx,
        view: &ServiceView,
        me_live: bool,
        self_pending: &[Bound],
    ) -> Vec<usize> {
        self.dirty = false;
        // 1. Inherit what nodes report binding now under an older term's
        // right (once per report): keeps owners through a holder change
        // (no churn). A node bound to an address now is the only one that
        // may bind it under any older grant (the old holders kept one
        // owner per address, and no older grant can be applied any more),
        // so this needs no check against other claims while older rights
        // may still run (`since + G`); a report arriving later may be
        // stale and is checked. What a node is merely still removing is
        // not inherited.
        let early = now < self.since + ctx.grant;
        for y in 0..self.peers.len() {
            let p = &self.peers[y];
            if p.inherited || p.left || y == ctx.me {
                continue;
            }
            let Some(set) = p.current_set.clone() else {
                continue;
            };
            self.peers[y].inherited = true;
            for a in set.iter() {
                if view.addresses.contains(a)
                    && !self.owners.contains_key(a)
                    && (early || self.grantable(a, y, now, ctx, self_pending))
                {
                    self.owners.insert(*a, y);
                }
            }
        }
        // 2. The Services rules (eligibility, zones, sharing, stickiness,
        // preemption) on the current owners.
        let live = self.live_names(now, ctx, me_live);
        let current = Assignment {
            generation: 0,
            entries: self
                .owners
                .iter()
                .map(|(a, &o)| {
                    (
                        *a,
                        Entry {
                            owner: Some(ctx.names[o].clone()),
                            since: 0,
                            prior: BTreeSet::new(),
                        },
                    )
                })
                .collect(),
        };
        let records: BTreeMap<NodeId, NodeState> = BTreeMap::new();
        let want = desired(
            &current,
            &vipd_services::View {
                live: &live,
                records: &records,
                addresses: &view.addresses,
                policies: &view.policies,
                preempt: ctx.preempt,
            },
        );
        let index = |name: &NodeId| ctx.names.iter().position(|n| n == name);
        let keys: BTreeSet<IpAddr> = self
            .owners
            .keys()
            .chain(want.entries.keys())
            .copied()
            .collect();
        for a in keys {
            let target = want
                .entries
                .get(&a)
                .and_then(|e| e.owner.as_ref())
                .and_then(index);
            let cur = self.owners.get(&a).copied();
            if target == cur {
                continue;
            }
            // 3. Take it from its owner first (the owner's next version
            // lacks it); give it to the new one only once nobody else may
            // bind it.
            self.owners.remove(&a);
            if let Some(z) = target {
                if self.grantable(&a, z, now, ctx, self_pending) {
                    self.owners.insert(a, z);
                }
            }
        }
        // 4. New versions where a node's set changed.
        let mut sets: Vec<BTreeSet<IpAddr>> = vec![BTreeSet::new(); self.peers.len()];
        for (a, &o) in &self.owners {
            sets[o].insert(*a);
        }
        let mut changed = Vec::new();
        for (y, set) in sets.into_iter().enumerate() {
            if y == ctx.me {
                if *self.self_held != set {
                    self.self_held = Arc::new(set);
                    changed.push(y);
                }
                continue;
            }
            let p = &mut self.peers[y];
            if !ctx.grantees[y] || !p.reported || p.left {
                continue;
            }
            let complete = (p.explicit.is_none() || p.explicit_set.is_some())
                && (p.current.is_none() || p.current_set.is_some());
            if !complete {
                continue;
            }
            let same = p.versions.get(&p.latest).is_some_and(|s| **s == set);
            // A node that dropped our latest (expiry, drain) never applies
            // it again: it needs a newer version even with equal content.
            let bump = p.latest > 0 && p.refv == 0 && p.floor >= p.latest;
            if !same || bump {
                p.latest += 1;
                p.versions.insert(p.latest, Arc::new(set));
                changed.push(y);
            }
        }
        changed
    }

    /// The instants at which a claim or the liveness of a node changes by
    /// time alone.
    fn wakes<'s>(&'s self, ctx: &Ctx) -> impl Iterator<Item = Duration> + 's {
        let (grant, live) = (ctx.grant, ctx.live_window);
        std::iter::once(self.since + grant).chain(self.peers.iter().flat_map(move |p| {
            std::iter::once(p.grant_expiry).chain(p.last_claim.map(|(_, r)| r + live))
        }))
    }

    /// The next such instant after `now`.
    pub fn next_wake(&self, now: Duration, ctx: &Ctx) -> Option<Duration> {
        self.wakes(ctx).filter(|&t| t > now).min()
    }

    /// Whether such an instant lies in `(last, now]`.
    pub fn woke(&self, last: Duration, now: Duration, ctx: &Ctx) -> bool {
        self.wakes(ctx).any(|t| t > last && t <= now)
    }
}
