//! `vipd lab --mode bgp`: the BGP lab (issue 14). A router namespace (FRR
//! or BIRD 2) sits between the client and the nodes; every node's vipd
//! announces the VIP over BGP and the router spreads the client's traffic
//! over all of them (ECMP). Each scenario faults one node (or the router)
//! and measures how long the router takes to change its route, what the
//! client lost meanwhile, how long until every path is back after the
//! heal, and whether any stale path is left.
//!
//! ```text
//!   run ─► preflight (root, ip, router) ─► BgpLab::build ─► start vipd ×N
//!        ─► per scenario × runs: steady (all paths, BFD up) ─► probe ─► fault
//!           ─► wait for the route ─► heal ─► wait for every path ─► measure
//!        ─► every vipd SIGTERMed: router empty? ─► table, summary, JSON
//! ```
//! There is no single holder here, so the ARP lab's runner, metrics and
//! table do not apply: [`net`] (topology, processes, route poller),
//! [`scenario`], [`measure`] (pure), [`report`]. Same safety as the ARP lab:
//! documentation addresses, per-run prefixes, guards on error and Ctrl-C.

pub mod measure;
pub mod net;
pub mod report;
pub mod scenario;

use crate::{runner::Live, LabCommand, LabError, OutputArgs, RunArgs};
use net::{node_has_bfd, node_ip, BgpLab, BgpLabConfig, RouterChoice};
use netlab::probe::Prober;
use report::{BgpRunReport, BgpSettings, FinalCheck};
use scenario::Scenario;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What can stop the BGP lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ARP lab's shared errors (root, daemon slots, I/O).
    #[error(transparent)]
    Lab(#[from] LabError),
    /// Building or driving the namespaces failed.
    #[error(transparent)]
    Net(#[from] netlab::Error),
    /// The router could not be started or queried.
    #[error(transparent)]
    Router(#[from] netlab::router::RouterError),
    /// The chosen router is not installed (exit status 2, nothing changed).
    #[error("{router} is not installed (the BGP lab's router): apt-get install {package}; nothing was changed")]
    MissingRouter {
        /// `frr` or `bird`.
        router: &'static str,
        /// The Debian package.
        package: &'static str,
    },
    /// A file or thread operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The lab could not reach a state it needs (with the evidence).
    #[error("{0}")]
    Setup(String),
    /// SIGINT or SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

/// A BGP lab plan: what runs, how often, where results go.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Scenarios in order.
    pub scenarios: Vec<Scenario>,
    /// Runs per scenario.
    pub runs: u32,
    /// Nodes.
    pub nodes: usize,
    /// The router implementation.
    pub router: RouterChoice,
    /// Link-flap's down time.
    pub hold: Duration,
    /// Longest wait for every path (at start and after each heal); at
    /// least 60 s (vipd's reconnect back-off reaches 30 s).
    pub settle_timeout: Duration,
    /// `--json FILE`.
    pub json: Option<PathBuf>,
    /// `--run-dir DIR`.
    pub run_dir: Option<PathBuf>,
}

/// The longest wait for the router to change its route after a fault:
/// twice the hold time and then some, so the no-BFD case is seen, not cut.
pub const DETECT_BOUND: Duration = Duration::from_secs(2 * net::HOLD_TIME_S as u64 + 5);
const MIN_SETTLE: Duration = Duration::from_secs(60);

impl Plan {
    /// The demo (also `vipd lab --mode bgp` alone): every scenario once,
    /// 3 nodes, a 3 s link flap.
    pub fn demo(router: RouterChoice, out: &OutputArgs) -> Plan {
        Plan {
            scenarios: Scenario::ALL.to_vec(),
            runs: 1,
            nodes: 3,
            router,
            hold: Duration::from_secs(3),
            settle_timeout: MIN_SETTLE,
            json: out.json.clone(),
            run_dir: out.run_dir.clone(),
        }
    }
}

/// The plan for `command` in BGP mode, or the usage error (options of the
/// ARP lab that mean nothing here are refused, not ignored).
pub fn plan_of(command: &LabCommand, router: Option<RouterChoice>) -> Result<Plan, String> {
    let router = router.unwrap_or(RouterChoice::Frr);
    let (r, out): (&RunArgs, &OutputArgs) = match command {
        LabCommand::Demo { out } => {
            if out.svg.is_some() {
                return Err("--svg: the BGP lab draws no timeline (use --json)".into());
            }
            return Ok(Plan::demo(router, out));
        }
        LabCommand::Bench(_) => {
            return Err(
                "bench compares ARP-mode implementations; use `vipd lab run --mode bgp`".into(),
            )
        }
        LabCommand::Run(r) => (r, &r.out),
    };
    let refused: [(&str, bool); 9] = [
        ("--impl", r.implementation.is_some()),
        ("--coordination", r.coordination != "lease"),
        ("--witness", r.witness),
        ("--services", r.services > 0),
        ("--node-image", r.node_image.is_some()),
        ("--ipv6", r.ipv6),
        ("--svg", out.svg.is_some()),
        ("--backend", r.backend != crate::api::Backend::Etcd),
        ("--kube-testserver", r.kube_testserver.is_some()),
    ];
    if let Some((flag, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(format!(
            "{flag} is an option of the ARP lab; `--mode bgp` takes --scenarios, --runs, --nodes, --router, --hold, --settle-timeout, --json, --run-dir"
        ));
    }
    let scenarios = Scenario::parse_list(r.scenarios.as_deref().unwrap_or("all"))
        .map_err(|e| format!("--scenarios: {e}"))?;
    let secs = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v < 3600.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!("--{name} {v}: expected seconds > 0 and < 3600"))
        }
    };
    Ok(Plan {
        scenarios,
        runs: r.runs,
        nodes: usize::from(r.nodes),
        router,
        hold: secs("hold", r.hold)?,
        settle_timeout: secs("settle-timeout", r.settle_timeout)?.max(MIN_SETTLE),
        json: out.json.clone(),
        run_dir: out.run_dir.clone(),
    })
}

/// Runs the BGP lab for `command`. Exit status: 0 when every run's route
/// changed, came back and left nothing stale; 1 otherwise; 2 on a usage
/// error or when the lab cannot run here (not root, router missing); 130
/// when interrupted.
pub fn run(command: &LabCommand, router: Option<RouterChoice>) -> ExitCode {
    let plan = match plan_of(command, router) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vipd lab --mode bgp: {e}");
            return ExitCode::from(2);
        }
    };
    match execute(&plan) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Error::Interrupted | Error::Lab(LabError::Interrupted)) => {
            eprintln!("\nvipd lab: interrupted; everything the lab created has been removed");
            ExitCode::from(130)
        }
        Err(
            e @ (Error::MissingRouter { .. }
            | Error::Lab(LabError::NotRoot | LabError::MissingTools(_))),
        ) => {
            eprintln!("vipd lab: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("\nvipd lab: {e}\n(everything the lab created has been removed)");
            ExitCode::from(1)
        }
    }
}

/// Root, `ip`, and the router's binaries; nothing is touched before.
fn preflight(router: RouterChoice) -> Result<(), Error> {
    if !netlab::is_root() {
        return Err(LabError::NotRoot.into());
    }
    if !crate::search_dirs().iter().any(|d| d.join("ip").is_file()) {
        return Err(LabError::MissingTools("  ip: apt-get install iproute2".into()).into());
    }
    if !router.kind().installed() {
        return Err(Error::MissingRouter {
            router: router.name(),
            package: router.package(),
        });
    }
    Ok(())
}

fn execute(plan: &Plan) -> Result<bool, Error> {
    preflight(plan.router)?;
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        what: "locate the vipd executable".into(),
        source,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    crate::install_signal_flag(stop.clone())?;
    let mut live = Live::new();
    let prefix = netlab::unique_prefix("bgp");
    let run_dir = plan
        .run_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("vipd-lab-{prefix}")));
    live.event(&format!(
        "vipd lab --mode bgp: router {} (AS {}), {} nodes (n1 without BFD, the others BFD {} ms x {}), hold time {} s, VIP {}, namespaces {prefix}-*, logs in {}",
        plan.router.name(),
        net::ROUTER_AS,
        plan.nodes,
        net::BFD.0,
        net::BFD.2,
        net::HOLD_TIME_S,
        net::VIP,
        run_dir.display()
    ));
    let mut lab = BgpLab::build(BgpLabConfig {
        nodes: plan.nodes,
        router: plan.router,
        exe,
        run_dir,
        prefix,
    })?;
    for i in 1..=plan.nodes {
        lab.start_vipd(i)?;
    }
    // A vipd that rejects its configuration exits at once (status 2): say
    // so now rather than after the settle timeout.
    sleep(Duration::from_millis(500), &stop)?;
    for i in 1..=plan.nodes {
        if !lab.running(i) {
            return Err(Error::Setup(format!(
                "vipd on n{i} exited at start:\n{}",
                lab.log_tail(i, 8)
            )));
        }
    }
    let mut runs = Vec::new();
    for sc in &plan.scenarios {
        for k in 1..=plan.runs {
            let r = run_one(&mut lab, *sc, k, plan, &stop, &mut live)?;
            live.event(&format!(
                "[{} {k}/{}] {}: route changed after {}, client gap {:.3}s ({} of {} probes lost), all paths back {} after {}, stale {} -> {}",
                sc.name(),
                plan.runs,
                r.target,
                r.route_change_ms.map(|v| format!("{:.3}s", v as f64 / 1000.0)).unwrap_or_else(|| "never".into()),
                r.client_gap_ms as f64 / 1000.0,
                r.failed_probes,
                r.probes,
                r.recover_ms.map(|v| format!("{:.3}s", v as f64 / 1000.0)).unwrap_or_else(|| "never".into()),
                if sc.hits_router() { "the restart" } else { "heal" },
                r.stale_routes,
                if r.passed() { "OK" } else { "FAIL" }
            ));
            runs.push(r);
        }
    }
    let final_check = final_check(&mut lab, &stop)?;
    let settings = BgpSettings {
        router: plan.router.name().into(),
        nodes: plan.nodes,
        vip: net::VIP.to_string(),
        hold_time_s: net::HOLD_TIME_S,
        bfd: format!("{}x{} (every node but n1)", net::BFD.0, net::BFD.2),
        route_source: lab.route_source(),
        poll_ms: ms(net::POLL),
        mean_poll_ms: if runs.is_empty() {
            0.0
        } else {
            runs.iter().map(|r| r.mean_poll_ms).sum::<f64>() / runs.len() as f64
        },
        probe: "client TCP connect to VIP:8080 every 10 ms, 150 ms timeout, a new connection (source port) each".into(),
        hold_s: plan.hold.as_secs_f64(),
    };
    drop(lab);
    print!("\n{}", report::table(&runs));
    print!(
        "\nper scenario (min-max):\n{}",
        report::summary_table(&runs)
    );
    println!(
        "route times: {}, polled every {} ms (measured mean {:.1} ms; the worst interval per run is the `poll max` column)",
        settings.route_source, settings.poll_ms, settings.mean_poll_ms
    );
    println!(
        "without BFD the router detects a dead node only by the BGP hold time ({} s here): dead-nobfd measures exactly that",
        net::HOLD_TIME_S
    );
    println!(
        "after the lab: every vipd stopped, {} stale route(s) at the router{}",
        final_check.stale_routes,
        final_check
            .empty_after_ms
            .map(|v| format!(" (empty {:.3}s after the last SIGTERM)", v as f64 / 1000.0))
            .unwrap_or_default()
    );
    if let Some(p) = &plan.json {
        std::fs::write(p, report::to_json(&settings, &runs, Some(final_check))).map_err(
            |source| Error::Io {
                what: format!("write {}", p.display()),
                source,
            },
        )?;
        println!("JSON: {}", p.display());
    }
    let failed = runs.iter().filter(|r| !r.passed()).count();
    println!("{} runs, {failed} failed", runs.len());
    Ok(failed == 0 && final_check.stale_routes == 0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Sleeps `d` in small steps, unwinding on the stop flag.
fn sleep(d: Duration, stop: &AtomicBool) -> Result<(), Error> {
    let step = Duration::from_millis(20);
    let mut left = d;
    while !left.is_zero() {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    Ok(())
}

/// Polls `cond` every 10 ms for up to `timeout`; false on timeout.
fn wait(
    stop: &AtomicBool,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<bool, Error> {
    let step = Duration::from_millis(10);
    let mut waited = Duration::ZERO;
    loop {
        if cond() {
            return Ok(true);
        }
        if waited >= timeout {
            return Ok(false);
        }
        sleep(step, stop)?;
        waited += step;
    }
}

/// Every node up, healthy and running, every path in the router's kernel
/// and every BFD session Up.
fn ensure_steady(lab: &mut BgpLab, plan: &Plan, stop: &AtomicBool) -> Result<(), Error> {
    for i in 1..=lab.nodes() {
        lab.link(i, true)?;
        lab.health(i, true)?;
        if !lab.running(i) {
            lab.start_vipd(i)?;
        }
    }
    let all = lab.all_hops();
    let ok = wait(stop, plan.settle_timeout, || {
        lab.routes().current() == all.as_slice() && lab.bfd_all_up()
    })?;
    if ok {
        return Ok(());
    }
    let tails: String = (1..=lab.nodes())
        .map(|i| format!("--- n{i}\n{}\n", lab.log_tail(i, 8)))
        .collect();
    Err(Error::Setup(format!(
        "the router never had every path with BFD up within {:?} (kernel {:?}, BGP table {:?}, BFD {:?}):\n{tails}--- router\n{}",
        plan.settle_timeout,
        lab.routes().current(),
        lab.rib_hops().ok(),
        lab.router().bfd_peers().ok(),
        lab.router_log()
    )))
}

/// One run of `sc`.
fn run_one(
    lab: &mut BgpLab,
    sc: Scenario,
    k: u32,
    plan: &Plan,
    stop: &AtomicBool,
    live: &mut Live,
) -> Result<BgpRunReport, Error> {
    live.update(&format!("[{} {k}/{}] settling", sc.name(), plan.runs));
    ensure_steady(lab, plan, stop)?;
    let n = lab.nodes();
    let target = if sc.targets_no_bfd_node() { 1 } else { n };
    let target_ip = node_ip(target);
    let target_name = if sc.hits_router() {
        "router".to_string()
    } else if node_has_bfd(target) {
        format!("n{target} (BFD {}x{})", net::BFD.0, net::BFD.2)
    } else {
        format!("n{target} (no BFD)")
    };
    let clock = lab.clock();
    lab.reset_routes();
    let prober = Prober::start(
        lab.client(),
        SocketAddr::new(IpAddr::V4(net::VIP), net::SERVICE_PORT),
        clock,
    )?;
    sleep(Duration::from_millis(500), stop)?;
    let mut note = Vec::new();
    let mut stale_routes = 0;
    live.update(&format!(
        "[{} {k}/{}] fault on {target_name}",
        sc.name(),
        plan.runs
    ));
    let t_fault = clock.now();
    match sc {
        Scenario::Graceful => lab.sigterm(target)?,
        Scenario::CrashBfd | Scenario::CrashNoBfd => lab.sigkill(target)?,
        Scenario::DeadBfd | Scenario::DeadNoBfd | Scenario::LinkFlap => lab.link(target, false)?,
        Scenario::Health => lab.health(target, false)?,
        Scenario::PeerRestart => lab.router_mut().restart()?,
    }
    let t_heal = if sc.heals_after_route_change() {
        let gone = wait(stop, DETECT_BOUND, || {
            !lab.routes().current().contains(&target_ip)
        })?;
        if !gone {
            note.push(format!("path kept {DETECT_BOUND:?}"));
        }
        // Settled without the node: neither the BGP table nor the kernel
        // may still have its path.
        sleep(Duration::from_millis(300), stop)?;
        let rib = lab.rib_hops()?;
        let kernel = lab.kernel_hops()?;
        let others: Vec<IpAddr> = lab
            .all_hops()
            .into_iter()
            .filter(|h| *h != target_ip)
            .collect();
        stale_routes +=
            measure::stale(&rib, &others).len() + measure::stale(&kernel, &others).len();
        let t = clock.now();
        match sc {
            Scenario::Graceful => {
                lab.reap(target, Duration::from_secs(10))?;
                lab.start_vipd(target)?;
            }
            Scenario::CrashBfd | Scenario::CrashNoBfd => lab.start_vipd(target)?,
            Scenario::DeadBfd | Scenario::DeadNoBfd => lab.link(target, true)?,
            Scenario::Health => lab.health(target, true)?,
            Scenario::PeerRestart | Scenario::LinkFlap => {}
        }
        t
    } else if sc == Scenario::LinkFlap {
        sleep(plan.hold, stop)?;
        let t = clock.now();
        lab.link(target, true)?;
        t
    } else {
        // The restart was the whole fault: recovery counts from its start.
        t_fault
    };
    live.update(&format!(
        "[{} {k}/{}] healed, waiting for every path",
        sc.name(),
        plan.runs
    ));
    let all = lab.all_hops();
    let back = wait(stop, plan.settle_timeout, || {
        lab.routes().current() == all.as_slice()
    })?;
    if !back {
        note.push(format!(
            "paths {:?} after {:?}",
            lab.routes().current(),
            plan.settle_timeout
        ));
    }
    sleep(Duration::from_millis(300), stop)?;
    let samples = prober.stop();
    let t_end = clock.now();
    // At the end every node announces again: anything else is stale.
    let rib = lab.rib_hops()?;
    let kernel = lab.kernel_hops()?;
    stale_routes += measure::stale(&rib, &all).len() + measure::stale(&kernel, &all).len();
    if stale_routes > 0 {
        note.push(format!("stale: BGP table {rib:?}, kernel {kernel:?}"));
    }
    let log = lab.routes();
    let route_change = if sc.hits_router() {
        measure::first_change_after(&log, t_fault)
    } else {
        measure::gone_after(&log, target_ip, t_fault)
    };
    if sc == Scenario::LinkFlap && route_change.is_some_and(|d| d > t_heal - t_fault) {
        note.push("path left only after the link was back".into());
    }
    // A router restart's paths are all there when it starts: they count
    // as back once they return after the first change.
    let recover = if sc.hits_router() {
        route_change.and_then(|c| measure::all_back_after(&log, &all, t_fault + c).map(|b| c + b))
    } else {
        measure::all_back_after(&log, &all, t_heal)
    };
    let client = measure::client_view(&samples, t_fault..t_end);
    Ok(BgpRunReport {
        scenario: sc.name().into(),
        run: k,
        target: target_name,
        route_change_ms: route_change.map(ms),
        client_gap_ms: ms(client.gap),
        failed_probes: client.failed,
        probes: client.probes,
        recover_ms: recover.map(ms),
        stale_routes,
        route_resolution_ms: ms(log.max_poll_interval),
        mean_poll_ms: log
            .mean_poll_interval()
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        note: note.join("; "),
    })
}

/// Every vipd SIGTERMed; the router must end with no path at all.
fn final_check(lab: &mut BgpLab, stop: &AtomicBool) -> Result<FinalCheck, Error> {
    for i in 1..=lab.nodes() {
        lab.link(i, true)?;
        lab.health(i, true)?;
    }
    let clock = lab.clock();
    for i in 1..=lab.nodes() {
        lab.sigterm(i)?;
    }
    let t = clock.now();
    let empty = wait(stop, DETECT_BOUND, || {
        lab.rib_hops().is_ok_and(|h| h.is_empty()) && lab.kernel_hops().is_ok_and(|h| h.is_empty())
    })?;
    let took = clock.now() - t;
    for i in 1..=lab.nodes() {
        lab.reap(i, Duration::from_secs(5))?;
    }
    let stale = lab.rib_hops()?.len() + lab.kernel_hops()?.len();
    Ok(FinalCheck {
        stale_routes: stale,
        empty_after_ms: empty.then(|| ms(took)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    #[command(name = "vipd lab")]
    struct Cli {
        #[command(flatten)]
        args: crate::LabArgs,
    }

    fn parse(v: &[&str]) -> crate::LabArgs {
        let mut all = vec!["vipd lab"];
        all.extend_from_slice(v);
        Cli::try_parse_from(all).unwrap().args
    }

    #[test]
    fn mode_bgp_alone_is_the_bgp_demo_with_frr() {
        let a = parse(&["--mode", "bgp"]);
        assert_eq!(a.mode, crate::LabMode::Bgp);
        let p = plan_of(&a.command, a.router).unwrap();
        assert_eq!(p.scenarios, Scenario::ALL.to_vec());
        assert_eq!((p.runs, p.nodes, p.router), (1, 3, RouterChoice::Frr));
        let a = parse(&["--mode", "bgp", "--router", "bird"]);
        assert_eq!(
            plan_of(&a.command, a.router).unwrap().router,
            RouterChoice::Bird
        );
        let a = parse(&["demo", "--mode", "bgp"]);
        assert_eq!(
            (a.mode, plan_of(&a.command, a.router).unwrap().runs),
            (crate::LabMode::Bgp, 1)
        );
    }

    #[test]
    fn run_mode_bgp_takes_its_options_after_the_subcommand() {
        let a = parse(&[
            "run",
            "--mode",
            "bgp",
            "--scenarios",
            "graceful,dead-nobfd",
            "--runs",
            "3",
            "--nodes",
            "4",
            "--router",
            "frr",
            "--json",
            "/tmp/x.json",
        ]);
        assert_eq!(a.mode, crate::LabMode::Bgp);
        let p = plan_of(&a.command, a.router).unwrap();
        assert_eq!(p.scenarios, vec![Scenario::Graceful, Scenario::DeadNoBfd]);
        assert_eq!((p.runs, p.nodes), (3, 4));
        assert_eq!(p.json.as_deref(), Some(std::path::Path::new("/tmp/x.json")));
        assert!(p.settle_timeout >= MIN_SETTLE);
    }

    #[test]
    fn arp_lab_options_and_bad_scenarios_are_refused_in_bgp_mode() {
        for bad in [
            &["run", "--mode", "bgp", "--impl", "keepalived"][..],
            &["run", "--mode", "bgp", "--ipv6"],
            &["run", "--mode", "bgp", "--coordination", "quorum"],
            &["run", "--mode", "bgp", "--scenarios", "sigterm"],
            &["bench", "--mode", "bgp"],
            &["demo", "--mode", "bgp", "--svg", "/tmp/x.svg"],
        ] {
            let a = parse(bad);
            assert!(plan_of(&a.command, a.router).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_mode_is_the_arp_lab_and_needs_a_subcommand() {
        let a = parse(&["demo"]);
        assert_eq!(a.mode, crate::LabMode::Arp);
        assert!(matches!(a.command, LabCommand::Demo { .. }));
        assert!(Cli::try_parse_from(["vipd lab"]).is_err());
        assert!(Cli::try_parse_from(["vipd lab", "--mode", "ospf"]).is_err());
        assert!(Cli::try_parse_from(["vipd lab", "--mode", "bgp", "--router", "gobgp"]).is_err());
    }
}
