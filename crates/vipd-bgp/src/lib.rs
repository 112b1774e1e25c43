//! vipd's announce-only BGP-4 speaker (SPEC §5b, issue 14).
//!
//! vipd tells routers which node serves a VIP by announcing host routes
//! (/32, /128) for the addresses the core decided are ours, and
//! withdrawing them the moment they are not. It never installs a route it
//! hears: like `vipd-announce`'s ARP/NDP announcer, this crate is
//! an *announcer* and never decides ownership (docs/ARCHITECTURE.md).
//!
//! - [`packet`]: the messages on the wire (RFC 4271 §4, RFC 4760, RFC
//!   5492, RFC 6793, RFC 8203). Pure functions; decoding never panics.
//! - [`updates`]: packing announcements and withdrawals into UPDATEs.
//! - [`session`]: [`Session`], the sans-IO session state machine (RFC 4271
//!   §8) with its hold, keepalive and connect-retry timers.
//! - [`speaker`]: [`Peer`], the tokio task that owns one router's TCP
//!   connection and runs a session over it.

#![forbid(unsafe_code)] // TCP MD5 goes through vipd-sys

pub mod packet;
pub mod session;
pub mod speaker;
pub mod updates;

pub use packet::{Family, Message, Notification, Prefix};
pub use session::{Action, Config, Input, Negotiated, Reason, Session, State, Status};
pub use speaker::{Md5Key, Peer, PeerStatus, Transport, BGP_PORT};
