//! Health check specifications and their one-line string form.
//!
//! The daemon's repeated `--health-check` flag takes one check per value:
//!
//! ```text
//! https://127.0.0.1:6443/livez,ca=/etc/kubernetes/pki/ca.crt,interval=5s,timeout=3s,failure=3
//! http://192.0.2.10:8080/healthz,name=backend
//! tcp://192.0.2.10:5432,interval=2s
//! icmp://192.0.2.1,failure=5
//! icmp://2001:db8::1
//! ```
//!
//! Options follow the target after commas (so a target URL cannot itself
//! contain a comma). Defaults are kube-vip's control-plane health check
//! defaults: interval 5 s, timeout 3 s, failure threshold 3, plus a success
//! threshold of 1 (kube-vip re-announces on the first success).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

/// Default seconds between probes (kube-vip `control_plane_health_check_period_seconds`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Default per-probe timeout (kube-vip `control_plane_health_check_timeout_seconds`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// Default failures before down (kube-vip `control_plane_health_check_failure_threshold`).
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// Default successes before up (kube-vip recovers on the first success).
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;

/// The accepted forms, quoted in every parse error.
pub const ACCEPTED_FORMS: &str = "expected one of http://HOST[:PORT][/PATH], \
https://HOST[:PORT][/PATH], tcp://HOST:PORT, icmp://IP, optionally followed by \
,name=NAME ,interval=5s ,timeout=3s ,failure=3 ,success=1 (https also ,ca=/path/ca.crt \
,sni=NAME)";

/// Why a `--health-check` value was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HealthSpecError {
    /// Empty value.
    #[error("empty health check; {ACCEPTED_FORMS}")]
    Empty,
    /// Scheme not one of http, https, tcp, icmp.
    #[error("health check {input:?}: unknown scheme; {ACCEPTED_FORMS}")]
    UnknownScheme {
        /// The offending value.
        input: String,
    },
    /// The target after the scheme is malformed.
    #[error("health check {input:?}: {reason}; {ACCEPTED_FORMS}")]
    BadTarget {
        /// The offending value.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option key that is not known (or not valid for this kind).
    #[error("health check {input:?}: unknown option {key:?}; {ACCEPTED_FORMS}")]
    UnknownOption {
        /// The offending value.
        input: String,
        /// The key.
        key: String,
    },
    /// An option whose value does not parse or is out of range.
    #[error("health check {input:?}: bad value {value:?} for {key}: {reason}")]
    BadValue {
        /// The offending value.
        input: String,
        /// The option key.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What a check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeSpec {
    /// HTTP(S) GET; status 200–399 is up.
    Http(HttpProbe),
    /// TCP connect to `host:port`; an established connection is up.
    Tcp {
        /// Host name or IP literal (no brackets).
        host: String,
        /// Port.
        port: u16,
    },
    /// ICMP / ICMPv6 echo; a matching echo reply is up.
    Icmp {
        /// Target address (typically the gateway).
        addr: IpAddr,
    },
}

/// Parameters of an HTTP(S) GET probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// Full URL (`http` or `https` scheme, with authority).
    pub url: Uri,
    /// PEM CA bundle added to the system trust store for verification
    /// (kube-vip `control_plane_health_check_ca_path`).
    pub ca_path: Option<PathBuf>,
    /// Name to verify the server certificate against (and send as SNI)
    /// instead of the URL's host; see [`HealthCheckSpec::local_apiserver`].
    pub server_name: Option<String>,
    /// Further trusted CA certificates (DER), e.g. the cluster CA taken
    /// from the kubeconfig the daemon already uses for the API.
    pub extra_roots: Vec<Vec<u8>>,
}

impl HttpProbe {
    /// Whether the URL's scheme is `https`.
    pub fn is_tls(&self) -> bool {
        self.url.scheme_str() == Some("https")
    }
}

/// One configured health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSpec {
    /// Name in logs, `/status` and `vipd_health_check_up{check}`; defaults
    /// to the target text.
    pub name: String,
    /// What to probe.
    pub probe: ProbeSpec,
    /// Time between the starts of consecutive probes.
    pub interval: Duration,
    /// Deadline of one probe (connect + TLS + response, or echo reply).
    pub timeout: Duration,
    /// Consecutive failures that take the check down.
    pub failure_threshold: u32,
    /// Consecutive successes that bring it up.
    pub success_threshold: u32,
}

impl HealthCheckSpec {
    /// A spec for `probe` with the default timings and thresholds.
    pub fn new(name: impl Into<String>, probe: ProbeSpec) -> Self {
        HealthCheckSpec {
            name: name.into(),
            probe,
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
        }
    }

    /// The control-plane default: `GET https://127.0.0.1:PORT/livez`.
    ///
    /// The certificate is verified against the name `kubernetes`, which is
    /// in every kube-apiserver serving certificate (kubeadm's and the
    /// apiserver's self-signed one), while kubeadm's certificate does not
    /// list `127.0.0.1` or `localhost` unless added to `certSANs`. Without
    /// `ca_path` only the system trust store is used, as in kube-vip, which
    /// fails against a private cluster CA: pass the cluster CA
    /// (`/etc/kubernetes/pki/ca.crt` on kubeadm).
    pub fn local_apiserver(port: u16, ca_path: Option<PathBuf>) -> Self {
        let url = format!("https://127.0.0.1:{port}/livez");
        let probe = ProbeSpec::Http(HttpProbe {
            // The literal is a valid URI for every u16 port.
            url: url
                .parse()
                .unwrap_or_else(|_| Uri::from_static("https://127.0.0.1/livez")),
            ca_path,
            server_name: Some("kubernetes".into()),
            extra_roots: Vec::new(),
        });
        HealthCheckSpec::new("apiserver", probe)
    }

    /// Trusts the cluster CA the daemon already uses for the API (DER
    /// certificates and/or a PEM file) for an HTTPS check that has no CA
    /// of its own, so the default `/livez` check of a kubeadm node passes
    /// without extra configuration. Other checks are left as they are.
    pub fn trust_cluster_ca(&mut self, der: &[Vec<u8>], pem_file: Option<&std::path::Path>) {
        if let ProbeSpec::Http(http) = &mut self.probe {
            if http.is_tls() && http.ca_path.is_none() && http.extra_roots.is_empty() {
                http.extra_roots = der.to_vec();
                http.ca_path = pem_file.map(std::path::Path::to_path_buf);
            }
        }
    }

    /// Maps kube-vip's `control_plane_health_check_*` variables onto a spec
    /// (`address` must be an http(s) URL, as in kube-vip). Zero or negative
    /// numbers fall back to kube-vip's defaults, as its config does.
    pub fn from_kube_vip(
        address: &str,
        period_seconds: i64,
        timeout_seconds: i64,
        failure_threshold: i64,
        ca_path: Option<PathBuf>,
    ) -> Result<Self, HealthSpecError> {
        let mut spec = HealthCheckSpec::parse(address)?;
        let ProbeSpec::Http(http) = &mut spec.probe else {
            return Err(HealthSpecError::BadTarget {
                input: address.into(),
                reason: "control_plane_health_check_address must be an http:// or https:// URL"
                    .into(),
            });
        };
        http.ca_path = ca_path;
        spec.name = "control-plane".into();
        let secs = |v: i64, d: Duration| {
            u64::try_from(v)
                .ok()
                .filter(|s| *s > 0)
                .map_or(d, Duration::from_secs)
        };
        spec.interval = secs(period_seconds, DEFAULT_INTERVAL);
        spec.timeout = secs(timeout_seconds, DEFAULT_TIMEOUT);
        spec.failure_threshold = u32::try_from(failure_threshold)
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_FAILURE_THRESHOLD);
        Ok(spec)
    }

    /// Parses one `--health-check` value (see the module docs).
    pub fn parse(input: &str) -> Result<Self, HealthSpecError> {
        let input_s = input.trim();
        if input_s.is_empty() {
            return Err(HealthSpecError::Empty);
        }
        let mut parts = input_s.split(',');
        let target = parts.next().unwrap_or_default().trim();
        let bad_target = |reason: &str| HealthSpecError::BadTarget {
            input: input_s.into(),
            reason: reason.into(),
        };
        let (scheme, rest) =
            target
                .split_once("://")
                .ok_or_else(|| HealthSpecError::UnknownScheme {
                    input: input_s.into(),
                })?;
        let probe = match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => {
                let url: Uri = target
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| bad_target(&e.to_string()))?;
                if url.host().is_none_or(str::is_empty) {
                    return Err(bad_target("URL has no host"));
                }
                ProbeSpec::Http(HttpProbe {
                    url,
                    ca_path: None,
                    server_name: None,
                    extra_roots: Vec::new(),
                })
            }
            "tcp" => {
                let (host, port) = split_host_port(rest)
                    .ok_or_else(|| bad_target("tcp target must be HOST:PORT or [IPv6]:PORT"))?;
                ProbeSpec::Tcp { host, port }
            }
            "icmp" => {
                let ip = rest.trim_end_matches('/');
                let ip = ip
                    .strip_prefix('[')
                    .and_then(|s| s.strip_suffix(']'))
                    .unwrap_or(ip);
                let addr: IpAddr = ip
                    .parse()
                    .map_err(|_| bad_target("icmp target must be an IPv4 or IPv6 address"))?;
                ProbeSpec::Icmp { addr }
            }
            _ => {
                return Err(HealthSpecError::UnknownScheme {
                    input: input_s.into(),
                })
            }
        };
        let mut spec = HealthCheckSpec::new(target, probe);
        for opt in parts {
            let opt = opt.trim();
            if opt.is_empty() {
                continue;
            }
            let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
            let (key, value) = (key.trim(), value.trim());
            let bad = |reason: &str| HealthSpecError::BadValue {
                input: input_s.into(),
                key: key.into(),
                value: value.into(),
                reason: reason.into(),
            };
            match (key, &mut spec.probe) {
                ("name", _) if !value.is_empty() => spec.name = value.into(),
                ("name", _) => return Err(bad("must not be empty")),
                ("interval", _) => spec.interval = parse_duration(value).map_err(&bad)?,
                ("timeout", _) => spec.timeout = parse_duration(value).map_err(&bad)?,
                ("failure" | "failure_threshold", _) => {
                    spec.failure_threshold = parse_threshold(value).map_err(&bad)?
                }
                ("success" | "success_threshold", _) => {
                    spec.success_threshold = parse_threshold(value).map_err(&bad)?
                }
                ("ca" | "ca_path", ProbeSpec::Http(h)) if h.is_tls() && !value.is_empty() => {
                    h.ca_path = Some(PathBuf::from(value))
                }
                ("sni" | "server_name", ProbeSpec::Http(h)) if h.is_tls() && !value.is_empty() => {
                    h.server_name = Some(value.into())
                }
                ("ca" | "ca_path" | "sni" | "server_name", ProbeSpec::Http(h)) if h.is_tls() => {
                    return Err(bad("must not be empty"))
                }
                _ => {
                    return Err(HealthSpecError::UnknownOption {
                        input: input_s.into(),
                        key: key.into(),
                    })
                }
            }
        }
        Ok(spec)
    }

    /// The target as text (URL, `tcp://host:port`, `icmp://ip`).
    pub fn target(&self) -> String {
        match &self.probe {
            ProbeSpec::Http(h) => h.url.to_string(),
            ProbeSpec::Tcp { host, port } if host.contains(':') => format!("tcp://[{host}]:{port}"),
            ProbeSpec::Tcp { host, port } => format!("tcp://{host}:{port}"),
            ProbeSpec::Icmp { addr } => format!("icmp://{addr}"),
        }
    }
}

/// `host:port` or `[v6]:port` (an optional trailing `/` is tolerated).
fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim_end_matches('/');
    let (host, port) = s.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        // An unbracketed IPv6 literal is ambiguous with the port separator.
        None if host.contains(':') => return None,
        None => host,
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// `500ms`, `5s`, `2m`, or bare seconds (kube-vip's `*_seconds` are integers).
fn parse_duration(v: &str) -> Result<Duration, &'static str> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => v.split_at(i),
        None => (v, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| "expected a duration like 500ms, 5s or 1m")?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err("expected a duration like 500ms, 5s or 1m"),
    };
    if d.is_zero() {
        return Err("must be greater than zero");
    }
    Ok(d)
}

fn parse_threshold(v: &str) -> Result<u32, &'static str> {
    match v.parse::<u32>() {
        Ok(0) => Err("must be at least 1"),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a positive integer"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn https_with_all_options_parses() {
        let s = HealthCheckSpec::parse(
            "https://127.0.0.1:6443/livez,ca=/etc/kubernetes/pki/ca.crt,sni=kubernetes,\
             interval=1s,timeout=500ms,failure=2,success=2,name=apiserver",
        )
        .unwrap();
        assert_eq!(s.name, "apiserver");
        assert_eq!(s.interval, Duration::from_secs(1));
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert_eq!((s.failure_threshold, s.success_threshold), (2, 2));
        let ProbeSpec::Http(h) = &s.probe else {
            panic!("not http: {s:?}")
        };
        assert!(h.is_tls());
        assert_eq!(h.url.port_u16(), Some(6443));
        assert_eq!(
            h.ca_path.as_deref(),
            Some(std::path::Path::new("/etc/kubernetes/pki/ca.crt"))
        );
        assert_eq!(h.server_name.as_deref(), Some("kubernetes"));
    }

    #[test]
    fn defaults_are_kube_vips_and_name_is_the_target() {
        let s = HealthCheckSpec::parse("http://192.0.2.10:8080/healthz").unwrap();
        assert_eq!(s.name, "http://192.0.2.10:8080/healthz");
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.failure_threshold, 3);
        assert_eq!(s.success_threshold, 1);
        assert_eq!(s.target(), "http://192.0.2.10:8080/healthz");
    }

    #[test]
    fn tcp_and_icmp_targets_parse_for_both_families() {
        let cases = [
            (
                "tcp://192.0.2.10:5432",
                ProbeSpec::Tcp {
                    host: "192.0.2.10".into(),
                    port: 5432,
                },
            ),
            (
                "tcp://[2001:db8::10]:443",
                ProbeSpec::Tcp {
                    host: "2001:db8::10".into(),
                    port: 443,
                },
            ),
            (
                "tcp://db.example:5432",
                ProbeSpec::Tcp {
                    host: "db.example".into(),
                    port: 5432,
                },
            ),
            (
                "icmp://192.0.2.1",
                ProbeSpec::Icmp {
                    addr: "192.0.2.1".parse().unwrap(),
                },
            ),
            (
                "icmp://2001:db8::1",
                ProbeSpec::Icmp {
                    addr: "2001:db8::1".parse().unwrap(),
                },
            ),
            (
                "icmp://[2001:db8::1]",
                ProbeSpec::Icmp {
                    addr: "2001:db8::1".parse().unwrap(),
                },
            ),
        ];
        for (input, want) in cases {
            let s = HealthCheckSpec::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(s.probe, want, "{input}");
        }
        let v6 = HealthCheckSpec::parse("tcp://[2001:db8::10]:443").unwrap();
        assert_eq!(v6.target(), "tcp://[2001:db8::10]:443");
    }

    #[test]
    fn bare_number_durations_are_seconds() {
        let s = HealthCheckSpec::parse("tcp://192.0.2.1:80,interval=7,timeout=2m").unwrap();
        assert_eq!(s.interval, Duration::from_secs(7));
        assert_eq!(s.timeout, Duration::from_secs(120));
    }

    #[test]
    fn malformed_values_are_rejected_with_the_accepted_forms() {
        let bad = [
            "",
            "ftp://192.0.2.1/",
            "192.0.2.1:80",
            "tcp://192.0.2.1",
            "tcp://2001:db8::1:80",
            "tcp://192.0.2.1:0",
            "icmp://gateway",
            "http://192.0.2.1/,interval=0s",
            "http://192.0.2.1/,failure=0",
            "http://192.0.2.1/,timeout=3h",
            "http://192.0.2.1/,ca=/etc/ca.crt",
            "tcp://192.0.2.1:80,sni=x",
            "icmp://192.0.2.1,colour=blue",
            "https:///livez",
        ];
        for input in bad {
            let err = HealthCheckSpec::parse(input).expect_err(input);
            let msg = err.to_string();
            assert!(
                msg.contains("tcp://HOST:PORT") || matches!(err, HealthSpecError::BadValue { .. }),
                "{input}: {msg}"
            );
        }
        let err = HealthCheckSpec::parse("ftp://x").unwrap_err();
        assert!(err.to_string().contains("https://HOST"), "{err}");
    }

    #[test]
    fn kube_vip_variables_map_onto_an_http_check() {
        let s = HealthCheckSpec::from_kube_vip(
            "https://localhost:6443/livez",
            1,
            0,
            5,
            Some("/etc/kubernetes/pki/ca.crt".into()),
        )
        .unwrap();
        assert_eq!(s.interval, Duration::from_secs(1));
        assert_eq!(s.timeout, DEFAULT_TIMEOUT, "0 falls back to the default");
        assert_eq!(s.failure_threshold, 5);
        let ProbeSpec::Http(h) = &s.probe else {
            panic!("not http")
        };
        assert!(h.ca_path.is_some());
        assert!(HealthCheckSpec::from_kube_vip("tcp://192.0.2.1:6443", 5, 3, 3, None).is_err());
    }

    #[test]
    fn local_apiserver_verifies_as_kubernetes() {
        let s = HealthCheckSpec::local_apiserver(6443, None);
        assert_eq!(s.target(), "https://127.0.0.1:6443/livez");
        let ProbeSpec::Http(h) = &s.probe else {
            panic!("not http")
        };
        assert_eq!(h.server_name.as_deref(), Some("kubernetes"));
    }
}
