//! BGP and routing-table mode bind the VIP on `vip_interface` (usually
//! `lo`) and reach it only through routes. Linux, though, answers an ARP
//! request for *any* local address on *any* interface by default
//! (`arp_ignore=0`): a LAN neighbour that asks for the VIP (one whose
//! subnet contains it) gets an answer from every node, takes one node's MAC
//! and skips the router's ECMP; and with `arp_announce=0` the node may use
//! the VIP as the sender address of its own ARP requests, planting the same
//! mapping in its neighbours' caches. Measured in namespaces: with the
//! defaults `arping` for a VIP on `lo` is answered; with
//! `arp_ignore=1` on the asking interface it is not.
//!
//! So, as LVS direct routing has always required, vipd raises the node's
//! other IPv4 interfaces to `arp_ignore=1` (answer only for addresses of
//! the receiving interface) and `arp_announce=2` (use the outgoing
//! interface's own address as ARP sender). Only interfaces that carry an
//! IPv4 subnet address are touched (pod veths without one are not), never
//! `lo` or the VIP's interface, never lowered, never restored (harmless
//! for every other address, and a restart would only raise them again).
//! Through netlink, since `/proc/sys` is read-only in containers.
//! `--routed-arp-ignore=false` leaves the node alone.

use std::net::IpAddr;

use tracing::{info, warn};
use vipd_vip::{ArpConf, Netlink};

/// What vipd wants at least on those interfaces.
const WANT: ArpConf = ArpConf {
    arp_ignore: 1,
    arp_announce: 2,
};

/// Raises the ARP settings of every IPv4 interface with a subnet address
/// except `lo` and the VIPs' interfaces (`vip_interfaces`); returns the
/// interfaces changed. Errors are logged, never fatal: the routes still
/// work, the ARP leak stays.
pub(crate) async fn quiet(vip_interfaces: &[&str]) -> Vec<String> {
    let nl = match Netlink::new() {
        Ok(nl) => nl,
        Err(e) => {
            warn!(error = %e, "cannot open netlink to set arp_ignore; the kernel may answer ARP for the VIP");
            return Vec::new();
        }
    };
    let (links, addrs) = match (nl.links_with_arp().await, nl.all_addresses().await) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "cannot list interfaces to set arp_ignore; the kernel may answer ARP for the VIP");
            return Vec::new();
        }
    };
    let mut changed = Vec::new();
    for (link, conf) in links {
        let Some(conf) = conf else { continue };
        if link.name == "lo" || vip_interfaces.contains(&link.name.as_str()) {
            continue;
        }
        let has_subnet = addrs.iter().any(|(i, a)| {
            *i == link.ifindex && matches!(a.addr, IpAddr::V4(_)) && a.prefix_len < 32
        });
        if !has_subnet
            || (conf.arp_ignore >= WANT.arp_ignore && conf.arp_announce >= WANT.arp_announce)
        {
            continue;
        }
        let raise = ArpConf {
            arp_ignore: conf.arp_ignore.max(WANT.arp_ignore),
            arp_announce: conf.arp_announce.max(WANT.arp_announce),
        };
        match nl.raise_arp_conf(link.ifindex, raise).await {
            Ok(()) => {
                info!(
                    interface = %link.name,
                    arp_ignore = raise.arp_ignore, arp_announce = raise.arp_announce,
                    "raised so the kernel neither answers ARP for the VIPs nor sends ARP from them (--routed-arp-ignore)"
                );
                changed.push(link.name);
            }
            Err(e) => {
                warn!(interface = %link.name, error = %e, "cannot set arp_ignore/arp_announce; the kernel may answer ARP for the VIP here")
            }
        }
    }
    changed
}
