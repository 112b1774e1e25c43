//! A bounded exhaustive model checker over the real quorum and grant
//! cores (issue 13): from start states around the moments that matter
//! (steady state, the assigner partitioned just before its hold ends, the
//! assigner crashed as its successor starts — also after stickiness left
//! an address off its rendezvous winner —, a node crashed just before its
//! grant expires, an address moving, a node draining), every
//! interleaving up to a depth of datagram delivery (any order), loss,
//! duplication, time advancing to the next wake-up, a crash and a
//! partition of the assigner; then a fair run with every fault healed.
//!
//! Discretisation as in `vipd-quorum`'s model: clocks at a constant rate
//! error of exactly −ρ, 0 or +ρ (ρ = 5%) in every assignment of `RATES`;
//! timings scaled down (P = 60 ms, heartbeat 15 ms, election wait 1–2 ms,
//! jitter 2 ms, grant period 100 ms). Oracle: `common::Cluster`'s (never
//! two nodes binding one address, removals in flight and dead nodes'
//! leftovers included); after the fair run every address is bound.
//!
//! `VIPD_MODEL_DEPTH` (default 3) sets the exploration depth per start.
//!
//! Mutation-checked on 2026-12-07: the randomized simulation finds every
//! mutation tried (unreported nodes not counted, grant window without the
//! drift and jitter margin, claims without removals in flight: within
//! 3,000 schedules; applying an ungranted version in between: three seeds
//! in 40,000, which is how it was found); this model, at depth 3 and 4, finds none
//! of them — its start states do not reach the histories they need (e.g.
//! an address held off its rendezvous winner by a node whose claims are
//! late when the assigner changes). It is kept as a check of the handovers
//! it does reach, with every interleaving and clock assignment.

#![allow(clippy::unwrap_used)]
// Wall time of the run, for the printed report only (never in logic).
#![allow(clippy::disallowed_types)]

mod common;

use common::{addresses, voters, Cluster};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};
use vipd_grants::wire;
use vipd_grants::{Input as GInput, ServiceView};
use vipd_quorum::AuthKey;
use vipd_quorum::Timings;
use vipd_services::{hrw_weight, Policy};
use vipd_sim::{env_u64, MS, SEC};

const RHO: i64 = 50_000;
const RATES: [[i64; 3]; 9] = [
    [RHO, RHO, RHO],
    [RHO, RHO, -RHO],
    [RHO, -RHO, RHO],
    [RHO, -RHO, -RHO],
    [-RHO, RHO, RHO],
    [-RHO, RHO, -RHO],
    [-RHO, -RHO, RHO],
    [-RHO, -RHO, -RHO],
    [0, 0, 0],
];

fn timings() -> Timings {
    let ms = Duration::from_millis;
    Timings::new(ms(60), ms(15), ms(1), ms(2), 50_000, ms(2)).unwrap()
}

const GRANT: Duration = Duration::from_millis(100);

#[derive(Clone)]
struct S {
    c: Cluster,
    loss: u8,
    dup: u8,
    crash: u8,
    cut: u8,
}

fn fingerprint(s: &S) -> u64 {
    let mut h = DefaultHasher::new();
    for q in &s.c.q {
        format!("{q:?}").hash(&mut h);
    }
    for g in &s.c.g {
        format!("{g:?}").hash(&mut h);
    }
    s.c.bag.hash(&mut h);
    (&s.c.side, &s.c.bound, s.c.now(), &s.c.wake_at).hash(&mut h);
    (s.loss, s.dup, s.crash, s.cut).hash(&mut h);
    h.finish()
}

fn holder(c: &Cluster) -> Option<usize> {
    (0..c.n()).find(|&i| {
        c.g[i]
            .as_ref()
            .is_some_and(|g| g.status(c.local(i)).assigner)
    })
}

fn successors(s: &S) -> Vec<S> {
    let mut out = Vec::new();
    let bag = s.c.bag.clone().unwrap_or_default();
    let mut seen = Vec::new();
    for (k, p) in bag.iter().enumerate() {
        if seen.contains(p) {
            continue;
        }
        seen.push(p.clone());
        let mut t = s.clone();
        t.c.deliver(k);
        out.push(t);
        if s.loss > 0 {
            let mut t = s.clone();
            if let Some(b) = &mut t.c.bag {
                b.remove(k);
            }
            t.loss -= 1;
            out.push(t);
        }
        if s.dup > 0 {
            let mut t = s.clone();
            if let Some(b) = &mut t.c.bag {
                b.push(p.clone());
            }
            t.dup -= 1;
            out.push(t);
        }
    }
    if let Some(w) = s.c.next_wake() {
        let mut t = s.clone();
        t.c.run_until(w);
        out.push(t);
    }
    if s.crash > 0 {
        for i in 0..s.c.n() {
            if s.c.alive(i) {
                let mut t = s.clone();
                t.c.crash(i);
                t.crash -= 1;
                out.push(t);
            }
        }
    }
    if s.cut > 0 {
        if let Some(h) = holder(&s.c) {
            let mut t = s.clone();
            t.c.side[h] = 1;
            t.cut -= 1;
            out.push(t);
        }
    }
    out
}

/// Heals everything, restarts the dead, and runs fairly: every address
/// must end up bound (and the oracle must stay quiet).
fn converges(s: &S) -> Result<(), String> {
    let mut c = s.c.clone();
    for i in 0..c.n() {
        c.side[i] = 0;
        if !c.alive(i) {
            c.start(i);
        }
    }
    let mut waited = 0;
    while waited < 3 * SEC {
        c.settle(50 * MS);
        waited += 50 * MS;
        if let Some(v) = c.violation.take() {
            return Err(v);
        }
        if c.dark().is_empty() {
            return Ok(());
        }
    }
    Err(format!(
        "{} addresses still unbound 3 s after healing",
        c.dark().len()
    ))
}

fn view(policy_on: Option<&str>) -> ServiceView {
    let addresses = addresses(6);
    let mut policies = BTreeMap::new();
    if let Some(n) = policy_on {
        let a = *addresses.iter().next().unwrap();
        policies.insert(
            a,
            Policy {
                nodes: Some(BTreeSet::from([n.to_string()])),
                zone: None,
            },
        );
    }
    ServiceView {
        addresses,
        policies,
    }
}

/// The named start states for one clock assignment.
fn starts(rates: &[i64; 3], witness: bool) -> Vec<(&'static str, Cluster)> {
    let mut base = Cluster::new(voters(3, witness), timings(), GRANT, rates, 1);
    base.bag = Some(Vec::new());
    base.set_view(view(None));
    base.settle(400 * MS);
    let mut out = vec![("steady", base.clone())];
    let Some(h) = holder(&base) else {
        return out;
    };
    let other = (0..3).find(|&i| i != h && !base.is_witness(i));
    // The assigner cut off, a little before its hold runs out.
    let mut c = base.clone();
    c.side[h] = 1;
    c.settle(40 * MS);
    out.push(("assigner-partitioned", c));
    // The assigner dead, the moment a successor holds.
    let mut c = base.clone();
    c.crash(h);
    let mut waited = 0;
    while holder(&c).is_none() && waited < SEC {
        c.settle(MS);
        waited += MS;
    }
    out.push(("assigner-crashed", c));
    if let Some(o) = other {
        // Stickiness: `o` dies, its addresses move, it comes back and gets
        // none of them back (no `--preempt`), so some address is bound off
        // its rendezvous winner; then the assigner dies. A successor that
        // trusted its own rules before hearing from every node would give
        // that address to `o` while its owner still binds it.
        let mut c = base.clone();
        c.crash(o);
        c.settle(300 * MS);
        c.start(o);
        c.settle(300 * MS);
        // The owner of an address whose rendezvous winner is `o`.
        let owner = c.view.addresses.clone().iter().find_map(|a| {
            let live: Vec<String> = (0..3)
                .filter(|&i| !c.is_witness(i))
                .map(|i| format!("n{i}"))
                .collect();
            let w = live.iter().max_by_key(|n| hrw_weight(a, n))?;
            let by = c.owners_of(a);
            (w == &format!("n{o}") && by.len() == 1 && by[0] != o).then_some(by[0])
        });
        if let (Some(h2), Some(x)) = (holder(&c), owner) {
            if h2 != x {
                c.crash(h2);
                // The owner's claims are late (lost), so the successor
                // must decide before it heard from it.
                let key = AuthKey::new(&common::KEY).unwrap();
                let mut waited = 0;
                while holder(&c).is_none() && waited < SEC {
                    if let Some(bag) = &mut c.bag {
                        bag.retain(|(_, b)| {
                            !wire::is_grant_datagram(b)
                                || wire::Message::decode(b, &key)
                                    .is_ok_and(|m| m.from != format!("n{x}"))
                        });
                    }
                    c.settle(MS);
                    waited += MS;
                }
                if holder(&c) != Some(x) {
                    out.push(("sticky-then-assigner-crashed", c));
                }
            }
        }
        // A node dead, just before its grant ends at the assigner.
        let mut c = base.clone();
        c.crash(o);
        c.settle(95 * MS);
        out.push(("node-crashed", c));
        // An address that must move to `o` (its policy changes).
        let mut c = base.clone();
        c.set_view(view(Some(&format!("n{o}"))));
        out.push(("address-moves", c));
        // A node draining.
        let mut c = base.clone();
        c.g_input(o, GInput::SetDraining(true));
        out.push(("node-drains", c));
    }
    out
}

#[test]
fn every_interleaving_keeps_one_binder_per_address_and_converges() {
    let depth = env_u64("VIPD_MODEL_DEPTH", 3);
    let t0 = Instant::now();
    let mut states = 0u64;
    let mut distinct = 0u64;
    let mut starts_run = 0;
    for witness in [false, true] {
        for rates in &RATES {
            for (name, c) in starts(rates, witness) {
                assert!(c.violation.is_none(), "{name}: {:?}", c.violation);
                starts_run += 1;
                let start = S {
                    c,
                    loss: 1,
                    dup: 1,
                    crash: 1,
                    cut: 1,
                };
                let mut seen = HashSet::new();
                let mut frontier = vec![start];
                for level in 0..=depth {
                    let mut next = Vec::new();
                    for s in frontier {
                        states += 1;
                        if !seen.insert(fingerprint(&s)) {
                            continue;
                        }
                        distinct += 1;
                        if let Some(v) = &s.c.violation {
                            panic!("{name} (witness {witness}, rates {rates:?}): {v}");
                        }
                        if level == depth {
                            if let Err(e) = converges(&s) {
                                panic!("{name} (witness {witness}, rates {rates:?}): {e}");
                            }
                        } else {
                            next.extend(successors(&s));
                        }
                    }
                    frontier = next;
                }
            }
        }
    }
    eprintln!(
        "grant model: {starts_run} starts, depth {depth}: {states} states ({distinct} distinct), 0 violations, every leaf converged, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
