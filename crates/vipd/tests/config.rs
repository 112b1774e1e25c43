//! Configuration resolution: kube-vip compatibility, precedence, validation
//! messages. No test touches the process environment.

use std::collections::HashMap;
use std::time::Duration;

use vipd::config::{
    default_health_check, parse_command, parse_command_with, Backend, Command, Config, ConfigError,
    HostFacts, ManifestRequest, Source,
};

fn argv(line: &str) -> Vec<String> {
    std::iter::once("vipd")
        .chain(line.split_whitespace())
        .map(String::from)
        .collect()
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Environment pairs of a table row.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// The minimum every valid configuration needs.
const BASE: &[(&str, &str)] = &[("address", "192.0.2.10"), ("vip_interface", "eth0")];

fn resolve(line: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut e = env(BASE);
    e.extend(env(pairs));
    Config::from_sources_with_hostname(&argv(line), &e, Some("host-a".into()))
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn source_of<'a>(c: &'a Config, name: &str) -> Option<&'a Source> {
    c.settings
        .iter()
        .find(|s| s.name == name)
        .map(|s| &s.source)
}

#[test]
fn kube_vip_defaults_apply_when_nothing_is_set() {
    let c = resolve("run", &[]).expect("valid");
    assert_eq!(c.vip.map(|v| v.to_string()).as_deref(), Some("192.0.2.10"));
    assert_eq!(c.prefix_len, 32);
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.node_name, "host-a");
    assert_eq!(c.lease_name, "plndr-cp-lock");
    assert_eq!(c.lease_namespace, "kube-system");
    assert_eq!(
        (
            c.timings.lease_duration(),
            c.timings.renew_deadline(),
            c.timings.retry_period()
        ),
        (secs(15.0), secs(10.0), secs(2.0))
    );
    assert!(c.arp);
    assert_eq!(c.backend, Backend::Kubernetes);
    assert_eq!(
        c.http_addr.map(|a| a.to_string()).as_deref(),
        Some("0.0.0.0:2112")
    );
    assert_eq!(c.log_level, tracing::Level::INFO);
    assert_eq!(c.reconcile_period, secs(5.0));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(source_of(&c, "lease-duration"), Some(&Source::Default));
}

#[test]
fn typical_kube_vip_static_pod_env_block_maps_to_vipd_options() {
    // The env block `kube-vip manifest pod --arp --controlplane` generates.
    let block = [
        ("vip_arp", "true"),
        ("port", "6443"),
        ("vip_nodename", "cp-1"),
        ("vip_interface", "ens3"),
        ("vip_subnet", "32"),
        ("dns_mode", "first"),
        ("cp_enable", "true"),
        ("cp_namespace", "kube-system"),
        ("svc_enable", "false"),
        ("vip_leaderelection", "true"),
        ("vip_leasename", "plndr-cp-lock"),
        ("vip_leaseduration", "5"),
        ("vip_renewdeadline", "3"),
        ("vip_retryperiod", "1"),
        ("address", "203.0.113.5"),
        ("prometheus_server", ":2112"),
        ("vip_loglevel", "5"),
    ];
    let c =
        Config::from_sources_with_hostname(&argv("manager"), &env(&block), None).expect("valid");
    assert_eq!(c.vip.map(|v| v.to_string()).as_deref(), Some("203.0.113.5"));
    assert_eq!(c.interface, "ens3");
    assert_eq!(c.node_name, "cp-1");
    assert!(c.control_plane);
    assert_eq!(c.api_port, 6443);
    assert_eq!(c.log_level, tracing::Level::DEBUG);
    assert_eq!(
        (
            c.timings.lease_duration(),
            c.timings.renew_deadline(),
            c.timings.retry_period()
        ),
        (secs(5.0), secs(3.0), secs(1.0))
    );
    assert_eq!(
        source_of(&c, "lease-duration"),
        Some(&Source::KubeVipEnv("vip_leaseduration".into()))
    );
    // dns_mode is the only variable vipd does not act on: exactly one line.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("dns_mode"), "{:?}", c.warnings);
}

#[test]
fn flag_beats_vipd_env_beats_kube_vip_env_beats_file_beats_default() {
    let dir = std::env::temp_dir().join(format!("vipd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("vipd.conf");
    std::fs::write(
        &file,
        "lease-duration: 30\nrenew_deadline = 20\nretry-period: 5\n",
    )
    .expect("write");
    let f = file.display().to_string();

    // (args, env, expected lease duration, expected source)
    let cases: Vec<(String, Pairs, f64, Source)> = vec![
        ("run".into(), &[], 15.0, Source::Default),
        (format!("run --config {f}"), &[], 30.0, Source::File),
        (
            format!("run --config {f}"),
            &[("vip_leaseduration", "29")],
            29.0,
            Source::KubeVipEnv("vip_leaseduration".into()),
        ),
        (
            format!("run --config {f}"),
            &[("vip_leaseduration", "29"), ("VIPD_LEASE_DURATION", "28")],
            28.0,
            Source::Env("VIPD_LEASE_DURATION".into()),
        ),
        (
            format!("run --config {f} --lease-duration 27"),
            &[("vip_leaseduration", "29"), ("VIPD_LEASE_DURATION", "28")],
            27.0,
            Source::Flag,
        ),
        // kube-vip's own flag spelling is an alias.
        (
            format!("run --config {f} --leaseDuration=26"),
            &[("VIPD_LEASE_DURATION", "28")],
            26.0,
            Source::Flag,
        ),
        // kube-vip treats an empty variable as unset.
        (
            format!("run --config {f}"),
            &[("vip_leaseduration", "")],
            30.0,
            Source::File,
        ),
    ];
    for (args, pairs, lease, source) in cases {
        let c = resolve(&args, pairs).unwrap_or_else(|e| panic!("{args} {pairs:?}: {e}"));
        assert_eq!(c.timings.lease_duration(), secs(lease), "{args} {pairs:?}");
        assert_eq!(
            source_of(&c, "lease-duration"),
            Some(&source),
            "{args} {pairs:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fractional_timings_are_accepted() {
    let c = resolve(
        "run --lease-duration 3 --renew-deadline 2 --retry-period 0.5",
        &[],
    )
    .expect("valid");
    assert_eq!(c.timings.retry_period(), Duration::from_millis(500));
    let c = resolve("run", &[("VIPD_RETRY_PERIOD", "0.5")]).expect("valid");
    assert_eq!(c.timings.retry_period(), Duration::from_millis(500));
}

#[test]
fn each_invalid_value_is_refused_naming_option_value_and_accepted_form() {
    // (args, env, substrings the message must contain)
    let cases: &[(&str, Pairs, &[&str])] = &[
        (
            "run",
            &[("address", "not-an-ip")],
            &["--address", "address", "\"not-an-ip\"", "IPv4 or IPv6"],
        ),
        (
            "run --address 192.0.2.300",
            &[],
            &["--address", "192.0.2.300", "from flag"],
        ),
        (
            "run",
            &[("vip_subnet", "33")],
            &["--subnet", "vip_subnet", "\"33\"", "1-32"],
        ),
        (
            "run --address 2001:db8::1 --subnet 129",
            &[],
            &["--subnet", "129", "1-128"],
        ),
        (
            "run",
            &[("vip_leaseduration", "abc")],
            &[
                "--lease-duration",
                "vip_leaseduration",
                "\"abc\"",
                "seconds",
            ],
        ),
        (
            "run",
            &[("vip_renewdeadline", "x")],
            &["--renew-deadline", "vip_renewdeadline", "\"x\""],
        ),
        (
            "run",
            &[("vip_retryperiod", "-1")],
            &["--retry-period", "vip_retryperiod", "\"-1\""],
        ),
        (
            "run --lease-duration 10 --renew-deadline 10",
            &[],
            &["--lease-duration", "--renew-deadline", "fence margin"],
        ),
        (
            "run --renew-deadline 2.4 --retry-period 2",
            &[],
            &["--retry-period", "1.2"],
        ),
        (
            "run --node-name=",
            &[],
            &["--node-name", "vip_nodename", "empty"],
        ),
        (
            "run --backend etcd",
            &[],
            &["--etcd-endpoints", "VIPD_ETCD_ENDPOINTS", "--backend etcd"],
        ),
        (
            "run --backend consul",
            &[],
            &[
                "--backend",
                "leaderElectionType",
                "consul",
                "etcd, kubernetes or none",
            ],
        ),
        (
            "run",
            &[("vip_loglevel", "loud")],
            &["--log-level", "vip_loglevel", "loud", "logrus"],
        ),
        (
            "run --log-format yaml",
            &[],
            &["--log-format", "yaml", "text or json"],
        ),
        (
            "run",
            &[("vip_arp", "maybe")],
            &["--arp", "vip_arp", "maybe", "true or false"],
        ),
        (
            "run",
            &[("prometheus_server", "localhost:2112")],
            &["--prometheus-server", "prometheus_server", ":2112"],
        ),
        (
            "run",
            &[("vip_interface", "a/b")],
            &["--interface", "vip_interface", "a/b"],
        ),
        (
            "run --lease-name Bad_Name",
            &[],
            &["--lease-name", "vip_leasename", "Bad_Name"],
        ),
        ("run --lease-name ns/", &[], &["--lease-name", "ns/"]),
        // BGP and routing-table modes: malformed or incomplete settings
        // (tests/bgp_config.rs has the rest; quorum_config.rs what is not
        // wired yet).
        (
            "run",
            &[("bgp_enable", "true")],
            &["bgp_routerid", "BGP mode needs a router ID"],
        ),
        (
            "run",
            &[("vip_routingtable", "true"), ("vip_routingtableid", "x")],
            &["vip_routingtableid", "'x'"],
        ),
        (
            "run --reconcile-period 0",
            &[],
            &["--reconcile-period", "greater than zero"],
        ),
        (
            "run --backend etcd --etcd-endpoints http://192.0.2.1:2379 --etcd-cert c.pem",
            &[],
            &["--etcd-key", "etcdKey"],
        ),
        (
            "run",
            &[("vip_arpRate", "fast")],
            &["--arp-rate", "vip_arpRate", "milliseconds"],
        ),
        ("run", &[("port", "0")], &["--api-port", "port", "1-65535"]),
    ];
    for (args, pairs, needles) in cases {
        let err = match resolve(args, pairs) {
            Ok(c) => panic!("{args} {pairs:?} was accepted: {c:?}"),
            Err(e) => e.to_string(),
        };
        for n in *needles {
            assert!(
                err.contains(n),
                "{args} {pairs:?}: {err:?} does not mention {n:?}"
            );
        }
    }
}

#[test]
fn missing_address_or_interface_is_refused() {
    let no_addr = Config::from_sources_with_hostname(
        &argv("run"),
        &env(&[("vip_interface", "eth0")]),
        Some("h".into()),
    );
    assert!(
        matches!(&no_addr, Err(ConfigError::Missing { option, .. }) if option.contains("--address")),
        "{no_addr:?}"
    );
    let no_if = Config::from_sources_with_hostname(
        &argv("run"),
        &env(&[("address", "192.0.2.1")]),
        Some("h".into()),
    );
    assert!(
        matches!(&no_if, Err(ConfigError::Missing { option, .. }) if option.contains("vip_interface")),
        "{no_if:?}"
    );
}

#[test]
fn vip_cidr_is_honoured_as_subnet_with_a_deprecation_warning() {
    let c = resolve("run", &[("vip_cidr", "24")]).expect("valid");
    assert_eq!(c.prefix_len, 24);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("vip_cidr") && c.warnings[0].contains("deprecated"));

    // vip_subnet wins; vip_cidr is still reported once.
    let c = resolve("run", &[("vip_cidr", "24"), ("vip_subnet", "28")]).expect("valid");
    assert_eq!(c.prefix_len, 28);
    assert_eq!(
        c.warnings.iter().filter(|w| w.contains("vip_cidr")).count(),
        1,
        "{:?}",
        c.warnings
    );
}

#[test]
fn unknown_or_ignored_kube_vip_variables_produce_one_warning_each() {
    let c = resolve(
        "run",
        &[
            ("vip_leaseduraton", "20"),            // misspelt: unknown
            ("vip_arprate", "1000"),               // wrong case
            ("egress_podcidr", "198.51.100.0/24"), // known, ignored
            ("lb_enable", "false"),                // known, off: behaves the same
            ("HOME", "/root"),                     // not kube-vip style
            ("VIPD_LEASE_DURATON", "20"),          // misspelt vipd variable
        ],
    )
    .expect("valid");
    let count = |needle: &str| c.warnings.iter().filter(|w| w.contains(needle)).count();
    assert_eq!(count("vip_leaseduraton"), 1, "{:?}", c.warnings);
    assert_eq!(count("vip_arprate"), 1, "{:?}", c.warnings);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("did you mean vip_arpRate")),
        "{:?}",
        c.warnings
    );
    assert_eq!(count("egress_podcidr"), 1, "{:?}", c.warnings);
    assert_eq!(count("VIPD_LEASE_DURATON"), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
}

#[test]
fn kube_vip_services_variables_enable_services_mode() {
    let c = resolve(
        "run",
        &[
            ("svc_enable", "true"),
            ("svc_namespace", "shop"),
            ("vip_servicesinterface", "eth1"),
            ("lb_class_only", "true"),
            ("lb_class_name", "example.com/lb"),
        ],
    )
    .expect("valid");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let s = c.services.expect("Services mode on");
    assert_eq!(s.namespace.as_deref(), Some("shop"));
    assert_eq!(s.interface, "eth1");
    assert!(s.lb_class_only);
    assert_eq!(s.lb_class_name, "example.com/lb");
    // Defaults: IPAM from kube-vip-cloud-provider's ConfigMap, no preempt,
    // a frame-rate cap, no zone fallback.
    assert_eq!(
        s.ipam_configmap,
        Some(("kube-system".to_string(), "kubevip".to_string()))
    );
    assert!(!s.preempt && !s.zone_fallback);
    assert_eq!(s.announce_max_pps, 1000);
    // The control-plane VIP is still configured alongside (BASE).
    assert!(c.vip.is_some());
}

#[test]
fn services_mode_needs_no_address_but_the_kubernetes_backend() {
    let e = env(&[("svc_enable", "true"), ("vip_interface", "eth0")]);
    let c = Config::from_sources_with_hostname(&argv("run"), &e, Some("h".into()))
        .expect("Services mode alone is valid");
    assert!(c.vip.is_none());
    assert_eq!(c.services.map(|s| s.interface).as_deref(), Some("eth0"));
    // Neither an address nor Services mode: the address is missing.
    let e = env(&[("vip_interface", "eth0")]);
    let err = Config::from_sources_with_hostname(&argv("run"), &e, Some("h".into()))
        .expect_err("nothing to do");
    assert!(err.to_string().contains("--address"), "{err}");
    // Services mode reads the Kubernetes API: etcd is refused (exit 2).
    let e = env(&[
        ("svc_enable", "true"),
        ("vip_interface", "eth0"),
        ("VIPD_BACKEND", "etcd"),
        ("VIPD_ETCD_ENDPOINTS", "http://192.0.2.1:2379"),
    ]);
    let err = Config::from_sources_with_hostname(&argv("run"), &e, Some("h".into()))
        .expect_err("etcd backend");
    assert!(err.to_string().contains("kubernetes"), "{err}");
    // Control-plane mode without its VIP is refused.
    let e = env(&[
        ("svc_enable", "true"),
        ("vip_interface", "eth0"),
        ("cp_enable", "true"),
    ]);
    assert!(Config::from_sources_with_hostname(&argv("run"), &e, Some("h".into())).is_err());
}

#[test]
fn services_options_are_validated() {
    for (k, v) in [
        ("VIPD_SERVICES_NODE_SELECTOR", "no-equals-sign"),
        ("VIPD_IPAM_CONFIGMAP", "kubevip"),
        ("VIPD_ANNOUNCE_MAX_PPS", "fast"),
        ("svc_namespace", "Not_A_Namespace"),
    ] {
        let err = resolve("run", &[("svc_enable", "true"), (k, v)]).expect_err(k);
        assert!(err.to_string().contains(v), "{k}: {err}");
    }
    let c = resolve(
        "run",
        &[
            ("svc_enable", "true"),
            ("VIPD_IPAM_CONFIGMAP", ""),
            ("VIPD_SERVICES_NODE_SELECTOR", "vipd.io/lb=true"),
            ("VIPD_PREEMPT", "true"),
        ],
    )
    .expect("valid");
    let s = c.services.expect("on");
    assert_eq!(s.ipam_configmap, None, "empty disables IPAM");
    assert_eq!(
        s.node_selector.get("vipd.io/lb").map(String::as_str),
        Some("true")
    );
    assert!(s.preempt);
}

#[test]
fn run_with_kubernetes_backend_is_accepted_because_credentials_are_found_at_run_time() {
    let e = env(&[
        ("address", "192.0.2.10"),
        ("vip_interface", "eth0"),
        ("vip_nodename", "n1"),
    ]);
    let parse = |line: &str, e: &HashMap<String, String>| {
        parse_command_with(&argv(line), e, &HostFacts::default())
    };
    match parse("run", &e) {
        Ok(Command::Run(c)) => assert_eq!(c.backend, Backend::Kubernetes),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse("check-config --backend kubernetes", &e),
        Ok(Command::CheckConfig(_))
    ));

    let etcd = parse(
        "manager --backend etcd --etcdEndpoints http://192.0.2.1:2379,http://192.0.2.2:2379",
        &e,
    );
    match etcd {
        Ok(Command::Run(c)) => match c.backend {
            Backend::Etcd(s) => assert_eq!(
                s.endpoints,
                ["http://192.0.2.1:2379", "http://192.0.2.2:2379"]
            ),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(matches!(parse("version", &e), Ok(Command::Version)));
    // The production entry point parses the same way.
    assert!(matches!(
        parse_command(&argv("version"), &e),
        Ok(Command::Version)
    ));
}

#[test]
fn lease_name_may_carry_its_namespace() {
    let c = resolve(
        "run --lease-name infra/vip-lock --lease-namespace other",
        &[],
    )
    .expect("valid");
    assert_eq!(
        (c.lease_namespace.as_str(), c.lease_name.as_str()),
        ("infra", "vip-lock")
    );
}

#[test]
fn ipv6_vip_defaults_to_a_128_prefix() {
    let c = resolve("run", &[("address", "2001:db8::10")]).expect("valid");
    assert_eq!(c.prefix_len, 128);
}

#[test]
fn arp_rate_zero_or_arp_off_disables_the_refresh() {
    assert_eq!(
        resolve("run", &[("vip_arpRate", "3000")])
            .expect("valid")
            .arp_refresh,
        Some(secs(3.0))
    );
    assert_eq!(
        resolve("run", &[("vip_arpRate", "0")])
            .expect("valid")
            .arp_refresh,
        None
    );
    assert_eq!(
        resolve("run --arp=false", &[]).expect("valid").arp_refresh,
        None
    );
}

#[test]
fn empty_prometheus_server_disables_http() {
    assert_eq!(
        resolve("run", &[("VIPD_PROMETHEUS_SERVER", "")])
            .expect("valid")
            .http_addr,
        None
    );
    // An empty kube-vip variable means "unset": the default stays.
    assert!(resolve("run", &[("prometheus_server", "")])
        .expect("valid")
        .http_addr
        .is_some());
}

#[test]
fn describe_prints_every_value_with_its_source() {
    let c = resolve(
        "run --retry-period 1",
        &[("VIPD_RENEW_DEADLINE", "3"), ("vip_leaseduration", "5")],
    )
    .expect("valid");
    let table = c.describe();
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("retry-period").ends_with("= 1s  (flag)"), "{table}");
    assert!(
        line("renew-deadline").ends_with("= 3s  (env VIPD_RENEW_DEADLINE)"),
        "{table}"
    );
    assert!(
        line("lease-duration").ends_with("= 5s  (kube-vip env vip_leaseduration)"),
        "{table}"
    );
    assert!(
        line("address").ends_with("= 192.0.2.10  (kube-vip env address)"),
        "{table}"
    );
    assert!(
        line("node-name").ends_with("= host-a  (default)"),
        "{table}"
    );
    assert!(
        line("prometheus-server").contains("0.0.0.0:2112"),
        "{table}"
    );
}

#[test]
fn unknown_config_file_key_is_refused_with_its_line() {
    let dir = std::env::temp_dir().join(format!("vipd-config-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("bad.conf");
    std::fs::write(&file, "# comment\nlease-durration: 5\n").expect("write");
    let err = resolve(&format!("run --config {}", file.display()), &[])
        .err()
        .map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains(":2:") && e.contains("lease-durration")),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_interface_is_an_error_unless_waiting_for_it() {
    let c = resolve("run", &[]).expect("valid");
    assert!(
        matches!(c.check_interface(|_| false), Err(ConfigError::UnknownInterface(n)) if n == "eth0")
    );
    assert!(c.check_interface(|_| true).is_ok());
    let c = resolve("run --wait-for-interface", &[]).expect("valid");
    assert!(c.check_interface(|_| false).is_ok());
}

#[test]
fn loopback_interface_is_found_in_proc() {
    assert!(matches!(vipd::config::interface_exists("lo"), Ok(true)));
    assert!(matches!(
        vipd::config::interface_exists("vipd-no-such0"),
        Ok(false)
    ));
}

/// The env block kube-vip's `manifest pod --arp --controlplane --leaderElection`
/// writes (kube-vip v0.8/v1.x), with realistic values, plus the health-check
/// variables of kube-vip's BGP health-check guide.
fn kube_vip_arp_control_plane_block() -> Vec<(&'static str, &'static str)> {
    vec![
        ("vip_arp", "true"),
        ("port", "6443"),
        ("vip_nodename", "cp-2"),
        ("vip_interface", "ens192"),
        ("vip_subnet", "32"),
        ("dns_mode", "first"),
        ("cp_enable", "true"),
        ("cp_namespace", "kube-system"),
        ("svc_enable", "false"),
        ("svc_leasename", "plndr-svcs-lock"),
        ("vip_leaderelection", "true"),
        ("vip_leasename", "plndr-cp-lock"),
        ("vip_leaseduration", "5"),
        ("vip_renewdeadline", "3"),
        ("vip_retryperiod", "1"),
        ("address", "198.51.100.40"),
        ("prometheus_server", ":2112"),
        ("k8s_config_file", "/etc/kubernetes/admin.conf"),
        ("vip_loglevel", "4"),
    ]
}

#[test]
fn kube_vip_env_block_maps_to_the_effective_config_table() {
    let mut block = env(&kube_vip_arp_control_plane_block());
    block.insert(
        "control_plane_health_check_ca_path".into(),
        "/etc/kubernetes/pki/ca.crt".into(),
    );
    block.insert(
        "control_plane_health_check_period_seconds".into(),
        "2".into(),
    );
    let c = Config::from_sources_with_hostname(&argv("manager"), &block, Some("ignored".into()))
        .expect("valid");
    let table = c.describe();
    // (option, effective value, source) for every option the block sets or
    // derives; values are as `check-config` prints them.
    let kv = |n: &str| Source::KubeVipEnv(n.into());
    let expected: Vec<(&str, &str, Source)> = vec![
        ("address", "198.51.100.40", kv("address")),
        ("interface", "ens192", kv("vip_interface")),
        ("subnet", "/32", kv("vip_subnet")),
        ("arp", "true", kv("vip_arp")),
        ("arp-rate", "30000ms", Source::Default),
        ("node-name", "cp-2", kv("vip_nodename")),
        ("lease-name", "plndr-cp-lock", kv("vip_leasename")),
        ("lease-namespace", "kube-system", kv("cp_namespace")),
        ("lease-duration", "5s", kv("vip_leaseduration")),
        ("renew-deadline", "3s", kv("vip_renewdeadline")),
        ("retry-period", "1s", kv("vip_retryperiod")),
        ("backend", "kubernetes", Source::Default),
        ("control-plane", "true", kv("cp_enable")),
        ("services", "false", kv("svc_enable")),
        ("api-port", "6443", kv("port")),
        (
            "kubeconfig",
            "/etc/kubernetes/admin.conf",
            kv("k8s_config_file"),
        ),
        ("prometheus-server", "0.0.0.0:2112", kv("prometheus_server")),
        ("log-level", "info", kv("vip_loglevel")),
        ("kube-api-qps", "50", Source::Default),
        ("kube-api-burst", "100", Source::Default),
        ("kube-api-timeout", "30s", Source::Default),
        // Control-plane mode without explicit checks: the local /livez.
        (
            "health-check",
            "https://127.0.0.1:6443/livez",
            Source::Default,
        ),
        (
            "health-check-period",
            "2s",
            kv("control_plane_health_check_period_seconds"),
        ),
        ("health-check-timeout", "3s", Source::Default),
        ("health-check-failure-threshold", "3", Source::Default),
        (
            "health-check-ca-path",
            "/etc/kubernetes/pki/ca.crt",
            kv("control_plane_health_check_ca_path"),
        ),
    ];
    for (name, value, source) in &expected {
        let got = c.settings.iter().find(|s| s.name == *name);
        assert_eq!(
            got.map(|s| (s.value.as_str(), &s.source)),
            Some((*value, source)),
            "{name}\n{table}"
        );
    }
    // Typed fields agree with the table.
    assert_eq!(
        c.vip.map(|v| v.to_string()).as_deref(),
        Some("198.51.100.40")
    );
    assert!(c.control_plane && c.arp);
    assert_eq!(c.health_checks, [default_health_check(6443)]);
    assert_eq!(c.health.period, secs(2.0));
    assert_eq!(c.health.failure_threshold, 3);
    assert_eq!(
        c.kubeconfig.as_deref(),
        Some(std::path::Path::new("/etc/kubernetes/admin.conf"))
    );
    // Only the variables vipd does not act on are reported, one line each.
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings.iter().any(|w| w.contains("dns_mode")));
    assert!(c.warnings.iter().any(|w| w.contains("svc_leasename")));
}

#[test]
fn kube_api_limits_default_to_50_qps_100_burst_30s_and_follow_precedence() {
    let c = resolve("run", &[]).expect("valid");
    assert_eq!(
        (c.kube_api.qps, c.kube_api.burst, c.kube_api.timeout),
        (50.0, 100, secs(30.0))
    );
    let c = resolve(
        "run --kube-api-qps 7.5 --kube-api-timeout 4",
        &[("VIPD_KUBE_API_QPS", "9"), ("VIPD_KUBE_API_BURST", "20")],
    )
    .expect("valid");
    assert_eq!(
        (c.kube_api.qps, c.kube_api.burst, c.kube_api.timeout),
        (7.5, 20, secs(4.0))
    );
    assert_eq!(source_of(&c, "kube-api-qps"), Some(&Source::Flag));
    assert_eq!(
        source_of(&c, "kube-api-burst"),
        Some(&Source::Env("VIPD_KUBE_API_BURST".into()))
    );
    for (line, pairs) in [
        ("run --kube-api-qps 0", &[][..]),
        ("run", &[("VIPD_KUBE_API_BURST", "-1")][..]),
        ("run --kube-api-timeout 0", &[][..]),
    ] {
        let e = resolve(line, pairs);
        assert!(
            matches!(&e, Err(ConfigError::Invalid { option, .. }) if option.contains("--kube-api-")),
            "{line} {pairs:?}: {e:?}"
        );
    }
}

#[test]
fn health_checks_combine_flags_and_kube_vip_address_and_default_only_in_control_plane_mode() {
    // Not control-plane, nothing configured: no gating.
    let c = resolve("run", &[]).expect("valid");
    assert!(c.health_checks.is_empty());
    // Repeated flag, in order, then kube-vip's address.
    let c = resolve(
        "run --health-check tcp://192.0.2.1:6443 --health-check icmp://192.0.2.254",
        &[(
            "control_plane_health_check_address",
            "https://127.0.0.1:6443/readyz",
        )],
    )
    .expect("valid");
    assert_eq!(
        c.health_checks,
        [
            "tcp://192.0.2.1:6443",
            "icmp://192.0.2.254",
            "https://127.0.0.1:6443/readyz"
        ]
    );
    assert_eq!(
        c.health.address.as_deref(),
        Some("https://127.0.0.1:6443/readyz")
    );
    // VIPD_HEALTH_CHECKS is comma-separated; explicit checks replace the
    // control-plane default, which follows --api-port otherwise.
    let c = resolve(
        "run --control-plane",
        &[(
            "VIPD_HEALTH_CHECKS",
            "http://192.0.2.5:10256/healthz, tcp://192.0.2.5:22",
        )],
    )
    .expect("valid");
    assert_eq!(
        c.health_checks,
        ["http://192.0.2.5:10256/healthz", "tcp://192.0.2.5:22"]
    );
    let c = resolve("run --control-plane --api-port 8443", &[]).expect("valid");
    assert_eq!(c.health_checks, ["https://127.0.0.1:8443/livez"]);
    // kube-vip's tuning applies in ARP mode too.
    let c = resolve(
        "run",
        &[
            ("control_plane_health_check_timeout_seconds", "1"),
            ("control_plane_health_check_failure_threshold", "5"),
        ],
    )
    .expect("valid");
    assert_eq!(
        (c.health.timeout, c.health.failure_threshold),
        (secs(1.0), 5)
    );
}

#[test]
fn malformed_health_settings_are_refused_naming_the_option() {
    let cases: Vec<(&str, Pairs, &str)> = vec![
        ("run --health-check ftp://192.0.2.1/", &[], "--health-check"),
        ("run --health-check tcp://192.0.2.1", &[], "--health-check"),
        (
            "run",
            &[("VIPD_HEALTH_CHECKS", "icmp://gateway")],
            "VIPD_HEALTH_CHECKS",
        ),
        (
            "run",
            &[("control_plane_health_check_address", "tcp://192.0.2.1:6443")],
            "control_plane_health_check_address",
        ),
        (
            "run",
            &[("control_plane_health_check_period_seconds", "0")],
            "control_plane_health_check_period_seconds",
        ),
        (
            "run",
            &[("control_plane_health_check_failure_threshold", "0")],
            "control_plane_health_check_failure_threshold",
        ),
    ];
    for (line, pairs, name) in cases {
        let e = resolve(line, pairs);
        assert!(
            matches!(&e, Err(ConfigError::Invalid { option, .. }) if option.contains(name)),
            "{line} {pairs:?}: {e:?}"
        );
    }
}

#[test]
fn service_account_namespace_is_the_lease_namespace_unless_configured() {
    let dir = std::env::temp_dir().join(format!("vipd-config-sa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("namespace");
    std::fs::write(&file, "vip-system\n").expect("write");
    let host = HostFacts {
        hostname: Some("host-a".into()),
        service_account_namespace_file: Some(file.clone()),
        ..HostFacts::default()
    };
    let base = env(BASE);
    let c = Config::from_sources_with(&argv("run"), &base, &host).expect("valid");
    assert_eq!(c.lease_namespace, "vip-system");
    assert_eq!(
        source_of(&c, "lease-namespace"),
        Some(&Source::ServiceAccount(file.clone()))
    );
    let mut with_cp = base.clone();
    with_cp.insert("cp_namespace".into(), "infra".into());
    let c = Config::from_sources_with(&argv("run"), &with_cp, &host).expect("valid");
    assert_eq!(c.lease_namespace, "infra");
    // A missing file falls back to kube-system.
    let missing = HostFacts {
        service_account_namespace_file: Some(dir.join("absent")),
        ..host
    };
    let c = Config::from_sources_with(&argv("run"), &base, &missing).expect("valid");
    assert_eq!(c.lease_namespace, "kube-system");
    assert_eq!(source_of(&c, "lease-namespace"), Some(&Source::Default));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn manifest_subcommands_resolve_their_options() {
    let host = HostFacts::default();
    let parse = |line: &str, pairs: Pairs| parse_command_with(&argv(line), &env(pairs), &host);
    match parse(
        "manifest pod --address 192.0.2.10 --interface eth0 --control-plane",
        &[],
    ) {
        Ok(Command::Manifest(ManifestRequest::Pod {
            config,
            image,
            kubeconfig_host_path,
            in_cluster,
        })) => {
            assert!(!in_cluster);
            assert!(config.control_plane);
            assert_eq!(image, vipd::config::default_image());
            assert_eq!(
                kubeconfig_host_path,
                std::path::Path::new("/etc/kubernetes/admin.conf")
            );
        }
        other => panic!("{other:?}"),
    }
    match parse(
        "manifest pod --image registry.example/vipd:dev --kubeconfig-host-path /etc/kubernetes/super-admin.conf",
        BASE,
    ) {
        Ok(Command::Manifest(ManifestRequest::Pod {
            image,
            kubeconfig_host_path,
            ..
        })) => {
            assert_eq!(image, "registry.example/vipd:dev");
            assert_eq!(
                kubeconfig_host_path,
                std::path::Path::new("/etc/kubernetes/super-admin.conf")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse("manifest daemonset", BASE),
        Ok(Command::Manifest(ManifestRequest::DaemonSet { .. }))
    ));
    // A daemonset still needs a valid configuration.
    assert!(matches!(
        parse("manifest daemonset", &[]),
        Err(ConfigError::Missing { .. })
    ));
    match parse("manifest rbac", &[("cp_namespace", "infra")]) {
        Ok(Command::Manifest(ManifestRequest::Rbac {
            lease_namespace, ..
        })) => {
            assert_eq!(lease_namespace, "infra")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse("manifest rbac --lease-namespace Bad_NS", &[]),
        Err(ConfigError::Invalid { .. })
    ));
}

#[test]
fn status_asks_the_configured_endpoint_flag_first_and_wildcards_on_loopback() {
    let ask = |line: &str, pairs: &[(&str, &str)]| -> Result<vipd::config::StatusRequest, String> {
        match parse_command_with(&argv(line), &env(pairs), &HostFacts::default()) {
            Ok(Command::Status(r)) => Ok(r),
            Ok(other) => panic!("{line}: {other:?}"),
            Err(e) => Err(e.to_string()),
        }
    };
    let addr =
        |line: &str, pairs: &[(&str, &str)]| ask(line, pairs).expect("valid").addr.to_string();
    assert_eq!(addr("status", &[]), "127.0.0.1:2112");
    assert_eq!(
        addr("status", &[("prometheus_server", "")]),
        "127.0.0.1:2112"
    );
    assert_eq!(
        addr("status", &[("prometheus_server", ":9100")]),
        "127.0.0.1:9100"
    );
    assert_eq!(
        addr(
            "status",
            &[
                ("prometheus_server", ":9100"),
                ("VIPD_PROMETHEUS_SERVER", "[::]:9200")
            ]
        ),
        "[::1]:9200"
    );
    assert_eq!(
        addr(
            "status --prometheus-server 192.0.2.5:2112",
            &[("VIPD_PROMETHEUS_SERVER", ":9200")]
        ),
        "192.0.2.5:2112"
    );
    assert_eq!(
        addr("status --prometheusHTTPServer 192.0.2.5:1", &[]),
        "192.0.2.5:1"
    );
    let r = ask("status --json --timeout 0.5", &[]).expect("valid");
    assert!(r.json);
    assert_eq!(r.timeout, secs(0.5));
    let e = ask("status --timeout 0", &[]).expect_err("zero timeout");
    assert!(e.contains("--timeout"), "{e}");
    let e = ask("status", &[("VIPD_PROMETHEUS_SERVER", "")]).expect_err("disabled endpoint");
    assert!(e.contains("disabled"), "{e}");
}

#[test]
fn health_gate_has_an_off_switch_and_refuses_none_with_a_check_address() {
    let cp = [("cp_enable", "true")];
    let c = resolve("run", &cp).expect("valid");
    assert_eq!(c.health_checks, vec![default_health_check(6443)]);
    for (line, pairs) in [
        (
            "run",
            &[("cp_enable", "true"), ("VIPD_HEALTH_CHECKS", "none")][..],
        ),
        ("run --health-check none", &cp[..]),
        ("run --health-check NONE", &cp[..]),
    ] {
        let c = resolve(line, pairs).unwrap_or_else(|e| panic!("{line} {pairs:?}: {e}"));
        assert!(c.health_checks.is_empty(), "{line} {pairs:?}");
        assert!(c.errors.is_empty(), "{:?}", c.errors);
        assert!(
            c.describe().contains("none (health gate off)"),
            "{}",
            c.describe()
        );
    }
    let e = resolve(
        "run --health-check none",
        &[
            ("cp_enable", "true"),
            (
                "control_plane_health_check_address",
                "https://192.0.2.1:6443/livez",
            ),
        ],
    )
    .expect_err("none and an address");
    assert!(e.to_string().contains("not both"), "{e}");
}

#[test]
fn etcd_backend_trusts_kubeadms_ca_for_the_default_check_or_says_what_to_set() {
    let dir = std::env::temp_dir().join(format!("vipd-config-kubeadm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("write");
    let mut e = env(BASE);
    e.insert("cp_enable".into(), "true".into());
    let line = "run --backend etcd --etcd-endpoints http://192.0.2.2:2379";
    let with = |file: Option<std::path::PathBuf>, line: &str, e: &HashMap<String, String>| {
        let host = HostFacts {
            hostname: Some("host-a".into()),
            kubeadm_ca_file: file,
            ..HostFacts::default()
        };
        Config::from_sources_with(&argv(line), e, &host).expect("valid")
    };
    // kubeadm's CA exists: trusted, and shown with where it came from.
    let c = with(Some(ca.clone()), line, &e);
    assert_eq!(c.health.ca_path.as_deref(), Some(ca.as_path()));
    assert_eq!(
        source_of(&c, "health-check-ca-path"),
        Some(&Source::HostFile(ca.clone()))
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    // Absent: one error line naming both ways out.
    let c = with(Some(dir.join("absent.crt")), line, &e);
    assert_eq!(c.health.ca_path, None);
    assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
    assert!(
        c.errors[0].contains("VIPD_HEALTH_CHECKS=none")
            && c.errors[0].contains("--health-check-ca-path"),
        "{}",
        c.errors[0]
    );
    // An explicit CA path wins; the gate off needs no CA; the Kubernetes
    // backend takes the CA from its kubeconfig at run time.
    let c = with(
        Some(ca.clone()),
        &format!("{line} --health-check-ca-path /etc/ssl/own.pem"),
        &e,
    );
    assert_eq!(
        c.health.ca_path.as_deref(),
        Some(std::path::Path::new("/etc/ssl/own.pem"))
    );
    let c = with(None, &format!("{line} --health-check none"), &e);
    assert!(c.errors.is_empty() && c.health.ca_path.is_none());
    let c = with(Some(ca.clone()), "run", &e);
    assert!(c.errors.is_empty() && c.health.ca_path.is_none());
    let _ = std::fs::remove_dir_all(&dir);
}
