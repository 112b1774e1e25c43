//! Health gating (SPEC R8) and the general Kubernetes client's limits
//! (SPEC R6): the settings, their defaults and the syntactic checks of
//! health-check specs. The daemon parses the specs themselves with
//! `vipd-health`; here they stay strings so configuration has no
//! dependency on the checker.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::options::*;
use super::{opt_path, secs, values, ConfigError, Resolver, Source};

/// kube-vip's `control_plane_health_check_period_seconds` default.
pub const DEFAULT_HEALTH_PERIOD: Duration = Duration::from_secs(5);
/// kube-vip's `control_plane_health_check_timeout_seconds` default.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(3);
/// kube-vip's `control_plane_health_check_failure_threshold` default.
pub const DEFAULT_HEALTH_FAILURE_THRESHOLD: u32 = 3;
/// General client queries per second (`--kube-api-qps`).
pub const DEFAULT_KUBE_API_QPS: f32 = 50.0;
/// General client burst (`--kube-api-burst`).
pub const DEFAULT_KUBE_API_BURST: u32 = 100;
/// General client request timeout (`--kube-api-timeout`).
pub const DEFAULT_KUBE_API_TIMEOUT: Duration = Duration::from_secs(30);

/// How every health check runs (kube-vip's `control_plane_health_check_*`).
///
/// kube-vip honours these variables only in BGP and routing-table mode,
/// where every node announces and the check withdraws the route. vipd
/// applies them in every mode, ARP/NDP included: an unhealthy holder
/// releases the lease and an unhealthy node does not campaign (SPEC R8).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSettings {
    /// kube-vip's single HTTP(S) check URL
    /// (`control_plane_health_check_address`); also part of
    /// [`Config::health_checks`](super::Config::health_checks).
    pub address: Option<String>,
    /// Time between two runs of a check.
    pub period: Duration,
    /// Time one run may take before it counts as failed.
    pub timeout: Duration,
    /// Consecutive failures before a check is down.
    pub failure_threshold: u32,
    /// PEM CA bundle verifying HTTPS checks; `None` leaves the choice of
    /// trust roots to the daemon.
    pub ca_path: Option<PathBuf>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            address: None,
            period: DEFAULT_HEALTH_PERIOD,
            timeout: DEFAULT_HEALTH_TIMEOUT,
            failure_threshold: DEFAULT_HEALTH_FAILURE_THRESHOLD,
            ca_path: None,
        }
    }
}

/// Limits of the general Kubernetes client (events, later Services). The
/// lease client has its own connection and no rate limit, so these can
/// never starve lease traffic (SPEC R6).
#[derive(Debug, Clone, PartialEq)]
pub struct KubeApiSettings {
    /// Sustained requests per second (client-go's `QPS`).
    pub qps: f32,
    /// Requests allowed above `qps` in a burst (client-go's `Burst`).
    pub burst: u32,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl Default for KubeApiSettings {
    fn default() -> Self {
        KubeApiSettings {
            qps: DEFAULT_KUBE_API_QPS,
            burst: DEFAULT_KUBE_API_BURST,
            timeout: DEFAULT_KUBE_API_TIMEOUT,
        }
    }
}

/// The check used in control-plane mode when none is configured: the local
/// API server's `/livez`, which kube-apiserver serves to anonymous clients
/// (the `system:public-info-viewer` role) so no credentials are needed.
pub fn default_health_check(api_port: u16) -> String {
    format!("https://127.0.0.1:{api_port}/livez")
}

/// What a health-check spec must look like.
const SPEC_EXPECTED: &str =
    "health checks like https://127.0.0.1:6443/livez, http://HOST[:PORT]/PATH, tcp://HOST:PORT or icmp://IP, comma-separated";

/// Checks one spec's syntax: scheme http, https, tcp or icmp; a host for
/// every scheme, a port for tcp, a literal IP for icmp (a name could resolve
/// differently on two nodes, and the echo target is usually a gateway).
pub fn validate_health_check(spec: &str) -> Result<(), &'static str> {
    let (scheme, rest) = spec.split_once("://").ok_or(SPEC_EXPECTED)?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(SPEC_EXPECTED);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => {
            let (host, port) = split_host_port(authority);
            if host.is_empty() || port.is_some_and(|p| values::port(p).is_err()) {
                return Err(SPEC_EXPECTED);
            }
            Ok(())
        }
        "tcp" => match split_host_port(authority) {
            (host, Some(port))
                if !host.is_empty() && values::port(port).is_ok() && authority == rest =>
            {
                Ok(())
            }
            _ => Err("tcp://HOST:PORT, e.g. tcp://192.0.2.1:6443"),
        },
        "icmp" => {
            let ip = authority.trim_start_matches('[').trim_end_matches(']');
            if authority == rest && ip.parse::<IpAddr>().is_ok() {
                Ok(())
            } else {
                Err("icmp://IP with a literal address, e.g. icmp://192.0.2.1")
            }
        }
        _ => Err(SPEC_EXPECTED),
    }
}

/// `host:port`, `[v6]:port`, `host` or `[v6]` → (host, port).
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, tail)) => match tail.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => ("", None),
            },
            None => ("", None),
        };
    }
    match authority.rsplit_once(':') {
        // A bare IPv6 address without brackets has several colons: no port.
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        Some(_) => (authority, None),
        None => (authority, None),
    }
}

/// The value that turns health gating off, the default `/livez` check
/// included (`--health-check none`, `VIPD_HEALTH_CHECKS=none`).
pub const HEALTH_CHECKS_OFF: &str = "none";

fn health_list(s: &str) -> Result<Vec<String>, &'static str> {
    if s.trim().eq_ignore_ascii_case(HEALTH_CHECKS_OFF) {
        return Ok(Vec::new());
    }
    let list: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    if list.is_empty() {
        return Err(SPEC_EXPECTED);
    }
    for spec in &list {
        validate_health_check(spec)?;
    }
    Ok(list)
}

fn positive_seconds(s: &str) -> Result<Duration, &'static str> {
    match values::seconds(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err("seconds greater than zero, e.g. 5 or 0.5"),
    }
}

/// Resolves the general client's limits.
pub(super) fn resolve_kube_api(r: &mut Resolver<'_>) -> Result<KubeApiSettings, ConfigError> {
    let (qps, _) = r.get_or(
        &KUBE_API_QPS,
        DEFAULT_KUBE_API_QPS,
        f32::to_string,
        |s| match s.trim().parse::<f32>() {
            Ok(q) if q.is_finite() && q > 0.0 => Ok(q),
            _ => Err("queries per second greater than zero, e.g. 50 or 2.5"),
        },
    )?;
    let (burst, _) = r.get_or(
        &KUBE_API_BURST,
        DEFAULT_KUBE_API_BURST,
        u32::to_string,
        |s| match s.trim().parse::<u32>() {
            Ok(b) if b > 0 => Ok(b),
            _ => Err("a whole number of requests greater than zero, e.g. 100"),
        },
    )?;
    let (timeout, _) = r.get_or(
        &KUBE_API_TIMEOUT,
        DEFAULT_KUBE_API_TIMEOUT,
        secs,
        positive_seconds,
    )?;
    Ok(KubeApiSettings {
        qps,
        burst,
        timeout,
    })
}

/// Resolves the health settings and the effective list of checks: the
/// `--health-check` specs, then kube-vip's address; in control-plane mode
/// with neither, [`default_health_check`].
pub(super) fn resolve_health(
    r: &mut Resolver<'_>,
    control_plane: bool,
    api_port: u16,
) -> Result<(Vec<String>, HealthSettings), ConfigError> {
    let explicit = r.get(&HEALTH_CHECKS, health_list)?;
    // `none` alone is the off switch; with kube-vip's check address it
    // would say two opposite things.
    let address = r.get(&HEALTH_ADDRESS, |s| {
        let s = s.trim();
        let scheme = s.split_once("://").map(|(sch, _)| sch.to_ascii_lowercase());
        if matches!(scheme.as_deref(), Some("http" | "https")) && validate_health_check(s).is_ok() {
            Ok(s.to_string())
        } else {
            Err("an http:// or https:// URL, e.g. https://127.0.0.1:6443/livez")
        }
    })?;
    if let Some((a, s)) = &address {
        r.record(&HEALTH_ADDRESS, a.clone(), s.clone());
    }
    let (period, _) = r.get_or(
        &HEALTH_PERIOD,
        DEFAULT_HEALTH_PERIOD,
        secs,
        positive_seconds,
    )?;
    let (timeout, _) = r.get_or(
        &HEALTH_TIMEOUT,
        DEFAULT_HEALTH_TIMEOUT,
        secs,
        positive_seconds,
    )?;
    let (failure_threshold, _) = r.get_or(
        &HEALTH_FAILURE_THRESHOLD,
        DEFAULT_HEALTH_FAILURE_THRESHOLD,
        u32::to_string,
        |s| match s.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err("a whole number of consecutive failures greater than zero, e.g. 3"),
        },
    )?;
    let ca_path = r.get(&HEALTH_CA_PATH, opt_path)?;
    if let Some((p, s)) = &ca_path {
        r.record(&HEALTH_CA_PATH, p.display().to_string(), s.clone());
    }

    let off = explicit.as_ref().is_some_and(|(l, _)| l.is_empty());
    if let (true, Some((a, s))) = (off, &address) {
        return Err(ConfigError::Invalid {
            option: HEALTH_CHECKS.describe(),
            value: HEALTH_CHECKS_OFF.into(),
            from: s.clone(),
            expected: format!(
                "either `none` (no health gate) or a check address ({a} is set by {}), not both",
                HEALTH_ADDRESS.describe()
            ),
        });
    }
    let (mut checks, mut source) = match &explicit {
        Some((list, s)) => (list.clone(), s.clone()),
        None => (Vec::new(), Source::Default),
    };
    if let Some((a, s)) = &address {
        if !checks.contains(a) {
            if checks.is_empty() {
                source = s.clone();
            }
            checks.push(a.clone());
        }
    }
    if checks.is_empty() && control_plane && !off {
        checks.push(default_health_check(api_port));
    }
    let shown = if off {
        "none (health gate off)".to_string()
    } else if checks.is_empty() {
        "none".to_string()
    } else {
        checks.join(",")
    };
    r.record(&HEALTH_CHECKS, shown, source);
    Ok((
        checks,
        HealthSettings {
            address: address.map(|(a, _)| a),
            period,
            timeout,
            failure_threshold,
            ca_path: ca_path.map(|(p, _)| p),
        },
    ))
}

/// With the etcd backend there is no kubeconfig whose cluster CA could
/// verify the local apiserver, so the default `/livez` check would trust
/// only the system roots and fail on every kubeadm control plane (whose
/// serving certificate the cluster CA signs): no node would ever become
/// eligible. Trust kubeadm's CA file when it exists (recorded as the CA
/// path, so `check-config` shows it); otherwise return the one line the
/// daemon logs at ERROR saying what to set.
pub(super) fn etcd_mode_trust(
    r: &mut Resolver<'_>,
    health: &mut HealthSettings,
    checks: &[String],
    etcd: bool,
    api_port: u16,
    kubeadm_ca: Option<&std::path::Path>,
) -> Option<String> {
    let local = default_health_check(api_port);
    if !etcd || health.ca_path.is_some() || !checks.contains(&local) {
        return None;
    }
    match kubeadm_ca.filter(|p| p.is_file()) {
        Some(p) => {
            health.ca_path = Some(p.to_path_buf());
            r.record(
                &HEALTH_CA_PATH,
                p.display().to_string(),
                Source::HostFile(p.to_path_buf()),
            );
            None
        }
        None => Some(format!(
            "health check {local} can verify the apiserver only against the system roots (etcd \
             backend: no kubeconfig CA{}); a cluster-CA-signed certificate fails it and the VIP \
             never comes up: set {} to the cluster CA, or {}={HEALTH_CHECKS_OFF} to turn the gate off",
            kubeadm_ca.map_or(String::new(), |p| format!(", no {}", p.display())),
            HEALTH_CA_PATH.describe(),
            HEALTH_CHECKS.env,
        )),
    }
}

/// The namespace in the pod's service-account namespace file, when it
/// exists and holds a valid namespace name.
pub(super) fn service_account_namespace(path: Option<&std::path::Path>) -> Option<String> {
    let text = std::fs::read_to_string(path?).ok()?;
    values::object_name(text.trim(), 63).ok()
}

/// `manifest rbac`'s lease namespace: flag > `VIPD_LEASE_NAMESPACE` >
/// `cp_namespace` > `kube-system`.
pub(super) fn rbac_namespace(
    flag: Option<String>,
    env: &HashMap<String, String>,
) -> Result<String, ConfigError> {
    let (value, from) = if let Some(v) = flag {
        (v, Source::Flag)
    } else if let Some(v) = env.get(LEASE_NAMESPACE.env) {
        (v.clone(), Source::Env(LEASE_NAMESPACE.env.into()))
    } else if let Some(v) = env.get("cp_namespace").filter(|v| !v.trim().is_empty()) {
        (v.clone(), Source::KubeVipEnv("cp_namespace".into()))
    } else {
        (super::DEFAULT_LEASE_NAMESPACE.to_string(), Source::Default)
    };
    values::object_name(value.trim(), 63).map_err(|()| ConfigError::Invalid {
        option: LEASE_NAMESPACE.describe(),
        value,
        from,
        expected: "a namespace of lower-case letters, digits and '-' (at most 63)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_specs_need_a_known_scheme_and_a_target() {
        for ok in [
            "https://127.0.0.1:6443/livez",
            "http://[2001:db8::1]:8080/healthz",
            "https://api.example.invalid/readyz",
            "tcp://192.0.2.1:6443",
            "tcp://[2001:db8::1]:443",
            "icmp://192.0.2.1",
            "icmp://2001:db8::1",
        ] {
            assert_eq!(validate_health_check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1:6443",
            "ftp://192.0.2.1/",
            "https://",
            "https://192.0.2.1:99999/",
            "tcp://192.0.2.1",
            "tcp://192.0.2.1:6443/x",
            "icmp://gateway",
            "http://a b/",
        ] {
            assert!(validate_health_check(bad).is_err(), "{bad}");
        }
    }
}
