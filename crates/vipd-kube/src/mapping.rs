//! [`LeaseRecord`] ↔ `coordination.k8s.io/v1` Lease, exactly as client-go's
//! `LeaseLock` maps them (`LeaderElectionRecordToLeaseSpec` and
//! `LeaseSpecToLeaderElectionRecord` in `k8s.io/client-go/tools/leaderelection/
//! resourcelock/leaselock.go`).
//!
//! | record field             | Lease spec field       | note |
//! |--------------------------|------------------------|------|
//! | `holder_identity`        | `holderIdentity`       | always written, `""` when released |
//! | `lease_duration_seconds` | `leaseDurationSeconds` | int32 on the wire |
//! | `acquire_time`           | `acquireTime`          | MicroTime, 6 fractional digits |
//! | `renew_time`             | `renewTime`            | MicroTime, 6 fractional digits |
//! | `lease_transitions`      | `leaseTransitions`     | int32 on the wire |
//!
//! client-go replaces the whole spec on every write, so spec fields vipd does
//! not know (`strategy`, `preferredHolder`) are cleared, as client-go does.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use vipd_election::{LeaseRecord, StoreError, Version, Versioned, WallTime};

/// Converts a record time to a Kubernetes `MicroTime` (microsecond precision,
/// no loss). Fails only for instants outside jiff's range (years
/// -9999..=9999), which no clock produces.
pub fn wall_to_micro(t: WallTime) -> Result<MicroTime, StoreError> {
    Timestamp::from_microsecond(t.unix_micros)
        .map(MicroTime)
        .map_err(|e| StoreError::Rejected(format!("time {} out of range: {e}", t.unix_micros)))
}

/// Converts a `MicroTime` read from the API to a record time. Sub-microsecond
/// digits (the API server never writes them) are truncated toward the past.
pub fn micro_to_wall(t: &MicroTime) -> WallTime {
    WallTime {
        unix_micros: t.0.as_microsecond(),
    }
}

fn i32_of(v: u32) -> i32 {
    // client-go converts with `int32(...)`; the core never produces values
    // above i32::MAX (durations are validated, transitions count takeovers).
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn u32_of(v: i32) -> u32 {
    // The API server's validation rejects negative values; a malformed one
    // reads as 0 (client-go would carry the negative int along).
    u32::try_from(v).unwrap_or(0)
}

/// The Lease spec client-go writes for `record`.
pub fn spec_from_record(record: &LeaseRecord) -> Result<LeaseSpec, StoreError> {
    Ok(LeaseSpec {
        holder_identity: Some(record.holder_identity.clone()),
        lease_duration_seconds: Some(i32_of(record.lease_duration_seconds)),
        acquire_time: record.acquire_time.map(wall_to_micro).transpose()?,
        renew_time: record.renew_time.map(wall_to_micro).transpose()?,
        lease_transitions: Some(i32_of(record.lease_transitions)),
        // Version-dependent fields (strategy, preferredHolder on 1.31+)
        // stay unset, as in client-go's LeaderElectionRecordToLeaseSpec for
        // a record without them.
        ..LeaseSpec::default()
    })
}

/// The record client-go reads from `spec` (absent fields read as zero).
pub fn record_from_spec(spec: Option<&LeaseSpec>) -> LeaseRecord {
    let Some(spec) = spec else {
        return LeaseRecord::default();
    };
    LeaseRecord {
        holder_identity: spec.holder_identity.clone().unwrap_or_default(),
        lease_duration_seconds: spec.lease_duration_seconds.map(u32_of).unwrap_or(0),
        acquire_time: spec.acquire_time.as_ref().map(micro_to_wall),
        renew_time: spec.renew_time.as_ref().map(micro_to_wall),
        lease_transitions: spec.lease_transitions.map(u32_of).unwrap_or(0),
    }
}

/// The record and version of a Lease read from the API. A Lease without a
/// `resourceVersion` cannot guard a write, so it is rejected.
pub fn versioned_from_lease(lease: &Lease) -> Result<Versioned, StoreError> {
    let rv = lease
        .metadata
        .resource_version
        .clone()
        .filter(|rv| !rv.is_empty())
        .ok_or_else(|| StoreError::Rejected("lease without metadata.resourceVersion".into()))?;
    Ok(Versioned {
        record: record_from_spec(lease.spec.as_ref()),
        version: Version(rv),
    })
}

/// A new Lease object for `POST` (client-go's `LeaseLock.Create`: name,
/// namespace and spec only).
pub fn new_lease(namespace: &str, name: &str, record: &LeaseRecord) -> Result<Lease, StoreError> {
    Ok(Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(spec_from_record(record)?),
    })
}

/// The object for a `PUT`: `base` (the Lease last read, with its labels,
/// annotations, owner references, uid and managed fields) with its spec
/// replaced and `resourceVersion` set to `expected` — client-go's
/// `LeaseLock.Update` sends the object it read with only the spec changed.
pub fn replaced_lease(
    base: Lease,
    record: &LeaseRecord,
    expected: &Version,
) -> Result<Lease, StoreError> {
    if expected.0.is_empty() {
        // An empty resourceVersion makes a PUT unconditional (the API
        // answers 422 for leases, but never send it): a blind write.
        return Err(StoreError::Rejected("empty resourceVersion".into()));
    }
    let mut lease = base;
    lease.metadata.resource_version = Some(expected.0.clone());
    lease.spec = Some(spec_from_record(record)?);
    Ok(lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(s: &str) -> WallTime {
        WallTime::parse_rfc3339(s).expect("valid test time")
    }

    fn record() -> LeaseRecord {
        LeaseRecord {
            holder_identity: "node-a".into(),
            lease_duration_seconds: 15,
            acquire_time: Some(wall("2026-11-26T15:30:00.000000Z")),
            renew_time: Some(wall("2026-11-26T15:30:01.123456Z")),
            lease_transitions: 3,
        }
    }

    #[test]
    fn micro_time_conversion_keeps_every_microsecond() {
        for s in [
            "1970-01-01T00:00:00.000000Z",
            "2026-11-26T15:30:01.000001Z",
            "2026-11-26T15:30:01.999999Z",
            "1969-12-31T23:59:59.999999Z",
        ] {
            let w = wall(s);
            let m = wall_to_micro(w).expect("in range");
            assert_eq!(micro_to_wall(&m), w, "{s}");
            // k8s-openapi's own serialisation is the API server's format.
            let json = serde_json::to_string(&m).expect("json");
            assert_eq!(json, format!("\"{s}\""));
        }
    }

    #[test]
    fn micro_time_from_the_api_reads_sub_second_digits() {
        let m: MicroTime =
            serde_json::from_str("\"2026-11-26T15:30:00.5Z\"").expect("API may omit digits");
        assert_eq!(micro_to_wall(&m), wall("2026-11-26T15:30:00.500000Z"));
    }

    #[test]
    fn record_survives_a_round_trip_through_the_spec() {
        let r = record();
        let spec = spec_from_record(&r).expect("spec");
        assert_eq!(record_from_spec(Some(&spec)), r);
    }

    #[test]
    fn released_record_keeps_an_empty_holder_on_the_wire() {
        // client-go always sends holderIdentity, "" after ReleaseOnCancel.
        let r = LeaseRecord {
            holder_identity: String::new(),
            lease_duration_seconds: 1,
            ..record()
        };
        let spec = spec_from_record(&r).expect("spec");
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(json["holderIdentity"], "");
        assert_eq!(json["leaseDurationSeconds"], 1);
    }

    #[test]
    fn spec_written_by_client_go_reads_with_zero_defaults() {
        let spec: LeaseSpec =
            serde_json::from_str(r#"{"holderIdentity":"kube-vip-1"}"#).expect("minimal spec");
        let r = record_from_spec(Some(&spec));
        assert_eq!(r.holder_identity, "kube-vip-1");
        assert_eq!(r.lease_duration_seconds, 0);
        assert_eq!(r.acquire_time, None);
        assert_eq!(r.lease_transitions, 0);
        assert_eq!(record_from_spec(None), LeaseRecord::default());
    }

    #[test]
    fn negative_counters_from_a_foreign_writer_read_as_zero() {
        let spec: LeaseSpec =
            serde_json::from_str(r#"{"leaseDurationSeconds":-5,"leaseTransitions":-1}"#)
                .expect("spec");
        let r = record_from_spec(Some(&spec));
        assert_eq!((r.lease_duration_seconds, r.lease_transitions), (0, 0));
    }

    #[test]
    fn replace_keeps_the_metadata_read_and_sets_the_expected_version() {
        let mut base = new_lease("kube-system", "plndr-cp-lock", &record()).expect("lease");
        base.metadata.resource_version = Some("41".into());
        base.metadata.uid = Some("uid-1".into());
        base.metadata.labels = Some([("team".to_owned(), "net".to_owned())].into());
        let mut next = record();
        next.holder_identity = "node-b".into();
        let put = replaced_lease(base, &next, &Version("42".into())).expect("put");
        assert_eq!(put.metadata.resource_version.as_deref(), Some("42"));
        assert_eq!(put.metadata.uid.as_deref(), Some("uid-1"));
        assert_eq!(
            put.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("team"))
                .map(String::as_str),
            Some("net")
        );
        assert_eq!(
            record_from_spec(put.spec.as_ref()).holder_identity,
            "node-b"
        );
    }

    #[test]
    fn replace_refuses_an_empty_version() {
        let base = new_lease("ns", "l", &record()).expect("lease");
        assert!(matches!(
            replaced_lease(base, &record(), &Version(String::new())),
            Err(StoreError::Rejected(_))
        ));
    }

    #[test]
    fn lease_without_resource_version_is_rejected() {
        let lease = new_lease("ns", "l", &record()).expect("lease");
        assert!(matches!(
            versioned_from_lease(&lease),
            Err(StoreError::Rejected(_))
        ));
    }

    #[test]
    fn create_body_matches_the_recorded_client_go_request() {
        // The body of `lease-create` in /work/shared/kube-api/transcripts.json
        // (what client-go's LeaseLock.Create sends).
        let recorded: serde_json::Value = serde_json::from_str(
            r#"{"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "demo-lock", "namespace": "kube-system"},
                "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 15,
                         "acquireTime": "2026-11-26T15:30:00.000000Z",
                         "renewTime": "2026-11-26T15:30:00.000000Z",
                         "leaseTransitions": 0}}"#,
        )
        .expect("fixture");
        let r = LeaseRecord {
            holder_identity: "node-a".into(),
            lease_duration_seconds: 15,
            acquire_time: Some(wall("2026-11-26T15:30:00Z")),
            renew_time: Some(wall("2026-11-26T15:30:00Z")),
            lease_transitions: 0,
        };
        let ours = serde_json::to_value(new_lease("kube-system", "demo-lock", &r).expect("lease"))
            .expect("json");
        assert_eq!(ours, recorded);
    }
}
