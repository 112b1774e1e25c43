//! Routing-table mode (SPEC §5b, issue 14 item 5; kube-vip's
//! `vip_routingtable`): the VIP is bound locally (on `vip_interface`,
//! usually `lo`, with no ARP/NDP announcements) and a host route for it
//! is written into a kernel routing table (`vip_routingtableid`, 198) with
//! a route protocol of its own (`vip_routingprotocol`, 248), where a host
//! routing daemon (BIRD's `protocol kernel { kernel table 198; learn; }`,
//! FRR) picks it up and exports it to the routers.
//!
//! ```text
//!   Lead/Fence ──announce/withdraw──┐
//!   (Services: the same gate)       ├─▶ sink task: allowed ∩ bound ──RouteTable──▶ kernel table 198, proto 248
//!   VipManager(s) ──bound (attach)──┘        │ installed (kernel-confirmed)
//!                                            └──▶ TableGate::withdraw waits on it
//! ```
//!
//! # What kube-vip does for the control plane in this mode
//!
//! kube-vip's routing-table worker (`pkg/manager/worker/table.go`,
//! `StartControlPlane`) runs the control-plane VIP with leader election
//! (`vip_leaderelection=true`: `StartCluster`, only the lease holder) or
//! without it (`StartVipService`: every node; kube-vip's test
//! `pkg/manager/worker/table_controlplane_test.go` checks both). Either
//! way `vipService` (`pkg/cluster/service.go`) skips the plain address add
//! and instead watches the local API server (`backend.Watch` on the node's
//! InternalIPs, else 127.0.0.1 / ::1, port `port`): while it answers,
//! the VIP is added to `vip_interface` and then its route to the table;
//! when it stops answering, and on SIGTERM, the route is deleted and then
//! the address (`pkg/cluster/service_rtwithdraw_test.go`). vipd does the
//! same with its own parts: the health gate (R8; the default check in
//! control-plane mode is the local API server's `/livez`) plays
//! `backend.Watch`, and without leader election `run_ecmp` binds while
//! healthy, with it the elector's holder does (R1). The route is written
//! only once the kernel has the address and is deleted (and the deletion
//! confirmed) before the address goes, like BGP's withdraw-before-unbind.
//! kube-vip's Services in this mode (`StartLoadBalancerService`) work the
//! same way per Service; vipd's Services can use this same sink through
//! [`shared_gate`] (see [`TableGate`]).
//!
//! `vip_cleanroutingtable` (kube-vip: `cleanRoutes`, 10 s after start,
//! deleting routes of the protocol in the table that no VIP or Service
//! wants): vipd cleans once at start, before it writes any route, so no
//! stale route is ever exported next to a fresh one. Without it, vipd
//! still removes its *own* VIP's leftover route (R3: a route for an
//! address it manages but does not hold), never anyone else's.
//!
//! Every failure is retried with back-off (R2); the table is reconciled
//! again on every route event in it and every `reconcile_period` (R3: a
//! route deleted by hand while we hold the VIP comes back at once).
//!
//! A crash (SIGKILL, OOM, abort) leaves no stale route: the sink tells the
//! address guard ([`vipd_vip::guard::RouteGuard`]) about every route
//! before it writes it and after it deleted it, and the guard deletes
//! what is still listed, before the addresses, when the daemon is gone.
//!
//! After every pass the sink publishes what the table holds, what it
//! wants and its running counts; [`report_to`] turns that into the
//! `vipd_routing_table_*` metrics and the `/status` section
//! `routing_table`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};
use vipd::config::RoutingTableSettings;
use vipd_backoff::Backoff;
use vipd_observe::metrics::TableOp;
use vipd_observe::status::RoutingTableEntry;
use vipd_vip::guard::RouteGuard;
use vipd_vip::{Netlink, RouteMonitor, RouteTable, TableSpec, Vip};

use crate::context::Obs;

/// How long a withdrawal may take before the address is removed anyway:
/// one netlink delete takes microseconds; a wedged socket must not hold
/// the fence up.
const WITHDRAW_WAIT: Duration = Duration::from_secs(1);

/// One VIP manager's kernel-confirmed addresses and the device their
/// routes point at.
struct Source {
    bound: watch::Receiver<BTreeSet<Vip>>,
    interface: String,
}

/// What a holder (control-plane VIP or Services) needs to write and
/// delete routes: cheap to clone.
///
/// The contract, the same as `bgp::BgpGate`'s:
/// 1. [`TableGate::attach`] the VIP manager whose addresses you route
///    (its bound set and interface) once, and [`TableGate::manage`] each
///    address you may ever route, so a leftover route of it is removed
///    while you do not hold it;
/// 2. bind the address, then [`TableGate::announce`] it: its route is
///    written once an attached manager reports it bound;
/// 3. to let go, `withdraw(addr).await` (or `withdraw_all`) *first*: it
///    returns once the kernel no longer has the route (or after
///    [`WITHDRAW_WAIT`]), and only then remove the address.
///
/// Routes are written for `allowed ∩ bound` only, so the routing daemon
/// never exports an address this node cannot answer for.
#[derive(Clone)]
pub(crate) struct TableGate {
    allowed: Arc<watch::Sender<BTreeSet<IpAddr>>>,
    managed: Arc<watch::Sender<BTreeSet<IpAddr>>>,
    sources: mpsc::UnboundedSender<Source>,
    installed: watch::Receiver<BTreeSet<IpAddr>>,
}

impl TableGate {
    /// Routes `bound`'s addresses (once announced) via `interface`.
    pub(crate) fn attach(&self, bound: watch::Receiver<BTreeSet<Vip>>, interface: String) {
        // Fails only when the sink is gone (shutdown): nothing to feed.
        let _ = self.sources.send(Source { bound, interface });
    }

    /// `addr` is one of ours: a route for it in the table that we do not
    /// want is removed (a leftover of a crash, R3).
    pub(crate) fn manage(&self, addr: IpAddr) {
        self.managed.send_if_modified(|m| m.insert(addr));
    }

    /// The route may be written once the kernel has the address.
    pub(crate) fn announce(&self, addr: IpAddr) {
        self.manage(addr);
        self.allowed.send_if_modified(|a| a.insert(addr));
    }

    /// Deletes the route and waits (at most [`WITHDRAW_WAIT`]) until the
    /// kernel confirms it gone.
    pub(crate) async fn withdraw(&self, addr: IpAddr) {
        self.withdraw_all(&BTreeSet::from([addr])).await;
    }

    /// [`TableGate::withdraw`] for several addresses: one wait.
    pub(crate) async fn withdraw_all(&self, addrs: &BTreeSet<IpAddr>) {
        self.allowed.send_if_modified(|a| {
            let before = a.len();
            a.retain(|x| !addrs.contains(x));
            a.len() != before
        });
        let mut installed = self.installed.clone();
        let gone = async {
            // A closed channel (sink gone) means nothing is installed.
            let _ = installed
                .wait_for(|i| addrs.iter().all(|a| !i.contains(a)))
                .await;
        };
        if tokio::time::timeout(WITHDRAW_WAIT, gone).await.is_err() {
            warn!(addresses = ?addrs, "routes not confirmed deleted within {WITHDRAW_WAIT:?}; removing the addresses anyway (the sink keeps deleting)");
        }
    }
}

/// What the sink publishes after every pass over the table (and after
/// the start-up cleaning): the state behind `/status` and the cumulative
/// counts behind the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Report {
    /// Managed routes the kernel has (as last dumped).
    installed: BTreeSet<IpAddr>,
    /// Routes wanted: allowed ∩ bound.
    wanted: BTreeSet<IpAddr>,
    /// The failures of the last pass, `None` after a clean pass.
    last_error: Option<String>,
    /// Routes written.
    adds: u64,
    /// Routes of ours deleted by reconciling.
    removes: u64,
    /// Routes deleted by the start-up cleaning.
    cleaned: u64,
    /// Failed operations.
    errors: u64,
}

/// The running sink: one task owning the netlink socket.
struct Table {
    gate: TableGate,
    /// `ecmp` or `leader`, for `/status`.
    mode: &'static str,
    spec: TableSpec,
    report: watch::Receiver<Report>,
    _task: AbortOnDropHandle<()>,
    /// The metrics and `/status` feeder, once [`report_to`] ran.
    reporter: Option<AbortOnDropHandle<()>>,
}

/// The process's one sink, started by [`start_shared`] before any mode
/// runs (like the BGP speaker): one owner per table and protocol, so the
/// control plane and Services never delete each other's routes as
/// "stale".
static SINK: Mutex<Option<Table>> = Mutex::new(None);
/// Its gate, for every mode that writes routes.
static GATE: OnceLock<TableGate> = OnceLock::new();

/// Starts the process's sink. `clean` (kube-vip's `vip_cleanroutingtable`)
/// runs inside it before any route is written. Called once, from `run`,
/// when routing-table mode is configured.
/// `guard`: the process's address guard (started by `run` before this),
/// which also deletes our routes if vipd dies without doing so.
pub(crate) fn start_shared(
    s: &RoutingTableSettings,
    period: Duration,
    guard: Option<vipd_vip::guard::GuardPipe>,
) {
    let spec = TableSpec {
        table: s.table_id,
        protocol: s.protocol,
        route_type: s.route_type,
    };
    let (allowed, allowed_rx) = watch::channel(BTreeSet::new());
    let (managed, managed_rx) = watch::channel(BTreeSet::new());
    let (installed_tx, installed) = watch::channel(BTreeSet::new());
    let (sources, sources_rx) = mpsc::unbounded_channel();
    let (report_tx, report) = watch::channel(Report::default());
    info!(
        table = s.table_id,
        protocol = s.protocol,
        route_type = s.route_type,
        clean = s.clean,
        "routing-table mode: host routes go to this table"
    );
    let task = tokio::spawn(sink(
        spec,
        s.clean,
        period,
        Inputs {
            allowed: allowed_rx,
            managed: managed_rx,
            sources: sources_rx,
            guard,
        },
        installed_tx,
        report_tx,
    ));
    let gate = TableGate {
        allowed: Arc::new(allowed),
        managed: Arc::new(managed),
        sources,
        installed,
    };
    let _ = GATE.set(gate.clone());
    *SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some(Table {
        gate,
        mode: if s.leader_election { "leader" } else { "ecmp" },
        spec,
        report,
        _task: AbortOnDropHandle::new(task),
        reporter: None,
    });
}

/// Feeds the sink's reports into `obs`: the `vipd_routing_table_*`
/// metrics and the `routing_table` section of `/status`, on every pass
/// that changed something. A no-op without routing-table mode; called
/// once by `run` when the observers exist (after [`start_shared`]).
pub(crate) fn report_to(obs: &Obs) {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(t) = sink.as_mut() else { return };
    let (mut rx, spec, mode, obs) = (t.report.clone(), t.spec, t.mode, obs.clone());
    t.reporter = Some(AbortOnDropHandle::new(tokio::spawn(async move {
        let mut last = Report::default();
        loop {
            let now = rx.borrow_and_update().clone();
            publish(&obs, spec, mode, &last, &now);
            last = now;
            // Closed: the sink stopped (shutdown); its last report is out.
            if rx.changed().await.is_err() {
                return;
            }
        }
    })));
}

/// One report into metrics (counters by the increase since `last`; the
/// sink's counts only grow) and `/status`.
fn publish(obs: &Obs, spec: TableSpec, mode: &'static str, last: &Report, now: &Report) {
    let m = &obs.metrics.routing_table;
    m.set_routes(spec.table, now.installed.len(), now.wanted.len());
    m.inc_writes(TableOp::Add, now.adds.saturating_sub(last.adds));
    m.inc_writes(TableOp::Remove, now.removes.saturating_sub(last.removes));
    m.inc_writes(TableOp::Clean, now.cleaned.saturating_sub(last.cleaned));
    m.inc_errors(now.errors.saturating_sub(last.errors));
    obs.status.set_routing_table(entry(spec, mode, now));
}

/// The `/status` section for a report.
fn entry(spec: TableSpec, mode: &'static str, r: &Report) -> RoutingTableEntry {
    let text = |set: &BTreeSet<IpAddr>| -> Vec<String> {
        set.iter()
            .map(|a| format!("{a}/{}", if a.is_ipv4() { 32 } else { 128 }))
            .collect()
    };
    RoutingTableEntry {
        mode: mode.into(),
        table: spec.table,
        protocol: spec.protocol,
        routes: text(&r.installed),
        wanted: text(&r.wanted),
        last_error: r.last_error.clone(),
    }
}

/// The shared sink's gate, once [`start_shared`] ran.
pub(crate) fn shared_gate() -> Option<TableGate> {
    GATE.get().cloned()
}

/// Deletes every route still allowed, waits for the kernel to confirm,
/// and stops the sink; called once every mode has let go of its addresses.
pub(crate) async fn shutdown_shared() {
    let taken = SINK.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(t) = taken {
        let all = t.gate.allowed.borrow().clone();
        t.gate.withdraw_all(&all).await;
        info!("routing table: our routes deleted");
    }
}

struct Inputs {
    allowed: watch::Receiver<BTreeSet<IpAddr>>,
    managed: watch::Receiver<BTreeSet<IpAddr>>,
    sources: mpsc::UnboundedReceiver<Source>,
    guard: Option<vipd_vip::guard::GuardPipe>,
}

/// Opens what the sink needs, retrying until it can (R2).
async fn open(spec: TableSpec, backoff: &mut Backoff) -> (RouteTable, Netlink) {
    loop {
        match RouteTable::new(spec).map(|t| (t, Netlink::new())) {
            Ok((t, Ok(nl))) => return (t, nl),
            Ok((_, Err(e))) => warn!(error = %e, "routing table: cannot open netlink; retrying"),
            Err(e) => warn!(error = %e, "routing table: cannot open netlink; retrying"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn sink(
    spec: TableSpec,
    clean: bool,
    period: Duration,
    mut inputs: Inputs,
    installed_tx: watch::Sender<BTreeSet<IpAddr>>,
    report_tx: watch::Sender<Report>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let (table, nl) = open(spec, &mut backoff).await;
    // `start_shared` started the guard: every route from here on is
    // listed with it before it is written. No guard (it could not start):
    // a crash leaves the routes until the restart's reconcile (R3).
    let mut guard = inputs
        .guard
        .take()
        .map(|p| p.for_routes(spec.table, spec.protocol));
    let mut report = Report::default();
    // Before anything is written: nothing of ours is wanted yet, so every
    // route of our protocol in the table is stale.
    if clean {
        loop {
            match table.clean().await {
                Ok(removed) => {
                    report.cleaned += u64::try_from(removed.len()).unwrap_or(u64::MAX);
                    report_tx.send_replace(report.clone());
                    let routes: Vec<String> = removed.iter().map(ToString::to_string).collect();
                    info!(table = spec.table, protocol = spec.protocol, removed = ?routes, "routing table cleaned (vip_cleanroutingtable)");
                    break;
                }
                Err(e) => {
                    report.errors += 1;
                    report.last_error = Some(e.to_string());
                    report_tx.send_replace(report.clone());
                    warn!(error = %e, "routing table: cleaning failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }
    backoff.reset();
    // Route events of our table wake the loop at once (a route deleted by
    // hand comes back without waiting for the period); our own writes
    // wake it too, for one cheap dump that finds nothing to do.
    let mut monitor = RouteMonitor::new(spec.table);
    let mut sources: Vec<Source> = Vec::new();
    let mut last_error = String::new();
    loop {
        let allowed = inputs.allowed.borrow_and_update().clone();
        let managed = inputs.managed.borrow_and_update().clone();
        let mut want: BTreeMap<IpAddr, String> = BTreeMap::new();
        for s in &mut sources {
            for v in s.bound.borrow_and_update().iter() {
                if allowed.contains(&v.addr) {
                    want.entry(v.addr).or_insert_with(|| s.interface.clone());
                }
            }
        }
        let (installed, errors) =
            reconcile(&table, &nl, &want, &managed, guard.as_mut(), &mut report).await;
        report.errors += u64::try_from(errors.len()).unwrap_or(u64::MAX);
        report.wanted = want.keys().copied().collect();
        report.last_error = (!errors.is_empty()).then(|| errors.join("; "));
        if let Some(installed) = installed {
            // The dump is the truth: a route we could not delete stays
            // listed with the guard, one deleted by someone else goes.
            if let Some(g) = guard.as_mut() {
                g.sync(&installed);
            }
            report.installed.clone_from(&installed);
            installed_tx.send_if_modified(|i| {
                let changed = *i != installed;
                *i = installed;
                changed
            });
        }
        report_tx.send_if_modified(|r| {
            let changed = *r != report;
            if changed {
                r.clone_from(&report);
            }
            changed
        });
        let wait = if errors.is_empty() {
            last_error.clear();
            backoff.reset();
            period
        } else {
            let msg = errors.join("; ");
            // One line per change, not per retry.
            if msg != last_error {
                warn!(error = %msg, "routing table: retrying");
                last_error = msg;
            }
            backoff.next_delay().min(period)
        };
        tokio::select! {
            r = inputs.allowed.changed() => if r.is_err() { return },
            r = inputs.managed.changed() => if r.is_err() { return },
            Some(s) = inputs.sources.recv() => sources.push(s),
            (ok, i) = any_changed(&mut sources) => if !ok {
                // That manager is gone: its addresses are no longer bound.
                sources.remove(i);
            },
            () = monitor.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// The first attached manager whose bound set changes: `(still there, index)`.
async fn any_changed(sources: &mut [Source]) -> (bool, usize) {
    if sources.is_empty() {
        return futures::future::pending().await;
    }
    let (r, i, _) =
        futures::future::select_all(sources.iter_mut().map(|s| Box::pin(s.bound.changed()))).await;
    (r.is_ok(), i)
}

/// Makes the table hold exactly the wanted routes among the managed
/// addresses; returns the managed routes the kernel has afterwards
/// (`None` when the table could not be read) and what failed. Routes of
/// addresses we do not manage are never touched. Each route is listed
/// with the `guard` before it is written and un-listed after it was
/// deleted; successful writes are counted in `counts`.
async fn reconcile(
    table: &RouteTable,
    nl: &Netlink,
    want: &BTreeMap<IpAddr, String>,
    managed: &BTreeSet<IpAddr>,
    mut guard: Option<&mut RouteGuard>,
    counts: &mut Report,
) -> (Option<BTreeSet<IpAddr>>, Vec<String>) {
    let mut errors = Vec::new();
    let kernel = match table.list().await {
        Ok(k) => k,
        Err(e) => {
            // Unknown state: keep the last confirmed set, so a withdraw
            // waits for a dump that worked.
            errors.push(e.to_string());
            return (None, errors);
        }
    };
    let mut ifindex: BTreeMap<&str, Option<u32>> = BTreeMap::new();
    for ifname in want.values() {
        if !ifindex.contains_key(ifname.as_str()) {
            let i = match nl.link_by_name(ifname).await {
                Ok(l) => Some(l.ifindex),
                Err(e) => {
                    errors.push(e.to_string());
                    None
                }
            };
            ifindex.insert(ifname, i);
        }
    }
    let spec = table.spec();
    let dev_of = |addr: &IpAddr| {
        want.get(addr)
            .and_then(|n| ifindex.get(n.as_str()).copied().flatten())
    };
    let mut installed = BTreeSet::new();
    for r in kernel
        .iter()
        .filter(|r| r.is_host() && managed.contains(&r.dst))
    {
        let right = dev_of(&r.dst).is_some_and(|i| !spec.has_device() || r.ifindex == Some(i))
            && r.route_type == spec.route_type;
        if right {
            installed.insert(r.dst);
        } else if let Err(e) = table.remove(r.dst).await {
            errors.push(e.to_string());
            installed.insert(r.dst);
        } else {
            counts.removes += 1;
            if let Some(g) = guard.as_deref_mut() {
                g.removed(r.dst);
            }
            if !want.contains_key(&r.dst) {
                info!(route = %r, "routing table: route deleted");
            }
        }
    }
    let missing: Vec<IpAddr> = want
        .keys()
        .filter(|a| !installed.contains(*a))
        .copied()
        .collect();
    for addr in &missing {
        let Some(i) = dev_of(addr) else { continue };
        // Listed before it exists: the guard knows a superset.
        if let Some(g) = guard.as_deref_mut() {
            g.adding(*addr);
        }
        match table.add(*addr, i).await {
            Ok(()) => {
                counts.adds += 1;
                info!(vip = %addr, table = spec.table, protocol = spec.protocol, "routing table: route written");
                installed.insert(*addr);
            }
            // Occupied (another protocol's route) included: retried, and
            // reported once per change.
            Err(e) => errors.push(e.to_string()),
        }
    }
    (Some(installed), errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vipd_observe::metrics::Metrics;
    use vipd_observe::status::{Liveness, StatusHandle};

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[tokio::test(start_paused = true)]
    async fn reports_become_counters_by_increase_and_a_status_section() {
        let obs = Obs {
            metrics: Arc::new(Metrics::new("0")),
            status: StatusHandle::new("n1", "0", "cp", "none"),
            liveness: Liveness::new(),
        };
        let spec = TableSpec {
            table: 198,
            protocol: 248,
            route_type: 1,
        };
        let first = Report {
            installed: BTreeSet::from([ip("203.0.113.10")]),
            wanted: BTreeSet::from([ip("203.0.113.10"), ip("2001:db8::10")]),
            last_error: Some("occupied".into()),
            adds: 1,
            cleaned: 2,
            errors: 1,
            ..Report::default()
        };
        publish(&obs, spec, "ecmp", &Report::default(), &first);
        let second = Report {
            adds: 3,
            removes: 1,
            last_error: None,
            ..first.clone()
        };
        publish(&obs, spec, "ecmp", &first, &second);
        let text = obs.metrics.encode();
        for needle in [
            r#"vipd_routing_table_routes{table="198"} 1"#,
            r#"vipd_routing_table_routes_wanted{table="198"} 2"#,
            r#"vipd_routing_table_writes_total{op="add"} 3"#,
            r#"vipd_routing_table_writes_total{op="remove"} 1"#,
            r#"vipd_routing_table_writes_total{op="clean"} 2"#,
            "vipd_routing_table_errors_total 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        let t = obs
            .status
            .snapshot(tokio::time::Instant::now())
            .routing_table
            .unwrap_or_else(|| panic!("no routing_table section"));
        assert_eq!(t.routes, vec!["203.0.113.10/32".to_string()]);
        assert_eq!(
            t.wanted,
            vec![
                "203.0.113.10/32".to_string(),
                "2001:db8::10/128".to_string()
            ]
        );
        assert_eq!((t.table, t.protocol, t.last_error), (198, 248, None));
    }
}
