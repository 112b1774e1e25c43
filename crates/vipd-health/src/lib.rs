//! Health checks that gate vipd's election (SPEC R8): an unhealthy holder
//! releases what it holds, an unhealthy node does not campaign.
//!
//! - [`gate`]: the sans-IO core. Per-check consecutive failure / success
//!   thresholds (Kubernetes probe semantics, kube-vip's
//!   `control_plane_health_check_failure_threshold`), aggregate "all checks
//!   up", events only on change.
//! - [`spec`]: [`HealthCheckSpec`] and its `--health-check` string form.
//! - Probes: HTTP(S) GET ([`http`]), TCP connect ([`tcp`]), ICMP echo
//!   ([`icmp`]); each run has its own timeout and a fresh connection.
//! - [`monitor`]: [`HealthMonitor::spawn`] runs one task per check and
//!   publishes eligibility, a per-check snapshot and change events.

#![forbid(unsafe_code)]

pub mod gate;
pub mod http;
pub mod icmp;
pub mod monitor;
pub mod spec;
pub mod tcp;

use std::path::PathBuf;
use std::time::Duration;

pub use gate::{
    CheckConfig, CheckId, CheckState, CheckStatus, GateInput, HealthEvent, HealthGate, ProbeOutcome,
};
pub use monitor::{HealthMonitor, Prober};
pub use spec::{HealthCheckSpec, HealthSpecError, HttpProbe, ProbeSpec};

/// Why one probe run failed; its text becomes the check's `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// TCP connect (or name resolution) failed.
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    /// TLS handshake failed (includes certificate verification).
    #[error("tls: {0}")]
    Tls(#[source] std::io::Error),
    /// HTTP protocol error.
    #[error("http: {0}")]
    Http(#[source] hyper::Error),
    /// The request could not be made or was not answered.
    #[error("http: {0}")]
    Request(String),
    /// The server answered outside 200–399.
    #[error("http status {0}")]
    Status(u16),
    /// Opening or configuring the raw socket failed (CAP_NET_RAW missing?).
    #[error("icmp socket: {0}")]
    Socket(#[source] std::io::Error),
    /// Sending the echo request failed (e.g. network unreachable).
    #[error("icmp send: {0}")]
    Send(#[source] std::io::Error),
    /// Receiving failed.
    #[error("icmp receive: {0}")]
    Receive(#[source] std::io::Error),
    /// No echo reply within the read timeout.
    #[error("no icmp echo reply")]
    Timeout,
    /// The probe did not finish within the check's timeout.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// Why a check could not be set up (a configuration error: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The CA file could not be read.
    #[error("health check CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("health check CA file {path} contains no valid certificate")]
    NoCertificates {
        /// The file.
        path: PathBuf,
    },
    /// rustls rejected the client configuration.
    #[error("health check TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// The TLS server name is neither a DNS name nor an IP address.
    #[error("health check TLS server name {name:?} is not a valid DNS name or IP")]
    ServerName {
        /// The name.
        name: String,
    },
    /// Two checks share a name (names are metric labels and must be unique).
    #[error("two health checks are named {name:?}; add ,name=… to tell them apart")]
    DuplicateName {
        /// The name.
        name: String,
    },
}
