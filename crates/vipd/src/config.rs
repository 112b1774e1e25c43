//! Command line, environment and file configuration (SPEC §3).
//!
//! Every option has a long flag and a `VIPD_*` variable, and most also accept
//! kube-vip's environment variable with kube-vip's meaning, so a kube-vip
//! manifest with the image swapped runs vipd. Precedence, highest first:
//!
//! 1. command-line flag (`--lease-duration 5`, or kube-vip's spelling
//!    `--leaseDuration 5` where kube-vip has a flag),
//! 2. `VIPD_*` environment variable (`VIPD_LEASE_DURATION=5`),
//! 3. kube-vip environment variable (`vip_leaseduration=5`),
//! 4. the `--config FILE` (`lease-duration: 5`),
//! 5. the built-in default.
//!
//! Resolution is explicit (clap only tokenises the flags) so it can be tested
//! with an in-memory environment: [`parse_command`] and
//! [`Config::from_sources`] never read the process environment. An empty
//! kube-vip variable counts as unset, as in kube-vip; an empty `VIPD_*` or
//! flag value is a value (it disables the HTTP server, and is an error for
//! most other options).
//!
//! Everything is validated here, before any interface, lease or route is
//! touched; `main` exits with status 2 on a [`ConfigError`].

mod bgp;
pub mod bgp_annotations;
mod bgp_peers;
mod describe;
mod error;
mod file;
mod health;
mod kubevip;
mod kubevip_flags;
mod options;
mod quorum;
mod request;
mod services;
mod sources;
mod validate;
mod values;

pub use bgp::{
    BgpSettings, RouterId, RoutingTableSettings, DEFAULT_BGP_AS, DEFAULT_BGP_HOLD_TIME,
    DEFAULT_BGP_KEEPALIVE, DEFAULT_ROUTE_PROTOCOL, DEFAULT_ROUTE_TYPE, DEFAULT_ROUTING_TABLE_ID,
};
pub use bgp_peers::{
    parse_peers, BfdSettings, BgpPeer, Mpbgp, MpbgpNexthop, PeerError, Secret, DEFAULT_BGP_PORT,
};
use describe::{secs, yes_no};
pub use error::ConfigError;
pub use quorum::{Coordination, PeerKey, QuorumSettings, WitnessConfig};
use sources::{opt_path, set_source, Resolver};
pub use sources::{Setting, Source};
use validate::resolve;

pub use health::{
    default_health_check, validate_health_check, HealthSettings, KubeApiSettings,
    DEFAULT_HEALTH_FAILURE_THRESHOLD, DEFAULT_HEALTH_PERIOD, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_KUBE_API_BURST, DEFAULT_KUBE_API_QPS, DEFAULT_KUBE_API_TIMEOUT,
};
use request::image_or_default;
pub use request::{
    default_image, HostFacts, ManifestRequest, StatusRequest, DEFAULT_KUBECONFIG_HOST_PATH,
    SERVICE_ACCOUNT_NAMESPACE_FILE,
};
pub use services::{
    ServicesSettings, DEFAULT_ANNOUNCE_MAX_PPS, DEFAULT_IPAM_CONFIGMAP, DEFAULT_LB_CLASS_NAME,
};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use options::*;

/// kube-vip's lease name, kept so a migration shares the lease (SPEC R9).
pub const DEFAULT_LEASE_NAME: &str = "plndr-cp-lock";
/// Namespace of the lease unless configured.
pub const DEFAULT_LEASE_NAMESPACE: &str = "kube-system";
/// Periodic gratuitous ARP / unsolicited NA refresh when `vip_arpRate` is not
/// set. kube-vip defaults to 3 s because it sends no burst on takeover; vipd
/// sends a paced burst on every acquisition (SPEC R4), so the refresh only
/// has to keep switch FDB entries (300 s ageing on Linux bridges and most
/// switches) and neighbour caches warm: 30 s does that at one frame per 30 s.
pub const DEFAULT_ARP_REFRESH: Duration = Duration::from_secs(30);
/// How often the reconciler compares intent with the kernel (SPEC R3).
pub const DEFAULT_RECONCILE_PERIOD: Duration = Duration::from_secs(5);
/// ECMP withdraw drain: FRR took ~70 ms from receiving a withdrawal to
/// removing the path from its kernel in the lab (`vipd lab --mode bgp`,
/// graceful); hardware routers program their FIB in the same order of
/// magnitude or slower. Half a second covers that several times over and
/// only delays a node's shutdown by as much.
pub const DEFAULT_WITHDRAW_DRAIN: Duration = Duration::from_millis(500);
/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `vipd run` (alias `vipd manager`, kube-vip's subcommand): the daemon.
    Run(Box<Config>),
    /// `vipd check-config`: validate and print [`Config::describe`].
    CheckConfig(Box<Config>),
    /// `vipd manifest pod|daemonset|rbac`: print YAML
    /// ([`crate::manifest::print`]).
    Manifest(ManifestRequest),
    /// `vipd status`: ask the running daemon what it holds.
    Status(StatusRequest),
    /// `vipd lab demo|run|bench`: the fault-injection lab (SPEC §7), run by
    /// [`vipd_lab::run`].
    Lab(Box<vipd_lab::LabArgs>),
    /// `vipd witness`: a quorum voter that never holds (SPEC §5a).
    Witness(Box<WitnessConfig>),
    /// `vipd version`.
    Version,
    /// `vipd guard` (hidden): the address guard that `vipd run` starts for
    /// itself, reading its parent's addresses on standard input.
    Guard,
}

/// The coordination backend holding the lease (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// etcd v3 leases and transactions.
    Etcd(EtcdSettings),
    /// Kubernetes `coordination.k8s.io/v1` Lease objects (kube-vip's default).
    Kubernetes,
    /// No store at all (`--backend none`, quorum mode only): the peers
    /// decide alone, keepalived's ground.
    None,
}

/// How to reach etcd (kube-vip's `--etcdEndpoints`, `--etcdCACert`,
/// `--etcdCert`, `--etcdKey`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// Member endpoints, e.g. `http://192.0.2.1:2379`; never empty.
    pub endpoints: Vec<String>,
    /// CA bundle that verifies the servers.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate; given together with `key`.
    pub cert: Option<PathBuf>,
    /// Private key of the client certificate; given together with `cert`.
    pub key: Option<PathBuf>,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The virtual IP (`--address`, `address` / `vip_address`); `None` only
    /// in Services mode without a control-plane VIP.
    pub vip: Option<IpAddr>,
    /// Prefix length the VIP is added with (`--subnet`, `vip_subnet`);
    /// default /32 or /128.
    pub prefix_len: u8,
    /// Interface that carries the VIP (`--interface`, `vip_interface`).
    pub interface: String,
    /// Wait for a missing interface instead of refusing to start.
    pub wait_for_interface: bool,
    /// Announce with gratuitous ARP / unsolicited NA (`--arp`, `vip_arp`).
    pub arp: bool,
    /// Periodic announcement refresh (`--arp-rate` ms, `vip_arpRate`);
    /// `None` when off or when `arp` is false.
    pub arp_refresh: Option<Duration>,
    /// Lease holder identity (`--node-name`, `vip_nodename`; default hostname).
    pub node_name: String,
    /// Lease name (`--lease-name`, `vip_leasename`), without namespace.
    pub lease_name: String,
    /// Lease namespace (`--lease-namespace`, `cp_namespace`, or the `ns/`
    /// part of `--lease-name ns/name`).
    pub lease_namespace: String,
    /// Validated lease duration / renew deadline / retry period.
    pub timings: vipd_election::Timings,
    /// Where the lease lives (in quorum mode: where the holder is
    /// mirrored, best effort).
    pub backend: Backend,
    /// Lease or quorum (`--coordination`, SPEC §5a).
    pub coordination: Coordination,
    /// Control-plane mode (`--control-plane`, `cp_enable`).
    pub control_plane: bool,
    /// Services mode (`--services`, `svc_enable`), when on.
    pub services: Option<ServicesSettings>,
    /// BGP mode (`--bgp`, `bgp_enable`), when on (SPEC §5b): the
    /// control-plane VIP and Services (not yet on the quorum).
    pub bgp: Option<BgpSettings>,
    /// Routing-table mode (`--routing-table`, `vip_routingtable`), when
    /// on: the control-plane VIP and Services (not yet on the quorum).
    pub routing_table: Option<RoutingTableSettings>,
    /// HTTP listen address (`--prometheus-server`); `None` disables it.
    pub http_addr: Option<SocketAddr>,
    /// Log verbosity.
    pub log_level: tracing::Level,
    /// JSON logs instead of text.
    pub log_json: bool,
    /// Reconcile period (SPEC R3).
    pub reconcile_period: Duration,
    /// BGP or routing-table mode with every node announcing (ECMP): how
    /// long an address keeps serving after its route was withdrawn, so
    /// packets the routers still send during their convergence are
    /// answered (`--withdraw-drain`).
    pub withdraw_drain: Duration,
    /// BGP or routing-table mode: raise `arp_ignore` / `arp_announce` on
    /// the node's other IPv4 interfaces so a VIP bound on `lo` is never
    /// answered by ARP nor used as an ARP sender (`--routed-arp-ignore`).
    pub routed_arp_ignore: bool,
    /// Limits of the general Kubernetes client (`--kube-api-qps`,
    /// `--kube-api-burst`, `--kube-api-timeout`).
    pub kube_api: KubeApiSettings,
    /// Effective health checks, as specs for `vipd-health`: the
    /// `--health-check` list (`VIPD_HEALTH_CHECKS`), then
    /// `health.address`; in control-plane mode with neither,
    /// [`default_health_check`] on the local API server. Empty: no gating.
    pub health_checks: Vec<String>,
    /// How the checks run (kube-vip's `control_plane_health_check_*`).
    pub health: HealthSettings,
    /// Local API server port (`--api-port`, kube-vip `port`; default 6443),
    /// reached at 127.0.0.1 in control-plane mode (SPEC R6).
    pub api_port: u16,
    /// Local API server address (`--kubernetes-addr`, `kubernetes_addr`).
    pub kubernetes_addr: Option<String>,
    /// Kubeconfig path (`--kubeconfig`, `k8s_config_file`).
    pub kubeconfig: Option<PathBuf>,
    /// The configuration file read, if any.
    pub config_file: Option<PathBuf>,
    /// One line per ignored, unknown or deprecated setting; log each once.
    pub warnings: Vec<String>,
    /// Settings that are valid but will very likely keep the VIP down
    /// (e.g. a health gate that cannot verify its target): the daemon logs
    /// each at ERROR when it starts, `check-config` prints them.
    pub errors: Vec<String>,
    /// Effective values and their sources, in option order.
    pub settings: Vec<Setting>,
}

/// Parses `args` (the full argv, program name first) with `env` as the
/// environment and [`HostFacts::system`]. Credentials for the Kubernetes
/// backend are discovered at run time (kubeconfig, `$KUBECONFIG`, the
/// in-cluster service account), so `--backend kubernetes` is never a
/// configuration error here.
pub fn parse_command(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<Command, ConfigError> {
    parse_command_with(args, env, &HostFacts::system())
}

/// [`parse_command`] with explicit [`HostFacts`], for tests.
pub fn parse_command_with(
    args: &[String],
    env: &HashMap<String, String>,
    host: &HostFacts,
) -> Result<Command, ConfigError> {
    let cli = Cli::try_parse_from(args)?;
    // A manifest takes the node name from the downward API (spec.nodeName),
    // so the generating machine need not have one.
    let manifest_host = HostFacts {
        hostname: host
            .hostname
            .clone()
            .or_else(|| Some("spec.nodeName".into())),
        ..host.clone()
    };
    Ok(match cli.command {
        CliCommand::Version => Command::Version,
        CliCommand::Guard => Command::Guard,
        CliCommand::Lab(a) => Command::Lab(Box::new(a)),
        CliCommand::Witness(a) => {
            Command::Witness(Box::new(quorum::resolve_witness(a, env, host)?))
        }
        CliCommand::Status(a) => Command::Status(request::status_request(
            a.json,
            a.prometheus_server,
            &a.timeout,
            env,
        )?),
        CliCommand::CheckConfig(raw) => Command::CheckConfig(Box::new(resolve(raw, env, host)?)),
        CliCommand::Run(raw) => Command::Run(Box::new(resolve(raw, env, host)?)),
        CliCommand::Manifest(ManifestCommand::Pod(a)) => {
            let mut config = resolve(a.options, env, &manifest_host)?;
            // kube-vip's --inCluster on a pod: serviceAccountName instead of
            // the admin.conf hostPath and the `kubernetes` host alias
            // (kube-vip's generatePodSpec). Only a pod applied through the
            // API server gets a ServiceAccount token; the kubelet runs
            // static pods without one, hence the warning.
            let in_cluster = manifest_bool(a.in_cluster, IN_CLUSTER, false)?;
            if in_cluster {
                if a.kubeconfig_host_path.is_some() || config.kubeconfig.is_some() {
                    return Err(ConfigError::Unsupported {
                        option: IN_CLUSTER.into(),
                        value: "true".into(),
                        reason: format!(
                            "an in-cluster pod uses the vipd ServiceAccount and mounts no kubeconfig; drop --kubeconfig-host-path and {}",
                            KUBECONFIG.describe()
                        ),
                    });
                }
                config.warnings.push(
                    "--inCluster: the pod authenticates with the vipd ServiceAccount (vipd manifest rbac) and mounts no kubeconfig; apply it through the API server, because a static pod (/etc/kubernetes/manifests) gets no ServiceAccount token".into(),
                );
            }
            let kubeconfig_host_path = a
                .kubeconfig_host_path
                .map(|p| opt_path(&p))
                .transpose()
                .map_err(|expected| ConfigError::Invalid {
                    option: "--kubeconfig-host-path".into(),
                    value: String::new(),
                    from: Source::Flag,
                    expected: expected.into(),
                })?
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG_HOST_PATH));
            Command::Manifest(ManifestRequest::Pod {
                config: Box::new(config),
                image: image_or_default(a.image)?,
                kubeconfig_host_path,
                in_cluster,
            })
        }
        CliCommand::Manifest(ManifestCommand::Daemonset(a)) => {
            let mut config = resolve(a.options, env, &manifest_host)?;
            // kube-vip's DaemonSet without --inCluster mounts the host's
            // admin.conf; vipd's always uses its ServiceAccount, which is
            // what every documented kube-vip DaemonSet command asks for.
            if !manifest_bool(a.in_cluster, IN_CLUSTER, true)? {
                config.warnings.push(
                    "kube-vip flag --inCluster=false is ignored: vipd's DaemonSet always authenticates with the vipd ServiceAccount (vipd manifest rbac)".into(),
                );
            }
            Command::Manifest(ManifestRequest::DaemonSet {
                config: Box::new(config),
                image: image_or_default(a.image)?,
                control_plane_only: manifest_bool(a.taint, "--taint", true)?,
            })
        }
        CliCommand::Manifest(ManifestCommand::Rbac(a)) => {
            let services = a.services
                || [SERVICES.env, "svc_enable"]
                    .iter()
                    .any(|k| env.get(*k).is_some_and(|v| values::boolean(v) == Ok(true)));
            Command::Manifest(ManifestRequest::Rbac {
                lease_namespace: health::rbac_namespace(a.lease_namespace, env)?,
                services,
            })
        }
    })
}

/// `--in-cluster` and its kube-vip spelling, as error messages name it.
const IN_CLUSTER: &str = "--in-cluster/--inCluster";

/// A `manifest` boolean flag (`--flag`, `--flag=false`), `default` when
/// absent.
fn manifest_bool(value: Option<String>, option: &str, default: bool) -> Result<bool, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => values::boolean(&v).map_err(|expected| ConfigError::Invalid {
            option: option.into(),
            value: v,
            from: Source::Flag,
            expected: expected.into(),
        }),
    }
}

impl Config {
    /// Services in BGP or routing-table mode without `svc_election`: every
    /// eligible node announces each address (ECMP), there is no owner.
    pub fn services_ecmp(&self) -> bool {
        match (&self.bgp, &self.routing_table) {
            (Some(b), _) => !b.services_election,
            (None, Some(t)) => !t.services_election,
            (None, None) => false,
        }
    }

    /// Resolves the options of `run` / `check-config` from `args` (the full
    /// argv: program name, then either a subcommand followed by options or
    /// the options alone) and `env`, without reading the process
    /// environment. The node name defaults to the kernel hostname.
    pub fn from_sources(
        args: &[String],
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        Config::from_sources_with(args, env, &HostFacts::system())
    }

    /// [`Config::from_sources`] with an explicit default node name and no
    /// service-account lookup, for tests.
    pub fn from_sources_with_hostname(
        args: &[String],
        env: &HashMap<String, String>,
        hostname: Option<String>,
    ) -> Result<Config, ConfigError> {
        let host = HostFacts {
            hostname,
            service_account_namespace_file: None,
            kubeadm_ca_file: None,
        };
        Config::from_sources_with(args, env, &host)
    }

    /// [`Config::from_sources`] with explicit [`HostFacts`].
    pub fn from_sources_with(
        args: &[String],
        env: &HashMap<String, String>,
        host: &HostFacts,
    ) -> Result<Config, ConfigError> {
        // Accept argv with or without a subcommand: insert `check-config`
        // when the first argument is an option (or absent).
        let has_subcommand = args.get(1).is_some_and(|a| !a.starts_with('-'));
        let argv: Vec<String> = if has_subcommand {
            args.to_vec()
        } else {
            let mut v = vec![
                args.first().cloned().unwrap_or_else(|| "vipd".into()),
                "check-config".into(),
            ];
            v.extend(args.iter().skip(1).cloned());
            v
        };
        match Cli::try_parse_from(&argv)?.command {
            CliCommand::Run(raw) | CliCommand::CheckConfig(raw) => resolve(raw, env, host),
            CliCommand::Version
            | CliCommand::Guard
            | CliCommand::Manifest(_)
            | CliCommand::Lab(_)
            | CliCommand::Witness(_)
            | CliCommand::Status(_) => Err(ConfigError::Missing {
                option: "subcommand".into(),
                hint: "only run and check-config resolve a configuration here".into(),
            }),
        }
    }

    /// Checks that the interface exists in this network namespace unless
    /// `wait_for_interface` is set. `exists` is the lookup (e.g.
    /// [`interface_exists`], or a netlink query); kept separate from
    /// parsing so `check-config` can run on another machine.
    pub fn check_interface(&self, exists: impl FnOnce(&str) -> bool) -> Result<(), ConfigError> {
        if self.wait_for_interface || exists(&self.interface) {
            Ok(())
        } else {
            Err(ConfigError::UnknownInterface(self.interface.clone()))
        }
    }
}

/// Whether interface `name` exists in the caller's network namespace, read
/// from `/proc/self/net/dev` (which follows the reading thread's namespace,
/// unlike `/sys/class/net`).
pub fn interface_exists(name: &str) -> std::io::Result<bool> {
    let text = std::fs::read_to_string("/proc/self/net/dev")?;
    Ok(text
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':'))
        .any(|(n, _)| n.trim() == name))
}
