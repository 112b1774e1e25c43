//! What resolution needs besides flags and environment: facts about the
//! host (injectable for tests), and the `manifest` request with its
//! manifest-only options.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::options::PROMETHEUS_SERVER;
use super::{values, Config, ConfigError, Source};

/// Where Kubernetes mounts the pod's service-account namespace; its content
/// is the default lease namespace in a pod (client-go's in-cluster config
/// reads the same file).
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// Kubeconfig that `manifest pod` mounts from the host: kubeadm's
/// `admin.conf`, as kube-vip's generator does. kubeadm 1.29+ binds
/// `admin.conf` to RBAC (group `kubeadm:cluster-admins`, bound only once
/// `kubeadm init` has finished), so on the first node during `kubeadm init`
/// mount `/etc/kubernetes/super-admin.conf` instead
/// (`--kubeconfig-host-path`) and switch back afterwards.
pub const DEFAULT_KUBECONFIG_HOST_PATH: &str = "/etc/kubernetes/admin.conf";

/// The image `manifest` writes unless `--image` is given: the tag
/// `scripts/build-image.sh` builds (and `charts/vipd` defaults to). No
/// registry serves it yet; push your build and point `--image` at it.
pub fn default_image() -> String {
    format!("ghcr.io/vipd/vipd:v{}", env!("CARGO_PKG_VERSION"))
}

/// Facts about the machine that resolution may consult, injectable so tests
/// stay hermetic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Default node name (the kernel hostname).
    pub hostname: Option<String>,
    /// The service-account namespace file; its namespace is the lease
    /// namespace when none is configured. `None` skips the lookup.
    pub service_account_namespace_file: Option<PathBuf>,
    /// kubeadm's cluster CA ([`KUBEADM_CA_FILE`]); with the etcd backend
    /// (no kubeconfig to take a CA from) the default `/livez` check trusts
    /// it when it exists. `None` skips the lookup.
    pub kubeadm_ca_file: Option<PathBuf>,
}

/// Where kubeadm writes the cluster CA certificate.
pub const KUBEADM_CA_FILE: &str = "/etc/kubernetes/pki/ca.crt";

impl HostFacts {
    /// This machine: the kernel hostname and
    /// [`SERVICE_ACCOUNT_NAMESPACE_FILE`].
    pub fn system() -> HostFacts {
        HostFacts {
            hostname: system_hostname(),
            service_account_namespace_file: Some(PathBuf::from(SERVICE_ACCOUNT_NAMESPACE_FILE)),
            kubeadm_ca_file: Some(PathBuf::from(KUBEADM_CA_FILE)),
        }
    }
}

/// What `vipd manifest` prints (see [`crate::manifest`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ManifestRequest {
    /// `manifest pod`: a static pod for a kubeadm control-plane node.
    Pod {
        /// The configuration written into the env block.
        config: Box<Config>,
        /// Container image.
        image: String,
        /// Kubeconfig file on the host, mounted at the configured
        /// `--kubeconfig` path (default [`DEFAULT_KUBECONFIG_HOST_PATH`]);
        /// not used when `in_cluster`.
        kubeconfig_host_path: PathBuf,
        /// kube-vip's `--inCluster`: the pod uses the vipd ServiceAccount
        /// and mounts no kubeconfig.
        in_cluster: bool,
    },
    /// `manifest daemonset`: control-plane nodes, in-cluster credentials.
    DaemonSet {
        /// The configuration written into the env block.
        config: Box<Config>,
        /// Container image.
        image: String,
        /// Control-plane nodes only, tolerating their taints (kube-vip's
        /// `--taint`; vipd's default); `false`: every schedulable node.
        control_plane_only: bool,
    },
    /// `manifest rbac`: ServiceAccount, Role and RoleBinding.
    Rbac {
        /// Namespace of the lease, where the Role and RoleBinding live.
        lease_namespace: String,
        /// Also the cluster-wide rules of Services mode.
        services: bool,
    },
}

impl ManifestRequest {
    /// The configuration's warnings (ignored kube-vip flags and variables,
    /// manifest caveats), for stderr next to the YAML.
    pub fn warnings(&self) -> &[String] {
        match self {
            ManifestRequest::Pod { config, .. } | ManifestRequest::DaemonSet { config, .. } => {
                &config.warnings
            }
            ManifestRequest::Rbac { .. } => &[],
        }
    }
}

/// What `vipd status` asks (see `vipd_observe::client`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    /// Where the daemon's HTTP endpoint answers (a wildcard listen address
    /// already turned into loopback).
    pub addr: SocketAddr,
    /// Print the JSON as served instead of the table.
    pub json: bool,
    /// Connect, write and read deadline.
    pub timeout: Duration,
}

/// `vipd status`'s target: `--prometheus-server`, `VIPD_PROMETHEUS_SERVER`,
/// kube-vip's `prometheus_server` (empty counts as unset, as everywhere for
/// kube-vip variables), else `:2112`; a wildcard host (`:2112`, `0.0.0.0`,
/// `[::]`) is reached on loopback.
pub(super) fn status_request(
    json: bool,
    flag: Option<String>,
    timeout: &str,
    env: &HashMap<String, String>,
) -> Result<StatusRequest, ConfigError> {
    let (value, from) = match flag {
        Some(v) => (v, Source::Flag),
        None => match env.get(PROMETHEUS_SERVER.env) {
            Some(v) => (v.clone(), Source::Env(PROMETHEUS_SERVER.env.into())),
            None => match env
                .get("prometheus_server")
                .filter(|v| !v.trim().is_empty())
            {
                Some(v) => (v.clone(), Source::KubeVipEnv("prometheus_server".into())),
                None => (":2112".into(), Source::Default),
            },
        },
    };
    let invalid = |value: String, from: Source, expected: &str| ConfigError::Invalid {
        option: PROMETHEUS_SERVER.describe(),
        value,
        from,
        expected: expected.into(),
    };
    let addr =
        match values::listen_addr(&value) {
            Ok(Some(a)) => a,
            Ok(None) => return Err(invalid(
                value,
                from,
                "an address: the daemon's HTTP endpoint is disabled, so there is nothing to ask",
            )),
            Err(expected) => return Err(invalid(value, from, expected)),
        };
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    let timeout = values::seconds(timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| ConfigError::Invalid {
            option: "--timeout".into(),
            value: timeout.into(),
            from: Source::Flag,
            expected: "seconds > 0, e.g. 3 or 0.5".into(),
        })?;
    Ok(StatusRequest {
        addr,
        json,
        timeout,
    })
}

/// `--image`, or [`default_image`].
pub(super) fn image_or_default(image: Option<String>) -> Result<String, ConfigError> {
    match image {
        None => Ok(default_image()),
        Some(i) if !i.trim().is_empty() && !i.contains(char::is_whitespace) => Ok(i),
        Some(i) => Err(ConfigError::Invalid {
            option: "--image".into(),
            value: i,
            from: Source::Flag,
            expected: "a container image reference, e.g. registry.example/vipd:v0.1.0".into(),
        }),
    }
}

/// The kernel hostname, kube-vip's default holder identity.
pub(super) fn system_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
