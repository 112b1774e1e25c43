//! The report: a table on the terminal and the JSON file.
//!
//! ## JSON (`--json FILE`), schema `vipd-lab/1`
//!
//! ```text
//! { "schema": "vipd-lab/1",
//!   "settings": { "implementation", "nodes", "lease_duration_s", "renew_deadline_s",
//!                 "retry_period_s", "advert_int_s" (keepalived only), "vip" },
//!   "runs": [ { one RunReport per run, fields below }, ... ] }
//! ```
//! Field names of [`RunReport`] are stable; times in the run are seconds on
//! the lab clock (since the lab started), durations are milliseconds.

use crate::measure::{Metrics, RunWindow};
use serde::Serialize;
use std::time::Duration;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One run's numbers. Field names are the JSON keys (stable).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// Scenario name (`sigterm`, `api-cut`, ...).
    pub scenario: String,
    /// 1-based run number within the scenario.
    pub run: u32,
    /// What was done (`n2 cut from etcd`).
    pub fault: String,
    /// The node holding the VIP before the fault (`null`: no steady state).
    pub holder_before: Option<String>,
    /// Lab-clock second when the fault was injected.
    pub fault_at_s: f64,
    /// Lab-clock second when it was healed.
    pub heal_at_s: f64,
    /// Lab-clock second when the run ended (settled or gave up).
    pub end_at_s: f64,
    /// Longest client-visible gap during the fault.
    pub gap_during_fault_ms: u64,
    /// Longest client-visible gap after the heal.
    pub gap_after_heal_ms: u64,
    /// From the heal until the client was served for 1 s without failure
    /// (`null`: never within the settle timeout).
    pub recover_after_heal_ms: Option<u64>,
    /// Time with two or more nodes holding the VIP.
    pub two_holder_ms: u64,
    /// Time with two MACs claiming the VIP on the wire (see `wire.rs`).
    pub two_mac_ms: u64,
    /// Gratuitous ARP / unsolicited NA frames seen from the fault to the end.
    pub announcements: u32,
    /// Leadership changes (acquisitions by a different node).
    pub leadership_changes: u32,
    /// The single holder at the end (`null`: none or several).
    pub end_holder: Option<String>,
    /// Exactly one holder serving the client at the end.
    pub end_ok: bool,
}

impl RunReport {
    /// Builds the report of one run.
    pub fn new(
        scenario: &str,
        run: u32,
        fault: String,
        holder_before: Option<String>,
        w: &RunWindow,
        m: &Metrics,
    ) -> Self {
        RunReport {
            scenario: scenario.to_string(),
            run,
            fault,
            holder_before,
            fault_at_s: w.fault.as_secs_f64(),
            heal_at_s: w.heal.as_secs_f64(),
            end_at_s: w.end.as_secs_f64(),
            gap_during_fault_ms: ms(m.gap_fault),
            gap_after_heal_ms: ms(m.gap_after_heal),
            recover_after_heal_ms: m.recover_after_heal.map(ms),
            two_holder_ms: ms(m.two_holder),
            two_mac_ms: ms(m.two_mac),
            announcements: m.announcements,
            leadership_changes: m.leadership_changes,
            end_holder: m.end_holder.clone(),
            end_ok: m.end_ok,
        }
    }

    /// The run passes: end state OK and never two holders.
    pub fn passed(&self) -> bool {
        self.end_ok && self.two_holder_ms == 0
    }
}

/// Lab settings recorded with the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// What ran on the nodes: `vipd` or `keepalived`.
    pub implementation: String,
    /// Number of nodes.
    pub nodes: usize,
    /// `--lease-duration`.
    pub lease_duration_s: f64,
    /// `--renew-deadline`.
    pub renew_deadline_s: f64,
    /// `--retry-period`.
    pub retry_period_s: f64,
    /// keepalived's `advert_int` derived from the lease (absent for vipd).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advert_int_s: Option<f64>,
    /// The VIP.
    pub vip: String,
}

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    settings: &'a Settings,
    runs: &'a [RunReport],
}

/// The JSON document (see the module docs).
pub fn to_json(settings: &Settings, runs: &[RunReport]) -> String {
    let doc = Doc {
        schema: "vipd-lab/1",
        settings,
        runs,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The terminal table, one row per run.
pub fn table(runs: &[RunReport]) -> String {
    let head = [
        "scenario",
        "run",
        "gap fault",
        "gap heal",
        "recover",
        "2-holder",
        "2-MAC",
        "announce",
        "changes",
        "end",
    ];
    let secs = |v: u64| format!("{:.2}s", v as f64 / 1000.0);
    let rows: Vec<[String; 10]> = runs
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                r.run.to_string(),
                secs(r.gap_during_fault_ms),
                secs(r.gap_after_heal_ms),
                r.recover_after_heal_ms
                    .map(secs)
                    .unwrap_or_else(|| "never".into()),
                format!("{}ms", r.two_holder_ms),
                format!("{}ms", r.two_mac_ms),
                r.announcements.to_string(),
                r.leadership_changes.to_string(),
                match (&r.end_holder, r.passed()) {
                    (Some(h), true) => format!("OK ({h})"),
                    (Some(h), false) => format!("FAIL ({h})"),
                    (None, _) => "FAIL".into(),
                },
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            // Scenario left-aligned, numbers right-aligned.
            if i == 0 || i == 9 {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            } else {
                s.push_str(&format!("{c:>w$}  ", w = width[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head.to_vec());
    out.push_str(&line(
        width
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn report(two: u64, ok: bool) -> RunReport {
        let w = RunWindow {
            start: Duration::from_secs(1),
            fault: Duration::from_secs(2),
            heal: Duration::from_secs(5),
            end: Duration::from_secs(8),
            count_from: Duration::from_secs(1),
        };
        let m = Metrics {
            gap_fault: Duration::from_millis(3210),
            gap_after_heal: Duration::from_millis(10),
            recover_after_heal: None,
            two_holder: Duration::from_millis(two),
            two_mac: Duration::ZERO,
            announcements: 4,
            leadership_changes: 1,
            end_holder: Some("n2".into()),
            end_ok: ok,
        };
        RunReport::new("crash", 1, "n1 crashed".into(), Some("n1".into()), &w, &m)
    }

    #[test]
    fn json_has_the_documented_stable_field_names() {
        let s = Settings {
            implementation: "vipd".into(),
            advert_int_s: None,
            nodes: 3,
            lease_duration_s: 3.0,
            renew_deadline_s: 2.0,
            retry_period_s: 0.5,
            vip: "192.0.2.100".into(),
        };
        let v: serde_json::Value = serde_json::from_str(&to_json(&s, &[report(0, true)])).unwrap();
        assert_eq!(v["schema"], "vipd-lab/1");
        let run = &v["runs"][0];
        for k in [
            "scenario",
            "run",
            "fault",
            "holder_before",
            "fault_at_s",
            "heal_at_s",
            "end_at_s",
            "gap_during_fault_ms",
            "gap_after_heal_ms",
            "recover_after_heal_ms",
            "two_holder_ms",
            "two_mac_ms",
            "announcements",
            "leadership_changes",
            "end_holder",
            "end_ok",
        ] {
            assert!(run.get(k).is_some(), "missing {k} in {run}");
        }
        assert_eq!(run["gap_during_fault_ms"], 3210);
        assert!(run["recover_after_heal_ms"].is_null());
    }

    #[test]
    fn table_marks_two_holder_time_as_failure() {
        let t = table(&[report(0, true), report(120, true)]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[2].ends_with("OK (n2)"), "{t}");
        assert!(
            lines[3].ends_with("FAIL (n2)") && lines[3].contains("120ms"),
            "{t}"
        );
        assert!(
            lines[2].contains("3.21s") && lines[2].contains("never"),
            "{t}"
        );
    }
}
