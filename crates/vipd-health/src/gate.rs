//! The sans-IO health gate: probe results in, state changes out.
//!
//! Each check counts consecutive results of the same kind and only flips
//! once a threshold is reached, exactly like a Kubernetes probe
//! (`failureThreshold` / `successThreshold`, kubelet's prober worker keeps
//! the previous result until `resultRun` reaches the threshold) and like
//! kube-vip's `control_plane_health_check_failure_threshold`.
//!
//! # Initial state
//!
//! A check starts [`CheckState::Unknown`], which does **not** count as up:
//! the node is not eligible until every check has seen `success_threshold`
//! consecutive successes. This is Kubernetes readiness (the kubelet seeds a
//! readiness worker with `Failure`) and kube-vip's control-plane check ("the
//! route is not announced until the first successful check"). At boot in
//! control-plane mode the local apiserver may not be up yet; that costs
//! nothing, because the lease that elects the VIP holder lives on that same
//! apiserver (or, with etcd, nobody should serve a VIP for an apiserver that
//! is not answering). With no checks configured the gate is always eligible.
//!
//! The aggregate is "all checks up". Events are emitted only on change, so
//! the caller can log one line per change and never one per probe.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Static configuration of one check as the gate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// Unique name, used in logs, `/status` and the `check` metric label.
    pub name: String,
    /// Human-readable target (URL, `host:port`, IP), shown in `/status`.
    pub target: String,
    /// Consecutive failures that take the check down (>= 1).
    pub failure_threshold: u32,
    /// Consecutive successes that bring the check up (>= 1).
    pub success_threshold: u32,
}

/// Index of a check inside one [`HealthGate`], in construction order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckId(pub usize);

/// Current state of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    /// No threshold reached yet since start; counts as not up.
    Unknown,
    /// `success_threshold` consecutive successes seen.
    Up,
    /// `failure_threshold` consecutive failures seen.
    Down,
}

/// Result of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The probe passed.
    Success,
    /// The probe failed (error, timeout or bad status); the text says why.
    Failure(String),
}

/// Inputs to [`HealthGate::handle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateInput {
    /// A probe of `check` finished with `outcome`.
    ProbeResult {
        /// Which check.
        check: CheckId,
        /// What it reported.
        outcome: ProbeOutcome,
    },
}

/// Outputs of [`HealthGate::handle`]; each is a real change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthEvent {
    /// A check reached its failure or success threshold and changed state.
    CheckChanged {
        /// The check's name.
        name: String,
        /// `true` when it is now up, `false` when it is now down.
        up: bool,
        /// When down: the last failure's description.
        reason: Option<String>,
    },
    /// The aggregate (all checks up) changed: `true` means the node may
    /// campaign and keep what it holds, `false` means it must release.
    Eligible(bool),
}

/// Snapshot of one check for `/status` (read back by `vipd status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// The check's name.
    pub name: String,
    /// What it probes.
    pub target: String,
    /// Current state.
    pub state: CheckState,
    /// Failures in a row (0 after any success).
    pub consecutive_failures: u32,
    /// Successes in a row (0 after any failure).
    pub consecutive_successes: u32,
    /// Reason of the current failure streak, if any.
    pub last_error: Option<String>,
    /// Probe results seen since start.
    pub probes: u64,
    /// State changes since start.
    pub transitions: u64,
    /// When the state last changed (monotonic; not serialised).
    #[serde(skip)]
    pub state_since: Option<Instant>,
}

#[derive(Debug)]
struct Check {
    config: CheckConfig,
    state: CheckState,
    failures: u32,
    successes: u32,
    last_error: Option<String>,
    probes: u64,
    transitions: u64,
    state_since: Option<Instant>,
}

/// Aggregates per-check probe results into node eligibility (SPEC R8).
#[derive(Debug)]
pub struct HealthGate {
    checks: Vec<Check>,
    eligible: bool,
}

impl HealthGate {
    /// A gate over `checks`; every check starts [`CheckState::Unknown`].
    /// Thresholds of 0 are treated as 1 (a threshold of zero would mean
    /// "flip before any evidence", which no probe system allows).
    pub fn new(checks: Vec<CheckConfig>) -> Self {
        let checks: Vec<Check> = checks
            .into_iter()
            .map(|mut config| {
                config.failure_threshold = config.failure_threshold.max(1);
                config.success_threshold = config.success_threshold.max(1);
                Check {
                    config,
                    state: CheckState::Unknown,
                    failures: 0,
                    successes: 0,
                    last_error: None,
                    probes: 0,
                    transitions: 0,
                    state_since: None,
                }
            })
            .collect();
        let eligible = checks.is_empty();
        HealthGate { checks, eligible }
    }

    /// Whether the node may campaign / keep holding: every check is up.
    pub fn eligible(&self) -> bool {
        self.eligible
    }

    /// Number of checks.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// True when no checks are configured (then always eligible).
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// State of one check, `None` for an unknown id.
    pub fn state(&self, id: CheckId) -> Option<CheckState> {
        self.checks.get(id.0).map(|c| c.state)
    }

    /// Snapshot of every check, in construction order.
    pub fn status(&self) -> Vec<CheckStatus> {
        self.checks
            .iter()
            .map(|c| CheckStatus {
                name: c.config.name.clone(),
                target: c.config.target.clone(),
                state: c.state,
                consecutive_failures: c.failures,
                consecutive_successes: c.successes,
                last_error: c.last_error.clone(),
                probes: c.probes,
                transitions: c.transitions,
                state_since: c.state_since,
            })
            .collect()
    }

    /// Feeds one input; returns the resulting changes (usually none).
    /// A result for an id this gate does not know is ignored.
    pub fn handle(&mut self, now: Instant, input: GateInput) -> Vec<HealthEvent> {
        let mut out = Vec::new();
        match input {
            GateInput::ProbeResult { check, outcome } => {
                let Some(c) = self.checks.get_mut(check.0) else {
                    return out;
                };
                c.probes += 1;
                let new_state = match outcome {
                    ProbeOutcome::Success => {
                        c.successes = c.successes.saturating_add(1);
                        c.failures = 0;
                        c.last_error = None;
                        (c.state != CheckState::Up && c.successes >= c.config.success_threshold)
                            .then_some(CheckState::Up)
                    }
                    ProbeOutcome::Failure(reason) => {
                        c.failures = c.failures.saturating_add(1);
                        c.successes = 0;
                        c.last_error = Some(reason);
                        (c.state != CheckState::Down && c.failures >= c.config.failure_threshold)
                            .then_some(CheckState::Down)
                    }
                };
                if let Some(state) = new_state {
                    c.state = state;
                    c.transitions += 1;
                    c.state_since = Some(now);
                    out.push(HealthEvent::CheckChanged {
                        name: c.config.name.clone(),
                        up: state == CheckState::Up,
                        reason: if state == CheckState::Up {
                            None
                        } else {
                            c.last_error.clone()
                        },
                    });
                }
            }
        }
        let eligible = self.checks.iter().all(|c| c.state == CheckState::Up);
        if eligible != self.eligible {
            self.eligible = eligible;
            out.push(HealthEvent::Eligible(eligible));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(name: &str, failure: u32, success: u32) -> CheckConfig {
        CheckConfig {
            name: name.into(),
            target: format!("tcp://{name}:1"),
            failure_threshold: failure,
            success_threshold: success,
        }
    }

    fn ok(i: usize) -> GateInput {
        GateInput::ProbeResult {
            check: CheckId(i),
            outcome: ProbeOutcome::Success,
        }
    }

    fn fail(i: usize, why: &str) -> GateInput {
        GateInput::ProbeResult {
            check: CheckId(i),
            outcome: ProbeOutcome::Failure(why.into()),
        }
    }

    fn changed(name: &str, up: bool, reason: Option<&str>) -> HealthEvent {
        HealthEvent::CheckChanged {
            name: name.into(),
            up,
            reason: reason.map(str::to_string),
        }
    }

    /// Feeds `steps` one second apart and returns the events of each step.
    fn run(gate: &mut HealthGate, steps: Vec<GateInput>) -> Vec<Vec<HealthEvent>> {
        let t0 = Instant::now();
        steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| gate.handle(t0 + Duration::from_secs(i as u64), s))
            .collect()
    }

    #[test]
    fn no_checks_is_always_eligible() {
        let gate = HealthGate::new(vec![]);
        assert!(gate.eligible());
        assert!(gate.is_empty());
    }

    #[test]
    fn starts_unknown_and_not_eligible_until_first_success() {
        let mut gate = HealthGate::new(vec![cfg("api", 3, 1)]);
        assert!(!gate.eligible());
        assert_eq!(gate.state(CheckId(0)), Some(CheckState::Unknown));
        let ev = run(&mut gate, vec![ok(0)]);
        assert_eq!(
            ev[0],
            vec![changed("api", true, None), HealthEvent::Eligible(true)]
        );
        assert!(gate.eligible());
    }

    #[test]
    fn failures_below_threshold_keep_the_check_up() {
        let mut gate = HealthGate::new(vec![cfg("api", 3, 1)]);
        let ev = run(
            &mut gate,
            vec![ok(0), fail(0, "500"), fail(0, "500"), ok(0)],
        );
        assert!(ev[1].is_empty() && ev[2].is_empty() && ev[3].is_empty());
        assert!(gate.eligible());
        assert_eq!(gate.status()[0].consecutive_failures, 0);
    }

    #[test]
    fn failure_threshold_consecutive_failures_take_check_down_once() {
        let mut gate = HealthGate::new(vec![cfg("api", 3, 1)]);
        let ev = run(
            &mut gate,
            vec![
                ok(0),
                fail(0, "a"),
                fail(0, "b"),
                fail(0, "c"),
                fail(0, "d"),
            ],
        );
        assert_eq!(
            ev[3],
            vec![
                changed("api", false, Some("c")),
                HealthEvent::Eligible(false)
            ]
        );
        // Further failures are not changes: one log line per change.
        assert!(ev[4].is_empty());
        let st = &gate.status()[0];
        assert_eq!(st.state, CheckState::Down);
        assert_eq!(st.consecutive_failures, 4);
        assert_eq!(st.last_error.as_deref(), Some("d"));
        assert_eq!(st.transitions, 2);
        assert_eq!(st.probes, 5);
    }

    #[test]
    fn interleaved_success_resets_the_failure_streak() {
        let mut gate = HealthGate::new(vec![cfg("api", 2, 1)]);
        let ev = run(&mut gate, vec![ok(0), fail(0, "x"), ok(0), fail(0, "y")]);
        assert!(ev[1..].iter().all(Vec::is_empty));
        assert!(gate.eligible());
    }

    #[test]
    fn success_threshold_needs_consecutive_successes_to_recover() {
        let mut gate = HealthGate::new(vec![cfg("gw", 1, 3)]);
        let ev = run(
            &mut gate,
            vec![
                fail(0, "timeout"),
                ok(0),
                ok(0),
                fail(0, "t"),
                ok(0),
                ok(0),
                ok(0),
            ],
        );
        // Unknown -> Down after one failure; the aggregate was already false.
        assert_eq!(ev[0], vec![changed("gw", false, Some("timeout"))]);
        // Two successes then a failure: the success streak restarts.
        assert!(ev[1..6].iter().all(Vec::is_empty));
        assert_eq!(
            ev[6],
            vec![changed("gw", true, None), HealthEvent::Eligible(true)]
        );
    }

    #[test]
    fn unknown_reaches_down_after_failure_threshold_without_eligibility_event() {
        let mut gate = HealthGate::new(vec![cfg("api", 2, 1)]);
        let ev = run(&mut gate, vec![fail(0, "refused"), fail(0, "refused")]);
        assert!(ev[0].is_empty());
        assert_eq!(ev[1], vec![changed("api", false, Some("refused"))]);
        assert!(!gate.eligible());
    }

    #[test]
    fn eligible_only_when_all_checks_are_up() {
        let mut gate = HealthGate::new(vec![cfg("api", 1, 1), cfg("gw", 1, 1)]);
        let ev = run(
            &mut gate,
            vec![ok(0), ok(1), fail(1, "unreachable"), ok(0), ok(1)],
        );
        assert_eq!(ev[0], vec![changed("api", true, None)]);
        assert_eq!(
            ev[1],
            vec![changed("gw", true, None), HealthEvent::Eligible(true)]
        );
        assert_eq!(
            ev[2],
            vec![
                changed("gw", false, Some("unreachable")),
                HealthEvent::Eligible(false)
            ]
        );
        assert!(ev[3].is_empty());
        assert_eq!(
            ev[4],
            vec![changed("gw", true, None), HealthEvent::Eligible(true)]
        );
    }

    #[test]
    fn result_for_unknown_check_id_is_ignored() {
        let mut gate = HealthGate::new(vec![cfg("api", 1, 1)]);
        let ev = run(&mut gate, vec![ok(7)]);
        assert!(ev[0].is_empty());
        assert_eq!(gate.status()[0].probes, 0);
    }

    #[test]
    fn zero_thresholds_behave_as_one() {
        let mut gate = HealthGate::new(vec![cfg("api", 0, 0)]);
        let ev = run(&mut gate, vec![ok(0), fail(0, "x")]);
        assert_eq!(ev[0].len(), 2);
        assert_eq!(ev[1].len(), 2);
    }

    #[test]
    fn state_since_records_the_instant_of_the_change() {
        let mut gate = HealthGate::new(vec![cfg("api", 2, 1)]);
        let t0 = Instant::now();
        gate.handle(t0, ok(0));
        gate.handle(t0 + Duration::from_secs(5), fail(0, "x"));
        assert_eq!(gate.status()[0].state_since, Some(t0));
        gate.handle(t0 + Duration::from_secs(10), fail(0, "x"));
        assert_eq!(
            gate.status()[0].state_since,
            Some(t0 + Duration::from_secs(10))
        );
    }
}
