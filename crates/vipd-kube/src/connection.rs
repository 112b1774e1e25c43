//! Connections to the API (SPEC R6), shared by every client of the crate
//! (the lease store, the node-lease and assignment stores, the general
//! client).
//!
//! * [`Dialer`]: one cached `kube::Client` at a time over the endpoints that
//!   `client` planned. A timeout or connection error throws it away (and
//!   with it its connection pool) and moves to the next endpoint; the next
//!   call dials afresh. Never reuse a half-dead connection: that is the
//!   failure that keeps kube-vip wedged after a network heal.
//! * [`map_err`]: one mapping of kube errors onto the election's
//!   [`StoreError`], so every store reports the same failure the same way.
//!
//! kube 5's `Client::try_from(Config)` builds an `HttpConnector` without TCP
//! keepalive and exposes no setting for it, so the client stack is assembled
//! here from kube's public pieces (`ConfigExt`: TLS connector, base URI and
//! auth layers) around a connector with keepalive and `TCP_USER_TIMEOUT`.
//! kube's default retry layer (429/503/504) is left out on purpose: lease
//! writes are never retried blindly (STYLE.md lesson 4), the core decides.

use crate::client::{ApiEndpoints, Credentials, Endpoint};
use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;
use tower::{BoxError, ServiceBuilder};
use vipd_election::StoreError;

/// TCP keepalive idle time on API connections: a silent peer is probed
/// after this long without traffic.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(5);
/// Interval between keepalive probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// Unanswered probes before the kernel drops the connection.
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Builds a `kube::Client` with its own connection pool for one endpoint:
/// TCP keepalive and `TCP_USER_TIMEOUT` on, no retry layer.
pub(crate) fn build_client(
    config: &kube::Config,
    connect_timeout: Duration,
) -> Result<kube::Client, kube::Error> {
    // kube's rustls config uses the process-wide crypto provider; make sure
    // one is installed (ring, the only one compiled in). Losing a race with
    // another installer is fine.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(TCP_KEEPALIVE));
    http.set_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL));
    http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
    // Unacknowledged data for longer than this aborts the connection (Linux
    // TCP_USER_TIMEOUT, RFC 5482): a black-holed request dies in the kernel
    // too, not only under the caller's timeout.
    http.set_tcp_user_timeout(Some(connect_timeout.max(Duration::from_secs(1))));
    let https = config.rustls_https_connector_with_connector(http)?;
    let hyper: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// Whether a kube error means the connection (not the request) failed:
/// the client must be thrown away and the next endpoint tried.
pub(crate) fn is_connection_error(e: &kube::Error) -> bool {
    matches!(
        e,
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_)
    )
}

struct DialState {
    /// Index of the endpoint the current (or next) client talks to.
    idx: usize,
    /// The cached client and its generation.
    client: Option<(kube::Client, u64)>,
    generation: u64,
    /// A call on the current client succeeded.
    succeeded: bool,
}

/// One cached client over an endpoint list (see the module docs).
pub(crate) struct Dialer {
    credentials: Credentials,
    endpoints: Vec<Endpoint>,
    connect_timeout: Duration,
    state: Mutex<DialState>,
    label: &'static str,
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("label", &self.label)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// A client handed out by [`Dialer::client`], tagged with its generation so
/// that a late failure report for an old client does not drop a new one.
pub(crate) struct Lent {
    pub(crate) client: kube::Client,
    pub(crate) generation: u64,
    pub(crate) endpoint: Uri,
}

impl Dialer {
    pub(crate) fn new(
        credentials: Credentials,
        endpoints: &ApiEndpoints,
        connect_timeout: Duration,
        label: &'static str,
    ) -> Self {
        Dialer {
            credentials,
            endpoints: endpoints.endpoints.clone(),
            connect_timeout,
            state: Mutex::new(DialState {
                idx: 0,
                client: None,
                generation: 0,
                succeeded: false,
            }),
            label,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DialState> {
        // The state is a few plain fields, consistent after every statement:
        // a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint the current or next client uses.
    pub(crate) fn current_endpoint(&self) -> &Endpoint {
        let idx = self.lock().idx;
        &self.endpoints[idx % self.endpoints.len()]
    }

    /// The cached client, or a new one (fresh pool, fresh connections).
    pub(crate) fn client(&self) -> Result<Lent, kube::Error> {
        let mut st = self.lock();
        let ep = &self.endpoints[st.idx % self.endpoints.len()];
        if let Some((c, generation)) = &st.client {
            return Ok(Lent {
                client: c.clone(),
                generation: *generation,
                endpoint: ep.url.clone(),
            });
        }
        let config = self.credentials.config_for(ep, self.connect_timeout);
        let client = build_client(&config, self.connect_timeout)?;
        st.generation += 1;
        st.succeeded = false;
        let generation = st.generation;
        st.client = Some((client.clone(), generation));
        tracing::debug!(client = self.label, endpoint = %ep.url, "API client created");
        Ok(Lent {
            client,
            generation,
            endpoint: ep.url.clone(),
        })
    }

    /// Runs one namespaced request on the current client, bounded by
    /// `timeout`: a connection error or timeout drops the client so the
    /// next call re-dials (R6); any answer from the server marks the
    /// connection good. `what` names the request in errors and logs.
    pub(crate) async fn call<K, T, F, Fut>(
        &self,
        namespace: &str,
        timeout: Duration,
        what: &'static str,
        f: F,
    ) -> Result<T, vipd_election::StoreError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
        F: FnOnce(kube::Api<K>) -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        use vipd_election::StoreError;
        let lent = self
            .client()
            .map_err(|e| StoreError::Rejected(format!("cannot build the API client: {e}")))?;
        let api = kube::Api::<K>::namespaced(lent.client, namespace);
        match tokio::time::timeout(timeout, f(api)).await {
            Ok(Ok(v)) => {
                self.succeeded(lent.generation);
                Ok(v)
            }
            Ok(Err(e)) => {
                if is_connection_error(&e) {
                    tracing::debug!(client = self.label, endpoint = %lent.endpoint, what,
                        error = %e, "API connection failed; re-dialling");
                    self.failed(lent.generation);
                } else {
                    // The server answered: the connection works.
                    self.succeeded(lent.generation);
                }
                Err(map_err(e))
            }
            Err(_) => {
                self.failed(lent.generation);
                Err(StoreError::Unavailable(format!(
                    "{} {what} at {} timed out after {timeout:?}",
                    self.label, lent.endpoint
                )))
            }
        }
    }

    /// A call on client `generation` got an answer from the server.
    pub(crate) fn succeeded(&self, generation: u64) {
        let mut st = self.lock();
        if st.client.as_ref().is_some_and(|(_, g)| *g == generation) {
            st.succeeded = true;
        }
    }

    /// A call on client `generation` failed at the connection level or
    /// timed out: drop it; the next call dials the next endpoint.
    pub(crate) fn failed(&self, generation: u64) {
        let mut st = self.lock();
        if st.client.as_ref().is_some_and(|(_, g)| *g == generation) {
            self.drop_client(&mut st);
        }
    }

    /// Drop whatever client is cached (the driver's `reset`).
    pub(crate) fn reset(&self) {
        let mut st = self.lock();
        if st.client.is_some() {
            self.drop_client(&mut st);
        }
    }

    fn drop_client(&self, st: &mut DialState) {
        st.client = None;
        let from = st.idx % self.endpoints.len();
        // An endpoint that worked and then broke: start over at the
        // preferred one (the local apiserver may be back). One that never
        // answered: try the next (round-robin).
        st.idx = if st.succeeded {
            0
        } else {
            (from + 1) % self.endpoints.len()
        };
        st.succeeded = false;
        tracing::debug!(
            client = self.label,
            from = %self.endpoints[from].url,
            next = %self.endpoints[st.idx].url,
            "API client dropped; next call re-dials"
        );
    }
}

/// Maps kube errors onto the store's: 409 is a conflict (or
/// `AlreadyExists`), 429/5xx and transport failures are `Unavailable` (try
/// again), anything else the server refused is `Rejected`.
pub(crate) fn map_err(e: kube::Error) -> StoreError {
    match e {
        kube::Error::Api(s) => match s.code {
            409 if s.reason == "AlreadyExists" => StoreError::AlreadyExists,
            409 => StoreError::Conflict,
            429 | 500..=599 | 0 => {
                StoreError::Unavailable(format!("API {} {}: {}", s.code, s.reason, s.message))
            }
            _ => StoreError::Rejected(format!("API {} {}: {}", s.code, s.reason, s.message)),
        },
        kube::Error::SerdeError(e) => StoreError::Rejected(format!("undecodable answer: {e}")),
        kube::Error::BuildRequest(e) => StoreError::Rejected(format!("bad request: {e}")),
        kube::Error::Auth(e) => StoreError::Rejected(format!("authentication: {e}")),
        other => StoreError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{CredentialSource, EndpointSource};

    fn uri(s: &str) -> Uri {
        s.parse().expect("test uri")
    }

    fn test_dialer(n: usize) -> Dialer {
        let mut cfg = kube::Config::new(uri("http://127.0.0.1:1"));
        cfg.default_namespace = "default".into();
        let eps = ApiEndpoints {
            endpoints: (0..n)
                .map(|i| Endpoint {
                    url: uri(&format!("http://127.0.0.1:{}", 10 + i)),
                    source: EndpointSource::Credentials,
                    tls_server_name: None,
                })
                .collect(),
            dropped: vec![],
        };
        Dialer::new(
            Credentials::from_config(cfg, CredentialSource::InCluster),
            &eps,
            Duration::from_secs(1),
            "test",
        )
    }

    #[tokio::test]
    async fn failed_dial_moves_to_the_next_endpoint_and_success_resets_to_the_first() {
        let d = test_dialer(3);
        let a = d.client().expect("client");
        assert_eq!(a.endpoint, uri("http://127.0.0.1:10"));
        // Same client while nothing failed.
        assert_eq!(d.client().expect("client").generation, a.generation);
        d.failed(a.generation);
        let b = d.client().expect("client");
        assert_eq!(b.endpoint, uri("http://127.0.0.1:11"));
        assert_ne!(b.generation, a.generation);
        // A stale failure report for the old client changes nothing.
        d.failed(a.generation);
        assert_eq!(d.client().expect("client").generation, b.generation);
        d.reset();
        let c = d.client().expect("client");
        assert_eq!(c.endpoint, uri("http://127.0.0.1:12"));
        d.reset();
        assert_eq!(
            d.client().expect("client").endpoint,
            uri("http://127.0.0.1:10")
        );
        // Worked on endpoint 1, then broke: back to the preferred one.
        d.reset();
        let e = d.client().expect("client");
        assert_eq!(e.endpoint, uri("http://127.0.0.1:11"));
        d.succeeded(e.generation);
        d.reset();
        assert_eq!(
            d.client().expect("client").endpoint,
            uri("http://127.0.0.1:10")
        );
    }
}
