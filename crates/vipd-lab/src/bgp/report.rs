//! The BGP lab's report: one row per run, a min/max summary per scenario,
//! and JSON (schema `vipd-lab-bgp/1`).

use serde::Serialize;

/// The numbers of one BGP run (times in milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgpRunReport {
    /// Scenario name.
    pub scenario: String,
    /// Run number (1-based).
    pub run: u32,
    /// What was hit: `n3 (BFD 300x3)`, `n1 (no BFD)`, `router`.
    pub target: String,
    /// Fault → the router's route changed: the target's path gone from
    /// the router's kernel table (peer-restart: the first change of the
    /// route). `None`: it did not change within the bound.
    pub route_change_ms: Option<u64>,
    /// Longest time the client got no answer, fault to end of run.
    pub client_gap_ms: u64,
    /// Failed probes, fault to end of run.
    pub failed_probes: usize,
    /// Probes, fault to end of run.
    pub probes: usize,
    /// Heal → every node's path back in the router's kernel table
    /// (peer-restart: from the restart). `None`: not within the bound.
    pub recover_ms: Option<u64>,
    /// Paths the router still had (BGP table and kernel, each counted) to
    /// a node that no longer announced, checked after detection (before
    /// heal), and paths no node explains at the end of the run.
    pub stale_routes: usize,
    /// Worst poll interval of the route source during this run: the
    /// resolution of both route times.
    pub route_resolution_ms: u64,
    /// Mean poll interval of the route source during this run, ms.
    pub mean_poll_ms: f64,
    /// What went wrong, if anything.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl BgpRunReport {
    /// The route changed, came back and left nothing stale.
    pub fn passed(&self) -> bool {
        self.route_change_ms.is_some() && self.recover_ms.is_some() && self.stale_routes == 0
    }
}

/// The settings recorded with the runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BgpSettings {
    /// `frr` or `bird`.
    pub router: String,
    /// Node count.
    pub nodes: usize,
    /// The VIP.
    pub vip: String,
    /// BGP hold time, seconds (both sides offer it).
    pub hold_time_s: u16,
    /// BFD on the BFD nodes (every node but n1): `300x3` (ms × multiplier).
    pub bfd: String,
    /// Where route times come from.
    pub route_source: String,
    /// Nominal poll interval of the route source, ms.
    pub poll_ms: u64,
    /// Measured mean poll interval, mean over the runs, ms.
    pub mean_poll_ms: f64,
    /// The client's probe: every 10 ms, 150 ms timeout, a new TCP
    /// connection each (so the router's L4 hash spreads them).
    pub probe: String,
    /// `--hold`, seconds (link-flap's down time).
    pub hold_s: f64,
}

/// After the lab: every vipd stopped with SIGTERM, then the router checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FinalCheck {
    /// Paths left in the router's BGP table and kernel (each counted) after
    /// every node stopped.
    pub stale_routes: usize,
    /// How long until both were empty, ms (`None`: they never were).
    pub empty_after_ms: Option<u64>,
}

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    settings: &'a BgpSettings,
    runs: &'a [BgpRunReport],
    summary: Vec<SummaryRow>,
    #[serde(rename = "final")]
    final_check: Option<FinalCheck>,
}

/// The JSON document.
pub fn to_json(
    settings: &BgpSettings,
    runs: &[BgpRunReport],
    final_check: Option<FinalCheck>,
) -> String {
    let doc = Doc {
        schema: "vipd-lab-bgp/1",
        settings,
        runs,
        summary: summary(runs),
        final_check,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Min and max of one scenario's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryRow {
    /// Scenario name.
    pub scenario: String,
    /// Runs.
    pub runs: usize,
    /// Route change, min and max ms (over the runs where it changed).
    pub route_change_ms: Option<(u64, u64)>,
    /// Client gap, min and max ms.
    pub client_gap_ms: Option<(u64, u64)>,
    /// Recovery, min and max ms.
    pub recover_ms: Option<(u64, u64)>,
    /// Stale routes, summed.
    pub stale_routes: usize,
    /// Runs that failed.
    pub failed: usize,
}

fn min_max(v: impl Iterator<Item = u64>) -> Option<(u64, u64)> {
    v.fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((a, b)) => Some((a.min(x), b.max(x))),
    })
}

/// One row per scenario, in the order the scenarios first ran.
pub fn summary(runs: &[BgpRunReport]) -> Vec<SummaryRow> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    names
        .into_iter()
        .map(|n| {
            let rs: Vec<&BgpRunReport> = runs.iter().filter(|r| r.scenario == n).collect();
            SummaryRow {
                scenario: n.to_string(),
                runs: rs.len(),
                route_change_ms: min_max(rs.iter().filter_map(|r| r.route_change_ms)),
                client_gap_ms: min_max(rs.iter().map(|r| r.client_gap_ms)),
                recover_ms: min_max(rs.iter().filter_map(|r| r.recover_ms)),
                stale_routes: rs.iter().map(|r| r.stale_routes).sum(),
                failed: rs.iter().filter(|r| !r.passed()).count(),
            }
        })
        .collect()
}

fn secs(ms: u64) -> String {
    format!("{:.3}s", ms as f64 / 1000.0)
}

fn opt(v: Option<u64>) -> String {
    v.map(secs).unwrap_or_else(|| "never".into())
}

fn range(v: Option<(u64, u64)>) -> String {
    match v {
        None => "-".into(),
        Some((a, b)) if a == b => secs(a),
        Some((a, b)) => format!("{}-{}", secs(a), secs(b)),
    }
}

fn render(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s: Vec<String> = cells
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        if let Some(last) = s.last_mut() {
            *last = last.trim_end().to_string();
        }
        format!("{}\n", s.join("  "))
    };
    let mut out = line(head.to_vec());
    let dashes: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(dashes.iter().map(String::as_str).collect()));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// The terminal table, one row per run.
pub fn table(runs: &[BgpRunReport]) -> String {
    let head = [
        "scenario",
        "run",
        "target",
        "route change",
        "client gap",
        "lost",
        "recover",
        "stale",
        "poll max",
        "result",
    ];
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.scenario.clone(),
                r.run.to_string(),
                r.target.clone(),
                opt(r.route_change_ms),
                secs(r.client_gap_ms),
                format!("{}/{}", r.failed_probes, r.probes),
                opt(r.recover_ms),
                r.stale_routes.to_string(),
                format!("{}ms", r.route_resolution_ms),
                if r.passed() {
                    "OK".into()
                } else {
                    format!("FAIL {}", r.note)
                },
            ]
        })
        .collect();
    render(&head, &rows)
}

/// The per-scenario min/max table.
pub fn summary_table(runs: &[BgpRunReport]) -> String {
    let head = [
        "scenario",
        "runs",
        "route change",
        "client gap",
        "recover",
        "stale",
        "failed",
    ];
    let rows: Vec<Vec<String>> = summary(runs)
        .into_iter()
        .map(|s| {
            vec![
                s.scenario,
                s.runs.to_string(),
                range(s.route_change_ms),
                range(s.client_gap_ms),
                range(s.recover_ms),
                s.stale_routes.to_string(),
                s.failed.to_string(),
            ]
        })
        .collect();
    render(&head, &rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn run(scenario: &str, k: u32, change: Option<u64>, gap: u64) -> BgpRunReport {
        BgpRunReport {
            scenario: scenario.into(),
            run: k,
            target: "n3 (BFD 300x3)".into(),
            route_change_ms: change,
            client_gap_ms: gap,
            failed_probes: 3,
            probes: 300,
            recover_ms: Some(1200),
            stale_routes: 0,
            route_resolution_ms: 14,
            mean_poll_ms: 10.1,
            note: String::new(),
        }
    }

    #[test]
    fn summary_gives_min_and_max_per_scenario_and_counts_failures() {
        let runs = [
            run("dead-bfd", 1, Some(850), 40),
            run("dead-bfd", 2, Some(910), 30),
            run("graceful", 1, None, 10),
        ];
        let s = summary(&runs);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].route_change_ms, Some((850, 910)));
        assert_eq!(s[0].client_gap_ms, Some((30, 40)));
        assert_eq!(s[0].failed, 0);
        assert_eq!((s[1].route_change_ms, s[1].failed), (None, 1));
        let t = summary_table(&runs);
        assert!(t.contains("0.850s-0.910s"), "{t}");
        let t = table(&runs);
        assert!(t.contains("never") && t.contains("3/300"), "{t}");
        let j: serde_json::Value = serde_json::from_str(&to_json(
            &BgpSettings {
                router: "frr".into(),
                nodes: 3,
                vip: "203.0.113.10".into(),
                hold_time_s: 9,
                bfd: "300x3".into(),
                route_source: "kernel".into(),
                poll_ms: 10,
                mean_poll_ms: 11.5,
                probe: "tcp".into(),
                hold_s: 3.0,
            },
            &runs,
            None,
        ))
        .unwrap();
        assert_eq!(j["schema"], "vipd-lab-bgp/1");
        assert_eq!(j["runs"][0]["route_change_ms"], 850);
        assert_eq!(j["summary"][0]["route_change_ms"][1], 910);
    }
}
