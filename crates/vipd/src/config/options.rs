//! The option table (every option's flag, kube-vip flag alias, `VIPD_*`
//! and kube-vip variable names) and the clap definitions that tokenise the
//! command line. Resolution lives in the parent module.

use std::collections::HashMap;

use clap::{Args, Parser, Subcommand};

use super::kubevip_flags::KubeVipFlags;

/// One option's spellings: long flag, kube-vip's flag (a clap alias),
/// `VIPD_*` variable, kube-vip variables in precedence order.
pub(super) struct Opt {
    pub(super) key: &'static str,
    pub(super) kube_flag: Option<&'static str>,
    pub(super) env: &'static str,
    pub(super) kube: &'static [&'static str],
}

impl Opt {
    /// `--lease-duration/--leaseDuration (VIPD_LEASE_DURATION, vip_leaseduration)`.
    pub(super) fn describe(&self) -> String {
        let mut s = format!("--{}", self.key);
        if let Some(k) = self.kube_flag {
            s.push_str(&format!("/--{k}"));
        }
        s.push_str(&format!(" ({}", self.env));
        for k in self.kube {
            s.push_str(&format!(", {k}"));
        }
        s.push(')');
        s
    }
}

macro_rules! opts {
    ($($id:ident = $key:literal, $kflag:expr, $env:literal, [$($kube:literal),*];)*) => {
        $(pub(super) const $id: Opt = Opt { key: $key, kube_flag: $kflag, env: $env, kube: &[$($kube),*] };)*
        /// Every option, in `describe` order.
        pub(super) const ALL: &[&Opt] = &[$(&$id),*];
    };
}

opts! {
    ADDRESS = "address", Some("vip"), "VIPD_ADDRESS", ["address", "vip_address"];
    INTERFACE = "interface", None, "VIPD_INTERFACE", ["vip_interface"];
    SUBNET = "subnet", Some("vipSubnet"), "VIPD_SUBNET", ["vip_subnet", "vip_cidr"];
    WAIT_FOR_INTERFACE = "wait-for-interface", None, "VIPD_WAIT_FOR_INTERFACE", [];
    ARP = "arp", None, "VIPD_ARP", ["vip_arp"];
    ARP_RATE = "arp-rate", None, "VIPD_ARP_RATE", ["vip_arpRate"];
    NODE_NAME = "node-name", Some("nodeName"), "VIPD_NODE_NAME", ["vip_nodename"];
    LEASE_NAME = "lease-name", Some("leaseName"), "VIPD_LEASE_NAME", ["vip_leasename"];
    LEASE_NAMESPACE = "lease-namespace", Some("namespace"), "VIPD_LEASE_NAMESPACE", ["cp_namespace"];
    LEASE_DURATION = "lease-duration", Some("leaseDuration"), "VIPD_LEASE_DURATION", ["vip_leaseduration"];
    RENEW_DEADLINE = "renew-deadline", Some("leaseRenewDuration"), "VIPD_RENEW_DEADLINE", ["vip_renewdeadline"];
    RETRY_PERIOD = "retry-period", Some("leaseRetry"), "VIPD_RETRY_PERIOD", ["vip_retryperiod"];
    BACKEND = "backend", Some("leaderElectionType"), "VIPD_BACKEND", [];
    ETCD_ENDPOINTS = "etcd-endpoints", Some("etcdEndpoints"), "VIPD_ETCD_ENDPOINTS", [];
    ETCD_CA_CERT = "etcd-ca-cert", Some("etcdCACert"), "VIPD_ETCD_CA_CERT", [];
    ETCD_CERT = "etcd-cert", Some("etcdCert"), "VIPD_ETCD_CERT", [];
    ETCD_KEY = "etcd-key", Some("etcdKey"), "VIPD_ETCD_KEY", [];
    CONTROL_PLANE = "control-plane", Some("controlplane"), "VIPD_CONTROL_PLANE", ["cp_enable"];
    SERVICES = "services", None, "VIPD_SERVICES", ["svc_enable"];
    SERVICES_NAMESPACE = "services-namespace", None, "VIPD_SERVICES_NAMESPACE", ["svc_namespace"];
    SERVICES_INTERFACE = "services-interface", Some("serviceInterface"), "VIPD_SERVICES_INTERFACE", ["vip_servicesinterface"];
    LB_CLASS_ONLY = "lb-class-only", Some("lbClassOnly"), "VIPD_LB_CLASS_ONLY", ["lb_class_only"];
    LB_CLASS_NAME = "lb-class-name", Some("lbClassName"), "VIPD_LB_CLASS_NAME", ["lb_class_name"];
    SERVICES_NODE_SELECTOR = "services-node-selector", None, "VIPD_SERVICES_NODE_SELECTOR", [];
    ZONE_FALLBACK = "zone-fallback", None, "VIPD_ZONE_FALLBACK", [];
    PREEMPT = "preempt", None, "VIPD_PREEMPT", [];
    IPAM_CONFIGMAP = "ipam-configmap", None, "VIPD_IPAM_CONFIGMAP", [];
    ANNOUNCE_MAX_PPS = "announce-max-pps", None, "VIPD_ANNOUNCE_MAX_PPS", [];
    API_PORT = "api-port", Some("port"), "VIPD_API_PORT", ["port"];
    KUBERNETES_ADDR = "kubernetes-addr", None, "VIPD_KUBERNETES_ADDR", ["kubernetes_addr"];
    KUBECONFIG = "kubeconfig", Some("k8sConfigPath"), "VIPD_KUBECONFIG", ["k8s_config_file"];
    PROMETHEUS_SERVER = "prometheus-server", Some("prometheusHTTPServer"), "VIPD_PROMETHEUS_SERVER", ["prometheus_server"];
    LOG_LEVEL = "log-level", Some("log"), "VIPD_LOG_LEVEL", ["vip_loglevel"];
    LOG_FORMAT = "log-format", None, "VIPD_LOG_FORMAT", [];
    RECONCILE_PERIOD = "reconcile-period", None, "VIPD_RECONCILE_PERIOD", [];
    WITHDRAW_DRAIN = "withdraw-drain", None, "VIPD_WITHDRAW_DRAIN", [];
    ROUTED_ARP_IGNORE = "routed-arp-ignore", None, "VIPD_ROUTED_ARP_IGNORE", [];
    KUBE_API_QPS = "kube-api-qps", None, "VIPD_KUBE_API_QPS", [];
    KUBE_API_BURST = "kube-api-burst", None, "VIPD_KUBE_API_BURST", [];
    KUBE_API_TIMEOUT = "kube-api-timeout", None, "VIPD_KUBE_API_TIMEOUT", [];
    HEALTH_CHECKS = "health-check", None, "VIPD_HEALTH_CHECKS", [];
    HEALTH_ADDRESS = "health-check-address", Some("controlPlaneHealthCheckAddress"), "VIPD_HEALTH_CHECK_ADDRESS", ["control_plane_health_check_address"];
    HEALTH_PERIOD = "health-check-period", Some("controlPlaneHealthCheckPeriodSeconds"), "VIPD_HEALTH_CHECK_PERIOD", ["control_plane_health_check_period_seconds"];
    HEALTH_TIMEOUT = "health-check-timeout", Some("controlPlaneHealthCheckTimeoutSeconds"), "VIPD_HEALTH_CHECK_TIMEOUT", ["control_plane_health_check_timeout_seconds"];
    HEALTH_FAILURE_THRESHOLD = "health-check-failure-threshold", Some("controlPlaneHealthCheckFailureThreshold"), "VIPD_HEALTH_CHECK_FAILURE_THRESHOLD", ["control_plane_health_check_failure_threshold"];
    HEALTH_CA_PATH = "health-check-ca-path", Some("controlPlaneHealthCheckCAPath"), "VIPD_HEALTH_CHECK_CA_PATH", ["control_plane_health_check_ca_path"];
    COORDINATION = "coordination", None, "VIPD_COORDINATION", [];
    PEERS = "peers", None, "VIPD_PEERS", [];
    PEER_KEY_FILE = "peer-key-file", None, "VIPD_PEER_KEY_FILE", [];
    QUORUM_PROMISE = "quorum-promise", None, "VIPD_QUORUM_PROMISE", [];
    QUORUM_HEARTBEAT = "quorum-heartbeat", None, "VIPD_QUORUM_HEARTBEAT", [];
    QUORUM_DRIFT_PPM = "quorum-drift-ppm", None, "VIPD_QUORUM_DRIFT_PPM", [];
    // BGP mode (SPEC §5b), kube-vip's names (`bgp.rs`).
    BGP = "bgp", None, "VIPD_BGP", ["bgp_enable"];
    BGP_ROUTER_ID = "bgp-router-id", Some("bgpRouterID"), "VIPD_BGP_ROUTER_ID", ["bgp_routerid"];
    BGP_ROUTER_INTERFACE = "bgp-router-interface", None, "VIPD_BGP_ROUTER_INTERFACE", ["bgp_routerinterface"];
    BGP_AS = "bgp-as", Some("localAS"), "VIPD_BGP_AS", ["bgp_as"];
    BGP_PEERS = "bgp-peers", Some("bgppeers"), "VIPD_BGP_PEERS", ["bgp_peers"];
    BGP_PEER_ADDRESS = "bgp-peer-address", Some("peerAddress"), "VIPD_BGP_PEER_ADDRESS", ["bgp_peeraddress"];
    BGP_PEER_AS = "bgp-peer-as", Some("peerAS"), "VIPD_BGP_PEER_AS", ["bgp_peeras"];
    BGP_PEER_PASS = "bgp-peer-pass", Some("peerPass"), "VIPD_BGP_PEER_PASS", ["bgp_peerpass"];
    BGP_MULTIHOP = "bgp-multihop", Some("multihop"), "VIPD_BGP_MULTIHOP", ["bgp_multihop"];
    BGP_SOURCE_IF = "bgp-source-if", Some("sourceIF"), "VIPD_BGP_SOURCE_IF", ["bgp_sourceif"];
    BGP_SOURCE_IP = "bgp-source-ip", Some("sourceIP"), "VIPD_BGP_SOURCE_IP", ["bgp_sourceip"];
    BGP_HOLD_TIME = "bgp-hold-time", Some("bgpHoldTimer"), "VIPD_BGP_HOLD_TIME", ["bgp_hold_time"];
    BGP_KEEPALIVE = "bgp-keepalive-interval", Some("bgpKeepAliveInterval"), "VIPD_BGP_KEEPALIVE_INTERVAL", ["bgp_keepalive_interval"];
    MPBGP_NEXTHOP = "mpbgp-nexthop", None, "VIPD_MPBGP_NEXTHOP", ["mpbgp_nexthop"];
    MPBGP_IPV4 = "mpbgp-ipv4", None, "VIPD_MPBGP_IPV4", ["mpbgp_ipv4"];
    MPBGP_IPV6 = "mpbgp-ipv6", None, "VIPD_MPBGP_IPV6", ["mpbgp_ipv6"];
    BGP_ANNOTATIONS = "bgp-annotations", Some("annotations"), "VIPD_BGP_ANNOTATIONS", ["annotation"];
    // Routing-table mode. kube-vip reads vip_routingtableid and
    // vip_routingprotocol (pkg/kubevip/config_envvar.go); issue 14 spells
    // them vip_routingtable_id and vip_routingtable_protocol, which are
    // accepted too, after kube-vip's own names.
    ROUTING_TABLE = "routing-table", Some("table"), "VIPD_ROUTING_TABLE", ["vip_routingtable"];
    ROUTING_TABLE_ID = "routing-table-id", Some("tableID"), "VIPD_ROUTING_TABLE_ID", ["vip_routingtableid", "vip_routingtable_id"];
    ROUTING_TABLE_TYPE = "routing-table-type", Some("tableType"), "VIPD_ROUTING_TABLE_TYPE", ["vip_routingtabletype"];
    ROUTING_PROTOCOL = "routing-protocol", Some("routingProtocol"), "VIPD_ROUTING_PROTOCOL", ["vip_routingprotocol", "vip_routingtable_protocol"];
    CLEAN_ROUTING_TABLE = "clean-routing-table", Some("cleanRoutingTable"), "VIPD_CLEAN_ROUTING_TABLE", ["vip_cleanroutingtable"];
}

/// `--config` itself: flag or `VIPD_CONFIG` only.
pub(super) const CONFIG_ENV: &str = "VIPD_CONFIG";

#[derive(Parser, Debug)]
#[command(
    name = "vipd",
    version,
    about = "Keeps virtual IPs reachable on bare-metal clusters, through network outages"
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: CliCommand,
}

#[derive(Subcommand, Debug)]
pub(super) enum CliCommand {
    /// Run the daemon (alias: manager, kube-vip's subcommand).
    #[command(visible_alias = "manager")]
    Run(RawOptions),
    /// Validate the configuration and print the effective values; exit 2 on error.
    CheckConfig(RawOptions),
    /// Print ready-to-apply Kubernetes YAML (kube-vip's `manifest`).
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Ask the running daemon (its HTTP endpoint) what it holds and why; exit 1 if unreachable, 3 if it holds nothing it should
    Status(StatusArgs),
    /// Fault-injection lab: real vipd processes in network namespaces, measured
    Lab(vipd_lab::LabArgs),
    /// A quorum voter that never holds an address: the third voter of a two-node cluster (quorum mode)
    Witness(WitnessArgs),
    /// Print the version.
    Version,
    /// Internal: the address guard the daemon starts for itself.
    #[command(hide = true)]
    Guard,
}

/// `vipd manifest pod|daemonset|rbac`.
#[derive(Subcommand, Debug)]
pub(super) enum ManifestCommand {
    /// A static pod for kubeadm control-plane nodes (/etc/kubernetes/manifests).
    Pod(PodManifestArgs),
    /// A DaemonSet on control-plane nodes using the in-cluster service account.
    #[command(alias = "ds")]
    Daemonset(DaemonSetManifestArgs),
    /// ServiceAccount, Role and RoleBinding with the least privilege vipd needs.
    Rbac(RbacManifestArgs),
}

/// Options of `manifest pod`: the daemon's options plus the image and the
/// kubeconfig file on the host.
#[derive(Args, Debug)]
pub(super) struct PodManifestArgs {
    /// Container image; default ghcr.io/vipd/vipd:v<version> (a placeholder name)
    #[arg(long, value_name = "IMAGE")]
    pub(super) image: Option<String>,
    /// Kubeconfig on the host, mounted read-only into the pod; default
    /// /etc/kubernetes/admin.conf (use /etc/kubernetes/super-admin.conf on the
    /// first control-plane node of a kubeadm >= 1.29 cluster during `kubeadm init`)
    #[arg(long, value_name = "FILE")]
    pub(super) kubeconfig_host_path: Option<String>,
    /// Authenticate with the vipd ServiceAccount (`vipd manifest rbac`)
    /// instead of the host's kubeconfig, as kube-vip's --inCluster does; for
    /// a pod applied through the API: a static pod cannot use a ServiceAccount
    #[arg(long, alias = "inCluster", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub(super) in_cluster: Option<String>,
    #[command(flatten)]
    pub(super) options: RawOptions,
}

/// Options of `manifest daemonset`: the daemon's options plus the image and
/// kube-vip's placement and credential switches.
#[derive(Args, Debug)]
pub(super) struct DaemonSetManifestArgs {
    /// Container image; default ghcr.io/vipd/vipd:v<version> (a placeholder name)
    #[arg(long, value_name = "IMAGE")]
    pub(super) image: Option<String>,
    /// kube-vip's --inCluster: the DaemonSet always authenticates with the
    /// vipd ServiceAccount, so this is accepted for compatibility
    #[arg(long, alias = "inCluster", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub(super) in_cluster: Option<String>,
    /// Run only on control-plane nodes, tolerating their taints (kube-vip's
    /// --taint); default true; --taint=false: every schedulable node
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub(super) taint: Option<String>,
    #[command(flatten)]
    pub(super) options: RawOptions,
}

/// Options of `manifest rbac`.
#[derive(Args, Debug)]
pub(super) struct RbacManifestArgs {
    /// Namespace of the lease (where the Role and RoleBinding go); default
    /// kube-system [env: VIPD_LEASE_NAMESPACE, cp_namespace]
    #[arg(long, alias = "namespace", short_alias = 'n', value_name = "NS")]
    pub(super) lease_namespace: Option<String>,
    /// Add the cluster-wide permissions of Services mode (ClusterRole and
    /// ClusterRoleBinding) [env: VIPD_SERVICES, svc_enable]
    #[arg(long)]
    pub(super) services: bool,
}

/// Options of `vipd status`.
#[derive(Args, Debug)]
pub(super) struct StatusArgs {
    /// Print the daemon's /status JSON instead of the table
    #[arg(long)]
    pub(super) json: bool,
    /// The daemon's HTTP address, as given to `vipd run`; a wildcard host means this machine; default :2112 [env: VIPD_PROMETHEUS_SERVER, prometheus_server]
    #[arg(long, alias = "prometheusHTTPServer", value_name = "ADDR")]
    pub(super) prometheus_server: Option<String>,
    /// Seconds to wait for the answer
    #[arg(long, default_value = "3", value_name = "SECONDS")]
    pub(super) timeout: String,
}

/// Flags as typed; resolution and parsing happen in [`Resolver`]. Each help
/// line names the environment variables, highest precedence first.
#[derive(Args, Debug, Default)]
pub(super) struct RawOptions {
    /// Configuration file of `key: value` lines (keys = long flag names) [env: VIPD_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<String>,
    /// The virtual IP [env: VIPD_ADDRESS, address, vip_address]
    #[arg(long, alias = "vip", value_name = "IP")]
    address: Option<String>,
    /// Interface that carries the VIP [env: VIPD_INTERFACE, vip_interface]
    #[arg(long, value_name = "NAME")]
    interface: Option<String>,
    /// Prefix length of the VIP; default 32 (IPv4) or 128 (IPv6) [env: VIPD_SUBNET, vip_subnet, vip_cidr (deprecated)]
    // `--cidr`: kube-vip's older spelling, still in its flag documentation.
    #[arg(long, aliases = ["vipSubnet", "cidr"], value_name = "LEN")]
    subnet: Option<String>,
    /// Wait for a missing interface instead of failing [env: VIPD_WAIT_FOR_INTERFACE]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    wait_for_interface: Option<String>,
    /// Announce with gratuitous ARP / unsolicited NA; default true [env: VIPD_ARP, vip_arp]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    arp: Option<String>,
    /// Periodic announcement refresh in ms, 0 = off; default 30000 [env: VIPD_ARP_RATE, vip_arpRate]
    #[arg(long, value_name = "MS")]
    arp_rate: Option<String>,
    /// Lease holder identity; default the hostname [env: VIPD_NODE_NAME, vip_nodename]
    #[arg(long, alias = "nodeName", value_name = "NAME")]
    node_name: Option<String>,
    /// Lease name, or NAMESPACE/NAME; default plndr-cp-lock [env: VIPD_LEASE_NAME, vip_leasename]
    #[arg(long, alias = "leaseName", value_name = "NAME")]
    lease_name: Option<String>,
    /// Lease namespace; default kube-system [env: VIPD_LEASE_NAMESPACE, cp_namespace]
    #[arg(long, alias = "namespace", short_alias = 'n', value_name = "NS")]
    lease_namespace: Option<String>,
    /// Lease duration in seconds (fractions allowed); default 15 [env: VIPD_LEASE_DURATION, vip_leaseduration]
    #[arg(long, alias = "leaseDuration", value_name = "SECS")]
    lease_duration: Option<String>,
    /// Renew deadline in seconds; default 10 [env: VIPD_RENEW_DEADLINE, vip_renewdeadline]
    #[arg(long, alias = "leaseRenewDuration", value_name = "SECS")]
    renew_deadline: Option<String>,
    /// Retry period in seconds; default 2 [env: VIPD_RETRY_PERIOD, vip_retryperiod]
    #[arg(long, alias = "leaseRetry", value_name = "SECS")]
    retry_period: Option<String>,
    /// Lease backend: kubernetes (default) or etcd [env: VIPD_BACKEND]
    #[arg(long, alias = "leaderElectionType", value_name = "BACKEND")]
    backend: Option<String>,
    /// Comma-separated etcd endpoints [env: VIPD_ETCD_ENDPOINTS]
    #[arg(long, alias = "etcdEndpoints", value_name = "URLS")]
    etcd_endpoints: Option<String>,
    /// etcd CA bundle [env: VIPD_ETCD_CA_CERT]
    #[arg(long, alias = "etcdCACert", value_name = "FILE")]
    etcd_ca_cert: Option<String>,
    /// etcd client certificate [env: VIPD_ETCD_CERT]
    #[arg(long, alias = "etcdCert", value_name = "FILE")]
    etcd_cert: Option<String>,
    /// etcd client key [env: VIPD_ETCD_KEY]
    #[arg(long, alias = "etcdKey", value_name = "FILE")]
    etcd_key: Option<String>,
    /// Control-plane mode [env: VIPD_CONTROL_PLANE, cp_enable]
    #[arg(long, alias = "controlplane", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    control_plane: Option<String>,
    /// Services mode: announce LoadBalancer Service addresses [env: VIPD_SERVICES, svc_enable]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    services: Option<String>,
    /// Serve only Services of this namespace; default all [env: VIPD_SERVICES_NAMESPACE, svc_namespace]
    #[arg(long, value_name = "NS")]
    services_namespace: Option<String>,
    /// Interface for Service addresses; default --interface [env: VIPD_SERVICES_INTERFACE, vip_servicesinterface]
    #[arg(long, alias = "serviceInterface", value_name = "NAME")]
    services_interface: Option<String>,
    /// Serve only Services whose loadBalancerClass is --lb-class-name [env: VIPD_LB_CLASS_ONLY, lb_class_only]
    #[arg(long, alias = "lbClassOnly", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    lb_class_only: Option<String>,
    /// loadBalancerClass served; default kube-vip.io/kube-vip-class [env: VIPD_LB_CLASS_NAME, lb_class_name]
    #[arg(long, alias = "lbClassName", value_name = "CLASS")]
    lb_class_name: Option<String>,
    /// Node labels a node needs to announce Service addresses, k=v[,k=v] [env: VIPD_SERVICES_NODE_SELECTOR]
    #[arg(long, value_name = "LABELS")]
    services_node_selector: Option<String>,
    /// Let a zone-pinned address leave its zone when no node of the zone is up; default false [env: VIPD_ZONE_FALLBACK]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    zone_fallback: Option<String>,
    /// Move an address back to its preferred node when that node returns; default false [env: VIPD_PREEMPT]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    preempt: Option<String>,
    /// IPAM pools ConfigMap (kube-vip-cloud-provider format), NAMESPACE/NAME; default kube-system/kubevip; empty disables IPAM [env: VIPD_IPAM_CONFIGMAP]
    #[arg(long, value_name = "NS/NAME")]
    ipam_configmap: Option<String>,
    /// Cap on announcement frames per second per interface, 0 = none; default 1000 [env: VIPD_ANNOUNCE_MAX_PPS]
    #[arg(long, value_name = "PPS")]
    announce_max_pps: Option<String>,
    /// Local API server port; default 6443 [env: VIPD_API_PORT, port]
    #[arg(long, alias = "port", value_name = "PORT")]
    api_port: Option<String>,
    /// Local API server address [env: VIPD_KUBERNETES_ADDR, kubernetes_addr]
    #[arg(long, value_name = "HOST:PORT")]
    kubernetes_addr: Option<String>,
    /// Kubeconfig file [env: VIPD_KUBECONFIG, k8s_config_file]
    #[arg(long, alias = "k8sConfigPath", value_name = "FILE")]
    kubeconfig: Option<String>,
    /// HTTP listen address for /metrics, /healthz, /readyz, /status; empty disables; default :2112 [env: VIPD_PROMETHEUS_SERVER, prometheus_server]
    #[arg(long, alias = "prometheusHTTPServer", value_name = "ADDR")]
    prometheus_server: Option<String>,
    /// error|warn|info|debug|trace or kube-vip's 0-6; default info [env: VIPD_LOG_LEVEL, vip_loglevel]
    #[arg(long, alias = "log", value_name = "LEVEL")]
    log_level: Option<String>,
    /// text (default) or json [env: VIPD_LOG_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// Reconcile period in seconds; default 5 [env: VIPD_RECONCILE_PERIOD]
    #[arg(long, value_name = "SECS")]
    reconcile_period: Option<String>,
    /// BGP / routing-table mode, every node announcing: seconds an address keeps serving after its route is withdrawn, while the routers converge; default 0.5 [env: VIPD_WITHDRAW_DRAIN]
    #[arg(long, value_name = "SECS")]
    withdraw_drain: Option<String>,
    /// BGP / routing-table mode: raise arp_ignore to 1 and arp_announce to 2 on the node's other IPv4 interfaces, so the kernel never answers ARP for (or sends ARP from) a VIP bound on lo; true or false, default true [env: VIPD_ROUTED_ARP_IGNORE]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    routed_arp_ignore: Option<String>,
    /// Queries per second of the general Kubernetes client (events; never the lease); default 50 [env: VIPD_KUBE_API_QPS]
    #[arg(long, value_name = "QPS")]
    kube_api_qps: Option<String>,
    /// Burst of the general Kubernetes client; default 100 [env: VIPD_KUBE_API_BURST]
    #[arg(long, value_name = "N")]
    kube_api_burst: Option<String>,
    /// Request timeout of the general Kubernetes client in seconds; default 30 [env: VIPD_KUBE_API_TIMEOUT]
    #[arg(long, value_name = "SECS")]
    kube_api_timeout: Option<String>,
    /// Health check, repeatable: https://127.0.0.1:6443/livez, tcp://HOST:PORT or icmp://IP; default in control-plane mode https://127.0.0.1:<api-port>/livez [env: VIPD_HEALTH_CHECKS, comma-separated]
    #[arg(long = "health-check", value_name = "SPEC", action = clap::ArgAction::Append)]
    health_checks: Vec<String>,
    /// One HTTP(S) health check URL (kube-vip's) [env: VIPD_HEALTH_CHECK_ADDRESS, control_plane_health_check_address]
    #[arg(long, alias = "controlPlaneHealthCheckAddress", value_name = "URL")]
    health_check_address: Option<String>,
    /// Seconds between health checks; default 5 [env: VIPD_HEALTH_CHECK_PERIOD, control_plane_health_check_period_seconds]
    #[arg(
        long,
        alias = "controlPlaneHealthCheckPeriodSeconds",
        value_name = "SECS"
    )]
    health_check_period: Option<String>,
    /// Timeout of one health check in seconds; default 3 [env: VIPD_HEALTH_CHECK_TIMEOUT, control_plane_health_check_timeout_seconds]
    #[arg(
        long,
        alias = "controlPlaneHealthCheckTimeoutSeconds",
        value_name = "SECS"
    )]
    health_check_timeout: Option<String>,
    /// Consecutive failures before a check counts as down; default 3 [env: VIPD_HEALTH_CHECK_FAILURE_THRESHOLD, control_plane_health_check_failure_threshold]
    #[arg(
        long,
        alias = "controlPlaneHealthCheckFailureThreshold",
        value_name = "N"
    )]
    health_check_failure_threshold: Option<String>,
    /// PEM CA bundle that verifies HTTPS health checks [env: VIPD_HEALTH_CHECK_CA_PATH, control_plane_health_check_ca_path]
    #[arg(long, alias = "controlPlaneHealthCheckCAPath", value_name = "FILE")]
    health_check_ca_path: Option<String>,
    #[command(flatten)]
    pub(super) quorum: QuorumArgs,
    #[command(flatten)]
    pub(super) bgp: BgpArgs,
    /// kube-vip's flags without a vipd option (`kubevip_flags.rs`): taken
    /// out before [`RawOptions::into_map`] and checked on their own.
    #[command(flatten)]
    pub(super) kube_vip: KubeVipFlags,
}

impl RawOptions {
    /// Flags keyed by option key.
    pub(super) fn into_map(self) -> HashMap<&'static str, String> {
        let pairs = [
            (ADDRESS.key, self.address),
            (INTERFACE.key, self.interface),
            (SUBNET.key, self.subnet),
            (WAIT_FOR_INTERFACE.key, self.wait_for_interface),
            (ARP.key, self.arp),
            (ARP_RATE.key, self.arp_rate),
            (NODE_NAME.key, self.node_name),
            (LEASE_NAME.key, self.lease_name),
            (LEASE_NAMESPACE.key, self.lease_namespace),
            (LEASE_DURATION.key, self.lease_duration),
            (RENEW_DEADLINE.key, self.renew_deadline),
            (RETRY_PERIOD.key, self.retry_period),
            (BACKEND.key, self.backend),
            (ETCD_ENDPOINTS.key, self.etcd_endpoints),
            (ETCD_CA_CERT.key, self.etcd_ca_cert),
            (ETCD_CERT.key, self.etcd_cert),
            (ETCD_KEY.key, self.etcd_key),
            (CONTROL_PLANE.key, self.control_plane),
            (SERVICES.key, self.services),
            (SERVICES_NAMESPACE.key, self.services_namespace),
            (SERVICES_INTERFACE.key, self.services_interface),
            (LB_CLASS_ONLY.key, self.lb_class_only),
            (LB_CLASS_NAME.key, self.lb_class_name),
            (SERVICES_NODE_SELECTOR.key, self.services_node_selector),
            (ZONE_FALLBACK.key, self.zone_fallback),
            (PREEMPT.key, self.preempt),
            (IPAM_CONFIGMAP.key, self.ipam_configmap),
            (ANNOUNCE_MAX_PPS.key, self.announce_max_pps),
            (API_PORT.key, self.api_port),
            (KUBERNETES_ADDR.key, self.kubernetes_addr),
            (KUBECONFIG.key, self.kubeconfig),
            (PROMETHEUS_SERVER.key, self.prometheus_server),
            (LOG_LEVEL.key, self.log_level),
            (LOG_FORMAT.key, self.log_format),
            (RECONCILE_PERIOD.key, self.reconcile_period),
            (WITHDRAW_DRAIN.key, self.withdraw_drain),
            (ROUTED_ARP_IGNORE.key, self.routed_arp_ignore),
            (KUBE_API_QPS.key, self.kube_api_qps),
            (KUBE_API_BURST.key, self.kube_api_burst),
            (KUBE_API_TIMEOUT.key, self.kube_api_timeout),
            // Repeated flags travel as one comma-separated value, the
            // spelling of VIPD_HEALTH_CHECKS, so every layer parses alike.
            (
                HEALTH_CHECKS.key,
                (!self.health_checks.is_empty()).then(|| self.health_checks.join(",")),
            ),
            (HEALTH_ADDRESS.key, self.health_check_address),
            (HEALTH_PERIOD.key, self.health_check_period),
            (HEALTH_TIMEOUT.key, self.health_check_timeout),
            (
                HEALTH_FAILURE_THRESHOLD.key,
                self.health_check_failure_threshold,
            ),
            (HEALTH_CA_PATH.key, self.health_check_ca_path),
        ];
        let mut map: HashMap<&'static str, String> = pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        map.extend(self.quorum.into_pairs());
        map.extend(self.bgp.into_pairs());
        map
    }
}

/// BGP and routing-table options (SPEC §5b), each with kube-vip's flag as
/// an alias; what they mean is in `bgp.rs`.
#[derive(Args, Debug, Default)]
pub(super) struct BgpArgs {
    /// BGP mode: announce the VIPs to BGP peers (validated, not wired into the daemon yet) [env: VIPD_BGP, bgp_enable]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    bgp: Option<String>,
    /// BGP router ID, an IPv4 address [env: VIPD_BGP_ROUTER_ID, bgp_routerid]
    #[arg(long, alias = "bgpRouterID", value_name = "IPV4")]
    bgp_router_id: Option<String>,
    /// Take the router ID from this interface's IPv4 address when --bgp-router-id is unset [env: VIPD_BGP_ROUTER_INTERFACE, bgp_routerinterface]
    #[arg(long, value_name = "NAME")]
    bgp_router_interface: Option<String>,
    /// Local AS (4-octet); default 65000 [env: VIPD_BGP_AS, bgp_as]
    #[arg(long, alias = "localAS", value_name = "AS")]
    bgp_as: Option<String>,
    /// BGP peers, repeatable and comma-separated: ADDRESS:AS[:PASSWORD[:MULTIHOP[:PORT[:MPBGP[:BFD]]]]], IPv6 as [2001:db8::1] [env: VIPD_BGP_PEERS, bgp_peers]
    #[arg(long, alias = "bgppeers", value_name = "PEERS", action = clap::ArgAction::Append)]
    bgp_peers: Vec<String>,
    /// One more peer, after --bgp-peers [env: VIPD_BGP_PEER_ADDRESS, bgp_peeraddress]
    #[arg(long, alias = "peerAddress", value_name = "IP")]
    bgp_peer_address: Option<String>,
    /// AS of --bgp-peer-address; default 65000 [env: VIPD_BGP_PEER_AS, bgp_peeras]
    #[arg(long, alias = "peerAS", value_name = "AS")]
    bgp_peer_as: Option<String>,
    /// TCP MD5 password of --bgp-peer-address [env: VIPD_BGP_PEER_PASS, bgp_peerpass]
    #[arg(long, alias = "peerPass", value_name = "PASSWORD")]
    bgp_peer_pass: Option<String>,
    /// eBGP multihop for --bgp-peer-address; default false [env: VIPD_BGP_MULTIHOP, bgp_multihop]
    #[arg(long, alias = "multihop", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    bgp_multihop: Option<String>,
    /// Interface the BGP sessions bind to [env: VIPD_BGP_SOURCE_IF, bgp_sourceif]
    #[arg(long, alias = "sourceIF", value_name = "NAME")]
    bgp_source_if: Option<String>,
    /// Local address of the BGP sessions [env: VIPD_BGP_SOURCE_IP, bgp_sourceip]
    #[arg(long, alias = "sourceIP", value_name = "IP")]
    bgp_source_ip: Option<String>,
    /// Hold time in whole seconds, 0 or 3-65535; default 30 [env: VIPD_BGP_HOLD_TIME, bgp_hold_time]
    #[arg(long, alias = "bgpHoldTimer", value_name = "SECS")]
    bgp_hold_time: Option<String>,
    /// Keepalive interval in whole seconds, below the hold time; default 10 [env: VIPD_BGP_KEEPALIVE_INTERVAL, bgp_keepalive_interval]
    #[arg(long, alias = "bgpKeepAliveInterval", value_name = "SECS")]
    bgp_keepalive_interval: Option<String>,
    /// MP-BGP next hop of the other family: fixed, auto_sourceif or auto_sourceip [env: VIPD_MPBGP_NEXTHOP, mpbgp_nexthop]
    #[arg(long, value_name = "MODE")]
    mpbgp_nexthop: Option<String>,
    /// IPv4 next hop with --mpbgp-nexthop fixed [env: VIPD_MPBGP_IPV4, mpbgp_ipv4]
    #[arg(long, value_name = "IPV4")]
    mpbgp_ipv4: Option<String>,
    /// IPv6 next hop with --mpbgp-nexthop fixed [env: VIPD_MPBGP_IPV6, mpbgp_ipv6]
    #[arg(long, value_name = "IPV6")]
    mpbgp_ipv6: Option<String>,
    /// Node-annotation prefix carrying per-node BGP settings (kube-vip's `annotation`) [env: VIPD_BGP_ANNOTATIONS, annotation]
    #[arg(long, alias = "annotations", value_name = "PREFIX")]
    bgp_annotations: Option<String>,
    /// Routing-table mode: write the control-plane VIP's host route into a kernel table for a host routing daemon (not yet for Services) [env: VIPD_ROUTING_TABLE, vip_routingtable]
    #[arg(long, alias = "table", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    routing_table: Option<String>,
    /// Kernel routing table ID; default 198 [env: VIPD_ROUTING_TABLE_ID, vip_routingtableid]
    #[arg(long, alias = "tableID", value_name = "ID")]
    routing_table_id: Option<String>,
    /// Route type (RTN_* number, 1 = unicast); default 1 [env: VIPD_ROUTING_TABLE_TYPE, vip_routingtabletype]
    #[arg(long, alias = "tableType", value_name = "TYPE")]
    routing_table_type: Option<String>,
    /// Route protocol number marking vipd's routes; default 248 [env: VIPD_ROUTING_PROTOCOL, vip_routingprotocol]
    #[arg(long, alias = "routingProtocol", value_name = "PROTO")]
    routing_protocol: Option<String>,
    /// Remove stale routes of --routing-protocol from the table at start; default false [env: VIPD_CLEAN_ROUTING_TABLE, vip_cleanroutingtable]
    #[arg(long, alias = "cleanRoutingTable", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    clean_routing_table: Option<String>,
}

impl BgpArgs {
    /// Flags keyed by option key; a repeated `--bgp-peers` travels as one
    /// comma-separated value, as kube-vip's string slice does.
    pub(super) fn into_pairs(self) -> impl Iterator<Item = (&'static str, String)> {
        [
            (BGP.key, self.bgp),
            (BGP_ROUTER_ID.key, self.bgp_router_id),
            (BGP_ROUTER_INTERFACE.key, self.bgp_router_interface),
            (BGP_AS.key, self.bgp_as),
            (
                BGP_PEERS.key,
                (!self.bgp_peers.is_empty()).then(|| self.bgp_peers.join(",")),
            ),
            (BGP_PEER_ADDRESS.key, self.bgp_peer_address),
            (BGP_PEER_AS.key, self.bgp_peer_as),
            (BGP_PEER_PASS.key, self.bgp_peer_pass),
            (BGP_MULTIHOP.key, self.bgp_multihop),
            (BGP_SOURCE_IF.key, self.bgp_source_if),
            (BGP_SOURCE_IP.key, self.bgp_source_ip),
            (BGP_HOLD_TIME.key, self.bgp_hold_time),
            (BGP_KEEPALIVE.key, self.bgp_keepalive_interval),
            (MPBGP_NEXTHOP.key, self.mpbgp_nexthop),
            (MPBGP_IPV4.key, self.mpbgp_ipv4),
            (MPBGP_IPV6.key, self.mpbgp_ipv6),
            (BGP_ANNOTATIONS.key, self.bgp_annotations),
            (ROUTING_TABLE.key, self.routing_table),
            (ROUTING_TABLE_ID.key, self.routing_table_id),
            (ROUTING_TABLE_TYPE.key, self.routing_table_type),
            (ROUTING_PROTOCOL.key, self.routing_protocol),
            (CLEAN_ROUTING_TABLE.key, self.clean_routing_table),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

/// Options of `vipd witness`: identity, the quorum, the HTTP endpoint and
/// logging; nothing about addresses, leases or the API.
#[derive(Args, Debug, Default)]
pub(super) struct WitnessArgs {
    /// Configuration file of `key: value` lines (keys = long flag names) [env: VIPD_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<String>,
    /// This voter's name in --peers; default the hostname [env: VIPD_NODE_NAME, vip_nodename]
    #[arg(long, alias = "nodeName", value_name = "NAME")]
    node_name: Option<String>,
    /// HTTP listen address for /metrics, /healthz, /readyz, /status; empty disables; default :2112 [env: VIPD_PROMETHEUS_SERVER, prometheus_server]
    #[arg(long, alias = "prometheusHTTPServer", value_name = "ADDR")]
    prometheus_server: Option<String>,
    /// error|warn|info|debug|trace or kube-vip's 0-6; default info [env: VIPD_LOG_LEVEL, vip_loglevel]
    #[arg(long, alias = "log", value_name = "LEVEL")]
    log_level: Option<String>,
    /// text (default) or json [env: VIPD_LOG_FORMAT]
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    #[command(flatten)]
    pub(super) quorum: QuorumArgs,
}

impl WitnessArgs {
    /// Flags keyed by option key.
    pub(super) fn into_map(self) -> HashMap<&'static str, String> {
        let mut map: HashMap<&'static str, String> = [
            (NODE_NAME.key, self.node_name),
            (PROMETHEUS_SERVER.key, self.prometheus_server),
            (LOG_LEVEL.key, self.log_level),
            (LOG_FORMAT.key, self.log_format),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        map.extend(self.quorum.into_pairs());
        map
    }
}

/// Quorum mode's options (SPEC §5a), shared by `vipd run` and `vipd witness`.
#[derive(Args, Debug, Default)]
pub(super) struct QuorumArgs {
    /// How ownership is decided: lease (default: the Kubernetes or etcd lease) or quorum (vipd peers vote over authenticated UDP) [env: VIPD_COORDINATION]
    #[arg(long, value_name = "MODE")]
    coordination: Option<String>,
    /// Quorum voters, this node included: NAME=IP[:PORT],... (port default 7480; IPv6 as NAME=[2001:db8::1]:PORT); the same list on every member [env: VIPD_PEERS]
    #[arg(long, value_name = "LIST")]
    peers: Option<String>,
    /// File holding the shared quorum key (at least 16 bytes; trailing whitespace ignored), e.g. from `openssl rand -hex 32` [env: VIPD_PEER_KEY_FILE]
    #[arg(long, value_name = "FILE")]
    peer_key_file: Option<String>,
    /// Quorum promise P in seconds: how long one vote or heartbeat ack backs the holder; default 0.6 [env: VIPD_QUORUM_PROMISE]
    #[arg(long, value_name = "SECS")]
    quorum_promise: Option<String>,
    /// Quorum heartbeat interval in seconds; default 0.1 [env: VIPD_QUORUM_HEARTBEAT]
    #[arg(long, value_name = "SECS")]
    quorum_heartbeat: Option<String>,
    /// Bound on any clock's rate error, in ppm; default 10000 (1%) [env: VIPD_QUORUM_DRIFT_PPM]
    #[arg(long, value_name = "PPM")]
    quorum_drift_ppm: Option<String>,
}

impl QuorumArgs {
    /// Flags keyed by option key.
    pub(super) fn into_pairs(self) -> impl Iterator<Item = (&'static str, String)> {
        [
            (COORDINATION.key, self.coordination),
            (PEERS.key, self.peers),
            (PEER_KEY_FILE.key, self.peer_key_file),
            (QUORUM_PROMISE.key, self.quorum_promise),
            (QUORUM_HEARTBEAT.key, self.quorum_heartbeat),
            (QUORUM_DRIFT_PPM.key, self.quorum_drift_ppm),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn lab_is_a_subcommand_listed_in_help() {
        let help = Cli::command().render_help().to_string();
        assert!(
            help.lines().any(|l| l.trim_start().starts_with("lab ")),
            "{help}"
        );
        let cli = Cli::try_parse_from(["vipd", "lab", "run", "--runs", "2"]).unwrap();
        let CliCommand::Lab(lab) = cli.command else {
            panic!("not lab: {:?}", cli.command)
        };
        assert!(matches!(lab.command, vipd_lab::LabCommand::Run(_)));
        // Usage errors are clap's, as for every other subcommand (exit 2).
        let err = Cli::try_parse_from(["vipd", "lab", "run", "--nodes", "1"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
