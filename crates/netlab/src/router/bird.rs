//! BIRD 2: config, start arguments, `birdc` queries and parsing of its text output.
//!
//! Each neighbour is a `protocol bgp nI` (I = its index in the config), so
//! `birdc show protocols nI` and the `[nI ...]` tag in `show route` map back
//! to the neighbour's address.

use super::{
    useful_next_hop, BfdPeer, BfdState, CliArgs, DaemonSpec, Family, Prefix, RibEntry,
    RouterConfig, SessionState,
};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

pub(super) const BIRD_BIN: &str = "/usr/sbin/bird";
pub(super) const BIRDC_BIN: &str = "/usr/sbin/birdc";
pub(super) const CONFIG: &str = "bird.conf";
const SOCKET: &str = "bird.ctl";

pub(super) fn render(cfg: &RouterConfig) -> String {
    let mut s = String::new();
    // stderr is our log file (foreground mode).
    let _ = writeln!(s, "log stderr all;\nrouter id {};", cfg.router_id);
    // Interfaces and addresses come in over netlink; the device protocol is
    // what tells BIRD about them (needed to resolve direct next hops).
    let _ = writeln!(s, "protocol device {{ }}");
    if cfg.install_kernel {
        // `merge paths` exports equally good BGP paths as one multipath
        // kernel route: BIRD's ECMP.
        let merge = if cfg.max_paths > 1 {
            format!(" merge paths on limit {};", cfg.max_paths)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "protocol kernel k4 {{ ipv4 {{ export all; }};{merge} }}\nprotocol kernel k6 {{ ipv6 {{ export all; }};{merge} }}"
        );
    }
    if let Some(b) = cfg.neighbors.iter().find_map(|n| n.bfd) {
        let opts = format!(
            "min rx interval {} ms; min tx interval {} ms; multiplier {};",
            b.rx_ms, b.tx_ms, b.multiplier
        );
        let _ = writeln!(
            s,
            "protocol bfd {{ interface \"*\" {{ {opts} }}; multihop {{ {opts} }}; }}"
        );
    }
    for (i, n) in cfg.neighbors.iter().enumerate() {
        let _ = writeln!(s, "protocol bgp n{i} {{");
        match cfg.local_addr(Family::of(n.address)) {
            Some(a) => {
                let _ = writeln!(s, "  local {a} as {};", cfg.local_as);
            }
            None => {
                let _ = writeln!(s, "  local as {};", cfg.local_as);
            }
        }
        let _ = writeln!(s, "  neighbor {} as {};", n.address, n.remote_as);
        if n.passive {
            let _ = writeln!(s, "  passive on;");
        }
        let _ = writeln!(
            s,
            "  hold time {}; keepalive time {};",
            n.hold_time, n.keepalive
        );
        // Defaults are 5 s before the first connect, 120 s between retries
        // and 60 s of refusing after an error: far too slow for tests that
        // restart the peer.
        let _ = writeln!(
            s,
            "  connect delay time 1; connect retry time 1; error wait time 1, 5;"
        );
        if let Some(p) = &n.md5_password {
            let _ = writeln!(s, "  password \"{p}\";");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(s, "  multihop {ttl};");
        }
        if n.bfd.is_some() {
            let _ = writeln!(s, "  bfd on;");
        }
        // Explicit filters: BIRD refuses eBGP without them (RFC 8212). We
        // only listen to the speaker, never advertise back.
        if n.ipv4_unicast {
            let _ = writeln!(s, "  ipv4 {{ import all; export none; }};");
        }
        if n.ipv6_unicast {
            let _ = writeln!(s, "  ipv6 {{ import all; export none; }};");
        }
        let _ = writeln!(s, "}}");
    }
    s
}

pub(super) fn daemons(dir: &Path) -> Vec<DaemonSpec> {
    vec![DaemonSpec {
        name: "bird",
        bin: BIRD_BIN,
        args: vec![
            // Foreground, so the child we hold is bird itself.
            "-f".into(),
            "-c".into(),
            dir.join(CONFIG).display().to_string(),
            "-s".into(),
            dir.join(SOCKET).display().to_string(),
            "-P".into(),
            dir.join("bird.pid").display().to_string(),
        ],
    }]
}

fn cli(dir: &Path, rest: &[&str]) -> CliArgs {
    let mut a = vec!["-s".to_string(), dir.join(SOCKET).display().to_string()];
    a.extend(rest.iter().map(|s| s.to_string()));
    (BIRDC_BIN, a)
}

pub(super) fn ready_args(dir: &Path) -> CliArgs {
    cli(dir, &["show", "status"])
}

pub(super) fn rib_args(dir: &Path, family: Family) -> CliArgs {
    let t = match family {
        Family::Ipv4 => "master4",
        Family::Ipv6 => "master6",
    };
    cli(dir, &["show", "route", "all", "table", t])
}

pub(super) fn protocol_name(cfg: &RouterConfig, addr: IpAddr) -> Option<String> {
    cfg.neighbors
        .iter()
        .position(|n| n.address == addr)
        .map(|i| format!("n{i}"))
}

pub(super) fn neighbor_args(dir: &Path, proto: &str) -> CliArgs {
    cli(dir, &["show", "protocols", "all", proto])
}

pub(super) fn bfd_args(dir: &Path) -> CliArgs {
    cli(dir, &["show", "bfd", "sessions"])
}

/// `show route all table masterN`:
///
/// ```text
/// Table master4:
/// 203.0.113.10/32      unicast [n0 20:34:28.230] * (100) [AS64501?]
///         via 192.0.2.1 on eth0
///         Type: BGP univ
///         BGP.next_hop: 192.0.2.1
///                      unicast [n1 20:34:29.001] (100) [AS64501?]
///         via 192.0.2.3 on eth0
/// ```
/// A route header starts with the prefix, or with spaces for another route
/// of the same prefix; attribute lines start with a tab. `*` after the
/// bracket marks the best route.
pub(super) fn parse_rib(out: &str, cfg: &RouterConfig) -> Result<Vec<RibEntry>, String> {
    let mut entries: Vec<RibEntry> = Vec::new();
    let mut prefix: Option<Prefix> = None;
    // Next hops from `BGP.next_hop` of the current route, used when there is
    // no `via` line (unreachable routes).
    let mut bgp_nh: Vec<IpAddr> = Vec::new();
    let finish = |entries: &mut Vec<RibEntry>, bgp_nh: &mut Vec<IpAddr>| {
        if let Some(last) = entries.last_mut() {
            if last.next_hops.is_empty() {
                last.next_hops = std::mem::take(bgp_nh);
            }
        }
        bgp_nh.clear();
    };
    for line in out.lines() {
        if line.trim().is_empty() || line.starts_with("BIRD ") || line.starts_with("Table ") {
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let attr = attr.trim();
            let Some(last) = entries.last_mut() else {
                return Err(format!("attribute before any route: {line:?}"));
            };
            if let Some(rest) = attr.strip_prefix("via ") {
                if let Some(a) = rest.split_whitespace().next().and_then(|s| s.parse().ok()) {
                    last.next_hops.push(a);
                }
            } else if let Some(rest) = attr.strip_prefix("BGP.next_hop:") {
                bgp_nh = rest
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
            }
            last.next_hops.retain(useful_next_hop);
            continue;
        }
        // A route header.
        let body = if line.starts_with(' ') {
            line.trim_start()
        } else {
            let (p, rest) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("route line without attributes: {line:?}"))?;
            prefix = Some(p.parse().map_err(|e| format!("{e}"))?);
            rest.trim_start()
        };
        let Some(prefix) = prefix else {
            return Err(format!("route continuation before any prefix: {line:?}"));
        };
        finish(&mut entries, &mut bgp_nh);
        let open = body
            .find('[')
            .ok_or_else(|| format!("no [protocol ...] in {line:?}"))?;
        let close = body[open..]
            .find(']')
            .map(|i| open + i)
            .ok_or_else(|| format!("unclosed [ in {line:?}"))?;
        let tag = &body[open + 1..close];
        let proto = tag.split_whitespace().next().unwrap_or("");
        // `from ADDR` appears for multihop/iBGP sessions; otherwise the
        // protocol name is the neighbour (we named it).
        let from_tag = tag
            .split_whitespace()
            .skip_while(|w| *w != "from")
            .nth(1)
            .and_then(|s| s.parse::<IpAddr>().ok());
        let from_proto = proto
            .strip_prefix('n')
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| cfg.neighbors.get(i))
            .map(|n| n.address);
        let best = body[close + 1..].split_whitespace().next() == Some("*");
        entries.push(RibEntry {
            prefix,
            next_hops: Vec::new(),
            from_peer: from_tag.or(from_proto),
            best,
            multipath: false,
        });
    }
    finish(&mut entries, &mut bgp_nh);
    Ok(entries)
}

/// `show protocols all nI`: the `BGP state:` line. A protocol BIRD does not
/// know prints no such line.
pub(super) fn parse_neighbor(out: &str, _addr: IpAddr) -> Result<Option<SessionState>, String> {
    for line in out.lines() {
        if let Some(rest) = line.trim().strip_prefix("BGP state:") {
            return Ok(Some(SessionState::from_word(rest.trim())));
        }
    }
    if out.contains("syntax error") {
        return Err("birdc refused the query".into());
    }
    Ok(None)
}

/// `show bfd sessions`:
///
/// ```text
/// bfd1:
/// IP address                Interface  State      Since         Interval  Timeout
/// 192.0.2.1                 eth0       Up         20:34:28.230    0.100    0.300
/// ```
pub(super) fn parse_bfd(out: &str) -> Result<Vec<BfdPeer>, String> {
    let mut peers = Vec::new();
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let Some(peer) = w.first().and_then(|s| s.parse::<IpAddr>().ok()) else {
            continue;
        };
        let state = w
            .get(2)
            .ok_or_else(|| format!("BFD line without state: {line:?}"))?;
        peers.push(BfdPeer {
            peer,
            state: BfdState::from_word(state),
            diagnostic: None,
        });
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::super::{Neighbor, RouterKind};
    use super::*;
    use std::net::Ipv4Addr;

    fn cfg() -> RouterConfig {
        let mut c = RouterConfig::new(RouterKind::Bird, "ns", Ipv4Addr::new(192, 0, 2, 2), 64502);
        for a in ["192.0.2.1", "192.0.2.3"] {
            c.neighbors
                .push(Neighbor::new(a.parse().expect("ip"), 64501));
        }
        c
    }

    #[test]
    fn two_paths_of_one_prefix_and_the_best_marker() {
        let out = "BIRD 2.0.12 ready.\nTable master4:\n203.0.113.10/32      unicast [n0 20:34:28.230] * (100) [AS64501?]\n\tvia 192.0.2.1 on eth0\n\tType: BGP univ\n\tBGP.origin: Incomplete\n\tBGP.as_path: 64501\n\tBGP.next_hop: 192.0.2.1\n\tBGP.local_pref: 100\n                     unicast [n1 20:34:29.001] (100) [AS64501?]\n\tvia 192.0.2.3 on eth0\n\tType: BGP univ\n\tBGP.next_hop: 192.0.2.3\n203.0.113.20/32      unreachable [n1 20:34:29.001 from 198.51.100.9] * (100) [AS64501i]\n\tType: BGP univ\n\tBGP.next_hop: 203.0.113.99\n";
        let r = parse_rib(out, &cfg()).expect("parse");
        assert_eq!(r.len(), 3, "{r:?}");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(r[0].best && !r[1].best);
        assert_eq!(r[0].from_peer, Some(ip("192.0.2.1")));
        assert_eq!(r[1].from_peer, Some(ip("192.0.2.3")));
        assert_eq!(r[1].next_hops, vec![ip("192.0.2.3")]);
        assert_eq!(r[1].prefix, r[0].prefix);
        assert_eq!(r[2].from_peer, Some(ip("198.51.100.9")));
        assert_eq!(
            r[2].next_hops,
            vec![ip("203.0.113.99")],
            "falls back to BGP.next_hop"
        );
        assert!(parse_rib("BIRD 2.0.12 ready.\n", &cfg())
            .expect("empty")
            .is_empty());
        assert!(parse_rib("\tvia 192.0.2.1 on eth0\n", &cfg()).is_err());
    }

    #[test]
    fn protocol_state_and_bfd_sessions() {
        let out = "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\nn0         BGP        ---        up     20:34:28.230  Established   \n  BGP state:          Established\n    Neighbor address: 192.0.2.1\n";
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        assert_eq!(parse_neighbor(out, a), Ok(Some(SessionState::Established)));
        assert_eq!(parse_neighbor("BIRD 2.0.12 ready.\n", a), Ok(None));
        let bfd = "BIRD 2.0.12 ready.\nbfd1:\nIP address                Interface  State      Since         Interval  Timeout\n192.0.2.1                 eth0       Up         20:34:28.230    0.100    0.300\n2001:db8::1               eth0       Down       20:34:28.230    1.000    0.000\n";
        let p = parse_bfd(bfd).expect("bfd");
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].state, BfdState::Up);
        assert_eq!(p[1].state, BfdState::Down);
    }

    #[test]
    fn config_has_one_protocol_per_neighbour_and_merge_paths() {
        let mut c = cfg();
        c.install_kernel = true;
        c.max_paths = 4;
        c.neighbors[1] = c.neighbors[1]
            .clone()
            .passive()
            .md5("s3cret")
            .bfd(100, 100, 3);
        let text = render(&c);
        assert!(text.contains("protocol bgp n0 {"));
        assert!(text.contains("protocol bgp n1 {"));
        assert!(text.contains("merge paths on limit 4"));
        assert!(text.contains("password \"s3cret\""));
        assert!(text.contains("min rx interval 100 ms"));
        assert_eq!(text.matches("passive on").count(), 1);
    }
}
