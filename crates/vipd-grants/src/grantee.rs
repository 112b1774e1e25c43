//! The node half: what this node may bind, on whose grant, until when,
//! and what it reports in its claims.

use crate::set::{digest_of, AddrSet, Assembly};
use crate::wire::Claim;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Which assigner made a version: the holder's voter index and the epoch
/// it chose when it became holder (its sequence counter, which grows
/// across restarts). Quorum terms do not name an assigner: a voter that
/// restarts forgets its term, so one term can see two holders in turn
/// (their holds never overlap, Q4/Q5, but their versions must not mix).
pub(crate) type Era = (usize, u64);

/// Something this node binds or bound: a version of an era's grants, or
/// (`version: None`) the set it held itself while it was the holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bound {
    pub era: Era,
    pub version: Option<u64>,
    pub set: AddrSet,
}

/// A claim we sent: grants answering it are anchored at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    seq: u64,
    at: Duration,
    term: u64,
    to: usize,
}

/// How many sent claims a grant may answer (a grant older than the last
/// few claims is useless anyway: it is anchored further back).
const CLAIMS_KEPT: usize = 32;

#[derive(Clone, Debug, Default)]
pub(crate) struct Grantee {
    claims: VecDeque<Sent>,
    pub next_claim: Duration,
    /// What we bind (or would, if not draining) and, for a version, until
    /// when our grant lasts.
    pub applied: Option<Bound>,
    pub until: Duration,
    /// We never newly apply a version of this era at or below this.
    pub floor: Option<(Era, u64)>,
    /// What we stopped binding less than `jitter` ago: the shell may still
    /// be removing it, so claims keep reporting it.
    pub pending: Vec<Bound>,
    pub pending_until: Duration,
    incoming: Option<(Era, u64, Assembly)>,
    have: Option<(Era, u64, AddrSet)>,
    /// The newest grant heard: (era, anchor, version), applied once its
    /// share completes.
    last_grant: Option<(Era, Duration, u64)>,
    /// Whom we claim from: (quorum term, holder).
    pub claimed_to: Option<(u64, usize)>,
    /// The era of the holder we claim from, once it answered.
    pub era: Option<Era>,
}

impl Grantee {
    fn push_pending(&mut self, now: Duration, b: Bound, settle: Duration) {
        if now >= self.pending_until {
            self.pending.clear();
        }
        self.pending.push(b);
        self.pending_until = self.pending_until.max(now + settle);
    }

    /// Stops binding what we applied (expiry, drain, stop, fence).
    pub fn drop_applied(&mut self, now: Duration, settle: Duration) {
        if let Some(b) = self.applied.take() {
            if let Some(v) = b.version {
                if self.floor.is_none_or(|f| f.0 != b.era || f.1 < v) {
                    self.floor = Some((b.era, v));
                }
            }
            self.push_pending(now, b, settle);
            self.next_claim = self.next_claim.min(now + settle);
        }
    }

    /// Stops binding `b` (it is no longer ours) without a floor: used when
    /// the holder steps down.
    pub fn drop_bound(&mut self, now: Duration, b: Bound, settle: Duration) {
        self.push_pending(now, b, settle);
        self.next_claim = self.next_claim.min(now + settle);
    }

    fn apply(&mut self, now: Duration, b: Bound, until: Duration, settle: Duration) {
        let same = self
            .applied
            .as_ref()
            .is_some_and(|a| a.era == b.era && a.version == b.version);
        if same {
            self.until = self.until.max(until);
            return;
        }
        if let Some(old) = self.applied.take() {
            self.push_pending(now, old, settle);
        }
        self.applied = Some(b);
        self.until = until;
        // Report the switch as soon as the old set is surely removed.
        self.next_claim = self.next_claim.min(now + settle);
    }

    /// The claim to send to the holder whose era we know (`self.era`;
    /// none yet: everything is explicit), and the sets whose parts go with
    /// it. Covers everything we bind now, everything we stopped binding
    /// less than the shell's removal bound ago, and every version we could
    /// still apply (see the crate docs, "Claims").
    pub fn report(&self, now: Duration, draining: bool) -> (Claim, Vec<AddrSet>) {
        let era = self.era;
        let pending = if now < self.pending_until {
            &self.pending[..]
        } else {
            &[]
        };
        let items = self.applied.iter().chain(pending.iter());
        let mut refv: Option<u64> = None;
        let mut explicit: BTreeSet<_> = BTreeSet::new();
        for b in items {
            match b.version {
                Some(v) if Some(b.era) == era => refv = Some(refv.map_or(v, |r| r.min(v))),
                _ => explicit.extend(b.set.iter().copied()),
            }
        }
        let floor = self
            .floor
            .filter(|&(e, _)| Some(e) == era)
            .map_or(0, |(_, v)| v);
        let have = self
            .have
            .as_ref()
            .filter(|h| Some(h.0) == era)
            .map_or(0, |h| h.1);
        // Bound now, validly, outside this term's versions.
        let current = self
            .applied
            .as_ref()
            .filter(|b| (Some(b.era) != era || b.version.is_none()) && !b.set.is_empty())
            .filter(|b| b.version.is_none() || now < self.until)
            .map(|b| Arc::clone(&b.set));
        let ex = (!explicit.is_empty()).then(|| Arc::new(explicit));
        let name = |s: &AddrSet| (u32::try_from(s.len()).unwrap_or(u32::MAX), digest_of(s));
        let claim = Claim {
            epoch: era.map_or(0, |e| e.1),
            draining,
            refv: refv.unwrap_or(0),
            floor,
            have,
            explicit: ex.as_ref().map(name),
            current: current.as_ref().map(name),
        };
        let mut sets: Vec<AddrSet> = ex.into_iter().collect();
        if let Some(c) = current {
            if sets.first().is_none_or(|e| digest_of(e) != digest_of(&c)) {
                sets.push(c);
            }
        }
        (claim, sets)
    }

    /// Records a claim sent at `now`.
    pub fn sent(&mut self, seq: u64, now: Duration, term: u64, to: usize) {
        if self.claims.len() >= CLAIMS_KEPT {
            self.claims.pop_front();
        }
        self.claims.push_back(Sent {
            seq,
            at: now,
            term,
            to,
        });
    }

    fn cur_version(&self, era: Era) -> Option<u64> {
        self.applied
            .as_ref()
            .filter(|a| a.era == era)
            .and_then(|a| a.version)
    }

    fn floor_in(&self, era: Era) -> u64 {
        self.floor.filter(|f| f.0 == era).map_or(0, |f| f.1)
    }

    /// A grant or share from `era` (the holder of our current term):
    /// adopts a newer era, refuses an older one of the same holder (a
    /// message of its previous process).
    pub fn admit(&mut self, era: Era) -> bool {
        match self.era {
            Some(e) if e == era => true,
            Some(e) if e.0 == era.0 && e.1 > era.1 => false,
            _ => {
                self.era = Some(era);
                self.next_claim = Duration::ZERO;
                true
            }
        }
    }

    /// A grant from the holder of `era` in quorum term `term`, answering
    /// our claim `reply_to`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_grant(
        &mut self,
        now: Duration,
        term: u64,
        era: Era,
        reply_to: u64,
        version: u64,
        window: Duration,
        settle: Duration,
    ) {
        let from = era.0;
        let Some(sent) = self
            .claims
            .iter()
            .find(|c| c.seq == reply_to && c.term == term && c.to == from)
            .copied()
        else {
            return;
        };
        // Q4 for grants: the right runs from the claim's *send* time.
        let until = sent.at + window;
        if until <= now {
            return;
        }
        // Remember the newest grant: if its share is still incomplete, it
        // is applied when the share completes.
        if self.last_grant.is_none_or(|g| g.0 != era || g.1 <= sent.at) {
            self.last_grant = Some((era, sent.at, version));
        }
        self.use_grant(now, era, sent.at, version, window, settle);
    }

    fn use_grant(
        &mut self,
        now: Duration,
        era: Era,
        anchor: Duration,
        version: u64,
        window: Duration,
        settle: Duration,
    ) {
        let until = anchor + window;
        if until <= now {
            return;
        }
        let cur = self.cur_version(era);
        let floor = self.floor_in(era);
        // Exactly the version named, never one in between: a version the
        // holder made but never granted may hold addresses it has since
        // given to someone else (the simulation found that overlap). Our
        // applied version may be renewed: the holder counts it until we
        // report a newer one.
        let newer = self
            .have
            .as_ref()
            .filter(|h| h.0 == era && h.1 == version && h.1 > floor && cur.is_none_or(|c| h.1 > c));
        if let Some((e, v, set)) = newer.cloned() {
            self.apply(
                now,
                Bound {
                    era: e,
                    version: Some(v),
                    set,
                },
                until,
                settle,
            );
        } else if cur.is_some_and(|c| c <= version) {
            self.until = self.until.max(until);
        }
    }

    /// A share part from the holder of `era`; a grant already heard for
    /// its version is applied once the share completes.
    pub fn on_share(
        &mut self,
        now: Duration,
        era: Era,
        version: u64,
        part: crate::wire::Part,
        window: Duration,
        settle: Duration,
    ) {
        let cur = self.cur_version(era).unwrap_or(0);
        if version <= cur.max(self.floor_in(era))
            || self
                .have
                .as_ref()
                .is_some_and(|h| h.0 == era && h.1 >= version)
        {
            return;
        }
        let fresh = match &self.incoming {
            Some((e, v, asm)) => {
                *e != era
                    || *v < version
                    || (*v == version && !asm.matches(&part.digest, part.count, part.parts))
            }
            None => true,
        };
        if fresh {
            if self
                .incoming
                .as_ref()
                .is_some_and(|(e, v, _)| *e == era && *v > version)
            {
                return;
            }
            self.incoming = Some((
                era,
                version,
                Assembly::new(part.digest, part.count, part.parts),
            ));
        }
        let Some((_, _, asm)) = self.incoming.as_mut() else {
            return;
        };
        if let Some(set) = asm.add(part.part, part.addrs) {
            self.incoming = None;
            self.have = Some((era, version, set));
            if let Some((e, anchor, v)) = self.last_grant {
                if e == era {
                    self.use_grant(now, era, anchor, v, window, settle);
                }
            }
        }
    }
}
