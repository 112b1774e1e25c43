//! BGP mode and routing-table mode settings (SPEC §5b), configured by
//! kube-vip's variables with kube-vip's meaning, typed and validated here
//! before anything is touched. Peer strings are in `bgp_peers.rs`.
//!
//! What kube-vip reads (`pkg/kubevip/config_envvar.go`,
//! `config_environment.go`, the flags of `cmd/kube-vip.go`), and vipd
//! with it:
//!
//! - `bgp_enable` / `--bgp`: BGP mode.
//! - `bgp_routerid` / `--bgpRouterID`: the BGP identifier. Unset, kube-vip
//!   takes the address of `bgp_routerinterface` (read first, so
//!   `bgp_routerid` wins when both are set); vipd keeps the interface name
//!   and resolves its IPv4 address when the speaker starts.
//! - `bgp_as` / `--localAS` (default 65000): the local AS.
//! - `bgp_peers` / `--bgppeers`: the peer list (`bgp_peers.rs`).
//! - `bgp_peeraddress` / `--peerAddress` with `bgp_peeras` / `--peerAS`
//!   (default 65000), `bgp_peerpass` / `--peerPass` and `bgp_multihop` /
//!   `--multihop`: one more peer, appended after `bgp_peers` (port 179, no
//!   BFD, no per-peer MP-BGP). Without `bgp_peeraddress` the other three do
//!   nothing (kube-vip's generated manifests still write `bgp_peeras`).
//! - `bgp_sourceif` / `--sourceIF`, `bgp_sourceip` / `--sourceIP`: the
//!   sessions' bind interface and local address (kube-vip documents them
//!   as exclusive but applies both when both are set).
//! - `bgp_hold_time` / `--bgpHoldTimer` (default 30) and
//!   `bgp_keepalive_interval` / `--bgpKeepAliveInterval` (default 10):
//!   whole seconds, for every peer.
//! - `mpbgp_nexthop`, `mpbgp_ipv4`, `mpbgp_ipv6`: the global MP-BGP
//!   next-hop settings a peer's own sixth field overrides.
//! - `annotation` / `--annotations`: a node-annotation prefix. kube-vip
//!   then waits until the Node labelled `kubernetes.io/hostname=<node
//!   name>` carries, for prefix `P` (each key also accepted as
//!   `P/bgp-peers-0-<key>`, Equinix Metal's newer form):
//!   `P/node-asn` (the local AS), `P/src-ip` (router ID and source
//!   address), `P/peer-asn` (the peers' AS), `P/peer-ip` and
//!   `P/bgp-peers-<N>-peer-ip` for any N (the peer addresses, comma-joined),
//!   optionally `P/bgp-pass` (the MD5 password, base64) and
//!   `P/peer-multi-hop` (`true`/`false`). The peers so found replace the
//!   configured ones; the other settings stay. Reading the Node needs the
//!   Kubernetes client, so here only the prefix is validated, and a
//!   configuration with it needs neither peers nor a router ID; the daemon
//!   reads the Node before the speaker starts (`bgp_annotations.rs`,
//!   `routing/bgp_node.rs`).
//! - `zebra_*`: not used (warned in `kubevip.rs`).
//!
//! Routing-table mode: `vip_routingtable` / `--table`, with
//! `vip_routingtableid` / `--tableID` (default 198),
//! `vip_routingtabletype` / `--tableType` (an `RTN_*` number, default 1,
//! unicast), `vip_routingprotocol` / `--routingProtocol` (default 248) and
//! `vip_cleanroutingtable` / `--cleanRoutingTable` (default false).
//!
//! kube-vip parses these variables whether or not its mode is on, so a
//! malformed one is an error either way; the checks that need the mode
//! (a peer, a router ID, MP-BGP next hops that can be found) apply only
//! when it is on. Both modes, for the control-plane VIP and for Services,
//! are wired into the daemon (`routing/bgp.rs`, `routing/table.rs`,
//! `routing/routes.rs`, `services.rs`).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::bgp_peers::{
    autonomous_system, parse_peers, peer_address, BgpPeer, Mpbgp, MpbgpNexthop, PeerError, Secret,
    DEFAULT_BGP_PORT, REDACTED,
};
use super::options::*;
use super::sources::Resolver;
use super::{values, ConfigError, Source};

/// kube-vip's `--localAS` and `--peerAS` default.
pub const DEFAULT_BGP_AS: u32 = 65000;
/// kube-vip's `--bgpHoldTimer` default.
pub const DEFAULT_BGP_HOLD_TIME: Duration = Duration::from_secs(30);
/// kube-vip's `--bgpKeepAliveInterval` default.
pub const DEFAULT_BGP_KEEPALIVE: Duration = Duration::from_secs(10);
/// kube-vip's `--tableID` default.
pub const DEFAULT_ROUTING_TABLE_ID: u32 = 198;
/// kube-vip's `--tableType` default, `RTN_UNICAST`.
pub const DEFAULT_ROUTE_TYPE: u8 = 1;
/// kube-vip's `--routingProtocol` default.
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 248;

/// Where the BGP identifier comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterId {
    /// `bgp_routerid`: an IPv4 address, not 0.0.0.0 (RFC 6286 §2.1).
    Fixed(Ipv4Addr),
    /// `bgp_routerinterface`: this interface's IPv4 address, looked up
    /// when the speaker starts.
    FromInterface(String),
    /// Neither is set but `annotation` is: the node's `<prefix>/src-ip`.
    FromNodeAnnotations,
}

/// Validated BGP mode settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSettings {
    /// The BGP identifier.
    pub router_id: RouterId,
    /// The local AS (4-octet, never 0).
    pub local_as: u32,
    /// `bgp_peers`, then the `bgp_peeraddress` peer; no two with the same
    /// address and port. Empty only with `node_annotations`.
    pub peers: Vec<BgpPeer>,
    /// Interface the sessions bind to.
    pub source_if: Option<String>,
    /// Local address of the sessions.
    pub source_ip: Option<IpAddr>,
    /// Hold time offered in OPEN: zero or at least 3 s (RFC 4271 §4.2).
    pub hold_time: Duration,
    /// Keepalive interval: below `hold_time` when that is not zero
    /// (RFC 4271 §10 suggests a third of it).
    pub keepalive: Duration,
    /// Global MP-BGP next-hop settings; see [`BgpSettings::mpbgp_for`].
    pub mpbgp: Mpbgp,
    /// kube-vip's `annotation`: the node-annotation prefix that supplies
    /// the local AS, router ID, source address and peers at run time.
    pub node_annotations: Option<String>,
    /// Only the elected holder announces the control-plane VIP
    /// (`--leaderElection` / `vip_leaderelection=true`, or `--coordination
    /// quorum`); otherwise
    /// every healthy node does and the router spreads traffic over them
    /// (ECMP), as kube-vip's BGP mode without leader election.
    pub leader_election: bool,
    /// Services: only the owner of an address announces it
    /// (`svc_election=true`, kube-vip's per-Service election; vipd's
    /// ownership core decides the owner); otherwise every eligible node
    /// does (ECMP; `externalTrafficPolicy: Local` → nodes hosting a ready
    /// endpoint).
    pub services_election: bool,
}

impl BgpSettings {
    /// A peer's effective MP-BGP settings: its own, else the global ones.
    pub fn mpbgp_for(&self, peer: &BgpPeer) -> Mpbgp {
        peer.mpbgp.or(&self.mpbgp)
    }
}

/// Validated routing-table mode settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingTableSettings {
    /// Kernel routing table (RTA_TABLE, 32 bits), never 0 (RT_TABLE_UNSPEC).
    pub table_id: u32,
    /// Route type (`rtm_type`, an `RTN_*` value 1..=11).
    pub route_type: u8,
    /// Route protocol (`rtm_protocol`), the tag that marks the routes as
    /// ours for cleaning.
    pub protocol: u8,
    /// Remove routes with `protocol` from the table at start.
    pub clean: bool,
    /// Only the elected holder writes the control-plane VIP's route
    /// (`vip_leaderelection=true`, or `--coordination quorum`); otherwise
    /// every healthy node does, as kube-vip's routing-table mode without
    /// leader election (`StartVipService`), and the routing daemons
    /// announce the VIP from every node (anycast/ECMP).
    pub leader_election: bool,
    /// Services: only the owner of an address writes its route
    /// (`svc_election=true`); otherwise every eligible node does, as in
    /// BGP mode ([`BgpSettings::services_election`]).
    pub services_election: bool,
}

/// The BGP options, in table order, for "is any set" and the refusal.
const BGP_OPTIONS: &[&Opt] = &[
    &BGP,
    &BGP_ROUTER_ID,
    &BGP_ROUTER_INTERFACE,
    &BGP_AS,
    &BGP_PEERS,
    &BGP_PEER_ADDRESS,
    &BGP_PEER_AS,
    &BGP_PEER_PASS,
    &BGP_MULTIHOP,
    &BGP_SOURCE_IF,
    &BGP_SOURCE_IP,
    &BGP_HOLD_TIME,
    &BGP_KEEPALIVE,
    &MPBGP_NEXTHOP,
    &MPBGP_IPV4,
    &MPBGP_IPV6,
    &BGP_ANNOTATIONS,
];

const TABLE_OPTIONS: &[&Opt] = &[
    &ROUTING_TABLE,
    &ROUTING_TABLE_ID,
    &ROUTING_TABLE_TYPE,
    &ROUTING_PROTOCOL,
    &CLEAN_ROUTING_TABLE,
];

/// `opt`'s value if set and not blank (kube-vip: an empty variable is an
/// unset one; for these options vipd treats an empty flag or `VIPD_*`
/// value the same way), parsed with `parse`.
fn value<T>(
    r: &Resolver<'_>,
    opt: &Opt,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<(T, Source)>, ConfigError> {
    let Some(raw) = r.raw(opt).filter(|raw| !raw.value.trim().is_empty()) else {
        return Ok(None);
    };
    match parse(raw.value.trim()) {
        Ok(v) => Ok(Some((v, raw.source))),
        Err(expected) => Err(ConfigError::Invalid {
            option: opt.describe(),
            // Never echo a password, even a malformed one.
            value: if opt.key == BGP_PEER_PASS.key {
                REDACTED.into()
            } else {
                raw.value
            },
            from: raw.source,
            expected,
        }),
    }
}

/// [`value`] with a default, recording the effective value for
/// `check-config`.
fn value_or<T>(
    r: &mut Resolver<'_>,
    opt: &Opt,
    default: T,
    show: impl Fn(&T) -> String,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<(T, Source), ConfigError> {
    let (v, source) = value(r, opt, parse)?.unwrap_or((default, Source::Default));
    r.record(opt, show(&v), source.clone());
    Ok((v, source))
}

fn boolean(s: &str) -> Result<bool, String> {
    values::boolean(s).map_err(String::from)
}

/// Whole seconds up to 65535 (the OPEN message's 16-bit hold time).
fn whole_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<u16>()
        .map(|n| Duration::from_secs(n.into()))
        .map_err(|_| format!("whole seconds 0-65535, got '{s}'"))
}

fn secs(d: &Duration) -> String {
    format!("{}s", d.as_secs())
}

/// Resolves BGP mode: `Some` when `bgp_enable` is on. The settings are
/// parsed (and shown by `check-config`) whenever any is given.
pub(super) fn resolve_bgp(
    r: &mut Resolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<BgpSettings>, ConfigError> {
    let enabled = value(r, &BGP, boolean)?;
    let any_set = BGP_OPTIONS[1..]
        .iter()
        .any(|o| r.raw(o).is_some_and(|raw| !raw.value.trim().is_empty()));
    let on = enabled.as_ref().is_some_and(|(on, _)| *on);
    if !on && !any_set {
        return Ok(None);
    }
    let (on, _) = value_or(r, &BGP, false, |b| b.to_string(), boolean)?;

    let (local_as, _) = value_or(
        r,
        &BGP_AS,
        DEFAULT_BGP_AS,
        u32::to_string,
        autonomous_system,
    )?;
    if local_as == 23456 {
        warnings.push(format!(
            "{} 23456 is AS_TRANS, which RFC 6793 reserves for 2-octet speakers; use your real AS",
            BGP_AS.describe()
        ));
    }

    let annotations = value(r, &BGP_ANNOTATIONS, |s| {
        values::object_name(s, 253).map_err(|()| {
            "a node-annotation prefix: a DNS subdomain such as metal.equinix.com (keys are <prefix>/node-asn, <prefix>/peer-ip, ...)".to_string()
        })
    })?;
    if let Some((a, s)) = &annotations {
        r.record(&BGP_ANNOTATIONS, a.clone(), s.clone());
    }

    // Router ID: bgp_routerid, else bgp_routerinterface, else annotations.
    let router_id = value(r, &BGP_ROUTER_ID, router_id)?;
    let router_if = value(r, &BGP_ROUTER_INTERFACE, |s| {
        values::interface(s).map_err(String::from)
    })?;
    let router_id = match (router_id, router_if) {
        (Some((id, s)), other) => {
            if other.is_some() {
                warnings.push(format!(
                    "{} is ignored because {} is set (kube-vip: the router ID wins)",
                    BGP_ROUTER_INTERFACE.describe(),
                    BGP_ROUTER_ID.describe()
                ));
            }
            r.record(&BGP_ROUTER_ID, id.to_string(), s);
            Some(RouterId::Fixed(id))
        }
        (None, Some((name, s))) => {
            r.record(&BGP_ROUTER_ID, format!("the IPv4 address of {name}"), s);
            Some(RouterId::FromInterface(name))
        }
        (None, None) => annotations.as_ref().map(|(prefix, s)| {
            r.record(
                &BGP_ROUTER_ID,
                format!("node annotation {prefix}/src-ip"),
                s.clone(),
            );
            RouterId::FromNodeAnnotations
        }),
    };

    let mut peers = Vec::new();
    if let Some(raw) = r.raw(&BGP_PEERS).filter(|raw| !raw.value.trim().is_empty()) {
        peers = parse_peers(&raw.value).map_err(|e| ConfigError::BgpPeer {
            option: BGP_PEERS.describe(),
            from: raw.source.clone(),
            peer: Box::new(e),
        })?;
        for (i, p) in peers.iter().enumerate() {
            if let Some(first) = peers[..i]
                .iter()
                .position(|q| (q.address, q.port) == (p.address, p.port))
            {
                return Err(ConfigError::BgpPeer {
                    option: BGP_PEERS.describe(),
                    from: raw.source.clone(),
                    peer: Box::new(PeerError {
                        index: i + 1,
                        peer: p.redacted(),
                        field: "address",
                        problem: format!(
                            "the same address and port as peer {}: one session per peer",
                            first + 1
                        ),
                    }),
                });
            }
        }
    }
    single_peer(r, &mut peers, warnings)?;
    if !peers.is_empty() {
        let shown: Vec<String> = peers.iter().map(BgpPeer::redacted).collect();
        let source = r
            .raw(&BGP_PEERS)
            .or_else(|| r.raw(&BGP_PEER_ADDRESS))
            .map_or(Source::Default, |raw| raw.source);
        r.record(&BGP_PEERS, shown.join(","), source);
    }

    let source_if = value(r, &BGP_SOURCE_IF, |s| {
        values::interface(s).map_err(String::from)
    })?;
    let source_ip = value(r, &BGP_SOURCE_IP, |s| {
        peer_address(s.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|(_, p)| p.replace("every peer needs ADDRESS:AS", "an IP address"))
    })?;
    for (opt, v) in [
        (
            &BGP_SOURCE_IF,
            source_if.as_ref().map(|(v, s)| (v.clone(), s)),
        ),
        (
            &BGP_SOURCE_IP,
            source_ip.as_ref().map(|(v, s)| (v.to_string(), s)),
        ),
    ] {
        if let Some((v, s)) = v {
            r.record(opt, v, s.clone());
        }
    }
    if source_if.is_some() && source_ip.is_some() {
        warnings.push(format!(
            "{} and {} are both set; kube-vip documents them as alternatives (it binds the interface and the address both)",
            BGP_SOURCE_IF.describe(),
            BGP_SOURCE_IP.describe()
        ));
    }

    let (hold_time, _) = value_or(r, &BGP_HOLD_TIME, DEFAULT_BGP_HOLD_TIME, secs, |s| {
        let d = whole_seconds(s)?;
        // RFC 4271 §4.2: zero (no keepalives, no hold timer) or >= 3 s.
        if d.as_secs() == 1 || d.as_secs() == 2 {
            return Err("0 or 3-65535 seconds (RFC 4271 §4.2)".into());
        }
        Ok(d)
    })?;
    let (keepalive, keepalive_source) = value_or(
        r,
        &BGP_KEEPALIVE,
        DEFAULT_BGP_KEEPALIVE,
        secs,
        whole_seconds,
    )?;
    if !hold_time.is_zero() && (keepalive.is_zero() || keepalive >= hold_time) {
        return Err(ConfigError::Invalid {
            option: BGP_KEEPALIVE.describe(),
            value: keepalive.as_secs().to_string(),
            from: keepalive_source,
            expected: format!(
                "1 to {} seconds: below {} {}s, or the peer's hold timer expires between keepalives (RFC 4271 §10 suggests a third of it)",
                hold_time.as_secs() - 1,
                BGP_HOLD_TIME.describe(),
                hold_time.as_secs()
            ),
        });
    }
    if !hold_time.is_zero() && keepalive * 3 > hold_time {
        warnings.push(format!(
            "{} {}s is more than a third of the hold time {}s (RFC 4271 §10): one lost keepalive can end the session",
            BGP_KEEPALIVE.describe(),
            keepalive.as_secs(),
            hold_time.as_secs()
        ));
    }

    let mpbgp = Mpbgp {
        nexthop: value(r, &MPBGP_NEXTHOP, MpbgpNexthop::parse)?.map(|(n, s)| {
            r.record(&MPBGP_NEXTHOP, n.as_str().into(), s);
            n
        }),
        ipv4: value(r, &MPBGP_IPV4, |s| {
            s.parse::<Ipv4Addr>()
                .map_err(|_| format!("an IPv4 address, got '{s}'"))
        })?
        .map(|(a, s)| {
            r.record(&MPBGP_IPV4, a.to_string(), s);
            a
        }),
        ipv6: value(r, &MPBGP_IPV6, |s| {
            s.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("an IPv6 address, got '{s}'"))
        })?
        .map(|(a, s)| {
            r.record(&MPBGP_IPV6, a.to_string(), s);
            a
        }),
    };

    if !on {
        warnings.push(format!(
            "BGP settings are validated but unused because BGP mode is off ({})",
            BGP.describe()
        ));
        return Ok(None);
    }

    // What only BGP mode needs.
    let Some(router_id) = router_id else {
        return Err(ConfigError::Missing {
            option: BGP_ROUTER_ID.describe(),
            hint: format!(
                "BGP mode needs a router ID: an IPv4 address, e.g. --bgp-router-id 192.0.2.11, or an interface to take it from ({})",
                BGP_ROUTER_INTERFACE.describe()
            ),
        });
    };
    if peers.is_empty() && annotations.is_none() {
        return Err(ConfigError::Missing {
            option: BGP_PEERS.describe(),
            hint: format!(
                "BGP mode needs at least one peer, e.g. bgp_peers=192.0.2.1:65001, or {} (or node annotations, {})",
                BGP_PEER_ADDRESS.describe(),
                BGP_ANNOTATIONS.describe()
            ),
        });
    }
    let settings = BgpSettings {
        router_id,
        local_as,
        peers,
        source_if: source_if.map(|(v, _)| v),
        source_ip: source_ip.map(|(v, _)| v),
        hold_time,
        keepalive,
        mpbgp,
        node_annotations: annotations.map(|(a, _)| a),
        // Set by the caller, which knows the coordination mode.
        leader_election: false,
        services_election: false,
    };
    check_mpbgp(&settings)?;
    Ok(Some(settings))
}

fn router_id(s: &str) -> Result<Ipv4Addr, String> {
    match s.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) if !a.is_unspecified() => Ok(a),
        Ok(IpAddr::V4(_)) => Err("a non-zero IPv4 address (RFC 6286 §2.1)".into()),
        Ok(IpAddr::V6(_)) => Err(
            "an IPv4 address: the BGP identifier is 32 bits even on IPv6 sessions (RFC 6286)"
                .into(),
        ),
        Err(_) => Err(format!("an IPv4 address, e.g. 192.0.2.11, got '{s}'")),
    }
}

/// `bgp_peeraddress` and its companions, appended to `peers` as kube-vip's
/// `ParseEnvironment` does.
fn single_peer(
    r: &mut Resolver<'_>,
    peers: &mut Vec<BgpPeer>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let address = value(r, &BGP_PEER_ADDRESS, |s| {
        // kube-vip hands the value to gobgp as it is: a bare IPv6 address
        // works, and brackets are accepted for symmetry with bgp_peers.
        peer_address(s.trim_start_matches('[').trim_end_matches(']'))
            .map_err(|(_, p)| p.replace("every peer needs ADDRESS:AS", "an IP address"))
    })?;
    let remote_as = value(r, &BGP_PEER_AS, autonomous_system)?;
    let password = value(r, &BGP_PEER_PASS, |s| Ok(Secret::new(s)))?;
    let multihop = value(r, &BGP_MULTIHOP, boolean)?;
    let Some((address, source)) = address else {
        let unused: Vec<String> = [
            (remote_as.is_some(), &BGP_PEER_AS),
            (password.is_some(), &BGP_PEER_PASS),
            (multihop.is_some(), &BGP_MULTIHOP),
        ]
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, o)| o.describe())
        .collect();
        if !unused.is_empty() {
            warnings.push(format!(
                "{} {} ignored because {} is not set (the peers come from {})",
                unused.join(", "),
                if unused.len() == 1 { "is" } else { "are" },
                BGP_PEER_ADDRESS.describe(),
                BGP_PEERS.describe()
            ));
        }
        return Ok(());
    };
    let peer = BgpPeer {
        address,
        remote_as: remote_as.map_or(DEFAULT_BGP_AS, |(a, _)| a),
        password: password.map(|(p, _)| p),
        multihop: multihop.is_some_and(|(m, _)| m),
        port: DEFAULT_BGP_PORT,
        mpbgp: Mpbgp::default(),
        bfd: None,
    };
    if let Some(i) = peers
        .iter()
        .position(|p| (p.address, p.port) == (peer.address, peer.port))
    {
        return Err(ConfigError::Invalid {
            option: BGP_PEER_ADDRESS.describe(),
            value: address.to_string(),
            from: source,
            expected: format!(
                "an address that {} does not list already (it is peer {})",
                BGP_PEERS.describe(),
                i + 1
            ),
        });
    }
    peers.push(peer);
    Ok(())
}

/// Every peer's effective next-hop mode must be able to find its address
/// (kube-vip's `FindMpbgpAddresses` fails at run time instead).
fn check_mpbgp(s: &BgpSettings) -> Result<(), ConfigError> {
    for (i, peer) in s.peers.iter().enumerate() {
        let m = s.mpbgp_for(peer);
        let missing = match m.nexthop {
            Some(MpbgpNexthop::Fixed) if m.ipv4.is_none() && m.ipv6.is_none() => {
                Some("an address: mpbgp_ipv4 or mpbgp_ipv6 (in the peer string or globally)")
            }
            Some(MpbgpNexthop::AutoSourceIf) if s.source_if.is_none() => {
                Some("bgp_sourceif, the interface to take the addresses from")
            }
            Some(MpbgpNexthop::AutoSourceIp) if s.source_ip.is_none() => {
                Some("bgp_sourceip, the address whose interface has the addresses")
            }
            _ => None,
        };
        if let Some(missing) = missing {
            return Err(ConfigError::Missing {
                option: MPBGP_NEXTHOP.describe(),
                hint: format!(
                    "peer {} ({}) uses mpbgp_nexthop={}, which needs {missing}",
                    i + 1,
                    peer.redacted(),
                    m.nexthop.map_or("", MpbgpNexthop::as_str)
                ),
            });
        }
    }
    Ok(())
}

/// Resolves routing-table mode: `Some` when `vip_routingtable` is on.
pub(super) fn resolve_routing_table(
    r: &mut Resolver<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<RoutingTableSettings>, ConfigError> {
    let switch = value(r, &ROUTING_TABLE, boolean)?;
    let any_set = TABLE_OPTIONS[1..]
        .iter()
        .any(|o| r.raw(o).is_some_and(|raw| !raw.value.trim().is_empty()));
    if !switch.is_some_and(|(on, _)| on) && !any_set {
        return Ok(None);
    }
    let (on, _) = value_or(r, &ROUTING_TABLE, false, |b| b.to_string(), boolean)?;
    let (table_id, _) = value_or(
        r,
        &ROUTING_TABLE_ID,
        DEFAULT_ROUTING_TABLE_ID,
        u32::to_string,
        |s| match s.parse::<u32>() {
            Ok(0) => Err("a table ID 1-4294967295 (0 is RT_TABLE_UNSPEC)".into()),
            Ok(n) => Ok(n),
            Err(_) => Err(format!("a table ID 1-4294967295, got '{s}'")),
        },
    )?;
    let (route_type, _) = value_or(
        r,
        &ROUTING_TABLE_TYPE,
        DEFAULT_ROUTE_TYPE,
        |t| format!("{t} ({})", route_type_name(*t)),
        |s| match s.parse::<u8>() {
            Ok(t @ 1..=11) => Ok(t),
            _ => Err(format!(
                "a route type 1-11 (RTN_UNICAST=1, RTN_LOCAL=2, ..., RTN_XRESOLVE=11), got '{s}'"
            )),
        },
    )?;
    let (protocol, protocol_source) = value_or(
        r,
        &ROUTING_PROTOCOL,
        DEFAULT_ROUTE_PROTOCOL,
        u8::to_string,
        |s| {
            s.parse::<u8>()
                .map_err(|_| format!("a route protocol number 0-255, got '{s}'"))
        },
    )?;
    // kube-vip's manager replaces a protocol of 0 by 1 (it compares the
    // protocol with RTN_UNSPEC and sets RTN_UNICAST), so its routes carry
    // protocol 1: vipd does the same to recognise them.
    let protocol = if protocol == 0 {
        warnings.push(format!(
            "{} 0 is used as 1, as kube-vip does; set a protocol of your own (kube-vip's default is 248)",
            ROUTING_PROTOCOL.describe()
        ));
        super::sources::set_source(&mut r.settings, &ROUTING_PROTOCOL, protocol_source);
        if let Some(s) = r
            .settings
            .iter_mut()
            .find(|s| s.name == ROUTING_PROTOCOL.key)
        {
            s.value = "1 (0 given, kube-vip's substitution)".into();
        }
        1
    } else {
        protocol
    };
    let (clean, _) = value_or(r, &CLEAN_ROUTING_TABLE, false, |b| b.to_string(), boolean)?;
    if !on {
        warnings.push(format!(
            "routing-table settings are validated but unused because routing-table mode is off ({})",
            ROUTING_TABLE.describe()
        ));
        return Ok(None);
    }
    Ok(Some(RoutingTableSettings {
        table_id,
        route_type,
        protocol,
        clean,
        // Set with the coordination (validate.rs), as BGP's.
        leader_election: false,
        services_election: false,
    }))
}

/// `RTN_*` names (linux/rtnetlink.h), for `check-config`.
fn route_type_name(t: u8) -> &'static str {
    match t {
        1 => "unicast",
        2 => "local",
        3 => "broadcast",
        4 => "anycast",
        5 => "multicast",
        6 => "blackhole",
        7 => "unreachable",
        8 => "prohibit",
        9 => "throw",
        10 => "nat",
        11 => "xresolve",
        _ => "unknown",
    }
}

/// Two routing modes at once are refused (SPEC §3).
pub(super) fn one_mode(bgp: bool, table: bool) -> Result<(), ConfigError> {
    if bgp && table {
        return Err(ConfigError::Invalid {
            option: format!("{}, {}", BGP.describe(), ROUTING_TABLE.describe()),
            value: "true, true".into(),
            from: Source::Default,
            expected: "one mode at a time: BGP or routing-table".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolver(env: &HashMap<String, String>) -> Resolver<'_> {
        Resolver {
            flags: HashMap::new(),
            env,
            file: HashMap::new(),
            settings: Vec::new(),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bgp(pairs: &[(&str, &str)]) -> Result<(Option<BgpSettings>, Vec<String>), String> {
        let e = env(pairs);
        let mut r = resolver(&e);
        let mut w = Vec::new();
        resolve_bgp(&mut r, &mut w)
            .map(|b| (b, w))
            .map_err(|e| e.to_string())
    }

    /// Variables of a table row.
    type Pairs<'a> = &'a [(&'a str, &'a str)];

    const ON: (&str, &str) = ("bgp_enable", "true");
    const ID: (&str, &str) = ("bgp_routerid", "192.0.2.11");

    #[test]
    fn kube_vip_defaults_fill_what_is_not_set() {
        let (b, warnings) = bgp(&[ON, ID, ("bgp_peers", "192.0.2.1:65001")]).unwrap();
        let b = b.unwrap();
        assert_eq!(b.router_id, RouterId::Fixed(Ipv4Addr::new(192, 0, 2, 11)));
        assert_eq!(b.local_as, 65000);
        assert_eq!(
            (b.hold_time, b.keepalive),
            (Duration::from_secs(30), Duration::from_secs(10))
        );
        assert_eq!(b.peers.len(), 1);
        assert_eq!(b.peers[0].port, 179);
        assert_eq!(b.mpbgp, Mpbgp::default());
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn the_single_peer_form_is_appended_after_the_list_with_its_own_defaults() {
        let (b, _) = bgp(&[
            ON,
            ID,
            ("bgp_peers", "192.0.2.1:65001"),
            ("bgp_peeraddress", "2001:db8::2"),
            ("bgp_peerpass", "s3cret"),
            ("bgp_multihop", "true"),
        ])
        .unwrap();
        let peers = b.unwrap().peers;
        assert_eq!(peers.len(), 2);
        let p = &peers[1];
        assert_eq!(p.address, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!((p.remote_as, p.port, p.multihop), (65000, 179, true));
        assert_eq!(p.password.as_ref().map(Secret::expose), Some("s3cret"));
        // Alone it is the only peer, with bgp_peeras.
        let (b, _) = bgp(&[
            ON,
            ID,
            ("bgp_peeraddress", "192.0.2.2"),
            ("bgp_peeras", "4200000001"),
        ])
        .unwrap();
        assert_eq!(b.unwrap().peers[0].remote_as, 4_200_000_001);
    }

    #[test]
    fn single_peer_companions_without_an_address_are_reported_not_used() {
        let (b, w) = bgp(&[
            ON,
            ID,
            ("bgp_peers", "192.0.2.1:65001"),
            ("bgp_peeras", "65000"),
        ])
        .unwrap();
        assert_eq!(b.unwrap().peers.len(), 1);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("bgp_peeras") && w[0].contains("bgp_peeraddress"));
    }

    #[test]
    fn router_id_comes_from_the_id_then_the_interface_then_annotations() {
        let peers = ("bgp_peers", "192.0.2.1:65001");
        let id = |pairs: &[(&str, &str)]| bgp(pairs).map(|(b, w)| (b.unwrap().router_id, w.len()));
        assert_eq!(
            id(&[ON, peers, ("bgp_routerinterface", "eth1")]),
            Ok((RouterId::FromInterface("eth1".into()), 0))
        );
        assert_eq!(
            id(&[ON, peers, ID, ("bgp_routerinterface", "eth1")]),
            Ok((RouterId::Fixed(Ipv4Addr::new(192, 0, 2, 11)), 1))
        );
        assert_eq!(
            id(&[ON, ("annotation", "metal.equinix.com")]),
            Ok((RouterId::FromNodeAnnotations, 0))
        );
        let err = bgp(&[ON, peers]).unwrap_err();
        assert!(
            err.contains("bgp_routerid") && err.contains("router ID"),
            "{err}"
        );
    }

    #[test]
    fn invalid_values_name_the_variable_and_what_is_accepted() {
        let peers = ("bgp_peers", "192.0.2.1:65001");
        // (extra variables, words the error contains)
        let cases: &[(Pairs, &[&str])] = &[
            (&[("bgp_as", "0")], &["bgp_as", "RFC 7607"]),
            (&[("bgp_as", "4294967296")], &["bgp_as", "4-octet"]),
            (
                &[("bgp_routerid", "2001:db8::1")],
                &["bgp_routerid", "32 bits"],
            ),
            (
                &[("bgp_routerid", "0.0.0.0")],
                &["bgp_routerid", "non-zero"],
            ),
            (&[("bgp_routerid", "router-1")], &["bgp_routerid", "IPv4"]),
            (&[("bgp_hold_time", "2")], &["bgp_hold_time", "RFC 4271"]),
            (&[("bgp_hold_time", "70000")], &["bgp_hold_time", "0-65535"]),
            (
                &[("bgp_hold_time", "9"), ("bgp_keepalive_interval", "9")],
                &["bgp_keepalive_interval", "1 to 8"],
            ),
            (
                &[("bgp_keepalive_interval", "0")],
                &["bgp_keepalive_interval", "below"],
            ),
            (
                &[("bgp_keepalive_interval", "1.5")],
                &["bgp_keepalive_interval", "whole seconds"],
            ),
            (
                &[("bgp_peeras", "x"), ("bgp_peeraddress", "192.0.2.9")],
                &["bgp_peeras", "not a number"],
            ),
            (
                &[("bgp_peeraddress", "peer.example")],
                &["bgp_peeraddress", "not an IP"],
            ),
            (
                &[("bgp_peeraddress", "192.0.2.1")],
                &["bgp_peeraddress", "peer 1"],
            ),
            (
                &[
                    ("bgp_multihop", "sometimes"),
                    ("bgp_peeraddress", "192.0.2.9"),
                ],
                &["bgp_multihop", "true or false"],
            ),
            (&[("bgp_sourceif", "a/b")], &["bgp_sourceif", "interface"]),
            (
                &[("bgp_sourceip", "224.0.0.1")],
                &["bgp_sourceip", "unicast"],
            ),
            (&[("mpbgp_nexthop", "auto")], &["mpbgp_nexthop", "'auto'"]),
            (
                &[("mpbgp_nexthop", "fixed")],
                &["mpbgp_nexthop", "peer 1", "mpbgp_ipv4"],
            ),
            (
                &[("mpbgp_nexthop", "auto_sourceif")],
                &["mpbgp_nexthop", "bgp_sourceif"],
            ),
            (
                &[("mpbgp_nexthop", "auto_sourceip")],
                &["mpbgp_nexthop", "bgp_sourceip"],
            ),
            (&[("mpbgp_ipv4", "2001:db8::1")], &["mpbgp_ipv4", "IPv4"]),
            (&[("mpbgp_ipv6", "192.0.2.1")], &["mpbgp_ipv6", "IPv6"]),
            (
                &[("annotation", "Not A Prefix")],
                &["annotation", "DNS subdomain"],
            ),
            (
                &[("bgp_enable", "perhaps")],
                &["bgp_enable", "true or false"],
            ),
        ];
        for (extra, words) in cases {
            let mut pairs = vec![ON, ID, peers];
            pairs.extend_from_slice(extra);
            let err = match bgp(&pairs) {
                Ok(b) => panic!("{extra:?} accepted: {b:?}"),
                Err(e) => e,
            };
            for w in *words {
                assert!(err.contains(w), "{extra:?}: {err} does not mention {w}");
            }
        }
    }

    #[test]
    fn a_malformed_peer_names_the_variable_the_peer_and_the_field() {
        let err = bgp(&[
            ON,
            ID,
            ("bgp_peers", "192.0.2.1:65001,[2001:db8::1]:65000:pw:x"),
        ])
        .unwrap_err();
        assert!(
            err.contains("bgp_peers")
                && err.contains("peer 2 ([2001:db8::1]:65000:<redacted>:x)")
                && err.contains("field multihop: 'x' is not true or false"),
            "{err}"
        );
        assert!(!err.contains("pw:"), "{err}");
        let err = bgp(&[ON, ID, ("bgp_peers", "192.0.2.1:65001,192.0.2.1:65002")]).unwrap_err();
        assert!(err.contains("peer 2") && err.contains("as peer 1"), "{err}");
        // The same address on another port is another session.
        assert!(bgp(&[
            ON,
            ID,
            ("bgp_peers", "192.0.2.1:65001,192.0.2.1:65002:::1179")
        ])
        .is_ok());
    }

    #[test]
    fn mode_off_still_parses_but_needs_nothing_and_says_so() {
        let (b, w) = bgp(&[("bgp_as", "65010")]).unwrap();
        assert_eq!(b, None);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("unused"), "{w:?}");
        // kube-vip fails on a malformed bgp_peers even with BGP off.
        assert!(bgp(&[("bgp_peers", "192.0.2.1:x")]).is_err());
        assert_eq!(bgp(&[]), Ok((None, vec![])));
        assert_eq!(bgp(&[("bgp_enable", "false")]), Ok((None, vec![])));
        // BGP on without any peer is refused.
        let err = bgp(&[ON, ID]).unwrap_err();
        assert!(
            err.contains("bgp_peers") && err.contains("at least one peer"),
            "{err}"
        );
    }

    #[test]
    fn a_peers_own_mpbgp_settings_override_the_global_ones() {
        let (b, _) = bgp(&[
            ON,
            ID,
            ("mpbgp_nexthop", "fixed"),
            ("mpbgp_ipv6", "2001:db8::11"),
            ("bgp_sourceif", "eth0"),
            (
                "bgp_peers",
                "192.0.2.1:65001,192.0.2.2:65001::::mpbgp_nexthop=auto_sourceif",
            ),
        ])
        .unwrap();
        let b = b.unwrap();
        let first = b.mpbgp_for(&b.peers[0]);
        assert_eq!(first.nexthop, Some(MpbgpNexthop::Fixed));
        assert_eq!(first.ipv6, "2001:db8::11".parse().ok());
        let second = b.mpbgp_for(&b.peers[1]);
        assert_eq!(second.nexthop, Some(MpbgpNexthop::AutoSourceIf));
        assert_eq!(second.ipv6, "2001:db8::11".parse().ok());
    }

    fn table(
        pairs: &[(&str, &str)],
    ) -> Result<(Option<RoutingTableSettings>, Vec<String>), String> {
        let e = env(pairs);
        let mut r = resolver(&e);
        let mut w = Vec::new();
        resolve_routing_table(&mut r, &mut w)
            .map(|t| (t, w))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn routing_table_settings_take_kube_vips_names_defaults_and_the_issues_spellings() {
        let on = ("vip_routingtable", "true");
        assert_eq!(
            table(&[on]),
            Ok((
                Some(RoutingTableSettings {
                    table_id: 198,
                    route_type: 1,
                    protocol: 248,
                    clean: false,
                    leader_election: false,
                    services_election: false,
                }),
                vec![]
            ))
        );
        let t = |pairs: &[(&str, &str)]| table(pairs).map(|(t, _)| t.unwrap());
        let got = t(&[
            on,
            ("vip_routingtableid", "1000"),
            ("vip_routingtabletype", "2"),
            ("vip_routingprotocol", "200"),
            ("vip_cleanroutingtable", "true"),
        ])
        .unwrap();
        assert_eq!(
            (got.table_id, got.route_type, got.protocol, got.clean),
            (1000, 2, 200, true)
        );
        let got = t(&[
            on,
            ("vip_routingtable_id", "77"),
            ("vip_routingtable_protocol", "99"),
        ])
        .unwrap();
        assert_eq!((got.table_id, got.protocol), (77, 99));
        // kube-vip's own name wins over the issue's spelling.
        let got = t(&[
            on,
            ("vip_routingtableid", "5"),
            ("vip_routingtable_id", "77"),
        ])
        .unwrap();
        assert_eq!(got.table_id, 5);
        // Protocol 0 becomes 1, as in kube-vip, with a warning.
        let (got, w) = table(&[on, ("vip_routingprotocol", "0")]).unwrap();
        assert_eq!(got.unwrap().protocol, 1);
        assert_eq!(w.len(), 1, "{w:?}");
    }

    #[test]
    fn malformed_routing_table_values_are_refused_naming_the_variable() {
        for (pair, words) in [
            (("vip_routingtableid", "0"), "RT_TABLE_UNSPEC"),
            (("vip_routingtableid", "-1"), "vip_routingtableid"),
            (("vip_routingtableid", "4294967296"), "vip_routingtableid"),
            (("vip_routingtabletype", "0"), "route type 1-11"),
            (("vip_routingtabletype", "12"), "vip_routingtabletype"),
            (("vip_routingprotocol", "256"), "vip_routingprotocol"),
            (("vip_cleanroutingtable", "x"), "vip_cleanroutingtable"),
            (("vip_routingtable", "x"), "vip_routingtable"),
        ] {
            let err = table(&[("vip_routingtable", "true"), pair]).unwrap_err();
            assert!(err.contains(words), "{pair:?}: {err}");
        }
        // Off but set: parsed, unused, reported.
        let (t, w) = table(&[("vip_routingtableid", "7")]).unwrap();
        assert_eq!((t, w.len()), (None, 1));
        assert_eq!(table(&[]), Ok((None, vec![])));
        assert_eq!(table(&[("vip_routingtable", "false")]), Ok((None, vec![])));
    }
}
