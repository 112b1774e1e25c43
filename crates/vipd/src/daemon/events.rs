//! Kubernetes Events for state changes: best effort, never blocking the
//! election; nothing where the backend has no event API.

/// What an Event reports; the reason strings live with the Kubernetes
/// backend (`vipd_kube::reason`).
#[derive(Clone, Copy, Debug)]
pub(super) enum EventReason {
    Acquired,
    Lost,
    Duplicate,
    Health,
}

/// Kubernetes Events for state changes (best effort, never blocking), or
/// nothing where the backend has no event API.
#[derive(Clone)]
pub(super) enum Events {
    None,
    #[cfg(feature = "kubernetes")]
    Kube(vipd_kube::EventRecorder),
}

impl Events {
    pub(super) fn normal(&self, reason: EventReason, message: String) {
        self.emit(reason, message, false);
    }

    pub(super) fn warning(&self, reason: EventReason, message: String) {
        self.emit(reason, message, true);
    }

    #[cfg_attr(not(feature = "kubernetes"), allow(unused_variables))]
    fn emit(&self, reason: EventReason, message: String, warning: bool) {
        match self {
            Events::None => {}
            #[cfg(feature = "kubernetes")]
            Events::Kube(r) => {
                let kind = if warning {
                    vipd_kube::EventType::Warning
                } else {
                    vipd_kube::EventType::Normal
                };
                use vipd_kube::events::reason;
                let reason = match reason {
                    EventReason::Acquired => reason::ACQUIRED,
                    EventReason::Lost => reason::LOST,
                    EventReason::Duplicate => reason::DUPLICATE,
                    EventReason::Health => reason::HEALTH,
                };
                // record() never blocks; a full queue drops and counts.
                r.record(reason, message, kind);
            }
        }
    }
}
