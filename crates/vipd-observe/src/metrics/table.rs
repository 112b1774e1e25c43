//! Routing-table mode metrics (SPEC §5b; kube-vip's `vip_routingtable`):
//! the host routes vipd keeps in its kernel table for a host routing
//! daemon to export. Registered by [`crate::metrics::Metrics::new`] on the
//! same registry; a process without routing-table mode exports the
//! families with no series (the error counter, unlabelled, stays at 0).
//!
//! The route sink counts cumulatively; its reporter hands the increases
//! in (this crate does not know `vipd-vip`'s types).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What a route write did (`op` label of `vipd_routing_table_writes_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum TableOp {
    /// A host route written (`op="add"`).
    Add,
    /// A route of ours deleted: withdrawn, a leftover of an address we
    /// manage but do not hold, or one with the wrong device (`op="remove"`).
    Remove,
    /// A route deleted by the start-up cleaning, kube-vip's
    /// `vip_cleanroutingtable` (`op="clean"`).
    Clean,
}

impl TableOp {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            TableOp::Add => "add",
            TableOp::Remove => "remove",
            TableOp::Clean => "clean",
        }
    }
}

impl EncodeLabelValue for TableOp {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableOnly {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpOnly {
    op: TableOp,
}

/// The routing-table metrics.
#[derive(Debug, Default)]
pub struct TableMetrics {
    routes: Family<TableOnly, Gauge>,
    wanted: Family<TableOnly, Gauge>,
    writes: Family<OpOnly, Counter>,
    errors: Counter,
}

impl TableMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "vipd_routing_table_routes",
            "Host routes of vipd's protocol in the routing table now (kernel-confirmed)",
            self.routes.clone(),
        );
        registry.register(
            "vipd_routing_table_routes_wanted",
            "Host routes vipd wants in the routing table now (addresses bound here and allowed); above vipd_routing_table_routes means a route could not be written",
            self.wanted.clone(),
        );
        // Counter names without `_total`: prometheus-client appends it.
        registry.register(
            "vipd_routing_table_writes",
            "Route writes that succeeded: add, remove, clean (start-up cleaning, vip_cleanroutingtable)",
            self.writes.clone(),
        );
        registry.register(
            "vipd_routing_table_errors",
            "Failed routing-table operations (dump, add, delete, clean; each is retried with back-off)",
            self.errors.clone(),
        );
    }

    /// Sets `vipd_routing_table_routes{table}` and
    /// `vipd_routing_table_routes_wanted{table}`.
    pub fn set_routes(&self, table: u32, installed: usize, wanted: usize) {
        let label = TableOnly {
            table: table.to_string(),
        };
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.routes.get_or_create(&label).set(n(installed));
        self.wanted.get_or_create(&label).set(n(wanted));
    }

    /// Counts `n` more `vipd_routing_table_writes_total{op}` (none for 0,
    /// so an `op` appears once it happened).
    pub fn inc_writes(&self, op: TableOp, n: u64) {
        if n > 0 {
            self.writes.get_or_create(&OpOnly { op }).inc_by(n);
        }
    }

    /// Counts `n` more `vipd_routing_table_errors_total`.
    pub fn inc_errors(&self, n: u64) {
        if n > 0 {
            self.errors.inc_by(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn routes_writes_and_errors_are_exported_with_their_labels() {
        let m = Metrics::new("0");
        let fresh = m.encode();
        assert!(
            fresh.contains("vipd_routing_table_errors_total 0"),
            "{fresh}"
        );
        assert!(!fresh.contains("vipd_routing_table_routes{"), "{fresh}");
        m.routing_table.set_routes(198, 1, 2);
        m.routing_table.inc_writes(TableOp::Add, 2);
        m.routing_table.inc_writes(TableOp::Remove, 1);
        m.routing_table.inc_writes(TableOp::Clean, 0);
        m.routing_table.inc_errors(3);
        let text = m.encode();
        for needle in [
            r#"vipd_routing_table_routes{table="198"} 1"#,
            r#"vipd_routing_table_routes_wanted{table="198"} 2"#,
            r#"vipd_routing_table_writes_total{op="add"} 2"#,
            r#"vipd_routing_table_writes_total{op="remove"} 1"#,
            "vipd_routing_table_errors_total 3",
            "# TYPE vipd_routing_table_writes counter",
            "# TYPE vipd_routing_table_routes gauge",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        assert!(!text.contains(r#"op="clean""#), "{text}");
        m.routing_table.set_routes(198, 0, 0);
        assert!(m
            .encode()
            .contains(r#"vipd_routing_table_routes{table="198"} 0"#));
    }
}
