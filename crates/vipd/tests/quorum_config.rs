//! Quorum-mode configuration (SPEC §5a, issue 12): `--coordination`,
//! `--peers`, `--peer-key-file`, the quorum timings, `--backend none` and
//! `vipd witness`. Every refusal must come before anything is touched and
//! name the option (exit 2 in `main`).

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use vipd::config::{parse_command_with, Backend, Command, Config, Coordination, HostFacts};

fn argv(line: &str) -> Vec<String> {
    std::iter::once("vipd")
        .chain(line.split_whitespace())
        .map(String::from)
        .collect()
}

/// A key file that lives as long as the test.
struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new(tag: &str, content: &[u8]) -> KeyFile {
        let path = std::env::temp_dir().join(format!(
            "vipd-quorum-config-{tag}-{}.key",
            std::process::id()
        ));
        let mut f = std::fs::File::create(&path).expect("create key file");
        f.write_all(content).expect("write key file");
        KeyFile(path)
    }
    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const PEERS: &str = "n1=192.0.2.11:7480,n2=192.0.2.12,n3=192.0.2.13:7481";

fn host() -> HostFacts {
    HostFacts {
        hostname: Some("n1".into()),
        service_account_namespace_file: None,
        kubeadm_ca_file: None,
    }
}

fn run(line: &str, pairs: &[(&str, &str)]) -> Result<Config, String> {
    let mut env: HashMap<String, String> = [("address", "192.0.2.100"), ("vip_interface", "eth0")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    match parse_command_with(&argv(line), &env, &host()) {
        Ok(Command::Run(c)) => Ok(*c),
        Ok(other) => Err(format!("not run: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn quorum_mode_resolves_peers_key_timings_and_needs_no_store() {
    let key = KeyFile::new("ok", b"0123456789abcdef0123456789abcdef\n");
    let c = run(
        &format!(
            "run --coordination quorum --peers {PEERS} --peer-key-file {}",
            key.path()
        ),
        &[],
    )
    .expect("valid");
    let Coordination::Quorum(q) = &c.coordination else {
        panic!("not quorum: {:?}", c.coordination)
    };
    assert_eq!(q.voters.len(), 3);
    assert_eq!(
        q.own_addr("n1").map(|a| a.to_string()).as_deref(),
        Some("192.0.2.11:7480")
    );
    assert_eq!(
        q.own_addr("n2").map(|a| a.port()),
        Some(vipd_quorum::DEFAULT_PORT)
    );
    // The trailing newline is not part of the key.
    assert_eq!(q.key.bytes(), b"0123456789abcdef0123456789abcdef");
    assert!(
        !format!("{q:?}").contains("0123456789abcdef"),
        "key printed"
    );
    assert_eq!(q.timings, vipd_quorum::Timings::default());
    // No kubeconfig, no service account, no etcd endpoints: no store.
    assert_eq!(c.backend, Backend::None);
    // An explicit etcd backend (or endpoints alone) is kept, for the mirror.
    let c = run(
        &format!(
            "run --coordination quorum --peers {PEERS} --peer-key-file {} --etcd-endpoints http://192.0.2.2:2379",
            key.path()
        ),
        &[],
    )
    .expect("valid");
    assert!(matches!(c.backend, Backend::Etcd(_)), "{:?}", c.backend);
    // Environment spellings and custom timings.
    let c = run(
        "run",
        &[
            ("VIPD_COORDINATION", "quorum"),
            ("VIPD_PEERS", PEERS),
            ("VIPD_PEER_KEY_FILE", &key.path()),
            ("VIPD_QUORUM_PROMISE", "1.2"),
            ("VIPD_QUORUM_HEARTBEAT", "0.2"),
            ("k8s_config_file", "/etc/kubernetes/admin.conf"),
        ],
    )
    .expect("valid");
    let Coordination::Quorum(q) = &c.coordination else {
        panic!("not quorum")
    };
    assert_eq!(q.timings.promise(), Duration::from_millis(1200));
    assert_eq!(q.timings.heartbeat(), Duration::from_millis(200));
    assert_eq!(c.backend, Backend::Kubernetes);
}

#[test]
fn lease_mode_stays_the_default_and_refuses_backend_none() {
    let c = run(
        "run --backend etcd --etcd-endpoints http://192.0.2.2:2379",
        &[],
    )
    .expect("valid");
    assert_eq!(c.coordination, Coordination::Lease);
    let err = run("run --backend none", &[]).expect_err("backend none in lease mode");
    assert!(
        err.contains("--backend") && err.contains("--coordination quorum"),
        "{err}"
    );
}

#[test]
fn quorum_refusals_name_the_option() {
    let key = KeyFile::new("refusals", b"0123456789abcdef");
    let short = KeyFile::new("short", b"tooshort\n");
    let k = key.path();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("run --coordination quorum --peers {PEERS}"),
            vec!["--peer-key-file", "VIPD_PEER_KEY_FILE", "openssl rand"],
        ),
        (
            format!("run --coordination quorum --peer-key-file {k}"),
            vec!["--peers", "VIPD_PEERS"],
        ),
        (
            format!("run --coordination quorum --peers n2=192.0.2.12,n3=192.0.2.13 --peer-key-file {k}"),
            vec!["--peers", "\"n1\""],
        ),
        (
            format!("run --coordination quorum --peers n1=192.0.2.11,n1=192.0.2.12 --peer-key-file {k}"),
            vec!["--peers", "repeated"],
        ),
        (
            format!("run --coordination quorum --peers n1=nohost:1 --peer-key-file {k}"),
            vec!["--peers", "NAME=IP[:PORT]"],
        ),
        (
            format!("run --coordination quorum --peers {PEERS} --peer-key-file {}", short.path()),
            vec!["--peer-key-file", "at least 16 bytes", "got 8"],
        ),
        (
            format!("run --coordination quorum --peers {PEERS} --peer-key-file /nonexistent/vipd.key"),
            vec!["--peer-key-file", "/nonexistent/vipd.key"],
        ),
        (
            format!("run --coordination quorum --peers {PEERS} --peer-key-file {k} --quorum-heartbeat 0.3"),
            vec!["--quorum-heartbeat", "hold window"],
        ),
        (
            "run --coordination raft".to_string(),
            vec!["--coordination", "lease or quorum"],
        ),
    ];
    for (line, needles) in cases {
        let err = run(&line, &[]).expect_err(&line);
        for n in needles {
            assert!(err.contains(n), "{line}: {err:?} does not mention {n:?}");
        }
    }
}

#[test]
fn witness_takes_the_same_peers_and_marks_only_itself() {
    let key = KeyFile::new("witness", b"0123456789abcdef0123456789abcdef");
    let line = format!(
        "witness --node-name n3 --peers {PEERS} --peer-key-file {} --prometheus-server 192.0.2.13:2112",
        key.path()
    );
    let Ok(Command::Witness(w)) = parse_command_with(&argv(&line), &HashMap::new(), &host()) else {
        panic!("not a witness")
    };
    assert_eq!(w.node_name, "n3");
    assert_eq!(
        w.http_addr.map(|a| a.to_string()).as_deref(),
        Some("192.0.2.13:2112")
    );
    let roles: Vec<(String, vipd_quorum::VoterRole)> = w
        .quorum
        .voters
        .iter()
        .map(|v| (v.name.clone(), v.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("n1".to_string(), vipd_quorum::VoterRole::Node),
            ("n2".to_string(), vipd_quorum::VoterRole::Node),
            ("n3".to_string(), vipd_quorum::VoterRole::Witness),
        ]
    );
    // Without a key it refuses, as `run` does.
    let err = parse_command_with(
        &argv(&format!("witness --node-name n3 --peers {PEERS}")),
        &HashMap::new(),
        &host(),
    )
    .expect_err("witness without a key")
    .to_string();
    assert!(err.contains("--peer-key-file"), "{err}");
}

#[test]
fn services_on_the_quorum_run_in_bgp_and_routing_table_mode() {
    let key = KeyFile::new("rt", b"0123456789abcdef0123456789abcdef\n");
    let base = format!(
        "run --coordination quorum --peers {PEERS} --peer-key-file {} --address 192.0.2.100 --services --backend kubernetes --kubeconfig /etc/kubernetes/admin.conf",
        key.path()
    );
    for (flags, svc_election) in [
        (
            "--bgp --bgpRouterID 192.0.2.11 --bgppeers 192.0.2.1:65001",
            false,
        ),
        ("--table", false),
    ] {
        let c = run(&format!("{base} {flags}"), &[]).unwrap_or_else(|e| panic!("{flags}: {e}"));
        // Without svc_election every eligible node announces Services
        // (no coordination); the VIP has one holder: the quorum's.
        assert!(c.services_ecmp() != svc_election, "{flags}");
        match (&c.bgp, &c.routing_table) {
            (Some(b), _) => assert!(b.leader_election, "{flags}"),
            (None, Some(t)) => assert!(t.leader_election, "{flags}"),
            (None, None) => panic!("{flags}: no mode"),
        }
    }
    let c = run(
        &format!("{base} --bgp --bgpRouterID 192.0.2.11 --bgppeers 192.0.2.1:65001"),
        &[("svc_election", "true")],
    )
    .expect("svc_election on the quorum");
    assert!(
        !c.services_ecmp(),
        "svc_election: one owner per address (grants)"
    );
}
