//! Health gating (R8): which checks run, and forwarding the gate's result
//! to the election.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;
use vipd_health::HealthEvent;
use vipd_observe::metrics::Metrics;

use super::events::{EventReason, Events};
use vipd_elector::Control;

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
