//! `vipd lab` end to end: the real binary runs every scenario once with
//! short holds, in its own namespaces; every run must end with exactly one
//! holder serving the client and never two holders (SPEC R1, §8), and the
//! lab must leave no namespace behind. One short run with `--impl
//! keepalived` checks the comparison implementation works end to end; two
//! with `--backend kubernetes` (the in-repo API test server,
//! `vipd-kube-testserver`, which must have been built next to vipd:
//! `cargo build -p vipd -p vipd-kube-testserver`, as `cargo test
//! --workspace` does) check the Kubernetes backend and Services mode. Only
//! liveness is asserted (end state, never two holders), not timings.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vipd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vipd"))
}

/// The test server binary next to vipd; panics saying how to build it
/// (cargo cannot build another package's binary from inside a test: it
/// holds the build directory's lock while tests run).
fn require_testserver() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_vipd")).with_file_name("vipd-kube-testserver");
    assert!(
        p.is_file(),
        "{} is missing: build it first with `cargo build -p vipd-kube-testserver` \
         (same profile as this test), or run `cargo test --workspace`",
        p.display()
    );
    p
}

/// Runs `vipd lab run ARGS --json DIR/lab.json --run-dir DIR/logs`;
/// returns the output, the JSON document and the namespace prefix.
fn lab_run(dir: &Path, args: &[&str]) -> (Output, serde_json::Value, String) {
    std::fs::create_dir_all(dir).unwrap();
    let json = dir.join("lab.json");
    let out = vipd()
        .args(["lab", "run"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--run-dir")
        .arg(dir.join("logs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    println!("{stderr}{stdout}");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no JSON ({e}); {stderr}"));
    let doc = serde_json::from_str(&text).unwrap();
    let prefix = stderr
        .split("namespaces ")
        .nth(1)
        .and_then(|s| s.split("-*").next())
        .unwrap_or_else(|| panic!("no namespace prefix in: {stderr}"))
        .to_string();
    (out, doc, prefix)
}

fn assert_no_namespace_left(prefix: &str) {
    let left = netlab::run_ok("ip", &["netns", "list"]).unwrap();
    assert!(!left.contains(prefix), "namespaces left behind: {left}");
}

#[test]
fn lab_refuses_a_real_kube_apiserver_instead_of_pretending() {
    let out = vipd()
        .args(["lab", "run", "--backend", "kubernetes"])
        .env("KUBE_APISERVER", "/usr/local/bin/kube-apiserver")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("KUBE_APISERVER") && err.contains("cannot run a real kube-apiserver"),
        "{err}"
    );
}

#[test]
fn lab_rejects_services_without_the_kubernetes_backend() {
    for args in [&["--services", "5"][..], &["--scenarios", "svc-crash"][..]] {
        let out = vipd().args(["lab", "run"]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--backend kubernetes"), "{err}");
    }
}

#[test]
fn lab_rejects_an_unknown_scenario_before_touching_anything() {
    let out = vipd()
        .args(["lab", "run", "--scenarios", "sigterm,bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bogus") && err.contains("api-cut"), "{err}");
}

#[test]
fn lab_runs_every_scenario_with_one_holder_at_the_end_and_never_two() {
    netlab::require_root!();
    let dir = std::env::temp_dir().join(format!("vipd-lab-ci-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("lab.json");
    let svg = dir.join("lab.svg");
    let out = vipd()
        .args([
            "lab",
            "run",
            "--scenarios",
            "all",
            "--runs",
            "1",
            "--hold",
            "1",
            "--settle-timeout",
            "20",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .arg("--run-dir")
        .arg(dir.join("logs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}{stdout}");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no JSON ({e}); {stderr}"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sigterm",
            "sigkill-restart",
            "crash",
            "link-flap",
            "api-cut",
            "api-down",
            "partition",
            "loss",
            "vip-deleted",
            "stale-vip",
            "isolated"
        ]
    );
    for r in runs {
        assert_eq!(
            r["end_ok"], true,
            "end state not one holder serving the client: {r}"
        );
        assert_eq!(r["two_holder_ms"], 0, "two holders: {r}");
        assert!(
            r["recover_after_heal_ms"].is_u64(),
            "never served again after the heal: {r}"
        );
    }
    assert!(
        out.status.success(),
        "exit status {:?} although every run passed",
        out.status
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.matches("#1:").count() >= 1);
    // The per-run prefix is printed; nothing with it may remain.
    let prefix = stderr
        .split("namespaces ")
        .nth(1)
        .and_then(|s| s.split("-*").next())
        .unwrap_or_else(|| panic!("no namespace prefix in: {stderr}"));
    let left = netlab::run_ok("ip", &["netns", "list"]).unwrap();
    assert!(!left.contains(prefix), "namespaces left behind: {left}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_with_keepalived_ends_sigterm_and_crash_with_one_holder_serving() {
    netlab::require_root!();
    // Without keepalived the lab exits 2 naming the package (CI installs it,
    // scripts/install-deps.sh too); the missing JSON below shows that message.
    let dir = std::env::temp_dir().join(format!("vipd-lab-ka-ci-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("lab.json");
    let out = vipd()
        .args([
            "lab",
            "run",
            "--impl",
            "keepalived",
            "--scenarios",
            "sigterm,crash",
            "--runs",
            "1",
            "--hold",
            "1",
            "--settle-timeout",
            "20",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--run-dir")
        .arg(dir.join("logs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}{stdout}");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| panic!("no JSON ({e}); {stderr}"));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["settings"]["implementation"], "keepalived");
    assert_eq!(
        doc["settings"]["advert_int_s"], 1.0,
        "a third of the 3 s lease"
    );
    let runs = doc["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sigterm", "crash"]);
    for r in runs {
        // Two-holder time is keepalived's to report, not ours to assert.
        assert_eq!(r["end_ok"], true, "not one holder serving the client: {r}");
        assert!(r["two_holder_ms"].is_u64(), "{r}");
    }
    // keepalived's configuration was generated per node.
    let conf = std::fs::read_to_string(dir.join("logs").join("n1.keepalived.conf")).unwrap();
    assert!(conf.contains("nopreempt") && conf.contains("192.0.2.100/32 dev eth0"));
    let prefix = stderr
        .split("namespaces ")
        .nth(1)
        .and_then(|s| s.split("-*").next())
        .unwrap_or_else(|| panic!("no namespace prefix in: {stderr}"));
    let left = netlab::run_ok("ip", &["netns", "list"]).unwrap();
    assert!(!left.contains(prefix), "namespaces left behind: {left}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_with_the_kubernetes_backend_ends_crash_and_api_down_with_one_holder_serving() {
    netlab::require_root!();
    require_testserver();
    let dir = std::env::temp_dir().join(format!("vipd-lab-kube-ci-{}", std::process::id()));
    let (out, doc, prefix) = lab_run(
        &dir,
        &[
            "--backend",
            "kubernetes",
            "--scenarios",
            "crash,api-down",
            "--hold",
            "1",
            "--settle-timeout",
            "30",
        ],
    );
    assert_eq!(doc["settings"]["backend"], "kubernetes");
    let runs = doc["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["crash", "api-down"]);
    for r in runs {
        assert_eq!(r["end_ok"], true, "not one holder serving the client: {r}");
        assert_eq!(r["two_holder_ms"], 0, "two holders: {r}");
    }
    assert!(
        runs[1]["fault"]
            .as_str()
            .unwrap()
            .contains("kube API test server"),
        "api-down acted on the test server: {}",
        runs[1]
    );
    // vipd read the kubeconfig the test server wrote.
    assert!(dir.join("logs/kube/kubeconfig").is_file());
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert_no_namespace_left(&prefix);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_services_scenarios_keep_every_address_held_once_and_never_two() {
    netlab::require_root!();
    require_testserver();
    let dir = std::env::temp_dir().join(format!("vipd-lab-svc-ci-{}", std::process::id()));
    let (out, doc, prefix) = lab_run(
        &dir,
        &[
            "--backend",
            "kubernetes",
            "--services",
            "6",
            "--hold",
            "1",
            "--settle-timeout",
            "30",
        ],
    );
    assert_eq!(doc["settings"]["services"], 6);
    let runs = doc["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["svc-crash", "svc-api-down", "svc-link-flap"]);
    for r in runs {
        assert_eq!(r["end_ok"], true, "VIP: not one holder serving: {r}");
        assert_eq!(r["two_holder_ms"], 0, "VIP: two holders: {r}");
        let s = &r["services"];
        assert_eq!(s["addresses"], 6, "{r}");
        assert_eq!(s["held_once_at_end"], 6, "not every address held once: {r}");
        assert_eq!(
            s["two_holder_ms"], 0,
            "a Service address had two holders: {r}"
        );
        let sampled = r["addresses"].as_array().unwrap();
        assert_eq!(sampled.len(), 4, "four sampled addresses: {r}");
        for a in sampled {
            assert!(a["address"].as_str().unwrap().starts_with("203.0.113."));
            assert_eq!(a["end_ok"], true, "sampled address not served: {a}");
            assert_eq!(a["two_holder_ms"], 0, "{a}");
            assert!(a["gap_during_fault_ms"].is_u64(), "{a}");
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Services (6 LoadBalancer Services"),
        "{stdout}"
    );
    assert!(out.status.success(), "exit status {:?}", out.status);
    assert_no_namespace_left(&prefix);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_refuses_a_witness_outside_two_node_quorum_mode_and_several_modes_in_one_run() {
    for (args, says) in [
        (&["--witness", "--nodes", "2"][..], "--coordination quorum"),
        (
            &["--witness", "--nodes", "3", "--coordination", "quorum"][..],
            "--nodes 2",
        ),
        (&["--coordination", "lease,quorum"][..], "vipd lab bench"),
        (&["--coordination", "raft"][..], "lease, quorum"),
        (
            &["--impl", "keepalived", "--coordination", "quorum"][..],
            "VRRP",
        ),
    ] {
        let out = vipd().args(["lab", "run"]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn lab_in_quorum_mode_with_a_witness_survives_its_faults_and_reports_the_coordination() {
    netlab::require_root!();
    let dir = std::env::temp_dir().join(format!("vipd-lab-quorum-ci-{}", std::process::id()));
    let (out, doc, prefix) = lab_run(
        &dir,
        &[
            "--coordination",
            "quorum",
            "--nodes",
            "2",
            "--witness",
            "--scenarios",
            "witness-down,peer-partition,api-down",
            "--hold",
            "1",
            "--settle-timeout",
            "20",
        ],
    );
    let s = &doc["settings"];
    assert_eq!(s["coordination"], "quorum", "{s}");
    assert_eq!(s["quorum"]["voters"], 3, "{s}");
    assert_eq!(s["quorum"]["witness"], true, "{s}");
    let runs = doc["runs"].as_array().unwrap();
    let names: Vec<&str> = runs
        .iter()
        .map(|r| r["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["witness-down", "peer-partition", "api-down"]);
    for r in runs {
        assert_eq!(r["end_ok"], true, "not one holder serving the client: {r}");
        assert_eq!(r["two_holder_ms"], 0, "{r}");
        assert_eq!(r["two_mac_ms"], 0, "{r}");
    }
    // The peer cut moved the holder; the witness dying did not.
    assert_eq!(runs[0]["leadership_changes"], 0, "{}", runs[0]);
    assert_eq!(runs[1]["leadership_changes"], 1, "{}", runs[1]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Every voter got the same key file, and the witness ran.
    let logs = dir.join("logs");
    assert!(logs.join("peer.key").is_file());
    let w = std::fs::read_to_string(logs.join("w.log")).unwrap();
    assert!(w.contains("witness --node-name w"), "{w}");
    assert_no_namespace_left(&prefix);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lab_in_lease_mode_reports_the_peer_scenarios_as_not_applicable() {
    netlab::require_root!();
    let dir = std::env::temp_dir().join(format!("vipd-lab-na-ci-{}", std::process::id()));
    let (out, doc, prefix) = lab_run(
        &dir,
        &[
            "--scenarios",
            "peer-partition,witness-down,vip-deleted",
            "--hold",
            "1",
        ],
    );
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "only vip-deleted runs: {runs:?}");
    assert_eq!(runs[0]["scenario"], "vip-deleted");
    let na: Vec<&str> = doc["not_applicable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(na, ["peer-partition", "witness-down"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 runs, 0 failed, 2 not applicable"),
        "{stdout}"
    );
    // Lease runs record no coordination (their documents are as before).
    assert!(doc["settings"].get("coordination").is_none());
    assert_no_namespace_left(&prefix);
    let _ = std::fs::remove_dir_all(&dir);
}
