//! kube-vip's BGP and routing-table variables through the built binary:
//! malformed settings exit 2 naming the variable (and, in a peer list, the
//! peer and the field); valid BGP settings for the control-plane VIP are
//! accepted, while the parts not wired in yet (Services over BGP,
//! routing-table mode) exit 2 saying the settings are valid; passwords
//! never reach the output. Only the child's environment is set, never this process's.

use std::process::Command;

/// Variables of a table row.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// What every run needs besides the variables under test.
const BASE: &[(&str, &str)] = &[
    ("address", "192.0.2.10"),
    ("vip_interface", "eth0"),
    ("vip_nodename", "node-1"),
];

/// `vipd check-config` with `BASE` and `pairs` as its whole environment:
/// (exit code, stdout, stderr).
fn check_config(pairs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vipd"))
        .arg("check-config")
        .env_clear()
        .envs(BASE.iter().chain(pairs).copied())
        .output()
        .expect("run vipd");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The env block of a kube-vip BGP static pod (`kube-vip manifest pod
/// --bgp ...`), with a password in the peer list.
const KUBE_VIP_BGP: &[(&str, &str)] = &[
    ("vip_arp", "false"),
    ("port", "6443"),
    ("cp_enable", "true"),
    ("cp_namespace", "kube-system"),
    ("bgp_enable", "true"),
    ("bgp_routerid", "192.0.2.11"),
    ("bgp_as", "65000"),
    ("bgp_peeraddress", ""),
    ("bgp_peerpass", ""),
    ("bgp_peeras", "65000"),
    (
        "bgp_peers",
        "192.0.2.1:65001:hunter2:false,[2001:db8::1]:65002::true:1179::true;300;300;3",
    ),
];

#[test]
fn a_valid_kube_vip_bgp_env_block_is_accepted_showing_the_redacted_settings() {
    let (code, stdout, stderr) = check_config(KUBE_VIP_BGP);
    assert_eq!(code, Some(0), "{stderr}");
    for needle in [
        "bgp-router-id",
        "192.0.2.11  (kube-vip env bgp_routerid)",
        "192.0.2.1:65001:<redacted>:false:179",
        "[2001:db8::1]:65002::true:1179::true;300;300;3",
        "bgp-hold-time",
        "30s  (default)",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in {stdout}");
    }
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
}

#[test]
fn bgp_for_services_is_accepted_with_kube_vips_variables() {
    let mut env = KUBE_VIP_BGP.to_vec();
    env.push(("svc_enable", "true"));
    let (code, stdout, stderr) = check_config(&env);
    assert_eq!(code, Some(0), "{stderr}");
    for needle in [
        "bgp_enable",
        "svc_enable",
        "192.0.2.1:65001:<redacted>:false:179",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in {stdout}");
    }
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
}

#[test]
fn each_malformed_bgp_variable_exits_2_naming_it_before_anything_else() {
    let peers = ("bgp_peers", "192.0.2.1:65001");
    // (variables over KUBE_VIP_BGP's, words stderr contains)
    let cases: &[(Pairs, &[&str])] = &[
        (
            &[("bgp_peers", "192.0.2.1:65001,[2001:db8::1]:x")],
            &[
                "bgp_peers",
                "peer 2 ([2001:db8::1]:x): field AS: 'x' is not a number",
            ],
        ),
        (
            &[("bgp_peers", "192.0.2.1:65001:hunter2:maybe")],
            &["peer 1 (192.0.2.1:65001:<redacted>:maybe): field multihop"],
        ),
        (
            &[("bgp_peers", "192.0.2.1:65001:::::true;300;300;0")],
            &["bgp_peers", "field BFD", "multiplier 0"],
        ),
        (
            &[("bgp_peers", "2001:db8::1:65001")],
            &["field address", "brackets"],
        ),
        (&[peers, ("bgp_as", "0")], &["bgp_as", "RFC 7607"]),
        (
            &[peers, ("bgp_routerid", "2001:db8::11")],
            &["bgp_routerid", "32 bits"],
        ),
        (
            &[peers, ("bgp_hold_time", "1")],
            &["bgp_hold_time", "RFC 4271"],
        ),
        (
            &[
                peers,
                ("bgp_hold_time", "6"),
                ("bgp_keepalive_interval", "6"),
            ],
            &["bgp_keepalive_interval", "1 to 5 seconds"],
        ),
        (
            &[peers, ("bgp_routerid", "")],
            &["bgp_routerid", "router ID"],
        ),
        (&[("bgp_peers", ",")], &["bgp_peers", "at least one peer"]),
        (
            &[peers, ("mpbgp_nexthop", "auto_sourceip")],
            &["mpbgp_nexthop", "bgp_sourceip"],
        ),
        (
            &[peers, ("vip_routingtable", "true")],
            &["one mode at a time"],
        ),
    ];
    for (extra, needles) in cases {
        let mut pairs = KUBE_VIP_BGP.to_vec();
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        let (code, stdout, stderr) = check_config(&pairs);
        assert_eq!(code, Some(2), "{extra:?}: {stderr}");
        assert!(stdout.is_empty(), "{extra:?}: {stdout}");
        assert!(!stderr.contains("not wired"), "{extra:?}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{extra:?}: {stderr}");
        for n in *needles {
            assert!(stderr.contains(n), "{extra:?}: {n:?} not in {stderr}");
        }
    }
}

#[test]
fn bgp_variables_with_bgp_off_are_validated_shown_and_reported_unused() {
    let (code, stdout, stderr) = check_config(&[
        ("bgp_peers", "192.0.2.1:65001:hunter2"),
        ("bgp_as", "65010"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("bgp-peers") && stdout.contains("192.0.2.1:65001:<redacted>:false:179"),
        "{stdout}"
    );
    assert!(stdout.contains("65010  (kube-vip env bgp_as)"), "{stdout}");
    assert!(
        stderr.contains("warning: BGP settings are validated but unused"),
        "{stderr}"
    );
    // No longer "not used by vipd": they are parsed now.
    assert!(!stderr.contains("not used by vipd"), "{stderr}");
    assert!(!format!("{stdout}{stderr}").contains("hunter2"));
    // zebra stays unused, one warning per variable.
    let (code, _, stderr) = check_config(&[("zebra_enable", "true")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("kube-vip variable zebra_enable is not used by vipd"),
        "{stderr}"
    );
}

#[test]
fn routing_table_mode_takes_kube_vips_names_and_the_issues_spellings() {
    let (code, stdout, stderr) = check_config(&[
        ("vip_routingtable", "true"),
        ("vip_routingtable_id", "1000"),
        ("vip_routingtable_protocol", "99"),
        ("vip_routingtabletype", "2"),
    ]);
    // The control-plane VIP in routing-table mode is wired (issue 14
    // item 5): accepted and shown.
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("not wired"), "{stderr}");
    for needle in [
        "= 1000  (kube-vip env vip_routingtable_id)",
        "= 99  (kube-vip env vip_routingtable_protocol)",
        "= 2 (local)  (kube-vip env vip_routingtabletype)",
        "= false  (default)",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in {stdout}");
    }
    // Services in this mode are wired too (kube-vip routes them the same
    // way): accepted and shown.
    for extra in [("svc_enable", "true"), ("VIPD_SERVICES", "true")] {
        let (code, stdout, stderr) = check_config(&[("vip_routingtable", "true"), extra]);
        assert_eq!(code, Some(0), "{extra:?}: {stderr}");
        assert!(
            stdout.contains("routing-table-id               = 198  (default)"),
            "{extra:?}: {stdout}"
        );
    }
    // vip_leaderelection=false is kube-vip's every-node mode here, not
    // an ignored variable.
    let (code, _, stderr) = check_config(&[
        ("vip_routingtable", "true"),
        ("vip_leaderelection", "false"),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        !stderr.contains("vip_leaderelection=false is ignored"),
        "{stderr}"
    );
    let (code, _, stderr) =
        check_config(&[("vip_routingtable", "true"), ("vip_routingtableid", "-1")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("vip_routingtableid") && !stderr.contains("not wired"),
        "{stderr}"
    );
}

#[test]
fn the_withdraw_drain_is_configurable_and_bounded() {
    let (code, stdout, stderr) = check_config(KUBE_VIP_BGP);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("withdraw-drain") && stdout.contains("= 0.5s  (default)"),
        "{stdout}"
    );
    let mut env = KUBE_VIP_BGP.to_vec();
    env.push(("VIPD_WITHDRAW_DRAIN", "0"));
    let (code, stdout, stderr) = check_config(&env);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("(env VIPD_WITHDRAW_DRAIN)"), "{stdout}");
    let mut env = KUBE_VIP_BGP.to_vec();
    env.push(("VIPD_WITHDRAW_DRAIN", "31"));
    let (code, _, stderr) = check_config(&env);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("VIPD_WITHDRAW_DRAIN") && stderr.contains("0 to 30"),
        "{stderr}"
    );
}
