//! API access that cannot wedge leadership (SPEC R6).
//!
//! * [`ApiEndpoints`]: the ordered list of API servers to try —
//!   `kubernetes_addr`, then the local apiserver `https://127.0.0.1:PORT`
//!   (control-plane mode), then the kubeconfig's (or in-cluster) server — with
//!   every server whose host is the VIP dropped in control-plane mode (the VIP
//!   is down exactly when we need the API to bring it up: kube-vip's chicken
//!   and egg).
//! * [`Credentials`]: one `kube::Config` loaded from an explicit kubeconfig,
//!   `$KUBECONFIG`, or the in-cluster service account; every endpoint gets a
//!   copy with its own `cluster_url`.
//!
//! What is dialled from these, and how a dead connection is dropped, is in
//! `connection` (crate-internal).

use http::Uri;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// The TLS name the local endpoint's certificate is verified against when
/// the kubeconfig sets no `tls-server-name`. `kubernetes` is the in-cluster
/// Service name that every apiserver certificate carries (kubeadm's default
/// SANs: `kubernetes`, `kubernetes.default`, ..., the Service IP, the advertise
/// address; 127.0.0.1 only in the SAN list of newer kubeadm releases and not
/// in hand-made certificates), and the name kube-vip dials through a
/// `hostAliases` entry `kubernetes → 127.0.0.1`. We connect to 127.0.0.1 and
/// verify the certificate as `kubernetes`, which works with both.
pub const DEFAULT_LOCAL_TLS_SERVER_NAME: &str = "kubernetes";

/// Configuration errors: reported at startup, before anything is touched.
#[derive(Debug, thiserror::Error)]
pub enum KubeConfigError {
    /// The kubeconfig named explicitly could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// `$KUBECONFIG` is set but unusable.
    #[error("$KUBECONFIG: {0}")]
    KubeconfigEnv(#[source] kube::config::KubeconfigError),
    /// No kubeconfig given and no in-cluster service account.
    #[error("no kubeconfig (--k8s-config-file, $KUBECONFIG) and not in a cluster: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    /// `kubernetes_addr` is not `host:port` or a URL.
    #[error("kubernetes_addr {0:?}: expected host:port or https://host:port")]
    BadAddr(String),
    /// Every candidate endpoint was excluded.
    #[error("no usable API endpoint (all candidates point at the VIP {vip})")]
    NoEndpoint {
        /// The VIP that excluded them.
        vip: IpAddr,
    },
    /// The TLS stack could not be built from the credentials.
    #[error("API client for {url}: {source}")]
    Client {
        /// The endpoint.
        url: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// The daemon's settings that decide where the API is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInputs {
    /// `kubernetes_addr`: tried first when set.
    pub kubernetes_addr: Option<String>,
    /// Port of the local apiserver (kube-vip's `port`, 6443).
    pub api_port: u16,
    /// Control-plane mode: add the local apiserver, never use the VIP.
    pub control_plane: bool,
    /// The control-plane VIP.
    pub vip: IpAddr,
    /// Name the local endpoint's certificate is verified against when the
    /// kubeconfig sets none ([`DEFAULT_LOCAL_TLS_SERVER_NAME`]); `None`
    /// verifies against `127.0.0.1` (the certificate must carry that IP SAN).
    pub local_tls_server_name: Option<String>,
}

impl EndpointInputs {
    /// The inputs from the daemon's configuration, with the default TLS name
    /// for the local endpoint.
    pub fn new(
        kubernetes_addr: Option<String>,
        api_port: u16,
        control_plane: bool,
        vip: IpAddr,
    ) -> Self {
        EndpointInputs {
            kubernetes_addr,
            api_port,
            control_plane,
            vip,
            local_tls_server_name: Some(DEFAULT_LOCAL_TLS_SERVER_NAME.to_owned()),
        }
    }
}

/// Where an endpoint came from (for logs and `/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointSource {
    /// `kubernetes_addr`.
    KubernetesAddr,
    /// The local apiserver (control-plane mode).
    Local,
    /// The kubeconfig's or the in-cluster server.
    Credentials,
}

/// One API server to try.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Its URL.
    pub url: Uri,
    /// Where it came from.
    pub source: EndpointSource,
    /// TLS name to verify its certificate against (`None`: the URL's host).
    pub tls_server_name: Option<String>,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url)
    }
}

/// The ordered endpoint list, and what was left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiEndpoints {
    /// Tried in this order; the first is preferred.
    pub endpoints: Vec<Endpoint>,
    /// Servers dropped because their host is the VIP (control-plane mode).
    /// The daemon logs them in one line.
    pub dropped: Vec<Uri>,
}

fn parse_addr(addr: &str) -> Result<Uri, KubeConfigError> {
    let s = addr.trim();
    let with_scheme = if s.contains("://") {
        s.to_owned()
    } else {
        format!("https://{s}")
    };
    let uri: Uri = with_scheme
        .parse()
        .map_err(|_| KubeConfigError::BadAddr(addr.to_owned()))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(KubeConfigError::BadAddr(addr.to_owned()));
    }
    Ok(uri)
}

/// The host of `uri` as an IP, if it is a literal address (`[v6]` too).
fn host_ip(uri: &Uri) -> Option<IpAddr> {
    let h = uri.host()?;
    h.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn same_server(a: &Uri, b: &Uri) -> bool {
    a.scheme() == b.scheme()
        && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
        && a.port_u16() == b.port_u16()
}

impl ApiEndpoints {
    /// Plans the endpoint list from the daemon's settings and the server of
    /// the credentials (kubeconfig or in-cluster). Pure: no I/O.
    ///
    /// Only literal addresses are compared with the VIP: a DNS name that
    /// resolves to the VIP (kubeadm's `controlPlaneEndpoint`) is kept, but it
    /// comes last, after the local apiserver.
    pub fn plan(
        inputs: &EndpointInputs,
        credentials_server: &Uri,
        credentials_tls_name: Option<&str>,
    ) -> Result<Self, KubeConfigError> {
        let mut candidates = Vec::new();
        if let Some(addr) = inputs
            .kubernetes_addr
            .as_deref()
            .filter(|a| !a.trim().is_empty())
        {
            candidates.push(Endpoint {
                url: parse_addr(addr)?,
                source: EndpointSource::KubernetesAddr,
                tls_server_name: credentials_tls_name.map(str::to_owned),
            });
        }
        if inputs.control_plane {
            let url = Uri::builder()
                .scheme("https")
                .authority(format!("{}:{}", Ipv4Addr::LOCALHOST, inputs.api_port))
                .path_and_query("/")
                .build()
                .map_err(|_| KubeConfigError::BadAddr(format!("127.0.0.1:{}", inputs.api_port)))?;
            candidates.push(Endpoint {
                url,
                source: EndpointSource::Local,
                tls_server_name: credentials_tls_name
                    .map(str::to_owned)
                    .or_else(|| inputs.local_tls_server_name.clone()),
            });
        }
        candidates.push(Endpoint {
            url: credentials_server.clone(),
            source: EndpointSource::Credentials,
            tls_server_name: credentials_tls_name.map(str::to_owned),
        });

        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut dropped = Vec::new();
        for c in candidates {
            if inputs.control_plane && host_ip(&c.url) == Some(inputs.vip) {
                dropped.push(c.url);
            } else if !endpoints.iter().any(|e| same_server(&e.url, &c.url)) {
                endpoints.push(c);
            }
        }
        if endpoints.is_empty() {
            return Err(KubeConfigError::NoEndpoint { vip: inputs.vip });
        }
        Ok(ApiEndpoints { endpoints, dropped })
    }
}

/// Where the credentials came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    /// `--k8s-config-file` / `k8s_config_file`.
    File(PathBuf),
    /// `$KUBECONFIG`.
    Env,
    /// The pod's service account.
    InCluster,
}

/// Credentials and TLS trust for the API, shared by every endpoint.
#[derive(Clone)]
pub struct Credentials {
    config: kube::Config,
    source: CredentialSource,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the auth info (tokens, keys).
        f.debug_struct("Credentials")
            .field("server", &self.config.cluster_url)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Loads credentials: an explicit kubeconfig path, else `$KUBECONFIG`,
    /// else the in-cluster service account (token and `ca.crt` under
    /// `/var/run/secrets/kubernetes.io/serviceaccount`,
    /// `KUBERNETES_SERVICE_HOST`/`_PORT`). `~/.kube/config` is not consulted:
    /// a daemon must not pick up a user's file by accident.
    pub async fn load(kubeconfig: Option<&std::path::Path>) -> Result<Self, KubeConfigError> {
        let opts = KubeConfigOptions::default();
        if let Some(path) = kubeconfig {
            let kc_err = |source| KubeConfigError::Kubeconfig {
                path: path.to_owned(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(kc_err)?;
            let config = kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(kc_err)?;
            return Ok(Credentials {
                config,
                source: CredentialSource::File(path.to_owned()),
            });
        }
        if let Some(kc) = Kubeconfig::from_env().map_err(KubeConfigError::KubeconfigEnv)? {
            let config = kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(KubeConfigError::KubeconfigEnv)?;
            return Ok(Credentials {
                config,
                source: CredentialSource::Env,
            });
        }
        let config = kube::Config::incluster().map_err(KubeConfigError::InCluster)?;
        Ok(Credentials {
            config,
            source: CredentialSource::InCluster,
        })
    }

    /// Wraps an already built `kube::Config` (tests, embedding).
    pub fn from_config(config: kube::Config, source: CredentialSource) -> Self {
        Credentials { config, source }
    }

    /// The cluster CA the credentials trust: DER certificates (a
    /// kubeconfig's `certificate-authority-data`) and/or a PEM file (the
    /// service account's `ca.crt`). Lets other HTTPS clients of the same
    /// apiserver, such as the `/livez` health check, verify it too.
    pub fn cluster_ca(&self) -> (&[Vec<u8>], Option<&std::path::Path>) {
        (
            self.config.root_cert.as_deref().unwrap_or_default(),
            self.config.root_cert_file.as_deref(),
        )
    }

    /// The server named by the credentials.
    pub fn server(&self) -> &Uri {
        &self.config.cluster_url
    }

    /// Where they came from.
    pub fn source(&self) -> &CredentialSource {
        &self.source
    }

    /// The namespace of the kubeconfig context or the service account.
    pub fn default_namespace(&self) -> &str {
        &self.config.default_namespace
    }

    /// Plans the endpoint list for these credentials.
    pub fn endpoints(&self, inputs: &EndpointInputs) -> Result<ApiEndpoints, KubeConfigError> {
        ApiEndpoints::plan(
            inputs,
            &self.config.cluster_url,
            self.config.tls_server_name.as_deref(),
        )
    }

    /// The `kube::Config` for one endpoint: same credentials, its URL and TLS
    /// name.
    pub(crate) fn config_for(&self, ep: &Endpoint, connect_timeout: Duration) -> kube::Config {
        let mut c = self.config.clone();
        c.cluster_url = ep.url.clone();
        c.tls_server_name = ep.tls_server_name.clone();
        c.connect_timeout = Some(connect_timeout);
        c.read_timeout = None;
        c.write_timeout = Some(connect_timeout);
        c.default_retry = false;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100));

    fn inputs(addr: Option<&str>, cp: bool) -> EndpointInputs {
        EndpointInputs::new(addr.map(str::to_owned), 6443, cp, VIP)
    }

    fn urls(e: &ApiEndpoints) -> Vec<String> {
        e.endpoints.iter().map(|e| e.url.to_string()).collect()
    }

    fn uri(s: &str) -> Uri {
        s.parse().expect("test uri")
    }

    #[test]
    fn control_plane_order_is_addr_then_local_then_kubeconfig() {
        let e = ApiEndpoints::plan(
            &inputs(Some("192.0.2.10:6443"), true),
            &uri("https://cp.example.invalid:6443"),
            None,
        )
        .expect("plan");
        assert_eq!(
            urls(&e),
            [
                "https://192.0.2.10:6443/",
                "https://127.0.0.1:6443/",
                "https://cp.example.invalid:6443/"
            ]
        );
        assert_eq!(
            e.endpoints.iter().map(|e| e.source).collect::<Vec<_>>(),
            [
                EndpointSource::KubernetesAddr,
                EndpointSource::Local,
                EndpointSource::Credentials
            ]
        );
        assert!(e.dropped.is_empty());
    }

    #[test]
    fn control_plane_never_uses_a_server_that_is_the_vip() {
        let e = ApiEndpoints::plan(
            &inputs(Some("https://192.0.2.100:6443"), true),
            &uri("https://192.0.2.100:6443"),
            None,
        )
        .expect("plan");
        assert_eq!(urls(&e), ["https://127.0.0.1:6443/"]);
        assert_eq!(e.dropped.len(), 2);
    }

    #[test]
    fn ipv6_vip_is_recognised_in_brackets() {
        let vip6: IpAddr = "2001:db8::100".parse().expect("ip");
        let e = ApiEndpoints::plan(
            &EndpointInputs::new(None, 6443, true, vip6),
            &uri("https://[2001:db8::100]:6443"),
            None,
        )
        .expect("plan");
        assert_eq!(urls(&e), ["https://127.0.0.1:6443/"]);
        assert_eq!(e.dropped, [uri("https://[2001:db8::100]:6443")]);
    }

    #[test]
    fn outside_control_plane_mode_the_vip_server_is_kept_and_no_local_endpoint() {
        let e = ApiEndpoints::plan(&inputs(None, false), &uri("https://192.0.2.100:6443"), None)
            .expect("plan");
        assert_eq!(urls(&e), ["https://192.0.2.100:6443/"]);
        assert!(e.dropped.is_empty());
    }

    #[test]
    fn duplicate_servers_appear_once() {
        let e = ApiEndpoints::plan(
            &inputs(Some("127.0.0.1:6443"), true),
            &uri("https://127.0.0.1:6443"),
            None,
        )
        .expect("plan");
        assert_eq!(urls(&e), ["https://127.0.0.1:6443/"]);
        assert_eq!(e.endpoints[0].source, EndpointSource::KubernetesAddr);
    }

    #[test]
    fn local_endpoint_verifies_against_the_kubernetes_name_unless_configured() {
        let e = ApiEndpoints::plan(&inputs(None, true), &uri("https://192.0.2.5:6443"), None)
            .expect("plan");
        assert_eq!(
            e.endpoints[0].tls_server_name.as_deref(),
            Some("kubernetes")
        );
        assert_eq!(e.endpoints[1].tls_server_name, None);
        let e = ApiEndpoints::plan(
            &inputs(None, true),
            &uri("https://192.0.2.5:6443"),
            Some("api.example.invalid"),
        )
        .expect("plan");
        assert!(e
            .endpoints
            .iter()
            .all(|e| e.tls_server_name.as_deref() == Some("api.example.invalid")));
    }

    #[test]
    fn malformed_kubernetes_addr_is_a_config_error() {
        let r = ApiEndpoints::plan(
            &inputs(Some("https://"), true),
            &uri("https://192.0.2.5:6443"),
            None,
        );
        assert!(matches!(r, Err(KubeConfigError::BadAddr(_))));
    }
}
