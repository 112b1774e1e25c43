//! Connection options (kube-vip's etcd flags) and their validation.
//!
//! Everything here is checked before any socket opens (STYLE.md: configuration
//! errors exit with status 2 before anything is touched): endpoints are
//! well-formed, certificate files readable, and TLS actually compiled in.

use std::path::PathBuf;
use std::time::Duration;

/// Where vipd keeps election records when no key is given: one key per lease
/// name under this prefix.
pub const DEFAULT_KEY_PREFIX: &str = "/vipd/leases/";

/// The conventional key for lease `name`: `/vipd/leases/<name>`.
pub fn key_for(lease_name: &str) -> String {
    format!("{DEFAULT_KEY_PREFIX}{lease_name}")
}

/// How to reach etcd and which key holds the record.
///
/// Field names follow kube-vip's flags: `--etcdEndpoints`, `--etcdCACert`,
/// `--etcdCert`, `--etcdKey`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `--etcdEndpoints`: `http://host:port`, `https://host:port` or bare
    /// `host:port` (plain HTTP, or HTTPS when certificates are given).
    pub endpoints: Vec<String>,
    /// The full key of the record, e.g. [`key_for`]`("plndr-cp-lock")`.
    pub key: String,
    /// `--etcdCACert`: PEM bundle that verifies the server.
    pub ca_cert: Option<PathBuf>,
    /// `--etcdCert`: PEM client certificate (needs `key_file`).
    pub cert: Option<PathBuf>,
    /// `--etcdKey`: PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
    /// Bound on dialing a connection (TCP + TLS handshake).
    pub connect_timeout: Duration,
    /// Bound on every unary call (and on opening a watch) made by the store,
    /// connecting included. The election driver sets tighter deadlines of its
    /// own; this one only guarantees that no call can hang forever, e.g. in
    /// the gRPC balancer while no endpoint is reachable.
    pub request_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            key: key_for("vipd"),
            ca_cert: None,
            cert: None,
            key_file: None,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl EtcdOptions {
    /// Options for `endpoints` and `key`, plain HTTP, default timeouts
    /// (connect 1 s, request 5 s).
    pub fn new(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
        key: impl Into<String>,
    ) -> Self {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            key: key.into(),
            ..EtcdOptions::default()
        }
    }

    /// True when any TLS setting or an `https://` endpoint asks for TLS.
    pub fn wants_tls(&self) -> bool {
        self.ca_cert.is_some()
            || self.cert.is_some()
            || self.key_file.is_some()
            || self
                .endpoints
                .iter()
                .any(|e| e.trim().starts_with("https://"))
    }
}

/// Why an [`EtcdStore`](crate::EtcdStore) could not be built from its options.
#[derive(Debug, thiserror::Error)]
pub enum EtcdConfigError {
    /// `endpoints` is empty.
    #[error("no etcd endpoints given (--etcdEndpoints)")]
    NoEndpoints,
    /// The record key is empty.
    #[error("the etcd key for the election record is empty")]
    EmptyKey,
    /// An endpoint is not `http(s)://host:port` or `host:port`.
    #[error("bad etcd endpoint {endpoint:?}: {reason}")]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A client certificate without its key, or a key without certificate.
    #[error("--etcdCert and --etcdKey must be given together")]
    IncompleteClientCert,
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS was asked for but this build has no TLS support.
    #[error("TLS to etcd requested (certificates or an https:// endpoint) but vipd-etcd was built without its `tls` feature")]
    TlsNotCompiled,
}

/// Checks one endpoint the way etcd-client will use it, so mistakes surface
/// at start-up rather than as "unavailable" on every call.
pub(crate) fn check_endpoint(endpoint: &str) -> Result<(), EtcdConfigError> {
    let bad = |reason| EtcdConfigError::BadEndpoint {
        endpoint: endpoint.to_string(),
        reason,
    };
    let rest = match endpoint.split_once("://") {
        Some(("http" | "https", rest)) => rest,
        Some(_) => return Err(bad("scheme must be http or https")),
        None => endpoint,
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if endpoint.chars().any(char::is_whitespace) {
        return Err(bad("contains whitespace"));
    }
    // host:port or [v6]:port; etcd has no default port worth guessing.
    let port = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => port,
        _ => return Err(bad("expected host:port")),
    };
    if port.parse::<u16>().is_err() {
        return Err(bad("port is not a number 0-65535"));
    }
    Ok(())
}

/// PEM material read from the option paths at construction time.
#[derive(Clone, Debug, Default)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))] // read only by the TLS connector
pub(crate) struct TlsFiles {
    /// CA bundle.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, EtcdConfigError> {
    std::fs::read(path).map_err(|source| EtcdConfigError::ReadFile {
        path: path.clone(),
        source,
    })
}

/// Validates `opts` and reads the certificate files.
pub(crate) fn validate(opts: &EtcdOptions) -> Result<Option<TlsFiles>, EtcdConfigError> {
    if opts.endpoints.is_empty() {
        return Err(EtcdConfigError::NoEndpoints);
    }
    if opts.key.is_empty() {
        return Err(EtcdConfigError::EmptyKey);
    }
    for e in &opts.endpoints {
        check_endpoint(e.trim())?;
    }
    if opts.cert.is_some() != opts.key_file.is_some() {
        return Err(EtcdConfigError::IncompleteClientCert);
    }
    if !opts.wants_tls() {
        return Ok(None);
    }
    // Read the files even without the feature? No: say the real problem first.
    if !cfg!(feature = "tls") {
        return Err(EtcdConfigError::TlsNotCompiled);
    }
    let ca = opts.ca_cert.as_ref().map(read).transpose()?;
    let identity = match (&opts.cert, &opts.key_file) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    Ok(Some(TlsFiles { ca, identity }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_in_kube_vip_forms_are_accepted() {
        for ok in [
            "http://127.0.0.1:2379",
            "192.0.2.1:2379",
            "https://etcd.example:2379",
            "http://[2001:db8::1]:2379",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn malformed_endpoints_are_refused_before_dialing() {
        for bad in [
            "",
            "ftp://h:1",
            "http://",
            "http://host",
            "host:notaport",
            "host:70000",
            "http://h :1",
        ] {
            assert!(
                matches!(
                    check_endpoint(bad),
                    Err(EtcdConfigError::BadEndpoint { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn options_are_validated_before_any_socket_opens() {
        let base = EtcdOptions::new(["http://127.0.0.1:2379"], "/k");
        assert!(matches!(
            validate(&EtcdOptions {
                endpoints: vec![],
                ..base.clone()
            }),
            Err(EtcdConfigError::NoEndpoints)
        ));
        assert!(matches!(
            validate(&EtcdOptions {
                key: String::new(),
                ..base.clone()
            }),
            Err(EtcdConfigError::EmptyKey)
        ));
        assert!(matches!(
            validate(&EtcdOptions {
                cert: Some("/c.pem".into()),
                ..base.clone()
            }),
            Err(EtcdConfigError::IncompleteClientCert)
        ));
        assert!(matches!(validate(&base), Ok(None)));
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_without_the_feature_is_a_clear_error() {
        let opts = EtcdOptions {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..EtcdOptions::new(["127.0.0.1:2379"], "/k")
        };
        assert!(matches!(
            validate(&opts),
            Err(EtcdConfigError::TlsNotCompiled)
        ));
        let https = EtcdOptions::new(["https://127.0.0.1:2379"], "/k");
        assert!(matches!(
            validate(&https),
            Err(EtcdConfigError::TlsNotCompiled)
        ));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn unreadable_certificate_is_a_config_error() {
        let opts = EtcdOptions {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..EtcdOptions::new(["127.0.0.1:2379"], "/k")
        };
        assert!(matches!(
            validate(&opts),
            Err(EtcdConfigError::ReadFile { .. })
        ));
    }
}
