//! Services on the quorum against Services on leases (issue 13), same
//! machine, same binary, same run: five real vipd processes with
//! `--services` in network namespaces, 1,000 LoadBalancer Services (500
//! IPv4, 500 IPv6) in the in-repo Kubernetes API TEST server (not a
//! kube-apiserver). Topology and harness: `common/bench.rs`.
//!
//! Each coordination runs the same script:
//! 1. start → every address bound exactly once, every Service's status and
//!    `vipHost` naming its holder;
//! 2. steady state (20 s): API writes at the server, CPU, RSS;
//! 3. the assigner (quorum holder / assigner-lease holder) crashes
//!    (SIGKILL + link down): live nodes' addresses sampled every 5 ms for
//!    churn and gaps, the dead node's addresses until held once elsewhere;
//! 4. the API goes down for every node for 30 s; 10 s in, the node
//!    holding the most addresses crashes; client probes of one address
//!    per node, kernel holders of every address;
//! 5. the API comes back: time until every Service's status and `vipHost`
//!    name the node holding its address, and the writes that took.
//!
//! Two-holder time is counted over every address for the whole run.
//! `#[ignore]`d: run by `scripts/services-quorum-bench.sh` (release build).
//! `VIPD_BENCH_SERVICES=N` runs N Services (half IPv4, half IPv6).

#![allow(clippy::unwrap_used)] // benchmark: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use common::bench::{cpu_ticks, mem, service_addresses, service_name, Bench, Coord, NODES};
use netlab::probe::longest_gap;

/// Liveness bound for start-up convergence (binding, status).
const CONVERGE: Duration = Duration::from_secs(240);
/// Quiet time after convergence before the steady-state window.
const SETTLE: Duration = Duration::from_secs(5);
/// Length of the steady-state window (writes, CPU).
const WINDOW: Duration = Duration::from_secs(20);
/// How long the live nodes are watched after the assigner crashes.
const WATCH_AFTER_KILL: Duration = Duration::from_secs(6);
/// The API outage.
const OUTAGE: Duration = Duration::from_secs(30);
/// When, into the outage, the busiest node crashes.
const KILL_INTO_OUTAGE: Duration = Duration::from_secs(10);
/// Liveness bound for anything to happen after the heal.
const AFTER_HEAL: Duration = Duration::from_secs(120);

/// What one coordination measured.
#[derive(Debug, Default)]
struct Outcome {
    coord: &'static str,
    services: usize,
    bound_s: f64,
    status_s: f64,
    per_node: Vec<usize>,
    writes_per_s: f64,
    writes_by: BTreeMap<String, u64>,
    rss_mb: Vec<f64>,
    cpu_pct: Vec<f64>,
    assigner: String,
    assigner_addrs: usize,
    /// Samples (5 ms) in which some address of a live node was not held
    /// by that node, and how many such addresses changed holder.
    live_missing_samples: usize,
    live_moved: usize,
    /// Quorum mode: every live node binds under a grant of the new
    /// assigner (its `/status` says so).
    grants_continue_s: Option<f64>,
    assigner_moved_s: Option<f64>,
    victim: String,
    victim_addrs: usize,
    /// Kill during the outage → its addresses held once elsewhere.
    victim_moved_s: Option<f64>,
    /// Longest client gap during the outage, per probed address that
    /// was not the victim's, and on the victim's probed address.
    outage_gap_ms: Vec<u64>,
    victim_gap_ms: Option<u64>,
    /// Addresses held by nobody at the end of the outage.
    dark_at_heal: usize,
    heal_status_s: Option<f64>,
    heal_wrong: usize,
    heal_status_writes: u64,
    heal_max_node_writes_per_s: f64,
    two_holder_ms: u128,
    two_holder_addrs: usize,
}

fn n_services() -> usize {
    std::env::var("VIPD_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn counts(holders: &BTreeMap<IpAddr, String>) -> BTreeMap<String, usize> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for h in holders.values() {
        *m.entry(h.clone()).or_default() += 1;
    }
    m
}

fn run(coord: Coord) -> Outcome {
    let n = n_services();
    let mut b = Bench::new(&format!("svcq{}", &coord.name()[..1]), coord);
    let addrs = service_addresses(n / 2, n - n / 2);
    let names: Vec<(String, IpAddr)> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| (service_name(i), *a))
        .collect();
    b.seed(&addrs);
    b.watch(&addrs);
    let mut out = Outcome {
        coord: coord.name(),
        services: n,
        ..Outcome::default()
    };

    // 1. Start.
    let t0 = b.clock.now();
    for node in NODES {
        b.start(node);
    }
    let first = b
        .wait_for(CONVERGE, Duration::from_millis(20), || {
            b.all_held_once(&addrs, None)
        })
        .unwrap_or_else(|| panic!("{coord:?}: not bound: {}", b.progress(&addrs)));
    out.bound_s = (b.clock.now() - t0).as_secs_f64();
    b.wait_for(CONVERGE, Duration::from_millis(250), || {
        let now = b.all_held_once(&addrs, None)?;
        (b.status_wrong(&names, &now) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("{coord:?}: status not written within {CONVERGE:?}"));
    out.status_s = (b.clock.now() - t0).as_secs_f64();
    let c = counts(&first);
    out.per_node = NODES
        .iter()
        .map(|n| c.get(*n).copied().unwrap_or(0))
        .collect();

    // 2. Steady state.
    std::thread::sleep(SETTLE);
    let pids: Vec<u32> = NODES.iter().map(|n| b.pid(n)).collect();
    b.api.call(|s| s.reset_stats());
    let ticks0: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let w0 = b.clock.now();
    std::thread::sleep(WINDOW);
    let stats = b.api.stats();
    let ticks1: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let window = (b.clock.now() - w0).as_secs_f64();
    out.rss_mb = pids.iter().map(|p| mem(*p).rss).collect();
    let tck = common::bench::clk_tck();
    out.cpu_pct = ticks0
        .iter()
        .zip(&ticks1)
        .map(|(a, z)| 100.0 * (z - a) as f64 / tck / window)
        .collect();
    let mut writes = 0;
    for r in &stats.requests {
        if matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete") {
            writes += r.count;
            *out.writes_by
                .entry(format!("{} {}", r.verb, r.resource))
                .or_default() += r.count;
        }
    }
    out.writes_per_s = writes as f64 / window;

    // 3. The assigner crashes.
    let assigner = b
        .wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
            b.assigner()
        })
        .unwrap_or_else(|| panic!("{coord:?}: no node says it assigns"));
    let before = b.all_held_once(&addrs, None).unwrap();
    let theirs: Vec<IpAddr> = before
        .iter()
        .filter(|(_, h)| **h == assigner)
        .map(|(a, _)| *a)
        .collect();
    out.assigner = assigner.clone();
    out.assigner_addrs = theirs.len();
    let t_kill = b.clock.now();
    b.crash(&assigner);
    let mut regranted: BTreeMap<String, bool> = NODES
        .iter()
        .filter(|n| **n != assigner)
        .map(|n| (n.to_string(), false))
        .collect();
    let mut next_status = t_kill;
    while b.clock.now() < t_kill + WATCH_AFTER_KILL {
        if coord == Coord::Quorum && out.grants_continue_s.is_none() && b.clock.now() >= next_status
        {
            next_status = b.clock.now() + Duration::from_millis(50);
            for (n, done) in regranted.iter_mut().filter(|(_, d)| !**d) {
                let v: Option<serde_json::Value> = b
                    .http(n, "/status")
                    .and_then(|s| serde_json::from_str(&s).ok());
                let by = v.as_ref().map(|v| v["services"]["granted_by"].clone());
                let assigns = v
                    .as_ref()
                    .is_some_and(|v| v["services"]["assigner"] == true);
                *done = assigns || by.is_some_and(|g| g.is_string() && g != assigner.as_str());
            }
            if regranted.values().all(|d| *d) {
                out.grants_continue_s = Some((b.clock.now() - t_kill).as_secs_f64());
            }
        }
        let all = b.watcher().holders_all();
        let missing = before
            .iter()
            .any(|(a, h)| *h != assigner && !all.get(a).is_some_and(|v| v.iter().any(|x| x == h)));
        out.live_missing_samples += usize::from(missing);
        if out.assigner_moved_s.is_none() && b.all_held_once(&theirs, Some(&assigner)).is_some() {
            out.assigner_moved_s = Some((b.clock.now() - t_kill).as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if out.assigner_moved_s.is_none() {
        out.assigner_moved_s = b
            .wait_for(AFTER_HEAL, Duration::from_millis(20), || {
                b.all_held_once(&theirs, Some(&assigner))
            })
            .map(|_| (b.clock.now() - t_kill).as_secs_f64());
    }
    let after = b
        .wait_for(AFTER_HEAL, Duration::from_millis(50), || {
            b.all_held_once(&addrs, Some(&assigner))
        })
        .unwrap_or_else(|| panic!("{coord:?}: not settled after the assigner crash"));
    out.live_moved = before
        .iter()
        .filter(|(a, h)| **h != assigner && after[*a] != **h)
        .count();
    // Everything right in the API again before the outage.
    b.wait_for(CONVERGE, Duration::from_millis(250), || {
        let now = b.all_held_once(&addrs, None)?;
        (b.status_wrong(&names, &now) == 0).then_some(())
    })
    .unwrap_or_else(|| panic!("{coord:?}: status not right after the assigner crash"));

    // 4. The API goes down for everyone; the busiest node crashes 10 s in.
    let held = b.all_held_once(&addrs, None).unwrap();
    let c = counts(&held);
    let victim = c.iter().max_by_key(|(_, k)| **k).unwrap().0.clone();
    let victims: Vec<IpAddr> = held
        .iter()
        .filter(|(_, h)| **h == victim)
        .map(|(a, _)| *a)
        .collect();
    out.victim = victim.clone();
    out.victim_addrs = victims.len();
    // One probed address per live node (its lowest).
    let mut probed: BTreeMap<String, IpAddr> = BTreeMap::new();
    for (a, h) in &held {
        probed.entry(h.clone()).or_insert(*a);
    }
    let probe_list: Vec<IpAddr> = probed.values().copied().collect();
    b.probe(&probe_list);
    std::thread::sleep(Duration::from_secs(2));
    let t_down = b.clock.now();
    b.api_down();
    std::thread::sleep(KILL_INTO_OUTAGE);
    let t_vkill = b.clock.now();
    b.crash(&victim);
    let end_outage = t_down + OUTAGE;
    while b.clock.now() < end_outage {
        if out.victim_moved_s.is_none() && b.all_held_once(&victims, Some(&victim)).is_some() {
            out.victim_moved_s = Some((b.clock.now() - t_vkill).as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let all = b.watcher().holders_all();
    out.dark_at_heal = addrs.iter().filter(|a| !all.contains_key(a)).count();
    let t_up = b.clock.now();
    b.api.call(|s| s.reset_stats());
    b.api_up();
    for (node, a) in &probed {
        let samples = b
            .probers
            .iter()
            .find(|(x, _)| x == a)
            .map(|(_, p)| p.samples())
            .unwrap_or_default();
        if *node == victim {
            out.victim_gap_ms = Some(longest_gap(&samples, t_vkill..t_up).as_millis() as u64);
        } else {
            out.outage_gap_ms
                .push(longest_gap(&samples, t_down..t_up).as_millis() as u64);
        }
    }

    // 5. Heal: every Service's status names its holder again.
    if out.victim_moved_s.is_none() {
        out.victim_moved_s = b
            .wait_for(AFTER_HEAL, Duration::from_millis(20), || {
                b.all_held_once(&victims, Some(&victim))
            })
            .map(|_| (b.clock.now() - t_vkill).as_secs_f64());
    }
    let now = b.all_held_once(&addrs, None).unwrap_or_default();
    out.heal_wrong = b.status_wrong(&names, &now);
    out.heal_status_s = b
        .wait_for(AFTER_HEAL, Duration::from_millis(250), || {
            let now = b.all_held_once(&addrs, None)?;
            (b.status_wrong(&names, &now) == 0).then_some(())
        })
        .map(|_| (b.clock.now() - t_up).as_secs_f64());
    let took = (b.clock.now() - t_up).as_secs_f64().max(0.001);
    let stats = b.api.stats();
    let mut by_client: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for r in &stats.requests {
        if r.resource.starts_with("services") && r.verb == "update" {
            out.heal_status_writes += r.count;
            *by_client.entry(r.client).or_default() += r.count;
        }
    }
    out.heal_max_node_writes_per_s = by_client.values().copied().max().unwrap_or(0) as f64 / took;

    let end = b.clock.now();
    out.two_holder_ms = b.watcher().two_holder_time(Duration::ZERO..end).as_millis();
    out.two_holder_addrs = b.watcher().two_holder_addresses(Duration::ZERO..end).len();
    out
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "never".into(), |s| format!("{s:.2}"))
}

fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn bench_line(o: &Outcome) -> String {
    format!(
        "BENCH services-quorum coordination={} services={} bound_s={:.2} status_s={:.2} per_node={} \
         writes_per_s={:.2} rss_mb={} cpu_pct={} assigner={} assigner_addrs={} \
         live_missing_samples={} live_moved={} grants_continue_s={} assigner_moved_s={} victim={} victim_addrs={} \
         victim_moved_s={} outage_gap_ms={} victim_gap_ms={} dark_at_heal={} heal_wrong={} \
         heal_status_s={} heal_status_writes={} heal_max_node_writes_per_s={:.1} \
         two_holder_ms={} two_holder_addrs={}",
        o.coord,
        o.services,
        o.bound_s,
        o.status_s,
        list(&o.per_node),
        o.writes_per_s,
        list(&o.rss_mb.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>()),
        list(&o.cpu_pct.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>()),
        o.assigner,
        o.assigner_addrs,
        o.live_missing_samples,
        o.live_moved,
        opt(o.grants_continue_s),
        opt(o.assigner_moved_s),
        o.victim,
        o.victim_addrs,
        opt(o.victim_moved_s),
        list(&o.outage_gap_ms),
        o.victim_gap_ms.map_or_else(|| "-".into(), |g| g.to_string()),
        o.dark_at_heal,
        o.heal_wrong,
        opt(o.heal_status_s),
        o.heal_status_writes,
        o.heal_max_node_writes_per_s,
        o.two_holder_ms,
        o.two_holder_addrs,
    )
}

#[test]
#[ignore = "benchmark: run as root by scripts/services-quorum-bench.sh"]
fn services_on_the_quorum_against_services_on_leases() {
    netlab::require_root!();
    let only = std::env::var("VIPD_BENCH_COORDINATION").ok();
    let mut outcomes = Vec::new();
    for coord in [Coord::Quorum, Coord::Lease] {
        if only.as_deref().is_some_and(|o| o != coord.name()) {
            continue;
        }
        let o = run(coord);
        println!("{}", bench_line(&o));
        outcomes.push(o);
    }
    println!();
    let head: Vec<&str> = outcomes.iter().map(|o| o.coord).collect();
    println!("| measurement | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(head.len()));
    let row = |name: &str, f: &dyn Fn(&Outcome) -> String| {
        let cells: Vec<String> = outcomes.iter().map(f).collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    row("Services (addresses)", &|o| o.services.to_string());
    row("start → all bound exactly once (s)", &|o| {
        format!("{:.2}", o.bound_s)
    });
    row("start → every status + vipHost right (s)", &|o| {
        format!("{:.2}", o.status_s)
    });
    row("addresses per node at start", &|o| list(&o.per_node));
    row("steady-state API writes/s", &|o| {
        format!("{:.2}", o.writes_per_s)
    });
    row("RSS per vipd (MB)", &|o| {
        list(
            &o.rss_mb
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>(),
        )
    });
    row("CPU per vipd (% of one core)", &|o| {
        list(
            &o.cpu_pct
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>(),
        )
    });
    row("assigner crashed: its addresses", &|o| {
        format!("{} ({})", o.assigner_addrs, o.assigner)
    });
    row(
        "… 5 ms samples with a live node's address missing",
        &|o| o.live_missing_samples.to_string(),
    );
    row("… live nodes' addresses that moved", &|o| {
        o.live_moved.to_string()
    });
    row(
        "… every live node bound under the new assigner's grant (s)",
        &|o| {
            if o.coord == "quorum" {
                opt(o.grants_continue_s)
            } else {
                "n/a".into()
            }
        },
    );
    row(
        "… dead assigner's addresses held once elsewhere (s)",
        &|o| opt(o.assigner_moved_s),
    );
    row(
        "API down 30 s: longest client gap, live nodes' probed addresses (ms)",
        &|o| list(&o.outage_gap_ms),
    );
    row(
        "busiest node crashed 10 s into the outage: its addresses",
        &|o| format!("{} ({})", o.victim_addrs, o.victim),
    );
    row("… held once elsewhere after (s)", &|o| {
        opt(o.victim_moved_s)
    });
    row(
        "… longest client gap on its probed address until heal (ms)",
        &|o| {
            o.victim_gap_ms
                .map_or_else(|| "-".into(), |g| g.to_string())
        },
    );
    row("addresses held by nobody at the heal", &|o| {
        o.dark_at_heal.to_string()
    });
    row("heal: Services whose status was wrong", &|o| {
        o.heal_wrong.to_string()
    });
    row("heal → every status + vipHost right (s)", &|o| {
        opt(o.heal_status_s)
    });
    row("… Service writes (update) for it", &|o| {
        o.heal_status_writes.to_string()
    });
    row("… busiest node's Service writes/s", &|o| {
        format!("{:.1}", o.heal_max_node_writes_per_s)
    });
    row("two-holder time, every address, whole run (ms)", &|o| {
        o.two_holder_ms.to_string()
    });
    for o in &outcomes {
        println!("steady-state writes ({}): {:?}", o.coord, o.writes_by);
    }
    for o in &outcomes {
        assert_eq!(o.two_holder_addrs, 0, "{}: two holders", o.coord);
    }
}
