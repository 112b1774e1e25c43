//! `vipd status`: reads a running daemon's `/status` and says, for people
//! (a table) or machines (the JSON as served), what it holds and why.
//!
//! The request is one plain HTTP/1.0 GET over a blocking socket with a
//! deadline: the command must answer quickly even when the daemon is
//! wedged, and HTTP/1.0 means the body is never chunked and ends at EOF.
//!
//! [`verdict`] decides the exit status: a daemon that answers but holds
//! nothing it should (it leads a VIP the kernel does not have, no node holds
//! the lease, or its Services node lease is not valid) is not "fine".

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::status::{Role, StatusSnapshot};

/// Why `/status` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusClientError {
    /// Connecting, writing or reading failed (daemon down, wrong address,
    /// HTTP endpoint disabled).
    #[error("cannot reach vipd at http://{addr}/status: {source}")]
    Unreachable {
        /// Where we asked.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// Something answered, but not with `200` and a `/status` body.
    #[error("unexpected answer from http://{addr}/status: {what}")]
    BadResponse {
        /// Where we asked.
        addr: SocketAddr,
        /// What was wrong.
        what: String,
    },
}

/// Fetches and parses `http://addr/status`, giving up after `timeout` for
/// each of connect, write and read.
pub fn fetch(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(StatusSnapshot, String), StatusClientError> {
    let io = |source| StatusClientError::Unreachable { addr, source };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream
        .write_all(
            format!("GET /status HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n")
                .as_bytes(),
        )
        .map_err(io)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io)?;
    let bad = |what: String| StatusClientError::BadResponse { addr, what };
    let text = String::from_utf8(raw).map_err(|_| bad("body is not UTF-8".into()))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no HTTP header".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    if status_line.split_whitespace().nth(1) != Some("200") {
        return Err(bad(format!("{status_line:?}")));
    }
    let snapshot =
        serde_json::from_str(body).map_err(|e| bad(format!("not a vipd /status body: {e}")))?;
    Ok((snapshot, body.to_string()))
}

/// What `vipd status` concludes: problems that make its exit status
/// non-zero, one line each (empty: fine).
pub fn verdict(s: &StatusSnapshot) -> Vec<String> {
    let mut problems = Vec::new();
    for v in &s.vips {
        if v.role == Role::Leader && !v.bound {
            problems.push(format!(
                "leads {} but the kernel does not have it on {}",
                v.vip, v.interface
            ));
        }
    }
    let e = &s.eligibility;
    if e.gated && !e.eligible {
        problems.push(if e.ever_eligible {
            "not eligible: a health check is down, so this node holds no address".to_string()
        } else {
            format!(
                "never eligible since it started {:.0}s ago: a health check has not passed once (wrong URL or CA?), so this node will hold no address",
                s.uptime_ms as f64 / 1000.0
            )
        });
    }
    if let Some(q) = &s.quorum {
        // Quorum mode: the holder comes from the voters, not a lease.
        if q.holder.is_none() && q.role != "witness" {
            problems.push(format!(
                "no quorum holder: {} of {} voters reachable (a majority is {})",
                q.voters_reachable,
                q.voters,
                q.voters / 2 + 1
            ));
        }
        // A follower (the witness included) hears the holder, not the
        // other followers: judge a witness by whether it backs a holder,
        // and give the count only to explain why not.
        if q.role == "witness" && q.holder.is_none() {
            problems.push(format!(
                "witness backs no holder and hears only {} of {} voters",
                q.voters_reachable, q.voters
            ));
        }
        if !q.socket_bound {
            problems.push(
                "the quorum socket is not bound (is the --peers address on this host?)".into(),
            );
        }
    } else if !s.vips.is_empty() && s.lease.holder.is_none() {
        problems.push(format!(
            "no node holds lease {} (as last read): the VIP is not served",
            s.lease.name
        ));
    }
    if let Some(svc) = &s.services {
        if !svc.lease_valid {
            problems.push(
                "this node's Services node lease is not valid: it serves no LoadBalancer address"
                    .into(),
            );
        }
    }
    problems
}

/// The human-readable report.
pub fn render(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    let ago = |ms: Option<u64>| {
        ms.map_or_else(
            || "never".to_string(),
            |ms| format!("{:.1}s ago", ms as f64 / 1000.0),
        )
    };
    let _ = writeln!(
        out,
        "node {}  vipd {}  up {:.0}s  ready {}  API reachable {}",
        s.node_name,
        s.version,
        s.uptime_ms as f64 / 1000.0,
        yes(s.ready),
        yes(s.api_reachable)
    );
    if s.quorum.is_none() {
        let _ = writeln!(
            out,
            "lease {} ({})  holder {}  last renewal by this node {}  transitions {}",
            s.lease.name,
            s.lease.backend,
            s.lease.holder.as_deref().unwrap_or("none"),
            ago(s.lease.last_renewal_ago_ms),
            s.lease.transitions
        );
    } else if s.lease.backend == "none" {
        out.push_str("store: none (quorum mode; nothing mirrored)\n");
    } else {
        let _ = writeln!(
            out,
            "mirror {} ({}, best effort)",
            s.lease.name, s.lease.backend
        );
    }
    if let Some(q) = &s.quorum {
        let hold = q
            .hold_remaining_seconds
            .map_or_else(|| "-".to_string(), |h| format!("{h:.2}s"));
        let drops: Vec<String> = q.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
        let _ =
            writeln!(
            out,
            "quorum role {}  term {}  holder {}  voters reachable {}/{}  hold left {}  drops {}",
            q.role,
            q.term,
            q.holder.as_deref().unwrap_or("none"),
            q.voters_reachable,
            q.voters,
            hold,
            if drops.is_empty() { "none".to_string() } else { drops.join(",") }
        );
    }
    if !s.vips.is_empty() {
        let mut rows = vec![[
            "VIP".to_string(),
            "INTERFACE".into(),
            "ROLE".into(),
            "BOUND".into(),
        ]];
        for v in &s.vips {
            let role = match v.role {
                Role::Leader => "leader",
                Role::Follower => "follower",
            };
            rows.push([
                v.vip.to_string(),
                v.interface.clone(),
                role.into(),
                yes(v.bound).into(),
            ]);
        }
        out.push('\n');
        table(&mut out, &rows);
    }
    if let Some(svc) = &s.services {
        let announced: Vec<String> = svc.announced.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "\nservices: {} addresses known, {} announced here, assigner {}, node lease valid {}, generation {}",
            svc.addresses,
            svc.announced.len(),
            yes(svc.assigner),
            yes(svc.lease_valid),
            svc.generation
        );
        if !announced.is_empty() {
            let _ = writeln!(out, "  announced: {}", announced.join(", "));
        }
    }
    if s.health.is_empty() {
        out.push_str("\nhealth checks: none (the node is always eligible)\n");
    } else {
        let mut rows = vec![[
            "CHECK".to_string(),
            "TARGET".into(),
            "STATE".into(),
            "LAST ERROR".into(),
        ]];
        for c in &s.health {
            let state = serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            rows.push([
                c.name.clone(),
                c.target.clone(),
                state,
                c.last_error.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        let e = &s.eligibility;
        let verdict = match (e.eligible, e.ever_eligible) {
            (true, _) => "eligible",
            (false, true) => "NOT eligible (a check is down)",
            (false, false) => "NEVER eligible since start",
        };
        let _ = writeln!(out, "\nhealth gate: {verdict}");
        table(&mut out, &rows);
    }
    out
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Left-aligned columns, two spaces apart; the first row is the header.
fn table<const N: usize>(out: &mut String, rows: &[[String; N]]) {
    let mut width = [0usize; N];
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, (w, cell)) in width.iter().zip(row).enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::status::{EligibilityEntry, LeaseEntry, ServicesEntry, StatusHandle, VipEntry};

    fn snapshot() -> StatusSnapshot {
        StatusSnapshot {
            node_name: "n1".into(),
            version: "0.1.0".into(),
            started_at: "2026-12-06T00:00:00Z".into(),
            uptime_ms: 12_000,
            vips: vec![VipEntry {
                vip: "192.0.2.100".parse().unwrap(),
                interface: "eth0".into(),
                role: Role::Leader,
                bound: true,
            }],
            lease: LeaseEntry {
                name: "kube-system/plndr-cp-lock".into(),
                backend: "kubernetes".into(),
                holder: Some("n1".into()),
                last_renewal_ago_ms: Some(400),
                transitions: 2,
            },
            api_reachable: true,
            health: Vec::new(),
            eligibility: EligibilityEntry::default(),
            ready: true,
            services: None,
            quorum: None,
        }
    }

    #[test]
    fn quorum_mode_is_judged_by_its_holder_not_the_lease() {
        use crate::status::QuorumEntry;
        let mut s = snapshot();
        s.lease.holder = None;
        s.lease.backend = "none".into();
        let entry = QuorumEntry {
            role: "holder".into(),
            term: 3,
            holder: Some("n1".into()),
            voters: 3,
            voters_reachable: 3,
            hold_remaining_seconds: Some(0.5),
            quiet_remaining_seconds: 0.0,
            socket_bound: true,
            drops: [("bad_mac".to_string(), 2)].into_iter().collect(),
        };
        s.quorum = Some(entry.clone());
        assert!(verdict(&s).is_empty(), "{:?}", verdict(&s));
        let text = render(&s);
        assert!(
            text.contains("quorum role holder  term 3  holder n1"),
            "{text}"
        );
        assert!(text.contains("drops bad_mac=2"), "{text}");
        assert!(text.contains("store: none"), "{text}");
        // No holder: a minority cannot serve, and says how many it hears.
        s.quorum = Some(QuorumEntry {
            role: "follower".into(),
            holder: None,
            voters_reachable: 1,
            ..entry.clone()
        });
        let v = verdict(&s);
        assert!(v.iter().any(|p| p.contains("1 of 3 voters")), "{v:?}");
        // A witness backing a holder is fine although it hears only the
        // holder (2 of 3, itself included); one backing nobody is not.
        s.vips.clear();
        s.quorum = Some(QuorumEntry {
            role: "witness".into(),
            holder: Some("n1".into()),
            voters_reachable: 2,
            ..entry.clone()
        });
        assert!(verdict(&s).is_empty(), "{:?}", verdict(&s));
        s.quorum = Some(QuorumEntry {
            role: "witness".into(),
            holder: None,
            voters_reachable: 1,
            ..entry
        });
        let v = verdict(&s);
        assert!(
            v.iter()
                .any(|p| p.contains("backs no holder and hears only 1 of 3")),
            "{v:?}"
        );
    }

    #[test]
    fn a_gate_that_never_passed_says_never_and_one_that_did_says_down() {
        let status = StatusHandle::new("n1", "0.1.0", "cp", "etcd");
        let now = tokio::time::Instant::now();
        assert!(!status.set_eligible(false), "gated, not yet eligible");
        let mut s = snapshot();
        s.eligibility = status.snapshot(now).eligibility;
        s.vips[0] = VipEntry {
            role: Role::Follower,
            bound: false,
            ..s.vips[0].clone()
        };
        let p = verdict(&s);
        assert!(p.len() == 1 && p[0].starts_with("never eligible"), "{p:?}");
        // Eligible once, then down again: "not eligible", not "never".
        assert!(status.set_eligible(true));
        assert!(status.set_eligible(false));
        s.eligibility = status.snapshot(now).eligibility;
        let p = verdict(&s);
        assert!(p.len() == 1 && p[0].starts_with("not eligible"), "{p:?}");
        // Without a gate nothing is said; an old /status without the field
        // reads as "no gate".
        let mut json = serde_json::to_value(snapshot()).unwrap();
        json.as_object_mut().unwrap().remove("eligibility");
        let old: StatusSnapshot = serde_json::from_value(json).unwrap();
        assert!(verdict(&old).is_empty());
    }

    #[test]
    fn a_bound_leader_is_fine_and_the_table_says_so() {
        let s = snapshot();
        assert!(verdict(&s).is_empty());
        let text = render(&s);
        assert!(text.contains("holder n1"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("192.0.2.100") && l.ends_with("yes")),
            "{text}"
        );
    }

    #[test]
    fn leading_without_the_address_or_nobody_holding_is_a_problem() {
        let mut s = snapshot();
        s.vips[0].bound = false;
        assert_eq!(verdict(&s).len(), 1);
        s.vips[0].role = Role::Follower;
        s.lease.holder = None;
        assert_eq!(verdict(&s), vec!["no node holds lease kube-system/plndr-cp-lock (as last read): the VIP is not served".to_string()]);
        s.vips.clear();
        s.services = Some(ServicesEntry::default());
        assert_eq!(verdict(&s).len(), 1, "an invalid Services node lease");
    }

    #[test]
    fn the_json_round_trips_through_the_served_form() {
        let s = snapshot();
        let json = serde_json::to_string(&s).unwrap();
        let back: StatusSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn an_unreachable_daemon_is_an_error_not_a_hang() {
        // A port nobody listens on (bound and dropped: the kernel refuses).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = fetch(addr, Duration::from_secs(1)).unwrap_err();
        assert!(
            matches!(err, StatusClientError::Unreachable { .. }),
            "{err}"
        );
    }
}
