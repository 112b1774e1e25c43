//! Prometheus metrics (SPEC §6), all on one explicit
//! [`prometheus_client::registry::Registry`] owned by [`Metrics`]: no
//! globals, so tests build their own and the binary shares one `Arc`.
//!
//! Label values are whatever the caller passes (a VIP's text form, a lease
//! name): the set is small and fixed by configuration, so cardinality stays
//! bounded.

use std::time::Duration;

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

mod bgp;
mod quorum;
mod services;
mod table;
pub use bgp::{BgpMetrics, BgpPeerSample, BFD_STATE_UP, BGP_STATES};
pub use quorum::{QuorumMetrics, QuorumSample, QUORUM_ROLES};
pub use services::ServiceMetrics;
pub use table::{TableMetrics, TableOp};

/// The `Content-Type` of [`Metrics::encode`]'s output (OpenMetrics text,
/// which Prometheus negotiates and scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Which way a leadership transition went (`to` label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Transition {
    /// Became the holder (`to="leader"`).
    Leader,
    /// Stopped being the holder (`to="follower"`).
    Follower,
}

impl Transition {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Leader => "leader",
            Transition::Follower => "follower",
        }
    }
}

impl EncodeLabelValue for Transition {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Kind of neighbour announcement (`kind` label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum AnnouncementKind {
    /// Gratuitous ARP, request form (RFC 5227 §3 ARP Announcement):
    /// `kind="garp_request"`.
    GarpRequest,
    /// Gratuitous ARP, reply form, which some switches and old stacks need:
    /// `kind="garp_reply"`.
    GarpReply,
    /// IPv6 unsolicited Neighbour Advertisement (RFC 4861 §7.2.6):
    /// `kind="unsolicited_na"`.
    UnsolicitedNa,
}

impl AnnouncementKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnouncementKind::GarpRequest => "garp_request",
            AnnouncementKind::GarpReply => "garp_reply",
            AnnouncementKind::UnsolicitedNa => "unsolicited_na",
        }
    }
}

impl EncodeLabelValue for AnnouncementKind {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipLease {
    vip: String,
    lease: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseTo {
    lease: String,
    to: Transition,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipInterface {
    vip: String,
    interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipOnly {
    vip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipKind {
    vip: String,
    kind: AnnouncementKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseOnly {
    lease: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbCode {
    verb: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerbOnly {
    verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckOnly {
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionOnly {
    version: String,
}

/// Every vipd metric, registered on [`Metrics::registry`].
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    is_leader: Family<VipLease, Gauge>,
    transitions: Family<LeaseTo, Counter>,
    vip_bound: Family<VipInterface, Gauge>,
    vip_bind: Family<VipOnly, Counter>,
    announcements: Family<VipKind, Counter>,
    duplicate_claims: Family<VipOnly, Counter>,
    renew_failures: Family<LeaseOnly, Counter>,
    api_requests: Family<VerbCode, Counter>,
    api_duration: Family<VerbOnly, Histogram, fn() -> Histogram>,
    api_reachable: Gauge,
    health_check_up: Family<CheckOnly, Gauge>,
    eligible: Gauge,
    ever_eligible: Gauge,
    /// Services-mode metrics.
    pub services: ServiceMetrics,
    /// Quorum-mode metrics (SPEC §5a).
    pub quorum: QuorumMetrics,
    /// BGP-mode metrics, BFD included (SPEC §5b).
    pub bgp: BgpMetrics,
    /// Routing-table mode metrics (SPEC §5b, kube-vip's `vip_routingtable`).
    pub routing_table: TableMetrics,
}

/// Buckets from 1 ms to ~16 s: lease calls are bounded by the renew
/// deadline (10 s by default), and sub-10 ms is the healthy local case.
fn api_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    /// Registers every metric on a fresh registry and sets
    /// `vipd_build_info{version}` to 1.
    pub fn new(version: &str) -> Self {
        let mut registry = Registry::default();
        let is_leader = Family::<VipLease, Gauge>::default();
        let transitions = Family::<LeaseTo, Counter>::default();
        let vip_bound = Family::<VipInterface, Gauge>::default();
        let vip_bind = Family::<VipOnly, Counter>::default();
        let announcements = Family::<VipKind, Counter>::default();
        let duplicate_claims = Family::<VipOnly, Counter>::default();
        let renew_failures = Family::<LeaseOnly, Counter>::default();
        let api_requests = Family::<VerbCode, Counter>::default();
        let api_duration = Family::<VerbOnly, Histogram, fn() -> Histogram>::new_with_constructor(
            api_histogram as fn() -> Histogram,
        );
        let api_reachable = Gauge::default();
        let health_check_up = Family::<CheckOnly, Gauge>::default();
        // Without a health gate a node is always eligible; the gate's
        // watcher overwrites both from its first state on.
        let eligible = Gauge::default();
        eligible.set(1);
        let ever_eligible = Gauge::default();
        ever_eligible.set(1);
        let build_info = Family::<VersionOnly, Gauge>::default();

        // Counter names are registered without `_total`: prometheus-client
        // appends it, as OpenMetrics requires.
        registry.register(
            "vipd_is_leader",
            "1 while this node holds the lease for the VIP",
            is_leader.clone(),
        );
        registry.register(
            "vipd_leadership_transitions",
            "Leadership changes seen by this node",
            transitions.clone(),
        );
        registry.register(
            "vipd_vip_bound",
            "1 while the VIP is present on the interface",
            vip_bound.clone(),
        );
        registry.register(
            "vipd_vip_bind",
            "Times the VIP was added to an interface",
            vip_bind.clone(),
        );
        registry.register(
            "vipd_announcements",
            "Gratuitous ARP / unsolicited NA frames sent",
            announcements.clone(),
        );
        registry.register(
            "vipd_duplicate_claims",
            "ARP replies / NAs claiming an owned VIP from a foreign MAC (SPEC R5)",
            duplicate_claims.clone(),
        );
        registry.register(
            "vipd_lease_renew_failures",
            "Failed lease renewals",
            renew_failures.clone(),
        );
        registry.register(
            "vipd_api_requests",
            "Coordination API requests by verb and result code (HTTP status for Kubernetes, result word for etcd)",
            api_requests.clone(),
        );
        registry.register(
            "vipd_api_request_duration_seconds",
            "Coordination API request latency",
            api_duration.clone(),
        );
        registry.register(
            "vipd_api_reachable",
            "1 while the coordination API answers",
            api_reachable.clone(),
        );
        registry.register(
            "vipd_health_check_up",
            "1 while the health check passes",
            health_check_up.clone(),
        );
        registry.register(
            "vipd_eligible",
            "1 while the health gate lets this node hold addresses (R8); 1 without a gate",
            eligible.clone(),
        );
        registry.register(
            "vipd_ever_eligible",
            "0 while this node has not been eligible once since it started: a gate that never passes (wrong CA, wrong URL) keeps the VIP off it",
            ever_eligible.clone(),
        );
        registry.register(
            "vipd_build_info",
            "Build information; always 1",
            build_info.clone(),
        );

        let services = ServiceMetrics::default();
        services.register(&mut registry);
        let quorum = QuorumMetrics::default();
        quorum.register(&mut registry);
        let bgp = BgpMetrics::default();
        bgp.register(&mut registry);
        let routing_table = TableMetrics::default();
        routing_table.register(&mut registry);

        build_info
            .get_or_create(&VersionOnly {
                version: version.to_string(),
            })
            .set(1);

        Metrics {
            registry,
            is_leader,
            transitions,
            vip_bound,
            vip_bind,
            announcements,
            duplicate_claims,
            renew_failures,
            api_requests,
            api_duration,
            api_reachable,
            health_check_up,
            eligible,
            ever_eligible,
            services,
            quorum,
            bgp,
            routing_table,
        }
    }

    /// The registry, for registering further collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Sets `vipd_is_leader{vip,lease}`.
    pub fn set_leader(&self, vip: &str, lease: &str, leader: bool) {
        self.is_leader
            .get_or_create(&VipLease {
                vip: vip.into(),
                lease: lease.into(),
            })
            .set(i64::from(leader));
    }

    /// Counts `vipd_leadership_transitions_total{lease,to}`.
    pub fn inc_transition(&self, lease: &str, to: Transition) {
        self.transitions
            .get_or_create(&LeaseTo {
                lease: lease.into(),
                to,
            })
            .inc();
    }

    /// Sets `vipd_vip_bound{vip,interface}`.
    pub fn set_vip_bound(&self, vip: &str, interface: &str, bound: bool) {
        self.vip_bound
            .get_or_create(&VipInterface {
                vip: vip.into(),
                interface: interface.into(),
            })
            .set(i64::from(bound));
    }

    /// Counts `vipd_vip_bind_total{vip}`: the VIP was (re-)added.
    pub fn inc_vip_bind(&self, vip: &str) {
        self.vip_bind
            .get_or_create(&VipOnly { vip: vip.into() })
            .inc();
    }

    /// Counts `vipd_announcements_total{vip,kind}`.
    pub fn inc_announcement(&self, vip: &str, kind: AnnouncementKind) {
        self.announcements
            .get_or_create(&VipKind {
                vip: vip.into(),
                kind,
            })
            .inc();
    }

    /// Counts `vipd_duplicate_claims_total{vip}`.
    pub fn inc_duplicate_claim(&self, vip: &str) {
        self.duplicate_claims
            .get_or_create(&VipOnly { vip: vip.into() })
            .inc();
    }

    /// Counts `vipd_lease_renew_failures_total{lease}`.
    pub fn inc_renew_failure(&self, lease: &str) {
        self.renew_failures
            .get_or_create(&LeaseOnly {
                lease: lease.into(),
            })
            .inc();
    }

    /// Records one coordination API request: counts
    /// `vipd_api_requests_total{verb,code}` and observes
    /// `vipd_api_request_duration_seconds{verb}`.
    ///
    /// `verb` is the operation (`get`, `create`, `update`, `watch`);
    /// `code` is the HTTP status for the Kubernetes backend (`"200"`,
    /// `"409"`) and a result word for etcd (`ok`, `conflict`, `exists`,
    /// `unavailable`, `timeout`, `rejected`).
    pub fn observe_api_request(&self, verb: &str, code: &str, elapsed: Duration) {
        self.api_requests
            .get_or_create(&VerbCode {
                verb: verb.into(),
                code: code.into(),
            })
            .inc();
        self.api_duration
            .get_or_create(&VerbOnly { verb: verb.into() })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets `vipd_api_reachable`.
    pub fn set_api_reachable(&self, reachable: bool) {
        self.api_reachable.set(i64::from(reachable));
    }

    /// Sets `vipd_health_check_up{check}`.
    pub fn set_health_check(&self, check: &str, up: bool) {
        self.health_check_up
            .get_or_create(&CheckOnly {
                check: check.into(),
            })
            .set(i64::from(up));
    }

    /// Sets `vipd_eligible` and `vipd_ever_eligible`.
    pub fn set_eligible(&self, eligible: bool, ever: bool) {
        self.eligible.set(i64::from(eligible));
        self.ever_eligible.set(i64::from(ever));
    }

    /// Everything in OpenMetrics text format (see [`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in
        // an encoder, and a partial page is better than none.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.push_str("# encoding error\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_shows_updated_series_with_labels() {
        let m = Metrics::new("1.2.3");
        m.set_leader("192.0.2.10", "plndr-cp-lock", true);
        m.inc_transition("plndr-cp-lock", Transition::Leader);
        m.set_vip_bound("192.0.2.10", "eth0", true);
        m.inc_vip_bind("192.0.2.10");
        m.inc_announcement("192.0.2.10", AnnouncementKind::GarpRequest);
        m.inc_announcement("192.0.2.10", AnnouncementKind::GarpRequest);
        m.inc_announcement("2001:db8::10", AnnouncementKind::UnsolicitedNa);
        m.inc_duplicate_claim("192.0.2.10");
        m.inc_renew_failure("plndr-cp-lock");
        m.observe_api_request("update", "409", Duration::from_millis(3));
        m.set_api_reachable(true);
        m.set_health_check("apiserver", false);
        let fresh = m.encode();
        assert!(fresh.contains("vipd_eligible 1") && fresh.contains("vipd_ever_eligible 1"));
        m.set_eligible(false, false);
        let text = m.encode();
        for needle in [
            r#"vipd_is_leader{vip="192.0.2.10",lease="plndr-cp-lock"} 1"#,
            r#"vipd_leadership_transitions_total{lease="plndr-cp-lock",to="leader"} 1"#,
            r#"vipd_vip_bound{vip="192.0.2.10",interface="eth0"} 1"#,
            r#"vipd_vip_bind_total{vip="192.0.2.10"} 1"#,
            r#"vipd_announcements_total{vip="192.0.2.10",kind="garp_request"} 2"#,
            r#"vipd_announcements_total{vip="2001:db8::10",kind="unsolicited_na"} 1"#,
            r#"vipd_duplicate_claims_total{vip="192.0.2.10"} 1"#,
            r#"vipd_lease_renew_failures_total{lease="plndr-cp-lock"} 1"#,
            r#"vipd_api_requests_total{verb="update",code="409"} 1"#,
            r#"vipd_api_request_duration_seconds_count{verb="update"} 1"#,
            "vipd_api_reachable 1",
            r#"vipd_health_check_up{check="apiserver"} 0"#,
            "vipd_eligible 0",
            "vipd_ever_eligible 0",
            r#"vipd_build_info{version="1.2.3"} 1"#,
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn leadership_loss_sets_gauge_to_zero() {
        let m = Metrics::new("0");
        m.set_leader("192.0.2.10", "l", true);
        m.set_leader("192.0.2.10", "l", false);
        assert!(m
            .encode()
            .contains(r#"vipd_is_leader{vip="192.0.2.10",lease="l"} 0"#));
    }
}
