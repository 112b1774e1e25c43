//! kube-vip's command-line flags (kube-vip's `cmd/kube-vip.go`, every
//! persistent flag of the root command, so `manager` and `manifest` take
//! them): each is accepted with kube-vip's spelling on `run`,
//! `check-config` and `manifest pod|daemonset`, and either sets the vipd
//! option it maps onto, is ignored with one warning naming it, or is
//! refused with exit 2 naming it. No test touches the process environment.

use std::collections::HashMap;
use std::process::Command as Process;

use vipd::config::{parse_command_with, Command, Config, ConfigError, HostFacts, ManifestRequest};

/// The subcommands that take the daemon's options.
const SUBCOMMANDS: &[&str] = &["run", "check-config", "manifest pod", "manifest daemonset"];

/// Enough for a valid configuration; flags under test come after it.
const BASE: &str = "--address 192.0.2.10 --interface eth0 --node-name node-1";

fn argv(line: &str) -> Vec<String> {
    std::iter::once("vipd")
        .chain(line.split_whitespace())
        .map(String::from)
        .collect()
}

/// `subcommand BASE flags` parsed with an empty environment, as the
/// configuration it resolves to.
fn parse(subcommand: &str, flags: &str) -> Result<Config, ConfigError> {
    parse_with(subcommand, BASE, flags)
}

fn parse_with(subcommand: &str, base: &str, flags: &str) -> Result<Config, ConfigError> {
    let line = format!("{subcommand} {base} {flags}");
    match parse_command_with(&argv(&line), &HashMap::new(), &HostFacts::default())? {
        Command::Run(c) | Command::CheckConfig(c) => Ok(*c),
        Command::Manifest(ManifestRequest::Pod { config, .. })
        | Command::Manifest(ManifestRequest::DaemonSet { config, .. }) => Ok(*config),
        other => panic!("{line}: {other:?}"),
    }
}

/// The effective value `check-config` shows for option `name`.
fn setting(c: &Config, name: &str) -> String {
    c.settings
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.value.clone())
        .unwrap_or_else(|| panic!("no setting {name}: {:?}", c.settings))
}

/// The built binary with `args`: (exit code, stdout, stderr).
fn vipd(args: &str) -> (Option<i32>, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_vipd"))
        .args(args.split_whitespace())
        .env_clear()
        .output()
        .expect("run vipd");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kube_vip_flags_that_map_set_the_vipd_option_on_every_subcommand() {
    // (kube-vip flags, vipd option, effective value as check-config shows it)
    let rows: &[(&str, &str, &str)] = &[
        ("--vip 192.0.2.20", "address", "192.0.2.20"),
        ("--vipSubnet 24", "subnet", "/24"),
        ("--cidr 25", "subnet", "/25"),
        ("--nodeName node-7", "node-name", "node-7"),
        ("--port 7443", "api-port", "7443"),
        ("--arp=false", "arp", "false"),
        ("--leaseName vip-lock", "lease-name", "vip-lock"),
        // The three together: each alone could break R1's timing rule.
        ("--leaseDuration 5 --leaseRenewDuration 3 --leaseRetry 1", "lease-duration", "5s"),
        ("--leaseDuration 5 --leaseRenewDuration 3 --leaseRetry 1", "renew-deadline", "3s"),
        ("--leaseDuration 5 --leaseRenewDuration 3 --leaseRetry 1", "retry-period", "1s"),
        ("--namespace infra", "lease-namespace", "infra"),
        ("-n infra2", "lease-namespace", "infra2"),
        ("--log 5", "log-level", "debug"),
        ("--controlplane", "control-plane", "true"),
        ("--services", "services", "true"),
        (
            "--services --serviceInterface eth2",
            "services-interface",
            "eth2",
        ),
        ("--services --lbClassOnly", "lb-class-only", "true"),
        (
            "--services --lbClassName example.com/lb",
            "lb-class-name",
            "example.com/lb",
        ),
        (
            "--prometheusHTTPServer 127.0.0.1:9100",
            "prometheus-server",
            "127.0.0.1:9100",
        ),
        ("--k8sConfigPath /etc/vipd/kubeconfig", "kubeconfig", "/etc/vipd/kubeconfig"),
        (
            "--leaderElectionType etcd --etcdEndpoints http://192.0.2.2:2379",
            "backend",
            "etcd",
        ),
        (
            "--leaderElectionType etcd --etcdEndpoints http://192.0.2.2:2379 --etcdCACert /pki/ca.crt",
            "etcd-ca-cert",
            "/pki/ca.crt",
        ),
    ];
    for sub in SUBCOMMANDS {
        for (flags, name, want) in rows {
            // kube-vip's spelling instead of vipd's, not both.
            let base = match *name {
                "address" => "--interface eth0 --node-name node-1",
                "node-name" => "--address 192.0.2.10 --interface eth0",
                _ => BASE,
            };
            let c = parse_with(sub, base, flags).unwrap_or_else(|e| panic!("{sub} {flags}: {e}"));
            assert_eq!(setting(&c, name), *want, "{sub} {flags}");
            assert!(c.warnings.is_empty(), "{sub} {flags}: {:?}", c.warnings);
        }
    }
}

#[test]
fn check_config_prints_the_values_kube_vip_spellings_set() {
    let (code, stdout, stderr) = vipd(
        "check-config --interface eth0 --nodeName node-1 --vip 192.0.2.30 --vipSubnet 28 \
         --leaseDuration 6 --leaseRenewDuration 4 --leaseRetry 1 -n infra --services \
         --serviceInterface eth3 --lbClassOnly --lbClassName example.com/lb --log 5",
    );
    assert_eq!(code, Some(0), "{stderr}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} line:\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("address"), "address = 192.0.2.30 (flag)");
    assert_eq!(line("subnet"), "subnet = /28 (flag)");
    assert_eq!(line("lease-duration"), "lease-duration = 6s (flag)");
    assert_eq!(line("renew-deadline"), "renew-deadline = 4s (flag)");
    assert_eq!(line("retry-period"), "retry-period = 1s (flag)");
    assert_eq!(line("lease-namespace"), "lease-namespace = infra (flag)");
    assert_eq!(
        line("services-interface"),
        "services-interface = eth3 (flag)"
    );
    assert_eq!(line("lb-class-only"), "lb-class-only = true (flag)");
    assert_eq!(
        line("lb-class-name"),
        "lb-class-name = example.com/lb (flag)"
    );
    assert_eq!(line("log-level"), "log-level = debug (flag)");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn kube_vip_flags_without_meaning_are_accepted_with_one_warning_naming_them() {
    // (flags, the flag the warning names)
    let rows: &[(&str, &str)] = &[
        ("--lbPort 6443", "--lbPort"),
        ("--lbForwardingMethod local", "--lbForwardingMethod"),
        ("--mirrorDestInterface eth9", "--mirrorDestInterface"),
        ("--leaderElection=false", "--leaderElection=false"),
        ("--zebra", "--zebra"),
        ("--zebraUrl unix:/var/run/frr/zserv.api", "--zebraUrl"),
        ("--zebraVersion 6", "--zebraVersion"),
        ("--zebraSoftwareName frr8.3", "--zebraSoftwareName"),
        ("--autodetectcp", "--autodetectcp"),
        ("--servicesElection", "--servicesElection"),
        ("--enableNodeLabeling", "--enableNodeLabeling"),
        ("--servicesLeaseName plndr-svcs-lock", "--servicesLeaseName"),
        ("--dnsMode first", "--dnsMode"),
        ("--enableEndpoints", "--enableEndpoints"),
        (
            "--loInterfaceGlobalScope=false",
            "--loInterfaceGlobalScope=false",
        ),
        ("--healthCheckPort 8080", "--healthCheckPort"),
    ];
    for sub in SUBCOMMANDS {
        for (flags, named) in rows {
            let c = parse(sub, flags).unwrap_or_else(|e| panic!("{sub} {flags}: {e}"));
            assert_eq!(c.warnings.len(), 1, "{sub} {flags}: {:?}", c.warnings);
            let w = &c.warnings[0];
            assert!(
                w.starts_with(&format!("kube-vip flag {named} is ignored: ")),
                "{sub} {flags}: {w}"
            );
            assert!(!w.contains("s3cret"), "a value may be a secret: {w}");
        }
    }
    // kube-vip's defaults, and the values vipd behaves the same with: silent.
    for flags in [
        "--leaderElection",
        "--leaderElection=true",
        "--lbClassNameLegacyHandling",
        "--loInterfaceGlobalScope",
        "--bgp=false --table=false --wireguard=false --ddns=false --enableLoadBalancer=false",
        "--servicesElection=false --enableNodeLabeling=false --annotations=",
    ] {
        let c = parse("run", flags).unwrap_or_else(|e| panic!("{flags}: {e}"));
        assert!(c.warnings.is_empty(), "{flags}: {:?}", c.warnings);
    }
    // --leaderElection=false says what vip_leaderelection=false says.
    let flag = parse("run", "--leaderElection=false").expect("valid");
    let env: HashMap<String, String> = [
        ("address", "192.0.2.10"),
        ("vip_interface", "eth0"),
        ("vip_leaderelection", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let var =
        Config::from_sources_with_hostname(&argv("run"), &env, Some("n".into())).expect("valid");
    let reason = |w: &str| w.split_once(" is ignored: ").map(|(_, r)| r.to_string());
    assert_eq!(reason(&flag.warnings[0]), reason(&var.warnings[0]));
    assert!(
        flag.warnings[0].contains("always elects"),
        "{:?}",
        flag.warnings
    );
}

/// kube-vip flags that select something vipd has not built.
const REFUSED: &[&str] = &[
    "--wireguard",
    "--enableLoadBalancer",
    "--ddns",
    "--lbClassNameLegacyHandling=false",
    "--onlyAllowTrafficServicePorts",
    "--disableServiceUpdates",
    "--config-file /etc/kube-vip/config.yaml",
];

#[test]
fn kube_vip_flags_for_modes_vipd_has_not_built_are_refused_naming_the_flag() {
    for sub in SUBCOMMANDS {
        for flags in REFUSED {
            let name = flags.split(['=', ' ']).next().unwrap_or_default();
            match parse(sub, flags) {
                Err(e @ ConfigError::Unsupported { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(name) && msg.contains("not built"), "{msg}")
                }
                other => panic!("{sub} {flags}: {other:?}"),
            }
        }
    }
}

#[test]
fn the_binary_exits_2_on_each_refused_flag_before_printing_anything() {
    for flags in REFUSED {
        let name = flags.split(['=', ' ']).next().unwrap_or_default();
        // check-config, not run: a flag wrongly accepted must not start
        // a daemon.
        for sub in ["check-config", "manifest pod", "manifest daemonset"] {
            let (code, stdout, stderr) = vipd(&format!("{sub} {BASE} {flags}"));
            assert_eq!(code, Some(2), "{sub} {flags}: {stderr}");
            assert!(stdout.is_empty(), "{sub} {flags}: {stdout}");
            assert!(
                stderr.contains(name) && stderr.contains("not built"),
                "{sub} {flags}: {stderr}"
            );
        }
    }
    // A malformed boolean is refused too, naming the flag.
    let (code, _, stderr) = vipd(&format!("check-config {BASE} --bgp=maybe"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--bgp"), "{stderr}");
}

#[test]
fn kube_vip_bgp_and_routing_table_flags_set_the_vipd_options() {
    // (kube-vip flags, vipd option, effective value as check-config shows
    // it). With the mode off the values are validated, shown, and
    // reported unused in one warning.
    let rows: &[(&str, &str, &str)] = &[
        ("--bgpRouterID 192.0.2.1", "bgp-router-id", "192.0.2.1"),
        ("--localAS 4200000000", "bgp-as", "4200000000"),
        ("--bgpHoldTimer 90 --bgpKeepAliveInterval 30", "bgp-hold-time", "90s"),
        ("--bgpHoldTimer 90 --bgpKeepAliveInterval 30", "bgp-keepalive-interval", "30s"),
        ("--sourceIF eth1", "bgp-source-if", "eth1"),
        ("--sourceIP 2001:db8::5", "bgp-source-ip", "2001:db8::5"),
        ("--annotations metal.equinix.com", "bgp-annotations", "metal.equinix.com"),
        (
            "--bgppeers 192.0.2.1:65001 --bgppeers [2001:db8::2]:65002:s3cret,192.0.2.3:65003:::1179",
            "bgp-peers",
            "192.0.2.1:65001::false:179,[2001:db8::2]:65002:<redacted>:false:179,192.0.2.3:65003::false:1179",
        ),
        (
            "--peerAddress 192.0.2.9 --peerAS 65009 --peerPass s3cret --multihop",
            "bgp-peers",
            "192.0.2.9:65009:<redacted>:true:179",
        ),
        ("--tableID 7", "routing-table-id", "7"),
        ("--tableType 2", "routing-table-type", "2 (local)"),
        ("--routingProtocol 9", "routing-protocol", "9"),
        ("--cleanRoutingTable", "clean-routing-table", "true"),
    ];
    for sub in SUBCOMMANDS {
        for (flags, option, shown) in rows {
            let c = parse(sub, flags).unwrap_or_else(|e| panic!("{sub} {flags}: {e}"));
            assert_eq!(setting(&c, option), *shown, "{sub} {flags}");
            assert_eq!(c.warnings.len(), 1, "{sub} {flags}: {:?}", c.warnings);
            assert!(c.warnings[0].contains("unused"), "{:?}", c.warnings);
            assert!(c.bgp.is_none() && c.routing_table.is_none());
            let all = format!("{c:?} {}", c.describe());
            assert!(!all.contains("s3cret"), "{sub} {flags}: {all}");
        }
    }
}

#[test]
fn kube_vip_bgp_and_table_flags_configure_their_modes_and_two_modes_at_once_are_refused() {
    let bgp = "--bgp --bgpRouterID 192.0.2.1 --bgppeers 192.0.2.1:65001:s3cret";
    for sub in ["check-config", "run", "manifest pod"] {
        let c = parse(sub, bgp).unwrap_or_else(|e| panic!("{sub} {bgp}: {e}"));
        let b = c.bgp.as_ref().unwrap_or_else(|| panic!("{sub}: BGP off"));
        assert_eq!(b.peers.len(), 1);
        assert_eq!(b.peers[0].remote_as, 65001);
        assert!(
            !b.leader_election,
            "kube-vip's BGP mode announces from every node by default"
        );
        assert_eq!(
            setting(&c, "bgp-peers"),
            "192.0.2.1:65001:<redacted>:false:179"
        );
        let all = format!("{c:?} {}", c.describe());
        assert!(!all.contains("s3cret"), "{sub}: {all}");
    }
    // --leaderElection chooses one holder over every-node ECMP, for BGP
    // and the routing table; =false is kube-vip's ECMP, not a warning.
    for (flags, elect) in [
        (format!("{bgp} --leaderElection"), true),
        (format!("{bgp} --leaderElection=true"), true),
        (format!("{bgp} --leaderElection=false"), false),
        ("--table --leaderElection".to_string(), true),
        ("--table --leaderElection=false".to_string(), false),
    ] {
        let c = parse("run", &flags).unwrap_or_else(|e| panic!("{flags}: {e}"));
        let got = match (&c.bgp, &c.routing_table) {
            (Some(b), _) => b.leader_election,
            (None, Some(t)) => t.leader_election,
            (None, None) => panic!("{flags}: no mode"),
        };
        assert_eq!(got, elect, "{flags}");
        assert!(
            !c.warnings.iter().any(|w| w.contains("leaderElection")),
            "{flags}: {:?}",
            c.warnings
        );
    }
    // BGP for Services is wired (issue 14): the same flags with --services.
    match parse("run", &format!("{bgp} --services")) {
        Ok(c) => {
            assert!(c.bgp.is_some() && c.services.is_some(), "{c:?}");
            assert!(!c.describe().contains("s3cret"));
        }
        other => panic!("{bgp} --services: {other:?}"),
    }
    // A malformed peer is reported first, naming the flag and the field.
    match parse(
        "run",
        "--bgp --bgpRouterID 192.0.2.1 --bgppeers 192.0.2.1:65001,192.0.2.2:x",
    ) {
        Err(e @ ConfigError::BgpPeer { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("--bgppeers") && msg.contains("peer 2") && msg.contains("field AS"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Routing-table mode is wired, for the control-plane VIP and with
    // --services (Services on the quorum are refused: quorum_config.rs).
    for extra in ["", " --services"] {
        let (code, stdout, stderr) = vipd(&format!(
            "check-config {BASE} --table --tableID 1000{extra}"
        ));
        assert_eq!(code, Some(0), "{extra}: {stderr}");
        assert!(
            stdout.contains("routing-table-id") && stdout.contains("= 1000  (flag)"),
            "{extra}: {stdout}"
        );
    }
    let (code, _, stderr) = vipd(&format!("check-config {BASE} --bgp --table"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("bgp_routerid"), "{stderr}");
}
