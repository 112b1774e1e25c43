//! Kernel access over rtnetlink: link lookup, address dump, tagged add and
//! guarded delete of VIPs, and a self-healing monitor of link and address
//! events.
//!
//! # How vipd recognises its own addresses
//!
//! Every address vipd adds carries `IFA_PROTO` = [`VIPD_ADDR_PROTO`] (0x76,
//! ASCII `v`). `IFA_PROTO` is the "address protocol" attribute added in
//! Linux 5.18 for exactly this purpose (who configured an address); the
//! kernel stores it and echoes it in every dump and notification, for IPv4
//! and IPv6 alike. Values 1–3 are reserved for the kernel itself
//! (`IFAPROT_KERNEL_LO/RA/LL`); iproute2 shows ours as `proto 118`.
//!
//! An IPv4 label (`eth0:vip`) was considered and rejected: labels exist for
//! IPv4 only, must fit in 15 bytes together with the interface name (an
//! `enp129s0f1np1` has no room for a suffix), and silently stop matching
//! when an interface is renamed. A kernel older than 5.18 drops `IFA_PROTO`
//! silently; [`Netlink::add_vip`] detects that by re-reading the address and
//! fails with [`NetlinkError::TagUnsupported`] (after removing the untagged
//! address it just added) instead of leaving an address it could never
//! recognise — and therefore never remove — again.

use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressProtocol,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, MulticastGroup};
use tokio::time::Instant;

use crate::reconcile::{KernelAddr, Vip};
use vipd_backoff::Backoff;

/// `IFA_PROTO` value marking an address as added by vipd (ASCII `v`).
pub const VIPD_ADDR_PROTO: u8 = 0x76;

/// `IFA_PROTO` of Service (LoadBalancer) addresses (0x77, ASCII `w`): a
/// separate tag so a Services-mode manager and a control-plane manager on
/// the same interface (one process or two) never remove each other's
/// addresses as "ours and unwanted".
pub const VIPD_SVC_ADDR_PROTO: u8 = 0x77;

/// Upper bound for one netlink request; the kernel answers in microseconds,
/// so hitting it means the socket is wedged and must be re-opened (R2).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from netlink operations.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink route socket: {0}")]
    Socket(#[source] std::io::Error),
    /// No interface has that name.
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    /// No interface has that index.
    #[error("no interface with index {0}")]
    NoSuchIfindex(u32),
    /// The kernel (or the netlink connection) rejected a request.
    #[error("{op}: {source}")]
    Request {
        /// What was attempted, e.g. `add 192.0.2.10/32 on ifindex 3`.
        op: String,
        /// The error rtnetlink reported.
        #[source]
        source: rtnetlink::Error,
    },
    /// A request got no answer within [`REQUEST_TIMEOUT`].
    #[error("{op}: no answer from the kernel within {REQUEST_TIMEOUT:?}")]
    Timeout {
        /// What was attempted.
        op: String,
    },
    /// Deleting an address vipd did not add was refused (R3).
    #[error("refusing to delete {vip} on ifindex {ifindex}: the address is not tagged as vipd's (IFA_PROTO {VIPD_ADDR_PROTO})")]
    NotOurs {
        /// Interface index.
        ifindex: u32,
        /// The address.
        vip: Vip,
    },
    /// The kernel does not keep `IFA_PROTO` (Linux older than 5.18).
    #[error("the kernel dropped the IFA_PROTO tag of {vip}: Linux >= 5.18 is required to tell vipd's addresses from the node's own")]
    TagUnsupported {
        /// The address that was added and removed again.
        vip: Vip,
    },
}

impl NetlinkError {
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

/// What vipd needs to know about the VIP interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, when it is a 6-byte (Ethernet) one.
    pub mac: Option<[u8; 6]>,
    /// Administratively up (`IFF_UP`).
    pub admin_up: bool,
    /// Operationally up (`IFF_RUNNING`: carrier, RFC 2863 state up or unknown).
    pub oper_up: bool,
}

impl LinkInfo {
    /// Up and running: addresses on it are reachable.
    pub fn usable(&self) -> bool {
        self.admin_up && self.oper_up
    }

    fn from_message(msg: &LinkMessage) -> Self {
        let mut name = String::new();
        let mut mac = None;
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = n.clone(),
                LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                _ => {}
            }
        }
        Self {
            ifindex: msg.header.index,
            name,
            mac,
            admin_up: msg.header.flags.contains(LinkFlags::Up),
            oper_up: msg.header.flags.contains(LinkFlags::Running),
        }
    }
}

/// An interface's own IPv4 ARP settings (`net.ipv4.conf.<if>.arp_ignore`
/// and `arp_announce`); the kernel applies the larger of these and the
/// `all` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArpConf {
    /// `arp_ignore`: 0 answers ARP for any local address on any interface,
    /// 1 only for addresses on the interface the request came in on.
    pub arp_ignore: i32,
    /// `arp_announce`: 0 may use any local address (a VIP on `lo`
    /// included) as the sender of ARP requests, 2 the best address of the
    /// outgoing interface.
    pub arp_announce: i32,
}

/// The IPv4 devconf of a link dump message (`IFLA_AF_SPEC` / `AF_INET`),
/// if the kernel sent one (interfaces without IPv4 have none).
fn arp_conf_of(msg: &LinkMessage) -> Option<ArpConf> {
    use netlink_packet_route::link::{AfSpecInet, AfSpecUnspec};
    msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|s| match s {
            AfSpecUnspec::Inet(inet) => inet.iter().find_map(|i| match i {
                AfSpecInet::DevConf(c) => Some(ArpConf {
                    arp_ignore: c.arp_ignore,
                    arp_announce: c.arp_announce,
                }),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// Parses one address message into its interface index and a [`KernelAddr`].
/// `ours` means tagged with `tag`.
fn parse_addr(msg: &AddressMessage, tag: u8) -> Option<(u32, KernelAddr)> {
    let mut local = None;
    let mut address = None;
    // The header carries only the low 8 flag bits; IFA_FLAGS has all 32.
    let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    let mut proto = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Flags(f) => flags = *f,
            AddressAttribute::Protocol(p) => proto = Some(u8::from(*p)),
            _ => {}
        }
    }
    // IPv4: IFA_LOCAL is the interface's address (IFA_ADDRESS the peer on
    // point-to-point links). IPv6: IFA_ADDRESS, IFA_LOCAL only for peers.
    let addr = match (local, address) {
        (Some(l), _) if l.is_ipv4() => l,
        (_, Some(a)) => a,
        (Some(l), None) => l,
        (None, None) => return None,
    };
    Some((
        msg.header.index,
        KernelAddr {
            addr,
            prefix_len: msg.header.prefix_len,
            ours: proto == Some(tag),
            tentative: flags.contains(AddressFlags::Tentative),
            dad_failed: flags.contains(AddressFlags::Dadfailed),
        },
    ))
}

/// Aborts the spawned netlink connection task when dropped, so a dropped
/// [`Netlink`] or [`Monitor`] never leaves a socket task behind.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A request/response rtnetlink connection.
///
/// Must be created inside a tokio runtime (it spawns the connection task).
#[derive(Debug)]
pub struct Netlink {
    handle: Handle,
    /// The `IFA_PROTO` this connection adds with and calls ours.
    tag: u8,
    _conn: AbortOnDrop,
}

async fn with_timeout<T>(
    op: impl FnOnce() -> String,
    fut: impl std::future::Future<Output = Result<T, rtnetlink::Error>>,
) -> Result<T, NetlinkError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(NetlinkError::Request { op: op(), source }),
        Err(_) => Err(NetlinkError::Timeout { op: op() }),
    }
}

impl Netlink {
    /// Opens a netlink route socket in the calling thread's network namespace.
    pub fn new() -> Result<Self, NetlinkError> {
        Self::with_tag(VIPD_ADDR_PROTO)
    }

    /// Like [`Netlink::new`], but adds addresses with `IFA_PROTO` = `tag`
    /// and treats only those as ours (e.g. [`VIPD_SVC_ADDR_PROTO`]).
    pub fn with_tag(tag: u8) -> Result<Self, NetlinkError> {
        let (conn, handle, _unsolicited) =
            rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        Ok(Self {
            handle,
            tag,
            _conn: AbortOnDrop(tokio::spawn(conn)),
        })
    }

    /// Looks an interface up by name.
    pub async fn link_by_name(&self, name: &str) -> Result<LinkInfo, NetlinkError> {
        let mut req = std::pin::pin!(self.handle.link().get().match_name(name).execute());
        let res = with_timeout(|| format!("look up interface {name}"), req.try_next()).await;
        match res {
            Ok(Some(msg)) => Ok(LinkInfo::from_message(&msg)),
            Ok(None) => Err(NetlinkError::NoSuchInterface(name.to_string())),
            Err(e) if e.errno() == Some(libc::ENODEV) => {
                Err(NetlinkError::NoSuchInterface(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// Looks an interface up by index.
    pub async fn link_by_index(&self, ifindex: u32) -> Result<LinkInfo, NetlinkError> {
        let mut req = std::pin::pin!(self.handle.link().get().match_index(ifindex).execute());
        let res = with_timeout(|| format!("look up ifindex {ifindex}"), req.try_next()).await;
        match res {
            Ok(Some(msg)) => Ok(LinkInfo::from_message(&msg)),
            Ok(None) => Err(NetlinkError::NoSuchIfindex(ifindex)),
            Err(e) if e.errno() == Some(libc::ENODEV) => Err(NetlinkError::NoSuchIfindex(ifindex)),
            Err(e) => Err(e),
        }
    }

    /// Every interface with its own IPv4 ARP settings (`None`: no IPv4).
    pub async fn links_with_arp(&self) -> Result<Vec<(LinkInfo, Option<ArpConf>)>, NetlinkError> {
        let req = self.handle.link().get().execute();
        let msgs: Vec<LinkMessage> =
            with_timeout(|| "dump interfaces".to_string(), req.try_collect()).await?;
        Ok(msgs
            .iter()
            .map(|m| (LinkInfo::from_message(m), arp_conf_of(m)))
            .collect())
    }

    /// Raises interface `ifindex`'s own `arp_ignore` / `arp_announce` to
    /// `conf` through netlink (`IFLA_INET_CONF`, CAP_NET_ADMIN), which
    /// works where `/proc/sys` is mounted read-only (containers). Only
    /// non-zero values are sent (the kernel keeps the others), so this
    /// can raise but never lower a setting.
    pub async fn raise_arp_conf(&self, ifindex: u32, conf: ArpConf) -> Result<(), NetlinkError> {
        use netlink_packet_route::link::{AfSpecInet, AfSpecUnspec, InetDevConf};
        let mut c = InetDevConf::default();
        c.arp_ignore = conf.arp_ignore;
        c.arp_announce = conf.arp_announce;
        let msg = rtnetlink::LinkUnspec::new_with_index(ifindex)
            .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                AfSpecInet::DevConfRequest(c),
            ])]))
            .build();
        with_timeout(
            || format!("set arp_ignore/arp_announce on ifindex {ifindex}"),
            self.handle.link().set(msg).execute(),
        )
        .await
    }

    async fn dump_messages(&self) -> Result<Vec<AddressMessage>, NetlinkError> {
        let req = self.handle.address().get().execute();
        with_timeout(|| "dump addresses".to_string(), req.try_collect()).await
    }

    /// Every address of the node (all interfaces), as `(ifindex, address)`.
    pub async fn all_addresses(&self) -> Result<Vec<(u32, KernelAddr)>, NetlinkError> {
        Ok(self
            .dump_messages()
            .await?
            .iter()
            .filter_map(|m| parse_addr(m, self.tag))
            .collect())
    }

    /// The addresses (IPv4 and IPv6) of interface `ifindex`.
    pub async fn addresses(&self, ifindex: u32) -> Result<Vec<KernelAddr>, NetlinkError> {
        Ok(self
            .all_addresses()
            .await?
            .into_iter()
            .filter(|(i, _)| *i == ifindex)
            .map(|(_, a)| a)
            .collect())
    }

    /// Adds `vip` to interface `ifindex`, tagged with [`VIPD_ADDR_PROTO`].
    ///
    /// IPv6 VIPs are added with `IFA_F_NODAD`: the address is usable at
    /// once instead of sitting tentative for the DAD period (RFC 4862
    /// §5.4; duplicates are vipd's own job, SPEC R1/R5). An address that
    /// already exists (`EEXIST`) is success; the caller's next dump tells
    /// whether it is ours.
    pub async fn add_vip(&self, ifindex: u32, vip: Vip) -> Result<(), NetlinkError> {
        let mut req = self.handle.address().add(ifindex, vip.addr, vip.prefix_len);
        let msg = req.message_mut();
        msg.attributes
            .push(AddressAttribute::Protocol(AddressProtocol::from(self.tag)));
        if vip.addr.is_ipv6() {
            msg.header.flags = AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let op = || format!("add {vip} on ifindex {ifindex}");
        match with_timeout(op, req.execute()).await {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => return Ok(()),
            Err(e) => return Err(e),
        }
        // We created it (no EEXIST), so it is ours to check and, if the tag
        // did not stick, ours to remove again.
        let found = self
            .addresses(ifindex)
            .await?
            .into_iter()
            .find(|a| a.addr == vip.addr && a.prefix_len == vip.prefix_len);
        match found {
            Some(a) if !a.ours => {
                self.delete(ifindex, vip).await?;
                Err(NetlinkError::TagUnsupported { vip })
            }
            _ => Ok(()),
        }
    }

    /// Deletes `vip` from interface `ifindex` if it is tagged as ours.
    ///
    /// An address that is already gone is success. An address without
    /// vipd's tag is refused with [`NetlinkError::NotOurs`] (R3: a node's
    /// own IP is never deleted as a VIP).
    pub async fn del_vip(&self, ifindex: u32, vip: Vip) -> Result<(), NetlinkError> {
        let found = self
            .addresses(ifindex)
            .await?
            .into_iter()
            .find(|a| a.addr == vip.addr && a.prefix_len == vip.prefix_len);
        match found {
            None => Ok(()),
            Some(a) if !a.ours => Err(NetlinkError::NotOurs { ifindex, vip }),
            Some(_) => self.delete(ifindex, vip).await,
        }
    }

    async fn delete(&self, ifindex: u32, vip: Vip) -> Result<(), NetlinkError> {
        // A minimal message: the kernel matches on index, prefix length and
        // IFA_LOCAL/IFA_ADDRESS, exactly like `ip addr del`.
        let mut msg = self
            .handle
            .address()
            .add(ifindex, vip.addr, vip.prefix_len)
            .message_mut()
            .clone();
        msg.attributes
            .retain(|a| matches!(a, AddressAttribute::Local(_) | AddressAttribute::Address(_)));
        let op = || format!("delete {vip} on ifindex {ifindex}");
        match with_timeout(op, self.handle.address().del(msg).execute()).await {
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::EADDRNOTAVAIL)) => Ok(()),
            other => other,
        }
    }
}

/// One change reported by [`Monitor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorEvent {
    /// A link was created or changed (flags, name, carrier).
    Link {
        /// Interface index.
        ifindex: u32,
        /// Name as reported.
        name: String,
        /// [`LinkInfo::usable`] after the change.
        up: bool,
    },
    /// A link was deleted.
    LinkRemoved {
        /// Interface index.
        ifindex: u32,
    },
    /// An address was added or changed (e.g. DAD finished).
    AddrAdded {
        /// Interface index.
        ifindex: u32,
        /// The address.
        addr: KernelAddr,
    },
    /// An address was removed.
    AddrRemoved {
        /// Interface index.
        ifindex: u32,
        /// The address.
        addr: KernelAddr,
    },
    /// Events may have been lost (socket overrun `ENOBUFS`, monitor
    /// error or re-subscription): re-read the kernel state.
    Resync,
}

type Unsolicited = UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    rtnetlink::sys::SocketAddr,
)>;

/// A subscription to `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR` and
/// `RTNLGRP_IPV6_IFADDR` that never gives up (R2).
///
/// Any loss of events — overrun, socket error, reconnection — surfaces as
/// [`MonitorEvent::Resync`]; the first event after (re-)subscribing is
/// always `Resync`, since changes made before the subscription are unseen.
/// [`Monitor::next`] is cancel-safe (usable in `tokio::select!`).
#[derive(Debug)]
pub struct Monitor {
    rx: Option<Unsolicited>,
    conn: Option<AbortOnDrop>,
    backoff: Backoff,
    retry_at: Option<Instant>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    /// A monitor that subscribes lazily on the first [`Monitor::next`],
    /// in the namespace of the thread that polls it.
    pub fn new() -> Self {
        Self {
            rx: None,
            conn: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            retry_at: None,
        }
    }

    fn subscribe(&mut self) -> std::io::Result<()> {
        let (conn, _handle, rx) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        self.conn = Some(AbortOnDrop(tokio::spawn(conn)));
        self.rx = Some(rx);
        Ok(())
    }

    /// The next event. Waits as long as needed; never fails.
    pub async fn next(&mut self) -> MonitorEvent {
        loop {
            let Some(rx) = self.rx.as_mut() else {
                if let Some(at) = self.retry_at {
                    tokio::time::sleep_until(at).await;
                }
                match self.subscribe() {
                    Ok(()) => {
                        self.retry_at = None;
                        return MonitorEvent::Resync;
                    }
                    Err(e) => {
                        let delay = self.backoff.next_delay();
                        tracing::warn!(error = %e, ?delay, "netlink monitor: cannot subscribe, retrying");
                        self.retry_at = Some(Instant::now() + delay);
                        continue;
                    }
                }
            };
            match rx.next().await {
                Some((msg, _)) => match msg.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        self.backoff.reset();
                        if let Some(ev) = Self::translate(m) {
                            return ev;
                        }
                    }
                    NetlinkPayload::Overrun(_) => {
                        // A fresh socket, not the old one: after an overrun
                        // the kernel marks the socket congested and drops
                        // every further notification *silently* until its
                        // backlog is read (netlink_overrun reports ENOBUFS
                        // only once). A re-dump taken before that backlog
                        // is drained could miss changes. A new subscription
                        // starts empty, so "Resync, then dump" is complete.
                        tracing::warn!("netlink monitor: socket overrun (ENOBUFS), re-subscribing and resyncing");
                        self.rx = None;
                        self.conn = None;
                        self.retry_at = None;
                        continue;
                    }
                    NetlinkPayload::Error(e) => {
                        tracing::warn!(error = %e, "netlink monitor: error message, resyncing");
                        return MonitorEvent::Resync;
                    }
                    _ => {}
                },
                None => {
                    // The connection task ended (socket error): re-subscribe
                    // after a back-off; the Resync comes with the new socket.
                    let delay = self.backoff.next_delay();
                    tracing::warn!(?delay, "netlink monitor: socket closed, re-subscribing");
                    self.rx = None;
                    self.conn = None;
                    self.retry_at = Some(Instant::now() + delay);
                }
            }
        }
    }

    fn translate(m: RouteNetlinkMessage) -> Option<MonitorEvent> {
        match m {
            RouteNetlinkMessage::NewLink(l) => {
                let info = LinkInfo::from_message(&l);
                Some(MonitorEvent::Link {
                    ifindex: info.ifindex,
                    up: info.usable(),
                    name: info.name,
                })
            }
            RouteNetlinkMessage::DelLink(l) => Some(MonitorEvent::LinkRemoved {
                ifindex: l.header.index,
            }),
            RouteNetlinkMessage::NewAddress(a) => {
                // Monitor events only trigger a re-read; `ours` in them is
                // relative to the control-plane tag and not relied upon.
                parse_addr(&a, VIPD_ADDR_PROTO)
                    .map(|(ifindex, addr)| MonitorEvent::AddrAdded { ifindex, addr })
            }
            RouteNetlinkMessage::DelAddress(a) => parse_addr(&a, VIPD_ADDR_PROTO)
                .map(|(ifindex, addr)| MonitorEvent::AddrRemoved { ifindex, addr }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::AddressFamily;
    use std::net::IpAddr;

    fn msg(family: AddressFamily, attrs: Vec<AddressAttribute>) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = family;
        m.header.prefix_len = 64;
        m.header.index = 7;
        m.attributes = attrs;
        m
    }

    #[test]
    fn parse_recognises_vipd_proto_and_ipv6_flags() {
        let a: IpAddr = "2001:db8::10".parse().unwrap_or(IpAddr::from([0u8; 4]));
        let m = msg(
            AddressFamily::Inet6,
            vec![
                AddressAttribute::Address(a),
                AddressAttribute::Flags(AddressFlags::Dadfailed | AddressFlags::Tentative),
                AddressAttribute::Protocol(AddressProtocol::from(VIPD_ADDR_PROTO)),
            ],
        );
        let (idx, k) = parse_addr(&m, VIPD_ADDR_PROTO).expect("address parsed");
        assert_eq!(idx, 7);
        assert_eq!(k.addr, a);
        assert!(k.ours && k.tentative && k.dad_failed);
    }

    #[test]
    fn parse_treats_other_proto_and_missing_proto_as_foreign() {
        let a = IpAddr::from([192, 0, 2, 1]);
        let peer = IpAddr::from([192, 0, 2, 2]);
        for proto in [
            None,
            Some(AddressProtocol::Loopback),
            Some(AddressProtocol::from(0x77)),
        ] {
            let mut attrs = vec![AddressAttribute::Address(peer), AddressAttribute::Local(a)];
            attrs.extend(proto.map(AddressAttribute::Protocol));
            let (_, k) = parse_addr(&msg(AddressFamily::Inet, attrs), VIPD_ADDR_PROTO)
                .expect("address parsed");
            // IPv4: the local address, not the point-to-point peer.
            assert_eq!(k.addr, a);
            assert!(!k.ours, "proto {proto:?} must not count as vipd's");
        }
    }
}
