//! BFD for vipd's BGP peers: RFC 5880 asynchronous mode over RFC 5881
//! single-hop UDP, IPv4 and IPv6.
//!
//! The BGP speaker runs one BFD session per peer and tears its BGP session
//! down the moment BFD leaves Up. BFD is bidirectional, so the router also
//! notices a dead node within its own rx interval × detect multiplier
//! (kube-vip's defaults: 300 ms × 3), instead of waiting for the BGP hold
//! time (SPEC §5b, §8: "node crash with BFD 300 ms × 3 ≤ 1 s").
//!
//! ```text
//!   BGP speaker ──start/shutdown──▶ Bfd ── one Endpoint per local address ──┐
//!        ▲                           │     (UDP :3784 rx, TTL checked,      │
//!        │ watch<Status>             │      demux by Your Discriminator     │
//!        │                           ▼      or by source address)          │
//!   BfdSession ◀── task per session: Session core ◀── ControlPacket ◀──────┘
//!                  (sans IO)  ──Send──▶ UDP 49152–65535 → peer:3784, TTL 255
//! ```
//!
//! - [`packet`]: the Control packet (§4.1) and the packet-level reception
//!   checks of §6.8.6.
//! - [`session`]: the sans-IO core, `handle(now, Input) -> Vec<Action>`:
//!   state machine (§6.2, §6.8.6), detection time (§6.8.4), jittered
//!   transmission (§6.8.7), slow timers while not Up and the Poll/Final
//!   sequence (§6.5, §6.8.3), AdminDown on our shutdown (§6.8.16) so that a
//!   graceful vipd stop reads as diag 7 at the router, not as a failure.
//! - [`network`]: the tokio shell (sockets, one task per session).
//!
//! Not implemented, on purpose: authentication (we never configure it, so
//! packets with the A bit are discarded, §6.8.6), Demand mode on our side,
//! the Echo function, multi-hop (RFC 5883).

#![forbid(unsafe_code)]

pub mod network;
pub mod packet;
pub mod session;

pub use network::{Bfd, BfdSession, Error, RxStats};
pub use packet::{ControlPacket, DecodeError, Diag, State};
pub use session::{Action, BfdConfig, ConfigError, Input, Session, Status};
