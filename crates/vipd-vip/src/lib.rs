//! VIP address management for vipd (SPEC rule R3, "reconcile to the truth").
//!
//! - [`reconcile`]: the sans-IO core. [`Reconciler`] turns the desired set
//!   of [`Vip`]s and an [`Observed`] kernel dump into [`ReconcileAction`]s:
//!   add what is wanted and missing, remove what is ours and unwanted,
//!   refuse what is wanted but not ours, report `Bound` on every
//!   (re-)acquisition so the announcer can send its burst (R4).
//! - [`netlink`]: kernel access with rtnetlink. Addresses vipd adds carry
//!   `IFA_PROTO` = [`VIPD_ADDR_PROTO`]; an address without it is never
//!   deleted ([`NetlinkError::NotOurs`]). IPv6 VIPs are added with
//!   `IFA_F_NODAD`. [`Monitor`] follows link and address events and turns any
//!   loss into [`MonitorEvent::Resync`].
//! - [`task`]: [`VipManager`], the tokio task that reconciles on every
//!   desired-set change, netlink event and period, emits [`VipEvent`]s,
//!   publishes the bound set, and confirms removal for graceful shutdown
//!   ([`VipManager::remove_all_now`], R7). [`preflight`] validates the
//!   configuration before anything is touched.
//!
//! - [`guard`]: the address guard, a second process that removes vipd's
//!   addresses when the daemon dies without removing them (SIGKILL, OOM,
//!   abort); the manager keeps it informed through a [`guard::GuardPipe`].
//!
//! - [`table`]: routing-table mode's sink, [`RouteTable`]: host routes in
//!   one kernel table tagged with one route protocol, for a host routing
//!   daemon to export (kube-vip's `vip_routingtable`).
//!
//! Everything runs in the network namespace of the calling thread (tests
//! enter a namespace and run a current-thread runtime there).

#![forbid(unsafe_code)]

pub mod guard;
pub mod netlink;
pub mod reconcile;
pub mod table;
pub mod task;

pub use netlink::{
    ArpConf, LinkInfo, Monitor, MonitorEvent, Netlink, NetlinkError, REQUEST_TIMEOUT,
    VIPD_ADDR_PROTO, VIPD_SVC_ADDR_PROTO,
};
pub use reconcile::{KernelAddr, Observed, ReconcileAction, Reconciler, RefuseReason, Vip};
pub use table::{RouteMonitor, RouteTable, TableError, TableRoute, TableSpec};
pub use task::{preflight, ManagerError, PreflightError, VipEvent, VipManager, VipManagerConfig};
