//! Health gating (R8): which checks run, and forwarding the gate's result
//! to the election.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;
use vipd::config::Config;
use vipd::metrics::Metrics;
use vipd_health::{HealthCheckSpec, HealthEvent};

use super::events::{EventReason, Events};
use crate::elect::Control;

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

/// Forwards eligibility to the election and check changes to metrics.
pub(super) async fn health_loop(
    mut eligible: watch::Receiver<bool>,
    events: Option<mpsc::Receiver<HealthEvent>>,
    control: mpsc::Sender<Control>,
    metrics: Arc<Metrics>,
    kube_events: Events,
    cancel: CancellationToken,
) {
    let mut events = events;
    // The election started with the value current at its start; a change
    // between then and now would be lost, so state the current one again
    // (idempotent for the elector), then forward every change.
    let now = *eligible.borrow_and_update();
    let _ = control.send(Control::Eligible(now)).await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = eligible.changed() => {
                if changed.is_err() {
                    return;
                }
                let e = *eligible.borrow_and_update();
                info!(eligible = e, "health gate changed");
                let _ = control.send(Control::Eligible(e)).await;
            }
            ev = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                Some(HealthEvent::CheckChanged { name, up, reason }) => {
                    metrics.set_health_check(&name, up);
                    let msg = match reason {
                        Some(r) => format!("health check {name} is {}: {r}", if up { "up" } else { "down" }),
                        None => format!("health check {name} is {}", if up { "up" } else { "down" }),
                    };
                    if up {
                        kube_events.normal(EventReason::Health, msg);
                    } else {
                        kube_events.warning(EventReason::Health, msg);
                    }
                }
                Some(HealthEvent::Eligible(_)) => {}
                None => events = None,
            },
        }
    }
}
