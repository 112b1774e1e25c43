//! The route side of a VIP manager, whatever carries the routes: BGP
//! (`bgp.rs`, routes to routers) or routing-table mode (`table.rs`, routes
//! in a kernel table for a host routing daemon). Services use it through
//! [`relay`]; both gates keep the same contract: announce once the kernel
//! has the address, withdraw (and wait) before the address goes.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::watch;
use vipd::config::Config;
use vipd_vip::Vip;

use super::bgp::{self, BgpGate};
use super::table::{self, TableGate};

/// The process's route gate.
#[derive(Clone)]
pub(crate) enum RouteGate {
    /// BGP mode's speaker.
    Bgp(BgpGate),
    /// Routing-table mode's sink.
    Table(TableGate),
}

impl RouteGate {
    /// The gate of the mode `cfg` runs, once `run` has started it.
    pub(crate) fn shared(cfg: &Config) -> Option<RouteGate> {
        if cfg.bgp.is_some() {
            return bgp::shared_gate().map(RouteGate::Bgp);
        }
        if cfg.routing_table.is_some() {
            return table::shared_gate().map(RouteGate::Table);
        }
        None
    }

    /// Feeds a VIP manager's bound set (addresses on `interface`).
    pub(crate) fn attach(&self, bound: watch::Receiver<BTreeSet<Vip>>, interface: &str) {
        match self {
            RouteGate::Bgp(g) => g.attach(bound),
            RouteGate::Table(g) => g.attach(bound, interface.to_owned()),
        }
    }

    /// The route may go out once the kernel has the address.
    pub(crate) fn announce(&self, addr: IpAddr) {
        match self {
            RouteGate::Bgp(g) => g.announce(addr),
            RouteGate::Table(g) => g.announce(addr),
        }
    }

    /// Takes the routes away and waits (bounded) until they are gone.
    pub(crate) async fn withdraw_all(&self, addrs: &BTreeSet<IpAddr>) {
        match self {
            RouteGate::Bgp(g) => g.withdraw_all(addrs).await,
            RouteGate::Table(g) => g.withdraw_all(addrs).await,
        }
    }
}

/// Puts the route ordering between a producer of desired addresses (an
/// ownership or ECMP core) and its VIP manager: an address added is bound
/// at once and its route goes out once the kernel has it; an address
/// dropped is withdrawn first (the bounded wait of
/// [`RouteGate::withdraw_all`]), keeps serving for `drain` while the
/// routers converge (ECMP; zero with one owner per address), and only then
/// is removed (SPEC §5b: withdraw before we stop serving). Runs until
/// `input`'s sender is gone, then withdraws and empties what it forwarded.
pub(crate) async fn relay(
    mut input: watch::Receiver<BTreeSet<Vip>>,
    output: watch::Sender<BTreeSet<Vip>>,
    gate: RouteGate,
    drain: Duration,
) {
    loop {
        let want = input.borrow_and_update().clone();
        apply(&want, &output, &gate, drain).await;
        if input.changed().await.is_err() {
            apply(&BTreeSet::new(), &output, &gate, drain).await;
            return;
        }
    }
}

async fn apply(
    want: &BTreeSet<Vip>,
    output: &watch::Sender<BTreeSet<Vip>>,
    gate: &RouteGate,
    drain: Duration,
) {
    let have = output.borrow().clone();
    // Additions first: a drain must not delay a new address.
    for v in want.difference(&have) {
        gate.announce(v.addr);
    }
    let gone: BTreeSet<IpAddr> = have.difference(want).map(|v| v.addr).collect();
    if gone.is_empty() {
        set(output, want);
        return;
    }
    set(output, &have.union(want).copied().collect());
    gate.withdraw_all(&gone).await;
    if !drain.is_zero() {
        tokio::time::sleep(drain).await;
    }
    set(output, want);
}

fn set(output: &watch::Sender<BTreeSet<Vip>>, to: &BTreeSet<Vip>) {
    output.send_if_modified(|o| {
        let changed = o != to;
        o.clone_from(to);
        changed
    });
}
