//! The run loop: for every scenario and run, wait for a steady state,
//! inject, hold, heal, settle, measure. One lab serves all runs; each run
//! has its own window on the shared clock.
//!
//! The loop polls every [`TICK`]: it rewrites the live progress line and
//! checks the stop flag set by SIGINT/SIGTERM, returning
//! [`LabError::Interrupted`] so that the `Lab` guard tears everything down.

use crate::lab::Lab;
use crate::measure::{client_segments, end_state, measure, RunWindow};
use crate::report::{RunReport, ServicesSummary};
use crate::scenario::{Scenario, Targets};
use crate::LabError;
use netlab::probe::longest_gap;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Poll period of the run loop and the live view.
pub const TICK: Duration = Duration::from_millis(100);

/// Knobs of a series of runs.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// Runs of each scenario.
    pub runs: u32,
    /// Requested fault hold (scenarios may hold longer, see [`Scenario::hold`]).
    pub hold: Duration,
    /// Longest wait for a steady state before a fault and after a heal.
    pub settle_timeout: Duration,
}

/// Everything the SVG needs about one run, times on the lab clock.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// The run's instants.
    pub window: RunWindow,
    /// Nodes, in lane order.
    pub nodes: Vec<String>,
    /// Holding intervals `(node, from, to)`, clipped to the view.
    pub holding: Vec<(String, Duration, Duration)>,
    /// Client segments `(from, to, served_by)`.
    pub client: Vec<(Duration, Duration, Option<String>)>,
    /// Announcements `(t, node)` (node `?` for a MAC of no lab node).
    pub announcements: Vec<(Duration, String)>,
}

/// One finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The numbers (table and JSON).
    pub report: RunReport,
    /// The data for the SVG.
    pub timeline: Timeline,
}

/// The in-place progress line (only on a terminal; otherwise one line per
/// event, so CI logs stay short).
#[derive(Debug)]
pub struct Live {
    tty: bool,
}

impl Live {
    /// Writes to stderr; rewrites in place when stderr is a terminal.
    pub fn new() -> Self {
        Live {
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Rewrites the progress line.
    pub fn update(&mut self, line: &str) {
        if self.tty {
            let mut e = std::io::stderr();
            let _ = write!(e, "\r{line}\x1b[K");
            let _ = e.flush();
        }
    }

    /// Prints a line that stays (the progress line is redrawn after it).
    pub fn event(&mut self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!("{line}");
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

fn check(stop: &AtomicBool) -> Result<(), LabError> {
    if stop.load(Ordering::Relaxed) {
        Err(LabError::Interrupted)
    } else {
        Ok(())
    }
}

struct Status<'a> {
    tag: String,
    phase: &'a str,
    since: Duration,
}

fn status_line(lab: &Lab, st: &Status<'_>) -> String {
    let now = lab.clock.now();
    let samples = lab.samples();
    let recent = samples
        .iter()
        .rev()
        .find(|s| s.t + Duration::from_millis(300) >= now);
    let client = match recent.map(|s| s.served_by.as_deref()) {
        Some(Some(n)) => format!("OK ({n})"),
        Some(None) => "FAIL".into(),
        None => "-".into(),
    };
    let holders = lab.holders();
    let holder = if holders.is_empty() {
        "none".into()
    } else {
        holders.join("+")
    };
    let gap = longest_gap(&samples, st.since..now);
    format!(
        "{} t={:.1}s {} | holder: {holder} | client: {client} | gap: {:.2}s",
        st.tag,
        now.saturating_sub(st.since).as_secs_f64(),
        st.phase,
        gap.as_secs_f64()
    )
}

/// Polls until `done` or `timeout`, keeping the live line fresh; `Ok(None)`
/// on timeout.
fn wait_until<T>(
    lab: &Lab,
    live: &mut Live,
    stop: &AtomicBool,
    st: &Status<'_>,
    timeout: Duration,
    mut done: impl FnMut(&Lab) -> Option<T>,
) -> Result<Option<T>, LabError> {
    let end = lab.clock.now() + timeout;
    loop {
        check(stop)?;
        if let Some(v) = done(lab) {
            return Ok(Some(v));
        }
        live.update(&status_line(lab, st));
        if lab.clock.now() >= end {
            return Ok(None);
        }
        std::thread::sleep(TICK);
    }
}

/// A single holder that served every probe of the last second, if any;
/// in a Services run only while every Service address is steady too
/// ([`crate::services::ServicesView::steady`]).
fn steady_holder(lab: &Lab) -> Option<String> {
    let now = lab.clock.now();
    match end_state(&lab.samples(), &lab.log(), now) {
        (Some(h), true) if lab.services().is_none_or(|s| s.steady(now)) => Some(h),
        _ => None,
    }
}

/// Address → holders now, of every Service address (held or not).
type Holders = BTreeMap<IpAddr, Vec<String>>;

/// Runs the plan on `lab` (the daemons already started on every node). A
/// run that ends without one holder serving the client is followed by
/// [`Lab::reset`].
pub fn run_plan(
    lab: &mut Lab,
    plan: &RunPlan,
    stop: &AtomicBool,
    live: &mut Live,
) -> Result<Vec<RunOutcome>, LabError> {
    let mut out = Vec::new();
    for sc in &plan.scenarios {
        for k in 1..=plan.runs {
            let o = run_one(lab, *sc, k, plan, stop, live)?;
            let r = &o.report;
            let svc = r
                .services
                .as_ref()
                .map(|s| {
                    let worst = r.addresses.iter().map(|a| a.gap_during_fault_ms).max();
                    format!(
                        "; services: {}/{} held once at end, {} moved, two-holder {} ms, worst sampled gap {:.2}s",
                        s.held_once_at_end,
                        s.addresses,
                        s.moved,
                        s.two_holder_ms,
                        worst.unwrap_or(0) as f64 / 1000.0
                    )
                })
                .unwrap_or_default();
            live.event(&format!(
                "[{} {k}/{}] {}: gap {:.2}s during fault, {:.2}s after heal, two-holder {} ms{svc} -> {}",
                sc.name(),
                plan.runs,
                r.fault,
                r.gap_during_fault_ms as f64 / 1000.0,
                r.gap_after_heal_ms as f64 / 1000.0,
                r.two_holder_ms,
                if r.passed() { "OK" } else { "FAIL" }
            ));
            let clean = o.report.end_clean();
            out.push(o);
            if !clean {
                live.event(&format!(
                    "[{} {k}/{}] no single holder serving the client: restarting every {} from a clean slate",
                    sc.name(),
                    plan.runs,
                    lab.implementation().name()
                ));
                lab.reset()?;
            }
        }
    }
    Ok(out)
}

fn run_one(
    lab: &mut Lab,
    sc: Scenario,
    k: u32,
    plan: &RunPlan,
    stop: &AtomicBool,
    live: &mut Live,
) -> Result<RunOutcome, LabError> {
    let tag = format!("[{} {k}/{}]", sc.name(), plan.runs);
    let st = Status {
        tag: tag.clone(),
        phase: "waiting for one holder serving the client",
        since: lab.clock.now(),
    };
    let holder = wait_until(lab, live, stop, &st, plan.settle_timeout, steady_holder)?;
    let start = lab.clock.now();
    let nodes = lab.nodes();
    let Some(holder) = holder else {
        // No steady state: record a failed run without injecting anything.
        let w = RunWindow {
            start,
            fault: start,
            heal: start,
            end: start,
            count_from: start,
        };
        let before = lab.services().map(|s| s.holders_all());
        return Ok(finish(
            lab,
            sc,
            k,
            "no steady state before the fault".into(),
            None,
            before.map(|b| (b, String::new())),
            w,
        ));
    };
    // Services scenarios aim at the node announcing the most addresses.
    let svc_before: Option<Holders> = lab.services().map(|s| s.holders_all());
    let target = match (&svc_before, sc.is_services()) {
        (Some(b), true) => crate::services::busiest(b).unwrap_or_else(|| holder.clone()),
        _ => holder.clone(),
    };
    let follower = nodes
        .iter()
        .find(|n| **n != target)
        .cloned()
        .unwrap_or_else(|| target.clone());
    let targets = Targets {
        holder: target.clone(),
        follower,
        nodes,
    };

    let fault = lab.clock.now();
    let desc = sc.inject(lab, &targets)?;
    let phase = format!("fault: {desc}");
    let st = Status {
        tag: tag.clone(),
        phase: &phase,
        since: fault,
    };
    let hold = sc.hold(plan.hold, Duration::from_secs_f64(lab.timing().lease));
    wait_until(
        lab,
        live,
        stop,
        &st,
        hold.saturating_sub(lab.clock.now() - fault),
        |_| None::<()>,
    )?;

    let heal = lab.clock.now();
    sc.heal(lab, &targets)?;
    let st = Status {
        tag,
        phase: "healed, settling",
        since: fault,
    };
    let min_settle = Duration::from_secs(2);
    // Settled: past the minimum, one holder serving, and the client served
    // continuously for the recovery hold since the heal — otherwise the run
    // could end before "recover after heal" is measurable.
    wait_until(lab, live, stop, &st, plan.settle_timeout, |l| {
        let recovered = netlab::probe::served_continuously_after(
            &l.samples(),
            heal,
            crate::measure::SERVED_HOLD,
            None,
        )
        .is_some();
        (l.clock.now() >= heal + min_settle && recovered)
            .then(|| steady_holder(l))
            .flatten()
    })?;
    let end = lab.clock.now();
    let from = if sc.count_from_heal() { heal } else { start };
    let w = RunWindow {
        start,
        fault,
        heal,
        end,
        count_from: from,
    };
    Ok(finish(
        lab,
        sc,
        k,
        desc,
        Some(holder),
        svc_before.map(|b| (b, target)),
        w,
    ))
}

/// Measures one run. `svc` (Services runs): every address's holders
/// before the fault and the node the fault aimed at.
fn finish(
    lab: &Lab,
    sc: Scenario,
    k: u32,
    desc: String,
    holder: Option<String>,
    svc: Option<(Holders, String)>,
    w: RunWindow,
) -> RunOutcome {
    let samples = lab.samples();
    let log = lab.log();
    let claims = lab.claims();
    let macs = lab.node_of_mac();
    let m = measure(&samples, &log, &claims, &macs, holder.as_deref(), &w);
    let lead_in = Duration::from_secs(1);
    let view_from = w.start.saturating_sub(lead_in);
    let view = |t: Duration| t.clamp(view_from, w.end);
    let holding = log
        .intervals()
        .into_iter()
        .filter(|i| i.from <= w.end && i.to.is_none_or(|t| t >= view_from))
        .map(|i| (i.host, view(i.from), view(i.to.unwrap_or(w.end))))
        .collect();
    let in_view: Vec<_> = samples
        .into_iter()
        .filter(|s| s.t >= view_from && s.t <= w.end)
        .collect();
    let announcements = claims
        .iter()
        .filter(|c| c.kind.is_announcement() && c.t >= view_from && c.t <= w.end)
        .map(|c| (c.t, macs.get(&c.mac).cloned().unwrap_or_else(|| "?".into())))
        .collect();
    let timeline = Timeline {
        window: w,
        nodes: lab.nodes(),
        holding,
        client: client_segments(&in_view, w.end),
        announcements,
    };
    let mut report = RunReport::new(sc.name(), k, desc.clone(), holder, &w, &m);
    if let (Some(view), Some((before, target))) = (lab.services(), svc) {
        let logs = view.logs();
        let single = |h: Option<&Vec<String>>| match h.map(Vec::as_slice) {
            Some([one]) => Some(one.clone()),
            _ => None,
        };
        let mut summary = ServicesSummary {
            addresses: view.addresses().len(),
            on_target: 0,
            held_once_at_end: 0,
            moved: 0,
            two_holder_ms: 0,
            two_holder_addresses: 0,
        };
        for a in view.addresses() {
            let end: Vec<String> = logs.get(a).map(|l| l.holders_at(w.end)).unwrap_or_default();
            let was = before.get(a).cloned().unwrap_or_default();
            let two = logs
                .get(a)
                .map(|l| l.two_holder_time(w.count_from..w.end))
                .unwrap_or_default();
            // A fault on everyone's API hits every address.
            let hit = sc.hits_every_node() && !was.is_empty();
            summary.on_target += usize::from(hit || was == [target.clone()]);
            summary.held_once_at_end += usize::from(end.len() == 1);
            summary.moved += usize::from(!was.is_empty() && end != was);
            summary.two_holder_ms += u64::try_from(two.as_millis()).unwrap_or(u64::MAX);
            summary.two_holder_addresses += usize::from(!two.is_zero());
        }
        report.addresses = view
            .sampled()
            .into_iter()
            .map(|a| {
                let log = logs.get(&a).cloned().unwrap_or_default();
                let before_a = single(before.get(&a));
                let m = measure(
                    &view.samples(a),
                    &log,
                    &lab.claims_of(a),
                    &macs,
                    before_a.as_deref(),
                    &w,
                );
                let mut r = RunReport::new(sc.name(), k, desc.clone(), before_a, &w, &m);
                r.address = Some(a.to_string());
                r
            })
            .collect();
        report.services = Some(summary);
    }
    RunOutcome { report, timeline }
}
