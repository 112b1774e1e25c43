//! What `/status` reports: role per VIP, lease holder, last renewal, bound
//! addresses, API reachability (SPEC §6), plus the liveness and readiness
//! signals behind `/healthz` and `/readyz`.
//!
//! Sharing: [`StatusHandle`] is an `Arc<RwLock<..>>` handle. Writers (the run
//! loop's tasks) update small fields and readers (HTTP handlers) copy them
//! out; no lock is held across an `.await`, so a std lock is enough. A
//! `tokio::sync::watch` channel was not chosen because nobody waits for
//! changes, and `last_renewal_ago_ms` has to be computed at read time
//! from a monotonic instant anyway, not stored.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// A node's role for one VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Holds the lease and answers for the VIP.
    Leader,
    /// Does not hold the lease.
    Follower,
}

/// The health gate (R8) as `/status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EligibilityEntry {
    /// A health gate is configured (without one a node is always eligible).
    pub gated: bool,
    /// The gate lets this node hold addresses now.
    pub eligible: bool,
    /// The gate has let it at least once since start. `false` long after
    /// start means a check that never passes (wrong CA, wrong URL): the
    /// node will never hold an address.
    pub ever_eligible: bool,
}

impl Default for EligibilityEntry {
    fn default() -> Self {
        EligibilityEntry {
            gated: false,
            eligible: true,
            ever_eligible: true,
        }
    }
}

/// One VIP as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipEntry {
    /// The address.
    pub vip: IpAddr,
    /// The interface it lives on.
    pub interface: String,
    /// This node's role for it.
    pub role: Role,
    /// Whether the kernel has it on the interface right now.
    pub bound: bool,
}

/// Services mode as `/status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesEntry {
    /// Whether this node is the elected assigner.
    pub assigner: bool,
    /// Assignment generation applied.
    pub generation: u64,
    /// Whether this node's own node lease is valid (R1).
    pub lease_valid: bool,
    /// LoadBalancer addresses known.
    pub addresses: usize,
    /// Addresses this node announces now.
    pub announced: Vec<IpAddr>,
    /// Quorum mode: the assigner whose grant this node binds under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
}

/// The lease as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseEntry {
    /// Lease name (with namespace for Kubernetes: `ns/name`).
    pub name: String,
    /// `etcd` or `kubernetes`.
    pub backend: String,
    /// Current holder as last read, if any.
    pub holder: Option<String>,
    /// Milliseconds since this node's last successful renewal (monotonic,
    /// computed when the snapshot is taken); `None` if it never renewed.
    pub last_renewal_ago_ms: Option<u64>,
    /// `leaseTransitions` as last read.
    pub transitions: u64,
}

/// Quorum mode as `/status` shows it (SPEC §5a).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuorumEntry {
    /// `follower`, `candidate`, `holder`, `fencing`, `witness` or `stopped`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// The holder this node backs or is, while its promise is live.
    pub holder: Option<String>,
    /// Voters in the set, this node included.
    pub voters: usize,
    /// Voters heard from within one promise period, this node included (a
    /// follower hears the holder, not the other followers: 2 in steady
    /// state).
    pub voters_reachable: usize,
    /// While holding: seconds left of the right to announce (Q4).
    pub hold_remaining_seconds: Option<f64>,
    /// Seconds left of the restart quiet time (Q5) during which this node
    /// grants nothing.
    pub quiet_remaining_seconds: f64,
    /// Whether the quorum socket is bound.
    pub socket_bound: bool,
    /// Dropped datagrams by reason (only reasons seen).
    pub drops: BTreeMap<String, u64>,
}

/// BGP mode as `/status` shows it (SPEC §5b).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpEntry {
    /// `ecmp` (every healthy node announces) or `leader` (only the lease
    /// or quorum holder does). A string, like [`QuorumEntry::role`], so an
    /// older `vipd status` still reads a newer daemon's modes.
    pub mode: String,
    /// Prefixes this node wants announced now, in text form
    /// (`203.0.113.10/32`); empty on a node that should not announce (a
    /// follower in `leader` mode, an ineligible node).
    pub announced: Vec<String>,
    /// Each configured peer.
    pub peers: Vec<BgpPeerEntry>,
}

/// The RFC 4271 state name [`BgpPeerEntry::state`] has while routes flow.
pub const BGP_ESTABLISHED: &str = "Established";

/// One BGP peer as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BgpPeerEntry {
    /// The router, `address:port` (`192.0.2.1:179`, `[2001:db8::1]:179`),
    /// as in the metrics' `peer` label.
    pub peer: String,
    /// The router's AS number (4-octet).
    pub remote_as: u32,
    /// Session state, RFC 4271 name: `Idle`, `Connect`, `OpenSent`,
    /// `OpenConfirm` or [`BGP_ESTABLISHED`].
    pub state: String,
    /// Milliseconds since the session entered `state` (monotonic). Given by
    /// the writer as of the instant passed to [`StatusHandle::set_bgp`];
    /// each snapshot adds the time since, so it stays right between writes.
    pub state_age_ms: u64,
    /// Negotiated hold time in seconds (OpenConfirm, Established).
    pub hold_time: Option<u16>,
    /// Negotiated keepalive interval in seconds.
    pub keepalive: Option<u16>,
    /// Address families both sides carry (`ipv4-unicast`, `ipv6-unicast`).
    pub families: Vec<String>,
    /// Prefixes the router has been told about (Adj-RIB-Out), text form.
    pub advertised: Vec<String>,
    /// Prefixes the router announced to us and did not withdraw.
    pub received: u64,
    /// UPDATE messages sent.
    pub updates_sent: u64,
    /// UPDATE messages received.
    pub updates_received: u64,
    /// The last reason the session left Established or failed to reach it.
    pub last_error: Option<String>,
    /// The BFD session, when BFD is configured for the peer.
    pub bfd: Option<BfdEntry>,
}

/// A peer's BFD session (RFC 5880) as `/status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BfdEntry {
    /// `bfd.SessionState`: `AdminDown`, `Down`, `Init` or `Up`.
    pub state: String,
    /// `bfd.LocalDiag`, e.g. `None`, `ControlDetectionTimeExpired`.
    pub local_diag: String,
    /// `bfd.RemoteSessionState`.
    pub remote_state: String,
    /// The diagnostic in the peer's last packet.
    pub remote_diag: String,
    /// Current detection time in milliseconds (RFC 5880 §6.8.4).
    pub detection_time_ms: u64,
}

/// Routing-table mode as `/status` shows it (SPEC §5b; kube-vip's
/// `vip_routingtable`): the host routes vipd keeps in its kernel table
/// for a host routing daemon to export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTableEntry {
    /// `ecmp` (every healthy node writes its route, no lease) or `leader`
    /// (only the elected holder does), as [`BgpEntry::mode`].
    pub mode: String,
    /// The kernel table (`vip_routingtableid`).
    pub table: u32,
    /// The route protocol that marks the routes as vipd's
    /// (`vip_routingprotocol`).
    pub protocol: u8,
    /// Routes of ours the kernel has in the table now, text form
    /// (`203.0.113.10/32`).
    pub routes: Vec<String>,
    /// Routes vipd wants there now (addresses bound on this node and
    /// allowed by their holder). One wanted and not in
    /// [`RoutingTableEntry::routes`] could not be written.
    pub wanted: Vec<String>,
    /// The last failure, while the table is not as wanted (`None` once a
    /// pass succeeded).
    pub last_error: Option<String>,
}

/// The JSON body of `/status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// This node's identity.
    pub node_name: String,
    /// vipd's version.
    pub version: String,
    /// Wall-clock start time, RFC 3339 UTC.
    pub started_at: String,
    /// Milliseconds since start (monotonic).
    pub uptime_ms: u64,
    /// Each configured VIP.
    pub vips: Vec<VipEntry>,
    /// The lease.
    pub lease: LeaseEntry,
    /// Whether the coordination API answered the last request.
    pub api_reachable: bool,
    /// Health checks gating the election (R8); empty when none are set.
    pub health: Vec<vipd_health::CheckStatus>,
    /// The gate's verdict over those checks.
    #[serde(default)]
    pub eligibility: EligibilityEntry,
    /// Whether the first election sync has completed (`/readyz`).
    pub ready: bool,
    /// Services mode, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServicesEntry>,
    /// Quorum mode, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumEntry>,
    /// BGP mode, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpEntry>,
    /// Routing-table mode, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_table: Option<RoutingTableEntry>,
}

#[derive(Debug)]
struct Inner {
    node_name: String,
    version: String,
    started_at: String,
    started: Instant,
    vips: Vec<VipEntry>,
    lease_name: String,
    backend: String,
    holder: Option<String>,
    last_renewal: Option<Instant>,
    transitions: u64,
    api_reachable: bool,
    health: Vec<vipd_health::CheckStatus>,
    eligibility: EligibilityEntry,
    services: Option<ServicesEntry>,
    quorum: Option<QuorumEntry>,
    /// The BGP section and the instant its ages were measured at.
    bgp: Option<(BgpEntry, Instant)>,
    routing_table: Option<RoutingTableEntry>,
}

/// Shared, cheaply clonable status handle.
#[derive(Clone, Debug)]
pub struct StatusHandle {
    inner: Arc<RwLock<Inner>>,
    ready: Arc<AtomicBool>,
}

impl StatusHandle {
    /// A status for `node_name` managing `lease_name` on `backend`, started
    /// now. Reads the wall clock once, for `started_at` only.
    pub fn new(node_name: &str, version: &str, lease_name: &str, backend: &str) -> Self {
        StatusHandle {
            inner: Arc::new(RwLock::new(Inner {
                node_name: node_name.into(),
                version: version.into(),
                // Wall time is for humans reading /status; all logic uses the
                // monotonic `started` instant.
                started_at: vipd_election::WallTime::now().to_rfc3339(),
                started: Instant::now(),
                vips: Vec::new(),
                lease_name: lease_name.into(),
                backend: backend.into(),
                holder: None,
                last_renewal: None,
                transitions: 0,
                api_reachable: false,
                health: Vec::new(),
                eligibility: EligibilityEntry::default(),
                services: None,
                quorum: None,
                bgp: None,
                routing_table: None,
            })),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    fn write(&self, f: impl FnOnce(&mut Inner)) {
        // A writer that panicked mid-update leaves plain data behind, still
        // worth reporting: ignore poisoning rather than take /status down.
        let mut guard = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard);
    }

    /// Sets the quorum-mode section.
    pub fn set_quorum(&self, entry: QuorumEntry) {
        self.write(|s| s.quorum = Some(entry));
    }

    /// Sets the BGP-mode section. The peers' `state_age_ms` are as of
    /// monotonic `at` (normally the `now` they were computed from); a
    /// snapshot adds the time since `at`, so a section written once per
    /// state change does not report a frozen age.
    pub fn set_bgp(&self, entry: BgpEntry, at: Instant) {
        self.write(|s| s.bgp = Some((entry, at)));
    }

    /// Sets the routing-table section.
    pub fn set_routing_table(&self, entry: RoutingTableEntry) {
        self.write(|s| s.routing_table = Some(entry));
    }

    /// Sets the Services-mode section.
    pub fn set_services(&self, entry: ServicesEntry) {
        self.write(|s| s.services = Some(entry));
    }

    /// Adds or replaces the entry for `entry.vip`.
    pub fn set_vip(&self, entry: VipEntry) {
        self.write(|s| match s.vips.iter_mut().find(|v| v.vip == entry.vip) {
            Some(v) => *v = entry,
            None => s.vips.push(entry),
        });
    }

    /// Updates role and bound state of a known VIP (no-op if unknown).
    pub fn update_vip(&self, vip: IpAddr, role: Role, bound: bool) {
        self.write(|s| {
            if let Some(v) = s.vips.iter_mut().find(|v| v.vip == vip) {
                v.role = role;
                v.bound = bound;
            }
        });
    }

    /// Records the lease record as last read.
    pub fn set_lease(&self, holder: Option<String>, transitions: u64) {
        self.write(|s| {
            s.holder = holder;
            s.transitions = transitions;
        });
    }

    /// Records a successful renewal by this node at monotonic `at` (the
    /// request's send time, as R1 measures it).
    pub fn renewed(&self, at: Instant) {
        self.write(|s| s.last_renewal = Some(at));
    }

    /// Records the health checks' current states.
    pub fn set_health(&self, checks: Vec<vipd_health::CheckStatus>) {
        self.write(|s| s.health = checks);
    }

    /// Records the health gate's verdict; returns whether the node has
    /// been eligible at least once since start (this call included).
    pub fn set_eligible(&self, eligible: bool) -> bool {
        let mut ever = false;
        self.write(|s| {
            let first = !s.eligibility.gated;
            s.eligibility.gated = true;
            s.eligibility.eligible = eligible;
            s.eligibility.ever_eligible = eligible || (!first && s.eligibility.ever_eligible);
            ever = s.eligibility.ever_eligible;
        });
        ever
    }

    /// Records whether the coordination API answers.
    pub fn set_api_reachable(&self, reachable: bool) {
        self.write(|s| s.api_reachable = reachable);
    }

    /// Marks the first election sync as done: `/readyz` answers 200 from now on.
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether [`StatusHandle::mark_ready`] was called.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// A copy for `/status`, with ages computed against `now`.
    pub fn snapshot(&self, now: Instant) -> StatusSnapshot {
        let s = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        StatusSnapshot {
            node_name: s.node_name.clone(),
            version: s.version.clone(),
            started_at: s.started_at.clone(),
            uptime_ms: ms(now.saturating_duration_since(s.started)),
            vips: s.vips.clone(),
            lease: LeaseEntry {
                name: s.lease_name.clone(),
                backend: s.backend.clone(),
                holder: s.holder.clone(),
                last_renewal_ago_ms: s
                    .last_renewal
                    .map(|at| ms(now.saturating_duration_since(at))),
                transitions: s.transitions,
            },
            api_reachable: s.api_reachable,
            health: s.health.clone(),
            eligibility: s.eligibility,
            ready: self.is_ready(),
            services: s.services.clone(),
            quorum: s.quorum.clone(),
            bgp: s.bgp.as_ref().map(|(entry, at)| {
                let since = ms(now.saturating_duration_since(*at));
                let mut entry = entry.clone();
                for p in &mut entry.peers {
                    p.state_age_ms = p.state_age_ms.saturating_add(since);
                }
                entry
            }),
            routing_table: s.routing_table.clone(),
        }
    }
}

/// Per-loop heartbeats behind `/healthz` (SPEC R2: no loop parks forever).
///
/// Each long-running loop registers once with the longest gap it may
/// legitimately have between beats, and calls [`Heartbeat::beat`] every
/// iteration. `/healthz` fails while any loop is overdue, naming it. A loop
/// that a supervisor restarts registers again under the same name, which
/// replaces the old entry.
#[derive(Clone, Debug, Default)]
pub struct Liveness {
    loops: Arc<Mutex<BTreeMap<&'static str, LoopEntry>>>,
}

#[derive(Debug, Clone, Copy)]
struct LoopEntry {
    last: Instant,
    max_age: Duration,
}

/// One loop's heartbeat handle.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    name: &'static str,
    liveness: Liveness,
}

impl Liveness {
    /// An empty set: healthy until a loop registers and goes quiet.
    pub fn new() -> Self {
        Liveness::default()
    }

    /// Registers loop `name`, counted as having beaten at `now`.
    pub fn register(&self, name: &'static str, max_age: Duration, now: Instant) -> Heartbeat {
        self.loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, LoopEntry { last: now, max_age });
        Heartbeat {
            name,
            liveness: self.clone(),
        }
    }

    /// Names of loops whose last beat is older than their `max_age` at `now`.
    pub fn stale(&self, now: Instant) -> Vec<&'static str> {
        self.loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last) > e.max_age)
            .map(|(name, _)| *name)
            .collect()
    }
}

impl Heartbeat {
    /// Records that the loop is alive at `now`.
    pub fn beat(&self, now: Instant) {
        if let Some(e) = self
            .liveness
            .loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(self.name)
        {
            e.last = e.last.max(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn last_renewal_age_is_computed_at_read_time() {
        let status = StatusHandle::new("node-a", "0.1.0", "kube-system/plndr-cp-lock", "etcd");
        let t0 = Instant::now();
        status.renewed(t0);
        tokio::time::advance(Duration::from_millis(1500)).await;
        let snap = status.snapshot(Instant::now());
        assert_eq!(snap.lease.last_renewal_ago_ms, Some(1500));
        assert_eq!(snap.uptime_ms, 1500);
    }

    /// The example of the BGP section shown in the docs and the report.
    pub(crate) fn bgp_example() -> BgpEntry {
        BgpEntry {
            mode: "ecmp".into(),
            announced: vec!["203.0.113.10/32".into()],
            peers: vec![BgpPeerEntry {
                peer: "192.0.2.1:179".into(),
                remote_as: 65000,
                state: BGP_ESTABLISHED.into(),
                state_age_ms: 2_000,
                hold_time: Some(90),
                keepalive: Some(30),
                families: vec!["ipv4-unicast".into()],
                advertised: vec!["203.0.113.10/32".into()],
                received: 0,
                updates_sent: 1,
                updates_received: 0,
                last_error: None,
                bfd: Some(BfdEntry {
                    state: "Up".into(),
                    local_diag: "None".into(),
                    remote_state: "Up".into(),
                    remote_diag: "None".into(),
                    detection_time_ms: 900,
                }),
            }],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bgp_section_is_absent_when_off_and_has_the_documented_shape_when_on() {
        let status = StatusHandle::new("node-a", "0.1.0", "plndr-cp-lock", "kubernetes");
        let off =
            serde_json::to_value(status.snapshot(Instant::now())).unwrap_or_else(|e| panic!("{e}"));
        assert!(off.get("bgp").is_none(), "{off}");
        assert!(off.get("quorum").is_none(), "{off}");

        status.set_bgp(bgp_example(), Instant::now());
        let snap = status.snapshot(Instant::now());
        let on = serde_json::to_value(&snap).unwrap_or_else(|e| panic!("{e}"));
        let expected = serde_json::json!({
            "mode": "ecmp",
            "announced": ["203.0.113.10/32"],
            "peers": [{
                "peer": "192.0.2.1:179",
                "remote_as": 65000,
                "state": "Established",
                "state_age_ms": 2000,
                "hold_time": 90,
                "keepalive": 30,
                "families": ["ipv4-unicast"],
                "advertised": ["203.0.113.10/32"],
                "received": 0,
                "updates_sent": 1,
                "updates_received": 0,
                "last_error": null,
                "bfd": {
                    "state": "Up",
                    "local_diag": "None",
                    "remote_state": "Up",
                    "remote_diag": "None",
                    "detection_time_ms": 900
                }
            }]
        });
        assert_eq!(on["bgp"], expected);
        let back: StatusSnapshot = serde_json::from_value(on).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, snap);
        // A /status from before BGP mode (no `bgp` key) still parses.
        let mut old = serde_json::to_value(&snap).unwrap_or_else(|e| panic!("{e}"));
        old.as_object_mut().map(|o| o.remove("bgp"));
        let old: StatusSnapshot = serde_json::from_value(old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old.bgp, None);
    }

    #[tokio::test(start_paused = true)]
    async fn routing_table_section_is_absent_when_off_and_has_the_documented_shape_when_on() {
        let status = StatusHandle::new("node-a", "0.1.0", "plndr-cp-lock", "none");
        let off =
            serde_json::to_value(status.snapshot(Instant::now())).unwrap_or_else(|e| panic!("{e}"));
        assert!(off.get("routing_table").is_none(), "{off}");
        status.set_routing_table(RoutingTableEntry {
            mode: "ecmp".into(),
            table: 198,
            protocol: 248,
            routes: vec!["203.0.113.10/32".into()],
            wanted: vec!["203.0.113.10/32".into()],
            last_error: None,
        });
        let snap = status.snapshot(Instant::now());
        let on = serde_json::to_value(&snap).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            on["routing_table"],
            serde_json::json!({
                "mode": "ecmp",
                "table": 198,
                "protocol": 248,
                "routes": ["203.0.113.10/32"],
                "wanted": ["203.0.113.10/32"],
                "last_error": null
            })
        );
        let back: StatusSnapshot = serde_json::from_value(on).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, snap);
    }

    #[tokio::test(start_paused = true)]
    async fn bgp_state_age_keeps_growing_between_writes() {
        let status = StatusHandle::new("node-a", "0.1.0", "plndr-cp-lock", "kubernetes");
        status.set_bgp(bgp_example(), Instant::now());
        tokio::time::advance(Duration::from_millis(1500)).await;
        let snap = status.snapshot(Instant::now());
        let ages: Vec<u64> = snap
            .bgp
            .iter()
            .flat_map(|b| b.peers.iter().map(|p| p.state_age_ms))
            .collect();
        assert_eq!(ages, vec![3_500]);
    }

    #[tokio::test(start_paused = true)]
    async fn silent_loop_is_reported_stale_after_its_max_age() {
        let live = Liveness::new();
        let now = Instant::now();
        let election = live.register("election", Duration::from_secs(5), now);
        let _reconcile = live.register("reconcile", Duration::from_secs(20), now);
        assert!(live.stale(now + Duration::from_secs(5)).is_empty());
        election.beat(now + Duration::from_secs(4));
        assert!(live.stale(now + Duration::from_secs(9)).is_empty());
        assert_eq!(live.stale(now + Duration::from_secs(10)), vec!["election"]);
        assert_eq!(
            live.stale(now + Duration::from_secs(21)),
            vec!["election", "reconcile"]
        );
    }
}
