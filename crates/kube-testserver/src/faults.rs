//! Fault injection and request accounting.
//!
//! Rules are matched in order; the first rule whose `client` and `path_prefix`
//! match a request decides its fate. Connections are tracked so that
//! "black-hole established connections" can freeze exactly the connections
//! open at that moment while new ones work (the dead HTTP/2 connection case).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One fault rule (JSON body element of `PUT /_faults`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Only requests from this client IP (all clients when absent).
    pub client: Option<IpAddr>,
    /// Only requests whose path starts with this (all paths when absent).
    pub path_prefix: Option<String>,
    /// Delay added before the request is handled.
    pub latency_ms: u64,
    /// Share of matching requests (0–100) answered with `error_status`;
    /// spread evenly and deterministically (every other one at 50).
    pub error_percent: u8,
    /// 500 or 503 (default 503).
    pub error_status: Option<u16>,
    /// Drop the TCP connection on every matching request.
    pub close: bool,
    /// Drop the TCP connection on the next N matching requests, then stop.
    pub close_next: u32,
    /// Read matching requests and do not answer while the rule is in place
    /// (they are answered after the rule is removed, as TCP would deliver
    /// them after a partition heals, if the client still waits).
    pub black_hole: bool,
}

impl FaultRule {
    fn matches(&self, client: IpAddr, path: &str) -> bool {
        self.client.is_none_or(|c| c == client)
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
    }
}

#[derive(Debug)]
struct RuleState {
    rule: FaultRule,
    seen: u64,
    close_left: u32,
}

/// What to do with one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Drop the connection now.
    pub close: bool,
    /// Hold the request while a black-hole rule matches.
    pub black_hole: bool,
    /// Added delay.
    pub latency: Duration,
    /// Answer with this 5xx.
    pub error: Option<u16>,
}

/// A tracked server connection.
#[derive(Debug)]
pub struct Conn {
    /// Connection id.
    pub id: u64,
    /// Peer address.
    pub peer: SocketAddr,
    /// Cancelled to drop the connection (fault `close`, server shutdown).
    pub kill: CancellationToken,
    /// Cancelled when the connection is black-holed for good.
    pub dead: CancellationToken,
}

/// One row of the request counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete (or the HTTP method for non-resource paths).
    pub verb: String,
    /// `plural[.group][/subresource]`, or the path for non-resource requests.
    pub resource: String,
    /// Client IP.
    pub client: IpAddr,
    /// Number of requests.
    pub count: u64,
}

/// The answer of `GET /_stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Counters per verb/resource/client, sorted.
    pub requests: Vec<RequestCount>,
    /// Connections currently open.
    pub open_connections: usize,
    /// Connections accepted since start.
    pub accepted_connections: u64,
    /// The store's current revision.
    pub revision: u64,
    /// Watches can start at or after this revision.
    pub compacted_revision: u64,
}

/// Fault rules, connection registry and counters.
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<RuleState>>,
    changed: watch::Sender<u64>,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_conn: AtomicU64,
    counts: Mutex<BTreeMap<(String, String, IpAddr), u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Data behind these locks stays consistent across a panic (single-step updates).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            counts: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Faults {
    /// Replaces all rules.
    pub fn set_rules(&self, rules: Vec<FaultRule>) {
        *lock(&self.rules) = rules
            .into_iter()
            .map(|rule| RuleState {
                close_left: rule.close_next,
                rule,
                seen: 0,
            })
            .collect();
        self.changed.send_modify(|v| *v += 1);
    }

    /// The current rules.
    pub fn rules(&self) -> Vec<FaultRule> {
        lock(&self.rules).iter().map(|r| r.rule.clone()).collect()
    }

    /// Decides the fate of one request (and advances the rule's counters).
    pub fn decide(&self, client: IpAddr, path: &str) -> Decision {
        let mut rules = lock(&self.rules);
        let Some(st) = rules.iter_mut().find(|r| r.rule.matches(client, path)) else {
            return Decision::default();
        };
        let n = st.seen;
        st.seen += 1;
        let p = u64::from(st.rule.error_percent.min(100));
        let close = st.rule.close || st.close_left > 0;
        st.close_left = st.close_left.saturating_sub(1);
        Decision {
            close,
            black_hole: st.rule.black_hole,
            latency: Duration::from_millis(st.rule.latency_ms),
            // Bresenham-style spreading: exactly p% of requests, evenly.
            error: ((n + 1) * p / 100 > n * p / 100).then(|| st.rule.error_status.unwrap_or(503)),
        }
    }

    /// Whether a black-hole rule still holds requests of this client and path.
    pub fn black_holed(&self, client: IpAddr, path: &str) -> bool {
        lock(&self.rules)
            .iter()
            .find(|r| r.rule.matches(client, path))
            .is_some_and(|r| r.rule.black_hole)
    }

    /// A receiver that changes whenever rules change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Registers a new connection.
    pub fn open_conn(&self, peer: SocketAddr) -> Arc<Conn> {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Conn {
            id,
            peer,
            kill: CancellationToken::new(),
            dead: CancellationToken::new(),
        });
        lock(&self.conns).insert(id, c.clone());
        c
    }

    /// Forgets a closed connection.
    pub fn close_conn(&self, id: u64) {
        lock(&self.conns).remove(&id);
    }

    /// Black-holes every connection open now (of `client`, or all): their
    /// requests and watch streams hang forever; later connections are unaffected.
    /// Returns how many connections were marked.
    pub fn black_hole_established(&self, client: Option<IpAddr>) -> usize {
        let conns = lock(&self.conns);
        let mut n = 0;
        for c in conns.values() {
            if client.is_none_or(|ip| ip == c.peer.ip()) && !c.dead.is_cancelled() {
                c.dead.cancel();
                n += 1;
            }
        }
        n
    }

    /// Drops every open connection (of `client`, or all) right now.
    pub fn close_established(&self, client: Option<IpAddr>) -> usize {
        let conns = lock(&self.conns);
        let mut n = 0;
        for c in conns
            .values()
            .filter(|c| client.is_none_or(|ip| ip == c.peer.ip()))
        {
            c.kill.cancel();
            n += 1;
        }
        n
    }

    /// Counts one request.
    pub fn count(&self, verb: &str, resource: &str, client: IpAddr) {
        *lock(&self.counts)
            .entry((verb.to_string(), resource.to_string(), client))
            .or_insert(0) += 1;
    }

    /// Resets the request counters.
    pub fn reset_counts(&self) {
        lock(&self.counts).clear();
    }

    /// Snapshot of the counters and connections (revisions filled by the caller).
    pub fn stats(&self, revision: u64, compacted_revision: u64) -> Stats {
        let requests = lock(&self.counts)
            .iter()
            .map(|((verb, resource, client), count)| RequestCount {
                verb: verb.clone(),
                resource: resource.clone(),
                client: *client,
                count: *count,
            })
            .collect();
        Stats {
            requests,
            open_connections: lock(&self.conns).len(),
            accepted_connections: self.next_conn.load(Ordering::Relaxed) - 1,
            revision,
            compacted_revision,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_percent_spreads_exactly_that_share() {
        let f = Faults::default();
        f.set_rules(vec![FaultRule {
            error_percent: 30,
            error_status: Some(500),
            ..Default::default()
        }]);
        let ip: IpAddr = [192, 0, 2, 1].into();
        let errors = (0..100)
            .filter(|_| f.decide(ip, "/api").error.is_some())
            .count();
        assert_eq!(errors, 30);
    }

    #[test]
    fn per_client_rule_leaves_other_clients_alone() {
        let f = Faults::default();
        f.set_rules(vec![FaultRule {
            client: Some([192, 0, 2, 1].into()),
            close_next: 1,
            ..Default::default()
        }]);
        assert!(!f.decide([192, 0, 2, 2].into(), "/").close);
        assert!(f.decide([192, 0, 2, 1].into(), "/").close);
        assert!(
            !f.decide([192, 0, 2, 1].into(), "/").close,
            "close_next counts down"
        );
    }
}
