//! Listeners and connections: TLS + HTTP/1.1/HTTP/2 for the API, plain
//! HTTP/1.1 for the control endpoint, each connection tracked for fault
//! injection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{api, control, faults, store, tls::Certs, Config, Error, FaultRule, Shared, Stats};

/// A running test server (API listener + optional control listener) on the
/// current tokio runtime. Dropping it stops the listeners and drops every
/// connection.
#[derive(Debug)]
pub struct TestServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    certs: Certs,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl TestServer {
    /// Binds the listeners, generates certificates (writing them and a
    /// kubeconfig to `cert_dir` if set) and starts serving.
    pub async fn start(config: Config) -> Result<Self, Error> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let certs = Certs::generate(addr.ip(), &config.extra_sans)?;
        let acceptor = TlsAcceptor::from(certs.server_config()?);
        let url = url_of(addr);
        if let Some(dir) = &config.cert_dir {
            certs.write(dir, &url, &config.token)?;
        }
        let shared = Arc::new(Shared {
            store: store::Store::new(config.history_limit),
            faults: faults::Faults::default(),
            token: config.token.clone(),
        });
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let control_addr = match config.control {
            Some(c) => {
                let l = TcpListener::bind(c).await?;
                let a = l.local_addr()?;
                tasks.spawn(control::serve(l, shared.clone(), stop.clone()));
                Some(a)
            }
            None => None,
        };
        tasks.spawn(serve_api(
            listener,
            acceptor,
            shared.clone(),
            stop.clone(),
            tasks.clone(),
        ));
        tracing::info!(%addr, control = ?control_addr, "{}", crate::BANNER);
        Ok(Self {
            shared,
            addr,
            control_addr,
            certs,
            stop,
            tasks,
        })
    }

    /// The API address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://IP:PORT`.
    pub fn url(&self) -> String {
        url_of(self.addr)
    }

    /// The control endpoint address, if started.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.certs.ca_pem
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// A kubeconfig (YAML) for this server.
    pub fn kubeconfig(&self) -> String {
        self.certs.kubeconfig(&self.url(), &self.shared.token)
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        self.shared.faults.set_rules(rules);
    }

    /// Removes all fault rules.
    pub fn clear_faults(&self) {
        self.shared.faults.set_rules(Vec::new());
    }

    /// Black-holes the connections open now (of `client`, or all); returns how many.
    pub fn black_hole_established(&self, client: Option<IpAddr>) -> usize {
        self.shared.faults.black_hole_established(client)
    }

    /// Drops the connections open now (of `client`, or all); returns how many.
    pub fn close_established(&self, client: Option<IpAddr>) -> usize {
        self.shared.faults.close_established(client)
    }

    /// Request counters, connections and revisions.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Resets the request counters.
    pub fn reset_stats(&self) {
        self.shared.faults.reset_counts();
    }

    /// Drops the watch history; returns the compacted revision.
    pub fn compact(&self) -> u64 {
        self.shared.store.compact()
    }

    /// Sets how many events the watch history keeps.
    pub fn set_history_limit(&self, limit: usize) {
        self.shared.store.set_history_limit(limit);
    }

    /// The current global revision.
    pub fn revision(&self) -> u64 {
        self.shared.store.revision()
    }

    /// Stores an object as-is (any served kind, by apiVersion/kind); returns it with
    /// resourceVersion, uid and creationTimestamp filled in.
    pub fn put_object(&self, obj: Value) -> Result<Value, Error> {
        self.shared.put_object(obj)
    }

    /// One stored object (`ns` empty for cluster-scoped kinds), if present.
    pub fn get_object(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let res = crate::Shared::find(api_version, kind).ok()?;
        self.shared.store.get(res, ns, name).ok()
    }

    /// Every stored object of a kind, in all namespaces.
    pub fn list_objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        match crate::Shared::find(api_version, kind) {
            Ok(res) => self.shared.store.list(res, None).0,
            Err(_) => Vec::new(),
        }
    }

    /// Deletes one object as an API DELETE would (watchers see DELETED).
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
    ) -> Result<(), Error> {
        let res = crate::Shared::find(api_version, kind)?;
        self.shared
            .store
            .delete(res, ns, name, None, None)
            .map(|_| ())
            .map_err(|e| Error::Rejected(e.body.to_string()))
    }

    /// Stops serving and waits for every task to end.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn url_of(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V6(ip) => format!("https://[{ip}]:{}", addr.port()),
        IpAddr::V4(ip) => format!("https://{ip}:{}", addr.port()),
    }
}

async fn serve_api(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let _ = tcp.set_nodelay(true);
        let conn = shared.faults.open_conn(peer);
        let (shared, acceptor, stop) = (shared.clone(), acceptor.clone(), stop.clone());
        let registry = shared.clone();
        tasks.spawn(async move {
            let id = conn.id;
            let serve = async {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let svc_conn = conn.clone();
                let svc = service_fn(move |req| {
                    let (shared, conn) = (shared.clone(), svc_conn.clone());
                    async move {
                        Ok::<_, std::convert::Infallible>(api::handle(shared, conn, req).await)
                    }
                });
                let builder = auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder.serve_connection(TokioIo::new(tls), svc).await {
                    tracing::debug!(%peer, error = %e, "connection ended with error");
                }
            };
            // Dropping the connection future closes the socket: that is how
            // "close" faults and shutdown cut connections.
            tokio::select! {
                _ = serve => {},
                _ = conn.kill.cancelled() => {},
                _ = stop.cancelled() => {},
            }
            registry.faults.close_conn(id);
            // Wake watch streams of this connection so their tasks end.
            conn.dead.cancel();
        });
    }
}
