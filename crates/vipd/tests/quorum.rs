//! Quorum mode end to end (issue 12): real vipd processes with
//! `--coordination quorum` in network namespaces (the topology of
//! `common/mod.rs`), etcd configured only as the best-effort mirror.
//! Liveness bounds are generous; the timing targets are measured by the lab
//! and printed here as `SCENARIO` lines. Every test asserts zero time with
//! two holders of the VIP, from the kernels' address events.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{ms, Cluster, Family, NODES};
use std::time::Duration;

/// First election: quiet time 0.62 s + election wait + round trips.
const ELECT_BOUND: Duration = Duration::from_secs(10);
/// A takeover after a crash or isolation: the promise (0.6 s) + wait.
const TAKEOVER_BOUND: Duration = Duration::from_secs(5);
const HOLD: Duration = Duration::from_secs(1);

/// A cluster whose vipds run in quorum mode, all three as voters.
fn quorum_cluster(scenario: &str) -> Cluster {
    let mut c = Cluster::new(scenario, Family::V4);
    let key = c.logdir().join("peer.key");
    std::fs::write(&key, "00112233445566778899aabbccddeeff\n").unwrap();
    let peers: Vec<String> = NODES
        .iter()
        .map(|n| format!("{n}={}:7480", c.topo.host(n).ipv4().unwrap()))
        .collect();
    c.extra_args = vec![
        "--coordination".into(),
        "quorum".into(),
        "--peers".into(),
        peers.join(","),
        "--peer-key-file".into(),
        key.display().to_string(),
    ];
    c
}

fn up(scenario: &str) -> (Cluster, String) {
    let mut c = quorum_cluster(scenario);
    c.start_probe();
    c.start_all();
    let holder = c
        .wait_holder(None, ELECT_BOUND)
        .unwrap_or_else(|| panic!("no single holder within {ELECT_BOUND:?}: {:?}", c.holders()));
    c.wait_served(&holder, HOLD, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("client not served by {holder} within 10 s"));
    (c, holder)
}

fn assert_no_two_holders(c: &Cluster) -> Duration {
    let two = c.two_holder_time();
    assert_eq!(two, Duration::ZERO, "two nodes held the VIP for {two:?}");
    two
}

#[test]
fn quorum_elects_one_holder_reports_it_and_mirrors_it() {
    netlab::require_root!();
    let (c, holder) = up("q-start");
    // `/status` names the same holder everywhere; the holder's role is
    // holder, the others follow it.
    for n in NODES {
        let body = c.http_get(n, "/status").unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["quorum"]["holder"], holder.as_str(), "{n}: {body}");
        let role = if n == holder { "holder" } else { "follower" };
        assert_eq!(v["quorum"]["role"], role, "{n}: {body}");
        let (code, out, err) = c.status_cli(n, &[]);
        assert_eq!(code, Some(0), "vipd status on {n}: {out}{err}");
    }
    // The holder mirrors itself into etcd (best effort): its updates succeed.
    let wrote = c.wait_for(Duration::from_secs(10), || {
        c.metric(
            &holder,
            "vipd_api_requests_total",
            &["verb=\"update\"", "code=\"ok\""],
        )
        .filter(|v| *v >= 1.0)
    });
    assert!(wrote.is_some(), "the holder never wrote the mirror record");
    let term = c.metric(&holder, "vipd_quorum_term", &[]).unwrap();
    assert!(term >= 1.0, "term {term}");
    let two = assert_no_two_holders(&c);
    c.report(&[("holder", holder), ("two_holder_ms", ms(two))]);
}

#[test]
fn quorum_holder_crash_moves_the_vip() {
    netlab::require_root!();
    let (mut c, holder) = up("q-crash");
    let t0 = c.clock.now();
    c.crash(&holder);
    let next = c
        .wait_holder(Some(&holder), TAKEOVER_BOUND)
        .unwrap_or_else(|| panic!("no takeover within {TAKEOVER_BOUND:?}: {:?}", c.holders()));
    let t_acq = c.acquired_at(&next, t0).unwrap();
    c.wait_served(&next, HOLD, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("client not served by {next} after the crash"));
    let gap = c.gap_since(t0);
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("from", holder),
        ("to", next),
        ("takeover_ms", ms(t_acq - t0)),
        ("gap_ms", ms(gap)),
        ("two_holder_ms", ms(two)),
    ]);
}

#[test]
fn quorum_holder_partitioned_from_its_peers_fences_and_a_majority_node_takes_over() {
    netlab::require_root!();
    let (c, holder) = up("q-partition");
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != holder).collect();
    let t0 = c.clock.now();
    // The client still reaches every node; only the peers are cut.
    c.partition(&holder, &others);
    let next = c
        .wait_holder(Some(&holder), TAKEOVER_BOUND)
        .unwrap_or_else(|| panic!("no takeover within {TAKEOVER_BOUND:?}: {:?}", c.holders()));
    assert!(others.contains(&next.as_str()));
    let released = c.released_at(&holder, t0).unwrap();
    let acquired = c.acquired_at(&next, t0).unwrap();
    assert!(
        released <= acquired,
        "{holder} released at {released:?}, {next} bound at {acquired:?}"
    );
    c.heal_partition();
    // Q7: the old holder returns as a follower; the new one keeps the VIP.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.holders(), vec![next.clone()]);
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("from", holder),
        ("to", next),
        ("fence_ms", ms(released - t0)),
        ("takeover_ms", ms(acquired - t0)),
        ("two_holder_ms", ms(two)),
    ]);
}

#[test]
fn quorum_keeps_the_vip_while_etcd_is_down_for_everyone() {
    netlab::require_root!();
    let (mut c, holder) = up("q-api-down");
    let t0 = c.clock.now();
    c.etcd_down();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(c.holders(), vec![holder.clone()], "the holder changed");
    let gap = c.gap_since(t0);
    assert!(
        gap < Duration::from_millis(500),
        "client gap {gap:?} with etcd down"
    );
    c.etcd_up();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(c.holders(), vec![holder.clone()]);
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("holder", holder),
        ("gap_ms", ms(gap)),
        ("two_holder_ms", ms(two)),
    ]);
}
