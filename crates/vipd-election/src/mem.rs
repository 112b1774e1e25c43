//! An in-memory record store with the same optimistic-concurrency rules as
//! the real backends: the fake behind core tests and the simulation.
//!
//! It is synchronous and clock-free: the caller applies an [`Op`] at the
//! instant it reaches the "server" and delivers the answer whenever its
//! network model says so.

use crate::core::{Op, Stamp};
use crate::record::{LeaseRecord, Version, Versioned, WallTime};
use crate::store::StoreError;

/// One record, versioned by a counter (like etcd's mod_revision).
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    current: Option<Versioned>,
    revision: u64,
    writes: u64,
}

impl MemStore {
    /// An empty store (record absent).
    pub fn new() -> Self {
        Self::default()
    }

    /// The record as stored now.
    pub fn current(&self) -> Option<&Versioned> {
        self.current.as_ref()
    }

    /// Successful writes so far.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// Writes a record unconditionally, as another client would (for tests
    /// of foreign holders).
    pub fn force(&mut self, record: LeaseRecord) -> Versioned {
        self.put(record)
    }

    /// Deletes the record unconditionally.
    pub fn delete(&mut self) {
        self.current = None;
        self.revision += 1;
    }

    fn put(&mut self, record: LeaseRecord) -> Versioned {
        self.revision += 1;
        self.writes += 1;
        let v = Versioned {
            record,
            version: Version(self.revision.to_string()),
        };
        self.current = Some(v.clone());
        v
    }

    /// Applies one operation; `wall` stamps the record's times as a driver
    /// would just before sending.
    pub fn apply(&mut self, op: &Op, wall: WallTime) -> Result<Option<Versioned>, StoreError> {
        match op {
            Op::Get => Ok(self.current.clone()),
            Op::Create { record, stamp } => {
                if self.current.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                Ok(Some(self.put(stamped(record, *stamp, wall))))
            }
            Op::Update {
                record,
                version,
                stamp,
            } => match &self.current {
                Some(cur) if &cur.version == version => {
                    Ok(Some(self.put(stamped(record, *stamp, wall))))
                }
                _ => Err(StoreError::Conflict),
            },
        }
    }
}

/// Applies a [`Stamp`] to a record: what every driver does before writing.
pub fn stamped(record: &LeaseRecord, stamp: Stamp, wall: WallTime) -> LeaseRecord {
    let mut r = record.clone();
    r.renew_time = Some(wall);
    if stamp == Stamp::AcquireAndRenew || r.acquire_time.is_none() {
        r.acquire_time = Some(wall);
    }
    r
}
