//! The report: a table on the terminal and the JSON file.
//!
//! ## JSON (`--json FILE`), schema `vipd-lab/1`
//!
//! ```text
//! { "schema": "vipd-lab/1",
//!   "settings": { "implementation", "backend", "nodes", "lease_duration_s",
//!                 "renew_deadline_s", "retry_period_s", "advert_int_s" (keepalived
//!                 only), "vip", "services" (Services runs only),
//!                 "coordination" ("lease", "quorum" or keepalived's "vrrp";
//!                 only in runs with quorum mode), "quorum" (quorum mode
//!                 only: voters, witness, promise_s, heartbeat_s, port) },
//!   "runs": [ { one RunReport per run, fields below }, ... ],
//!   "not_applicable": [ { "scenario", "reason" }, ... ] (only when some
//!                 asked-for scenario cannot run here; never counted as runs) }
//! ```
//! Field names of [`RunReport`] are stable; times in the run are seconds on
//! the lab clock (since the lab started), durations are milliseconds.
//!
//! In a Services run (`--services N`) a run's report is the control-plane
//! VIP's, plus `"services"` ([`ServicesSummary`]: every one of the N
//! addresses) and `"addresses"`: one nested report per *sampled* Service
//! address (the same fields, with `"address"`), measured exactly as the
//! VIP is (client probes, holding log and wire claims of that address).

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
    /// The Service address this report is about (nested reports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// All Service addresses of a Services run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<ServicesSummary>,
    /// One report per sampled Service address (Services runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<RunReport>,
}

/// Every Service address of one run, from the holding logs (not only the
/// sampled ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicesSummary {
    /// Service addresses watched (one per Service).
    pub addresses: usize,
    /// Addresses the fault hit directly: held before it by the node it
    /// aimed at (svc-*: the busiest node), or every held address when it
    /// hit every node (api-down, svc-api-down).
    pub on_target: usize,
    /// Addresses with exactly one holder at the end.
    pub held_once_at_end: usize,
    /// Addresses whose holder at the end differs from the one before.
    pub moved: usize,
    /// Sum over addresses of the time with two or more holders.
    pub two_holder_ms: u64,
    /// Addresses that ever had two holders in the run.
    pub two_holder_addresses: usize,
}

impl ServicesSummary {
    /// Every address held exactly once at the end, never two holders.
    pub fn ok(&self) -> bool {
        self.held_once_at_end == self.addresses && self.two_holder_ms == 0
    }
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
            address: None,
            services: None,
            addresses: Vec::new(),
        }
    }

    /// The run passes: end state OK and never two holders — for the VIP,
    /// every sampled Service address and every Service address.
    pub fn passed(&self) -> bool {
        self.end_ok
            && self.two_holder_ms == 0
            && self.services.as_ref().is_none_or(ServicesSummary::ok)
            && self.addresses.iter().all(RunReport::passed)
    }

    /// End state OK for the VIP and, in a Services run, every Service
    /// address held once (the run loop resets the lab otherwise).
    pub fn end_clean(&self) -> bool {
        self.end_ok
            && self
                .services
                .as_ref()
                .is_none_or(|s| s.held_once_at_end == s.addresses)
            && self.addresses.iter().all(|a| a.end_ok)
    }
}

/// Lab settings recorded with the runs.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// What ran on the nodes: `vipd` or `keepalived`.
    pub implementation: String,
    /// The lease backend: `etcd` or `kubernetes` (the in-repo API test
    /// server).
    pub backend: String,
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
    /// LoadBalancer Services created (Services runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services: Option<usize>,
    /// What decided the holder: `lease`, `quorum`, or `vrrp` (keepalived);
    /// recorded when the lab ran quorum mode (absent: lease, as before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordination: Option<String>,
    /// Quorum mode's settings (quorum mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumSettings>,
}

/// The quorum settings a run used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuorumSettings {
    /// Voters: the nodes, plus the witness.
    pub voters: usize,
    /// A witness (`vipd witness`) was one of them.
    pub witness: bool,
    /// `--quorum-promise`.
    pub promise_s: f64,
    /// `--quorum-heartbeat`.
    pub heartbeat_s: f64,
    /// The quorum UDP port.
    pub port: u16,
}

/// An asked-for scenario that cannot run on this implementation or
/// coordination (reported, never run, never counted as a pass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotApplicable {
    /// Scenario name.
    pub scenario: String,
    /// Why it does not apply.
    pub reason: String,
}

/// One line per scenario that did not apply (empty when all did).
pub fn not_applicable_lines(na: &[NotApplicable]) -> String {
    na.iter()
        .map(|n| format!("{}: not applicable: {}\n", n.scenario, n.reason))
        .collect()
}

#[derive(Serialize)]
struct Doc<'a> {
    schema: &'static str,
    settings: &'a Settings,
    runs: &'a [RunReport],
    #[serde(skip_serializing_if = "<[NotApplicable]>::is_empty")]
    not_applicable: &'a [NotApplicable],
}

/// The JSON document (see the module docs).
pub fn to_json(
    settings: &Settings,
    runs: &[RunReport],
    not_applicable: &[NotApplicable],
) -> String {
    let doc = Doc {
        schema: "vipd-lab/1",
        settings,
        runs,
        not_applicable,
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
    // A Services run's sampled addresses follow its VIP row, indented.
    let flat: Vec<(String, &RunReport)> = runs
        .iter()
        .flat_map(|r| {
            std::iter::once((r.scenario.clone(), r)).chain(r.addresses.iter().map(|a| {
                let addr = a.address.as_deref().unwrap_or("?");
                (format!("  {addr}"), a)
            }))
        })
        .collect();
    let rows: Vec<[String; 10]> = flat
        .iter()
        .map(|(label, r)| {
            [
                label.clone(),
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
                match (&r.end_holder, r.end_ok && r.two_holder_ms == 0) {
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
    let line = |cells: Vec<&str>| row(&cells, &width);
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

/// The Services table, one row per Services run: every address, not only
/// the sampled ones. Empty when no run has Services.
pub fn services_table(runs: &[RunReport]) -> String {
    let head = [
        "scenario",
        "run",
        "addresses",
        "on target",
        "moved",
        "held once at end",
        "2-holder (all)",
        "worst gap fault",
        "worst gap heal",
        "end",
    ];
    let secs = |v: u64| format!("{:.2}s", v as f64 / 1000.0);
    let rows: Vec<Vec<String>> = runs
        .iter()
        .filter_map(|r| {
            let s = r.services.as_ref()?;
            let worst = |f: fn(&RunReport) -> u64| r.addresses.iter().map(f).max().unwrap_or(0);
            Some(vec![
                r.scenario.clone(),
                r.run.to_string(),
                s.addresses.to_string(),
                s.on_target.to_string(),
                s.moved.to_string(),
                format!("{}/{}", s.held_once_at_end, s.addresses),
                format!("{}ms ({} addr)", s.two_holder_ms, s.two_holder_addresses),
                secs(worst(|a| a.gap_during_fault_ms)),
                secs(worst(|a| a.gap_after_heal_ms)),
                if r.passed() { "OK" } else { "FAIL" }.to_string(),
            ])
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &[&str]| row(cells, &width);
    let mut out = line(&head);
    let dashes: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(
        &dashes.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    for r in &rows {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

/// One table row: each cell padded to its column's `width`, two spaces
/// apart; columns 0 (scenario) and 9 (end state) left-aligned, the numbers
/// right-aligned.
fn row(cells: &[&str], width: &[usize]) -> String {
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i == 0 || i == 9 {
            s.push_str(&format!("{c:<w$}  ", w = width[i]));
        } else {
            s.push_str(&format!("{c:>w$}  ", w = width[i]));
        }
    }
    s.trim_end().to_string() + "\n"
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
            backend: "etcd".into(),
            services: None,
            advert_int_s: None,
            nodes: 3,
            lease_duration_s: 3.0,
            renew_deadline_s: 2.0,
            retry_period_s: 0.5,
            vip: "192.0.2.100".into(),
            coordination: None,
            quorum: None,
        };
        let v: serde_json::Value =
            serde_json::from_str(&to_json(&s, &[report(0, true)], &[])).unwrap();
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
        assert_eq!(v["settings"]["backend"], "etcd");
        // Fields of Services runs are absent from the others.
        for k in ["address", "services", "addresses"] {
            assert!(run.get(k).is_none(), "{k} in {run}");
        }
        // Lease runs' documents are what they were before quorum mode.
        for k in ["services", "coordination", "quorum"] {
            assert!(v["settings"].get(k).is_none(), "{k} in {}", v["settings"]);
        }
        assert!(v.get("not_applicable").is_none());
    }

    #[test]
    fn quorum_settings_and_not_applicable_scenarios_are_recorded() {
        let s = Settings {
            implementation: "vipd".into(),
            backend: "etcd".into(),
            services: None,
            advert_int_s: None,
            nodes: 2,
            lease_duration_s: 3.0,
            renew_deadline_s: 2.0,
            retry_period_s: 0.5,
            vip: "192.0.2.100".into(),
            coordination: Some("quorum".into()),
            quorum: Some(QuorumSettings {
                voters: 3,
                witness: true,
                promise_s: 0.6,
                heartbeat_s: 0.1,
                port: 7480,
            }),
        };
        let na = [NotApplicable {
            scenario: "peer-loss".into(),
            reason: "because".into(),
        }];
        let v: serde_json::Value =
            serde_json::from_str(&to_json(&s, &[report(0, true)], &na)).unwrap();
        assert_eq!(v["settings"]["coordination"], "quorum");
        assert_eq!(v["settings"]["quorum"]["voters"], 3);
        assert_eq!(v["settings"]["quorum"]["witness"], true);
        assert_eq!(v["not_applicable"][0]["scenario"], "peer-loss");
        assert_eq!(v["runs"].as_array().unwrap().len(), 1);
        assert_eq!(
            not_applicable_lines(&na),
            "peer-loss: not applicable: because\n"
        );
    }

    #[test]
    fn services_runs_nest_sampled_addresses_and_fail_on_any_two_holders() {
        let mut r = report(0, true);
        let mut a = report(0, true);
        a.address = Some("203.0.113.10".into());
        r.addresses = vec![a];
        r.services = Some(ServicesSummary {
            addresses: 50,
            on_target: 17,
            held_once_at_end: 50,
            moved: 17,
            two_holder_ms: 0,
            two_holder_addresses: 0,
        });
        assert!(r.passed());
        let t = table(std::slice::from_ref(&r));
        assert!(
            t.lines().nth(3).unwrap().starts_with("  203.0.113.10"),
            "{t}"
        );
        let st = services_table(std::slice::from_ref(&r));
        assert!(
            st.contains("50/50") && st.trim_end().ends_with("OK"),
            "{st}"
        );
        if let Some(s) = r.services.as_mut() {
            s.two_holder_ms = 40;
            s.two_holder_addresses = 1;
        }
        assert!(
            !r.passed(),
            "two holders on an unsampled address fail the run"
        );
        assert!(r.end_clean());
        assert_eq!(services_table(&[report(0, true)]), "");
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
