//! The thin async shell around the sans-IO [`Elector`]: it performs the
//! store requests the core asks for, bounded by the core's deadlines (R6),
//! feeds watch events and control inputs in, and executes `Lead`/`Fence`
//! through a [`Holder`] *before* the next request goes out, so a release is
//! only ever written after the VIP is gone (R7).
//!
//! ```text
//!   signals/health/dup ──Control──▶ ┌─────────┐ ──Request──▶ LeaseStore
//!   store.watch() ──WatchEvent────▶ │ Elector │ ◀─Response──
//!   timer (poll_timeout) ──Tick───▶ └─────────┘ ──Lead/Fence──▶ Holder (VIP manager)
//! ```

#![forbid(unsafe_code)]

pub mod quorum;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};
use vipd_backoff::Backoff;
use vipd_election::mem::stamped;
use vipd_election::{
    Action, Elector, FenceReason, Input, LeaseStore, Op, RequestId, Role, Status, StoreError,
    Versioned, WallTime, WatchEvent,
};
use vipd_observe::status::Heartbeat;

/// Control inputs from the rest of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Graceful shutdown (R7).
    Shutdown,
    /// Health gate result (R8): an ineligible holder releases, an
    /// ineligible node does not campaign.
    Eligible(bool),
    /// Re-read the record now (duplicate claim seen on the wire, R5).
    Reread,
}

/// What the elector's Lead/Fence act on: the VIP manager.
pub trait Holder: Send {
    /// We hold the lease: bind and announce.
    fn lead(&mut self) -> impl Future<Output = ()> + Send;
    /// Stop announcing and remove the VIP; return once it is gone (or the
    /// attempt failed and was logged: the reconciler keeps trying).
    fn fence(&mut self, reason: FenceReason) -> impl Future<Output = ()> + Send;
}

/// One store call's outcome, as the core wants it.
type Pending =
    Pin<Box<dyn Future<Output = (RequestId, Result<Option<Versioned>, StoreError>)> + Send>>;

/// Observations published after every step, for metrics and `/status`.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The core's status.
    pub status: Status,
    /// Whether the last store request got an answer (any answer).
    pub store_reachable: bool,
    /// Result label of the last request (`ok`, `conflict`, ...), if any.
    pub last_result: Option<&'static str>,
}

/// Short label for metrics and logs.
pub fn result_label(r: &Result<Option<Versioned>, StoreError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(StoreError::Conflict) => "conflict",
        Err(StoreError::AlreadyExists) => "exists",
        Err(StoreError::Unavailable(_)) => "unavailable",
        Err(StoreError::Timeout) => "timeout",
        Err(StoreError::Rejected(_)) => "rejected",
    }
}

fn op_label(op: &Op) -> &'static str {
    match op {
        Op::Get => "get",
        Op::Create { .. } => "create",
        Op::Update { .. } => "update",
    }
}

/// Called for every finished store request: verb, result label, duration,
/// and whether it was a renewal by the holder (for the renew-failure count).
pub type RequestHook = Arc<dyn Fn(&'static str, &'static str, Duration, bool) + Send + Sync>;

/// Where the driver reports what it does.
pub struct Reporting<'a> {
    /// Observations after every step (metrics, `/status`).
    pub observe: &'a watch::Sender<Observation>,
    /// Every finished store request.
    pub on_request: RequestHook,
    /// Beaten on every loop iteration (`/healthz`).
    pub heartbeat: Heartbeat,
}

/// Runs the election until it stops after a [`Control::Shutdown`] (or the
/// control channel closes, which is treated as a shutdown).
pub async fn run<S: LeaseStore, H: Holder>(
    store: Arc<S>,
    mut elector: Elector,
    mut holder: H,
    control: &mut mpsc::Receiver<Control>,
    report: Reporting<'_>,
    eligible: bool,
) {
    let Reporting {
        observe,
        on_request,
        heartbeat,
    } = report;
    let (watch_tx, mut watch_rx) = mpsc::channel::<WatchEvent>(16);
    let _watcher = AbortOnDropHandle::new(tokio::spawn(watch_loop(
        store.clone(),
        watch_tx,
        elector.timings().retry_period(),
    )));
    let mut pending: Option<Pending> = None;
    let mut control_open = true;
    let mut reachable = true;
    let mut last_result = None;
    // The first input states the health gate, so an unhealthy node never
    // campaigns even for one round trip (R8).
    let mut input = Input::SetEligible(eligible);
    loop {
        let now = Instant::now();
        heartbeat.beat(now);
        let actions = elector.handle(now, input);
        for action in actions {
            match action {
                Action::Request { id, op, deadline } => {
                    let renewal = elector.role() == Role::Leader && matches!(op, Op::Update { .. });
                    pending = Some(request(
                        store.clone(),
                        id,
                        op,
                        deadline,
                        on_request.clone(),
                        renewal,
                    ));
                }
                Action::Lead => {
                    info!(lease_holder = elector.identity(), "acquired the lease");
                    holder.lead().await;
                }
                Action::Fence(reason) => {
                    match reason {
                        FenceReason::Shutdown | FenceReason::Unhealthy => {
                            info!(?reason, "stepping down")
                        }
                        _ => warn!(?reason, "lost leadership"),
                    }
                    holder.fence(reason).await;
                }
                Action::Stopped => {
                    info!("election stopped");
                    publish(observe, &elector, reachable, last_result);
                    return;
                }
            }
        }
        publish(observe, &elector, reachable, last_result);
        let wake = elector
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        input = tokio::select! {
            // Answers first: they carry the freshest truth.
            biased;
            Some((id, result)) = maybe(&mut pending) => {
                pending = None;
                reachable = !matches!(result, Err(StoreError::Unavailable(_) | StoreError::Timeout));
                last_result = Some(result_label(&result));
                Input::Response { id, result }
            }
            c = control.recv(), if control_open => match c {
                Some(Control::Shutdown) | None => {
                    control_open = false;
                    Input::Shutdown
                }
                Some(Control::Eligible(e)) => Input::SetEligible(e),
                Some(Control::Reread) => Input::Reread,
            },
            Some(ev) = watch_rx.recv() => Input::Watched(ev),
            () = tokio::time::sleep_until(wake) => Input::Tick,
        };
    }
}

fn publish(
    tx: &watch::Sender<Observation>,
    e: &Elector,
    store_reachable: bool,
    last_result: Option<&'static str>,
) {
    let status = e.status();
    tx.send_if_modified(|o| {
        let changed = o.status != status
            || o.store_reachable != store_reachable
            || o.last_result != last_result;
        *o = Observation {
            status: status.clone(),
            store_reachable,
            last_result,
        };
        changed
    });
}

/// Polls an optional future; pending forever when there is none.
async fn maybe(
    p: &mut Option<Pending>,
) -> Option<(RequestId, Result<Option<Versioned>, StoreError>)> {
    match p {
        Some(f) => Some(f.await),
        None => std::future::pending().await,
    }
}

fn request<S: LeaseStore>(
    store: Arc<S>,
    id: RequestId,
    op: Op,
    deadline: Instant,
    hook: RequestHook,
    renewal: bool,
) -> Pending {
    Box::pin(async move {
        let verb = op_label(&op);
        let started = Instant::now();
        // Stamp wall times as late as possible: they are what other readers
        // (and kubectl users) see as renewTime.
        let call = async {
            match &op {
                Op::Get => store.get().await,
                Op::Create { record, stamp } => store
                    .create(&stamped(record, *stamp, WallTime::now()))
                    .await
                    .map(Some),
                Op::Update {
                    record,
                    version,
                    stamp,
                } => store
                    .update(&stamped(record, *stamp, WallTime::now()), version)
                    .await
                    .map(Some),
            }
        };
        let result = match tokio::time::timeout_at(deadline, call).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Timeout),
        };
        if matches!(
            result,
            Err(StoreError::Timeout | StoreError::Unavailable(_))
        ) {
            // R6: never reuse a connection that just failed us.
            store.reset();
        }
        let label = result_label(&result);
        debug!(verb, result = label, "store request");
        hook(verb, label, started.elapsed(), renewal);
        (id, result)
    })
}

/// Keeps a watch on the record running, restarting it with capped, jittered
/// back-off (R2). Watch events only speed things up; polling stays correct
/// without them.
async fn watch_loop<S: LeaseStore>(store: Arc<S>, tx: mpsc::Sender<WatchEvent>, retry: Duration) {
    let mut backoff = Backoff::new(retry / 4, retry * 2);
    loop {
        let started = Instant::now();
        match store.watch(tx.clone()).await {
            Ok(()) => {
                // The backend cannot watch, or we are shutting down.
                debug!("lease watch finished; polling only");
                return;
            }
            Err(e) => debug!(error = %e, "lease watch ended; restarting"),
        }
        if tx.is_closed() {
            return;
        }
        if started.elapsed() > retry * 4 {
            // It ran fine for a while: this is a fresh failure.
            backoff.reset();
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// The role as a metric/status label.
pub fn role_label(r: Role) -> &'static str {
    match r {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Stopped => "stopped",
    }
}
