//! gobgpd: TOML config, start arguments, `gobgp -j` queries and their parsing.

use super::{
    useful_next_hop, CliArgs, DaemonSpec, Family, Prefix, RibEntry, RouterConfig, SessionState,
};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

pub(super) const GOBGPD_BIN: &str = "/usr/bin/gobgpd";
pub(super) const GOBGP_BIN: &str = "/usr/bin/gobgp";
pub(super) const CONFIG: &str = "gobgpd.toml";
const SOCKET: &str = "gobgpd.sock";

/// TOML strings: only what our validated inputs can contain needs care.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(super) fn render(cfg: &RouterConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "[global.config]");
    let _ = writeln!(s, "  as = {}", cfg.local_as);
    let _ = writeln!(s, "  router-id = \"{}\"", cfg.router_id);
    if !cfg.listen.is_empty() {
        let list: Vec<String> = cfg.listen.iter().map(|a| quote(&a.to_string())).collect();
        let _ = writeln!(s, "  local-address-list = [{}]", list.join(", "));
    }
    for n in &cfg.neighbors {
        let _ = writeln!(s, "\n[[neighbors]]\n  [neighbors.config]");
        let _ = writeln!(s, "    neighbor-address = \"{}\"", n.address);
        let _ = writeln!(s, "    peer-as = {}", n.remote_as);
        if let Some(p) = &n.md5_password {
            let _ = writeln!(s, "    auth-password = {}", quote(p));
        }
        let _ = writeln!(s, "  [neighbors.timers.config]");
        // gobgp's default connect-retry is 120 s: a first attempt made
        // before the peer listens would stall the test for two minutes.
        let _ = writeln!(s, "    connect-retry = 1");
        let _ = writeln!(s, "    hold-time = {}", n.hold_time);
        let _ = writeln!(s, "    keepalive-interval = {}", n.keepalive);
        let _ = writeln!(s, "  [neighbors.transport.config]");
        let _ = writeln!(s, "    passive-mode = {}", n.passive);
        if let Some(local) = cfg.local_addr(Family::of(n.address)) {
            let _ = writeln!(s, "    local-address = \"{local}\"");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(s, "  [neighbors.ebgp-multihop.config]");
            let _ = writeln!(s, "    enabled = true\n    multihop-ttl = {ttl}");
        }
        for (on, name) in [
            (n.ipv4_unicast, "ipv4-unicast"),
            (n.ipv6_unicast, "ipv6-unicast"),
        ] {
            if on {
                let _ = writeln!(
                    s,
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{name}\""
                );
            }
        }
    }
    s
}

fn target(dir: &Path) -> String {
    format!("unix://{}", dir.join(SOCKET).display())
}

pub(super) fn daemons(dir: &Path) -> Vec<DaemonSpec> {
    vec![DaemonSpec {
        name: "gobgpd",
        bin: GOBGPD_BIN,
        args: vec![
            "-f".into(),
            dir.join(CONFIG).display().to_string(),
            "-t".into(),
            "toml".into(),
            // The gRPC API on a unix socket in our directory instead of the
            // default :50051: no port clash between instances, and the CLI
            // reaches it from any namespace.
            format!("--api-hosts={}", target(dir)),
            // Plain text logs to stdout (our log file), not JSON.
            "--log-plain".into(),
            // pprof would listen on localhost:6060 in the namespace.
            "--pprof-disable".into(),
        ],
    }]
}

fn cli(dir: &Path, rest: &[&str]) -> CliArgs {
    let mut a = vec!["--target".to_string(), target(dir), "-j".to_string()];
    a.extend(rest.iter().map(|s| s.to_string()));
    (GOBGP_BIN, a)
}

pub(super) fn ready_args(dir: &Path) -> CliArgs {
    cli(dir, &["global"])
}

pub(super) fn rib_args(dir: &Path, family: Family) -> CliArgs {
    let a = match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    };
    cli(dir, &["global", "rib", "-a", a])
}

pub(super) fn neighbor_args(dir: &Path) -> CliArgs {
    cli(dir, &["neighbor"])
}

pub(super) fn route_args(dir: &Path, prefix: Prefix, add: bool) -> CliArgs {
    let a = match prefix.family() {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    };
    let p = prefix.to_string();
    let op = if add { "add" } else { "del" };
    let (bin, mut args) = cli(dir, &["global", "rib", op, &p, "-a", a]);
    // `-j` means nothing for add/del; drop it to keep the line readable.
    args.retain(|x| x != "-j");
    (bin, args)
}

/// `gobgp -j global rib`: `{"PREFIX": [path, ...], ...}`; a path has `best`,
/// `neighbor-ip` (absent for local routes) and `attrs` where type 3 is
/// NEXT_HOP and type 14 MP_REACH_NLRI (both with `nexthop`).
pub(super) fn parse_rib(out: &str) -> Result<Vec<RibEntry>, String> {
    if out.trim().is_empty() {
        // gobgp prints nothing at all for an empty table.
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let map = v.as_object().ok_or("not an object")?;
    let mut entries = Vec::new();
    for (pfx, paths) in map {
        let prefix: Prefix = pfx.parse().map_err(|e| format!("{e}"))?;
        for p in paths.as_array().ok_or("paths not an array")? {
            let mut next_hops = Vec::new();
            for attr in p["attrs"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                if matches!(attr["type"].as_u64(), Some(3) | Some(14)) {
                    if let Some(a) = attr["nexthop"].as_str().and_then(|s| s.parse().ok()) {
                        next_hops.push(a);
                    }
                }
            }
            next_hops.retain(useful_next_hop);
            let from_peer = p["neighbor-ip"]
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .filter(|a| !a.is_unspecified());
            entries.push(RibEntry {
                prefix,
                next_hops,
                from_peer,
                best: p["best"].as_bool().unwrap_or(false),
                multipath: false,
            });
        }
    }
    Ok(entries)
}

/// `gobgp -j neighbor`: an array; `state.session_state` is the API enum
/// (numeric in gobgp 3: 1 Idle … 6 Established), a string in some builds.
pub(super) fn parse_neighbor(out: &str, addr: IpAddr) -> Result<Option<SessionState>, String> {
    let v: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let peers = v.as_array().ok_or("not an array")?;
    for p in peers {
        let a = p["conf"]["neighbor_address"]
            .as_str()
            .or_else(|| p["state"]["neighbor_address"].as_str())
            .and_then(|s| s.parse::<IpAddr>().ok());
        if a != Some(addr) {
            continue;
        }
        let st = &p["state"]["session_state"];
        let state = match st.as_u64() {
            Some(1) => SessionState::Idle,
            Some(2) => SessionState::Connect,
            Some(3) => SessionState::Active,
            Some(4) => SessionState::OpenSent,
            Some(5) => SessionState::OpenConfirm,
            Some(6) => SessionState::Established,
            Some(n) => SessionState::Other(n.to_string()),
            // Absent (0, omitted by encoding/json) means UNKNOWN.
            None => match st.as_str() {
                Some(s) => SessionState::from_word(s),
                None => SessionState::Other("unknown".into()),
            },
        };
        return Ok(Some(state));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rib_json_of_local_and_received_paths() {
        let out = r#"{"203.0.113.10/32":[{"nlri":{"prefix":"203.0.113.10/32"},"age":1,"best":true,"attrs":[{"type":1,"value":2},{"type":3,"nexthop":"0.0.0.0"}],"stale":false},
          {"nlri":{"prefix":"203.0.113.10/32"},"age":1,"best":false,"attrs":[{"type":1,"value":2},{"type":3,"nexthop":"192.0.2.2"}],"neighbor-ip":"192.0.2.2","source-id":"192.0.2.2"}],
          "2001:db8:99::10/128":[{"nlri":{"prefix":"2001:db8:99::10/128"},"best":true,"attrs":[{"type":14,"nexthop":"2001:db8::2","afi":2,"safi":1}],"neighbor-ip":"2001:db8::2"}]}"#;
        let r = parse_rib(out).expect("parse");
        assert_eq!(r.len(), 3);
        let local = r
            .iter()
            .find(|e| e.best && e.from_peer.is_none())
            .expect("local");
        assert!(local.next_hops.is_empty(), "0.0.0.0 is no next hop");
        let v6 = r
            .iter()
            .find(|e| e.prefix.family() == Family::Ipv6)
            .expect("v6");
        assert_eq!(
            v6.next_hops,
            vec!["2001:db8::2".parse::<IpAddr>().expect("ip")]
        );
        assert!(parse_rib("").expect("empty").is_empty());
        assert!(parse_rib("[1]").is_err());
    }

    #[test]
    fn neighbor_state_is_the_numeric_api_enum() {
        let out = r#"[{"conf":{"neighbor_address":"192.0.2.2"},"state":{"session_state":6}},
                      {"conf":{"neighbor_address":"192.0.2.3"},"state":{"session_state":3}}]"#;
        let a = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(
            parse_neighbor(out, a("192.0.2.2")),
            Ok(Some(SessionState::Established))
        );
        assert_eq!(
            parse_neighbor(out, a("192.0.2.3")),
            Ok(Some(SessionState::Active))
        );
        assert_eq!(parse_neighbor(out, a("192.0.2.4")), Ok(None));
    }
}
