//! etcd v3 backend of vipd's election: one [`LeaseRecord`] as JSON under one
//! key, every write a transaction guarded by the key's revision.
//!
//! | operation | etcd request | guard failure |
//! |-----------|--------------|---------------|
//! | `get`     | range on the key; version = `mod_revision` | — |
//! | `create`  | txn `create_revision(key) == 0` → put | [`StoreError::AlreadyExists`] |
//! | `update`  | txn `mod_revision(key) == expected` → put | [`StoreError::Conflict`] |
//! | `watch`   | watch on the key from the last revision seen + 1 | stream error → `Err` |
//!
//! This is the same optimistic concurrency as a Kubernetes Lease's
//! `resourceVersion` (client-go `LeaseLock`): the `mod_revision` read is the
//! fencing token of the next write, so of two nodes racing to take over the
//! same version exactly one transaction succeeds.
//!
//! Connection handling (SPEC R6): the client is dialed lazily and cached;
//! [`LeaseStore::reset`] (and any call that fails as unavailable) drops it, so
//! the next call dials afresh instead of reusing a half-dead HTTP/2
//! connection. Every call is bounded by [`EtcdOptions::request_timeout`]:
//! etcd-client's balanced channel waits, without limit, for an endpoint to
//! become ready while none is reachable.
//!
//! TLS (`--etcdCACert`, `--etcdCert`, `--etcdKey`, `https://` endpoints)
//! needs the crate feature `tls` (etcd-client's rustls + ring stack, off by
//! default to keep the default build light); without it, asking for TLS is a
//! [`EtcdConfigError::TlsNotCompiled`] at construction time.

#![forbid(unsafe_code)]

mod options;

pub use options::{key_for, EtcdConfigError, EtcdOptions, DEFAULT_KEY_PREFIX};

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, Txn, TxnOp, WatchOptions,
};
use options::TlsFiles;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use vipd_election::{LeaseRecord, LeaseStore, StoreError, Version, Versioned, WatchEvent};

/// HTTP/2 keep-alive ping interval. etcd's server enforces
/// `--grpc-keepalive-min-time` (5 s by default) and answers more frequent
/// pings with GOAWAY "too_many_pings", so stay well above it.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a keep-alive ping may go unanswered before the connection (and a
/// watch on it) is declared dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The election record in etcd, under one key.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub struct EtcdStore {
    opts: EtcdOptions,
    tls: Option<TlsFiles>,
    /// The cached client. A std mutex held only to clone or swap, never
    /// across an `.await` (`Client` is a cheap clone of channel handles).
    client: Mutex<Option<Client>>,
    /// The newest store revision any response showed us; a watch starts after
    /// it so that nothing written after our last read is missed. 0 = unknown.
    last_revision: AtomicI64,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.opts.endpoints)
            .field("key", &self.opts.key)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Validates `opts` and reads the certificate files. Does not connect:
    /// the first call dials.
    pub fn new(opts: EtcdOptions) -> Result<Self, EtcdConfigError> {
        let tls = options::validate(&opts)?;
        Ok(EtcdStore {
            opts,
            tls,
            client: Mutex::new(None),
            last_revision: AtomicI64::new(0),
        })
    }

    /// The key holding the record.
    pub fn key(&self) -> &str {
        &self.opts.key
    }

    /// The options this store was built from.
    pub fn options(&self) -> &EtcdOptions {
        &self.opts
    }

    fn connect_options(&self) -> ConnectOptions {
        let o = ConnectOptions::new()
            .with_connect_timeout(self.opts.connect_timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            // Pings only while a stream (our watch) is open: etcd does not
            // permit pings without streams and would GOAWAY us.
            .with_keep_alive_while_idle(false)
            .with_tcp_keepalive(KEEPALIVE_INTERVAL);
        self.with_tls(o)
    }

    #[cfg(feature = "tls")]
    fn with_tls(&self, o: ConnectOptions) -> ConnectOptions {
        use etcd_client::{Certificate, Identity, TlsOptions};
        let Some(files) = &self.tls else { return o };
        let mut t = TlsOptions::new();
        if let Some(ca) = &files.ca {
            t = t.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &files.identity {
            t = t.identity(Identity::from_pem(cert, key));
        }
        o.with_tls(t)
    }

    #[cfg(not(feature = "tls"))]
    fn with_tls(&self, o: ConnectOptions) -> ConnectOptions {
        // `validate` refuses TLS settings without the feature.
        o
    }

    fn cached(&self) -> Option<Client> {
        self.client
            .lock()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn store_client(&self, c: Option<Client>) {
        match self.client.lock() {
            Ok(mut g) => *g = c,
            Err(p) => *p.into_inner() = c,
        }
    }

    /// The cached client, or a freshly dialed one.
    async fn client(&self) -> Result<Client, StoreError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let fut = Client::connect(&self.opts.endpoints, Some(self.connect_options()));
        let c = tokio::time::timeout(self.opts.connect_timeout, fut)
            .await
            .map_err(|_| StoreError::Unavailable("connecting to etcd timed out".into()))?
            .map_err(map_err)?;
        tracing::debug!(endpoints = ?self.opts.endpoints, "etcd client created");
        // A concurrent call may have connected too; either client works, the
        // last one stored wins and the other is dropped with its call.
        self.store_client(Some(c.clone()));
        Ok(c)
    }

    /// Runs one request against the cached client, bounded by
    /// `request_timeout`; drops the client when etcd is unavailable (R6).
    async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let res = tokio::time::timeout(self.opts.request_timeout, async {
            let c = self.client().await?;
            f(c).await.map_err(map_err)
        })
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable(format!("etcd {what} timed out"))));
        if let Err(StoreError::Unavailable(msg)) = &res {
            tracing::debug!(key = %self.opts.key, what, error = %msg, "etcd unavailable; dropping client");
            self.reset();
        }
        res
    }

    fn note_revision(&self, rev: i64) {
        if rev > 0 {
            self.last_revision.store(rev, Ordering::Relaxed);
        }
    }

    async fn put_if(
        &self,
        guard: Compare,
        record: &LeaseRecord,
    ) -> Result<Option<i64>, StoreError> {
        let value = serde_json::to_vec(record)
            .map_err(|e| StoreError::Rejected(format!("cannot encode record: {e}")))?;
        let key = self.opts.key.clone();
        let txn = Txn::new()
            .when([guard])
            .and_then([TxnOp::put(key, value, None)]);
        let resp = self
            .call("txn", |mut c| async move { c.txn(txn).await })
            .await?;
        // The header revision of a successful txn is the revision its put
        // created, i.e. the key's new mod_revision.
        let rev = resp.header().map(|h| h.revision()).unwrap_or(0);
        self.note_revision(rev);
        if !resp.succeeded() {
            return Ok(None);
        }
        if rev <= 0 {
            return Err(StoreError::Rejected(
                "txn response without a revision".into(),
            ));
        }
        Ok(Some(rev))
    }
}

fn version_of(rev: i64) -> Version {
    Version(rev.to_string())
}

fn decode(value: &[u8]) -> Result<LeaseRecord, StoreError> {
    serde_json::from_slice(value)
        .map_err(|e| StoreError::Rejected(format!("malformed lease record in etcd: {e}")))
}

/// Maps etcd-client errors onto the store's: anything that smells of the
/// network or of a cluster without quorum is `Unavailable` (the outcome of a
/// write is unknown), requests etcd refuses on their merits are `Rejected`.
fn map_err(e: etcd_client::Error) -> StoreError {
    use etcd_client::Error as E;
    use tonic::Code;
    match e {
        E::GRpcStatus(s) => match s.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented => StoreError::Rejected(format!("etcd: {}", s.message())),
            // Unavailable, DeadlineExceeded, Cancelled, Unknown (transport
            // failures surface as Unknown), ResourceExhausted, Aborted,
            // Internal, DataLoss: etcd "request timed out", "leader changed",
            // "no leader", a reset connection...
            _ => StoreError::Unavailable(format!("etcd {:?}: {}", s.code(), s.message())),
        },
        E::InvalidArgs(m) => StoreError::Rejected(format!("invalid request: {m}")),
        E::InvalidUri(u) => StoreError::Rejected(format!("invalid endpoint: {u}")),
        E::Utf8Error(u) => StoreError::Rejected(format!("non-UTF-8 data: {u}")),
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl LeaseStore for EtcdStore {
    async fn get(&self) -> Result<Option<Versioned>, StoreError> {
        let key = self.opts.key.clone();
        let mut resp = self
            .call("get", |mut c| async move { c.get(key, None).await })
            .await?;
        if let Some(h) = resp.header() {
            self.note_revision(h.revision());
        }
        let Some(kv) = resp.take_kvs().into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(Versioned {
            record: decode(kv.value())?,
            version: version_of(kv.mod_revision()),
        }))
    }

    async fn create(&self, record: &LeaseRecord) -> Result<Versioned, StoreError> {
        // create_revision == 0 ⇔ the key does not exist (etcd's idiom for
        // "create only", as clientv3's concurrency package uses it).
        let guard = Compare::create_revision(self.opts.key.clone(), CompareOp::Equal, 0);
        match self.put_if(guard, record).await? {
            Some(rev) => Ok(Versioned {
                record: record.clone(),
                version: version_of(rev),
            }),
            None => Err(StoreError::AlreadyExists),
        }
    }

    async fn update(
        &self,
        record: &LeaseRecord,
        expected: &Version,
    ) -> Result<Versioned, StoreError> {
        let expected_rev: i64 = match expected.0.parse() {
            Ok(r) if r > 0 => r,
            // Never write against a version we cannot compare: that would
            // turn a fenced write into a blind one.
            _ => {
                return Err(StoreError::Rejected(format!(
                    "version {expected:?} is not an etcd revision"
                )))
            }
        };
        let guard = Compare::mod_revision(self.opts.key.clone(), CompareOp::Equal, expected_rev);
        match self.put_if(guard, record).await? {
            Some(rev) => Ok(Versioned {
                record: record.clone(),
                version: version_of(rev),
            }),
            None => Err(StoreError::Conflict),
        }
    }

    async fn watch(&self, tx: mpsc::Sender<WatchEvent>) -> Result<(), StoreError> {
        let key = self.opts.key.clone();
        let after = self.last_revision.load(Ordering::Relaxed);
        let mut wopts = WatchOptions::new();
        if after > 0 {
            wopts = wopts.with_start_revision(after + 1);
        }
        let mut stream = self
            .call("watch", |c| async move {
                c.watch_client().watch(key, Some(wopts)).await
            })
            .await?;
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                // Nobody listens any more: a clean end, not a broken watch.
                () = tx.closed() => return Ok(()),
            };
            let resp = match msg {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Err(StoreError::Unavailable(
                        "etcd closed the watch stream".into(),
                    ))
                }
                Err(e) => {
                    let err = map_err(e);
                    if matches!(err, StoreError::Unavailable(_)) {
                        self.reset();
                    }
                    return Err(err);
                }
            };
            if resp.canceled() {
                if resp.compact_revision() > 0 {
                    // Our start revision was compacted away: start the next
                    // watch from "now"; the core re-reads on its own schedule.
                    self.last_revision.store(0, Ordering::Relaxed);
                }
                return Err(StoreError::Unavailable(format!(
                    "etcd cancelled the watch (compact revision {}): {}",
                    resp.compact_revision(),
                    resp.cancel_reason()
                )));
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                // Record the revision before decoding so a restarted watch
                // does not replay a malformed value forever.
                self.note_revision(kv.mod_revision());
                let event = match ev.event_type() {
                    EventType::Put => WatchEvent::Changed(Versioned {
                        record: decode(kv.value())?,
                        version: version_of(kv.mod_revision()),
                    }),
                    EventType::Delete => WatchEvent::Deleted,
                };
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }

    fn reset(&self) {
        self.store_client(None);
    }
}
