//! Network-namespace topology for vipd's tests and lab.
//!
//! Everything here is created inside namespaces this crate makes and is torn
//! down by `Drop` guards, also when a test panics: the host's own namespace,
//! interfaces, routes and firewall are never touched (DEVELOPERS.md, network
//! safety). Addresses used by callers must come from the documentation
//! ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32;
//! [`check_doc_addr`] enforces it for every address this crate configures.
//!
//! Facts this relies on are in `shared/NETLAB-TIPS.md` (bridge inside its own
//! switch namespace, end our processes before deleting a namespace, IPv6
//! `keep_addr_on_down`).

#![forbid(unsafe_code)]

mod ns;
mod topo;

pub use ns::{check_doc_addr, is_root, run, run_ok, unique_prefix, Error, NetNs};
pub use probe::{LabClock, Prober, Responder, Sample};
pub use topo::{Host, Topology, TopologyBuilder};
pub use watch::{AddrWatcher, HoldingLog, MultiAddrWatcher};

/// Skips a root-only test with a clear message when not running as root.
///
/// CI runs as root, so there every namespace test executes.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!(
                "SKIPPED: this test needs root (network namespaces); run as root to execute it"
            );
            return;
        }
    };
}

pub mod etcd;
pub mod probe;
pub mod router;
pub mod watch;
