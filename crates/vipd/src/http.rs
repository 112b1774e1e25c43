//! The HTTP endpoint (SPEC §6, `prometheus_server`, default `:2112`):
//!
//! - `GET /metrics`: [`Metrics::encode`], OpenMetrics text.
//! - `GET /healthz`: 200 `ok` while every registered loop beats within its
//!   max age ([`Liveness`]); 503 naming the stale loops otherwise.
//! - `GET /readyz`: 503 until the first election sync ([`StatusHandle::mark_ready`]),
//!   then 200.
//! - `GET /status`: [`StatusSnapshot`](vipd_observe::status::StatusSnapshot) as JSON.
//!
//! The server only reads shared state; it never blocks the loops it reports on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::time::Instant;

use vipd_observe::metrics::{self, Metrics};
use vipd_observe::status::{Liveness, StatusHandle};

/// What the handlers read.
#[derive(Clone, Debug)]
pub struct HttpState {
    /// Metrics to encode on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// StatusHandle for `/status` and readiness for `/readyz`.
    pub status: StatusHandle,
    /// Loop heartbeats for `/healthz`.
    pub liveness: Liveness,
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound (in use, no permission).
    #[error("cannot listen on {addr} (--prometheus-server / prometheus_server): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Accepting or serving failed.
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl HttpState {
    /// Bundles the shared handles.
    pub fn new(metrics: Arc<Metrics>, status: StatusHandle, liveness: Liveness) -> Self {
        HttpState {
            metrics,
            status,
            liveness,
        }
    }
}

/// The routes, for embedding or testing.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status_handler))
        .with_state(state)
}

/// Binds `addr` and serves until `shutdown` completes (then drains open
/// requests and returns).
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    serve_listener(listener, state, shutdown).await
}

/// [`serve`] on an already bound listener (tests bind `127.0.0.1:0`).
pub async fn serve_listener(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(HttpError::Serve)
}

async fn metrics_handler(State(state): State<HttpState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        state.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(state): State<HttpState>) -> Response {
    let stale = state.liveness.stale(Instant::now());
    if stale.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stale loops: {}\n", stale.join(", ")),
        )
            .into_response()
    }
}

async fn readyz(State(state): State<HttpState>) -> Response {
    if state.status.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first election sync\n",
        )
            .into_response()
    }
}

async fn status_handler(State(state): State<HttpState>) -> Response {
    Json(state.status.snapshot(Instant::now())).into_response()
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;
    use vipd_observe::metrics::AnnouncementKind;
    use vipd_observe::status::{Role, VipEntry};

    /// A minimal HTTP/1.1 client: one request, `Connection: close`, read to
    /// EOF. Returns (status code, body).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, head.to_ascii_lowercase(), body.to_string())
    }

    struct Server {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<Result<(), HttpError>>,
    }

    async fn start(state: HttpState) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_listener(listener, state, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    fn state() -> HttpState {
        HttpState {
            metrics: Arc::new(Metrics::new("9.9.9")),
            status: StatusHandle::new("node-a", "9.9.9", "kube-system/plndr-cp-lock", "etcd"),
            liveness: Liveness::new(),
        }
    }

    #[tokio::test]
    async fn endpoints_report_metrics_health_readiness_and_status() {
        let st = state();
        let server = start(st.clone()).await;

        st.metrics
            .inc_announcement("192.0.2.10", AnnouncementKind::GarpReply);
        let (code, head, body) = get(server.addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            head.contains("content-type: application/openmetrics-text"),
            "{head}"
        );
        assert!(
            body.contains(r#"vipd_announcements_total{vip="192.0.2.10",kind="garp_reply"} 1"#),
            "{body}"
        );

        // Ready only after the first sync.
        assert_eq!(get(server.addr, "/readyz").await.0, 503);
        st.status.mark_ready();
        assert_eq!(get(server.addr, "/readyz").await.0, 200);

        // Healthy while loops beat; a loop with a zero max age is stale at once.
        assert_eq!(get(server.addr, "/healthz").await.0, 200);
        let past = Instant::now()
            .checked_sub(Duration::from_millis(10))
            .unwrap_or_else(Instant::now);
        let _hb = st.liveness.register("election", Duration::ZERO, past);
        let (code, _, body) = get(server.addr, "/healthz").await;
        assert_eq!(code, 503);
        assert!(body.contains("election"), "{body}");

        let vip: IpAddr = "192.0.2.10".parse().expect("ip");
        st.status.set_vip(VipEntry {
            vip,
            interface: "eth0".into(),
            role: Role::Leader,
            bound: true,
        });
        st.status.set_lease(Some("node-a".into()), 3);
        st.status.renewed(Instant::now());
        let (code, head, body) = get(server.addr, "/status").await;
        assert_eq!(code, 200);
        assert!(head.contains("application/json"), "{head}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["node_name"], "node-a");
        assert_eq!(json["vips"][0]["vip"], "192.0.2.10");
        assert_eq!(json["vips"][0]["role"], "leader");
        assert_eq!(json["vips"][0]["bound"], true);
        assert_eq!(json["lease"]["holder"], "node-a");
        assert_eq!(json["lease"]["transitions"], 3);
        assert!(json["lease"]["last_renewal_ago_ms"].is_u64());
        assert_eq!(json["ready"], true);

        assert_eq!(get(server.addr, "/nope").await.0, 404);

        let mut server = server;
        if let Some(stop) = server.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(5), server.task).await;
        assert!(
            matches!(result, Ok(Ok(Ok(())))),
            "server did not shut down cleanly: {result:?}"
        );
    }

    #[tokio::test]
    async fn bind_error_names_the_option() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = serve(addr, state(), std::future::pending())
            .await
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("prometheus_server") && e.contains(&addr.to_string())),
            "{err:?}"
        );
    }
}
