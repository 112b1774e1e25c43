//! vipd's configuration, metrics, status and HTTP endpoint, shared by the
//! `vipd` binary (`use vipd::...`).
//!
//! - [`config`]: flags, `VIPD_*` and kube-vip environment variables, the
//!   optional file, validation (SPEC §3).
//! - [`metrics`]: the Prometheus metrics on an explicit registry (SPEC §6).
//! - [`status`]: what `/status` reports, updated by the run loop.
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`, `/status`.
//! - [`manifest`]: `vipd manifest pod|daemonset|rbac` YAML.

#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod manifest;
pub mod metrics;
pub mod status;
pub mod svc;
