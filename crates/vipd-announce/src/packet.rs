//! Frames vipd puts on the wire and the claims it reads back: typed
//! builders and parsers, no IO.
//!
//! Every builder returns a complete Ethernet frame (destination MAC first),
//! ready for an `AF_PACKET`/`SOCK_RAW` socket. The frames are not padded to
//! the 60-byte Ethernet minimum: the NIC driver pads short frames, exactly as
//! it does for the kernel's own 42-byte ARP frames.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// EtherType of ARP (IEEE 802 numbers registry).
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Length of an Ethernet II header.
pub const ETH_HDR_LEN: usize = 14;
/// Length of an Ethernet/IPv4 ARP frame (14-byte header + 28-byte ARP body).
pub const ARP_FRAME_LEN: usize = ETH_HDR_LEN + 28;
/// Length of the ICMPv6 part of our NA: 8-byte header, 16-byte target,
/// 8-byte Target Link-Layer Address option.
pub const NA_ICMP_LEN: usize = 32;
/// Length of an unsolicited NA frame: Ethernet + IPv6 header + ICMPv6.
pub const NA_FRAME_LEN: usize = ETH_HDR_LEN + IPV6_HDR_LEN + NA_ICMP_LEN;

const IPV6_HDR_LEN: usize = 40;
const ARP_OP_REQUEST: u16 = 1;
const ARP_OP_REPLY: u16 = 2;
const ARP_HTYPE_ETHERNET: u16 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// RFC 4861 §4.6.1: option type 2 is the Target Link-Layer Address.
const ND_OPT_TARGET_LLADDR: u8 = 2;
/// RFC 4861 §4.4 flag bits in the first byte after the checksum.
const NA_FLAG_ROUTER: u8 = 0x80;
const NA_FLAG_SOLICITED: u8 = 0x40;
const NA_FLAG_OVERRIDE: u8 = 0x20;
/// RFC 4861 §7.1.2 / §6.1.2: ND messages must arrive with hop limit 255,
/// which proves they were not forwarded by a router.
const ND_HOP_LIMIT: u8 = 255;

/// All-nodes link-local multicast `ff02::1` (RFC 4291 §2.7.1).
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The Ethernet multicast MAC for an IPv6 multicast group:
    /// `33:33` followed by the group's last 32 bits (RFC 2464 §7).
    pub fn ipv6_multicast(group: Ipv6Addr) -> MacAddr {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A MAC address text that is not six `:`-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 02:00:5e:00:00:01")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(err)?;
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

/// The kinds of announcement frames; the names match the metric label values
/// of `vipd_announcements_total{kind}` (see [`SendKind::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendKind {
    /// Gratuitous ARP, request form ([`garp_request`]).
    GarpRequest,
    /// Gratuitous ARP, reply form ([`garp_reply`]).
    GarpReply,
    /// IPv6 unsolicited Neighbour Advertisement ([`unsolicited_na`]).
    UnsolicitedNa,
}

impl SendKind {
    /// The metric label value: `garp_request`, `garp_reply` or `unsolicited_na`.
    pub fn label(self) -> &'static str {
        match self {
            SendKind::GarpRequest => "garp_request",
            SendKind::GarpReply => "garp_reply",
            SendKind::UnsolicitedNa => "unsolicited_na",
        }
    }
}

fn put_eth(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

fn arp_frame(op: u16, our_mac: MacAddr, vip: Ipv4Addr, target_mac: MacAddr) -> [u8; ARP_FRAME_LEN] {
    let mut f = [0u8; ARP_FRAME_LEN];
    put_eth(&mut f, MacAddr::BROADCAST, our_mac, ETHERTYPE_ARP);
    let a = &mut f[ETH_HDR_LEN..];
    a[0..2].copy_from_slice(&ARP_HTYPE_ETHERNET.to_be_bytes());
    a[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
    a[4] = 6; // hardware address length
    a[5] = 4; // protocol address length
    a[6..8].copy_from_slice(&op.to_be_bytes());
    a[8..14].copy_from_slice(&our_mac.0);
    a[14..18].copy_from_slice(&vip.octets());
    a[18..24].copy_from_slice(&target_mac.0);
    a[24..28].copy_from_slice(&vip.octets());
    f
}

/// Gratuitous ARP, request form: an "ARP Announcement" (RFC 5227 §2.3):
/// op 1, sender = target protocol address = the VIP, sender hardware address
/// = our MAC, target hardware address zero ("ignored and SHOULD be set to all
/// zeroes"), broadcast to `ff:ff:ff:ff:ff:ff`.
pub fn garp_request(our_mac: MacAddr, vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    arp_frame(ARP_OP_REQUEST, our_mac, vip, MacAddr::ZERO)
}

/// Gratuitous ARP, reply form: op 2, sender = target protocol address = the
/// VIP, broadcast, and the target hardware address = our MAC.
///
/// Why our MAC and not zero or broadcast: RFC 5944 §4.6 (unchanged since
/// RFC 2002) says a gratuitous ARP Reply sets the Target Hardware Address to
/// the link-layer address the cache entry should be updated to; iputils
/// `arping -A` does the same, and Linux's `arp_is_garp()` only treats a reply
/// as gratuitous (overriding `locktime`) when target hw == sender hw.
/// RFC 5227 §3 explains why the request form is the primary one; we send
/// both because some routers and switches only learn from replies.
pub fn garp_reply(our_mac: MacAddr, vip: Ipv4Addr) -> [u8; ARP_FRAME_LEN] {
    arp_frame(ARP_OP_REPLY, our_mac, vip, our_mac)
}

/// Internet checksum (RFC 1071) of an ICMPv6 message over the IPv6
/// pseudo-header (RFC 8200 §8.1). `icmp` must have its checksum field zero.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // Upper-layer length (32 bits) and next header (zero-padded to 32 bits).
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, IPPROTO_ICMPV6]);
    add(icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // `sum` now fits in 16 bits.
    !(sum as u16)
}

/// IPv6 unsolicited Neighbour Advertisement (RFC 4861 §4.4, §7.2.6) for
/// `target`, sent from `src` (normally the VIP itself) to all-nodes
/// `ff02::1` (Ethernet `33:33:00:00:00:01`), hop limit 255.
///
/// Flags: Override=1 so neighbours replace the cached link-layer address
/// (§7.2.5), Solicited=0 (nobody asked), Router=0 (a VIP is a host address;
/// setting it would make neighbours treat us as a router, §7.2.5). The Target
/// Link-Layer Address option carries our MAC: §7.2.6 requires it on
/// unsolicited advertisements.
pub fn unsolicited_na(our_mac: MacAddr, src: Ipv6Addr, target: Ipv6Addr) -> [u8; NA_FRAME_LEN] {
    let mut f = [0u8; NA_FRAME_LEN];
    put_eth(
        &mut f,
        MacAddr::ipv6_multicast(ALL_NODES),
        our_mac,
        ETHERTYPE_IPV6,
    );
    let ip = &mut f[ETH_HDR_LEN..ETH_HDR_LEN + IPV6_HDR_LEN];
    ip[0] = 0x60; // version 6, traffic class 0, flow label 0
    ip[4..6].copy_from_slice(&(NA_ICMP_LEN as u16).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = ND_HOP_LIMIT;
    ip[8..24].copy_from_slice(&src.octets());
    ip[24..40].copy_from_slice(&ALL_NODES.octets());
    let icmp = &mut f[ETH_HDR_LEN + IPV6_HDR_LEN..];
    icmp[0] = ICMPV6_NEIGHBOR_ADVERTISEMENT;
    icmp[1] = 0; // code
    icmp[4] = NA_FLAG_OVERRIDE;
    icmp[8..24].copy_from_slice(&target.octets());
    icmp[24] = ND_OPT_TARGET_LLADDR;
    icmp[25] = 1; // option length in units of 8 octets
    icmp[26..32].copy_from_slice(&our_mac.0);
    let sum = icmpv6_checksum(src, ALL_NODES, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The ARP operation of a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    /// op 1.
    Request,
    /// op 2.
    Reply,
    /// Anything else (RARP, InARP, ...).
    Other(u16),
}

/// An Ethernet/IPv4 ARP frame as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFrame {
    /// The operation.
    pub op: ArpOp,
    /// Ethernet source address.
    pub eth_src: MacAddr,
    /// ARP sender hardware address: what neighbours will cache for `sender_ip`.
    pub sender_mac: MacAddr,
    /// ARP sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// ARP target hardware address.
    pub target_mac: MacAddr,
    /// ARP target protocol address.
    pub target_ip: Ipv4Addr,
}

fn mac_at(b: &[u8], at: usize) -> Option<MacAddr> {
    let s: [u8; 6] = b.get(at..at + 6)?.try_into().ok()?;
    Some(MacAddr(s))
}

fn v4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(s))
}

fn v6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// Parses an Ethernet frame carrying Ethernet/IPv4 ARP (any operation).
/// Returns `None` for anything else or a truncated frame.
pub fn parse_arp(frame: &[u8]) -> Option<ArpFrame> {
    if u16_at(frame, 12)? != ETHERTYPE_ARP {
        return None;
    }
    let a = frame.get(ETH_HDR_LEN..ARP_FRAME_LEN)?;
    if u16_at(a, 0)? != ARP_HTYPE_ETHERNET || u16_at(a, 2)? != 0x0800 || a[4] != 6 || a[5] != 4 {
        return None;
    }
    let op = match u16_at(a, 6)? {
        ARP_OP_REQUEST => ArpOp::Request,
        ARP_OP_REPLY => ArpOp::Reply,
        other => ArpOp::Other(other),
    };
    Some(ArpFrame {
        op,
        eth_src: mac_at(frame, 6)?,
        sender_mac: mac_at(a, 8)?,
        sender_ip: v4_at(a, 14)?,
        target_mac: mac_at(a, 18)?,
        target_ip: v4_at(a, 24)?,
    })
}

/// A received Neighbour Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NaFrame {
    /// Ethernet source address.
    pub eth_src: MacAddr,
    /// IPv6 source address.
    pub src: Ipv6Addr,
    /// The advertised target address.
    pub target: Ipv6Addr,
    /// The Target Link-Layer Address option, if present.
    pub tlla: Option<MacAddr>,
    /// Router flag.
    pub router: bool,
    /// Solicited flag.
    pub solicited: bool,
    /// Override flag.
    pub override_: bool,
}

impl NaFrame {
    /// The MAC this advertisement asks neighbours to use for `target`: the
    /// TLLA option when present, else the Ethernet source (RFC 4861 §7.2.5
    /// only updates caches from the option; the Ethernet source is the best
    /// evidence of who sent it otherwise).
    pub fn claimed_mac(&self) -> MacAddr {
        self.tlla.unwrap_or(self.eth_src)
    }
}

/// Parses an Ethernet frame carrying an ICMPv6 Neighbour Advertisement
/// directly after the IPv6 header (no extension headers, as RFC 4861 messages
/// are sent). Applies RFC 4861 §7.1.2 validity checks that matter for
/// trusting it as a claim: hop limit 255, code 0, ICMP length ≥ 24, a correct
/// checksum and no zero-length option. Returns `None` otherwise.
pub fn parse_na(frame: &[u8]) -> Option<NaFrame> {
    if u16_at(frame, 12)? != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = frame.get(ETH_HDR_LEN..ETH_HDR_LEN + IPV6_HDR_LEN)?;
    if ip[0] >> 4 != 6 || ip[6] != IPPROTO_ICMPV6 || ip[7] != ND_HOP_LIMIT {
        return None;
    }
    let payload_len = usize::from(u16_at(ip, 4)?);
    let icmp_start = ETH_HDR_LEN + IPV6_HDR_LEN;
    // Ethernet padding may follow the packet; trust the IPv6 payload length.
    let icmp = frame.get(icmp_start..icmp_start + payload_len)?;
    if icmp.len() < 24 || icmp[0] != ICMPV6_NEIGHBOR_ADVERTISEMENT || icmp[1] != 0 {
        return None;
    }
    let src = v6_at(ip, 8)?;
    let dst = v6_at(ip, 24)?;
    // The checksum over the whole message including its own field sums to 0,
    // so computing it afresh yields 0 when the message is intact.
    if icmpv6_checksum(src, dst, icmp) != 0 {
        return None;
    }
    let mut tlla = None;
    let mut opts = &icmp[24..];
    while opts.len() >= 2 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None; // §7.1.2: options with length 0 invalidate the message
        }
        if opts[0] == ND_OPT_TARGET_LLADDR && len >= 8 {
            tlla = mac_at(opts, 2);
        }
        opts = &opts[len..];
    }
    Some(NaFrame {
        eth_src: mac_at(frame, 6)?,
        src,
        target: v6_at(icmp, 8)?,
        tlla,
        router: icmp[4] & NA_FLAG_ROUTER != 0,
        solicited: icmp[4] & NA_FLAG_SOLICITED != 0,
        override_: icmp[4] & NA_FLAG_OVERRIDE != 0,
    })
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
