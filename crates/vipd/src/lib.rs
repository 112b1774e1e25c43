//! vipd's configuration, HTTP endpoint and manifests, shared by the
//! `vipd` binary (`use vipd::...`). Metrics and the `/status` model live in
//! `vipd-observe`, written by every shell and served by [`http`].
//!
//! - [`config`]: flags, `VIPD_*` and kube-vip environment variables, the
//!   optional file, validation (SPEC §3).
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`, `/status`.
//! - [`manifest`]: `vipd manifest pod|daemonset|rbac` YAML.

#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod manifest;
