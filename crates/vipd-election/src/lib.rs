//! vipd's leader election: a sans-IO core with client-go `LeaderElector`
//! semantics plus fencing (SPEC R1, R2, R7), and the [`LeaseStore`] seam that
//! coordination backends implement.
//!
//! The core ([`Elector`]) never sleeps, never does I/O and never reads a
//! clock: the driver passes the monotonic `now` with every input, executes the
//! returned [`Action`]s in order, and wakes it at [`Elector::poll_timeout`].

#![forbid(unsafe_code)]

mod core;
pub mod mem;
pub mod record;
pub mod store;
mod timings;

pub use crate::core::{Action, Elector, FenceReason, Input, Op, RequestId, Role, Stamp, Status};
pub use record::{LeaseRecord, Version, Versioned, WallTime};
pub use store::{LeaseStore, StoreError, WatchEvent};
pub use timings::{TimingError, Timings};
