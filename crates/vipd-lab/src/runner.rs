//! The run loop: for every scenario and run, wait for a steady state,
//! inject, hold, heal, settle, measure. One lab serves all runs; each run
//! has its own window on the shared clock.
//!
//! The loop polls every [`TICK`]: it rewrites the live progress line and
//! checks the stop flag set by SIGINT/SIGTERM, returning
//! [`LabError::Interrupted`] so that the `Lab` guard tears everything down.

use crate::lab::Lab;
use crate::measure::{client_segments, end_state, measure, RunWindow};
use crate::report::RunReport;
use crate::scenario::{Scenario, Targets};
use crate::LabError;
use netlab::probe::longest_gap;
use std::io::{IsTerminal, Write};
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

/// A single holder that served every probe of the last second, if any.
fn steady_holder(lab: &Lab) -> Option<String> {
    match end_state(&lab.samples(), &lab.log(), lab.clock.now()) {
        (Some(h), true) => Some(h),
        _ => None,
    }
}

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
            live.event(&format!(
                "[{} {k}/{}] {}: gap {:.2}s during fault, {:.2}s after heal, two-holder {} ms -> {}",
                sc.name(),
                plan.runs,
                r.fault,
                r.gap_during_fault_ms as f64 / 1000.0,
                r.gap_after_heal_ms as f64 / 1000.0,
                r.two_holder_ms,
                if r.passed() { "OK" } else { "FAIL" }
            ));
            let clean = o.report.end_ok;
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
        return Ok(finish(
            lab,
            sc,
            k,
            "no steady state before the fault".into(),
            None,
            w,
        ));
    };
    let follower = nodes
        .iter()
        .find(|n| **n != holder)
        .cloned()
        .unwrap_or_else(|| holder.clone());
    let targets = Targets {
        holder: holder.clone(),
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
    Ok(finish(lab, sc, k, desc, Some(holder), w))
}

fn finish(
    lab: &Lab,
    sc: Scenario,
    k: u32,
    desc: String,
    holder: Option<String>,
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
    let report = RunReport::new(sc.name(), k, desc, holder, &w, &m);
    RunOutcome { report, timeline }
}
