//! The route side of a VIP manager, whatever carries the routes: BGP
//! (`bgp.rs`, routes to routers) or routing-table mode (`table.rs`, routes
//! in a kernel table for a host routing daemon). Services use it through
//! [`relay`]; both gates keep the same contract: announce once the kernel
//! has the address, withdraw (and wait) before the address goes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
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
/// is removed (SPEC §5b: withdraw before we stop serving). Drains run side
/// by side: one address draining never delays another's withdrawal. When
/// `input`'s sender is gone, everything left is withdrawn, drained and
/// removed, and the relay returns.
pub(crate) async fn relay(
    mut input: watch::Receiver<BTreeSet<Vip>>,
    output: watch::Sender<BTreeSet<Vip>>,
    gate: RouteGate,
    drain: Duration,
) {
    // Withdrawn addresses still bound, with the instant they go.
    let mut draining: BTreeMap<Vip, Instant> = BTreeMap::new();
    let mut open = true;
    loop {
        let want = if open {
            input.borrow_and_update().clone()
        } else {
            BTreeSet::new()
        };
        // Additions first (and an address back before its drain ended
        // simply stays).
        let have = output.borrow().clone();
        for v in want.difference(&have) {
            gate.announce(v.addr);
        }
        for v in &want {
            if draining.remove(v).is_some() {
                gate.announce(v.addr);
            }
        }
        let gone: BTreeSet<Vip> = have
            .difference(&want)
            .filter(|v| !draining.contains_key(v))
            .copied()
            .collect();
        if !gone.is_empty() {
            gate.withdraw_all(&gone.iter().map(|v| v.addr).collect())
                .await;
            let until = Instant::now() + drain;
            draining.extend(gone.into_iter().map(|v| (v, until)));
        }
        let now = Instant::now();
        draining.retain(|_, until| *until > now);
        set(
            &output,
            &want.iter().chain(draining.keys()).copied().collect(),
        );
        if !open && draining.is_empty() {
            return;
        }
        let next = draining.values().min().copied();
        tokio::select! {
            r = input.changed(), if open => if r.is_err() { open = false },
            () = sleep_until(next), if next.is_some() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn set(output: &watch::Sender<BTreeSet<Vip>>, to: &BTreeSet<Vip>) {
    output.send_if_modified(|o| {
        let changed = o != to;
        o.clone_from(to);
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(s: &str) -> Vip {
        Vip::host(s.parse().unwrap_or(IpAddr::from([192, 0, 2, 1])))
    }

    fn gate() -> (RouteGate, tokio::sync::watch::Receiver<BTreeSet<IpAddr>>) {
        let (g, allowed) = BgpGate::detached();
        (RouteGate::Bgp(g), allowed)
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_address_is_withdrawn_then_drained_and_drains_do_not_queue() {
        let (g, allowed) = gate();
        let (tx, rx) = watch::channel(BTreeSet::new());
        let (out_tx, out) = watch::channel(BTreeSet::new());
        let drain = Duration::from_millis(500);
        let task = tokio::spawn(relay(rx, out_tx, g, drain));
        let (a, b) = (vip("203.0.113.20"), vip("203.0.113.21"));
        tx.send_replace(BTreeSet::from([a, b]));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(*out.borrow(), BTreeSet::from([a, b]));
        assert_eq!(allowed.borrow().len(), 2);
        // a goes: withdrawn at once, still bound for the drain.
        tx.send_replace(BTreeSet::from([b]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*allowed.borrow(), BTreeSet::from([b.addr]));
        assert_eq!(*out.borrow(), BTreeSet::from([a, b]));
        // b goes while a drains: its withdrawal is not held up.
        tx.send_replace(BTreeSet::new());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(allowed.borrow().is_empty());
        // a leaves at its own deadline, b at its own.
        tokio::time::sleep(Duration::from_millis(420)).await;
        assert_eq!(*out.borrow(), BTreeSet::from([b]));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(out.borrow().is_empty());
        // Back during a drain: it stays and is announced again.
        tx.send_replace(BTreeSet::from([a]));
        tokio::time::sleep(Duration::from_millis(1)).await;
        tx.send_replace(BTreeSet::new());
        tokio::time::sleep(Duration::from_millis(100)).await;
        tx.send_replace(BTreeSet::from([a]));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(*out.borrow(), BTreeSet::from([a]));
        assert_eq!(*allowed.borrow(), BTreeSet::from([a.addr]));
        // The producer stops: withdraw, drain, empty, return.
        drop(tx);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(allowed.borrow().is_empty());
        assert_eq!(*out.borrow(), BTreeSet::from([a]));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(out.borrow().is_empty());
        assert!(task.is_finished());
    }
}
