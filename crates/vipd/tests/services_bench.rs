//! Services-mode benchmark (issue 5 §7): 1,000 LoadBalancer Services
//! (500 IPv4, 500 IPv6), five real vipd processes with `--services`
//! against the in-repo Kubernetes API TEST server (`vipd-kube-testserver`,
//! not a kube-apiserver) inside the `api` namespace.
//!
//! ```text
//!                     [PFX-sw: br0]
//!   ┌──────┬──────┬──────┼──────┬──────┬────────┐
//!  api    n1     n2     n3     n4     n5     client
//!  .2    .11    .12    .13    .14    .15      .50
//! ```
//! Node addresses from 192.0.2.0/24 and 2001:db8::/64; Service addresses
//! from 198.51.100.0/24, 203.0.113.0/24 (IPv4) and 2001:db8:100::/64 (IPv6).
//!
//! Measured: start → every address bound exactly once (kernel truth,
//! `netlab::MultiAddrWatcher`) and → every address's first announcement
//! counted on its holder (`vipd_announcements_total`); API writes per second
//! at the server in steady state against the per-Service-lease rule; the
//! time to move every address of a SIGKILLed node; RSS and CPU per vipd.
//! `#[ignore]`d: run by `scripts/services-bench.sh` (release build).

#![allow(clippy::unwrap_used)] // benchmark: a panic is the failure report

mod common; // the harness (`#![allow(dead_code)]` inside): its test server and the bench harness

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use common::bench::{
    clk_tck, cpu_ticks, mem, secs, service_addresses, service_name, Bench, Coord, Mem, NODES,
    RETRY_S,
};

/// IPv4 Services (198.51.100.1–254, then 203.0.113.1–246).
const N_V4: usize = 500;
/// IPv6 Services (2001:db8:100::1 onwards).
const N_V6: usize = 500;
/// kube-vip's default retry period (seconds), for the per-Service-lease rule.
const KUBE_VIP_RETRY_S: f64 = 2.0;
/// Liveness bound for start-up convergence (binding, announcing, status).
const CONVERGE: Duration = Duration::from_secs(180);
/// Liveness bound for a dead node's addresses to move.
const MOVE_BOUND: Duration = Duration::from_secs(120);
/// Quiet time after convergence before the steady-state window.
const SETTLE: Duration = Duration::from_secs(5);
/// Length of the steady-state window (writes, CPU).
const WINDOW: Duration = Duration::from_secs(20);

#[test]
#[ignore = "benchmark: run as root by scripts/services-bench.sh"]
fn services_mode_benchmark_1000_services_5_nodes() {
    netlab::require_root!();
    let mut b = Bench::new("svcbench", Coord::Lease);
    let addrs = service_addresses(N_V4, N_V6);
    assert_eq!(addrs.len(), N_V4 + N_V6);
    assert_eq!(
        addrs.iter().collect::<BTreeSet<_>>().len(),
        addrs.len(),
        "duplicate addresses in the plan"
    );

    // Seed: five Nodes, 1,000 Services.
    b.seed(&addrs);
    b.watch(&addrs);

    // 1. Start → bound exactly once → first announcement counted on the
    //    holder → status written on every Service.
    let t0 = b.clock.now();
    for n in NODES {
        b.start(n);
    }
    let first = b
        .wait_for(CONVERGE, Duration::from_millis(20), || {
            b.all_held_once(&addrs, None)
        })
        .unwrap_or_else(|| panic!("not bound within {CONVERGE:?}: {}", b.progress(&addrs)));
    let bound = b.clock.now() - t0;
    b.wait_for(CONVERGE, Duration::from_millis(50), || {
        let now = b.all_held_once(&addrs, None)?;
        (b.unannounced(&now) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("not announced within {CONVERGE:?}: {}", b.progress(&addrs)));
    let announced = b.clock.now() - t0;
    let names: Vec<String> = (0..addrs.len()).map(service_name).collect();
    b.wait_for(CONVERGE, Duration::from_millis(200), || {
        let names = names.clone();
        b.api
            .call(move |s| {
                names.iter().all(|n| {
                    s.get_object("v1", "Service", "default", n)
                        .is_some_and(|v| {
                            v["status"]["loadBalancer"]["ingress"]
                                .as_array()
                                .is_some_and(|a| !a.is_empty())
                                && v["metadata"]["annotations"]["kube-vip.io/vipHost"].is_string()
                        })
                })
            })
            .then_some(())
    })
    .unwrap_or_else(|| panic!("status not written within {CONVERGE:?}"));
    let status = b.clock.now() - t0;
    let mut per_node: BTreeMap<&str, usize> = NODES.iter().map(|n| (*n, 0)).collect();
    for h in first.values() {
        *per_node.get_mut(h.as_str()).unwrap() += 1;
    }

    // 2. Steady state: writes at the server, CPU and RSS per process.
    std::thread::sleep(SETTLE);
    let pids: BTreeMap<&str, u32> = NODES.iter().map(|n| (*n, b.pid(n))).collect();
    b.api.call(|s| s.reset_stats());
    let ticks0: BTreeMap<&str, u64> = pids.iter().map(|(n, p)| (*n, cpu_ticks(*p))).collect();
    let w0 = b.clock.now();
    std::thread::sleep(WINDOW);
    let stats = b.api.stats();
    let ticks1: BTreeMap<&str, u64> = pids.iter().map(|(n, p)| (*n, cpu_ticks(*p))).collect();
    let window = b.clock.now() - w0;
    let rss: BTreeMap<&str, Mem> = pids.iter().map(|(n, p)| (*n, mem(*p))).collect();
    let tck = clk_tck();
    let cpu: BTreeMap<&str, f64> = NODES
        .iter()
        .map(|n| {
            let t = (ticks1[n] - ticks0[n]) as f64 / tck;
            (*n, 100.0 * t / window.as_secs_f64())
        })
        .collect();
    let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
    for r in &stats.requests {
        *by_verb
            .entry(format!("{} {}", r.verb, r.resource))
            .or_default() += r.count;
    }
    let writes: u64 = stats
        .requests
        .iter()
        .filter(|r| matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .map(|r| r.count)
        .sum();
    let writes_per_s = writes as f64 / window.as_secs_f64();
    let n_svc = addrs.len() as f64;
    let per_svc_lease = n_svc / RETRY_S;
    let per_svc_lease_kube_vip = n_svc / KUBE_VIP_RETRY_S;
    println!(
        "steady-state requests in {:.1} s (verb resource: count): {by_verb:?}",
        window.as_secs_f64()
    );

    // 3. Crash the node holding the most addresses: its addresses move,
    //    each to exactly one other node.
    let victim = *per_node.iter().max_by_key(|(_, c)| **c).unwrap().0;
    let moved: Vec<IpAddr> = first
        .iter()
        .filter(|(_, h)| h.as_str() == victim)
        .map(|(a, _)| *a)
        .collect();
    let t_kill = b.clock.now();
    b.crash(victim);
    let after = b
        .wait_for(MOVE_BOUND, Duration::from_millis(20), || {
            b.all_held_once(&moved, Some(victim))
        })
        .unwrap_or_else(|| {
            panic!(
                "addresses of {victim} did not move within {MOVE_BOUND:?}: {}",
                b.progress(&moved)
            )
        });
    let move_time = b.clock.now() - t_kill;
    b.wait_for(MOVE_BOUND, Duration::from_millis(50), || {
        let now = b.all_held_once(&moved, Some(victim))?;
        (b.unannounced(&now) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("moved addresses not announced within {MOVE_BOUND:?}"));
    let move_announced = b.clock.now() - t_kill;
    let mut moved_to: BTreeMap<&str, usize> = BTreeMap::new();
    for h in after.values() {
        *moved_to.entry(h.as_str()).or_default() += 1;
    }
    let survivors_moved = b
        .all_held_once(&addrs, Some(victim))
        .map(|now| {
            first
                .iter()
                .filter(|(a, h)| h.as_str() != victim && now[*a] != **h)
                .count()
        })
        .unwrap_or(usize::MAX);

    let end = b.clock.now();
    let two = b.watcher().two_holder_addresses(Duration::ZERO..end);
    let two_ms = b.watcher().two_holder_time(Duration::ZERO..end).as_millis();

    let list = |f: &dyn Fn(&str) -> String| -> String {
        NODES.iter().map(|n| f(n)).collect::<Vec<_>>().join(",")
    };
    println!(
        "BENCH services nodes={} services={} v4={N_V4} v6={N_V6} bound_s={} announced_s={} status_s={} \
         writes_per_s={writes_per_s:.2} writes_in_window={writes} window_s={} \
         per_service_lease_writes_per_s_retry_0.5s={per_svc_lease:.0} \
         per_service_lease_writes_per_s_retry_2s={per_svc_lease_kube_vip:.0} \
         victim={victim} moved={} move_s={} move_announced_s={} survivors_moved={survivors_moved} \
         two_holder_ms={two_ms} rss_mb={} hwm_mb={} rss_anon_mb={} rss_file_mb={} threads={} \
         cpu_pct={} clk_tck={tck}",
        NODES.len(),
        addrs.len(),
        secs(bound),
        secs(announced),
        secs(status),
        secs(window),
        moved.len(),
        secs(move_time),
        secs(move_announced),
        list(&|n| format!("{:.1}", rss[n].rss)),
        list(&|n| format!("{:.1}", rss[n].hwm)),
        list(&|n| format!("{:.1}", rss[n].anon)),
        list(&|n| format!("{:.1}", rss[n].file)),
        list(&|n| format!("{}", rss[n].threads)),
        list(&|n| format!("{:.2}", cpu[n])),
    );
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| start → all {} addresses bound exactly once | {} s |",
        addrs.len(),
        secs(bound)
    );
    println!(
        "| start → every address's first announcement counted on its holder | {} s |",
        secs(announced)
    );
    println!(
        "| start → `status.loadBalancer.ingress` + `vipHost` on every Service | {} s |",
        secs(status)
    );
    println!(
        "| addresses per node at start ({}) | {} |",
        NODES.join(", "),
        list(&|n| per_node[n].to_string())
    );
    println!(
        "| steady-state API writes/s at the server ({writes} in {} s) | {writes_per_s:.2} |",
        secs(window)
    );
    println!(
        "| per-Service-lease design, {} leases / retry period 0.5 s | {per_svc_lease:.0} |",
        addrs.len()
    );
    println!(
        "| per-Service-lease design, {} leases / kube-vip default retry 2 s | {per_svc_lease_kube_vip:.0} |",
        addrs.len()
    );
    println!(
        "| SIGKILL + link down of {victim} → its {} addresses held once elsewhere | {} s |",
        moved.len(),
        secs(move_time)
    );
    println!(
        "| … and first announcement counted on the new holders | {} s |",
        secs(move_announced)
    );
    println!(
        "| moved to | {} |",
        moved_to
            .iter()
            .map(|(n, c)| format!("{n}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("| addresses of surviving nodes that moved | {survivors_moved} |");
    println!("| two-holder time, all addresses, whole run | {two_ms} ms |");
    println!(
        "| RSS per vipd, steady state (VmRSS, MB; {}) | {} |",
        NODES.join(", "),
        list(&|n| format!("{:.1}", rss[n].rss))
    );
    println!(
        "| peak RSS per vipd (VmHWM, MB) | {} |",
        list(&|n| format!("{:.1}", rss[n].hwm))
    );
    println!(
        "| of which RssAnon / RssFile (MB) | {} |",
        list(&|n| format!("{:.1}/{:.1}", rss[n].anon, rss[n].file))
    );
    println!(
        "| threads per vipd | {} |",
        list(&|n| format!("{}", rss[n].threads))
    );
    println!(
        "| CPU per vipd, steady state (% of one core, {} s, CLK_TCK {tck}) | {} |",
        secs(window),
        list(&|n| format!("{:.2}", cpu[n]))
    );
    println!();
    println!("steady-state requests by verb and resource:");
    for (k, v) in &by_verb {
        println!("  {k}: {v}");
    }

    assert!(two.is_empty(), "two holders for {two:?}");
    assert_eq!(
        survivors_moved, 0,
        "addresses of living nodes moved after the crash"
    );
}
