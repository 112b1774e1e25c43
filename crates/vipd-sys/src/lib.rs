//! Every `unsafe` block of vipd, in one small crate (docs/ARCHITECTURE.md,
//! STYLE.md lesson 7): each module wraps one kind of system call behind a
//! safe function, and each block carries a `// SAFETY:` comment. The rest
//! of the workspace denies `unsafe_code`.
//!
//! - [`packet`]: raw `AF_PACKET` sockets (gratuitous ARP, unsolicited NA).
//! - [`process`]: one-time process settings (`mallopt`, capabilities).
//! - [`tcp`]: TCP MD5 signatures (RFC 2385) for BGP sessions.

#![allow(unsafe_code)]

pub mod packet;
pub mod process;
pub mod tcp;
