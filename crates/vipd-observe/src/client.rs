//! `vipd status`: reads a running daemon's `/status` and says, for people
//! (a table) or machines (the JSON as served), what it holds and why.
//!
//! The request is one plain HTTP/1.0 GET over a blocking socket with a
//! deadline: the command must answer quickly even when the daemon is
//! wedged, and HTTP/1.0 means the body is never chunked and ends at EOF.
//!
//! [`verdict`] decides the exit status: a daemon that answers but holds
//! nothing it should (it leads a VIP the kernel does not have, no node holds
//! the lease, its Services node lease is not valid, in BGP mode it has
//! addresses to announce and no router to announce them to, or in
//! routing-table mode it has bound an address whose route it could not
//! write) is not "fine".

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::status::{
    BgpEntry, BgpPeerEntry, Role, RoutingTableEntry, StatusSnapshot, BGP_ESTABLISHED,
};

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
    } else if !s.vips.is_empty() && s.lease.holder.is_none() && !bgp_ecmp(s) && !table_ecmp(s) {
        // (BGP ECMP mode and routing-table mode without leader election
        // have no lease: every healthy node announces or routes.)
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
    if let Some(b) = &s.bgp {
        problems.extend(bgp_problem(b));
    }
    if let Some(t) = &s.routing_table {
        problems.extend(table_problem(t));
    }
    problems
}

/// Whether routing-table mode is on with every healthy node routing.
fn table_ecmp(s: &StatusSnapshot) -> bool {
    s.routing_table.as_ref().is_some_and(|t| t.mode == "ecmp")
}

/// The routes wanted and not in the table.
fn missing_routes(t: &RoutingTableEntry) -> Vec<&str> {
    t.wanted
        .iter()
        .filter(|w| !t.routes.contains(w))
        .map(String::as_str)
        .collect()
}

/// Routing-table mode's verdict: an address bound here and allowed whose
/// route is not in the table is not exported by the routing daemon, so
/// nobody is sent to this node for it (with leader election: nobody at
/// all). The sink publishes after each pass over the table, so a wanted
/// route missing from a snapshot is one that pass could not write.
fn table_problem(t: &RoutingTableEntry) -> Option<String> {
    let missing = missing_routes(t);
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "routing table {} (proto {}): no route for {} although the address is bound here, so the routing daemon does not export it{}",
        t.table,
        t.protocol,
        missing.join(", "),
        t.last_error
            .as_ref()
            .map_or_else(String::new, |e| format!(" (last error: {e})"))
    ))
}

fn render_table(out: &mut String, t: &RoutingTableEntry) {
    let _ = writeln!(
        out,
        "\nrouting table {} proto {} ({})  routes {}",
        t.table,
        t.protocol,
        t.mode,
        if t.routes.is_empty() {
            "none".to_string()
        } else {
            format!("{}: {}", t.routes.len(), t.routes.join(", "))
        }
    );
    let missing = missing_routes(t);
    if !missing.is_empty() {
        let _ = writeln!(out, "  NOT written: {}", missing.join(", "));
    }
    if let Some(e) = &t.last_error {
        let _ = writeln!(out, "  last error: {e}");
    }
}

/// Whether BGP mode is on with every healthy node announcing (no lease).
fn bgp_ecmp(s: &StatusSnapshot) -> bool {
    s.bgp.as_ref().is_some_and(|b| b.mode == "ecmp")
}

/// BGP mode's verdict. A BGP-mode node serves only through the routers that
/// carry its routes, so, while it has addresses to announce, it is not
/// serving when no peer is Established (it announces nothing to anyone),
/// nor when peers are Established but none has been sent a single prefix
/// (the prefixes' family was not negotiated, or there is no next hop of
/// that family). One Established peer that carries the routes is enough:
/// the others being down is lost redundancy, which the per-peer lines
/// show, not an outage. A node with nothing to announce (a follower in
/// `leader` mode, an ineligible node) is judged by the election and
/// health checks above, not by its sessions.
fn bgp_problem(b: &BgpEntry) -> Option<String> {
    if b.announced.is_empty() {
        return None;
    }
    let established: Vec<&BgpPeerEntry> = b
        .peers
        .iter()
        .filter(|p| p.state == BGP_ESTABLISHED)
        .collect();
    if established.is_empty() {
        let errors: Vec<String> = b
            .peers
            .iter()
            .filter_map(|p| p.last_error.as_ref().map(|e| format!("{}: {e}", p.peer)))
            .collect();
        return Some(format!(
            "BGP: none of {} peers is Established, so the {} addresses to announce reach no router{}",
            b.peers.len(),
            b.announced.len(),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join("; "))
            }
        ));
    }
    if established.iter().all(|p| p.advertised.is_empty()) {
        return Some(format!(
            "BGP: {} peers Established but none has been sent a prefix of the {} to announce (family not negotiated, or no next hop of that family?)",
            established.len(),
            b.announced.len()
        ));
    }
    None
}

/// `12.3s`, `4m05s`, `2h07m`: how long a BGP session has been in its state.
fn age(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

fn render_bgp(out: &mut String, b: &BgpEntry) {
    let _ = writeln!(
        out,
        "\nbgp mode {}  announcing {}",
        b.mode,
        if b.announced.is_empty() {
            "nothing".to_string()
        } else {
            format!("{}: {}", b.announced.len(), b.announced.join(", "))
        }
    );
    if b.peers.is_empty() {
        out.push_str("  no peers configured\n");
        return;
    }
    let mut rows = vec![[
        "PEER".to_string(),
        "AS".into(),
        "STATE".into(),
        "SINCE".into(),
        "HOLD/KA".into(),
        "ADVERTISED".into(),
        "RECEIVED".into(),
        "BFD".into(),
        "LAST ERROR".into(),
    ]];
    for p in &b.peers {
        let timers = match (p.hold_time, p.keepalive) {
            (Some(h), Some(k)) => format!("{h}/{k}"),
            _ => "-".into(),
        };
        let advertised = if p.advertised.is_empty() {
            "0".to_string()
        } else {
            format!("{}: {}", p.advertised.len(), p.advertised.join(","))
        };
        let bfd = p.bfd.as_ref().map_or_else(
            || "-".to_string(),
            |f| {
                let mut cell = f.state.clone();
                if f.state != "Up" {
                    let mut why = vec![format!("remote {}", f.remote_state)];
                    if f.local_diag != "None" {
                        why.push(format!("diag {}", f.local_diag));
                    }
                    if f.remote_diag != "None" {
                        why.push(format!("remote diag {}", f.remote_diag));
                    }
                    let _ = write!(cell, " ({})", why.join(", "));
                }
                cell
            },
        );
        rows.push([
            p.peer.clone(),
            p.remote_as.to_string(),
            p.state.clone(),
            age(p.state_age_ms),
            timers,
            advertised,
            p.received.to_string(),
            bfd,
            p.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    table(out, &rows);
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
    if bgp_ecmp(s) && s.lease.backend == "none" {
        out.push_str("lease: none (BGP ECMP mode: every healthy node announces)\n");
    } else if table_ecmp(s) && s.lease.backend == "none" {
        out.push_str(
            "lease: none (routing-table mode without leader election: every healthy node writes its route)\n",
        );
    } else if s.quorum.is_none() {
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
    if let Some(b) = &s.bgp {
        render_bgp(&mut out, b);
    }
    if let Some(t) = &s.routing_table {
        render_table(&mut out, t);
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
            bgp: None,
            routing_table: None,
        }
    }

    /// Routing-table mode without leader election, one VIP bound.
    fn table_snapshot(routes: &[&str], last_error: Option<&str>) -> StatusSnapshot {
        let mut s = snapshot();
        s.lease.backend = "none".into();
        s.lease.holder = None;
        s.routing_table = Some(RoutingTableEntry {
            mode: "ecmp".into(),
            table: 198,
            protocol: 248,
            routes: routes.iter().map(|r| r.to_string()).collect(),
            wanted: vec!["192.0.2.100/32".into()],
            last_error: last_error.map(Into::into),
        });
        s
    }

    #[test]
    fn a_written_route_is_fine_and_shown_without_a_lease() {
        let s = table_snapshot(&["192.0.2.100/32"], None);
        assert!(verdict(&s).is_empty(), "{:?}", verdict(&s));
        let text = render(&s);
        assert!(
            text.contains("routing table 198 proto 248 (ecmp)  routes 1: 192.0.2.100/32"),
            "{text}"
        );
        assert!(text.contains("lease: none (routing-table mode"), "{text}");
        assert!(!text.contains("NOT written") && !text.contains("last error"));
    }

    #[test]
    fn a_bound_address_whose_route_could_not_be_written_is_unhealthy() {
        let err = "add route 192.0.2.100/32 to table 198 (proto 248): occupied by protocol 249";
        let s = table_snapshot(&[], Some(err));
        let v = verdict(&s);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].starts_with("routing table 198 (proto 248): no route for 192.0.2.100/32")
                && v[0].ends_with(&format!("(last error: {err})")),
            "{v:?}"
        );
        let text = render(&s);
        assert!(text.contains("routes none"), "{text}");
        assert!(text.contains("  NOT written: 192.0.2.100/32"), "{text}");
        assert!(text.contains(&format!("  last error: {err}")), "{text}");
        // Nothing wanted (an ineligible node, a follower): nothing missing.
        let mut s = s;
        if let Some(t) = s.routing_table.as_mut() {
            t.wanted.clear();
            t.mode = "leader".into();
        }
        s.lease.holder = Some("n2".into());
        assert!(verdict(&s).is_empty(), "{:?}", verdict(&s));
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

    fn bgp_peer(peer: &str, state: &str) -> crate::status::BgpPeerEntry {
        let up = state == BGP_ESTABLISHED;
        crate::status::BgpPeerEntry {
            peer: peer.into(),
            remote_as: 65000,
            state: state.into(),
            state_age_ms: 125_000,
            hold_time: up.then_some(90),
            keepalive: up.then_some(30),
            families: if up {
                vec!["ipv4-unicast".into()]
            } else {
                Vec::new()
            },
            advertised: if up {
                vec!["203.0.113.10/32".into()]
            } else {
                Vec::new()
            },
            received: 0,
            updates_sent: 1,
            updates_received: 0,
            last_error: (!up).then(|| "connect: connection refused".into()),
            bfd: None,
        }
    }

    /// ECMP BGP mode, no lease, one address to announce.
    fn bgp_snapshot(peers: Vec<crate::status::BgpPeerEntry>) -> StatusSnapshot {
        let mut s = snapshot();
        s.lease.backend = "none".into();
        s.lease.holder = None;
        s.bgp = Some(BgpEntry {
            mode: "ecmp".into(),
            announced: vec!["203.0.113.10/32".into()],
            peers,
        });
        s
    }

    fn peer_line<'a>(text: &'a str, peer: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(peer))
            .unwrap_or_else(|| panic!("no line for {peer} in:\n{text}"))
    }

    #[test]
    fn without_a_bgp_section_nothing_about_bgp_is_said_or_judged() {
        let s = snapshot();
        assert!(verdict(&s).is_empty());
        let text = render(&s);
        assert!(!text.contains("bgp") && !text.contains("PEER"), "{text}");
        assert!(text.contains("lease kube-system/plndr-cp-lock"), "{text}");
    }

    #[test]
    fn one_established_peer_carrying_the_routes_is_fine_and_shown() {
        let s = bgp_snapshot(vec![
            bgp_peer("192.0.2.1:179", BGP_ESTABLISHED),
            bgp_peer("[2001:db8::1]:179", "Connect"),
        ]);
        // One router carries the routes: lost redundancy, not an outage;
        // and ECMP mode has no lease to miss.
        assert!(verdict(&s).is_empty(), "{:?}", verdict(&s));
        let text = render(&s);
        assert!(
            text.contains("bgp mode ecmp  announcing 1: 203.0.113.10/32"),
            "{text}"
        );
        assert!(text.contains("lease: none (BGP ECMP mode"), "{text}");
        let line = peer_line(&text, "192.0.2.1:179");
        for cell in [
            "65000",
            "Established",
            "2m05s",
            "90/30",
            "1: 203.0.113.10/32",
        ] {
            assert!(line.contains(cell), "{cell:?} not in {line:?}");
        }
        let line = peer_line(&text, "[2001:db8::1]:179");
        assert!(
            line.contains("Connect") && line.ends_with("connect: connection refused"),
            "{line:?}"
        );
    }

    #[test]
    fn no_established_peer_with_addresses_to_announce_is_unhealthy() {
        let mut s = bgp_snapshot(vec![
            bgp_peer("192.0.2.1:179", "Idle"),
            bgp_peer("192.0.2.2:179", "OpenSent"),
        ]);
        let v = verdict(&s);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].starts_with("BGP: none of 2 peers is Established")
                && v[0].contains("192.0.2.1:179: connect: connection refused"),
            "{v:?}"
        );
        // Nothing to announce (a follower in leader mode): the sessions do
        // not decide whether it serves.
        if let Some(b) = s.bgp.as_mut() {
            b.mode = "leader".into();
            b.announced.clear();
        }
        s.lease.holder = Some("n2".into());
        assert!(verdict(&s).is_empty(), "{:?}", verdict(&s));
        // Leader mode still needs a lease holder.
        s.lease.holder = None;
        assert!(
            verdict(&s)
                .iter()
                .any(|p| p.starts_with("no node holds lease")),
            "{:?}",
            verdict(&s)
        );
    }

    #[test]
    fn established_peers_that_were_sent_no_prefix_are_unhealthy() {
        let mut peer = bgp_peer("[2001:db8::1]:179", BGP_ESTABLISHED);
        peer.advertised.clear();
        let v = verdict(&bgp_snapshot(vec![peer]));
        assert!(
            v.len() == 1 && v[0].contains("1 peers Established but none has been sent a prefix"),
            "{v:?}"
        );
    }

    #[test]
    fn bfd_down_is_shown_with_its_diagnostic() {
        let mut down = bgp_peer("192.0.2.1:179", "Idle");
        down.bfd = Some(crate::status::BfdEntry {
            state: "Down".into(),
            local_diag: "ControlDetectionTimeExpired".into(),
            remote_state: "Down".into(),
            remote_diag: "None".into(),
            detection_time_ms: 900,
        });
        let mut up = bgp_peer("192.0.2.2:179", BGP_ESTABLISHED);
        up.bfd = Some(crate::status::BfdEntry {
            state: "Up".into(),
            local_diag: "None".into(),
            remote_state: "Up".into(),
            remote_diag: "None".into(),
            detection_time_ms: 900,
        });
        let text = render(&bgp_snapshot(vec![down, up]));
        let line = peer_line(&text, "192.0.2.1:179");
        assert!(
            line.contains("Down (remote Down, diag ControlDetectionTimeExpired)"),
            "{line:?}"
        );
        let line = peer_line(&text, "192.0.2.2:179");
        assert!(line.contains("  Up  "), "{line:?}");
        assert!(
            peer_line(&text, "PEER").contains("BFD"),
            "no BFD column in:\n{text}"
        );
    }

    #[test]
    fn the_json_round_trips_through_the_served_form() {
        let s = snapshot();
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("\"bgp\""), "{json}");
        let back: StatusSnapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        let s = bgp_snapshot(vec![bgp_peer("192.0.2.1:179", BGP_ESTABLISHED)]);
        let back: StatusSnapshot =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
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
