//! End-to-end scenarios of issue 3 §7: real vipd processes with
//! `--backend kubernetes` against the in-repo Kubernetes API TEST server
//! (`vipd-kube-testserver`, not a kube-apiserver), which runs inside the
//! `api` namespace so nftables cuts apply to it (see `common/kube.rs`).
//!
//! Like `scenarios.rs`, every test asserts its outcome with generous
//! liveness bounds, asserts zero time with two holders of the VIP (R1,
//! measured from the kernels' address and link events), and prints one
//! `SCENARIO name=kube-... key=value ...` line. Lease settings: 3 s lease,
//! 2 s renew deadline, 0.5 s retry period (the `common` constants).
//!
//! The lease record is read back through the server's HTTPS API and checked
//! against client-go's `LeaseLock` rules (R9): holderIdentity is the node
//! name, leaseTransitions goes up by one per change of holder (client-go's
//! `tryAcquireOrRenew` increments it when the holder differs, and its
//! `release` keeps it), and a record written by another client-go program
//! expires only `leaseDurationSeconds` after the last change the follower
//! observed on its own clock (client-go's `observedTime`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::kube::{foreign_lease, micro_now, HttpOk, API_PORT};
use common::{ms, ms_opt, Backend, Cluster, Family, API_IP, LEASE, NODES, RENEW, RETRY};
use std::net::SocketAddr;
use std::time::Duration;
use vipd_kube_testserver::FaultRule;

/// Liveness bound for the first election after start.
const ELECT_BOUND: Duration = Duration::from_secs(15);
/// Liveness bound for a takeover that needs the lease to expire.
const TAKEOVER_BOUND: Duration = Duration::from_secs(15);
/// "A few retry periods": bound for recoveries that need no expiry.
const FEW_RETRIES: Duration = Duration::from_secs(5);
/// How long the client must be served without a failure to count as served.
const HOLD: Duration = Duration::from_secs(1);
/// Slack for the watcher's and the test's own clock readings.
const SLACK: Duration = Duration::from_millis(200);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn kube(scenario: &str, family: Family) -> Cluster {
    Cluster::with_backend(scenario, family, Backend::Kube)
}

/// Starts vipd on all nodes and the client's probe, and waits for one
/// holder that serves the client. Returns the holder.
fn elect(c: &mut Cluster) -> String {
    c.start_probe();
    c.start_all();
    let holder = c
        .wait_holder(None, ELECT_BOUND)
        .unwrap_or_else(|| panic!("no single holder within {ELECT_BOUND:?}: {:?}", c.holders()));
    c.wait_served(&holder, HOLD, secs(10))
        .unwrap_or_else(|| panic!("client not served by {holder} within 10 s"));
    holder
}

fn up(scenario: &str, family: Family) -> (Cluster, String) {
    let mut c = kube(scenario, family);
    let holder = elect(&mut c);
    (c, holder)
}

/// The other node, neither `a` nor `b`.
fn third(a: &str, b: &str) -> String {
    NODES
        .iter()
        .find(|n| **n != a && **n != b)
        .unwrap()
        .to_string()
}

fn assert_no_two_holders(c: &Cluster) -> Duration {
    let two = c.two_holder_time();
    assert_eq!(two, Duration::ZERO, "two nodes held the VIP for {two:?}");
    two
}

fn pids(c: &mut Cluster) -> Vec<Option<u32>> {
    NODES.iter().map(|n| c.pid(n)).collect()
}

#[test]
fn kube_start_elects_exactly_one_holder_and_records_it_in_the_lease() {
    netlab::require_root!();
    let mut c = kube("kube-start", Family::V4);
    c.start_probe();
    let t0 = c.clock.now();
    c.start_all();
    let holder = c
        .wait_holder(None, ELECT_BOUND)
        .unwrap_or_else(|| panic!("no single holder within {ELECT_BOUND:?}: {:?}", c.holders()));
    let t_acq = c.acquired_at(&holder, t0).unwrap();
    let served = c
        .wait_served(&holder, HOLD, secs(10))
        .unwrap_or_else(|| panic!("client not served by {holder}"));
    std::thread::sleep(LEASE);
    assert_eq!(c.holders(), vec![holder.clone()]);
    assert_eq!(
        c.watcher.transitions().len(),
        1,
        "holding changed after election: {:?}",
        c.watcher.transitions()
    );
    for n in NODES {
        assert!(c.pid(n).is_some(), "vipd on {n} exited");
    }
    // R9: the record is client-go's LeaseLock record for this holder.
    let lease = c.wait_lease_holder(&holder, secs(2));
    assert_eq!(lease.duration_s, LEASE.as_secs() as i64, "{lease:?}");
    assert!(lease.renew_time.is_some(), "no renewTime: {lease:?}");
    // Renewals keep landing (the holder renews every retry period).
    let rv = lease.resource_version.clone();
    let renewed = c.wait_for(secs(3), || {
        c.api()
            .lease()
            .filter(|l| l.resource_version != rv && l.holder.as_deref() == Some(holder.as_str()))
    });
    assert!(
        renewed.is_some(),
        "{holder} did not renew the lease: {:?}",
        c.api().lease()
    );
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("holder", holder),
        ("elect_ms", ms(t_acq - t0)),
        ("first_served_ms", ms(served.saturating_sub(t0))),
        ("transitions", lease.transitions.to_string()),
        ("two_holder_ms", ms(two)),
    ]);
}

// SIGTERM (v4, v6) and crash (v4, v6) with this backend run from the shared
// recipes in tests/scenarios.rs, which also check the lease record.

// The holder cut from the API runs in tests/scenarios.rs with
// `Backend::Kube` (the same recipe as the etcd cut, v4 and v6).

#[test]
fn kube_api_outage_longer_than_lease_recovers_without_restart() {
    netlab::require_root!();
    let (mut c, old) = up("kube-apiout", Family::V4);
    let before = pids(&mut c);
    let t_down = c.clock.now();
    c.api_down();
    std::thread::sleep(LEASE + secs(2));
    let t_rel = c.released_at(&old, t_down);
    assert!(
        t_rel.is_some(),
        "{old} kept the VIP through an API outage longer than the lease"
    );
    assert!(
        t_rel.unwrap() - t_down < LEASE,
        "{old} fenced only {:?} into the outage",
        t_rel.unwrap() - t_down
    );
    let t_up = c.clock.now();
    c.api_up();
    let holder = c.wait_holder(None, secs(15)).unwrap_or_else(|| {
        panic!(
            "no holder within 15 s after the API came back: {:?}",
            c.holders()
        )
    });
    let t_acq = c
        .watcher
        .transitions()
        .into_iter()
        .find(|t| t.holding && t.t > t_up)
        .map(|t| t.t)
        .unwrap();
    let recover = t_acq - t_up;
    assert!(
        recover <= FEW_RETRIES,
        "a holder only {recover:?} after the API came back (expected within {FEW_RETRIES:?})"
    );
    c.wait_served(&holder, HOLD, secs(10))
        .unwrap_or_else(|| panic!("client not served by {holder} after the API came back"));
    assert_eq!(
        pids(&mut c),
        before,
        "a vipd process exited or restarted during the outage"
    );
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("old", old),
        ("new", holder),
        ("outage_ms", ms(t_up - t_down)),
        ("fence_ms", ms_opt(t_rel.map(|t| t - t_down))),
        ("recover_after_api_up_ms", ms(recover)),
        ("two_holder_ms", ms(two)),
    ]);
}

/// The dead-connection failure (R6), shared by the two ways of killing the
/// holder's established connections: they stay open but nothing comes back.
/// Runs for two lease durations; the holder must either keep the lease over
/// a fresh connection or fence before anyone else acquires, and never wedge.
fn dead_connection(scenario: &str, server_side: bool) {
    let (mut c, old) = up(scenario, Family::V4);
    let before = pids(&mut c);
    let ip = c.ip(&old);
    let conns_before = c.api_connections(&old);
    let t0 = c.clock.now();
    let dead: Vec<u16> = if server_side {
        let n = c.api().black_hole_established(Some(ip));
        assert!(n > 0, "{old} had no open connection to black-hole");
        conns_before.clone()
    } else {
        c.drop_established(&old)
    };
    // R6: the stuck request times out within the renew deadline and the
    // connection is re-dialled: a new local port appears.
    let redial = c.wait_for(RENEW + secs(2), || {
        c.api_connections(&old)
            .into_iter()
            .find(|p| !dead.contains(p))
            .map(|_| c.clock.now())
    });
    std::thread::sleep((2 * LEASE).saturating_sub(c.clock.now() - t0));
    let t_rel = c.released_at(&old, t0);
    let holder_now = c.wait_holder(None, TAKEOVER_BOUND).unwrap_or_else(|| {
        panic!(
            "no single holder with {old}'s connections dead: {:?}",
            c.holders()
        )
    });
    if holder_now != old {
        let t_acq = c.acquired_at(&holder_now, t0).unwrap();
        let t_rel = t_rel.unwrap_or_else(|| panic!("{holder_now} acquired while {old} held"));
        assert!(t_rel <= t_acq, "{holder_now} acquired before {old} fenced");
    }
    assert!(
        redial.is_some(),
        "{old} did not open a new API connection within {:?} of its connections dying (ports {dead:?}, now {:?})",
        RENEW + secs(2),
        c.api_connections(&old)
    );
    // Heal: the dead connections are closed (server side) / their packets
    // flow again (nftables).
    let t_heal = c.clock.now();
    if server_side {
        c.api().close_established(Some(ip));
    } else {
        c.heal_established(&old);
    }
    // Recovered: one holder, and the old holder's requests are answered.
    let seen = c.api().requests_from(ip);
    let talking = c.wait_for(FEW_RETRIES, || {
        (c.api().requests_from(ip) > seen).then(|| c.clock.now())
    });
    assert!(
        talking.is_some(),
        "{old} made no API request within {FEW_RETRIES:?} of the heal"
    );
    let holder = c
        .wait_holder(None, FEW_RETRIES)
        .unwrap_or_else(|| panic!("no single holder after the heal: {:?}", c.holders()));
    c.wait_served(&holder, HOLD, secs(10))
        .unwrap_or_else(|| panic!("client not served by {holder} after the heal"));
    assert_eq!(pids(&mut c), before, "a vipd process exited or restarted");
    let gap = c.gap_since(t0.saturating_sub(Duration::from_millis(500)));
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("old", old),
        ("holder_after", holder),
        ("dead_conns", dead.len().to_string()),
        ("redial_ms", ms_opt(redial.map(|t| t - t0))),
        ("fence_ms", ms_opt(t_rel.map(|t| t - t0))),
        ("recover_after_heal_ms", ms_opt(talking.map(|t| t - t_heal))),
        ("gap_ms", ms(gap)),
        ("two_holder_ms", ms(two)),
    ]);
}

#[test]
fn kube_dead_connection_black_holed_by_server_does_not_wedge_holder() {
    netlab::require_root!();
    dead_connection("kube-deadsrv", true);
}

#[test]
fn kube_dead_connection_dropped_packets_does_not_wedge_holder() {
    netlab::require_root!();
    dead_connection("kube-deadpkt", false);
}

#[test]
fn kube_error_and_latency_storms_shorter_than_renew_deadline_keep_the_leader() {
    netlab::require_root!();
    let (mut c, holder) = up("kube-storm", Family::V4);
    let before = pids(&mut c);
    let ip = c.ip(&holder);
    let t0 = c.clock.now();
    // 50% 503 for every client, for two retry periods less than the renew
    // deadline (the holder's last good renewal may be a retry period old).
    let storm_5xx = RENEW - 2 * RETRY;
    let seen = c.api().requests_from(ip);
    c.api().set_faults(vec![FaultRule {
        error_percent: 50,
        error_status: Some(503),
        ..FaultRule::default()
    }]);
    std::thread::sleep(storm_5xx);
    c.api().clear_faults();
    let during_5xx = c.api().requests_from(ip) - seen;
    std::thread::sleep(secs(2));
    // +300 ms on every request for 1.5 s.
    let storm_lat = Duration::from_millis(1500);
    c.api().set_faults(vec![FaultRule {
        latency_ms: 300,
        ..FaultRule::default()
    }]);
    std::thread::sleep(storm_lat);
    c.api().clear_faults();
    std::thread::sleep(LEASE);
    assert!(
        during_5xx > 0,
        "{holder} made no request during the 5xx storm"
    );
    assert_eq!(c.holders(), vec![holder.clone()], "holder changed");
    let changes: Vec<_> = c
        .watcher
        .transitions()
        .into_iter()
        .filter(|t| t.t >= t0)
        .collect();
    assert!(
        changes.is_empty(),
        "leadership changed during the storms: {changes:?}"
    );
    let lease = c.wait_lease_holder(&holder, secs(2));
    assert_eq!(pids(&mut c), before, "a vipd process exited or restarted");
    let gap = c.gap_since(t0);
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("holder", holder),
        ("storm_5xx_ms", ms(storm_5xx)),
        ("storm_5xx_percent", "50".into()),
        ("holder_requests_in_5xx", during_5xx.to_string()),
        ("storm_latency_ms", ms(storm_lat)),
        ("added_latency_ms", "300".into()),
        ("transitions", lease.transitions.to_string()),
        ("gap_ms", ms(gap)),
        ("two_holder_ms", ms(two)),
    ]);
}

#[test]
fn kube_lease_of_a_foreign_client_go_holder_is_respected_until_it_expires() {
    netlab::require_root!();
    const FOREIGN: &str = "kube-vip-node-x";
    const FOREIGN_DURATION: Duration = Duration::from_secs(15);
    let mut c = kube("kube-foreign", Family::V4);
    let acquire = micro_now();
    let put = |c: &Cluster| {
        c.api().put_object(foreign_lease(
            FOREIGN,
            FOREIGN_DURATION.as_secs() as i64,
            &acquire,
            4,
        ));
    };
    put(&c);
    c.start_probe();
    let t_start = c.clock.now();
    c.start_all();
    // The foreign holder keeps renewing (every second) for 5 s.
    let mut t_last = c.clock.now();
    while c.clock.now() - t_start < secs(5) {
        std::thread::sleep(secs(1));
        t_last = c.clock.now();
        put(&c);
        assert!(
            c.holders().is_empty(),
            "a vipd node bound the VIP while {FOREIGN} renews: {:?}",
            c.holders()
        );
    }
    // Every node saw the last renewal at or after t_last: nobody may bind
    // before t_last + 15 s.
    let earliest = t_last + FOREIGN_DURATION;
    let early = c.wait_for(earliest.saturating_sub(c.clock.now() + SLACK), || {
        (!c.holders().is_empty()).then(|| c.holders())
    });
    assert!(
        early.is_none(),
        "{early:?} bound the VIP {:?} after {FOREIGN}'s last renewal, before its {FOREIGN_DURATION:?} lease expired",
        c.clock.now() - t_last
    );
    let lease = c.api().lease().unwrap();
    assert_eq!(
        lease.holder.as_deref(),
        Some(FOREIGN),
        "record overwritten early: {lease:?}"
    );
    let holder = c.wait_holder(None, secs(8)).unwrap_or_else(|| {
        panic!(
            "no vipd node took over after {FOREIGN}'s lease expired: {:?}",
            c.holders()
        )
    });
    let t_acq = c.acquired_at(&holder, t_start).unwrap();
    assert!(
        t_acq + SLACK >= earliest,
        "took over {:?} early",
        earliest - t_acq
    );
    c.wait_served(&holder, HOLD, secs(10))
        .unwrap_or_else(|| panic!("client not served by {holder}"));
    let after = c.wait_lease_holder(&holder, secs(2));
    assert_eq!(
        after.transitions, 5,
        "leaseTransitions after taking over from {FOREIGN}: {after:?}"
    );
    assert_eq!(after.duration_s, LEASE.as_secs() as i64, "{after:?}");
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("foreign", FOREIGN.into()),
        ("foreign_lease_s", FOREIGN_DURATION.as_secs().to_string()),
        ("new", holder),
        ("takeover_after_last_renew_ms", ms(t_acq - t_last)),
        ("transitions", format!("4->{}", after.transitions)),
        ("two_holder_ms", ms(two)),
    ]);
}

#[test]
fn kube_control_plane_with_kubeconfig_pointing_at_the_down_vip_uses_the_endpoint_list() {
    netlab::require_root!();
    let mut c = kube("kube-cpvip", Family::V4);
    let vip = Family::V4.vip();
    // The kubeconfig every node reads names the VIP, which nobody holds yet
    // (and no node serves 6443 on it later either).
    let server = format!("https://{vip}:{API_PORT}");
    let kubeconfig = c.api().write_kubeconfig("kubeconfig", &server);
    let ca = c.api().ca_path();
    c.extra_args = vec![
        "--control-plane".into(),
        "--api-port".into(),
        API_PORT.to_string(),
        "--kubernetes-addr".into(),
        format!("{API_IP}:{API_PORT}"),
        // No local apiserver runs in the node namespaces, so the default
        // check (https://127.0.0.1:6443/livez) would keep every node out;
        // check the API host's /livez instead.
        "--health-check".into(),
        format!("https://{API_IP}:{API_PORT}/livez"),
        "--health-check-ca-path".into(),
        ca.display().to_string(),
        "--health-check-period".into(),
        "0.5".into(),
        "--health-check-timeout".into(),
        "0.4".into(),
    ];
    let t0 = c.clock.now();
    let old = elect(&mut c);
    let t_acq = c.acquired_at(&old, t0).unwrap();
    c.wait_lease_holder(&old, secs(2));
    // Handover still works with the VIP moving (a node using the VIP as
    // its API server would lose it here).
    let t1 = c.clock.now();
    c.stop(&old);
    let new = c
        .wait_holder(Some(&old), TAKEOVER_BOUND)
        .unwrap_or_else(|| panic!("no takeover after SIGTERM: {:?}", c.holders()));
    let t_new = c.acquired_at(&new, t1).unwrap();
    c.wait_lease_holder(&new, secs(2));
    // R6: each node said once that it drops the VIP from its endpoint
    // list, and its list reaches the API host, not the VIP.
    for n in NODES {
        let skipped = c.log_lines(n, &["control-plane VIP", &vip.to_string()]);
        assert!(
            !skipped.is_empty(),
            "{n} did not log that it skips the VIP as API endpoint"
        );
        let list = c.log_lines(n, &["API endpoints, in order"]);
        assert!(
            list.iter()
                .all(|l| l.contains(API_IP) && !l.contains(&vip.to_string())),
            "{n}'s API endpoint list: {list:?}"
        );
    }
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("kubeconfig_server", server),
        ("kubeconfig", kubeconfig.display().to_string()),
        ("holder", old),
        ("elect_ms", ms(t_acq - t0)),
        ("new", new),
        ("handover_ms", ms(t_new - t1)),
        ("two_holder_ms", ms(two)),
    ]);
}

#[test]
fn kube_unhealthy_holder_hands_over_and_does_not_campaign_until_healthy() {
    netlab::require_root!();
    const HEALTH_PORT: u16 = 9090;
    let mut c = kube("kube-health", Family::V4);
    let target = c.topo.host("client").ipv4().unwrap();
    // kube-vip's `control_plane_health_check_address` path: period,
    // timeout and failure threshold apply to it (whole seconds, as
    // kube-vip's variables are). See the report on `--health-check`.
    let _check = HttpOk::start(&c.topo.host("client").ns, target, HEALTH_PORT);
    c.extra_args = vec![
        "--health-check-address".into(),
        format!("http://{target}:{HEALTH_PORT}/healthz"),
        "--health-check-period".into(),
        "1".into(),
        "--health-check-timeout".into(),
        "1".into(),
        "--health-check-failure-threshold".into(),
        "2".into(),
    ];
    let old = elect(&mut c);
    let pid = c.pid(&old).unwrap();
    let t0 = c.clock.now();
    c.block_port(&old, target, HEALTH_PORT);
    // The block itself works (as seen from the holder only).
    let probe = SocketAddr::new(target, HEALTH_PORT);
    let reach =
        move || std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(300)).is_ok();
    assert!(
        !c.topo.host(&old).ns.enter(reach).unwrap(),
        "{old} still reaches the health target"
    );
    assert!(
        c.topo.host(&third(&old, "")).ns.enter(reach).unwrap(),
        "the others lost the health target"
    );
    let t_rel = c
        .wait_for(secs(6), || c.released_at(&old, t0))
        .unwrap_or_else(|| panic!("unhealthy {old} kept the VIP"));
    let new = c
        .wait_holder(Some(&old), secs(10))
        .unwrap_or_else(|| panic!("no node took over from unhealthy {old}: {:?}", c.holders()));
    let t_acq = c.acquired_at(&new, t0).unwrap();
    c.wait_served(&new, HOLD, secs(10))
        .unwrap_or_else(|| panic!("client not served by {new}"));
    let up_while_sick = c.metric(&old, "vipd_health_check_up", &[]);
    // The gate's verdict is visible: not eligible now, eligible once since
    // start (so not the "never eligible" case), and `vipd status` exits 3.
    assert_eq!(c.metric(&old, "vipd_eligible", &[]), Some(0.0));
    assert_eq!(c.metric(&old, "vipd_ever_eligible", &[]), Some(1.0));
    let (code, out, err) = c.status_cli(&old, &[]);
    assert_eq!(code, Some(3), "vipd status on unhealthy {old}: {out}{err}");
    assert!(err.contains("not eligible"), "{err}");
    assert!(out.contains("health gate: NOT eligible"), "{out}");
    // Unhealthy: it does not campaign. Stop the new holder gracefully; the
    // third node must win, never the unhealthy one.
    let other = third(&old, &new);
    let t1 = c.clock.now();
    c.stop(&new);
    let winner = c
        .wait_holder(Some(&new), secs(10))
        .unwrap_or_else(|| panic!("no takeover after stopping {new}: {:?}", c.holders()));
    assert_eq!(winner, other, "unhealthy {old} campaigned and won");
    let t_win = c.acquired_at(&winner, t1).unwrap();
    std::thread::sleep(LEASE);
    assert!(
        c.acquired_at(&old, t0).is_none(),
        "unhealthy {old} took the VIP: {:?}",
        c.watcher.transitions()
    );
    // Healthy again: eligible, but no preemption.
    let t_heal = c.clock.now();
    c.unblock_port(&old);
    std::thread::sleep(secs(3));
    assert_eq!(
        c.holders(),
        vec![other.clone()],
        "the VIP moved when {old} recovered"
    );
    assert!(
        c.watcher.transitions().iter().all(|t| t.t < t_heal),
        "holding changed after {old} recovered: {:?}",
        c.watcher.transitions()
    );
    let up_healed = c.metric(&old, "vipd_health_check_up", &[]);
    // Eligible: with the holder stopped and only {old} left, it takes over.
    let t2 = c.clock.now();
    c.stop(&other);
    let back = c
        .wait_holder(Some(&other), secs(10))
        .unwrap_or_else(|| panic!("healthy {old} did not take over: {:?}", c.holders()));
    assert_eq!(back, old);
    let t_back = c.acquired_at(&old, t2).unwrap();
    assert_eq!(c.pid(&old), Some(pid), "{old} restarted");
    let two = assert_no_two_holders(&c);
    c.report(&[
        ("unhealthy", old),
        ("new", new),
        ("fence_ms", ms(t_rel - t0)),
        ("takeover_ms", ms(t_acq - t0)),
        ("no_campaign_winner", other),
        ("no_campaign_takeover_ms", ms(t_win.saturating_sub(t1))),
        ("health_up_sick", format!("{up_while_sick:?}")),
        ("health_up_healed", format!("{up_healed:?}")),
        ("healed_takeover_ms", ms(t_back - t2)),
        ("two_holder_ms", ms(two)),
    ]);
}
