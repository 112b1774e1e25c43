//! What the BGP and routing-table tests share: the node address plan
//! (n1 = 192.0.2.11, …) and the root + FRR precondition.

use std::net::{IpAddr, Ipv4Addr};

use netlab::router::RouterKind;

/// Parses a literal address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Node `i`'s address (1-based: n1 = 192.0.2.11).
pub fn node_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + u8::try_from(i).unwrap()))
}

/// Root and FRR present; otherwise says why the test is skipped.
pub fn have_frr() -> bool {
    if !netlab::is_root() {
        eprintln!("SKIPPED: this test needs root (network namespaces); run as root to execute it");
        return false;
    }
    if !RouterKind::Frr.installed() {
        eprintln!("SKIPPED: FRR is not installed (scripts/install-deps.sh installs it)");
        return false;
    }
    true
}
