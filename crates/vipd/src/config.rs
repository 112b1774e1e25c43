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

mod file;
mod health;
mod kubevip;
mod options;
mod request;
mod services;
mod values;

pub use health::{
    default_health_check, validate_health_check, HealthSettings, KubeApiSettings,
    DEFAULT_HEALTH_FAILURE_THRESHOLD, DEFAULT_HEALTH_PERIOD, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_KUBE_API_BURST, DEFAULT_KUBE_API_QPS, DEFAULT_KUBE_API_TIMEOUT,
};
use request::image_or_default;
pub use request::{
    default_image, HostFacts, ManifestRequest, DEFAULT_KUBECONFIG_HOST_PATH,
    SERVICE_ACCOUNT_NAMESPACE_FILE,
};
pub use services::{
    ServicesSettings, DEFAULT_ANNOUNCE_MAX_PPS, DEFAULT_IPAM_CONFIGMAP, DEFAULT_LB_CLASS_NAME,
};

use std::collections::HashMap;
use std::fmt;
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
    /// `vipd version`.
    Version,
}

/// The coordination backend holding the lease (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// etcd v3 leases and transactions.
    Etcd(EtcdSettings),
    /// Kubernetes `coordination.k8s.io/v1` Lease objects (kube-vip's default).
    Kubernetes,
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

/// Where an effective value came from (printed by `check-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// A `VIPD_*` variable (its name).
    Env(String),
    /// A kube-vip variable (its name).
    KubeVipEnv(String),
    /// The `--config` file.
    File,
    /// The pod's service-account namespace file (its path).
    ServiceAccount(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::KubeVipEnv(name) => write!(f, "kube-vip env {name}"),
            Source::File => f.write_str("file"),
            Source::ServiceAccount(path) => write!(f, "service account {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// One line of the effective-values table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The option's long flag name, e.g. `lease-duration`.
    pub name: &'static str,
    /// The effective value as text.
    pub value: String,
    /// Where it came from.
    pub source: Source,
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
    /// Where the lease lives.
    pub backend: Backend,
    /// Control-plane mode (`--control-plane`, `cp_enable`).
    pub control_plane: bool,
    /// Services mode (`--services`, `svc_enable`), when on.
    pub services: Option<ServicesSettings>,
    /// HTTP listen address (`--prometheus-server`); `None` disables it.
    pub http_addr: Option<SocketAddr>,
    /// Log verbosity.
    pub log_level: tracing::Level,
    /// JSON logs instead of text.
    pub log_json: bool,
    /// Reconcile period (SPEC R3).
    pub reconcile_period: Duration,
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
    /// Effective values and their sources, in option order.
    pub settings: Vec<Setting>,
}

/// Why the configuration was refused. `main` exits with status 2 (clap's
/// own exit code for [`ConfigError::Usage`], 0 for `--help`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Command-line syntax error, or `--help` / `--version`: call
    /// [`clap::Error::exit`] on it.
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// A value that does not parse or is out of range.
    #[error("invalid {option} {value:?} from {from}: expected {expected}")]
    Invalid {
        /// Flag and variable spellings, e.g. `--lease-duration (VIPD_LEASE_DURATION, vip_leaseduration)`.
        option: String,
        /// The value given.
        value: String,
        /// Where it came from.
        from: Source,
        /// What is accepted.
        expected: String,
    },
    /// A required option is absent.
    #[error("missing {option}: {hint}")]
    Missing {
        /// Flag and variable spellings.
        option: String,
        /// What to set.
        hint: String,
    },
    /// The three lease timings break R1's fencing rule.
    #[error("invalid lease timings --lease-duration {lease:?} (vip_leaseduration), --renew-deadline {renew:?} (vip_renewdeadline), --retry-period {retry:?} (vip_retryperiod): {reason}")]
    Timings {
        /// Lease duration given.
        lease: Duration,
        /// Renew deadline given.
        renew: Duration,
        /// Retry period given.
        retry: Duration,
        /// The violated rule.
        reason: vipd_election::TimingError,
    },
    /// A valid value asking for something vipd does not do (yet).
    #[error("unsupported {option} {value:?}: {reason}")]
    Unsupported {
        /// Flag and variable spellings.
        option: String,
        /// The value given.
        value: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// The configured interface does not exist (and `--wait-for-interface`
    /// is off).
    #[error("unknown --interface (VIPD_INTERFACE, vip_interface) {0:?}: no such interface in this network namespace; pass --wait-for-interface to wait for it")]
    UnknownInterface(String),
    /// The `--config` file could not be read.
    #[error("cannot read --config (VIPD_CONFIG) {path:?}: {error}")]
    FileRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A line of the `--config` file is malformed.
    #[error("{path}:{line}: {message}", path = path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Reports the error and exits: clap's own handling for
    /// [`ConfigError::Usage`] (status 0 for `--help`/`--version`, 2 for
    /// syntax errors), otherwise `vipd: <message>` on stderr and status 2,
    /// as SPEC §3 requires for invalid configuration.
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Usage(e) => e.exit(),
            other => {
                eprintln!("vipd: {other}");
                std::process::exit(2)
            }
        }
    }
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
        CliCommand::CheckConfig(raw) => Command::CheckConfig(Box::new(resolve(raw, env, host)?)),
        CliCommand::Run(raw) => Command::Run(Box::new(resolve(raw, env, host)?)),
        CliCommand::Manifest(ManifestCommand::Pod(a)) => {
            let config = resolve(a.options, env, &manifest_host)?;
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
            })
        }
        CliCommand::Manifest(ManifestCommand::Daemonset(a)) => {
            Command::Manifest(ManifestRequest::DaemonSet {
                config: Box::new(resolve(a.options, env, &manifest_host)?),
                image: image_or_default(a.image)?,
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

impl Config {
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
            CliCommand::Version | CliCommand::Manifest(_) => Err(ConfigError::Missing {
                option: "subcommand".into(),
                hint: "only run and check-config resolve a configuration here".into(),
            }),
        }
    }

    /// The effective-values table `check-config` prints: one
    /// `name = value  (source)` line per option.
    pub fn describe(&self) -> String {
        let width = self
            .settings
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for s in &self.settings {
            out.push_str(&format!(
                "{:<width$} = {}  ({})\n",
                s.name, s.value, s.source
            ));
        }
        out
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

/// A raw value and its origin.
struct Raw {
    value: String,
    source: Source,
}

/// The four layers, consulted in precedence order.
struct Resolver<'a> {
    flags: HashMap<&'static str, String>,
    env: &'a HashMap<String, String>,
    file: HashMap<String, String>,
    settings: Vec<Setting>,
}

impl Resolver<'_> {
    fn raw(&self, opt: &Opt) -> Option<Raw> {
        if let Some(v) = self.flags.get(opt.key) {
            return Some(Raw {
                value: v.clone(),
                source: Source::Flag,
            });
        }
        if let Some(v) = self.env.get(opt.env) {
            return Some(Raw {
                value: v.clone(),
                source: Source::Env(opt.env.into()),
            });
        }
        for k in opt.kube {
            // kube-vip reads `os.Getenv(..) != ""`: empty means unset.
            if let Some(v) = self.env.get(*k).filter(|v| !v.trim().is_empty()) {
                return Some(Raw {
                    value: v.clone(),
                    source: Source::KubeVipEnv((*k).into()),
                });
            }
        }
        self.file.get(opt.key).map(|v| Raw {
            value: v.clone(),
            source: Source::File,
        })
    }

    /// Parses the option if set anywhere; records it for `describe`.
    fn get<T>(
        &mut self,
        opt: &Opt,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<Option<(T, Source)>, ConfigError> {
        let Some(raw) = self.raw(opt) else {
            return Ok(None);
        };
        match parse(&raw.value) {
            Ok(v) => Ok(Some((v, raw.source))),
            Err(expected) => Err(ConfigError::Invalid {
                option: opt.describe(),
                value: raw.value,
                from: raw.source,
                expected: expected.into(),
            }),
        }
    }

    /// [`Resolver::get`] with a default, recording the effective value.
    fn get_or<T>(
        &mut self,
        opt: &Opt,
        default: T,
        show: impl Fn(&T) -> String,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<(T, Source), ConfigError> {
        let found = match self.raw(opt) {
            None => None,
            Some(raw) => match parse(&raw.value) {
                Ok(v) => Some((v, raw.source)),
                Err(expected) => {
                    return Err(ConfigError::Invalid {
                        option: opt.describe(),
                        value: raw.value,
                        from: raw.source,
                        expected: expected.into(),
                    })
                }
            },
        };
        let (value, source) = found.unwrap_or((default, Source::Default));
        self.record(opt, show(&value), source.clone());
        Ok((value, source))
    }

    fn record(&mut self, opt: &Opt, value: String, source: Source) {
        self.settings.push(Setting {
            name: opt.key,
            value,
            source,
        });
    }
}

/// Overrides the recorded source of `opt` (a value derived elsewhere).
fn set_source(settings: &mut [Setting], opt: &Opt, source: Source) {
    if let Some(s) = settings.iter_mut().find(|s| s.name == opt.key) {
        s.source = source;
    }
}

fn secs(d: &Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

fn yes_no(b: &bool) -> String {
    b.to_string()
}

fn opt_path(s: &str) -> Result<PathBuf, &'static str> {
    if s.trim().is_empty() {
        Err("a file path")
    } else {
        Ok(PathBuf::from(s.trim()))
    }
}

/// The heart of it: layers → typed, validated [`Config`].
fn resolve(
    raw: RawOptions,
    env: &HashMap<String, String>,
    host: &HostFacts,
) -> Result<Config, ConfigError> {
    let config_path = raw
        .config
        .clone()
        .or_else(|| env.get(CONFIG_ENV).cloned())
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from);
    let file = match &config_path {
        None => HashMap::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::FileRead {
                path: path.clone(),
                error,
            })?;
            let known: Vec<&str> = ALL.iter().map(|o| o.key).collect();
            file::parse(path, &text, &known)?
        }
    };
    let mut warnings = Vec::new();
    let mut r = Resolver {
        flags: raw.into_map(),
        env,
        file,
        settings: Vec::new(),
    };

    // Modes vipd does not implement are errors, not silent no-ops (SPEC §3:
    // "two modes at once" is refused); only kube-vip has switches for them.
    for (name, reason) in kubevip::UNSUPPORTED_MODES {
        if let Some(v) = env.get(*name).filter(|v| !v.trim().is_empty()) {
            match values::boolean(v) {
                Ok(false) => {}
                Ok(true) => {
                    return Err(ConfigError::Unsupported {
                        option: (*name).into(),
                        value: v.clone(),
                        reason: (*reason).into(),
                    })
                }
                Err(expected) => {
                    return Err(ConfigError::Invalid {
                        option: (*name).into(),
                        value: v.clone(),
                        from: Source::KubeVipEnv((*name).into()),
                        expected: expected.into(),
                    })
                }
            }
        }
    }
    if let Some(v) = env
        .get("vip_leaderelection")
        .filter(|v| values::boolean(v) == Ok(false))
    {
        warnings.push(format!(
            "kube-vip variable vip_leaderelection={v} is ignored: vipd always elects a leader before binding a VIP (SPEC R1)"
        ));
    }

    // Address and prefix.
    // Optional only in Services mode (checked once that is resolved).
    let vip = r.get(&ADDRESS, values::vip)?.map(|(vip, source)| {
        r.record(&ADDRESS, vip.to_string(), source);
        vip
    });
    if env.get("vip_cidr").is_some_and(|v| !v.trim().is_empty()) {
        let subnet_from_cidr = matches!(r.raw(&SUBNET), Some(Raw { source: Source::KubeVipEnv(ref k), .. }) if k == "vip_cidr");
        warnings.push(if subnet_from_cidr {
            "kube-vip variable vip_cidr is deprecated: it is honoured as the prefix length, rename it to vip_subnet".into()
        } else {
            "kube-vip variable vip_cidr is deprecated and ignored because the subnet is set elsewhere; remove it".into()
        });
    }
    let default_prefix = if vip.is_some_and(|v| v.is_ipv6()) {
        128
    } else {
        32
    };
    let (prefix_len, _) = r.get_or(
        &SUBNET,
        default_prefix,
        |p| format!("/{p}"),
        |s| values::prefix(s, vip),
    )?;

    // Interface.
    let interface = r.get(&INTERFACE, values::interface)?.map(|(i, source)| {
        r.record(&INTERFACE, i.clone(), source);
        i
    });
    if vip.is_some() && interface.is_none() {
        return Err(ConfigError::Missing {
            option: INTERFACE.describe(),
            hint: "set the interface that carries the VIP, e.g. --interface eth0".into(),
        });
    }
    let (wait_for_interface, _) = r.get_or(&WAIT_FOR_INTERFACE, false, yes_no, values::boolean)?;

    // Announcements.
    let (arp, _) = r.get_or(&ARP, true, yes_no, values::boolean)?;
    let (arp_rate, _) = r.get_or(
        &ARP_RATE,
        DEFAULT_ARP_REFRESH,
        |d| format!("{}ms", d.as_millis()),
        values::millis,
    )?;
    let arp_refresh = (arp && !arp_rate.is_zero()).then_some(arp_rate);

    // Identity and lease.
    let default_node = host.hostname.clone().unwrap_or_default();
    let (node_name, node_source) = r.get_or(&NODE_NAME, default_node, Clone::clone, |s| {
        Ok(s.trim().to_string())
    })?;
    if node_name.is_empty() {
        return Err(ConfigError::Missing {
            option: NODE_NAME.describe(),
            hint: format!(
                "the node name is empty ({node_source}); set a unique name per node, e.g. --node-name \"$(hostname)\""
            ),
        });
    }
    let (lease_full, lease_source) = r.get_or(
        &LEASE_NAME,
        DEFAULT_LEASE_NAME.to_string(),
        Clone::clone,
        |s| Ok(s.trim().to_string()),
    )?;
    // In a pod with nothing configured, the lease lives in the pod's own
    // namespace, as client-go's in-cluster programs default to.
    let sa_path = host.service_account_namespace_file.as_deref();
    let sa_namespace = health::service_account_namespace(sa_path);
    let (ns_flag, ns_source) = r.get_or(
        &LEASE_NAMESPACE,
        sa_namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_LEASE_NAMESPACE.to_string()),
        Clone::clone,
        |s| Ok(s.trim().to_string()),
    )?;
    if let (Source::Default, Some(_), Some(path)) = (&ns_source, &sa_namespace, sa_path) {
        set_source(
            &mut r.settings,
            &LEASE_NAMESPACE,
            Source::ServiceAccount(path.to_path_buf()),
        );
    }
    let invalid_lease = |expected: &str| ConfigError::Invalid {
        option: LEASE_NAME.describe(),
        value: lease_full.clone(),
        from: lease_source.clone(),
        expected: expected.into(),
    };
    let (lease_namespace, lease_name) = match lease_full.split_once('/') {
        Some((ns, name)) => (
            values::object_name(ns, 63).map_err(|()| invalid_lease("NAMESPACE/NAME with a namespace of lower-case letters, digits and '-' (at most 63)"))?,
            values::object_name(name, 253).map_err(|()| invalid_lease("a lease name of lower-case letters, digits, '-' and '.' (at most 253), optionally NAMESPACE/NAME"))?,
        ),
        None => (
            values::object_name(&ns_flag, 63).map_err(|()| ConfigError::Invalid {
                option: LEASE_NAMESPACE.describe(),
                value: ns_flag.clone(),
                from: r.raw(&LEASE_NAMESPACE).map(|r| r.source).unwrap_or(Source::Default),
                expected: "a namespace of lower-case letters, digits and '-' (at most 63)".into(),
            })?,
            values::object_name(&lease_full, 253).map_err(|()| invalid_lease("a lease name of lower-case letters, digits, '-' and '.' (at most 253), optionally NAMESPACE/NAME"))?,
        ),
    };

    if lease_full.contains('/') {
        // `ns/name` overrides --lease-namespace: show that in the table.
        if let Some(s) = r
            .settings
            .iter_mut()
            .find(|s| s.name == LEASE_NAMESPACE.key)
        {
            s.value = lease_namespace.clone();
            s.source = lease_source.clone();
        }
    }

    // Timings, checked against R1's fencing rule.
    let (lease, _) = r.get_or(
        &LEASE_DURATION,
        Duration::from_secs(15),
        secs,
        values::seconds,
    )?;
    let (renew, _) = r.get_or(
        &RENEW_DEADLINE,
        Duration::from_secs(10),
        secs,
        values::seconds,
    )?;
    let (retry, _) = r.get_or(&RETRY_PERIOD, Duration::from_secs(2), secs, values::seconds)?;
    let timings = vipd_election::Timings::new(lease, renew, retry).map_err(|reason| {
        ConfigError::Timings {
            lease,
            renew,
            retry,
            reason,
        }
    })?;

    // Backend.
    let (backend_name, _) = r.get_or(
        &BACKEND,
        "kubernetes".to_string(),
        Clone::clone,
        |s| match s.trim().to_ascii_lowercase().as_str() {
            "etcd" => Ok("etcd".to_string()),
            "kubernetes" | "k8s" => Ok("kubernetes".to_string()),
            _ => Err("etcd or kubernetes"),
        },
    )?;
    let endpoints = r.get(&ETCD_ENDPOINTS, |s| {
        let list: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        if list.is_empty() || list.iter().any(|e| e.contains(char::is_whitespace)) {
            Err("comma-separated endpoints, e.g. http://192.0.2.1:2379,http://192.0.2.2:2379")
        } else {
            Ok(list)
        }
    })?;
    let ca_cert = r.get(&ETCD_CA_CERT, opt_path)?;
    let cert = r.get(&ETCD_CERT, opt_path)?;
    let key = r.get(&ETCD_KEY, opt_path)?;
    let backend = if backend_name == "etcd" {
        let Some((endpoints, ep_source)) = endpoints else {
            return Err(ConfigError::Missing {
                option: ETCD_ENDPOINTS.describe(),
                hint: "--backend etcd needs at least one endpoint, e.g. --etcd-endpoints http://192.0.2.1:2379".into(),
            });
        };
        if cert.is_some() != key.is_some() {
            let (opt, missing) = if cert.is_some() {
                (&ETCD_KEY, "--etcd-key")
            } else {
                (&ETCD_CERT, "--etcd-cert")
            };
            return Err(ConfigError::Missing {
                option: opt.describe(),
                hint: format!("a client certificate needs both --etcd-cert and --etcd-key; {missing} is not set"),
            });
        }
        r.record(&ETCD_ENDPOINTS, endpoints.join(","), ep_source);
        for (opt, v) in [
            (&ETCD_CA_CERT, &ca_cert),
            (&ETCD_CERT, &cert),
            (&ETCD_KEY, &key),
        ] {
            if let Some((p, s)) = v {
                r.record(opt, p.display().to_string(), s.clone());
            }
        }
        Backend::Etcd(EtcdSettings {
            endpoints,
            ca_cert: ca_cert.map(|(p, _)| p),
            cert: cert.map(|(p, _)| p),
            key: key.map(|(p, _)| p),
        })
    } else {
        if endpoints.is_some() || ca_cert.is_some() || cert.is_some() || key.is_some() {
            warnings.push("etcd settings are ignored because --backend is kubernetes".into());
        }
        Backend::Kubernetes
    };

    // Modes.
    let (control_plane, _) = r.get_or(&CONTROL_PLANE, false, yes_no, values::boolean)?;
    let services = services::resolve_services(
        &mut r,
        interface.as_deref(),
        matches!(backend, Backend::Kubernetes),
    )?;
    if vip.is_none() && services.is_none() {
        return Err(ConfigError::Missing {
            option: ADDRESS.describe(),
            hint: "set the virtual IP, e.g. --address 192.0.2.10 (or enable Services mode with --services)".into(),
        });
    }
    if vip.is_none() && control_plane {
        return Err(ConfigError::Missing {
            option: ADDRESS.describe(),
            hint: "control-plane mode needs the control-plane VIP, e.g. --address 192.0.2.10"
                .into(),
        });
    }
    let interface = match (interface, &services) {
        (Some(i), _) => i,
        (None, Some(s)) => s.interface.clone(),
        (None, None) => String::new(),
    };
    let (api_port, _) = r.get_or(&API_PORT, 6443, u16::to_string, values::port)?;
    let kubernetes_addr = r.get(&KUBERNETES_ADDR, |s| {
        if s.trim().is_empty() {
            Err("HOST:PORT of the local API server")
        } else {
            Ok(s.trim().to_string())
        }
    })?;
    if let Some((a, s)) = &kubernetes_addr {
        r.record(&KUBERNETES_ADDR, a.clone(), s.clone());
    }
    let kubeconfig = r.get(&KUBECONFIG, opt_path)?;
    if let Some((p, s)) = &kubeconfig {
        r.record(&KUBECONFIG, p.display().to_string(), s.clone());
    }
    let kube_api = health::resolve_kube_api(&mut r)?;
    let (health_checks, health) = health::resolve_health(&mut r, control_plane, api_port)?;

    // Observability.
    let (http_addr, _) = r.get_or(
        &PROMETHEUS_SERVER,
        values::listen_addr(":2112").ok().flatten(),
        |a| a.map_or_else(|| "off".to_string(), |a| a.to_string()),
        values::listen_addr,
    )?;
    let (log_level, _) = r.get_or(
        &LOG_LEVEL,
        tracing::Level::INFO,
        |l| l.to_string().to_lowercase(),
        values::log_level,
    )?;
    let (log_json, _) = r.get_or(
        &LOG_FORMAT,
        false,
        |j| if *j { "json".into() } else { "text".into() },
        |s| match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(false),
            "json" => Ok(true),
            _ => Err("text or json"),
        },
    )?;
    let (reconcile_period, _) = r.get_or(
        &RECONCILE_PERIOD,
        DEFAULT_RECONCILE_PERIOD,
        secs,
        |s| match values::seconds(s) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err("seconds greater than zero, e.g. 5 or 0.5"),
        },
    )?;

    // Leftover variables: one line each.
    warnings.extend(kubevip::warnings(env));
    let known_vipd: Vec<&str> = ALL.iter().map(|o| o.env).chain([CONFIG_ENV]).collect();
    let mut unknown_vipd: Vec<&String> = env
        .keys()
        .filter(|k| k.starts_with("VIPD_") && !known_vipd.contains(&k.as_str()))
        .collect();
    unknown_vipd.sort();
    warnings.extend(
        unknown_vipd
            .into_iter()
            .map(|k| format!("unknown variable {k} is ignored")),
    );

    // Keep the table in option order regardless of resolution order.
    let mut settings = r.settings;
    settings.sort_by_key(|s| ALL.iter().position(|o| o.key == s.name));

    Ok(Config {
        vip,
        prefix_len,
        interface,
        wait_for_interface,
        arp,
        arp_refresh,
        node_name,
        lease_name,
        lease_namespace,
        timings,
        backend,
        control_plane,
        services,
        http_addr,
        log_level,
        log_json,
        reconcile_period,
        kube_api,
        health_checks,
        health,
        api_port,
        kubernetes_addr: kubernetes_addr.map(|(a, _)| a),
        kubeconfig: kubeconfig.map(|(p, _)| p),
        config_file: config_path,
        warnings,
        settings,
    })
}
