//! The handles tests and the lab hold: [`AddrWatcher`] (one address) and
//! [`MultiAddrWatcher`] (many, Services mode) over one shared monitor.

use crate::ns::{run_ok, Error, NetNs};
use crate::probe::LabClock;
use crate::topo::Topology;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use super::log::{HoldingLog, Transition};
use super::monitor::Monitor;

/// Watches which of a topology's hosts hold an address (see module docs).
/// Stops (killing its `ip monitor`) when dropped.
#[derive(Debug)]
pub struct AddrWatcher {
    mon: Monitor,
    addr: IpAddr,
}

impl AddrWatcher {
    /// Starts watching `addr` on the interfaces of `hosts` (names given to
    /// the [`crate::TopologyBuilder`]). Waits briefly for the monitor to
    /// subscribe, then reads the current state; an event seen meanwhile
    /// takes precedence over that read. Start watchers before faults.
    pub fn start(
        topo: &Topology,
        hosts: &[&str],
        addr: IpAddr,
        clock: LabClock,
    ) -> Result<AddrWatcher, Error> {
        let mon = Monitor::start(topo, hosts, &BTreeSet::from([addr]), clock)?;
        Ok(AddrWatcher { mon, addr })
    }

    /// The clock transitions are stamped with.
    pub fn clock(&self) -> LabClock {
        self.mon.clock
    }

    /// A snapshot of the holding log so far.
    pub fn log(&self) -> HoldingLog {
        self.mon.with(HoldingLog::default(), |c| {
            c.logs.get(&self.addr).cloned().unwrap_or_default()
        })
    }

    /// Hosts holding the address now, sorted.
    pub fn holders(&self) -> Vec<String> {
        self.log().holders_at_end()
    }

    /// Time with two or more holders inside `window` (see [`HoldingLog`]).
    pub fn two_holder_time(&self, window: Range<Duration>) -> Duration {
        self.log().two_holder_time(window)
    }

    /// Every start/stop of holding so far.
    pub fn transitions(&self) -> Vec<Transition> {
        self.log().transitions().to_vec()
    }

    /// Stops watching and returns the final log.
    pub fn stop(mut self) -> HoldingLog {
        self.mon.shutdown();
        self.log()
    }
}

/// Like [`AddrWatcher`], for a set of addresses at once (one `ip monitor`
/// process, one reader thread): Services mode has hundreds of
/// LoadBalancer addresses, each of which must have at most one holder at
/// every instant. Stops (killing its `ip monitor`) when dropped.
#[derive(Debug)]
pub struct MultiAddrWatcher {
    mon: Monitor,
}

impl MultiAddrWatcher {
    /// Starts watching `addrs` on the interfaces of `hosts`; the initial
    /// state is read with one `ip -o addr show` per host (see
    /// [`AddrWatcher::start`] for the timing caveat).
    pub fn start(
        topo: &Topology,
        hosts: &[&str],
        addrs: &BTreeSet<IpAddr>,
        clock: LabClock,
    ) -> Result<MultiAddrWatcher, Error> {
        Ok(MultiAddrWatcher {
            mon: Monitor::start(topo, hosts, addrs, clock)?,
        })
    }

    /// Adds addresses (and hosts) to watch later, e.g. allocated by IPAM at
    /// run time; their initial state is read from the hosts, and an event
    /// arriving meanwhile takes precedence. Already watched ones are kept.
    pub fn watch_more(
        &self,
        topo: &Topology,
        hosts: &[&str],
        addrs: &BTreeSet<IpAddr>,
    ) -> Result<(), Error> {
        self.mon.watch(topo, hosts, addrs)
    }

    /// The clock transitions are stamped with.
    pub fn clock(&self) -> LabClock {
        self.mon.clock
    }

    /// Snapshot of every address's [`HoldingLog`].
    pub fn logs(&self) -> BTreeMap<IpAddr, HoldingLog> {
        self.mon.with(BTreeMap::new(), |c| c.logs.clone())
    }

    /// Hosts holding `addr` now (sorted); empty for an unwatched address.
    pub fn holders(&self, addr: IpAddr) -> Vec<String> {
        self.mon.with(Vec::new(), |c| {
            c.logs
                .get(&addr)
                .map(HoldingLog::holders_at_end)
                .unwrap_or_default()
        })
    }

    /// Address -> its holders now (only addresses held by at least one host).
    pub fn holders_all(&self) -> BTreeMap<IpAddr, Vec<String>> {
        self.mon.with(BTreeMap::new(), |c| {
            c.logs
                .iter()
                .map(|(a, l)| (*a, l.holders_at_end()))
                .filter(|(_, h)| !h.is_empty())
                .collect()
        })
    }

    /// Sum over addresses of the time two or more hosts held it, within
    /// `window` (see [`HoldingLog::two_holder_time`]).
    pub fn two_holder_time(&self, window: Range<Duration>) -> Duration {
        self.two_holder_addresses(window).values().sum()
    }

    /// The addresses whose two-holder time in `window` is non-zero, with
    /// that time.
    pub fn two_holder_addresses(&self, window: Range<Duration>) -> BTreeMap<IpAddr, Duration> {
        self.mon.with(BTreeMap::new(), |c| {
            c.logs
                .iter()
                .map(|(a, l)| (*a, l.two_holder_time(window.clone())))
                .filter(|(_, d)| !d.is_zero())
                .collect()
        })
    }

    /// Stops watching and returns every address's final log.
    pub fn stop(mut self) -> BTreeMap<IpAddr, HoldingLog> {
        self.mon.shutdown();
        self.logs()
    }
}

/// `ip -o addr show` of every given namespace, for failure reports.
pub fn dump_addresses(nss: &[&NetNs]) -> String {
    nss.iter()
        .map(|ns| {
            format!(
                "{}:\n{}",
                ns.name(),
                run_ok("ip", &["-n", ns.name(), "-o", "addr", "show"]).unwrap_or_default()
            )
        })
        .collect()
}
