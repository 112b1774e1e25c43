//! `--svg FILE`: one timeline panel per run.
//!
//! Each panel has one lane per node (coloured where the node holds the VIP,
//! grey where not, black ticks for the announcements it sent), the client
//! lane (coloured by the node that answered, red where probes failed), the
//! fault period shaded with its start and heal marked, and a time axis in
//! seconds from the fault. Plain SVG 1.1, no scripts, no external fonts.

use crate::runner::RunOutcome;
use std::fmt::Write;
use std::time::Duration;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
const LANE: f64 = 18.0;
const LANE_GAP: f64 = 6.0;
/// Colour of failed probes and of the fault marker.
const FAIL: &str = "#d62728";
/// Node colours, red excluded (red means "client not served").
const PALETTE: [&str; 9] = [
    "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
    "#7f7f7f",
];

fn colour(nodes: &[String], node: &str) -> &'static str {
    nodes
        .iter()
        .position(|n| n == node)
        .map_or("#444444", |i| PALETTE[i % PALETTE.len()])
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn panel_height(nodes: usize) -> f64 {
    // Title, lanes (nodes + client), axis labels, spacing.
    34.0 + (nodes as f64 + 1.0) * (LANE + LANE_GAP) + 40.0
}

/// Renders every run as one SVG document.
pub fn render(runs: &[RunOutcome]) -> String {
    let nodes = runs.first().map(|r| r.timeline.nodes.len()).unwrap_or(0);
    let legend_h = 50.0;
    let height = legend_h + runs.len() as f64 * panel_height(nodes) + 10.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    legend(
        &mut s,
        runs.first()
            .map(|r| r.timeline.nodes.as_slice())
            .unwrap_or(&[]),
    );
    for (i, r) in runs.iter().enumerate() {
        panel(&mut s, r, legend_h + i as f64 * panel_height(nodes));
    }
    s.push_str("</svg>\n");
    s
}

fn legend(s: &mut String, nodes: &[String]) {
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">vipd lab: who holds the VIP, who answers the client</text>"#
    );
    let mut x = 10.0;
    let y = 32.0;
    for n in nodes {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{y}" width="14" height="10" fill="{}"/><text x="{}" y="{}">{} holds / serves</text>"#,
            colour(nodes, n),
            x + 18.0,
            y + 9.0,
            esc(n)
        );
        x += 140.0;
    }
    let _ = writeln!(
        s,
        r#"<rect x="{x}" y="{y}" width="14" height="10" fill="{FAIL}"/><text x="{}" y="{}">client not served</text>"#,
        x + 18.0,
        y + 9.0
    );
    x += 130.0;
    let _ = writeln!(
        s,
        r#"<line x1="{}" y1="{y}" x2="{}" y2="{}" stroke="black" stroke-width="1.5"/><text x="{}" y="{}">announcement (GARP/NA)</text>"#,
        x + 5.0,
        x + 5.0,
        y + 10.0,
        x + 12.0,
        y + 9.0
    );
    x += 190.0;
    let _ = writeln!(
        s,
        r#"<rect x="{x}" y="{y}" width="14" height="10" fill="{FAIL}" fill-opacity="0.12" stroke="{FAIL}" stroke-dasharray="3,2"/><text x="{}" y="{}">fault → heal</text>"#,
        x + 18.0,
        y + 9.0
    );
}

fn panel(s: &mut String, r: &RunOutcome, top: f64) {
    let tl = &r.timeline;
    let w = tl.window;
    let v0 = w.start.saturating_sub(Duration::from_secs(1));
    let v1 = w.end.max(v0 + Duration::from_millis(100));
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |t: Duration| {
        LEFT + (t.saturating_sub(v0)).as_secs_f64() / (v1 - v0).as_secs_f64() * plot_w
    };
    let rep = &r.report;
    let verdict = if rep.passed() { "OK" } else { "FAIL" };
    let recover = rep.recover_after_heal_ms.map_or("never".to_string(), |v| {
        format!("{:.2}s", v as f64 / 1000.0)
    });
    let _ = writeln!(
        s,
        r#"<text x="10" y="{}" font-weight="bold">{} #{}: {} — gap {:.2}s during fault, {:.2}s after heal, served again {recover} after heal, two holders {} ms, changes {}: <tspan fill="{}">{verdict}</tspan></text>"#,
        top + 16.0,
        esc(&rep.scenario),
        rep.run,
        esc(&rep.fault),
        rep.gap_during_fault_ms as f64 / 1000.0,
        rep.gap_after_heal_ms as f64 / 1000.0,
        rep.two_holder_ms,
        rep.leadership_changes,
        if rep.passed() { "#2ca02c" } else { FAIL }
    );
    let lanes_top = top + 28.0;
    let lanes_h = (tl.nodes.len() as f64 + 1.0) * (LANE + LANE_GAP);
    // The fault period, shaded across all lanes.
    let _ = writeln!(
        s,
        r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{FAIL}" fill-opacity="0.12"/>"#,
        x(w.fault),
        lanes_top - 4.0,
        (x(w.heal) - x(w.fault)).max(1.0),
        lanes_h
    );
    let lane_y = |i: usize| lanes_top + i as f64 * (LANE + LANE_GAP);
    for (i, n) in tl.nodes.iter().enumerate() {
        let y = lane_y(i);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 8.0,
            y + 13.0,
            esc(n)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{LANE}" fill="#eeeeee"/>"##
        );
        for (h, f, t) in tl.holding.iter().filter(|h| &h.0 == n) {
            let _ = writeln!(
                s,
                r#"<rect x="{}" y="{y}" width="{}" height="{LANE}" fill="{}"/>"#,
                x(*f),
                (x(*t) - x(*f)).max(1.0),
                colour(&tl.nodes, h)
            );
        }
        for (t, _) in tl.announcements.iter().filter(|a| &a.1 == n) {
            let tx = x(*t);
            let _ = writeln!(
                s,
                r#"<line x1="{tx}" y1="{}" x2="{tx}" y2="{}" stroke="black" stroke-width="1.5"/>"#,
                y - 3.0,
                y + 6.0
            );
        }
    }
    let cy = lane_y(tl.nodes.len());
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end" font-weight="bold">client</text>"#,
        LEFT - 8.0,
        cy + 13.0
    );
    for (f, t, by) in &tl.client {
        let fill = by.as_deref().map_or(FAIL, |n| colour(&tl.nodes, n));
        let _ = writeln!(
            s,
            r#"<rect x="{}" y="{cy}" width="{}" height="{LANE}" fill="{fill}"/>"#,
            x(*f),
            (x(*t) - x(*f)).max(0.5)
        );
    }
    // Fault and heal markers.
    let bottom = lanes_top + lanes_h - 4.0;
    for (t, label, col) in [(w.fault, "fault", FAIL), (w.heal, "heal", "#2ca02c")] {
        let tx = x(t);
        let _ = writeln!(
            s,
            r#"<line x1="{tx}" y1="{}" x2="{tx}" y2="{bottom}" stroke="{col}" stroke-width="2" stroke-dasharray="5,3"/>"#,
            lanes_top - 6.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" fill="{col}" font-size="11">{label}</text>"#,
            tx + 3.0,
            bottom + 12.0
        );
    }
    // Axis: seconds relative to the fault.
    let span = (v1 - v0).as_secs_f64();
    let step = if span <= 12.0 {
        1.0
    } else if span <= 30.0 {
        2.0
    } else {
        5.0
    };
    let ay = bottom + 26.0;
    let f0 = w.fault.as_secs_f64();
    let mut k = ((v0.as_secs_f64() - f0) / step).ceil();
    while f0 + k * step <= v1.as_secs_f64() {
        let t = Duration::from_secs_f64((f0 + k * step).max(0.0));
        let tx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{tx}" y1="{}" x2="{tx}" y2="{}" stroke="#999999"/><text x="{tx}" y="{}" text-anchor="middle" font-size="10" fill="#555555">{:+}s</text>"##,
            ay - 12.0,
            ay - 8.0,
            ay + 2.0,
            k * step + 0.0
        );
        k += 1.0;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::measure::{Metrics, RunWindow};
    use crate::report::RunReport;
    use crate::runner::Timeline;

    fn s(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn failover_panel_shows_both_holders_the_red_gap_and_markers() {
        let w = RunWindow {
            start: s(1000),
            fault: s(2000),
            heal: s(6000),
            end: s(9000),
            count_from: s(1000),
        };
        let m = Metrics {
            gap_fault: s(3000),
            gap_after_heal: s(10),
            recover_after_heal: Some(Duration::ZERO),
            two_holder: Duration::ZERO,
            two_mac: Duration::ZERO,
            announcements: 2,
            leadership_changes: 1,
            end_holder: Some("n2".into()),
            end_ok: true,
        };
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        let tl = Timeline {
            window: w,
            nodes: nodes.clone(),
            holding: vec![
                ("n1".into(), s(0), s(2000)),
                ("n2".into(), s(5000), s(9000)),
            ],
            client: vec![
                (s(0), s(2000), Some("n1".into())),
                (s(2000), s(5010), None),
                (s(5010), s(9000), Some("n2".into())),
            ],
            announcements: vec![(s(5005), "n2".into())],
        };
        let out = render(&[RunOutcome {
            report: RunReport::new("crash", 1, "n1 <crashed>".into(), Some("n1".into()), &w, &m),
            timeline: tl,
        }]);
        assert!(out.starts_with("<svg") && out.trim_end().ends_with("</svg>"));
        assert!(out.contains(PALETTE[0]) && out.contains(PALETTE[1]));
        assert!(
            out.contains(&format!(r#"fill="{FAIL}"/>"#)),
            "red client segment"
        );
        assert!(out.contains("n1 &lt;crashed&gt;"), "escaped title");
        assert!(out.contains(">fault<") && out.contains(">heal<"));
        assert!(out.contains("+0s") && out.contains("-1s"));
    }
}
