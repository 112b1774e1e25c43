//! `vipd lab --mode bgp` end to end: the real binary runs two BGP
//! scenarios against a real FRR router in its own namespaces; every run
//! must see the route change, every path come back and no stale route,
//! and the lab must leave no namespace behind. Only liveness is asserted
//! (the numbers are the lab's report, docs/BENCHMARKS.md).
//!
//! The vipd binary is another package's: it is looked up next to this
//! test's directory (`target/<profile>/vipd`) or taken from `VIPD_BIN`;
//! build it first with `cargo build -p vipd`. The test skips, saying why,
//! when vipd is not built, when not root, or when FRR is missing.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::process::Command;

/// `VIPD_BIN`, or `target/<profile>/vipd` next to `target/<profile>/deps/`.
fn vipd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VIPD_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("vipd");
    p.is_file().then_some(p)
}

/// True when `vipd lab --help` knows `--mode` (an older binary left in
/// the target directory would fail for the wrong reason).
fn has_bgp_lab(vipd: &std::path::Path) -> bool {
    Command::new(vipd)
        .args(["lab", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--mode"))
}

fn skip_reason() -> Option<&'static str> {
    match vipd_bin() {
        None => return Some("the vipd binary is not built (cargo build -p vipd, or set VIPD_BIN)"),
        Some(v) if !has_bgp_lab(&v) => {
            return Some(
                "the vipd binary predates `vipd lab --mode bgp`: rebuild it (cargo build -p vipd)",
            )
        }
        Some(_) => {}
    }
    if !netlab::is_root() {
        return Some("needs root (network namespaces)");
    }
    if !netlab::router::RouterKind::Frr.installed() {
        return Some("FRR is not installed (apt-get install frr)");
    }
    None
}

#[test]
fn bgp_lab_refuses_arp_lab_options_without_touching_anything() {
    let Some(vipd) = vipd_bin().filter(|v| has_bgp_lab(v)) else {
        eprintln!(
            "SKIPPED: no vipd binary with the BGP lab (cargo build -p vipd, or set VIPD_BIN)"
        );
        return;
    };
    let out = Command::new(vipd)
        .args(["lab", "run", "--mode", "bgp", "--impl", "keepalived"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--impl is an option of the ARP lab"));
}

#[test]
fn bgp_lab_runs_graceful_and_dead_bfd_and_cleans_up() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let dir = std::env::temp_dir().join(netlab::unique_prefix("bgplabtest"));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bgp.json");
    let out = Command::new(vipd_bin().unwrap())
        .args([
            "lab",
            "run",
            "--mode",
            "bgp",
            "--scenarios",
            "graceful,dead-bfd",
            "--nodes",
            "2",
            "--json",
        ])
        .arg(&json)
        .arg("--run-dir")
        .arg(dir.join("logs"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "lab failed: {:?}", out.status);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["schema"], "vipd-lab-bgp/1");
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    for r in runs {
        assert!(r["route_change_ms"].is_u64(), "{r}");
        assert!(r["recover_ms"].is_u64(), "{r}");
        assert_eq!(r["stale_routes"], 0, "{r}");
    }
    assert_eq!(doc["final"]["stale_routes"], 0);
    let prefix = stderr
        .split("namespaces ")
        .nth(1)
        .and_then(|s| s.split("-*").next())
        .unwrap_or_else(|| panic!("no namespace prefix in: {stderr}"))
        .to_string();
    let left = netlab::run_ok("ip", &["netns", "list"]).unwrap();
    assert!(!left.contains(&prefix), "namespaces left behind: {left}");
    let _ = std::fs::remove_dir_all(&dir);
}
