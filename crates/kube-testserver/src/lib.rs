//! # vipd-kube-testserver — TEST SERVER, not a Kubernetes API server
//!
//! An in-repo emulation of the part of the Kubernetes API that vipd uses, for
//! tests only (no real kube-apiserver can be installed in this project's test
//! environment). It answers as kube-apiserver v1.28 does — status codes,
//! `Status` bodies, watch framing — as recorded in
//! `shared/kube-api/transcripts.json`, and `tests/transcripts.rs` replays that
//! file against it. Never deploy it; it keeps everything in memory, has one
//! bearer token and no authorization.
//!
//! ## Served API
//!
//! * `coordination.k8s.io/v1` leases: get, list, watch, create, update (PUT),
//!   patch, delete. PUT needs `metadata.resourceVersion` (422 without, 409
//!   Conflict when stale, 500 when malformed); MicroTime fields are parsed as Go
//!   does (400 with Go's message).
//! * `v1` events and `events.k8s.io/v1` events: create (and get/list/watch).
//! * `v1` services (with `/status`; `ipMode` in status is pruned as 1.28 does),
//!   `discovery.k8s.io/v1` endpointslices, `v1` nodes (cluster scoped, with
//!   `/status`), `v1` configmaps: every verb above; list/watch take
//!   `labelSelector` and `fieldSelector` (`metadata.name`, `metadata.namespace`).
//! * What a deployment of vipd creates — `v1` serviceaccounts, `apps/v1`
//!   daemonsets, `rbac.authorization.k8s.io/v1` roles, rolebindings,
//!   clusterroles, clusterrolebindings — stored (never run), decoded into the
//!   typed objects (unknown field: 400 with `?fieldValidation=Strict`, else a
//!   `Warning` header) and validated as apiserver does (422).
//! * One global revision across all objects (like etcd); watch history keeps
//!   the last [`Config::history_limit`] events, older `resourceVersion`s get the
//!   HTTP 200 + `ERROR` 410 `Expired` event.
//! * `/version`, `/healthz`, `/livez`, `/readyz` (anonymous allowed).
//! * HTTPS with HTTP/1.1 and HTTP/2 (ALPN), certificate from a generated CA.
//!
//! ## Control endpoint (plain HTTP/1.1, JSON)
//!
//! | request | effect |
//! |---|---|
//! | `PUT /_faults` body `{"rules":[FaultRule...]}` | replace fault rules (first match wins) |
//! | `GET /_faults` | current rules |
//! | `DELETE /_faults` | remove all rules (held black-holed requests proceed) |
//! | `POST /_faults/black-hole-established` body `{"client":"IP"}` or `{}` | freeze connections open now; answer `{"marked":N}` |
//! | `POST /_faults/close-established` body `{"client":"IP"}` or `{}` | drop connections open now; `{"closed":N}` |
//! | `GET /_stats` | [`Stats`]: requests per verb/resource/client, connections, revisions |
//! | `DELETE /_stats` | reset request counters |
//! | `POST /_compact` | drop watch history; answer `{"compactedRevision":N}` |
//! | `PUT /_history` body `{"limit":N}` | set the history size |
//! | `POST /_objects` body = any served object | store it as-is (seeding nodes, foreign leases) |
//!
//! A [`FaultRule`] is `{"client": "192.0.2.1"?, "path_prefix": "/apis/coordination.k8s.io"?,
//! "latency_ms": 0, "error_percent": 0, "error_status": 503, "close": false,
//! "close_next": 0, "black_hole": false}`. The same operations exist on
//! [`TestServer`] for in-process use.

mod api;
mod control;
mod error;
mod faults;
mod microtime;
mod resources;
mod server;
mod store;
mod tls;
mod workloads;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde_json::Value;

pub use error::ApiError;
pub use faults::{FaultRule, RequestCount, Stats};
pub use server::TestServer;
pub use tls::Certs;

/// The banner used in `--help`, logs and the kubeconfig.
pub const BANNER: &str = "TEST SERVER — not a Kubernetes API server";

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Certificate generation or TLS configuration failed.
    #[error("tls: {0}")]
    Tls(String),
    /// Socket or file error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// An object given for seeding was rejected.
    #[error("object rejected: {0}")]
    Rejected(String),
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTPS API listen address (port 0 picks one).
    pub listen: SocketAddr,
    /// Plain-HTTP control listen address, if wanted.
    pub control: Option<SocketAddr>,
    /// Bearer token required on API requests.
    pub token: String,
    /// Where to write `ca.crt`, `server.crt`, `server.key` and `kubeconfig`.
    pub cert_dir: Option<PathBuf>,
    /// Extra certificate SANs (DNS names or IPs).
    pub extra_sans: Vec<String>,
    /// Events kept for watches.
    pub history_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: None,
            token: "vipd-test-token".into(),
            cert_dir: None,
            extra_sans: Vec::new(),
            history_limit: 100,
        }
    }
}

/// State shared by all connections.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: store::Store,
    pub(crate) faults: faults::Faults,
    pub(crate) token: String,
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        self.faults
            .stats(self.store.revision(), self.store.compacted())
    }

    pub(crate) fn put_object(&self, obj: Value) -> Result<Value, Error> {
        self.store
            .put(obj)
            .map_err(|e| Error::Rejected(e.body.to_string()))
    }

    pub(crate) fn find(
        api_version: &str,
        kind: &str,
    ) -> Result<&'static resources::ResourceDef, Error> {
        resources::find_kind(api_version, kind)
            .ok_or_else(|| Error::Rejected(format!("{api_version} {kind} is not served")))
    }
}

/// Used by [`TestServer`] to black-hole or close connections of one client or all.
pub(crate) fn client_of(v: &Value) -> Option<IpAddr> {
    v.get("client")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}
