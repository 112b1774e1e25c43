//! Telling neighbours where a VIP lives, and noticing when someone else
//! claims it (SPEC R4, R5).
//!
//! - [`packet`]: gratuitous ARP (request and reply forms) and IPv6
//!   unsolicited Neighbour Advertisement frames, and parsers for the claims
//!   we receive. Pure functions, no IO.
//! - [`pacing`]: [`Pacer`], the sans-IO burst schedule of one VIP.
//! - [`budget`]: [`Scheduler`], every VIP's pacer under one sans-IO
//!   frames-per-second cap ([`DEFAULT_MAX_PPS`]), first announcements first.
//! - [`task`]: [`Announcer`], the tokio task that owns one interface's raw
//!   sockets, runs the pacers and reports [`AnnounceEvent`]s.
//!
//! Raw sockets and their `unsafe` blocks live in `vipd_sys::packet`.

#![forbid(unsafe_code)]

pub mod budget;
pub mod pacing;
pub mod packet;
pub mod task;

pub use budget::{Scheduler, TokenBucket, DEFAULT_MAX_PPS};
pub use pacing::{Due, Pacer, Reason, Wave};
pub use packet::{MacAddr, SendKind};
pub use task::{AnnounceEvent, Announcer, AnnouncerConfig, AnnouncerStats, Command};
