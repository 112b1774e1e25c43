//! Behaviour tests of the ownership core, with explicit instants.

use super::*;
use crate::model::{hrw_pick, Entry, ZonePin};
use std::time::Duration;

/// kube-vip's recommended 5/3/1 s.
fn timings() -> Timings {
    Timings::new(
        Duration::from_secs(5),
        Duration::from_secs(3),
        Duration::from_secs(1),
    )
    .expect("valid timings")
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, last])
}

fn ms(base: Instant, m: u64) -> Instant {
    base + Duration::from_millis(m)
}

fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
    items.iter().cloned().collect()
}

fn names(items: &[&str]) -> BTreeSet<NodeId> {
    items.iter().map(|s| s.to_string()).collect()
}

fn v(s: &str) -> Version {
    Version(s.into())
}

fn state(generation: u64, held: &[IpAddr]) -> NodeState {
    NodeState {
        generation,
        held: set(held),
        expired: false,
    }
}

fn entry(owner: &str, since: u64, prior: &[&str]) -> Entry {
    Entry {
        owner: Some(owner.into()),
        since,
        prior: names(prior),
    }
}

fn assignment(generation: u64, entries: &[(IpAddr, Entry)]) -> Assignment {
    Assignment {
        generation,
        entries: entries.iter().cloned().collect(),
    }
}

fn record(node: &str, st: NodeState, version: &str) -> Input {
    Input::NodeRecord {
        node: node.into(),
        state: Some(st),
        version: v(version),
    }
}

fn announces(actions: &[Action]) -> Option<BTreeSet<IpAddr>> {
    actions.iter().find_map(|a| match a {
        Action::Announce(s) => Some(s.clone()),
        _ => None,
    })
}

/// A node whose lease was renewed at `base` (valid until base + 3 s).
fn renewed(id: &str, base: Instant) -> Node {
    let mut n = Node::new(id, timings(), false);
    n.handle(
        base,
        Input::OwnRenewal {
            sent_at: base,
            outcome: Renewal::Ok,
        },
    );
    n
}

/// An address whose rendezvous winner among n1..n3 is `winner`.
fn addr_won_by(winner: &str) -> IpAddr {
    let all = names(&["n1", "n2", "n3"]);
    (1..=254)
        .map(ip)
        .find(|a| hrw_pick(a, &all).map(String::as_str) == Some(winner))
        .expect("some address hashes to every node")
}

fn view<'a>(
    live: &'a BTreeSet<NodeId>,
    records: &'a BTreeMap<NodeId, NodeState>,
    addresses: &'a BTreeSet<IpAddr>,
    policies: &'a BTreeMap<IpAddr, Policy>,
    preempt: bool,
) -> View<'a> {
    View {
        live,
        records,
        addresses,
        policies,
        preempt,
    }
}

#[test]
fn returning_node_takes_nothing_back_without_preempt() {
    let a = addr_won_by("n1");
    // n1 was away; n2 took the address at generation 3.
    let current = assignment(3, &[(a, entry("n2", 3, &[]))]);
    let live = names(&["n1", "n2", "n3"]);
    let (records, addrs, pol) = (BTreeMap::new(), set(&[a]), BTreeMap::new());
    let sticky = desired(&current, &view(&live, &records, &addrs, &pol, false));
    assert_eq!(sticky.entries, current.entries, "sticky: nothing moves");
    let pre = desired(&current, &view(&live, &records, &addrs, &pol, true));
    assert_eq!(pre.entries.get(&a), Some(&entry("n1", 4, &["n2"])));
}

#[test]
fn preempt_moves_back_only_after_old_owner_published_the_drop() {
    let base = Instant::now();
    let a = addr_won_by("n1");
    let mut n1 = renewed("n1", base);
    let moved = assignment(4, &[(a, entry("n1", 4, &["n2"]))]);
    n1.handle(ms(base, 10), record("n2", state(3, &[a]), "r1"));
    let out = n1.handle(
        ms(base, 20),
        Input::Assignment {
            assignment: moved,
            version: v("a4"),
        },
    );
    assert_eq!(announces(&out), None, "n2 still holds the address");
    // n2 applied generation 4 but its record still shows the address.
    let out = n1.handle(ms(base, 30), record("n2", state(4, &[a]), "r2"));
    assert_eq!(announces(&out), None);
    // An old-generation record without the address proves nothing.
    let out = n1.handle(ms(base, 40), record("n2", state(3, &[]), "r3"));
    assert_eq!(announces(&out), None);
    let out = n1.handle(ms(base, 50), record("n2", state(4, &[]), "r4"));
    assert_eq!(announces(&out), Some(set(&[a])));
    // The drop is then published on n1's next renewal.
    assert!(out.contains(&Action::PublishHeld(state(4, &[a]))));
}

#[test]
fn old_owner_drops_before_publishing_the_new_generation() {
    let base = Instant::now();
    let a = ip(10);
    let mut n2 = renewed("n2", base);
    n2.handle(
        ms(base, 10),
        Input::Assignment {
            assignment: assignment(1, &[(a, entry("n2", 1, &[]))]),
            version: v("a1"),
        },
    );
    assert_eq!(n2.announced(), set(&[a]));
    let out = n2.handle(
        ms(base, 20),
        Input::Assignment {
            assignment: assignment(2, &[(a, entry("n1", 2, &["n2"]))]),
            version: v("a2"),
        },
    );
    assert_eq!(
        out,
        vec![
            Action::Announce(BTreeSet::new()),
            Action::PublishHeld(state(2, &[]))
        ],
        "removal first, then the proof for the next renewal"
    );
}

#[test]
fn dead_owner_moves_only_after_lease_expiry_and_tombstone() {
    let base = Instant::now();
    let a = addr_won_by("n2");
    // Assigner n1 sees n2 (owner of `a`) and n3; n2 then stops renewing.
    let mut n1 = renewed("n1", base);
    n1.handle(base, Input::Addresses(set(&[a])));
    n1.handle(
        base,
        Input::Assignment {
            assignment: assignment(1, &[(a, entry("n2", 1, &[]))]),
            version: v("a1"),
        },
    );
    for (n, r) in [("n1", "x1"), ("n2", "y1"), ("n3", "z1")] {
        n1.handle(base, record(n, state(1, &[]), r));
    }
    n1.handle(base, Input::IsAssigner(true));
    let out = n1.handle(base, Input::Listed(vec![]));
    assert!(out.is_empty(), "nothing changes while n2 is live: {out:?}");
    // Keep n1 and n3 renewing; n2's record stays at y1.
    let mut t = 0;
    let mut expired_at = None;
    while t < 6_000 {
        t += 500;
        let now = ms(base, t);
        let mut out = n1.handle(
            now,
            Input::OwnRenewal {
                sent_at: now,
                outcome: Renewal::Ok,
            },
        );
        out.extend(n1.handle(now, record("n1", state(1, &[]), &format!("x{t}"))));
        out.extend(n1.handle(now, record("n3", state(1, &[]), &format!("z{t}"))));
        if out.iter().any(|a| matches!(a, Action::Tombstone { .. })) {
            expired_at = Some((t, out));
            break;
        }
    }
    let (t, out) = expired_at.expect("n2 is tombstoned");
    assert_eq!(
        t, 5_000,
        "exactly lease_duration after n2's record was seen"
    );
    assert!(out.contains(&Action::Tombstone {
        node: "n2".into(),
        expected_version: v("y1"),
        generation: 2,
    }));
    let written = out.iter().find_map(|x| match x {
        Action::WriteAssignment {
            assignment,
            expected_version,
        } => Some((assignment.clone(), expected_version.clone())),
        _ => None,
    });
    let (moved, guard) = written.expect("the address moves");
    assert_eq!(guard, Some(v("a1")));
    let e = moved.entries.get(&a).expect("entry");
    assert_eq!(e.prior, names(&["n2"]));
    assert_eq!(e.since, 2);

    // The new owner starts only once it sees the tombstone.
    let owner = e.owner.clone().expect("an owner");
    let mut o = renewed(&owner, ms(base, 5_000));
    o.handle(ms(base, 5_010), record("n2", state(1, &[a]), "y1"));
    let out = o.handle(
        ms(base, 5_020),
        Input::Assignment {
            assignment: moved,
            version: v("a2"),
        },
    );
    assert_eq!(announces(&out), None);
    let tomb = NodeState {
        generation: 2,
        held: BTreeSet::new(),
        expired: true,
    };
    let out = o.handle(ms(base, 5_030), record("n2", tomb, "y2"));
    assert_eq!(announces(&out), Some(set(&[a])));
}

#[test]
fn fence_stops_all_announcements_at_renew_deadline() {
    let base = Instant::now();
    let (a, b) = (ip(1), ip(2));
    let mut n = renewed("n1", base);
    let out = n.handle(
        ms(base, 100),
        Input::Assignment {
            assignment: assignment(1, &[(a, entry("n1", 1, &[])), (b, entry("n1", 1, &[]))]),
            version: v("a1"),
        },
    );
    assert_eq!(announces(&out), Some(set(&[a, b])));
    assert_eq!(n.poll_timeout(ms(base, 100)), Some(ms(base, 3_000)));
    assert!(n.handle(ms(base, 2_999), Input::Tick).is_empty());
    let out = n.handle(ms(base, 3_000), Input::Tick);
    assert_eq!(
        out,
        vec![
            Action::Announce(BTreeSet::new()),
            Action::PublishHeld(state(1, &[]))
        ]
    );
    // A renewal whose answer comes back after its own deadline buys nothing.
    let out = n.handle(
        ms(base, 3_500),
        Input::OwnRenewal {
            sent_at: ms(base, 400),
            outcome: Renewal::Ok,
        },
    );
    assert!(out.is_empty());
    assert!(!n.lease_valid(ms(base, 3_500)));
    // A fresh renewal re-proves nothing for itself: same run, same since.
    let out = n.handle(
        ms(base, 3_600),
        Input::OwnRenewal {
            sent_at: ms(base, 3_550),
            outcome: Renewal::Ok,
        },
    );
    assert_eq!(announces(&out), Some(set(&[a, b])));
}

#[test]
fn shared_ip_has_one_owner_eligible_for_every_sharing_service() {
    let base = Instant::now();
    let a = ip(7);
    // Two Services share `a`: one allows n1,n2, the other n2,n3.
    let p = Policy {
        nodes: Some(names(&["n1", "n2"])),
        zone: None,
    }
    .shared_with(&Policy {
        nodes: Some(names(&["n2", "n3"])),
        zone: None,
    });
    let live = names(&["n1", "n2", "n3"]);
    let pol: BTreeMap<IpAddr, Policy> = [(a, p)].into_iter().collect();
    let want = desired(
        &Assignment::default(),
        &view(&live, &BTreeMap::new(), &set(&[a]), &pol, false),
    );
    assert_eq!(want.entries.len(), 1);
    assert_eq!(want.entries.get(&a), Some(&entry("n2", 1, &[])));
    let mut announcers = 0;
    for id in ["n1", "n2", "n3"] {
        let mut n = renewed(id, base);
        n.handle(
            ms(base, 1),
            Input::Assignment {
                assignment: Assignment {
                    generation: 1,
                    entries: want.entries.clone(),
                },
                version: v("a1"),
            },
        );
        announcers += usize::from(n.announced().contains(&a));
    }
    assert_eq!(announcers, 1);
}

#[test]
fn rendezvous_hash_is_deterministic_balanced_and_minimally_disruptive() {
    let nodes = names(&["n1", "n2", "n3", "n4", "n5"]);
    let reversed: Vec<&NodeId> = nodes.iter().rev().collect();
    let addrs: Vec<IpAddr> = (0..1000u16)
        .map(|i| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 1, i]))
        .collect();
    let mut count: BTreeMap<&NodeId, usize> = BTreeMap::new();
    for a in &addrs {
        let w = hrw_pick(a, &nodes).expect("winner");
        assert_eq!(Some(w), hrw_pick(a, reversed.iter().copied()), "order");
        *count.entry(w).or_default() += 1;
    }
    assert_eq!(count.len(), 5);
    for (n, c) in &count {
        assert!((160..=240).contains(c), "{n} got {c} of 1000 (±20% of 200)");
    }
    // Removing n3 moves exactly n3's addresses.
    let without: BTreeSet<NodeId> = nodes.iter().filter(|n| *n != "n3").cloned().collect();
    for a in &addrs {
        let before = hrw_pick(a, &nodes).expect("winner");
        let after = hrw_pick(a, &without).expect("winner");
        assert!(before == "n3" || before == after);
    }
}

#[test]
fn local_eligibility_moves_the_address_when_endpoints_move_with_handoff() {
    let base = Instant::now();
    let a = ip(20);
    let live = names(&["n1", "n2", "n3"]);
    let (addrs, mut records) = (set(&[a]), BTreeMap::new());
    let local = |nodes: &[&str]| -> BTreeMap<IpAddr, Policy> {
        [(
            a,
            Policy {
                nodes: Some(names(nodes)),
                zone: None,
            },
        )]
        .into_iter()
        .collect()
    };
    let g1 = desired(
        &Assignment::default(),
        &view(&live, &records, &addrs, &local(&["n1"]), false),
    );
    assert_eq!(g1.entries.get(&a), Some(&entry("n1", 1, &[])));
    let g1 = Assignment {
        generation: 1,
        ..g1
    };
    // The endpoint moves to n2: the live owner n1 is no longer eligible.
    records.insert("n1".to_string(), state(1, &[a]));
    let g2 = desired(&g1, &view(&live, &records, &addrs, &local(&["n2"]), false));
    assert_eq!(g2.entries.get(&a), Some(&entry("n2", 2, &["n1"])));
    let g2 = Assignment {
        generation: 2,
        ..g2
    };
    let mut n2 = renewed("n2", base);
    n2.handle(ms(base, 1), record("n1", state(1, &[a]), "r1"));
    let out = n2.handle(
        ms(base, 2),
        Input::Assignment {
            assignment: g2.clone(),
            version: v("a2"),
        },
    );
    assert_eq!(announces(&out), None, "n1 has not stopped yet");
    let out = n2.handle(ms(base, 900), record("n1", state(2, &[]), "r2"));
    assert_eq!(announces(&out), Some(set(&[a])));
    // The assigner then forgets n1 as a prior owner (one more write).
    records.insert("n1".to_string(), state(2, &[]));
    let g3 = desired(&g2, &view(&live, &records, &addrs, &local(&["n2"]), false));
    assert_eq!(g3.entries.get(&a), Some(&entry("n2", 2, &[])));
}

#[test]
fn zone_pin_prefers_the_zone_and_falls_back_only_when_allowed() {
    let a = addr_won_by("n3");
    let pin = |fallback| -> BTreeMap<IpAddr, Policy> {
        [(
            a,
            Policy {
                nodes: None,
                zone: Some(ZonePin {
                    preferred: names(&["n1"]),
                    fallback,
                }),
            },
        )]
        .into_iter()
        .collect()
    };
    let (records, addrs) = (BTreeMap::new(), set(&[a]));
    let all = names(&["n1", "n2", "n3"]);
    let out_of_zone = names(&["n2", "n3"]);
    let none = Assignment::default();
    // In the zone: n1, although n3 wins the hash over all nodes.
    let g = desired(&none, &view(&all, &records, &addrs, &pin(false), false));
    assert_eq!(
        g.entries.get(&a).and_then(|e| e.owner.as_deref()),
        Some("n1")
    );
    // Zone down, fallback: the hash winner among the rest.
    let g = desired(
        &none,
        &view(&out_of_zone, &records, &addrs, &pin(true), false),
    );
    assert_eq!(
        g.entries.get(&a).and_then(|e| e.owner.as_deref()),
        Some("n3")
    );
    // Zone down, no fallback: unannounced, rather than cross-zone drift.
    let g = desired(
        &none,
        &view(&out_of_zone, &records, &addrs, &pin(false), false),
    );
    assert!(g.entries.is_empty());
    // The zone returns: the address moves back even without preempt (the
    // pin is an eligibility rule, stronger than stickiness).
    let fell = assignment(2, &[(a, entry("n3", 2, &[]))]);
    let g = desired(&fell, &view(&all, &records, &addrs, &pin(true), false));
    assert_eq!(g.entries.get(&a), Some(&entry("n1", 3, &["n3"])));
}

#[test]
fn tombstoned_node_adopts_the_floor_and_ignores_older_assignments() {
    let base = Instant::now();
    let a = ip(30);
    let mut n = Node::new("n2", timings(), false);
    // Back from a partition: its record is a tombstone at generation 5.
    let floor = n.handle(
        base,
        Input::OwnRecord(NodeState {
            generation: 5,
            held: BTreeSet::new(),
            expired: true,
        }),
    );
    n.handle(
        base,
        Input::Assignment {
            assignment: assignment(4, &[(a, entry("n2", 1, &[]))]),
            version: v("a4"),
        },
    );
    let out = n.handle(
        ms(base, 10),
        Input::OwnRenewal {
            sent_at: ms(base, 5),
            outcome: Renewal::Ok,
        },
    );
    assert_eq!(announces(&out), None, "generation 4 is below the floor");
    // It publishes the floor, so its promise keeps holding.
    assert_eq!(floor, vec![Action::PublishHeld(state(5, &[]))]);
    // An older assignment arriving late is ignored too.
    n.handle(
        ms(base, 20),
        Input::Assignment {
            assignment: assignment(6, &[(a, entry("n2", 6, &[]))]),
            version: v("a6"),
        },
    );
    let out = n.handle(
        ms(base, 30),
        Input::Assignment {
            assignment: assignment(3, &[]),
            version: v("a3"),
        },
    );
    assert!(out.is_empty());
    assert_eq!(n.announced(), set(&[a]));
}

#[test]
fn assigner_writes_only_when_the_assignment_changes() {
    let base = Instant::now();
    let a = ip(40);
    let mut n1 = renewed("n1", base);
    n1.handle(base, record("n1", state(0, &[]), "x1"));
    n1.handle(base, Input::Addresses(set(&[a])));
    n1.handle(base, Input::IsAssigner(true));
    let out = n1.handle(ms(base, 1), Input::Listed(vec![]));
    // No record known yet (a fresh cluster): the first distribution waits
    // two retry periods into the term, so nodes started together are seen.
    assert!(
        !out.iter()
            .any(|x| matches!(x, Action::WriteAssignment { .. })),
        "{out:?}"
    );
    assert_eq!(n1.poll_timeout(ms(base, 1)), Some(ms(base, 2_000)));
    let out = n1.handle(ms(base, 2_000), Input::Tick);
    let first = out.iter().find_map(|x| match x {
        Action::WriteAssignment {
            assignment,
            expected_version: None,
        } => Some(assignment.clone()),
        _ => None,
    });
    let first = first.expect("the record is created");
    assert_eq!(first.generation, 1);
    assert_eq!(first.entries.get(&a), Some(&entry("n1", 1, &[])));
    n1.handle(
        ms(base, 2_050),
        Input::Assignment {
            assignment: first,
            version: v("a1"),
        },
    );
    for t in [2_100, 2_600, 3_100, 3_600] {
        let now = ms(base, t);
        n1.handle(
            now,
            Input::OwnRenewal {
                sent_at: now,
                outcome: Renewal::Ok,
            },
        );
        let out = n1.handle(now, record("n1", state(1, &[a]), &format!("x{t}")));
        assert!(
            !out.iter()
                .any(|x| matches!(x, Action::WriteAssignment { .. } | Action::Tombstone { .. })),
            "steady state writes nothing at {t} ms: {out:?}"
        );
    }
}

#[test]
fn assigner_does_not_act_before_a_full_list() {
    let base = Instant::now();
    let mut n1 = renewed("n1", base);
    n1.handle(base, Input::Addresses(set(&[ip(50)])));
    let out = n1.handle(base, Input::IsAssigner(true));
    assert!(
        out.iter().all(|x| matches!(x, Action::PublishHeld(_))),
        "{out:?}"
    );
}

#[test]
fn ineligible_node_drains_and_returns_only_through_a_renewal_sent_after_recovery() {
    let base = Instant::now();
    let a = ip(10);
    let mut n2 = renewed("n2", base);
    n2.handle(
        ms(base, 10),
        Input::Assignment {
            assignment: assignment(1, &[(a, entry("n2", 1, &[]))]),
            version: v("a1"),
        },
    );
    assert_eq!(n2.announced(), set(&[a]));
    // Health fails (R8): nothing announced, and the record says "gone"
    // (expired) while the node keeps renewing it.
    let out = n2.handle(ms(base, 20), Input::Eligible(false));
    assert_eq!(announces(&out), Some(BTreeSet::new()));
    assert!(out.contains(&Action::PublishHeld(NodeState {
        generation: 1,
        held: BTreeSet::new(),
        expired: true,
    })));
    // A renewal sent while draining succeeds: still nothing announced.
    let sent_draining = ms(base, 500);
    n2.handle(
        ms(base, 510),
        Input::OwnRenewal {
            sent_at: sent_draining,
            outcome: Renewal::Ok,
        },
    );
    assert!(n2.announced().is_empty());
    // Healthy again. The assignment still names n2, but a renewal sent
    // before recovery does not count: a tombstone may have followed it.
    let out = n2.handle(ms(base, 600), Input::Eligible(true));
    assert!(announces(&out).is_none_or(|s| s.is_empty()));
    assert!(!n2.lease_valid(ms(base, 600)));
    let late = n2.handle(
        ms(base, 620),
        Input::OwnRenewal {
            sent_at: sent_draining,
            outcome: Renewal::Ok,
        },
    );
    assert!(announces(&late).is_none() && n2.announced().is_empty());
    // Only a renewal sent from now on brings the address back.
    let out = n2.handle(
        ms(base, 1200),
        Input::OwnRenewal {
            sent_at: ms(base, 1100),
            outcome: Renewal::Ok,
        },
    );
    assert_eq!(announces(&out), Some(set(&[a])));
}

#[test]
fn assigner_moves_a_draining_nodes_addresses_without_waiting_for_expiry() {
    let base = Instant::now();
    let a = addr_won_by("n1");
    let mut n3 = renewed("n3", base);
    n3.handle(base, Input::Addresses(set(&[a])));
    n3.handle(base, Input::IsAssigner(true));
    n3.handle(
        base,
        Input::Listed(vec![
            Listed {
                node: "n1".into(),
                state: state(1, &[a]),
                version: v("1"),
            },
            Listed {
                node: "n3".into(),
                state: state(1, &[]),
                version: v("3"),
            },
        ]),
    );
    n3.handle(
        base,
        Input::Assignment {
            assignment: assignment(1, &[(a, entry("n1", 1, &[]))]),
            version: v("a1"),
        },
    );
    // n1 publishes that it drains (well inside its lease).
    let out = n3.handle(
        ms(base, 100),
        record(
            "n1",
            NodeState {
                generation: 1,
                held: BTreeSet::new(),
                expired: true,
            },
            "2",
        ),
    );
    let write = out.iter().find_map(|x| match x {
        Action::WriteAssignment { assignment, .. } => Some(assignment.clone()),
        _ => None,
    });
    let moved = write.expect("the assignment is rewritten at once");
    assert_eq!(moved.entries[&a].owner.as_deref(), Some("n3"));
}

#[test]
fn a_recreated_assignment_starts_above_every_generation_the_nodes_hold() {
    // The assignment record was deleted (or never read) while node records
    // carry generation 7: a record created at generation 1 would be ignored
    // by every node (generations only move forward).
    let base = Instant::now();
    let a = ip(60);
    let mut n1 = renewed("n1", base);
    n1.handle(base, Input::Addresses(set(&[a])));
    n1.handle(base, Input::IsAssigner(true));
    n1.handle(
        base,
        Input::Listed(vec![
            Listed {
                node: "n1".into(),
                state: state(7, &[]),
                version: v("1"),
            },
            Listed {
                node: "n2".into(),
                state: state(5, &[]),
                version: v("2"),
            },
        ]),
    );
    let out = n1.handle(ms(base, 2_000), Input::Tick);
    let created = out
        .iter()
        .find_map(|x| match x {
            Action::WriteAssignment {
                assignment,
                expected_version: None,
            } => Some(assignment.clone()),
            _ => None,
        })
        .expect("the record is created");
    assert_eq!(created.generation, 8);
    assert_eq!(created.entries[&a].since, 8);
}
