//! What a vipd node reports about itself (SPEC §6), written by every shell
//! (the control-plane run loop, the Services tasks, and later the quorum and
//! BGP tasks) and read by the binary's HTTP endpoint.
//!
//! - [`metrics`]: the Prometheus metrics on one explicit registry.
//! - [`status`]: the model behind `/status`, `/healthz` and `/readyz`.
//! - [`client`]: `vipd status`, which reads `/status` back from a running
//!   daemon.
//!
//! Apart from [`client`]'s one blocking GET, this crate holds no I/O: the
//! binary serves it over HTTP (`vipd/src/http.rs`).

#![forbid(unsafe_code)]

pub mod client;
pub mod metrics;
pub mod status;
