//! FRR: per-daemon configs (zebra, bfdd, bgpd), start arguments, `vtysh` JSON queries.
//!
//! Every path a daemon uses is given on its command line (`-f`, `-i`, `-z`,
//! `--vty_socket`, `--bfdctl`), all inside the router's directory, so several
//! instances in different namespaces never meet in `/run/frr` and the host's
//! own FRR (if any) is never touched. The daemons drop to the `frr` user as
//! packaged (running them as root is refused: root is not in `frrvty`), so
//! the directory is handed to that user.

use super::{
    useful_next_hop, BfdPeer, BfdState, CliArgs, DaemonSpec, Family, Prefix, RibEntry,
    RouterConfig, RouterError, SessionState,
};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

pub(super) const ZEBRA_BIN: &str = "/usr/lib/frr/zebra";
pub(super) const BGPD_BIN: &str = "/usr/lib/frr/bgpd";
pub(super) const BFDD_BIN: &str = "/usr/lib/frr/bfdd";
pub(super) const VTYSH_BIN: &str = "/usr/bin/vtysh";
const ZSERV: &str = "zserv.api";

fn uses_bfd(cfg: &RouterConfig) -> bool {
    cfg.neighbors.iter().any(|n| n.bfd.is_some())
}

fn afi(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "ipv4",
        Family::Ipv6 => "ipv6",
    }
}

/// The config file of each daemon (`<daemon>.conf`).
pub(super) fn render(cfg: &RouterConfig) -> Vec<(&'static str, String)> {
    let host = format!("hostname {}\n", cfg.netns);
    let mut files = vec![("zebra.conf", host.clone())];
    if uses_bfd(cfg) {
        // One profile per neighbour: bgpd refers to it by name and bfdd
        // applies its timers to the session bgpd asks for.
        let mut b = host.clone();
        let _ = writeln!(b, "bfd");
        for (i, n) in cfg.neighbors.iter().enumerate() {
            if let Some(t) = n.bfd {
                let _ = writeln!(
                    b,
                    " profile n{i}\n  receive-interval {}\n  transmit-interval {}\n  detect-multiplier {}\n exit",
                    t.rx_ms, t.tx_ms, t.multiplier
                );
            }
        }
        let _ = writeln!(b, "exit");
        files.push(("bfdd.conf", b));
    }
    let mut s = host;
    let _ = writeln!(s, "router bgp {}", cfg.local_as);
    let _ = writeln!(s, " bgp router-id {}", cfg.router_id);
    // FRR ≥ 7.4 drops eBGP routes without an explicit policy (RFC 8212);
    // the lab router takes whatever the speaker announces.
    let _ = writeln!(s, " no bgp ebgp-requires-policy");
    // Families are activated per neighbour below, not implicitly.
    let _ = writeln!(s, " no bgp default ipv4-unicast");
    // `network` (announce) without a matching route in zebra.
    let _ = writeln!(s, " no bgp network import-check");
    // ECMP across announcers even when their AS paths differ (each node
    // may have its own AS).
    let _ = writeln!(s, " bgp bestpath as-path multipath-relax");
    for (i, n) in cfg.neighbors.iter().enumerate() {
        let a = n.address;
        let _ = writeln!(s, " neighbor {a} remote-as {}", n.remote_as);
        if n.passive {
            let _ = writeln!(s, " neighbor {a} passive");
        }
        let _ = writeln!(s, " neighbor {a} timers {} {}", n.keepalive, n.hold_time);
        // Default 120 s: the first attempt usually precedes the peer.
        let _ = writeln!(s, " neighbor {a} timers connect 1");
        if let Some(p) = &n.md5_password {
            let _ = writeln!(s, " neighbor {a} password {p}");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(s, " neighbor {a} ebgp-multihop {ttl}");
        }
        if let Some(local) = cfg.local_addr(Family::of(a)) {
            let _ = writeln!(s, " neighbor {a} update-source {local}");
        }
        if n.bfd.is_some() {
            let _ = writeln!(s, " neighbor {a} bfd profile n{i}");
        }
    }
    for family in [Family::Ipv4, Family::Ipv6] {
        let _ = writeln!(s, " address-family {} unicast", afi(family));
        let _ = writeln!(s, "  maximum-paths {}", cfg.max_paths);
        let _ = writeln!(s, "  maximum-paths ibgp {}", cfg.max_paths);
        for n in &cfg.neighbors {
            let on = match family {
                Family::Ipv4 => n.ipv4_unicast,
                Family::Ipv6 => n.ipv6_unicast,
            };
            if on {
                let _ = writeln!(s, "  neighbor {} activate", n.address);
            }
        }
        let _ = writeln!(s, " exit-address-family");
    }
    let _ = writeln!(s, "exit");
    files.push(("bgpd.conf", s));
    files
}

/// Hands the directory and its files to the `frr` user the daemons drop to.
pub(super) fn prepare_dir(dir: &Path) -> Result<(), RouterError> {
    let user =
        nix::unistd::User::from_name("frr")
            .ok()
            .flatten()
            .ok_or(RouterError::MissingBinary {
                path: "user frr",
                package: "frr",
            })?;
    let chown = |p: &Path| {
        nix::unistd::chown(p, Some(user.uid), Some(user.gid)).map_err(|e| RouterError::Io {
            what: format!("chown frr {}", p.display()),
            source: e.into(),
        })
    };
    chown(dir)?;
    let entries =
        std::fs::read_dir(dir).map_err(super::io_err(format!("list {}", dir.display())))?;
    for e in entries {
        let e = e.map_err(super::io_err("read dir entry"))?;
        chown(&e.path())?;
    }
    Ok(())
}

pub(super) fn daemons(cfg: &RouterConfig, dir: &Path) -> Vec<DaemonSpec> {
    let common = |name: &str| -> Vec<String> {
        vec![
            "-f".into(),
            dir.join(format!("{name}.conf")).display().to_string(),
            "-i".into(),
            dir.join(format!("{name}.pid")).display().to_string(),
            "-z".into(),
            dir.join(ZSERV).display().to_string(),
            // <dir>/<daemon>.vty instead of /run/frr.
            "--vty_socket".into(),
            dir.display().to_string(),
            // No TCP vty (2601, 2605...): the unix socket is enough.
            "-P".into(),
            "0".into(),
            "--log".into(),
            "stdout".into(),
        ]
    };
    let mut v = vec![DaemonSpec {
        name: "zebra",
        bin: ZEBRA_BIN,
        args: common("zebra"),
    }];
    if uses_bfd(cfg) {
        let mut a = common("bfdd");
        a.extend([
            "--bfdctl".into(),
            dir.join("bfdd.sock").display().to_string(),
        ]);
        v.push(DaemonSpec {
            name: "bfdd",
            bin: BFDD_BIN,
            args: a,
        });
    }
    let mut a = common("bgpd");
    if !cfg.install_kernel {
        // Keep the namespace's kernel table free of BGP routes.
        a.push("-n".into());
    }
    v.push(DaemonSpec {
        name: "bgpd",
        bin: BGPD_BIN,
        args: a,
    });
    v
}

/// The daemon's vty socket (and zebra's zserv socket) exist.
pub(super) fn ready(dir: &Path, daemon: &str) -> bool {
    dir.join(format!("{daemon}.vty")).exists() && (daemon != "zebra" || dir.join(ZSERV).exists())
}

fn vtysh(dir: &Path, daemon: &str, cmds: &[&str]) -> CliArgs {
    let d = dir.display().to_string();
    // --config_dir: never read the host's /etc/frr/vtysh.conf; -d: talk to
    // one daemon only (vtysh otherwise connects to every socket it finds).
    let mut a = vec![
        "--vty_socket".to_string(),
        d.clone(),
        "--config_dir".into(),
        d,
        "-d".into(),
        daemon.into(),
    ];
    for c in cmds {
        a.push("-c".into());
        a.push((*c).into());
    }
    (VTYSH_BIN, a)
}

pub(super) fn ready_args(dir: &Path, daemon: &str) -> CliArgs {
    vtysh(dir, daemon, &["show version"])
}

pub(super) fn rib_args(dir: &Path, family: Family) -> CliArgs {
    let c = format!("show bgp {} unicast json", afi(family));
    vtysh(dir, "bgpd", &[&c])
}

pub(super) fn neighbor_args(dir: &Path) -> CliArgs {
    vtysh(dir, "bgpd", &["show bgp neighbors json"])
}

pub(super) fn bfd_args(dir: &Path) -> CliArgs {
    vtysh(dir, "bfdd", &["show bfd peers json"])
}

pub(super) fn route_args(dir: &Path, cfg: &RouterConfig, prefix: Prefix, add: bool) -> CliArgs {
    let router = format!("router bgp {}", cfg.local_as);
    let af = format!("address-family {} unicast", afi(prefix.family()));
    let net = format!("{}network {prefix}", if add { "" } else { "no " });
    vtysh(dir, "bgpd", &["configure terminal", &router, &af, &net])
}

/// `show bgp ipvN unicast json`: `{"routes": {"PREFIX": [path, ...]}}`; a
/// path has `bestpath`, `multipath`, `peerId` (`(unspec)` for local routes)
/// and `nexthops: [{"ip", "scope"?...}]`.
pub(super) fn parse_rib(out: &str) -> Result<Vec<RibEntry>, String> {
    let v: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let routes = v["routes"].as_object().ok_or("no \"routes\" object")?;
    let mut entries = Vec::new();
    for (pfx, paths) in routes {
        let prefix: Prefix = pfx.parse().map_err(|e| format!("{e}"))?;
        for p in paths.as_array().ok_or("paths not an array")? {
            let mut next_hops: Vec<IpAddr> = p["nexthops"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .filter_map(|h| h["ip"].as_str()?.parse().ok())
                .collect();
            next_hops.retain(useful_next_hop);
            entries.push(RibEntry {
                prefix,
                next_hops,
                from_peer: p["peerId"].as_str().and_then(|s| s.parse().ok()),
                best: p["bestpath"].as_bool().unwrap_or(false),
                multipath: p["multipath"].as_bool().unwrap_or(false),
            });
        }
    }
    Ok(entries)
}

/// `show bgp neighbors json`: `{"ADDR": {"bgpState": "Established", ...}}`.
pub(super) fn parse_neighbor(out: &str, addr: IpAddr) -> Result<Option<SessionState>, String> {
    let v: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let map = v.as_object().ok_or("not an object")?;
    for (k, n) in map {
        if k.parse::<IpAddr>().ok() == Some(addr) {
            let st = n["bgpState"].as_str().ok_or("no bgpState")?;
            return Ok(Some(SessionState::from_word(st)));
        }
    }
    Ok(None)
}

/// `show bfd peers json`: `[{"peer", "status", "diagnostic", ...}]`.
pub(super) fn parse_bfd(out: &str) -> Result<Vec<BfdPeer>, String> {
    let v: Value = serde_json::from_str(out).map_err(|e| e.to_string())?;
    let arr = v.as_array().ok_or("not an array")?;
    let mut peers = Vec::new();
    for p in arr {
        let peer = p["peer"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("BFD peer without address")?;
        peers.push(BfdPeer {
            peer,
            state: BfdState::from_word(p["status"].as_str().unwrap_or("")),
            diagnostic: p["diagnostic"].as_str().map(str::to_string),
        });
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::super::{Neighbor, RouterKind};
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn rib_json_with_ecmp_paths() {
        let out = r#"{"vrfId":0,"routes":{"203.0.113.10/32":[
          {"valid":true,"multipath":true,"peerId":"192.0.2.3","nexthops":[{"ip":"192.0.2.3","afi":"ipv4","used":true}]},
          {"valid":true,"bestpath":true,"multipath":true,"peerId":"192.0.2.1","nexthops":[{"ip":"192.0.2.1","afi":"ipv4","used":true}]}],
          "2001:db8:99::10/128":[{"valid":true,"bestpath":true,"peerId":"2001:db8::1","nexthops":[{"ip":"2001:db8::1","scope":"global"},{"ip":"fe80::1","scope":"link-local"}]}],
          "203.0.113.50/32":[{"valid":true,"bestpath":true,"peerId":"(unspec)","nexthops":[{"ip":"0.0.0.0"}]}]}}"#;
        let r = parse_rib(out).expect("parse");
        assert_eq!(r.len(), 4);
        let ecmp: Vec<_> = r.iter().filter(|e| e.multipath).collect();
        assert_eq!(ecmp.len(), 2);
        assert_eq!(r.iter().filter(|e| e.best).count(), 3);
        let v6 = r
            .iter()
            .find(|e| e.prefix.family() == Family::Ipv6)
            .expect("v6");
        assert_eq!(
            v6.next_hops,
            vec!["2001:db8::1".parse::<IpAddr>().expect("ip")]
        );
        let local = r.iter().find(|e| e.from_peer.is_none()).expect("local");
        assert!(local.next_hops.is_empty());
        assert!(parse_rib(r#"{"routes": {  }  } "#)
            .expect("empty")
            .is_empty());
        assert!(parse_rib("% Unknown command").is_err());
    }

    #[test]
    fn neighbor_and_bfd_json() {
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let n = r#"{"192.0.2.1":{"bgpState":"Established"},"2001:db8::1":{"bgpState":"Active"}}"#;
        assert_eq!(parse_neighbor(n, a), Ok(Some(SessionState::Established)));
        assert_eq!(
            parse_neighbor(n, "2001:db8::1".parse().expect("ip")),
            Ok(Some(SessionState::Active))
        );
        assert_eq!(parse_neighbor("{}", a), Ok(None));
        let b = r#"[{"multihop":false,"peer":"192.0.2.1","status":"down","diagnostic":"control detection time expired","remote-diagnostic":"ok"}]"#;
        let p = parse_bfd(b).expect("bfd");
        assert_eq!(p[0].state, BfdState::Down);
        assert_eq!(
            p[0].diagnostic.as_deref(),
            Some("control detection time expired")
        );
    }

    #[test]
    fn bgpd_config_activates_families_and_bfd_profiles() {
        let mut c = RouterConfig::new(RouterKind::Frr, "r", Ipv4Addr::new(192, 0, 2, 2), 64502);
        c.max_paths = 8;
        c.neighbors.push(
            Neighbor::new("192.0.2.1".parse().expect("ip"), 64501)
                .passive()
                .bfd(100, 100, 3),
        );
        c.neighbors
            .push(Neighbor::new("2001:db8::1".parse().expect("ip"), 64501));
        let files = render(&c);
        let bgpd = &files.iter().find(|f| f.0 == "bgpd.conf").expect("bgpd").1;
        assert!(bgpd.contains(" neighbor 192.0.2.1 passive"));
        assert!(bgpd.contains(" neighbor 192.0.2.1 bfd profile n0"));
        assert!(bgpd.contains("  maximum-paths 8"));
        let v6 = bgpd
            .split(" address-family ipv6 unicast")
            .nth(1)
            .expect("v6 af");
        assert!(v6.contains("neighbor 2001:db8::1 activate"));
        assert!(!v6.contains("neighbor 192.0.2.1 activate"));
        let bfdd = &files.iter().find(|f| f.0 == "bfdd.conf").expect("bfdd").1;
        assert!(bfdd.contains("profile n0") && bfdd.contains("detect-multiplier 3"));
        assert_eq!(daemons(&c, Path::new("/x")).len(), 3);
    }
}
