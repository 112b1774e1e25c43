//! `vipd lab`: the fault-injection lab as a product feature (SPEC §7).
//!
//! It builds a namespace network on this machine (switch with a bridge, N
//! vipd nodes, a client, an API namespace running a real etcd or the
//! in-repo Kubernetes API test server: [`api`]), starts real
//! vipd processes (this same executable, `vipd run ...`), probes the VIP from
//! the client every 10 ms, watches the wire and every node's addresses, and
//! walks through the fault scenarios, measuring each run. It ends with a
//! table, and optionally JSON and an SVG timeline.
//!
//! ```text
//!   main ─► preflight (root, tools) ─► Lab::build ─► run_plan ─► report
//!                                        ▲             │ polls every 100 ms:
//!   SIGINT/SIGTERM thread ── stop flag ──┴─────────────┘ live line, stop flag
//! ```
//! Safety: documentation addresses only, everything named with a per-run
//! prefix and removed by guards on exit, error and Ctrl-C; nothing in the
//! host namespace changes. Module overview: [`scenario`] (recipes),
//! [`lab`] (network and processes), [`wire`] (claims on the wire),
//! [`measure`] (pure metrics), [`runner`] (loop and live view),
//! [`report`] (table, JSON), [`svg`] (timeline), [`services`] (Services
//! runs: LoadBalancer Services, per-address observation), [`bgp`] (`--mode
//! bgp`: a router between the client and the nodes, ECMP; its own
//! topology, scenarios, measurements and report).

#![forbid(unsafe_code)]

pub mod api;
pub mod bench;
pub mod bgp;
pub mod cluster;
pub mod keepalived;
pub mod lab;
pub mod measure;
mod mode;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod services;
pub mod svg;
pub mod wire;

use clap::Subcommand;
pub use mode::LabMode;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything that can stop the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Not running as root.
    #[error("needs root: it creates network namespaces (run it with sudo); nothing was changed")]
    NotRoot,
    /// Required system tools are missing.
    #[error("missing system tools, nothing was changed:\n{0}")]
    MissingTools(String),
    /// Building or driving the namespaces failed.
    #[error(transparent)]
    Net(#[from] netlab::Error),
    /// etcd could not be started or stopped.
    #[error(transparent)]
    Etcd(#[from] netlab::etcd::EtcdServerError),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Invalid lab setup (a bug or a bad option).
    #[error("{0}")]
    Setup(String),
    /// What was asked cannot run here (exit status 2, nothing changed).
    #[error("{0}")]
    Unsupported(String),
    /// SIGINT or SIGTERM.
    #[error("interrupted")]
    Interrupted,
}

/// `vipd lab`'s arguments, embedded by the binary as its `lab` subcommand
/// (so `vipd --help` lists it and usage errors look like every other
/// subcommand's). The daemon's configuration is not involved: the lab
/// starts vipd processes with flags of its own.
///
/// `--mode` and `--router` are accepted before or after the subcommand;
/// `vipd lab --mode bgp` alone is the BGP demo (every BGP scenario once).
/// Without `--mode bgp` a subcommand is required, as before.
#[derive(Debug, Clone, PartialEq)]
pub struct LabArgs {
    /// Which lab: the L2/ARP one (default) or the BGP one.
    pub mode: LabMode,
    /// The BGP lab's router (`--router`; BGP mode only).
    pub router: Option<bgp::net::RouterChoice>,
    /// Which lab run.
    pub command: LabCommand,
}

/// `vipd lab demo|run|bench`.
#[derive(Debug, Clone, PartialEq, Subcommand)]
pub enum LabCommand {
    /// 3 nodes, every scenario once, short holds.
    Demo {
        /// Where the results go.
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Chosen scenarios, runs, nodes and lease settings; one implementation
    /// (`--impl vipd`, the default, or `--impl keepalived`).
    Run(RunArgs),
    /// The same with several implementations back to back (`--impl
    /// vipd,keepalived`, the default), then a side-by-side table.
    Bench(RunArgs),
}

/// Output files of a lab run (`--json`, `--svg`, `--run-dir`).
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct OutputArgs {
    /// Write the runs as JSON (schema vipd-lab/1) to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the timeline SVG to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Directory for the vipd logs (default: a fresh one under the temp dir; kept).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

/// Options of `vipd lab run` and `vipd lab bench`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct RunArgs {
    /// What runs on the nodes: `vipd` or `keepalived`; `bench` takes a
    /// comma-separated list (default: `vipd` for run, `vipd,keepalived`
    /// for bench).
    #[arg(long = "impl", value_name = "IMPL[,IMPL]")]
    implementation: Option<String>,
    /// Comma-separated scenarios, `all` (the first eleven; in quorum mode also
    /// peer-partition and peer-loss, and witness-down with --witness),
    /// `peer` (the last three) or `services` (the svc-* ones, which need
    /// --services): sigterm, sigkill-restart, crash, link-flap, api-cut,
    /// api-down, partition, loss, vip-deleted, stale-vip, svc-crash,
    /// svc-api-down, svc-link-flap, peer-partition, peer-loss, witness-down.
    /// A scenario that does not apply (peer-* to vipd in lease mode,
    /// witness-down without a witness) is reported as not applicable
    /// [default: all; services with --services]
    #[arg(long)]
    scenarios: Option<String>,
    /// How the vipd nodes agree on the holder: `lease` (a lease in the API
    /// backend) or `quorum` (the nodes vote over authenticated UDP, port
    /// 7480; the backend stays configured, vipd mirrors the holder there);
    /// `bench` takes a comma-separated list (`lease,quorum`: vipd runs once
    /// per coordination, side by side with keepalived)
    #[arg(long, value_name = "MODE[,MODE]", default_value = "lease")]
    coordination: String,
    /// Quorum mode with --nodes 2: a third voter, `vipd witness`, in its own
    /// namespace (192.0.2.40) on the lab switch; it votes, never holds.
    #[arg(long)]
    witness: bool,
    /// Quorum promise in seconds (`vipd run --quorum-promise`; quorum mode).
    #[arg(long, default_value_t = 0.6)]
    quorum_promise: f64,
    /// Quorum heartbeat in seconds (`vipd run --quorum-heartbeat`; quorum
    /// mode).
    #[arg(long, default_value_t = 0.1)]
    quorum_heartbeat: f64,
    /// Lease backend of the vipd nodes: `etcd` (a real etcd 3.4 in the API
    /// namespace) or `kubernetes` (the in-repo Kubernetes API TEST server,
    /// `vipd-kube-testserver`, in its place; vipd gets its kubeconfig). A
    /// real kube-apiserver (KUBE_APISERVER) is not supported by the lab.
    #[arg(long, default_value = "etcd", value_parser = api::Backend::parse)]
    backend: api::Backend,
    /// Services mode: create N LoadBalancer Services (one address each,
    /// 203.0.113.10 onwards) and run every vipd with `--services` (kube-vip's
    /// svc_enable) next to the VIP; the client probes 4 of the addresses,
    /// all N are watched. Needs --backend kubernetes.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=240))]
    services: u16,
    /// The `vipd-kube-testserver` executable (default: next to this vipd,
    /// then on PATH; build it with `cargo build -p vipd-kube-testserver`).
    #[arg(long, value_name = "PATH", env = "VIPD_KUBE_TESTSERVER")]
    kube_testserver: Option<PathBuf>,
    /// Run the vipd of some nodes (--image-nodes) from this container image
    /// (e.g. ghcr.io/vipd/vipd:v0.1.0, built by scripts/build-image.sh):
    /// `podman run` in the node's namespace with `--cap-drop ALL --cap-add
    /// NET_ADMIN,NET_RAW` and the image's non-root user.
    #[arg(long, value_name = "IMAGE")]
    node_image: Option<String>,
    /// The nodes that run --node-image, comma-separated.
    #[arg(
        long,
        value_name = "NODE[,NODE]",
        default_value = "n1",
        requires = "node_image"
    )]
    image_nodes: String,
    /// Runs per scenario.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Number of vipd nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=9))]
    nodes: u8,
    /// Lease duration in seconds.
    #[arg(long, default_value_t = 3.0)]
    lease_duration: f64,
    /// Renew deadline in seconds.
    #[arg(long, default_value_t = 2.0)]
    renew_deadline: f64,
    /// Retry period in seconds.
    #[arg(long, default_value_t = 0.5)]
    retry_period: f64,
    /// How long each fault is held, in seconds (some hold longer, e.g. past
    /// lease expiry).
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Longest wait for one holder serving the client, in seconds.
    #[arg(long, default_value_t = 30.0)]
    settle_timeout: f64,
    /// IPv6 VIP (2001:db8::100) instead of IPv4 (192.0.2.100).
    #[arg(long)]
    ipv6: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// Tools the lab runs, with the Debian package providing each.
pub const TOOLS: [(&str, &str); 5] = [
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    ("tcpdump", "tcpdump"),
];

/// The tool `--impl keepalived` needs in addition to [`TOOLS`], with its
/// Debian package.
pub const KEEPALIVED_TOOL: (&str, &str) = ("keepalived", "keepalived");

/// Which of [`TOOLS`] are in none of `dirs`.
pub fn missing_tools(dirs: &[PathBuf]) -> Vec<(&'static str, &'static str)> {
    TOOLS
        .iter()
        .filter(|(t, _)| !dirs.iter().any(|d| d.join(t).is_file()))
        .copied()
        .collect()
}

/// `PATH` plus the sbin directories root normally has.
fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// Why `KUBE_APISERVER` is refused (the lab would otherwise silently run
/// the test server while the user believes a real API server ran).
pub const KUBE_APISERVER_UNSUPPORTED: &str = "KUBE_APISERVER is set, but `vipd lab` cannot run a real kube-apiserver: it would need its own etcd, serving certificates, a service-account issuer and RBAC for the nodes, none of which the lab sets up. `--backend kubernetes` runs the in-repo Kubernetes API TEST server (vipd-kube-testserver) instead; unset KUBE_APISERVER to use it. Nothing was changed";

/// Executables found by [`preflight`].
struct Found {
    keepalived: Option<PathBuf>,
    kube_testserver: Option<PathBuf>,
}

/// Checks root and tools; returns the keepalived executable's path when
/// `impls` include keepalived, and the test server's with the Kubernetes
/// backend.
fn preflight(plan: &Plan, exe: &Path) -> Result<Found, LabError> {
    let impls = &plan.impls;
    let kube = plan.backend == api::Backend::Kubernetes;
    if kube && std::env::var_os("KUBE_APISERVER").is_some_and(|v| !v.is_empty()) {
        return Err(LabError::Unsupported(KUBE_APISERVER_UNSUPPORTED.into()));
    }
    if !netlab::is_root() {
        return Err(LabError::NotRoot);
    }
    if let Some(img) = &plan.image {
        let exists = std::process::Command::new("podman")
            .args(["image", "exists", &img.image])
            .status();
        match exists {
            Ok(st) if st.success() => {}
            Ok(_) => return Err(LabError::Unsupported(format!("--node-image {}: no such image in podman's store; build it with scripts/build-image.sh. Nothing was changed", img.image))),
            Err(e) => return Err(LabError::Unsupported(format!("--node-image needs podman (apt-get install podman runc): {e}. Nothing was changed"))),
        }
    }
    let dirs = search_dirs();
    let mut missing = missing_tools(&dirs);
    if kube {
        // etcd is not started with the Kubernetes backend.
        missing.retain(|(t, _)| !t.starts_with("etcd"));
    }
    let kube_testserver = if kube {
        let found = api::find_testserver(plan.kube_testserver.as_deref(), exe, &dirs);
        if found.is_none() {
            return Err(LabError::Unsupported(format!(
                "--backend kubernetes needs the in-repo Kubernetes API test server `{}`, {}; build it with `cargo build -p vipd-kube-testserver` (the same profile as this vipd) or pass --kube-testserver PATH. Nothing was changed",
                api::TESTSERVER_BIN,
                match &plan.kube_testserver {
                    Some(p) => format!("not found at {}", p.display()),
                    None => format!(
                        "found neither next to {} nor on PATH",
                        exe.display()
                    ),
                }
            )));
        }
        found
    } else {
        None
    };
    let keepalived = dirs
        .iter()
        .map(|d| d.join(KEEPALIVED_TOOL.0))
        .find(|p| p.is_file());
    if impls.contains(&lab::Implementation::Keepalived) && keepalived.is_none() {
        missing.push(KEEPALIVED_TOOL);
    }
    if !missing.is_empty() {
        let mut pkgs: Vec<&str> = missing.iter().map(|m| m.1).collect();
        pkgs.dedup();
        let lines: Vec<String> = missing
            .iter()
            .map(|(t, p)| format!("  {t}: apt-get install {p}"))
            .collect();
        return Err(LabError::MissingTools(format!(
            "{}\ninstall all: apt-get install {}",
            lines.join("\n"),
            pkgs.join(" ")
        )));
    }
    Ok(Found {
        keepalived,
        kube_testserver,
    })
}

/// Sets `flag` on SIGINT or SIGTERM, from a small thread running a
/// single-threaded tokio runtime (tokio's signal handling needs no
/// `unsafe` here). The run loop checks the flag and unwinds; the guards
/// tear everything down.
fn install_signal_flag(flag: Arc<AtomicBool>) -> Result<(), LabError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| LabError::Io {
            what: "signal runtime".into(),
            source,
        })?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("vipd-lab-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    let _ = tx.send(false);
                    return;
                };
                let _ = tx.send(true);
                loop {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    flag.store(true, Ordering::Relaxed);
                }
            });
        })
        .map_err(|source| LabError::Io {
            what: "signal thread".into(),
            source,
        })?;
    match rx.recv() {
        Ok(true) => Ok(()),
        _ => Err(LabError::Setup(
            "cannot install the SIGINT/SIGTERM handler".into(),
        )),
    }
}

struct Plan {
    impls: Vec<lab::Implementation>,
    coordinations: Vec<lab::Coordination>,
    witness: bool,
    quorum: cluster::QuorumTiming,
    bench: bool,
    run: runner::RunPlan,
    nodes: usize,
    timing: lab::Timing,
    ipv6: bool,
    backend: api::Backend,
    services: usize,
    kube_testserver: Option<PathBuf>,
    image: Option<lab::NodeImage>,
}

/// Runs `vipd lab` with parsed `args`. Exit status: 0 when every run ended
/// with one holder serving the client and never had two holders (for
/// `bench`: every vipd run); 1 otherwise; 2 on a usage error or when the lab
/// cannot run here (not root, tools missing); 130 when interrupted. Command
/// line syntax errors are the binary's (clap's exit status 2).
pub fn run(args: LabArgs) -> ExitCode {
    if args.mode == LabMode::Bgp {
        return bgp::run(&args.command, args.router);
    }
    if args.router.is_some() {
        eprintln!("vipd lab: --router is the BGP lab's (add --mode bgp)");
        return ExitCode::from(2);
    }
    let (plan, out) = match args.command {
        LabCommand::Demo { out } => (
            Plan {
                impls: vec![lab::Implementation::Vipd],
                coordinations: vec![lab::Coordination::Lease],
                witness: false,
                quorum: cluster::QuorumTiming::default(),
                bench: false,
                run: runner::RunPlan {
                    scenarios: scenario::Scenario::ALL.to_vec(),
                    runs: 1,
                    hold: Duration::from_secs(2),
                    settle_timeout: Duration::from_secs(30),
                },
                nodes: 3,
                timing: lab::Timing {
                    lease: 3.0,
                    renew: 2.0,
                    retry: 0.5,
                },
                ipv6: false,
                backend: api::Backend::Etcd,
                services: 0,
                kube_testserver: None,
                image: None,
            },
            out,
        ),
        LabCommand::Run(r) => match plan_of(r, false) {
            Ok(p) => p,
            Err(code) => return code,
        },
        LabCommand::Bench(r) => match plan_of(r, true) {
            Ok(p) => p,
            Err(code) => return code,
        },
    };
    match execute(&plan, &out) {
        Ok(all_ok) => {
            if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(LabError::Interrupted) => {
            eprintln!("\nvipd lab: interrupted; everything the lab created has been removed");
            ExitCode::from(130)
        }
        Err(e @ (LabError::NotRoot | LabError::MissingTools(_) | LabError::Unsupported(_))) => {
            eprintln!("vipd lab: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("\nvipd lab: {e}\n(everything the lab created has been removed)");
            ExitCode::from(1)
        }
    }
}

/// The plan of `run` (`bench` false: one implementation) or `bench`; the
/// exit code on a usage error (already reported).
fn plan_of(r: RunArgs, bench: bool) -> Result<(Plan, OutputArgs), ExitCode> {
    let default = if bench { "vipd,keepalived" } else { "vipd" };
    let impls =
        match lab::Implementation::parse_list(r.implementation.as_deref().unwrap_or(default)) {
            Ok(i) if !bench && i.len() > 1 => {
                eprintln!(
                "vipd lab run: --impl takes one implementation; `vipd lab bench` compares several"
            );
                return Err(ExitCode::from(2));
            }
            Ok(i) => i,
            Err(e) => {
                eprintln!("vipd lab: --impl: {e}");
                return Err(ExitCode::from(2));
            }
        };
    let usage = |msg: &str| {
        eprintln!("vipd lab: {msg}");
        Err(ExitCode::from(2))
    };
    let coordinations = match lab::Coordination::parse_list(&r.coordination) {
        Ok(c) if !bench && c.len() > 1 => {
            return usage("run: --coordination takes one mode; `vipd lab bench --coordination lease,quorum` compares several");
        }
        Ok(c) => c,
        Err(e) => return usage(&format!("--coordination: {e}")),
    };
    let quorum = coordinations.contains(&lab::Coordination::Quorum);
    if quorum && !impls.contains(&lab::Implementation::Vipd) {
        return usage(
            "--coordination quorum is vipd's; keepalived coordinates by VRRP (add --impl vipd)",
        );
    }
    if let Some(msg) = witness_misuse(r.witness, &coordinations, r.nodes) {
        return usage(msg);
    }
    let default_scenarios = if r.services > 0 { "services" } else { "all" };
    let scenarios = match scenario::Scenario::parse_list(
        r.scenarios.as_deref().unwrap_or(default_scenarios),
        quorum,
        r.witness,
    ) {
        Ok(s) => s,
        Err(e) => return usage(&format!("--scenarios: {e}")),
    };
    let image = match r.node_image {
        None => None,
        Some(image) => {
            let nodes: Vec<String> = r
                .image_nodes
                .split(',')
                .map(|n| n.trim().to_string())
                .collect();
            let known = |n: &String| {
                n.strip_prefix('n')
                    .and_then(|i| i.parse::<u8>().ok())
                    .is_some_and(|i| (1..=r.nodes).contains(&i))
            };
            if let Some(bad) = nodes.iter().find(|n| !known(n)) {
                return usage(&format!(
                    "--image-nodes: no node {bad:?} (nodes are n1..n{})",
                    r.nodes
                ));
            }
            Some(lab::NodeImage { image, nodes })
        }
    };
    if r.services > 0 && r.backend != api::Backend::Kubernetes {
        return usage("--services needs --backend kubernetes (Services mode reads LoadBalancer Services from the Kubernetes API)");
    }
    if r.services > 0 && impls.contains(&lab::Implementation::Keepalived) {
        return usage(
            "--services runs vipd's Services mode; keepalived has none (use --impl vipd)",
        );
    }
    if r.services == 0 {
        if let Some(sc) = scenarios.iter().find(|s| s.is_services()) {
            return usage(&format!(
                "scenario {} needs Services: add --backend kubernetes --services N",
                sc.name()
            ));
        }
    }
    let secs = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 && v < 3600.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!(
                "vipd lab: --{name} {v}: expected seconds > 0 and < 3600"
            ))
        }
    };
    let checked = (|| -> Result<(Duration, Duration), String> {
        for (n, v) in [
            ("lease-duration", r.lease_duration),
            ("renew-deadline", r.renew_deadline),
            ("retry-period", r.retry_period),
            ("quorum-promise", r.quorum_promise),
            ("quorum-heartbeat", r.quorum_heartbeat),
        ] {
            secs(n, v)?;
        }
        Ok((
            secs("hold", r.hold)?,
            secs("settle-timeout", r.settle_timeout)?,
        ))
    })();
    let (hold, settle_timeout) = match checked {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Err(ExitCode::from(2));
        }
    };
    Ok((
        Plan {
            impls,
            coordinations,
            witness: r.witness,
            quorum: cluster::QuorumTiming {
                promise: r.quorum_promise,
                heartbeat: r.quorum_heartbeat,
            },
            bench,
            run: runner::RunPlan {
                scenarios,
                runs: r.runs,
                hold,
                settle_timeout,
            },
            nodes: usize::from(r.nodes),
            timing: lab::Timing {
                lease: r.lease_duration,
                renew: r.renew_deadline,
                retry: r.retry_period,
            },
            ipv6: r.ipv6,
            backend: r.backend,
            services: usize::from(r.services),
            kube_testserver: r.kube_testserver,
            image,
        },
        r.out,
    ))
}

/// Why `--witness` cannot be used with these settings (`None`: it can, or
/// it was not asked for).
fn witness_misuse(
    witness: bool,
    coordinations: &[lab::Coordination],
    nodes: u8,
) -> Option<&'static str> {
    if !witness {
        return None;
    }
    if coordinations.contains(&lab::Coordination::Lease)
        || !coordinations.contains(&lab::Coordination::Quorum)
    {
        return Some("--witness is quorum mode's third voter: use it with --coordination quorum alone (lease mode has no voters)");
    }
    if nodes != 2 {
        return Some("--witness needs --nodes 2 (2 nodes + the witness = 3 voters)");
    }
    None
}

fn execute(plan: &Plan, out: &OutputArgs) -> Result<bool, LabError> {
    let exe = std::env::current_exe().map_err(|source| LabError::Io {
        what: "locate the vipd executable".into(),
        source,
    })?;
    let found = preflight(plan, &exe)?;
    let keepalived = found.keepalived;
    let stop = Arc::new(AtomicBool::new(false));
    install_signal_flag(stop.clone())?;
    let mut live = runner::Live::new();
    let variants = lab::Variant::all(&plan.impls, &plan.coordinations);
    let several = variants.len() > 1;
    // Lease-only runs read as they did before quorum mode.
    let compared = plan.coordinations != [lab::Coordination::Lease];
    let mut all: Vec<bench::ImplRuns> = Vec::new();
    let mut pictures: Vec<runner::RunOutcome> = Vec::new();
    let mut failed_vipd = 0;
    let mut failed = 0;
    let mut skipped = 0;
    for v in &variants {
        let imp = &v.implementation;
        let label = v.label(compared);
        // One fresh lab per variant, back to back: nothing of one
        // (namespaces, etcd data, neighbour caches) leaks into the other.
        let prefix = netlab::unique_prefix("lab");
        let run_dir = match &out.run_dir {
            Some(d) if several => d.join(label.replace(' ', "-")),
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(format!("vipd-lab-{prefix}")),
        };
        let quorum =
            *imp == lab::Implementation::Vipd && v.coordination == lab::Coordination::Quorum;
        let cfg = lab::LabConfig {
            implementation: *imp,
            coordination: v.coordination,
            witness: plan.witness && quorum,
            quorum: plan.quorum,
            keepalived: keepalived.clone().unwrap_or_default(),
            nodes: plan.nodes,
            timing: plan.timing,
            ipv6: plan.ipv6,
            exe: exe.clone(),
            run_dir,
            prefix,
            backend: plan.backend,
            kube_testserver: found.kube_testserver.clone().unwrap_or_default(),
            services: plan.services,
            image: plan.image.clone(),
        };
        // What does not apply to this variant is reported, never run.
        let mut run_plan = plan.run.clone();
        let mut not_applicable = Vec::new();
        run_plan
            .scenarios
            .retain(|sc| match sc.not_applicable(*v, cfg.witness) {
                None => true,
                Some(reason) => {
                    not_applicable.push(report::NotApplicable {
                        scenario: sc.name().to_string(),
                        reason: reason.to_string(),
                    });
                    false
                }
            });
        not_applicable.dedup();
        skipped += not_applicable.len();
        let (outcomes, settings) = if run_plan.scenarios.is_empty() {
            live.event(&format!("vipd lab: {label}: no scenario applies"));
            (
                Vec::new(),
                settings_of(plan, &cfg, compared, None, String::new()),
            )
        } else {
            run_impl(plan, &run_plan, cfg, compared, &stop, &mut live)?
        };
        let reports: Vec<report::RunReport> = outcomes.iter().map(|o| o.report.clone()).collect();
        if several || compared {
            print!("\n{label}:");
        }
        print!("\n{}", report::table(&reports));
        print!("{}", report::not_applicable_lines(&not_applicable));
        let svc = report::services_table(&reports);
        if !svc.is_empty() {
            print!(
                "\nServices ({} LoadBalancer Services, every address):\n{svc}",
                plan.services
            );
        }
        let bad = reports.iter().filter(|r| !r.passed()).count();
        failed += bad;
        if *imp == lab::Implementation::Vipd {
            failed_vipd += bad;
        }
        pictures.extend(outcomes.into_iter().map(|mut o| {
            if several {
                o.report.scenario = format!("{label} {}", o.report.scenario);
            }
            o
        }));
        all.push(bench::ImplRuns {
            implementation: imp.name().to_string(),
            coordination: compared.then(|| v.coordination_name().to_string()),
            settings,
            runs: reports,
            not_applicable,
        });
    }
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|source| LabError::Io {
            what: format!("write {}", path.display()),
            source,
        })
    };
    let rows = bench::side_by_side(&all);
    if plan.bench {
        print!("\n{}", bench::table(&all, &rows));
    }
    if let Some(p) = &out.json {
        let text = match (plan.bench, all.first()) {
            (false, Some(one)) => report::to_json(&one.settings, &one.runs, &one.not_applicable),
            _ => bench::to_json(&all, &rows),
        };
        write(p, text)?;
        println!("JSON: {}", p.display());
    }
    if let Some(p) = &out.svg {
        write(p, svg::render(&pictures))?;
        println!("SVG:  {}", p.display());
    }
    let total: usize = all.iter().map(|i| i.runs.len()).sum();
    if skipped > 0 {
        println!("{total} runs, {failed} failed, {skipped} not applicable (not run)");
    } else {
        println!("{total} runs, {failed} failed");
    }
    // A bench's verdict is vipd's: keepalived's results are data (it may
    // well show two holders by design).
    Ok(if plan.bench {
        failed_vipd == 0
    } else {
        failed == 0
    })
}

/// Builds one lab for `cfg`, starts its daemons, runs the plan, and tears it
/// all down (when the `Lab` drops at the end).
/// The settings recorded with a variant's runs (`vip`: the lab's VIP).
fn settings_of(
    plan: &Plan,
    cfg: &lab::LabConfig,
    compared: bool,
    advert: Option<f64>,
    vip: String,
) -> report::Settings {
    let v = lab::Variant {
        implementation: cfg.implementation,
        coordination: cfg.coordination,
    };
    let quorum = cfg.implementation == lab::Implementation::Vipd
        && cfg.coordination == lab::Coordination::Quorum;
    report::Settings {
        implementation: cfg.implementation.name().to_string(),
        backend: plan.backend.name().to_string(),
        services: (plan.services > 0).then_some(plan.services),
        nodes: plan.nodes,
        lease_duration_s: plan.timing.lease,
        renew_deadline_s: plan.timing.renew,
        retry_period_s: plan.timing.retry,
        advert_int_s: advert,
        vip,
        coordination: compared.then(|| v.coordination_name().to_string()),
        quorum: quorum.then(|| report::QuorumSettings {
            voters: plan.nodes + usize::from(cfg.witness),
            witness: cfg.witness,
            promise_s: cfg.quorum.promise,
            heartbeat_s: cfg.quorum.heartbeat,
            port: cluster::QUORUM_PORT,
        }),
    }
}

fn run_impl(
    plan: &Plan,
    run_plan: &runner::RunPlan,
    cfg: lab::LabConfig,
    compared: bool,
    stop: &AtomicBool,
    live: &mut runner::Live,
) -> Result<(Vec<runner::RunOutcome>, report::Settings), LabError> {
    let imp = cfg.implementation;
    let quorum = imp == lab::Implementation::Vipd && cfg.coordination == lab::Coordination::Quorum;
    let advert = (imp == lab::Implementation::Keepalived)
        .then(|| keepalived::advert_int_for_lease(cfg.timing.lease));
    let timing = match advert {
        Some(a) => format!(
            "keepalived advert_int {a} s (master down after {:.2} s)",
            keepalived::master_down_interval(a, keepalived::PRIORITY)
        ),
        None if quorum => format!(
            "quorum {} voters{}, promise {} s, heartbeat {} s (lease flags ignored)",
            cfg.nodes + usize::from(cfg.witness),
            if cfg.witness { " (witness w)" } else { "" },
            cfg.quorum.promise,
            cfg.quorum.heartbeat
        ),
        None => format!(
            "lease {}/{}/{} s",
            cfg.timing.lease, cfg.timing.renew, cfg.timing.retry
        ),
    };
    let label = lab::Variant {
        implementation: imp,
        coordination: cfg.coordination,
    }
    .label(compared);
    let backend = match cfg.backend {
        lab_backend @ api::Backend::Etcd => lab_backend.name().to_string(),
        api::Backend::Kubernetes => format!(
            "kubernetes (in-repo API TEST server {}, not a kube-apiserver)",
            cfg.kube_testserver.display()
        ),
    };
    let services = if cfg.services > 0 {
        format!(", {} LoadBalancer Services", cfg.services)
    } else {
        String::new()
    };
    let image = match &cfg.image {
        Some(i) if imp == lab::Implementation::Vipd => {
            format!(", {} from image {}", i.nodes.join(","), i.image)
        }
        _ => String::new(),
    };
    live.event(&format!(
        "vipd lab: {label}{image}, backend {backend}{services}, {} nodes, {timing}, namespaces {}-*, logs in {}",
        cfg.nodes,
        cfg.prefix,
        cfg.run_dir.display()
    ));
    let settings = settings_of(plan, &cfg, compared, advert, String::new());
    let mut lab = lab::Lab::build(cfg)?;
    if stop.load(Ordering::Relaxed) {
        return Err(LabError::Interrupted);
    }
    lab.start_all()?;
    // A daemon that rejects its configuration (e.g. lease settings
    // breaking SPEC R1) exits at once with status 2: say so now rather
    // than time out in every run.
    std::thread::sleep(Duration::from_millis(500));
    if lab.has_witness() && !lab.witness_running() {
        let log = lab.run_dir().join(format!("{}.log", cluster::WITNESS));
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(LabError::Setup(format!(
            "vipd witness exited at start ({}):\n{}",
            log.display(),
            tail.join("\n")
        )));
    }
    for n in lab.nodes() {
        if !lab.running(&n) {
            let log = lab.run_dir().join(format!("{n}.log"));
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(LabError::Setup(format!(
                "{} on {n} exited at start ({}):\n{}",
                imp.name(),
                log.display(),
                tail.join("\n")
            )));
        }
    }
    let settings = report::Settings {
        vip: lab.vip().to_string(),
        ..settings
    };
    let outcomes = runner::run_plan(&mut lab, run_plan, stop, live)?;
    Ok((outcomes, settings))
    // `lab` drops here: daemons, monitors, etcd and namespaces go.
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn missing_tools_are_reported_with_their_debian_package() {
        let dir = std::env::temp_dir().join(format!("vipd-lab-tools-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for t in ["ip", "nft", "etcdctl"] {
            std::fs::write(dir.join(t), "").unwrap();
        }
        let missing = missing_tools(std::slice::from_ref(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            missing,
            vec![("etcd", "etcd-server"), ("tcpdump", "tcpdump")]
        );
        assert_eq!(missing_tools(&[]).len(), TOOLS.len());
    }

    use clap::Parser;

    /// `vipd lab` as the binary embeds it.
    #[derive(Debug, clap::Parser)]
    #[command(name = "vipd lab")]
    struct Cli {
        #[command(flatten)]
        args: LabArgs,
    }

    #[test]
    fn cli_parses_run_options_and_rejects_unknown_flags() {
        let c = Cli::try_parse_from([
            "vipd lab",
            "run",
            "--scenarios",
            "api-cut,loss",
            "--runs",
            "2",
            "--nodes",
            "4",
            "--lease-duration",
            "5",
        ])
        .unwrap();
        let LabCommand::Run(r) = c.args.command else {
            panic!("not run")
        };
        assert_eq!(
            (r.scenarios.as_deref(), r.runs, r.nodes, r.lease_duration),
            (Some("api-cut,loss"), 2, 4, 5.0)
        );
        assert_eq!((r.backend, r.services), (api::Backend::Etcd, 0));
        let c = Cli::try_parse_from([
            "vipd lab",
            "run",
            "--backend",
            "kubernetes",
            "--services",
            "50",
        ])
        .unwrap();
        let LabCommand::Run(r) = c.args.command else {
            panic!("not run")
        };
        assert_eq!((r.backend, r.services), (api::Backend::Kubernetes, 50));
        assert!(Cli::try_parse_from(["vipd lab", "run", "--backend", "consul"]).is_err());
        assert!(Cli::try_parse_from(["vipd lab", "run", "--services", "241"]).is_err());
        assert!(Cli::try_parse_from(["vipd lab", "run", "--nodes", "1"]).is_err());
        assert!(Cli::try_parse_from(["vipd lab", "demo", "--bogus"]).is_err());
    }

    #[test]
    fn cli_parses_coordination_and_witness_and_defaults_to_the_lease() {
        let c = Cli::try_parse_from(["vipd lab", "run"]).unwrap();
        let LabCommand::Run(r) = c.args.command else {
            panic!("not run")
        };
        assert_eq!(
            (
                r.coordination.as_str(),
                r.witness,
                r.quorum_promise,
                r.quorum_heartbeat
            ),
            ("lease", false, 0.6, 0.1)
        );
        let c = Cli::try_parse_from([
            "vipd lab",
            "bench",
            "--coordination",
            "lease,quorum",
            "--quorum-promise",
            "1.2",
        ])
        .unwrap();
        let LabCommand::Bench(r) = c.args.command else {
            panic!("not bench")
        };
        assert_eq!(
            (r.coordination.as_str(), r.quorum_promise),
            ("lease,quorum", 1.2)
        );
        let c = Cli::try_parse_from([
            "vipd lab",
            "run",
            "--coordination",
            "quorum",
            "--nodes",
            "2",
            "--witness",
        ])
        .unwrap();
        let LabCommand::Run(r) = c.args.command else {
            panic!("not run")
        };
        assert!(r.witness);
        assert!(plan_of(r, false).is_ok());
    }

    #[test]
    fn witness_needs_quorum_alone_and_two_nodes() {
        use lab::Coordination::{Lease, Quorum};
        assert_eq!(witness_misuse(false, &[Lease], 3), None);
        assert_eq!(witness_misuse(true, &[Quorum], 2), None);
        let lease = witness_misuse(true, &[Lease], 2).unwrap();
        assert!(lease.contains("--coordination quorum"), "{lease}");
        assert!(witness_misuse(true, &[Lease, Quorum], 2).is_some());
        let three = witness_misuse(true, &[Quorum], 3).unwrap();
        assert!(three.contains("--nodes 2"), "{three}");
    }

    #[test]
    fn run_refuses_several_coordinations_and_quorum_without_vipd() {
        let plan = |args: &[&str], bench: bool| {
            let mut v = vec!["vipd lab", if bench { "bench" } else { "run" }];
            v.extend_from_slice(args);
            let c = Cli::try_parse_from(v).unwrap();
            let (LabCommand::Run(r) | LabCommand::Bench(r)) = c.args.command else {
                panic!("not run or bench")
            };
            plan_of(r, bench).map(|(p, _)| p)
        };
        assert!(plan(&["--coordination", "lease,quorum"], false).is_err());
        let p = plan(&["--coordination", "lease,quorum"], true).unwrap_or_else(|_| panic!("bench"));
        assert_eq!(p.coordinations.len(), 2);
        // `all` grows by the peer scenarios when quorum mode runs.
        assert_eq!(p.run.scenarios.len(), 13);
        assert!(plan(&["--impl", "keepalived", "--coordination", "quorum"], false).is_err());
        assert!(plan(&["--coordination", "bogus"], false).is_err());
        assert!(plan(&["--witness"], false).is_err());
        assert!(plan(&["--coordination", "quorum", "--witness"], false).is_err());
        let w = plan(
            &["--coordination", "quorum", "--witness", "--nodes", "2"],
            false,
        )
        .unwrap_or_else(|_| panic!("witness plan"));
        assert_eq!(w.run.scenarios.len(), 14);
        let lease = plan(&[], false).unwrap_or_else(|_| panic!("default plan"));
        assert_eq!(lease.run.scenarios, scenario::Scenario::ALL.to_vec());
        assert_eq!(lease.coordinations, [lab::Coordination::Lease]);
    }
}
