//! Services-mode metrics (issue 5): what the ownership core, the watches and
//! IPAM do. Registered by [`crate::metrics::Metrics::new`] on the same
//! registry, so a process without Services mode exports them at zero.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceReason {
    resource: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindOnly {
    kind: String,
}

/// The Services-mode metrics.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    relists: Family<ResourceReason, Counter>,
    addresses: Gauge,
    announced: Gauge,
    assigner: Gauge,
    generation: Gauge,
    writes: Family<KindOnly, Counter>,
    ipam_exhausted: Counter,
    conflicts: Gauge,
}

impl ServiceMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "vipd_watch_relists",
            "Full re-lists of a watched resource, by reason (gone = 410, forbidden = 403, error = disconnect or failure) (SPEC R2)",
            self.relists.clone(),
        );
        registry.register(
            "vipd_services_addresses",
            "LoadBalancer addresses known (one per IP; Services sharing an IP count once)",
            self.addresses.clone(),
        );
        registry.register(
            "vipd_services_announced",
            "LoadBalancer addresses this node announces now",
            self.announced.clone(),
        );
        registry.register(
            "vipd_services_assigner",
            "1 while this node is the elected assigner",
            self.assigner.clone(),
        );
        registry.register(
            "vipd_services_assignment_generation",
            "Assignment generation applied by this node",
            self.generation.clone(),
        );
        registry.register(
            "vipd_services_writes",
            "Services-mode API writes by kind (node_lease, assignment, tombstone, status, ipam)",
            self.writes.clone(),
        );
        registry.register(
            "vipd_ipam_pool_exhausted",
            "Allocations refused because the pool had no free address",
            self.ipam_exhausted.clone(),
        );
        registry.register(
            "vipd_services_problems",
            "Services with a configuration problem (invalid or conflicting address)",
            self.conflicts.clone(),
        );
    }

    /// Sets the relist counter of `resource` for `reason` to `total` (the
    /// reflector keeps the count; this mirrors it).
    pub fn set_relists(&self, resource: &str, reason: &str, total: u64) {
        let c = self.relists.get_or_create(&ResourceReason {
            resource: resource.into(),
            reason: reason.into(),
        });
        let have = c.get();
        if total > have {
            c.inc_by(total - have);
        }
    }

    /// Sets the address gauges.
    pub fn set_addresses(&self, known: usize, announced: usize) {
        self.addresses.set(i64::try_from(known).unwrap_or(i64::MAX));
        self.announced
            .set(i64::try_from(announced).unwrap_or(i64::MAX));
    }

    /// Sets the assigner gauge and the applied generation.
    pub fn set_core(&self, assigner: bool, generation: u64) {
        self.assigner.set(i64::from(assigner));
        self.generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// Counts one write of `kind`.
    pub fn inc_write(&self, kind: &str) {
        self.writes
            .get_or_create(&KindOnly { kind: kind.into() })
            .inc();
    }

    /// Counts one refused allocation.
    pub fn inc_ipam_exhausted(&self) {
        self.ipam_exhausted.inc();
    }

    /// Sets the number of Services with a problem.
    pub fn set_problems(&self, n: usize) {
        self.conflicts.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
