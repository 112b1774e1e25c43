//! `vipd lab bench`: the same scenarios with several implementations back
//! to back, summarised side by side (median over the runs of each
//! scenario), with the ratio vipd / keepalived of the client-visible gaps.
//!
//! ## JSON (`--json FILE`), schema `vipd-lab-bench/1`
//!
//! ```text
//! { "schema": "vipd-lab-bench/1",
//!   "implementations": [ { "implementation": "vipd", "settings": {...},
//!                          "runs": [ RunReport, ... ] }, ... ],
//!   "summary": [ { "scenario", "cells": [ { "implementation", "runs",
//!                  "gap_during_fault_ms", "gap_after_heal_ms",
//!                  "recover_after_heal_ms", "recovered_runs", "two_holder_ms",
//!                  "two_mac_ms", "end_ok_runs" } ... ],
//!                  "gap_during_fault_ratio", "gap_after_heal_ratio" } ... ] }
//! ```
//! With quorum mode in the run (`--coordination lease,quorum`), vipd runs
//! once per coordination: each implementation entry and each cell then
//! carries `"coordination"` (`lease`, `quorum`, keepalived's `vrrp`), the
//! ratios above are vipd in lease mode over keepalived, and
//! `quorum_gap_during_fault_ratio`, `quorum_gap_after_heal_ratio` are vipd
//! in quorum mode over keepalived. An implementation entry lists the
//! asked-for scenarios that do not apply to it in `"not_applicable"`; a
//! scenario has no cell for it (the table shows `n/a`).
//!
//! Every `*_ms` of a cell is the median over the scenario's runs (the mean
//! of the two middle values for an even count, rounded down);
//! `recover_after_heal_ms` counts a run that never recovered as longer than
//! any that did (`null` when the median run never recovered). Ratios are
//! vipd / keepalived of those medians, `null` when either implementation is
//! missing or keepalived's median is 0.

use crate::lab::Implementation;
use crate::report::{NotApplicable, RunReport, Settings};
use serde::Serialize;

/// Every run of one implementation.
#[derive(Debug, Clone, Serialize)]
pub struct ImplRuns {
    /// `vipd` or `keepalived`.
    pub implementation: String,
    /// `lease`, `quorum` or `vrrp` (only when the run compared
    /// coordinations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordination: Option<String>,
    /// The lab settings of these runs.
    pub settings: Settings,
    /// One report per run, in run order.
    pub runs: Vec<RunReport>,
    /// Asked-for scenarios that do not apply to this implementation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<NotApplicable>,
}

impl ImplRuns {
    /// The name in tables: `vipd`, `keepalived`, or `vipd lease`, `vipd
    /// quorum` when coordinations are compared.
    pub fn label(&self) -> String {
        match &self.coordination {
            Some(c) if self.implementation == Implementation::Vipd.name() => {
                format!("{} {c}", self.implementation)
            }
            _ => self.implementation.clone(),
        }
    }
}

/// One implementation's medians over the runs of one scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// `vipd` or `keepalived`.
    pub implementation: String,
    /// `lease`, `quorum` or `vrrp` (only when coordinations are compared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordination: Option<String>,
    /// Runs of the scenario.
    pub runs: usize,
    /// Median longest gap during the fault.
    pub gap_during_fault_ms: u64,
    /// Median longest gap after the heal.
    pub gap_after_heal_ms: u64,
    /// Median recovery after the heal (`None`: the median run never recovered).
    pub recover_after_heal_ms: Option<u64>,
    /// Runs that recovered after the heal.
    pub recovered_runs: usize,
    /// Median two-holder time.
    pub two_holder_ms: u64,
    /// Median two-MAC time.
    pub two_mac_ms: u64,
    /// Runs that ended with one holder serving the client.
    pub end_ok_runs: usize,
}

/// One scenario, every implementation side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// One cell per implementation the scenario applies to, in the order
    /// given.
    pub cells: Vec<Cell>,
    /// vipd (lease mode) / keepalived of the median gap during the fault.
    pub gap_during_fault_ratio: Option<f64>,
    /// vipd (lease mode) / keepalived of the median gap after the heal.
    pub gap_after_heal_ratio: Option<f64>,
    /// vipd in quorum mode / keepalived of the median gap during the fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_gap_during_fault_ratio: Option<f64>,
    /// vipd in quorum mode / keepalived of the median gap after the heal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_gap_after_heal_ratio: Option<f64>,
}

impl Cell {
    /// The name in tables (see [`ImplRuns::label`]).
    fn label(&self) -> String {
        match &self.coordination {
            Some(c) if self.implementation == Implementation::Vipd.name() => {
                format!("{} {c}", self.implementation)
            }
            _ => self.implementation.clone(),
        }
    }
}

/// The median of `v` (mean of the two middle values, rounded down, for an
/// even count); 0 for none.
fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    let n = v.len();
    match n {
        0 => 0,
        _ if n % 2 == 1 => v[n / 2],
        _ => v[n / 2 - 1] / 2 + v[n / 2] / 2 + (v[n / 2 - 1] % 2 + v[n / 2] % 2) / 2,
    }
}

/// The median where `None` (never) sorts after every value; `None` when the
/// median position holds a never (for an even count: when either middle one
/// does).
fn median_or_never(v: &[Option<u64>]) -> Option<u64> {
    let mut v = v.to_vec();
    v.sort_unstable_by_key(|x| x.unwrap_or(u64::MAX));
    let n = v.len();
    if n == 0 {
        return None;
    }
    if n % 2 == 1 {
        return v[n / 2];
    }
    Some(median(vec![v[n / 2 - 1]?, v[n / 2]?]))
}

fn cell(implementation: &str, coordination: Option<&str>, runs: &[&RunReport]) -> Cell {
    let pick = |f: fn(&RunReport) -> u64| median(runs.iter().map(|r| f(r)).collect());
    let recover: Vec<Option<u64>> = runs.iter().map(|r| r.recover_after_heal_ms).collect();
    Cell {
        implementation: implementation.to_string(),
        coordination: coordination.map(str::to_string),
        runs: runs.len(),
        gap_during_fault_ms: pick(|r| r.gap_during_fault_ms),
        gap_after_heal_ms: pick(|r| r.gap_after_heal_ms),
        recover_after_heal_ms: median_or_never(&recover),
        recovered_runs: recover.iter().filter(|r| r.is_some()).count(),
        two_holder_ms: pick(|r| r.two_holder_ms),
        two_mac_ms: pick(|r| r.two_mac_ms),
        end_ok_runs: runs.iter().filter(|r| r.end_ok).count(),
    }
}

/// vipd in `coordination` (`lease` also matches a cell without one) over
/// keepalived, of `f`.
fn ratio(cells: &[Cell], coordination: &str, f: fn(&Cell) -> u64) -> Option<f64> {
    let vipd = cells.iter().find(|c| {
        c.implementation == Implementation::Vipd.name()
            && c.coordination
                .as_deref()
                .map_or(coordination == "lease", |x| x == coordination)
    });
    let keepalived = cells
        .iter()
        .find(|c| c.implementation == Implementation::Keepalived.name());
    let (v, k) = (f(vipd?), f(keepalived?));
    (k > 0).then(|| v as f64 / k as f64)
}

/// Summarises every implementation's runs per scenario, scenarios in the
/// order they first appear.
pub fn side_by_side(all: &[ImplRuns]) -> Vec<Row> {
    let mut scenarios: Vec<&str> = Vec::new();
    for r in all.iter().flat_map(|i| &i.runs) {
        if !scenarios.contains(&r.scenario.as_str()) {
            scenarios.push(&r.scenario);
        }
    }
    scenarios
        .into_iter()
        .map(|sc| {
            // An implementation the scenario did not apply to has no cell.
            let cells: Vec<Cell> = all
                .iter()
                .filter_map(|i| {
                    let runs: Vec<&RunReport> =
                        i.runs.iter().filter(|r| r.scenario == sc).collect();
                    (!runs.is_empty())
                        .then(|| cell(&i.implementation, i.coordination.as_deref(), &runs))
                })
                .collect();
            Row {
                scenario: sc.to_string(),
                gap_during_fault_ratio: ratio(&cells, "lease", |c| c.gap_during_fault_ms),
                gap_after_heal_ratio: ratio(&cells, "lease", |c| c.gap_after_heal_ms),
                quorum_gap_during_fault_ratio: ratio(&cells, "quorum", |c| c.gap_during_fault_ms),
                quorum_gap_after_heal_ratio: ratio(&cells, "quorum", |c| c.gap_after_heal_ms),
                cells,
            }
        })
        .collect()
}

/// The terminal table: one line per scenario, each cell `vipd / keepalived`
/// (in the order the implementations in `all` ran; `n/a` where the
/// scenario did not apply); with coordinations compared, `vipd lease /
/// vipd quorum / keepalived` and one ratio per vipd coordination.
pub fn table(all: &[ImplRuns], rows: &[Row]) -> String {
    let names: Vec<String> = all.iter().map(ImplRuns::label).collect();
    let compared = all.iter().any(|i| i.coordination.is_some());
    let head = [
        "scenario".to_string(),
        "gap fault".into(),
        "ratio".into(),
        "gap heal".into(),
        "ratio".into(),
        "recover".into(),
        "2-holder".into(),
        "2-MAC".into(),
        "end OK".into(),
    ];
    let secs = |v: u64| format!("{:.2}s", v as f64 / 1000.0);
    let ratio = |r: Option<f64>| r.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into());
    let ratios = |lease: Option<f64>, quorum: Option<f64>| {
        if compared {
            format!("{} / {}", ratio(lease), ratio(quorum))
        } else {
            ratio(lease)
        }
    };
    let join = |f: &dyn Fn(&Cell) -> String, r: &Row| {
        names
            .iter()
            .map(|n| match r.cells.iter().find(|c| c.label() == *n) {
                Some(c) => f(c),
                None => "n/a".into(),
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let body: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                join(&|c| secs(c.gap_during_fault_ms), r),
                ratios(r.gap_during_fault_ratio, r.quorum_gap_during_fault_ratio),
                join(&|c| secs(c.gap_after_heal_ms), r),
                ratios(r.gap_after_heal_ratio, r.quorum_gap_after_heal_ratio),
                join(
                    &|c| {
                        c.recover_after_heal_ms
                            .map(secs)
                            .unwrap_or_else(|| "never".into())
                    },
                    r,
                ),
                join(&|c| format!("{}ms", c.two_holder_ms), r),
                join(&|c| format!("{}ms", c.two_mac_ms), r),
                join(&|c| format!("{}/{}", c.end_ok_runs, c.runs), r),
            ]
        })
        .collect();
    let mut width = head.clone().map(|h| h.len());
    for r in &body {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 0 {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            } else {
                s.push_str(&format!("{c:>w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = if compared {
        format!(
            "median over runs; each cell {}; ratio = vipd lease / keepalived, vipd quorum / keepalived\n",
            names.join(" / ")
        )
    } else {
        format!(
            "median over runs; each cell {}; ratio = vipd / keepalived\n",
            names.join(" / ")
        )
    };
    out.push_str(&line(&head));
    out.push_str(&line(&width.map(|w| "-".repeat(w))));
    for r in &body {
        out.push_str(&line(r));
    }
    out
}

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    implementations: &'a [ImplRuns],
    summary: &'a [Row],
}

/// The bench JSON document (see the module docs).
pub fn to_json(all: &[ImplRuns], rows: &[Row]) -> String {
    let doc = Doc {
        schema: "vipd-lab-bench/1",
        implementations: all,
        summary: rows,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn run(sc: &str, fault: u64, heal: u64, recover: Option<u64>, two: u64, ok: bool) -> RunReport {
        RunReport {
            scenario: sc.into(),
            run: 1,
            fault: "f".into(),
            holder_before: Some("n1".into()),
            fault_at_s: 1.0,
            heal_at_s: 2.0,
            end_at_s: 3.0,
            gap_during_fault_ms: fault,
            gap_after_heal_ms: heal,
            recover_after_heal_ms: recover,
            two_holder_ms: two,
            two_mac_ms: two / 2,
            announcements: 3,
            leadership_changes: 1,
            end_holder: Some("n2".into()),
            end_ok: ok,
            address: None,
            services: None,
            addresses: Vec::new(),
        }
    }

    fn settings(i: &str) -> Settings {
        Settings {
            implementation: i.into(),
            backend: "etcd".into(),
            services: None,
            nodes: 3,
            lease_duration_s: 3.0,
            renew_deadline_s: 2.0,
            retry_period_s: 0.5,
            advert_int_s: None,
            vip: "192.0.2.100".into(),
            coordination: None,
            quorum: None,
        }
    }

    fn both() -> Vec<ImplRuns> {
        vec![
            ImplRuns {
                implementation: "vipd".into(),
                coordination: None,
                not_applicable: Vec::new(),
                settings: settings("vipd"),
                runs: vec![
                    run("sigterm", 100, 10, Some(0), 0, true),
                    run("sigterm", 300, 30, Some(0), 0, true),
                    run("sigterm", 200, 20, Some(0), 0, true),
                    run("partition", 0, 0, Some(0), 0, true),
                    run("partition", 10, 0, Some(0), 0, true),
                ],
            },
            ImplRuns {
                implementation: "keepalived".into(),
                coordination: None,
                not_applicable: Vec::new(),
                settings: settings("keepalived"),
                runs: vec![
                    run("sigterm", 800, 0, Some(0), 0, true),
                    run("sigterm", 400, 0, None, 0, false),
                    run("sigterm", 600, 0, None, 0, true),
                    run("partition", 3000, 500, Some(700), 2000, true),
                    run("partition", 3600, 700, Some(900), 3001, true),
                ],
            },
        ]
    }

    #[test]
    fn side_by_side_takes_medians_per_scenario_and_vipd_over_keepalived_ratios() {
        let rows = side_by_side(&both());
        assert_eq!(
            rows.iter().map(|r| r.scenario.as_str()).collect::<Vec<_>>(),
            ["sigterm", "partition"]
        );
        let s = &rows[0];
        assert_eq!(s.cells[0].implementation, "vipd");
        assert_eq!(s.cells[0].gap_during_fault_ms, 200);
        assert_eq!(s.cells[1].gap_during_fault_ms, 600);
        assert_eq!(s.gap_during_fault_ratio, Some(200.0 / 600.0));
        // keepalived's median gap after heal is 0: no ratio.
        assert_eq!(s.gap_after_heal_ratio, None);
        // Two of three keepalived runs never recovered: the median is never.
        assert_eq!(s.cells[1].recover_after_heal_ms, None);
        assert_eq!(s.cells[1].recovered_runs, 1);
        assert_eq!(s.cells[1].end_ok_runs, 2);
        assert_eq!(s.cells[0].end_ok_runs, 3);
        // Even count: mean of the middle two, rounded down.
        let p = &rows[1];
        assert_eq!(p.cells[0].gap_during_fault_ms, 5);
        assert_eq!(p.cells[1].gap_during_fault_ms, 3300);
        assert_eq!(p.cells[1].two_holder_ms, 2500);
        assert_eq!(p.cells[1].two_mac_ms, 1250);
        assert_eq!(p.cells[1].recover_after_heal_ms, Some(800));
        assert_eq!(p.gap_during_fault_ratio, Some(5.0 / 3300.0));
    }

    #[test]
    fn medians_of_odd_and_even_counts_and_nevers() {
        assert_eq!(median(vec![]), 0);
        assert_eq!(median(vec![7]), 7);
        assert_eq!(median(vec![9, 1, 5]), 5);
        assert_eq!(median(vec![1, 4]), 2);
        assert_eq!(median(vec![3, 5]), 4);
        assert_eq!(median(vec![u64::MAX, u64::MAX]), u64::MAX);
        assert_eq!(median_or_never(&[None, Some(5), Some(1)]), Some(5));
        assert_eq!(median_or_never(&[Some(2), Some(4)]), Some(3));
        assert_eq!(median_or_never(&[Some(2), None]), None);
        assert_eq!(median_or_never(&[]), None);
    }

    #[test]
    fn bench_table_shows_both_implementations_per_scenario() {
        let all = both();
        let t = table(&all, &side_by_side(&all));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[0].contains("vipd / keepalived"), "{t}");
        assert!(lines[3].starts_with("sigterm"), "{t}");
        assert!(
            lines[3].contains("0.20s / 0.60s") && lines[3].contains("0.33"),
            "{t}"
        );
        assert!(
            lines[3].contains("0.00s / never") && lines[3].ends_with("3/3 / 2/3"),
            "{t}"
        );
        assert!(lines[4].contains("0ms / 2500ms"), "{t}");
    }

    #[test]
    fn bench_json_holds_every_run_of_both_and_the_summary() {
        let all = both();
        let v: serde_json::Value =
            serde_json::from_str(&to_json(&all, &side_by_side(&all))).unwrap();
        assert_eq!(v["schema"], "vipd-lab-bench/1");
        assert_eq!(v["implementations"][1]["implementation"], "keepalived");
        assert_eq!(v["implementations"][1]["runs"].as_array().unwrap().len(), 5);
        assert_eq!(v["summary"][0]["cells"][1]["gap_during_fault_ms"], 600);
        assert!(v["summary"][0]["gap_after_heal_ratio"].is_null());
        // Lease-only documents are what they were before quorum mode.
        assert!(v["implementations"][0].get("coordination").is_none());
        assert!(v["summary"][0]["cells"][0].get("coordination").is_none());
        assert!(v["summary"][0]
            .get("quorum_gap_during_fault_ratio")
            .is_none());
    }

    /// vipd lease, vipd quorum and keepalived side by side; quorum runs a
    /// scenario the others do not.
    fn three() -> Vec<ImplRuns> {
        let mut all = both();
        for i in &mut all {
            i.coordination = Some(
                if i.implementation == "vipd" {
                    "lease"
                } else {
                    "vrrp"
                }
                .into(),
            );
        }
        all[0].not_applicable = vec![NotApplicable {
            scenario: "peer-partition".into(),
            reason: "lease mode has no peer traffic".into(),
        }];
        let quorum = ImplRuns {
            implementation: "vipd".into(),
            coordination: Some("quorum".into()),
            not_applicable: Vec::new(),
            settings: settings("vipd"),
            runs: vec![
                run("sigterm", 60, 0, Some(0), 0, true),
                run("partition", 900, 0, Some(0), 0, true),
                run("peer-partition", 1200, 0, Some(0), 0, true),
            ],
        };
        all.insert(1, quorum);
        all
    }

    #[test]
    fn coordinations_line_up_per_scenario_with_a_ratio_each_and_n_a_cells() {
        let all = three();
        let rows = side_by_side(&all);
        assert_eq!(
            rows.iter().map(|r| r.scenario.as_str()).collect::<Vec<_>>(),
            ["sigterm", "partition", "peer-partition"]
        );
        let s = &rows[0];
        assert_eq!(s.cells.len(), 3);
        assert_eq!(s.gap_during_fault_ratio, Some(200.0 / 600.0));
        assert_eq!(s.quorum_gap_during_fault_ratio, Some(60.0 / 600.0));
        // Only quorum ran peer-partition: one cell, no ratio.
        let p = &rows[2];
        assert_eq!(p.cells.len(), 1);
        assert_eq!(p.cells[0].coordination.as_deref(), Some("quorum"));
        assert_eq!(p.quorum_gap_during_fault_ratio, None);
        let t = table(&all, &rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].contains("vipd lease / vipd quorum / keepalived"),
            "{t}"
        );
        assert!(
            lines[3].contains("0.20s / 0.06s / 0.60s") && lines[3].contains("0.33 / 0.10"),
            "{t}"
        );
        assert!(
            lines[5].starts_with("peer-partition") && lines[5].contains("n/a / 1.20s / n/a"),
            "{t}"
        );
        let v: serde_json::Value = serde_json::from_str(&to_json(&all, &rows)).unwrap();
        assert_eq!(v["implementations"][1]["coordination"], "quorum");
        assert_eq!(
            v["implementations"][0]["not_applicable"][0]["scenario"],
            "peer-partition"
        );
        assert_eq!(v["summary"][0]["cells"][1]["coordination"], "quorum");
    }
}
