//! Who holds an address, and when: [`AddrWatcher`] records, per host, the
//! intervals during which the host could answer for a given address, and
//! [`HoldingLog`] computes exactly how long two or more hosts did so at once.
//! [`MultiAddrWatcher`] does the same for many addresses (Services mode) with
//! the same single monitor process.
//!
//! ## How it watches
//!
//! One `ip -o monitor address link all-nsid` process runs in the **switch**
//! namespace. Creating the veth pairs gave every host namespace an nsid
//! there, so this single netlink socket receives the address and link events
//! of all hosts in the order the kernels emitted them (`ip-monitor(8)`,
//! `all-nsid`; NETLAB-TIPS: monitor address is a cheap, exact way to see who
//! holds a VIP). One queue means a removal on one host that causally
//! precedes an addition on another (through etcd) is always seen first: no
//! false overlap from reader-thread scheduling, which per-host pollers or
//! per-host monitors could produce.
//!
//! A host *holds* the address while the address is on its interface **and**
//! the interface is up with carrier: a crashed node (SIGKILL + link down)
//! keeps its IPv4 address configured but cannot answer, and must not count
//! as a second holder. An address flagged `dadfailed` does not count either.
//!
//! | file | concept |
//! |------|---------|
//! | `log` | [`HoldingLog`]: intervals, transitions, two-holder time |
//! | `state` | parsing monitor lines; applying events and dumps (pure) |
//! | `monitor` | the `ip monitor` process, its reader, the namespace reads |
//! | `watcher` | [`AddrWatcher`], [`MultiAddrWatcher`], [`dump_addresses`] |

mod log;
mod monitor;
mod state;
mod watcher;

pub use log::{HoldingLog, Interval, Transition};
pub use watcher::{dump_addresses, AddrWatcher, MultiAddrWatcher};
