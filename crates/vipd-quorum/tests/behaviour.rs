//! Behaviour-named scenario tests: inputs in, expected actions out.

#![allow(clippy::unwrap_used)]

mod common;

use common::{voters, Cluster, KEY};
use std::time::Duration;
use vipd_quorum::{
    Action, AuthKey, Body, Config, DropReason, FenceReason, Input, Message, Node, Role, SetHash,
    Timings, Verdict,
};

const MS: Duration = Duration::from_millis(1);

fn key() -> AuthKey {
    AuthKey::new(&KEY).unwrap()
}

/// A lone core `me` of the 3-voter set, started at 0.
fn node(me: &str) -> Node {
    let cfg = Config::new(voters(3, false), me, Timings::default(), key(), 1, 1).unwrap();
    Node::new(cfg, Duration::ZERO)
}

struct Peer {
    seq: u64,
}

impl Peer {
    fn send(&mut self, from: &str, term: u64, body: Body) -> Input {
        self.seq += 1;
        let m = Message {
            from: from.into(),
            set: voters(3, false).hash(),
            seq: self.seq,
            term,
            body,
        };
        Input::Datagram(m.encode(&key()))
    }
}

fn sent(acts: &[Action]) -> Vec<Message> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => Message::decode(bytes, &key()).ok(),
            _ => None,
        })
        .collect()
}

fn verdict(acts: &[Action]) -> Option<Verdict> {
    sent(acts).iter().find_map(|m| match m.body {
        Body::PreVoteReply { verdict, .. }
        | Body::VoteReply { verdict, .. }
        | Body::Ack { verdict, .. } => Some(verdict),
        _ => None,
    })
}

fn quiet() -> Duration {
    Timings::default().quiet()
}

#[test]
fn vote_refused_while_promise_to_other_holder_live() {
    let mut n1 = node("n1");
    let mut p = Peer { seq: 0 };
    let t = quiet();
    let acts = n1.handle(t, p.send("n0", 1, Body::Heartbeat { priority: 0 }));
    assert_eq!(verdict(&acts), Some(Verdict::Granted));
    // n2 asks for a vote in a later term while the promise to n0 runs.
    let acts = n1.handle(t + 599 * MS, p.send("n2", 2, Body::Vote));
    assert_eq!(verdict(&acts), Some(Verdict::LiveHolder));
    // n2 again in that term, after the promise ended: one vote per term
    // is still free (the refusal was not a vote).
    let acts = n1.handle(t + 600 * MS, p.send("n2", 2, Body::Vote));
    assert_eq!(verdict(&acts), Some(Verdict::Granted));
    // And n0 cannot get a second vote in term 2 (Q2).
    let acts = n1.handle(t + 601 * MS, p.send("n0", 2, Body::Vote));
    assert_eq!(verdict(&acts), Some(Verdict::AlreadyVoted));
}

#[test]
fn restarted_voter_grants_nothing_for_p_plus_margin() {
    let mut n1 = node("n1");
    let mut p = Peer { seq: 0 };
    let cases = [
        (Duration::ZERO, Verdict::Quiet),
        (quiet() - Duration::from_nanos(1), Verdict::Quiet),
        (quiet(), Verdict::Granted),
    ];
    for (i, (at, want)) in cases.into_iter().enumerate() {
        let acts = n1.handle(at, p.send("n0", 1 + i as u64, Body::Vote));
        assert_eq!(verdict(&acts), Some(want), "at {at:?}");
    }
    // Heartbeat acks are promises too: quiet applies to them.
    let mut n2 = node("n2");
    let acts = n2.handle(MS, p.send("n0", 1, Body::Heartbeat { priority: 0 }));
    assert_eq!(verdict(&acts), Some(Verdict::Quiet));
}

/// Drives n0 through pre-vote and vote with hand-made replies; returns the
/// core, the peer and the time it became holder.
fn elect_n0() -> (Node, Peer, Duration, Vec<Action>) {
    let mut n0 = node("n0");
    let mut p = Peer { seq: 100 };
    let t = n0.poll_timeout().unwrap();
    assert!(t >= quiet(), "no campaign while quiet");
    let acts = n0.handle(t, Input::Tick);
    let pre = sent(&acts);
    assert_eq!(pre.len(), 2);
    assert!(pre.iter().all(|m| m.body == Body::PreVote && m.term == 1));
    assert_eq!(n0.status(t).term, 0, "pre-vote does not bump the term");
    let acts = n0.handle(
        t,
        p.send(
            "n1",
            0,
            Body::PreVoteReply {
                verdict: Verdict::Granted,
                reply_to: pre[0].seq,
            },
        ),
    );
    let vote = sent(&acts);
    assert!(vote.iter().all(|m| m.body == Body::Vote && m.term == 1));
    let acts = n0.handle(
        t,
        p.send(
            "n1",
            1,
            Body::VoteReply {
                verdict: Verdict::Granted,
                reply_to: vote[0].seq,
            },
        ),
    );
    (n0, p, t, acts)
}

#[test]
fn holder_fences_at_acked_send_time_plus_p_minus_margin() {
    let (mut n0, mut p, t, acts) = elect_n0();
    let d = Timings::default().hold_window();
    assert!(acts.contains(&Action::Announce { until: t + d }));
    // Next round at t + 100 ms, acked 50 ms later by n1: the deadline moves
    // to the round's *send* time + D, not the ack's receive time.
    let t1 = n0.poll_timeout().unwrap();
    assert_eq!(t1, t + 100 * MS);
    let hb = sent(&n0.handle(t1, Input::Tick));
    assert!(matches!(hb[0].body, Body::Heartbeat { .. }));
    let ack = Body::Ack {
        verdict: Verdict::Granted,
        reply_to: hb[0].seq,
    };
    n0.handle(t1 + 50 * MS, p.send("n1", 1, ack));
    assert_eq!(n0.status(t1 + 50 * MS).hold_deadline, Some(t1 + d));
    // A refused ack does not extend.
    // No more acks: rounds go out, the deadline stays, then Fence.
    let mut now = t1 + 50 * MS;
    let mut fenced = None;
    while let Some(w) = n0.poll_timeout() {
        now = w;
        let acts = n0.handle(now, Input::Tick);
        if let Some(Action::Fence(r)) = acts.iter().find(|a| matches!(a, Action::Fence(_))) {
            fenced = Some((now, *r));
            break;
        }
    }
    assert_eq!(fenced, Some((t1 + d, FenceReason::HoldExpired)));
    assert_eq!(n0.status(now).role, Role::Fencing);
    let rel = sent(&n0.handle(now, Input::AddressesRemoved));
    assert!(rel.iter().all(|m| m.body == Body::Release));
}

#[test]
fn release_lets_successor_win_within_one_heartbeat() {
    let t = Timings::default();
    for seed in 0..20 {
        let mut c = Cluster::new(voters(3, false), t, &[0, 0, 0], seed);
        c.run_until(2_000_000);
        let h = c.holders();
        assert_eq!(h.len(), 1, "seed {seed}");
        let stop_at = c.now;
        let acts = c.input(h[0], Input::Stop);
        assert_eq!(acts, vec![Action::Fence(FenceReason::Stop)]);
        c.run_until(stop_at + vipd_sim::us(t.heartbeat()));
        let next = c.announces.last().unwrap();
        assert!(
            next.0 > stop_at && next.1 != h[0],
            "seed {seed}: {:?}",
            c.announces
        );
        assert!(c.violation.is_none());
    }
}

#[test]
fn followers_released_at_once_take_turns_instead_of_splitting_the_vote() {
    // Both followers hear n0's Release at the same instant. With a purely
    // random wait two of them started within a millisecond (lab: 1 of 10
    // SIGTERMs), each voted for itself and the split bound both for a
    // whole promise (0.73 s instead of 0.04 s). Now the voter after the
    // old holder goes within an eighth of a heartbeat, the next one a
    // quarter heartbeat later; after a silent holder (crash) the same, from
    // the end of the promise plus the election minimum.
    let hb = Timings::default().heartbeat();
    for seed in 0..50u64 {
        let mut p = Peer { seq: 100 };
        let t = quiet() + MS;
        let mut next = Vec::new();
        let mut timeout = Vec::new();
        let p_then_min = Timings::default().promise() + Timings::default().election_range().0;
        for me in ["n1", "n2"] {
            let cfg =
                Config::new(voters(3, false), me, Timings::default(), key(), seed, 1).unwrap();
            let mut n = Node::new(cfg, Duration::ZERO);
            let acts = n.handle(t, p.send("n0", 1, Body::Heartbeat { priority: 0 }));
            assert_eq!(verdict(&acts), Some(Verdict::Granted), "{me}");
            // Without a Release (a crash), the same turns after the promise.
            timeout.push(n.poll_timeout().unwrap() - (t + p_then_min));
            n.handle(t + MS, p.send("n0", 1, Body::Release));
            next.push(n.poll_timeout().unwrap() - (t + MS));
        }
        for w in [&next, &timeout] {
            assert!(w[0] < hb / 8, "seed {seed}: n1 waits {:?}", w[0]);
            assert!(
                w[1] >= hb / 4 && w[1] < hb / 4 + hb / 8,
                "seed {seed}: n2 waits {:?}",
                w[1]
            );
        }
    }
}

#[test]
fn prevote_rejected_while_live_holder_heard() {
    let mut n1 = node("n1");
    let mut p = Peer { seq: 0 };
    let t = quiet();
    n1.handle(t, p.send("n0", 3, Body::Heartbeat { priority: 0 }));
    let acts = n1.handle(t + 100 * MS, p.send("n2", 4, Body::PreVote));
    assert_eq!(verdict(&acts), Some(Verdict::LiveHolder));
    assert_eq!(n1.status(t).term, 3, "a pre-vote changes nothing");
    // A stale pre-vote learns our term.
    let acts = n1.handle(t + 700 * MS, p.send("n2", 3, Body::PreVote));
    assert_eq!(verdict(&acts), Some(Verdict::StaleTerm));
    let acts = n1.handle(t + 701 * MS, p.send("n2", 4, Body::PreVote));
    assert_eq!(verdict(&acts), Some(Verdict::Granted));
}

#[test]
fn wrong_set_hash_dropped_and_counted() {
    let mut n1 = node("n1");
    let m = Message {
        from: "n0".into(),
        set: SetHash([9; 16]),
        seq: 1,
        term: 1,
        body: Body::Vote,
    };
    let acts = n1.handle(quiet(), Input::Datagram(m.encode(&key())));
    assert!(acts.is_empty());
    assert_eq!(n1.status(quiet()).drops.get(DropReason::WrongSet), 1);
    // And a voter set differing in one address hashes differently.
    let mut v: Vec<_> = voters(3, false).voters().to_vec();
    v[0].addr = "192.0.2.9:7946".parse().unwrap();
    assert_ne!(
        vipd_quorum::VoterSet::new(v).unwrap().hash(),
        voters(3, false).hash()
    );
}

#[test]
fn replayed_datagram_dropped() {
    let mut n1 = node("n1");
    let mut p = Peer { seq: 10 };
    let Input::Datagram(b) = p.send("n0", 1, Body::Heartbeat { priority: 0 }) else {
        unreachable!()
    };
    assert_eq!(
        verdict(&n1.handle(quiet(), Input::Datagram(b.clone()))),
        Some(Verdict::Granted)
    );
    assert!(n1.handle(quiet() + MS, Input::Datagram(b)).is_empty());
    // An older sequence number (reordered) is dropped too.
    p.seq = 5;
    assert!(n1
        .handle(quiet() + MS, p.send("n0", 1, Body::Release))
        .is_empty());
    let st = n1.status(quiet() + MS);
    assert_eq!(st.drops.get(DropReason::Replay), 2);
    assert_eq!(
        st.holder.as_deref(),
        Some("n0"),
        "the replayed Release did nothing"
    );
}

#[test]
fn unknown_sender_and_own_name_are_dropped() {
    let mut n1 = node("n1");
    let mut p = Peer { seq: 0 };
    assert!(n1.handle(quiet(), p.send("zz", 1, Body::Vote)).is_empty());
    assert!(n1.handle(quiet(), p.send("n1", 1, Body::Vote)).is_empty());
    assert_eq!(n1.status(quiet()).drops.get(DropReason::UnknownSender), 2);
}

#[test]
fn witness_never_holds() {
    for seed in 0..20 {
        let mut c = Cluster::new(voters(3, true), Timings::default(), &[0, 0, 0], seed);
        c.run_until(2_000_000);
        assert_eq!(c.node(2).status(0.into_dur()).role, Role::Witness);
        let h = c.holders();
        assert!(h.len() == 1 && h[0] != 2, "seed {seed}: {h:?}");
        // The other node takes over with the witness's vote...
        c.crash(h[0]);
        c.run_until(c.now + 2_000_000);
        assert_eq!(c.holders(), vec![1 - h[0]], "seed {seed}");
        // ...and with both nodes gone the witness never campaigns.
        c.crash(1 - h[0]);
        c.run_until(c.now + 5_000_000);
        assert!(c.holders().is_empty());
        assert!(c.announces.iter().all(|&(_, i)| i != 2));
        assert!(c.violation.is_none(), "{:?}", c.violation);
    }
}

trait IntoDur {
    fn into_dur(self) -> Duration;
}
impl IntoDur for i32 {
    fn into_dur(self) -> Duration {
        Duration::from_millis(self as u64)
    }
}

#[test]
fn hard_failover_is_within_one_second() {
    let mut gaps = Vec::new();
    for seed in 0..50 {
        let mut c = Cluster::new(voters(3, false), Timings::default(), &[0, 0, 0], seed);
        c.run_until(2_000_000 + seed * 7_000);
        let h = c.holders()[0];
        let at = c.now;
        c.crash(h);
        c.run_until(at + 2_000_000);
        let next = c.announces.last().unwrap();
        assert_ne!(next.1, h);
        gaps.push(next.0 - at);
        assert!(c.violation.is_none());
    }
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    println!(
        "hard failover: median {} us, max {} us",
        median,
        gaps[gaps.len() - 1]
    );
    assert!(median <= 1_000_000, "{gaps:?}");
}

#[test]
fn unhealthy_holder_fences_then_releases_and_does_not_campaign() {
    let mut c = Cluster::new(voters(3, false), Timings::default(), &[0, 0, 0], 3);
    c.run_until(2_000_000);
    let h = c.holders()[0];
    let acts = c.input(h, Input::SetHealthy(false));
    assert_eq!(acts, vec![Action::Fence(FenceReason::Unhealthy)]);
    c.run_until(c.now + 3_000_000);
    let hs = c.holders();
    assert!(hs.len() == 1 && hs[0] != h);
    // Now the others stop too: the unhealthy node still does not campaign.
    let other = hs[0];
    c.crash(other);
    c.run_until(c.now + 3_000_000);
    assert!(c.holders().iter().all(|&i| i != h));
    assert!(c.violation.is_none());
}

#[test]
fn returning_node_does_not_unseat_a_healthy_holder() {
    let mut c = Cluster::new(voters(3, false), Timings::default(), &[0, 0, 0], 5);
    c.run_until(2_000_000);
    let h = c.holders()[0];
    let term = c.node(h).status(Duration::ZERO).term;
    let away = (h + 1) % 3;
    c.side[away] = 1;
    c.run_until(c.now + 5_000_000);
    c.side[away] = 0;
    c.run_until(c.now + 3_000_000);
    assert_eq!(c.holders(), vec![h]);
    assert_eq!(
        c.node(h).status(Duration::ZERO).term,
        term,
        "no term bump (Q7)"
    );
    assert_eq!(c.announces.len(), 1);
}

#[test]
fn preemption_only_when_configured() {
    for preempt in [false, true] {
        let mut c = Cluster::new(voters(3, false), Timings::default(), &[0, 0, 0], 8);
        for cfg in &mut c.cfgs {
            cfg.preempt = preempt;
        }
        c.cfgs[2].priority = 9;
        c.crash(2);
        c.crash(0);
        c.crash(1);
        c.restart(0);
        c.restart(1);
        c.run_until(2_000_000);
        let h = c.holders();
        assert!(h.len() == 1 && h[0] != 2);
        c.restart(2);
        c.run_until(c.now + 3_000_000);
        let want = if preempt { vec![2] } else { h };
        assert_eq!(c.holders(), want, "preempt={preempt}");
        assert!(c.violation.is_none());
    }
}

#[test]
fn candidate_that_lost_its_term_backs_the_winner_once_its_own_vote_ends() {
    // n1 campaigns in term 1 and votes for itself; n0 wins term 1 with n2.
    let mut n1 = node("n1");
    let mut p = Peer { seq: 0 };
    let at = n1.poll_timeout().unwrap();
    let acts = n1.handle(at, Input::Tick);
    let prevote = sent(&acts)[0].seq;
    let acts = n1.handle(
        at,
        p.send(
            "n0",
            0,
            Body::PreVoteReply {
                verdict: Verdict::Granted,
                reply_to: prevote,
            },
        ),
    );
    assert!(sent(&acts)
        .iter()
        .any(|m| m.body == Body::Vote && m.term == 1));
    // The winner's heartbeat in the same term: not refused as "already
    // voted" (a heartbeat of term 1 proves its sender won term 1), only
    // held back while n1's promise to itself runs (Q2/Q3)...
    let hb = Body::Heartbeat { priority: 0 };
    let acts = n1.handle(at + 10 * MS, p.send("n0", 1, hb));
    assert_eq!(verdict(&acts), Some(Verdict::LiveHolder));
    // ...and granted once it ended: n1 backs n0 and stops campaigning.
    let acts = n1.handle(at + 600 * MS, p.send("n0", 1, hb));
    assert_eq!(verdict(&acts), Some(Verdict::Granted));
    let st = n1.status(at + 600 * MS);
    assert_eq!(
        (st.role, st.holder.as_deref()),
        (Role::Follower, Some("n0"))
    );
}
