//! The address guard: a second, tiny process that removes vipd's addresses
//! when the daemon dies without removing them itself.
//!
//! Why: the kernel keeps an address after the process that added it is
//! gone. A daemon killed by SIGKILL, the OOM killer, a segfault or an
//! abort leaves its VIP answering ARP on a node that no longer holds it,
//! while the quorum (SPEC §5a) or the lease (R1) lets a successor bind the
//! same address: two holders on the wire until the daemon restarts and
//! removes the leftover (R3). Found in the lab (`sigkill-restart`, quorum
//! mode: 322 ms of two holders, because a quorum successor is faster than
//! a restart).
//!
//! How: the daemon starts `vipd guard` with a pipe on its standard input
//! (in its own process group, so a signal to the daemon's group misses it)
//! and, through [`GuardPipe`], writes one line *before* each address it
//! adds and one after each address it removed. The pipe's read end sees
//! end-of-file when the daemon dies, however it dies (the kernel closes
//! its descriptors); the guard then deletes every address still listed,
//! and only if the kernel still shows it with vipd's tag (R3: never a
//! node's own address). A graceful stop has removed and un-listed
//! everything first, so the guard finds nothing to do.
//!
//! Routing-table mode (kube-vip's `vip_routingtable`) leaves a second kind
//! of leftover: the VIP's host route in the table a host routing daemon
//! exports. A route outliving its address is a black hole (the routers
//! keep sending the VIP's traffic to a node that no longer answers for
//! it), so the route sink reports through the same pipe, with a
//! [`RouteGuard`]: one line before each route it writes, one after each
//! route it deleted. At end-of-file the guard deletes those routes *first*
//! and the addresses after them, the order of the daemon's own graceful
//! stop (withdraw before unbind, kube-vip's "delete the route, then the
//! address"): the routing daemon stops exporting the VIP while the node
//! can still answer the packets already on their way, instead of routers
//! sending to a node that has just dropped the address. A route is deleted
//! by table, protocol and destination, and only if the kernel still lists
//! it with that table and protocol: never another daemon's route, nor ours
//! to an address the daemon did not report.
//!
//! Limits, stated: a guard killed together with the daemon (a SIGKILL to
//! the whole cgroup, a container whose PID 1 is the daemon) cannot help;
//! the restarted daemon's reconcile (R3) removes the leftover then.
//!
//! The line format (`+`/`-`, tag, interface, address/prefix; for routes
//! `+route`/`-route`, table, protocol, address) is private to the two
//! halves of this module; both are the same binary (`/proc/self/exe`).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use tokio::io::AsyncWrite;

use crate::netlink::{Netlink, NetlinkError};
use crate::reconcile::Vip;
use crate::table::{RouteTable, TableError, TableSpec};

/// Where the daemon's addresses are: interface name and `IFA_PROTO` tag.
pub type GuardScope = (String, u8);

/// Where the daemon's routes are: kernel table and route protocol.
pub type RouteScope = (u32, u8);

/// The daemon's end of the pipe to the guard. Cloned into every VIP
/// manager, which writes through its own [`ManagerGuard`]; all clones write
/// to the one pipe.
///
/// Writes never block the caller: a line the pipe cannot take at once (the
/// guard stopped reading) marks the pipe broken, logged once, and nothing
/// more is written. The daemon never waits for its guard; a torn line makes
/// the guard remove nothing ([`GuardState::apply`]), an unsent one leaves
/// that address to the restarted daemon's reconcile.
#[derive(Clone)]
pub struct GuardPipe {
    /// `None` once a write failed.
    out: Arc<Mutex<Option<Writer>>>,
}

/// The pipe's write end, whatever its type (a child's stdin; a test stream).
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

impl std::fmt::Debug for GuardPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuardPipe")
    }
}

impl GuardPipe {
    /// Wraps the write end (the guard's standard input).
    pub fn new(out: impl AsyncWrite + Send + 'static) -> Self {
        Self {
            out: Arc::new(Mutex::new(Some(Box::pin(out)))),
        }
    }

    /// The handle one VIP manager reports through: its interface and tag.
    pub fn for_manager(&self, ifname: &str, tag: u8) -> ManagerGuard {
        ManagerGuard {
            pipe: self.clone(),
            scope: (ifname.to_string(), tag),
            told: BTreeSet::new(),
        }
    }

    /// The handle the routing-table sink reports through: its table and
    /// route protocol.
    pub fn for_routes(&self, table: u32, protocol: u8) -> RouteGuard {
        RouteGuard {
            pipe: self.clone(),
            scope: (table, protocol),
            told: BTreeSet::new(),
        }
    }

    /// True until a write failed (the guard is gone or stopped reading).
    pub fn healthy(&self) -> bool {
        self.out.lock().map(|o| o.is_some()).unwrap_or(false)
    }

    fn write(&self, text: &str) {
        let Ok(mut slot) = self.out.lock() else {
            return;
        };
        let Some(out) = slot.as_mut() else {
            return;
        };
        // One poll with a no-op waker: a pipe with room takes the whole
        // line at once (lines are far below PIPE_BUF, so the write is
        // atomic); anything else means the guard is not reading.
        let mut cx = Context::from_waker(noop_waker_ref());
        let ok = matches!(
            out.as_mut().poll_write(&mut cx, text.as_bytes()),
            Poll::Ready(Ok(n)) if n == text.len()
        );
        if !ok {
            tracing::warn!(
                "the address guard stopped reading; vipd goes on without it (a crash of vipd now leaves its addresses until it restarts)"
            );
            *slot = None;
        }
    }
}

/// One VIP manager's view of the guard: what it has told the guard may be
/// on its interface, so that each change is written once.
#[derive(Debug)]
pub struct ManagerGuard {
    pipe: GuardPipe,
    scope: GuardScope,
    told: BTreeSet<Vip>,
}

impl ManagerGuard {
    /// `vip` may be on the interface from now on. Called before the
    /// address is added, so the guard always knows a superset of what the
    /// kernel has.
    pub fn adding(&mut self, vip: Vip) {
        if self.told.insert(vip) {
            self.pipe.write(&line('+', &self.scope, vip));
        }
    }

    /// `vip` is gone (called after its removal).
    pub fn removed(&mut self, vip: Vip) {
        if self.told.remove(&vip) {
            self.pipe.write(&line('-', &self.scope, vip));
        }
    }

    /// Brings the guard to what a fresh kernel dump shows as ours (adopted
    /// leftovers, addresses someone else deleted).
    pub fn sync(&mut self, ours: &BTreeSet<Vip>) {
        let new: Vec<Vip> = ours.difference(&self.told).copied().collect();
        let gone: Vec<Vip> = self.told.difference(ours).copied().collect();
        new.into_iter().for_each(|v| self.adding(v));
        gone.into_iter().for_each(|v| self.removed(v));
    }
}

/// The routing-table sink's view of the guard: the host routes it has
/// told the guard may be in its table, so each change is written once.
#[derive(Debug)]
pub struct RouteGuard {
    pipe: GuardPipe,
    scope: RouteScope,
    told: BTreeSet<IpAddr>,
}

impl RouteGuard {
    /// The host route for `addr` may be in the table from now on. Called
    /// before the route is written (the guard knows a superset).
    pub fn adding(&mut self, addr: IpAddr) {
        if self.told.insert(addr) {
            self.pipe.write(&route_line('+', self.scope, addr));
        }
    }

    /// The route for `addr` is gone (called after its deletion).
    pub fn removed(&mut self, addr: IpAddr) {
        if self.told.remove(&addr) {
            self.pipe.write(&route_line('-', self.scope, addr));
        }
    }

    /// Brings the guard to what a fresh table dump shows as ours (a route
    /// we could not delete, one someone else deleted).
    pub fn sync(&mut self, ours: &BTreeSet<IpAddr>) {
        let new: Vec<IpAddr> = ours.difference(&self.told).copied().collect();
        let gone: Vec<IpAddr> = self.told.difference(ours).copied().collect();
        new.into_iter().for_each(|a| self.adding(a));
        gone.into_iter().for_each(|a| self.removed(a));
    }
}

fn line(op: char, (ifname, tag): &GuardScope, vip: Vip) -> String {
    format!("{op}{tag} {ifname} {}/{}\n", vip.addr, vip.prefix_len)
}

/// The word that starts a route line after its `+`/`-`.
const ROUTE_WORD: &str = "route";

fn route_line(op: char, (table, protocol): RouteScope, addr: IpAddr) -> String {
    format!("{op}{ROUTE_WORD} {table} {protocol} {addr}\n")
}

/// The guard's sans-IO state: what the daemon may have on which interface,
/// and which host routes in which table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuardState {
    listed: BTreeMap<GuardScope, BTreeSet<Vip>>,
    routes: BTreeMap<RouteScope, BTreeSet<IpAddr>>,
    /// A line could not be parsed: the stream is not trustworthy.
    corrupt: bool,
}

impl GuardState {
    /// Applies one line from the daemon. A malformed line (a torn write,
    /// a different version) makes the whole stream untrusted: the guard
    /// then removes nothing at all, rather than something wrong.
    pub fn apply(&mut self, text: &str) {
        match parse(text) {
            Some(Line::Addr(add, scope, vip)) => update(&mut self.listed, add, scope, vip),
            Some(Line::Route(add, scope, addr)) => update(&mut self.routes, add, scope, addr),
            None => self.corrupt = true,
        }
    }

    /// Routes to delete at end-of-file, before the addresses (nothing if
    /// the stream was corrupt).
    pub fn route_leftovers(&self) -> BTreeMap<RouteScope, BTreeSet<IpAddr>> {
        if self.corrupt {
            BTreeMap::new()
        } else {
            self.routes.clone()
        }
    }

    /// What to remove at end-of-file (nothing if the stream was corrupt).
    pub fn leftovers(&self) -> BTreeMap<GuardScope, BTreeSet<Vip>> {
        if self.corrupt {
            BTreeMap::new()
        } else {
            self.listed.clone()
        }
    }

    /// True when a malformed line was seen.
    pub fn corrupt(&self) -> bool {
        self.corrupt
    }
}

/// `add` (or remove) `item` under `scope`, dropping emptied scopes.
fn update<S: Ord, T: Ord>(map: &mut BTreeMap<S, BTreeSet<T>>, add: bool, scope: S, item: T) {
    if add {
        map.entry(scope).or_default().insert(item);
    } else if let Some(set) = map.get_mut(&scope) {
        set.remove(&item);
        if set.is_empty() {
            map.remove(&scope);
        }
    }
}

/// One parsed line: `true` adds, `false` removes.
enum Line {
    Addr(bool, GuardScope, Vip),
    Route(bool, RouteScope, IpAddr),
}

fn parse(text: &str) -> Option<Line> {
    let text = text.trim_end_matches('\n');
    let add = match text.chars().next()? {
        '+' => true,
        '-' => false,
        _ => return None,
    };
    let mut words = text.get(1..)?.split(' ');
    let first = words.next()?;
    if first == ROUTE_WORD {
        let table: u32 = words.next()?.parse().ok()?;
        let protocol: u8 = words.next()?.parse().ok()?;
        let addr: IpAddr = words.next()?.parse().ok()?;
        // Table 0 and protocol 0 match every table and protocol in a
        // delete request: never accept them.
        if words.next().is_some() || table == 0 || protocol == 0 {
            return None;
        }
        return Some(Line::Route(add, (table, protocol), addr));
    }
    let tag: u8 = first.parse().ok()?;
    let ifname = words.next()?.to_string();
    let (addr, prefix) = words.next()?.split_once('/')?;
    if words.next().is_some() || ifname.is_empty() {
        return None;
    }
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return None;
    }
    Some(Line::Addr(add, (ifname, tag), Vip::new(addr, prefix)))
}

/// One address the guard removed or could not remove.
#[derive(Debug)]
pub struct GuardOutcome {
    /// Interface and tag.
    pub scope: GuardScope,
    /// The address.
    pub vip: Vip,
    /// `Ok(true)`: removed; `Ok(false)`: already gone (or no longer
    /// vipd's); `Err`: the interface or netlink failed (the error's text,
    /// shared by every address of the interface).
    pub result: Result<bool, String>,
}

/// Deletes every leftover that the kernel still shows with its tag (R3:
/// an address without vipd's tag is never touched).
pub async fn remove_leftovers(
    leftovers: &BTreeMap<GuardScope, BTreeSet<Vip>>,
) -> Vec<GuardOutcome> {
    let mut out = Vec::new();
    for ((ifname, tag), vips) in leftovers {
        let outcome = |vip: Vip, result| GuardOutcome {
            scope: (ifname.clone(), *tag),
            vip,
            result,
        };
        // One socket and one dump per interface: Services mode may list
        // a thousand addresses, and the guard should be quick.
        match ours_on(ifname, *tag).await {
            Ok((nl, ifindex, ours)) => {
                for vip in vips {
                    let result = if ours.contains(vip) {
                        nl.del_vip(ifindex, *vip)
                            .await
                            .map(|()| true)
                            .map_err(|e| e.to_string())
                    } else {
                        Ok(false)
                    };
                    out.push(outcome(*vip, result));
                }
            }
            Err(e) => {
                let text = e.to_string();
                out.extend(vips.iter().map(|v| outcome(*v, Err(text.clone()))));
            }
        }
    }
    out
}

/// One host route the guard deleted or could not delete.
#[derive(Debug)]
pub struct RouteOutcome {
    /// Table and route protocol.
    pub scope: RouteScope,
    /// The route's destination (a host route: /32 or /128).
    pub addr: IpAddr,
    /// `Ok(true)`: deleted; `Ok(false)`: already gone (or not ours: not
    /// in the table with our protocol); `Err`: netlink failed (the error's
    /// text, shared by every route of the table when the dump failed).
    pub result: Result<bool, String>,
}

/// Deletes every leftover host route that the kernel still lists in its
/// table with its protocol. The delete request names table, protocol and
/// destination, so the kernel matches nothing else (`fib_table_delete`,
/// `ip6_route_del` compare the protocol when one is given).
pub async fn remove_route_leftovers(
    leftovers: &BTreeMap<RouteScope, BTreeSet<IpAddr>>,
) -> Vec<RouteOutcome> {
    let mut out = Vec::new();
    for (&(table, protocol), addrs) in leftovers {
        let outcome = |addr: IpAddr, result| RouteOutcome {
            scope: (table, protocol),
            addr,
            result,
        };
        match ours_in(table, protocol).await {
            Ok((rt, ours)) => {
                for addr in addrs {
                    let result = if ours.contains(addr) {
                        rt.remove(*addr)
                            .await
                            .map(|()| true)
                            .map_err(|e| e.to_string())
                    } else {
                        Ok(false)
                    };
                    out.push(outcome(*addr, result));
                }
            }
            Err(e) => {
                let text = e.to_string();
                out.extend(addrs.iter().map(|a| outcome(*a, Err(text.clone()))));
            }
        }
    }
    out
}

/// A route socket for `table`/`protocol` and the host routes in that
/// table with that protocol.
async fn ours_in(table: u32, protocol: u8) -> Result<(RouteTable, BTreeSet<IpAddr>), TableError> {
    // The type does not take part in a delete (the request leaves it
    // unspecified); unicast only makes the specification valid.
    let rt = RouteTable::new(TableSpec {
        table,
        protocol,
        route_type: 1,
    })?;
    let ours = rt
        .list()
        .await?
        .iter()
        .filter(|r| r.is_host())
        .map(|r| r.dst)
        .collect();
    Ok((rt, ours))
}

/// A netlink socket with `tag`, the index of `ifname`, and the addresses
/// on it that carry the tag.
async fn ours_on(ifname: &str, tag: u8) -> Result<(Netlink, u32, BTreeSet<Vip>), NetlinkError> {
    let nl = Netlink::with_tag(tag)?;
    let link = nl.link_by_name(ifname).await?;
    let ours = nl
        .addresses(link.ifindex)
        .await?
        .iter()
        .filter(|a| a.ours)
        .map(|a| a.vip())
        .collect();
    Ok((nl, link.ifindex, ours))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn v(s: &str, p: u8) -> Vip {
        Vip::new(s.parse().unwrap(), p)
    }

    fn scope() -> GuardScope {
        ("eth0".into(), 0x7e)
    }

    #[test]
    fn lines_round_trip_and_removal_unlists() {
        let mut g = GuardState::default();
        g.apply(&line('+', &scope(), v("192.0.2.100", 32)));
        g.apply(&line('+', &scope(), v("2001:db8::100", 128)));
        g.apply(&line('-', &scope(), v("192.0.2.100", 32)));
        let left = g.leftovers();
        assert_eq!(left.len(), 1);
        assert_eq!(left[&scope()], BTreeSet::from([v("2001:db8::100", 128)]));
        g.apply(&line('-', &scope(), v("2001:db8::100", 128)));
        assert!(g.leftovers().is_empty());
    }

    #[test]
    fn scopes_are_kept_apart() {
        let mut g = GuardState::default();
        let other: GuardScope = ("eth1".into(), 0x7f);
        g.apply(&line('+', &scope(), v("192.0.2.100", 32)));
        g.apply(&line('+', &other, v("203.0.113.10", 32)));
        g.apply(&line('-', &other, v("192.0.2.100", 32)));
        let left = g.leftovers();
        assert_eq!(left[&scope()], BTreeSet::from([v("192.0.2.100", 32)]));
        assert_eq!(left[&other], BTreeSet::from([v("203.0.113.10", 32)]));
    }

    #[test]
    fn a_malformed_line_makes_the_guard_remove_nothing() {
        for bad in [
            "",
            "*126 eth0 192.0.2.1/32",
            "+126 eth0 192.0.2.1",
            "+126 eth0 192.0.2.1/33",
            "+300 eth0 192.0.2.1/32",
            "+126  192.0.2.1/32",
            "+126 eth0 192.0.2.1/32 extra",
            "+126 eth0 not-an-ip/32",
            "+126 eth0 2001:db8::1/129",
        ] {
            let mut g = GuardState::default();
            g.apply(&line('+', &scope(), v("192.0.2.100", 32)));
            g.apply(bad);
            assert!(g.corrupt(), "{bad:?} accepted");
            assert!(g.leftovers().is_empty(), "{bad:?}");
        }
    }

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn route_lines_are_kept_apart_from_addresses_and_by_table() {
        let mut g = GuardState::default();
        g.apply(&line('+', &scope(), v("203.0.113.10", 32)));
        g.apply(&route_line('+', (198, 248), a("203.0.113.10")));
        g.apply(&route_line('+', (198, 248), a("2001:db8::10")));
        g.apply(&route_line('+', (199, 248), a("203.0.113.10")));
        g.apply(&route_line('-', (198, 248), a("2001:db8::10")));
        g.apply(&route_line('-', (199, 248), a("203.0.113.10")));
        assert_eq!(
            g.route_leftovers(),
            BTreeMap::from([((198, 248), BTreeSet::from([a("203.0.113.10")]))])
        );
        assert_eq!(
            g.leftovers()[&scope()],
            BTreeSet::from([v("203.0.113.10", 32)])
        );
        // A torn route line poisons the routes too.
        g.apply("+route 198 248");
        assert!(g.corrupt());
        assert!(g.route_leftovers().is_empty() && g.leftovers().is_empty());
    }

    #[test]
    fn route_lines_with_wildcard_table_or_protocol_are_refused() {
        for bad in [
            "+route 0 248 203.0.113.10",
            "+route 198 0 203.0.113.10",
            "+route 198 256 203.0.113.10",
            "+route 198 248 203.0.113.10/32",
            "+route 198 248 203.0.113.10 extra",
            "+route -1 248 203.0.113.10",
        ] {
            let mut g = GuardState::default();
            g.apply(bad);
            assert!(g.corrupt(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_route_guard_writes_each_change_once_and_syncs_to_the_kernel() {
        let (pipe_end, mut b) = tokio::io::duplex(1024);
        let pipe = GuardPipe::new(pipe_end);
        let mut r = pipe.for_routes(198, 248);
        r.adding(a("203.0.113.10"));
        r.adding(a("203.0.113.10"));
        r.sync(&BTreeSet::from([a("203.0.113.11")]));
        r.removed(a("203.0.113.12"));
        let mut buf = [0u8; 1024];
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        let _ = tokio::io::AsyncRead::poll_read(Pin::new(&mut b), &mut cx, &mut rb);
        let text = String::from_utf8(rb.filled().to_vec()).unwrap();
        assert_eq!(
            text,
            "+route 198 248 203.0.113.10\n+route 198 248 203.0.113.11\n-route 198 248 203.0.113.10\n"
        );
        let mut state = GuardState::default();
        text.lines().for_each(|l| state.apply(l));
        assert_eq!(
            state.route_leftovers(),
            BTreeMap::from([((198, 248), BTreeSet::from([a("203.0.113.11")]))])
        );
    }

    #[test]
    fn the_pipe_writes_whole_lines_and_stands_down_when_full() {
        // A duplex stream with room for a little more than one line.
        let (a, mut b) = tokio::io::duplex(40);
        let pipe = GuardPipe::new(a);
        let mut g = pipe.for_manager("eth0", 0x7e);
        g.adding(v("192.0.2.100", 32));
        assert!(pipe.healthy());
        let mut buf = [0u8; 64];
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        let r = tokio::io::AsyncRead::poll_read(Pin::new(&mut b), &mut cx, &mut rb);
        assert!(matches!(r, Poll::Ready(Ok(()))));
        let text = String::from_utf8(rb.filled().to_vec()).unwrap();
        let mut state = GuardState::default();
        state.apply(&text);
        assert_eq!(
            state.leftovers()[&scope()],
            BTreeSet::from([v("192.0.2.100", 32)])
        );
        // Nobody reads now: the second line fits, the third does not.
        g.adding(v("2001:db8::100", 128));
        g.adding(v("2001:db8::101", 128));
        assert!(!pipe.healthy());
    }
}
