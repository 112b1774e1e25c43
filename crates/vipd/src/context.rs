//! What the control-plane run loop (`daemon.rs`) and the Services wiring
//! (`services.rs`) share: the exit status for configuration errors, the
//! observers every task reports to, Kubernetes API loading, the health
//! checks to run, and the signal wait. Both import this module; it imports
//! neither, so the two modes never reach into each other.

#[cfg(feature = "kubernetes")]
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info};
use vipd::config::{Backend, Config};
use vipd_health::HealthCheckSpec;
use vipd_observe::metrics::Metrics;
use vipd_observe::status::{Liveness, Role, StatusHandle, VipEntry};

/// Exit status for invalid configuration (SPEC §3).
pub(crate) const EXIT_CONFIG: u8 = 2;

/// What every part of the daemon reports to: metrics, `/status`, the
/// loops' heartbeats (one HTTP endpoint serves them all).
#[derive(Clone)]
pub(crate) struct Obs {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: StatusHandle,
    pub(crate) liveness: Liveness,
}

impl Obs {
    /// Fresh observers for `cfg`: metrics labelled with this build's
    /// version, a status naming the node, the lease and the backend, with
    /// the configured VIP as an unbound follower until the run loop says
    /// otherwise.
    pub(crate) fn for_config(cfg: &Config) -> Obs {
        let backend = match cfg.backend {
            Backend::Etcd(_) => "etcd",
            Backend::Kubernetes => "kubernetes",
            Backend::None => "none",
        };
        // Quorum mode mirrors its holder into a record of its own name.
        let suffix = match cfg.coordination {
            vipd::config::Coordination::Quorum(_) => "-quorum",
            vipd::config::Coordination::Lease => "",
        };
        let lease = format!("{}/{}{suffix}", cfg.lease_namespace, cfg.lease_name);
        let status = StatusHandle::new(&cfg.node_name, env!("CARGO_PKG_VERSION"), &lease, backend);
        if let Some(vip) = cfg.vip {
            status.set_vip(VipEntry {
                vip,
                interface: cfg.interface.clone(),
                role: Role::Follower,
                bound: false,
            });
        }
        Obs {
            metrics: Arc::new(Metrics::new(env!("CARGO_PKG_VERSION"))),
            status,
            liveness: Liveness::new(),
        }
    }
}

/// Kubernetes API access from the configuration (exit 2 when invalid).
#[cfg(feature = "kubernetes")]
pub(crate) async fn load_kube(
    cfg: &Config,
    vip: Option<std::net::IpAddr>,
) -> Result<vipd_kube::KubeApi, ExitCode> {
    let settings = vipd_kube::KubeSettings {
        kubeconfig: cfg.kubeconfig.clone(),
        kubernetes_addr: cfg.kubernetes_addr.clone(),
        api_port: cfg.api_port,
        control_plane: cfg.control_plane,
        // Only used to drop endpoints that are the control-plane VIP, and
        // control-plane mode always has one (config); without a VIP
        // (Services mode only) no endpoint can equal 0.0.0.0.
        vip: vip.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
    };
    let api = match vipd_kube::KubeApi::load(&settings).await {
        Ok(api) => api,
        Err(e) => {
            eprintln!("vipd: invalid Kubernetes configuration: {e} (--kubeconfig/k8s_config_file, --kubernetes-addr/kubernetes_addr)");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    let endpoints = api.endpoints();
    if !endpoints.dropped.is_empty() {
        // R6: in control-plane mode the API is never reached
        // through the VIP this node may be about to remove.
        info!(dropped = ?endpoints.dropped.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "not using API endpoints that are the control-plane VIP");
    }
    info!(endpoints = ?endpoints.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(), "Kubernetes API endpoints, in order");
    Ok(api)
}

/// How long a gate may take to pass once before its node says, in one
/// ERROR line, that it has never been eligible: four check rounds.
pub(crate) fn eligibility_patience(cfg: &Config) -> Duration {
    (cfg.health.period + cfg.health.timeout) * 4
}

/// Mirrors the health gate's verdict into `/status` and the
/// `vipd_eligible` / `vipd_ever_eligible` gauges, from its current value
/// on, until `cancel`. A node whose gate never passes says so in both
/// (and in `vipd status`) instead of staying silently dark; one ERROR
/// line marks the first time it is still ineligible after `patience`.
pub(crate) fn watch_eligibility(
    status: &StatusHandle,
    metrics: &Arc<Metrics>,
    mut eligible: tokio::sync::watch::Receiver<bool>,
    patience: Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let (status, metrics) = (status.clone(), metrics.clone());
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(patience);
        tokio::pin!(deadline);
        let mut warned = false;
        loop {
            let e = *eligible.borrow_and_update();
            let ever = status.set_eligible(e);
            metrics.set_eligible(e, ever);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = &mut deadline, if !warned => {
                    warned = true;
                    if !ever {
                        error!(after = ?patience, "this node has never been eligible: a health check has not passed once since start (see /status or `vipd status`); it will hold no address until one does");
                    }
                    // Nothing changed: the next pass sets the same values.
                }
                r = eligible.changed() => if r.is_err() { return },
            }
        }
    });
}

/// The health checks to run: explicit `--health-check` specs as written,
/// kube-vip's `control_plane_health_check_address` with kube-vip's period,
/// timeout and threshold, and the local apiserver's `/livez` (verified as
/// `kubernetes`, the name kubeadm's serving certificate carries) as the
/// control-plane default.
pub(crate) fn health_specs(
    cfg: &Config,
) -> Result<Vec<HealthCheckSpec>, vipd_health::HealthSpecError> {
    let local = vipd::config::default_health_check(cfg.api_port);
    let h = &cfg.health;
    let secs = |d: Duration| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX);
    cfg.health_checks
        .iter()
        .map(|s| {
            if *s == local {
                let mut spec = HealthCheckSpec::local_apiserver(cfg.api_port, h.ca_path.clone());
                spec.interval = h.period;
                spec.timeout = h.timeout;
                spec.failure_threshold = h.failure_threshold;
                Ok(spec)
            } else if h.address.as_deref() == Some(s.as_str()) {
                HealthCheckSpec::from_kube_vip(
                    s,
                    secs(h.period),
                    secs(h.timeout),
                    i64::from(h.failure_threshold),
                    h.ca_path.clone(),
                )
            } else {
                // --health-check-period/-timeout/-failure-threshold (kube-vip's
                // control_plane_health_check_*) apply to every check.
                HealthCheckSpec::parse(s).map(|mut spec| {
                    spec.interval = h.period;
                    spec.timeout = h.timeout;
                    spec.failure_threshold = h.failure_threshold;
                    if let vipd_health::ProbeSpec::Http(http) = &mut spec.probe {
                        if http.ca_path.is_none() {
                            http.ca_path.clone_from(&h.ca_path);
                        }
                    }
                    spec
                })
            }
        })
        .collect()
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => info!("SIGTERM received"),
                _ = i.recv() => info!("SIGINT received"),
            }
        }
        _ => {
            error!("cannot install signal handlers; running until killed");
            std::future::pending::<()>().await;
        }
    }
}
