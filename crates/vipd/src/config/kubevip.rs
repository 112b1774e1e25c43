//! kube-vip's environment variable names (pkg/kubevip/config_envvar.go) and
//! what vipd does with the ones it does not map to an option.
//!
//! SPEC §3: "kube-vip traps are reported, not copied": every kube-vip
//! variable vipd does not honour produces exactly one warning line, so an
//! operator swapping the image sees what changed.

use std::collections::HashMap;

use super::values;

/// kube-vip variables that vipd maps to one of its own options (see the
/// option table in `config.rs`), or checks for an unsupported mode.
pub(crate) const HONOURED: &[&str] = &[
    "address",
    "vip_address",
    "vip_interface",
    "vip_subnet",
    "vip_cidr",
    "vip_arp",
    "vip_arpRate",
    "vip_nodename",
    "vip_leasename",
    "cp_namespace",
    "vip_leaseduration",
    "vip_renewdeadline",
    "vip_retryperiod",
    "cp_enable",
    "svc_enable",
    "svc_namespace",
    "vip_servicesinterface",
    "lb_class_only",
    "lb_class_name",
    "prometheus_server",
    "vip_loglevel",
    "port",
    "kubernetes_addr",
    "k8s_config_file",
    "vip_leaderelection",
    "vip_wireguard",
    // BGP and routing-table modes (`config/bgp.rs`): parsed and validated,
    // then refused until the daemon runs them.
    "bgp_enable",
    "bgp_routerid",
    "bgp_routerinterface",
    "bgp_as",
    "bgp_peers",
    "bgp_peeraddress",
    "bgp_peeras",
    "bgp_peerpass",
    "bgp_multihop",
    "bgp_sourceif",
    "bgp_sourceip",
    "bgp_hold_time",
    "bgp_keepalive_interval",
    "mpbgp_nexthop",
    "mpbgp_ipv4",
    "mpbgp_ipv6",
    "annotation",
    "vip_routingtable",
    "vip_routingtableid",
    "vip_routingtabletype",
    "vip_routingprotocol",
    "vip_cleanroutingtable",
    // Issue 14's spellings of the last two kube-vip names.
    "vip_routingtable_id",
    "vip_routingtable_protocol",
    // Health gating (kube-vip: BGP and routing-table mode only; vipd: every
    // mode, see `config::HealthSettings`).
    "control_plane_health_check_address",
    "control_plane_health_check_period_seconds",
    "control_plane_health_check_timeout_seconds",
    "control_plane_health_check_failure_threshold",
    "control_plane_health_check_ca_path",
    // BGP mode: one announcing node per Service address instead of all.
    "svc_election",
];

/// kube-vip variables vipd knows but does not act on (yet). Listed so the
/// warning can say "not used by vipd" rather than "unknown".
pub(crate) const IGNORED: &[&str] = &[
    // Address and interface details.
    "vip_ddns",
    "dns_mode",
    "vip_interfaceloglobal",
    "vip_leaseannotations",
    "vip_singlenode",
    "vip_startleader",
    "vip_configmap",
    "cp_detect",
    "mirror_dest_interface",
    "config_file",
    // Services mode: vipd always uses one lease per node (never one per
    // Service), so kube-vip's election switches have no meaning (except
    // svc_election in BGP mode: honoured, see `BgpSettings`).
    "svc_leasename",
    "lb_class_legacy_handling",
    "disable_service_updates",
    "enable_endpoints",
    "enable_service_security",
    "enable_node_labeling",
    "backend_health_check_interval",
    "health_check_port",
    "enable_upnp",
    // IPVS load balancer.
    "lb_enable",
    "lb_port",
    "lb_fwdmethod",
    // zebra (FRR) integration: vipd's BGP speaker never feeds zebra.
    "zebra_enable",
    "zebra_url",
    "zebra_version",
    "zebra_software_name",
    // Egress.
    "egress_podcidr",
    "egress_servicecidr",
    "egress_withnftables",
    "egress_clean",
    "iptables_backend",
    // Removed in older kube-vip releases but still found in manifests.
    "vip_peers",
    "vip_localpeer",
    "vip_addpeerstolb",
    "vip_packet",
    "vip_packetproject",
    "vip_packetprojectid",
    "lb_backendport",
    "lb_bindtovip",
    "lb_name",
    "lb_type",
];

/// Prefixes that mark a variable as kube-vip style, so a misspelling such as
/// `vip_leaseduraton` is reported instead of silently doing nothing.
const PREFIXES: &[&str] = &[
    "vip_",
    "cp_",
    "svc_",
    "bgp_",
    "lb_",
    "egress_",
    "zebra_",
    "mpbgp_",
    "control_plane_",
];

/// kube-vip variables that switch on a mode vipd does not implement. Set to
/// a true value they are a configuration error, naming the variable.
pub(crate) const UNSUPPORTED_MODES: &[(&str, &str)] = &[(
    "vip_wireguard",
    "WireGuard mode is not implemented in vipd; use ARP/NDP mode (vip_arp=true)",
)];

/// One warning line per kube-vip variable in `env` that vipd ignores or does
/// not know, in name order so output is stable.
pub(crate) fn warnings(env: &HashMap<String, String>) -> Vec<String> {
    let mut names: Vec<&String> = env.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let value = env.get(name).map(String::as_str).unwrap_or_default();
        if HONOURED.contains(&name.as_str()) {
            continue;
        }
        // kube-vip treats an empty value as unset, and a feature toggle set
        // to false behaves the same in kube-vip and vipd: nothing to report.
        let inert = value.trim().is_empty() || values::boolean(value) == Ok(false);
        if IGNORED.contains(&name.as_str()) {
            if !inert {
                out.push(format!(
                    "kube-vip variable {name} is not used by vipd and is ignored"
                ));
            }
            continue;
        }
        if let Some(known) = HONOURED
            .iter()
            .chain(IGNORED)
            .find(|k| k.eq_ignore_ascii_case(name))
        {
            out.push(format!(
                "unknown kube-vip variable {name} is ignored (kube-vip's names are case-sensitive: did you mean {known}?)"
            ));
            continue;
        }
        if PREFIXES.iter().any(|p| name.starts_with(p)) {
            out.push(format!("unknown kube-vip variable {name} is ignored"));
        }
    }
    out
}
