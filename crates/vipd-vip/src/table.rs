//! Routing-table mode's kernel sink (SPEC §5b, issue 14 item 5): host
//! routes for VIPs written into one kernel routing table, tagged with one
//! route protocol, for a host routing daemon (BIRD, FRR) to pick up and
//! export.
//!
//! # What kube-vip does (and vipd with it)
//!
//! Read from kube-vip's sources (`kube-vip/kube-vip`):
//!
//! - **Route shape** (`pkg/vip/address.go`, `PrepareRoute`): destination
//!   the VIP with its mask (`vip_subnet`, /32 or /128 by default), device
//!   `vip_interface` (`LinkIndex`), table `vip_routingtableid` (198),
//!   type `vip_routingtabletype` (1, unicast), protocol
//!   `vip_routingprotocol` (248), scope universe — link for `RTN_LOCAL`.
//!   No gateway, no metric. vipd writes the same, but always as a host
//!   route (/32, /128): the kernel refuses an IPv4 destination with host
//!   bits under a shorter mask, and a routing daemon exporting the VIP
//!   wants the host route anyway. For the error types (blackhole,
//!   unreachable, prohibit, throw) the kernel refuses a device, so none
//!   is given for them (kube-vip always gives one, and fails).
//! - **Add** (`AddRoute`): `netlink.RouteAdd` (`NLM_F_CREATE|NLM_F_EXCL`);
//!   kube-vip's callers ignore `EEXIST` and `ESRCH`
//!   (`pkg/cluster/service.go`). Here `EEXIST` is success only when the
//!   route there is ours (our protocol); another protocol's route for the
//!   same destination is [`TableError::Occupied`] and left alone.
//! - **Delete** (`DeleteRoute`): `netlink.RouteDel` of the same route.
//!   vipd deletes by table, destination and *protocol*, so it can never
//!   delete another daemon's route for the same destination; a route that
//!   is already gone (`ESRCH`) is success.
//! - **List / clean** (`ListRoutes`, `RouteListFiltered` with
//!   `RT_FILTER_TABLE|RT_FILTER_PROTOCOL`; `cleanRoutes` in
//!   `pkg/manager/worker/table.go`, formerly `pkg/manager/manager_table.go`):
//!   with `vip_cleanroutingtable`, every route of the protocol in the
//!   table that no current VIP or Service wants is deleted. kube-vip runs
//!   it 10 s after start ("we assume that after 10s all services should be
//!   configured"); vipd cleans before it writes anything instead (see the
//!   daemon's `routing/table.rs`), so there is no window in which a stale
//!   route is exported next to a fresh one. Other protocols' routes in
//!   the table are never touched.
//! - **The address is bound too**: kube-vip's control plane in this mode
//!   (`vipService` in `pkg/cluster/service.go`) adds the VIP to
//!   `vip_interface` and then the route while the local API server
//!   answers, and deletes the route and then the address when it stops
//!   answering or on SIGTERM; Services (`StartLoadBalancerService`) add
//!   route and address likewise and delete the route on stop unless
//!   another Service still references it. This module only writes
//!   routes; the address is `VipManager`'s job.
//!
//! # Ownership
//!
//! The route protocol is the tag: a [`RouteTable`] calls ours exactly the
//! routes of its [`TableSpec::table`] with its [`TableSpec::protocol`],
//! the same rule kube-vip's cleaning uses. Which of those to keep is the
//! caller's decision ([`RouteTable::clean`] removes them all).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use futures::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::Handle;

use crate::netlink::AbortOnDrop;

/// Upper bound for one netlink request (as [`crate::REQUEST_TIMEOUT`]).
const REQUEST_TIMEOUT: Duration = crate::netlink::REQUEST_TIMEOUT;

/// `RT_TABLE_COMPAT`: the header's table byte for tables above 255, whose
/// real ID travels in `RTA_TABLE` (linux/rtnetlink.h).
const RT_TABLE_COMPAT: u8 = 252;

/// `RTN_LOCAL`: routed with link scope, as kube-vip's `PrepareRoute`.
const RTN_LOCAL: u8 = 2;

/// Where and how routes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// Kernel routing table (`RTA_TABLE`), not 0 (`RT_TABLE_UNSPEC`).
    pub table: u32,
    /// Route protocol (`rtm_protocol`): the tag that makes a route ours.
    /// Not 0 (`RTPROT_UNSPEC`, which the kernel would not filter on).
    pub protocol: u8,
    /// Route type (`rtm_type`, an `RTN_*` value 1..=11).
    pub route_type: u8,
}

impl TableSpec {
    /// Whether the kernel takes a device for this route type: not for the
    /// error types (blackhole, unreachable, prohibit, throw), whose
    /// routes have no next hop (`fib_create_info`: "Gateway, device and
    /// multipath can not be specified for this route type").
    pub fn has_device(&self) -> bool {
        !(6..=9).contains(&self.route_type)
    }
}

/// One route of ours, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRoute {
    /// Destination (the unspecified address for a default route).
    pub dst: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Output device, when the route has one.
    pub ifindex: Option<u32>,
    /// Route type (`RTN_*`).
    pub route_type: u8,
}

impl TableRoute {
    /// A host route (/32 or /128): what [`RouteTable::add`] writes.
    pub fn is_host(&self) -> bool {
        self.prefix_len == host_len(self.dst)
    }
}

impl std::fmt::Display for TableRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.dst, self.prefix_len)?;
        if let Some(i) = self.ifindex {
            write!(f, " dev #{i}")?;
        }
        Ok(())
    }
}

/// Errors of [`RouteTable`].
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The specification names table 0 or protocol 0.
    #[error("invalid routing-table specification: {0}")]
    InvalidSpec(&'static str),
    /// The kernel rejected a request.
    #[error("{op}: {source}")]
    Request {
        /// What was attempted, e.g. `add route 192.0.2.10/32 to table 198`.
        op: String,
        /// The error rtnetlink reported.
        #[source]
        source: rtnetlink::Error,
    },
    /// A request got no answer within the request timeout.
    #[error("{op}: no answer from the kernel within {REQUEST_TIMEOUT:?}")]
    Timeout {
        /// What was attempted.
        op: String,
    },
    /// Another protocol's route for this destination is in the table: it
    /// is not ours to replace or remove.
    #[error(
        "table {table} already has a route for {dst} with protocol {protocol} (not ours: {ours})"
    )]
    Occupied {
        /// The destination.
        dst: IpAddr,
        /// The table.
        table: u32,
        /// The other route's protocol.
        protocol: u8,
        /// Our protocol.
        ours: u8,
    },
}

impl TableError {
    /// The kernel errno behind this error, if any (positive, e.g. `libc::EEXIST`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Request {
                source: rtnetlink::Error::NetlinkError(m),
                ..
            } => m.code.map(|c| -c.get()),
            _ => None,
        }
    }
}

fn host_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

async fn bounded<T>(
    op: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, rtnetlink::Error>>,
) -> Result<T, TableError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(TableError::Request { op: op(), source }),
        Err(_) => Err(TableError::Timeout { op: op() }),
    }
}

/// A route message for `dst/prefix_len` in `spec`'s table with `spec`'s
/// protocol. `Some(ifindex)` and a type adds the fields of a full route
/// (add); without them the message matches any of our routes to that
/// destination (delete: the kernel compares only the fields given, and
/// scope `RT_SCOPE_NOWHERE` means "any scope", as `ip route del`).
fn message(
    spec: &TableSpec,
    dst: IpAddr,
    prefix_len: u8,
    full: Option<Option<u32>>,
) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family(dst);
    m.header.destination_prefix_length = prefix_len;
    m.header.table = u8::try_from(spec.table)
        .ok()
        .filter(|t| *t < RT_TABLE_COMPAT)
        .unwrap_or(RT_TABLE_COMPAT);
    m.header.protocol = RouteProtocol::from(spec.protocol);
    m.attributes.push(RouteAttribute::Table(spec.table));
    if prefix_len > 0 {
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    }
    match full {
        Some(ifindex) => {
            m.header.kind = RouteType::from(spec.route_type);
            m.header.scope = if spec.route_type == RTN_LOCAL {
                RouteScope::Link
            } else {
                RouteScope::Universe
            };
            if let Some(i) = ifindex.filter(|_| spec.has_device()) {
                m.attributes.push(RouteAttribute::Oif(i));
            }
        }
        None => {
            m.header.kind = RouteType::Unspec;
            m.header.scope = RouteScope::NoWhere;
        }
    }
    m
}

/// Parses a dumped route: `(table, protocol, route)`.
fn parse(m: &RouteMessage) -> Option<(u32, u8, TableRoute)> {
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut ifindex = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => dst = Some(IpAddr::V4(*v4)),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => dst = Some(IpAddr::V6(*v6)),
            RouteAttribute::Oif(i) => ifindex = Some(*i),
            _ => {}
        }
    }
    let dst = match (dst, m.header.address_family) {
        (Some(d), _) => d,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    Some((
        table,
        u8::from(m.header.protocol),
        TableRoute {
            dst,
            prefix_len: m.header.destination_prefix_length,
            ifindex,
            route_type: u8::from(m.header.kind),
        },
    ))
}

/// Host routes in one kernel table, tagged with one route protocol.
///
/// Every operation is idempotent: adding a route that is there, removing
/// one that is gone, cleaning an empty table all succeed. Must be created
/// inside a tokio runtime (it spawns the netlink connection task) and
/// works in the network namespace of the thread that creates it.
#[derive(Debug)]
pub struct RouteTable {
    handle: Handle,
    spec: TableSpec,
    _conn: AbortOnDrop,
}

impl RouteTable {
    /// Opens a netlink route socket for `spec`.
    pub fn new(spec: TableSpec) -> Result<Self, TableError> {
        if spec.table == 0 {
            return Err(TableError::InvalidSpec("table 0 is RT_TABLE_UNSPEC"));
        }
        if spec.protocol == 0 {
            return Err(TableError::InvalidSpec(
                "protocol 0 (RTPROT_UNSPEC) cannot tell our routes from others",
            ));
        }
        let (conn, handle, _) = rtnetlink::new_connection().map_err(TableError::Socket)?;
        Ok(Self {
            handle,
            spec,
            _conn: AbortOnDrop(tokio::spawn(conn)),
        })
    }

    /// The table, protocol and type this sink writes.
    pub fn spec(&self) -> TableSpec {
        self.spec
    }

    /// Writes the host route for `addr` (device `ifindex`, unless the
    /// route type has none). A route of ours for `addr` already there is
    /// success; another protocol's is [`TableError::Occupied`].
    pub async fn add(&self, addr: IpAddr, ifindex: u32) -> Result<(), TableError> {
        let msg = message(&self.spec, addr, host_len(addr), Some(Some(ifindex)));
        let op = || {
            format!(
                "add route {addr}/{} to table {} (proto {})",
                host_len(addr),
                self.spec.table,
                self.spec.protocol
            )
        };
        match bounded(op, self.handle.route().add(msg).execute()).await {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == Some(libc::EEXIST) => self.check_ours(addr).await,
            Err(e) => Err(e),
        }
    }

    /// After `EEXIST`: fine if the route there is ours.
    async fn check_ours(&self, addr: IpAddr) -> Result<(), TableError> {
        let mut other = None;
        for (table, protocol, r) in self.dump(family(addr)).await? {
            if table != self.spec.table || r.dst != addr || !r.is_host() {
                continue;
            }
            if protocol == self.spec.protocol {
                return Ok(());
            }
            other = Some(protocol);
        }
        Err(TableError::Occupied {
            dst: addr,
            table: self.spec.table,
            // EEXIST without a route in the dump: a race with its removal;
            // report it as occupied by nobody (0), the caller retries.
            protocol: other.unwrap_or(0),
            ours: self.spec.protocol,
        })
    }

    /// Removes our host route for `addr`; a route that is not there (or
    /// is another protocol's) is left alone and that is success.
    pub async fn remove(&self, addr: IpAddr) -> Result<(), TableError> {
        self.delete(addr, host_len(addr)).await
    }

    async fn delete(&self, dst: IpAddr, prefix_len: u8) -> Result<(), TableError> {
        let msg = message(&self.spec, dst, prefix_len, None);
        let op = || {
            format!(
                "delete route {dst}/{prefix_len} from table {} (proto {})",
                self.spec.table, self.spec.protocol
            )
        };
        match bounded(op, self.handle.route().del(msg).execute()).await {
            Err(e) if matches!(e.errno(), Some(libc::ESRCH | libc::ENOENT)) => Ok(()),
            other => other,
        }
    }

    async fn dump(&self, family: AddressFamily) -> Result<Vec<(u32, u8, TableRoute)>, TableError> {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        // Without NETLINK_GET_STRICT_CHK the kernel ignores the header's
        // filters and dumps every table: filter here.
        let req = self.handle.route().get(m).execute();
        let all: Vec<RouteMessage> =
            bounded(|| format!("dump {family:?} routes"), req.try_collect()).await?;
        Ok(all.iter().filter_map(parse).collect())
    }

    /// Every route in the table with our protocol, IPv4 and IPv6, in
    /// address order.
    pub async fn list(&self) -> Result<Vec<TableRoute>, TableError> {
        let mut out = Vec::new();
        for f in [AddressFamily::Inet, AddressFamily::Inet6] {
            out.extend(
                self.dump(f)
                    .await?
                    .into_iter()
                    .filter(|(t, p, _)| *t == self.spec.table && *p == self.spec.protocol)
                    .map(|(_, _, r)| r),
            );
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Removes every route of our protocol from the table (kube-vip's
    /// `vip_cleanroutingtable`), host routes or not; other protocols'
    /// routes stay. Returns what was removed.
    pub async fn clean(&self) -> Result<Vec<TableRoute>, TableError> {
        let routes = self.list().await?;
        for r in &routes {
            self.delete(r.dst, r.prefix_len).await?;
        }
        Ok(routes)
    }
}

type Unsolicited = futures::channel::mpsc::UnboundedReceiver<(
    netlink_packet_core::NetlinkMessage<netlink_packet_route::RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// Wakes on every change of a route in one table (`RTNLGRP_IPV4_ROUTE`,
/// `RTNLGRP_IPV6_ROUTE`), so a route of ours deleted by hand is written
/// again at once instead of at the next reconcile period (R3).
///
/// Never fails (R2): a lost subscription is re-made after a back-off, and
/// anything that may have hidden a change (overrun, error, a fresh
/// subscription) also wakes the caller, who re-reads the table.
/// [`RouteMonitor::changed`] is cancel-safe.
#[derive(Debug)]
pub struct RouteMonitor {
    table: u32,
    rx: Option<Unsolicited>,
    conn: Option<AbortOnDrop>,
    backoff: vipd_backoff::Backoff,
    retry_at: Option<tokio::time::Instant>,
}

impl RouteMonitor {
    /// A monitor of `table`, subscribing lazily on the first
    /// [`RouteMonitor::changed`], in the namespace of the polling thread.
    pub fn new(table: u32) -> Self {
        Self {
            table,
            rx: None,
            conn: None,
            backoff: vipd_backoff::Backoff::new(
                Duration::from_millis(100),
                Duration::from_secs(10),
            ),
            retry_at: None,
        }
    }

    /// Returns when a route in the table may have changed.
    pub async fn changed(&mut self) {
        use futures::StreamExt;
        use netlink_packet_core::NetlinkPayload;
        use netlink_packet_route::RouteNetlinkMessage;
        loop {
            let Some(rx) = self.rx.as_mut() else {
                if let Some(at) = self.retry_at {
                    tokio::time::sleep_until(at).await;
                }
                match rtnetlink::new_multicast_connection(&[
                    rtnetlink::MulticastGroup::Ipv4Route,
                    rtnetlink::MulticastGroup::Ipv6Route,
                ]) {
                    Ok((conn, _, rx)) => {
                        self.conn = Some(AbortOnDrop(tokio::spawn(conn)));
                        self.rx = Some(rx);
                        self.retry_at = None;
                        // Changes before the subscription are unseen.
                        return;
                    }
                    Err(e) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(error = %e, ?delay, "route monitor: cannot subscribe, retrying");
                        self.retry_at = Some(tokio::time::Instant::now() + delay);
                        continue;
                    }
                }
            };
            match rx.next().await {
                Some((msg, _)) => match msg.payload {
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m),
                    ) => {
                        self.backoff.reset();
                        if parse(&m).is_some_and(|(t, _, _)| t == self.table) {
                            return;
                        }
                    }
                    NetlinkPayload::Overrun(_) | NetlinkPayload::Error(_) => {
                        // As the address monitor: a fresh socket, then re-read.
                        self.rx = None;
                        self.conn = None;
                        return;
                    }
                    _ => {}
                },
                None => {
                    self.rx = None;
                    self.conn = None;
                    self.retry_at = Some(tokio::time::Instant::now() + self.backoff.next_delay());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: TableSpec = TableSpec {
        table: 198,
        protocol: 248,
        route_type: 1,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn add_message_is_kube_vips_route_shape() {
        let m = message(&SPEC, ip("192.0.2.10"), 32, Some(Some(3)));
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert_eq!(m.header.destination_prefix_length, 32);
        assert_eq!(m.header.table, 198);
        assert_eq!(u8::from(m.header.protocol), 248);
        assert_eq!(m.header.kind, RouteType::Unicast);
        assert_eq!(m.header.scope, RouteScope::Universe);
        assert!(m.attributes.contains(&RouteAttribute::Table(198)));
        assert!(m.attributes.contains(&RouteAttribute::Oif(3)));
        let (t, p, r) = parse(&m).expect("parsed");
        assert_eq!((t, p), (198, 248));
        assert_eq!(r.dst, ip("192.0.2.10"));
        assert!(r.is_host());
    }

    #[test]
    fn local_routes_have_link_scope_and_error_types_no_device() {
        let local = TableSpec {
            route_type: 2,
            ..SPEC
        };
        let m = message(&local, ip("2001:db8::10"), 128, Some(Some(3)));
        assert_eq!(m.header.scope, RouteScope::Link);
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        let blackhole = TableSpec {
            route_type: 6,
            ..SPEC
        };
        let m = message(&blackhole, ip("192.0.2.10"), 32, Some(Some(3)));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Oif(_))));
    }

    #[test]
    fn large_tables_travel_in_rta_table_with_the_compat_header() {
        let big = TableSpec {
            table: 1000,
            ..SPEC
        };
        let m = message(&big, ip("192.0.2.10"), 32, None);
        assert_eq!(m.header.table, RT_TABLE_COMPAT);
        assert_eq!(m.header.scope, RouteScope::NoWhere);
        assert_eq!(m.header.kind, RouteType::Unspec);
        assert_eq!(parse(&m).map(|(t, _, _)| t), Some(1000));
    }
}
