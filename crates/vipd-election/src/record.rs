//! The election record, field for field client-go's `LeaderElectionRecord`.
//!
//! Backends map it onto their storage: the Kubernetes backend onto a
//! `coordination.k8s.io/v1` Lease spec (exactly as client-go's `LeaseLock`
//! does), the etcd backend onto a JSON value under one key. Wall-clock times
//! in the record are for other readers only; the election core never reads
//! them (R1 is decided on the local monotonic clock).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A wall-clock instant with microsecond precision, as Kubernetes `MicroTime`
/// (`2026-11-26T15:30:00.000000Z`). Only ever written for other readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime {
    /// Microseconds since the Unix epoch (UTC).
    pub unix_micros: i64,
}

impl WallTime {
    /// The current wall-clock time. The one place wall time is read: stamping
    /// `acquireTime`/`renewTime` for other readers (STYLE.md lesson 3).
    #[allow(clippy::disallowed_methods)]
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        WallTime {
            unix_micros: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        }
    }

    /// Formats as RFC 3339 with exactly six fractional digits and `Z`, the
    /// form the API server returns for `MicroTime`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.unix_micros.div_euclid(1_000_000);
        let micros = self.unix_micros.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }

    /// Parses RFC 3339 (`Z` or a numeric offset, 0–9 fractional digits).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut i = 19;
        let mut micros = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 6 {
                    micros = micros * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            let digits = i - start;
            if digits == 0 {
                return None;
            }
            for _ in digits..6 {
                micros *= 10;
            }
        }
        let offset = match s.get(i..)? {
            "Z" | "z" => 0,
            tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
                let oh: i64 = tz.get(1..3)?.parse().ok()?;
                let om: i64 = tz.get(4..6)?.parse().ok()?;
                let o = oh * 3600 + om * 60;
                if tz.starts_with('-') {
                    -o
                } else {
                    o
                }
            }
            _ => return None,
        };
        let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
        Some(WallTime {
            unix_micros: secs * 1_000_000 + micros,
        })
    }
}

impl fmt::Display for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for WallTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for WallTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        WallTime::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}

// Howard Hinnant's days<->civil algorithms (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// client-go's `LeaderElectionRecord`: who holds the lease and since when.
///
/// An empty `holder_identity` means the lease was released (client-go's
/// `ReleaseOnCancel` writes exactly that) and may be taken at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LeaseRecord {
    /// Identity of the holder; empty when released.
    pub holder_identity: String,
    /// How long others must see the record unchanged before taking over.
    pub lease_duration_seconds: u32,
    /// When the current holder acquired the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_time: Option<WallTime>,
    /// When the current holder last renewed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_time: Option<WallTime>,
    /// Number of times the lease changed hands.
    #[serde(default)]
    pub lease_transitions: u32,
}

/// An opaque store version: a Kubernetes `resourceVersion` or an etcd
/// `mod_revision` in decimal. Only compared for equality, never ordered
/// (Kubernetes documents resourceVersion as opaque).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(pub String);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A record together with the version it was read or written at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The record.
    pub record: LeaseRecord,
    /// The version that guards the next write.
    pub version: Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_round_trips_in_the_api_servers_format() {
        let t = WallTime::parse_rfc3339("2026-11-26T15:30:00.000000Z").expect("parse");
        assert_eq!(t.to_rfc3339(), "2026-11-26T15:30:00.000000Z");
        let t2 = WallTime::parse_rfc3339("2026-11-26T15:30:00.123456Z").expect("parse");
        assert_eq!(t2.unix_micros - t.unix_micros, 123_456);
        let t3 = WallTime::parse_rfc3339("2026-11-26T16:30:00+01:00").expect("parse");
        assert_eq!(t3, t);
        assert_eq!(
            WallTime { unix_micros: 0 }.to_rfc3339(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert!(WallTime::parse_rfc3339("2026-13-26T15:30:00Z").is_none());
        assert!(WallTime::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn record_serialises_with_client_go_field_names() {
        let r = LeaseRecord {
            holder_identity: "node-a".into(),
            lease_duration_seconds: 15,
            acquire_time: WallTime::parse_rfc3339("2026-11-26T15:30:00Z"),
            renew_time: WallTime::parse_rfc3339("2026-11-26T15:30:01Z"),
            lease_transitions: 2,
        };
        let j = serde_json::to_string(&r).expect("json");
        assert_eq!(
            j,
            r#"{"holderIdentity":"node-a","leaseDurationSeconds":15,"acquireTime":"2026-11-26T15:30:00.000000Z","renewTime":"2026-11-26T15:30:01.000000Z","leaseTransitions":2}"#
        );
        let back: LeaseRecord = serde_json::from_str(&j).expect("back");
        assert_eq!(back, r);
    }
}
