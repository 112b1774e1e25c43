//! The async shell: one probe task per check feeding one gate task.
//!
//! ```text
//!   probe task (check 0) ──┐ (CheckId, ProbeOutcome)
//!   probe task (check 1) ──┼──────── mpsc ───────▶ gate task ──▶ watch<bool>            eligible
//!   probe task (check n) ──┘                       (HealthGate)──▶ watch<Vec<CheckStatus>> /status
//!                                                              ──▶ mpsc<HealthEvent>      logs/metrics
//! ```
//!
//! The gate task owns the probe tasks (a `JoinSet`), restarts one that
//! panics (its check records a failure), and on cancellation stops them all
//! before returning. The gate task itself is owned by [`HealthMonitor`] and
//! aborted when the monitor is dropped.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::gate::{
    CheckConfig, CheckId, CheckStatus, GateInput, HealthEvent, HealthGate, ProbeOutcome,
};
use crate::http::HttpProber;
use crate::icmp::IcmpProbe;
use crate::spec::{HealthCheckSpec, ProbeSpec};
use crate::tcp::probe_tcp;
use crate::{BuildError, ProbeError};

/// Capacity of the change-event channel; changes are rare, and when nobody
/// reads the channel the watches stay authoritative, so excess is dropped.
const EVENT_CAPACITY: usize = 64;

/// A check's probe, built once (TLS config, parsed target).
#[derive(Debug, Clone)]
pub enum Prober {
    /// HTTP(S) GET.
    Http(HttpProber),
    /// TCP connect.
    Tcp {
        /// Host name or IP literal.
        host: String,
        /// Port.
        port: u16,
    },
    /// ICMP echo.
    Icmp(IpAddr),
}

impl Prober {
    /// Builds the prober for `spec` (reads the CA file of an https check).
    pub fn new(spec: &ProbeSpec) -> Result<Self, BuildError> {
        Ok(match spec {
            ProbeSpec::Http(h) => Prober::Http(HttpProber::new(h)?),
            ProbeSpec::Tcp { host, port } => Prober::Tcp {
                host: host.clone(),
                port: *port,
            },
            ProbeSpec::Icmp { addr } => Prober::Icmp(*addr),
        })
    }

    /// Runs one probe bounded by `timeout`.
    pub async fn run_once(&self, timeout: Duration) -> ProbeOutcome {
        let fut = async {
            match self {
                Prober::Http(h) => h.probe().await.map(drop),
                Prober::Tcp { host, port } => probe_tcp(host, *port).await,
                // Opened synchronously on this thread: the socket belongs
                // to the caller's network namespace.
                Prober::Icmp(addr) => IcmpProbe::open(*addr)?.run(timeout).await.map(drop),
            }
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(())) => ProbeOutcome::Success,
            Ok(Err(e)) => ProbeOutcome::Failure(e.to_string()),
            Err(_) => ProbeOutcome::Failure(ProbeError::TimedOut(timeout).to_string()),
        }
    }
}

/// Running health checks: eligibility, per-check status and change events.
#[derive(Debug)]
pub struct HealthMonitor {
    eligible: watch::Receiver<bool>,
    status: watch::Receiver<Vec<CheckStatus>>,
    events: Option<mpsc::Receiver<HealthEvent>>,
    task: AbortOnDropHandle<()>,
}

impl HealthMonitor {
    /// Validates `specs`, builds their probers and starts probing (the first
    /// probe of each check runs at once). Eligibility starts `false` unless
    /// `specs` is empty (see [`crate::gate`]). Cancelling `cancel` stops all
    /// probes; dropping the monitor aborts them.
    ///
    /// Must be called inside a tokio runtime.
    pub fn spawn(
        specs: Vec<HealthCheckSpec>,
        cancel: CancellationToken,
    ) -> Result<Self, BuildError> {
        let mut names = HashSet::new();
        for s in &specs {
            if !names.insert(s.name.as_str()) {
                return Err(BuildError::DuplicateName {
                    name: s.name.clone(),
                });
            }
        }
        let probers = specs
            .iter()
            .map(|s| Prober::new(&s.probe))
            .collect::<Result<Vec<_>, _>>()?;
        let gate = HealthGate::new(
            specs
                .iter()
                .map(|s| CheckConfig {
                    name: s.name.clone(),
                    target: s.target(),
                    failure_threshold: s.failure_threshold,
                    success_threshold: s.success_threshold,
                })
                .collect(),
        );
        let (eligible_tx, eligible) = watch::channel(gate.eligible());
        let (status_tx, status) = watch::channel(gate.status());
        let (events_tx, events) = mpsc::channel(EVENT_CAPACITY);
        let checks = specs
            .into_iter()
            .zip(probers)
            .map(|(spec, prober)| Arc::new(CheckTask { spec, prober }))
            .collect();
        let task = tokio::spawn(gate_task(
            gate,
            checks,
            cancel,
            Outputs {
                eligible: eligible_tx,
                status: status_tx,
                events: events_tx,
            },
        ));
        Ok(HealthMonitor {
            eligible,
            status,
            events: Some(events),
            task: AbortOnDropHandle::new(task),
        })
    }

    /// `true` while every check is up: the node may campaign and keep what
    /// it holds. Changes only on a real change.
    pub fn eligible(&self) -> watch::Receiver<bool> {
        self.eligible.clone()
    }

    /// Per-check snapshot, refreshed after every probe (for `/status`).
    pub fn status(&self) -> watch::Receiver<Vec<CheckStatus>> {
        self.status.clone()
    }

    /// The change events (`CheckChanged`, `Eligible`), for metrics such as
    /// `vipd_health_check_up{check}` and Kubernetes Events. Only the first
    /// call returns the receiver. Events are already logged by the monitor.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<HealthEvent>> {
        self.events.take()
    }

    /// Waits until the monitor has stopped (after `cancel`), all probe
    /// tasks included.
    pub async fn join(self) {
        // A JoinError here means the task panicked or was aborted: either
        // way it has stopped, which is all the caller waits for.
        let _ = self.task.await;
    }
}

struct CheckTask {
    spec: HealthCheckSpec,
    prober: Prober,
}

struct Outputs {
    eligible: watch::Sender<bool>,
    status: watch::Sender<Vec<CheckStatus>>,
    events: mpsc::Sender<HealthEvent>,
}

async fn gate_task(
    mut gate: HealthGate,
    checks: Vec<Arc<CheckTask>>,
    cancel: CancellationToken,
    out: Outputs,
) {
    let (result_tx, mut result_rx) =
        mpsc::channel::<(CheckId, ProbeOutcome)>(checks.len().max(1) * 4);
    let mut tasks = JoinSet::new();
    let mut task_check: HashMap<tokio::task::Id, usize> = HashMap::new();
    for (i, check) in checks.iter().enumerate() {
        let h = tasks.spawn(probe_loop(
            CheckId(i),
            check.clone(),
            result_tx.clone(),
            cancel.clone(),
        ));
        task_check.insert(h.id(), i);
    }
    loop {
        let input = tokio::select! {
            _ = cancel.cancelled() => break,
            Some((check, outcome)) = result_rx.recv() => GateInput::ProbeResult { check, outcome },
            Some(joined) = tasks.join_next_with_id() => {
                let (id, why) = match joined {
                    Ok((id, ())) => (id, "probe task ended".to_string()),
                    Err(e) => (e.id(), format!("probe task failed: {e}")),
                };
                let Some(i) = task_check.remove(&id) else { continue };
                if cancel.is_cancelled() {
                    continue;
                }
                // Supervisor: restart the check's loop and count the
                // crash as a failed probe, so a broken probe cannot leave
                // a stale "up" behind.
                tracing::error!(check = %checks[i].spec.name, %why, "restarting health probe task");
                let h = tasks.spawn(probe_loop(CheckId(i), checks[i].clone(), result_tx.clone(), cancel.clone()));
                task_check.insert(h.id(), i);
                GateInput::ProbeResult { check: CheckId(i), outcome: ProbeOutcome::Failure(why) }
            }
        };
        let events = gate.handle(Instant::now(), input);
        // Status first: whoever reacts to an event (or to the eligibility
        // watch) and then reads the status sees the state that caused it.
        out.status.send_replace(gate.status());
        for event in events {
            log_event(&event);
            if let HealthEvent::Eligible(e) = event {
                out.eligible.send_replace(e);
            }
            if out.events.try_send(event).is_err() {
                tracing::debug!("health event channel full or closed; event dropped");
            }
        }
    }
    tasks.shutdown().await;
}

/// One line per change (SPEC §6), never one per probe.
fn log_event(event: &HealthEvent) {
    match event {
        HealthEvent::CheckChanged { name, up: true, .. } => {
            tracing::info!(check = %name, "health check up")
        }
        HealthEvent::CheckChanged {
            name,
            up: false,
            reason,
        } => tracing::warn!(
            check = %name,
            reason = reason.as_deref().unwrap_or("unknown"),
            "health check down"
        ),
        HealthEvent::Eligible(true) => {
            tracing::info!("all health checks up: node is eligible for election")
        }
        HealthEvent::Eligible(false) => tracing::warn!(
            "health checks failing: node releases what it holds and does not campaign"
        ),
    }
}

async fn probe_loop(
    id: CheckId,
    check: Arc<CheckTask>,
    results: mpsc::Sender<(CheckId, ProbeOutcome)>,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(check.spec.interval);
    // A probe slower than the interval delays the next one instead of
    // firing a burst to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            o = check.prober.run_once(check.spec.timeout) => o,
        };
        if results.send((id, outcome)).await.is_err() {
            return;
        }
    }
}
