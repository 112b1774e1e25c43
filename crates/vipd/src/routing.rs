//! What carries the routes of BGP and routing-table mode (SPEC §5b),
//! shared by the control-plane VIP (`daemon`) and Services (`services`):
//! the process's one BGP speaker ([`bgp`], with kube-vip's node-annotation
//! settings in [`bgp_node`]), the process's one routing-table sink
//! ([`table`]), and the gate and relay over both ([`routes`]). Neither mode
//! knows which caller announces; the callers keep the order "bound, then
//! announced; withdrawn, then removed".

pub(crate) mod arp;
pub(crate) mod bgp;
#[cfg(feature = "kubernetes")]
pub(crate) mod bgp_node;
pub(crate) mod routes;
pub(crate) mod table;
