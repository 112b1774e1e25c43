//! kube-vip's BGP peer strings (`bgp_peers`, `--bgppeers`), parsed field
//! by field so a mistake is reported with the peer and the field it is in.
//!
//! The format, as kube-vip's `ParseBGPPeerConfig` reads it
//! (`pkg/kubevip/config_bgp.go`; older releases kept it in
//! `pkg/bgp/peers.go`), is a comma-separated list of
//!
//! ```text
//! ADDRESS:AS[:PASSWORD[:MULTIHOP[:PORT[:MPBGP[:BFD]]]]]
//! ```
//!
//! - `ADDRESS`: an IPv4 address, or an IPv6 address in brackets
//!   (`[2001:db8::1]`), because the fields are separated by `:`.
//!   kube-vip also has `unnumbered:IFACE` (a link-local session on an
//!   interface); vipd refuses it by name rather than misreading it.
//! - `AS`: the peer's AS, a decimal 32-bit number (RFC 6793 4-octet ASes).
//! - `PASSWORD`: the TCP MD5 key (RFC 2385); empty means none. It cannot
//!   contain `:` or `,`, in kube-vip as here.
//! - `MULTIHOP`: a Go `strconv.ParseBool` value; empty means false.
//!   kube-vip then sets eBGP multihop with TTL 50.
//! - `PORT`: the peer's TCP port; empty means 179.
//! - `MPBGP`: `key=value` pairs separated by `;`, keys `mpbgp_nexthop`
//!   (`fixed`, `auto_sourceif`, `auto_sourceip`), `mpbgp_ipv4`,
//!   `mpbgp_ipv6`; a value may be empty. Each overrides the global
//!   `mpbgp_*` variable for this peer (kube-vip's `SetMpbgpOptions`).
//! - `BFD`: `ENABLE;RX_MS;TX_MS;MULT` (kube-vip >= 1.2.2), all four
//!   positions required, an empty number meaning kube-vip's default
//!   (300 ms, 300 ms, 3).
//!
//! Empty list entries (`a,,b`, a trailing comma) are skipped, as in
//! kube-vip. Where kube-vip silently accepts something that cannot work
//! (port 0, a seventh `:` field, text between `]` and `:`), vipd refuses it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::values;

/// kube-vip's default BGP port.
pub const DEFAULT_BGP_PORT: u16 = 179;
/// kube-vip's BFD defaults when a BFD field leaves a number empty.
pub const DEFAULT_BFD_INTERVAL_MS: u32 = 300;
/// See [`DEFAULT_BFD_INTERVAL_MS`].
pub const DEFAULT_BFD_MULTIPLIER: u8 = 3;

/// A password or key: compared and cloned, never shown. `Debug` prints
/// `Secret(redacted)` so a `{:?}` of the configuration cannot leak it
/// (SPEC §6: no secrets in logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that needs it (the TCP MD5
    /// socket option).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// What stands in for a password wherever configuration is shown.
pub const REDACTED: &str = "<redacted>";

/// How the MP-BGP next hop of the other address family is found
/// (kube-vip's `mpbgp_nexthop`; `FindMpbgpAddresses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpbgpNexthop {
    /// `fixed`: the `mpbgp_ipv4` / `mpbgp_ipv6` addresses.
    Fixed,
    /// `auto_sourceif`: the first non-link-local IPv4 and IPv6 addresses
    /// of `bgp_sourceif`.
    AutoSourceIf,
    /// `auto_sourceip`: the first non-link-local address of the other
    /// family on the interface that holds `bgp_sourceip`.
    AutoSourceIp,
}

impl MpbgpNexthop {
    /// kube-vip's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MpbgpNexthop::Fixed => "fixed",
            MpbgpNexthop::AutoSourceIf => "auto_sourceif",
            MpbgpNexthop::AutoSourceIp => "auto_sourceip",
        }
    }

    pub(super) fn parse(s: &str) -> Result<MpbgpNexthop, String> {
        match s.trim() {
            "fixed" => Ok(MpbgpNexthop::Fixed),
            "auto_sourceif" => Ok(MpbgpNexthop::AutoSourceIf),
            "auto_sourceip" => Ok(MpbgpNexthop::AutoSourceIp),
            other => Err(format!(
                "'{other}' is not a next-hop mode: fixed, auto_sourceif or auto_sourceip"
            )),
        }
    }
}

/// MP-BGP next-hop settings, globally (`mpbgp_*` variables) or per peer
/// (the peer string's sixth field). `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mpbgp {
    /// The mode; `None` globally means MP-BGP next-hop rewriting is off.
    pub nexthop: Option<MpbgpNexthop>,
    /// IPv4 next hop for IPv4 routes over an IPv6 session (`fixed`).
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 next hop for IPv6 routes over an IPv4 session (`fixed`).
    pub ipv6: Option<Ipv6Addr>,
}

impl Mpbgp {
    /// Each value of `self` where set, else `fallback`'s: a peer's own
    /// settings over the global ones, as kube-vip's `SetMpbgpOptions`.
    pub fn or(&self, fallback: &Mpbgp) -> Mpbgp {
        Mpbgp {
            nexthop: self.nexthop.or(fallback.nexthop),
            ipv4: self.ipv4.or(fallback.ipv4),
            ipv6: self.ipv6.or(fallback.ipv6),
        }
    }

    /// `mpbgp_nexthop=fixed;mpbgp_ipv4=...`: the peer-string form, empty
    /// when nothing is set.
    pub(super) fn render(&self) -> String {
        let mut parts = Vec::new();
        if let Some(n) = self.nexthop {
            parts.push(format!("mpbgp_nexthop={}", n.as_str()));
        }
        if let Some(a) = self.ipv4 {
            parts.push(format!("mpbgp_ipv4={a}"));
        }
        if let Some(a) = self.ipv6 {
            parts.push(format!("mpbgp_ipv6={a}"));
        }
        parts.join(";")
    }
}

/// BFD for one peer (RFC 5880, single hop RFC 5881), on when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdSettings {
    /// Required Min RX Interval, in milliseconds (> 0).
    pub rx_ms: u32,
    /// Desired Min TX Interval, in milliseconds (> 0).
    pub tx_ms: u32,
    /// Detect Mult (1..=255: an 8-bit field, RFC 5880 §4.1, where 0 is
    /// invalid).
    pub mult: u8,
}

/// One validated BGP peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpPeer {
    /// The peer's address (what kube-vip calls `Address`).
    pub address: IpAddr,
    /// The peer's AS; never 0.
    pub remote_as: u32,
    /// TCP MD5 key (RFC 2385), if any.
    pub password: Option<Secret>,
    /// eBGP multihop (kube-vip: TTL 50).
    pub multihop: bool,
    /// The peer's TCP port; never 0.
    pub port: u16,
    /// This peer's own MP-BGP settings (merge with the global ones with
    /// [`Mpbgp::or`]).
    pub mpbgp: Mpbgp,
    /// BFD, when enabled for this peer.
    pub bfd: Option<BfdSettings>,
}

impl BgpPeer {
    /// The peer in kube-vip's peer-string form with the password replaced
    /// by [`REDACTED`]: what `check-config` shows. Trailing empty fields
    /// are dropped.
    pub fn redacted(&self) -> String {
        let address = match self.address {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let mut fields = vec![
            address,
            self.remote_as.to_string(),
            self.password
                .as_ref()
                .map_or(String::new(), |_| REDACTED.to_string()),
            self.multihop.to_string(),
            self.port.to_string(),
            self.mpbgp.render(),
            self.bfd.map_or(String::new(), |b| {
                format!("true;{};{};{}", b.rx_ms, b.tx_ms, b.mult)
            }),
        ];
        while fields.last().is_some_and(String::is_empty) {
            fields.pop();
        }
        fields.join(":")
    }
}

/// A peer string that does not parse: which peer (1-based, counting the
/// non-empty entries), the entry itself with any password masked, the
/// field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    /// 1-based position among the non-empty entries.
    pub index: usize,
    /// The entry, password field replaced by [`REDACTED`].
    pub peer: String,
    /// `address`, `AS`, `password`, `multihop`, `port`, `MP-BGP`, `BFD`,
    /// or `peer` for the entry as a whole.
    pub field: &'static str,
    /// What is wrong and what is accepted.
    pub problem: String,
}

/// Parses a whole `bgp_peers` value. An empty list (only commas) is not
/// an error here; whether peers are required is decided by the caller.
pub fn parse_peers(list: &str) -> Result<Vec<BgpPeer>, PeerError> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .enumerate()
        .map(|(i, entry)| {
            parse_peer(entry).map_err(|(field, problem)| PeerError {
                index: i + 1,
                peer: mask_password(entry),
                field,
                problem,
            })
        })
        .collect()
}

type FieldError = (&'static str, String);

/// One non-empty entry.
fn parse_peer(entry: &str) -> Result<BgpPeer, FieldError> {
    if let Some(iface) = entry.strip_prefix("unnumbered:") {
        return Err((
            "address",
            format!(
                "BGP unnumbered peers (unnumbered:{}) are not supported by vipd; give the peer's address",
                iface.split(':').next().unwrap_or_default()
            ),
        ));
    }
    let (address, fields) = split_address(entry)?;
    let address = peer_address(address)?;
    let field = |i: usize| fields.get(i).copied();
    if fields.len() > 6 {
        // kube-vip splits on every ':', so an IPv6 next hop cannot be
        // written inside a peer string; kube-vip ignores the extra fields.
        let hint = if entry.contains("mpbgp_ipv6=") {
            " (an IPv6 next hop cannot be written in a peer string: set the global mpbgp_ipv6)"
        } else {
            ""
        };
        return Err((
            "peer",
            format!(
                "{} fields, at most 7 are accepted: ADDRESS:AS:PASSWORD:MULTIHOP:PORT:MPBGP:BFD{hint}",
                fields.len() + 1
            ),
        ));
    }
    let remote_as = match field(0) {
        None | Some("") => return Err(("AS", "missing: every peer needs ADDRESS:AS".into())),
        Some(s) => autonomous_system(s).map_err(|p| ("AS", p))?,
    };
    let password = field(1).filter(|p| !p.is_empty()).map(Secret::new);
    let multihop = match field(2) {
        None | Some("") => false,
        Some(s) => {
            values::boolean(s).map_err(|_| ("multihop", format!("'{s}' is not true or false")))?
        }
    };
    let port = match field(3) {
        None | Some("") => DEFAULT_BGP_PORT,
        Some(s) => match s.parse::<u16>() {
            Ok(0) => return Err(("port", "0 is not a TCP port: 1-65535, empty for 179".into())),
            Ok(p) => p,
            Err(_) => {
                return Err((
                    "port",
                    format!("'{s}' is not a TCP port: 1-65535, empty for 179"),
                ))
            }
        },
    };
    let mpbgp = match field(4) {
        None | Some("") => Mpbgp::default(),
        Some(s) => mpbgp_options(s).map_err(|p| ("MP-BGP", p))?,
    };
    let bfd = match field(5) {
        None | Some("") => None,
        Some(s) => bfd_options(s).map_err(|p| ("BFD", p))?,
    };
    Ok(BgpPeer {
        address,
        remote_as,
        password,
        multihop,
        port,
        mpbgp,
        bfd,
    })
}

/// Splits `[v6]:rest` or `v4:rest` into the address and the other fields.
fn split_address(entry: &str) -> Result<(&str, Vec<&str>), FieldError> {
    if let Some(bracketed) = entry.strip_prefix('[') {
        let Some(end) = bracketed.find(']') else {
            return Err((
                "address",
                "no closing ']' after the IPv6 address, e.g. [2001:db8::1]:65000".into(),
            ));
        };
        let (address, rest) = (&bracketed[..end], &bracketed[end + 1..]);
        let fields = match rest.strip_prefix(':') {
            Some(rest) => rest.split(':').collect(),
            None if rest.is_empty() => Vec::new(),
            None => return Err(("address", format!("expected ':' after ']', found '{rest}'"))),
        };
        Ok((address, fields))
    } else {
        let mut parts = entry.split(':');
        let address = parts.next().unwrap_or_default();
        Ok((address, parts.collect()))
    }
}

/// A peer's (or a single-peer variable's) address.
pub(super) fn peer_address(s: &str) -> Result<IpAddr, FieldError> {
    let s = s.trim();
    let ip: IpAddr = s.parse().map_err(|_| {
        (
            "address",
            if s.is_empty() {
                "missing: every peer needs ADDRESS:AS".to_string()
            } else {
                format!(
                    "'{s}' is not an IP address (IPv6 addresses go in brackets, e.g. [2001:db8::1]:65000)"
                )
            },
        )
    })?;
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_unspecified() || ip.is_multicast() || broadcast {
        return Err((
            "address",
            format!("{ip} is not a unicast address a BGP session can reach"),
        ));
    }
    Ok(ip)
}

/// An AS number: decimal, 32 bits, not 0 (RFC 7607: AS 0 is never a
/// valid peer or local AS).
pub(super) fn autonomous_system(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(0) => Err("0 is not a valid AS (RFC 7607): 1-4294967295".into()),
        Ok(n) => Ok(n),
        Err(_) if !s.is_empty() && s.trim().bytes().all(|b| b.is_ascii_digit()) => {
            Err(format!("'{s}' is larger than a 4-octet AS: 1-4294967295"))
        }
        Err(_) => Err(format!("'{s}' is not a number: an AS is 1-4294967295")),
    }
}

/// The sixth field: `key=value;key=value`. As in kube-vip, an empty
/// element (`a;;b`) is an error and a value may be empty.
fn mpbgp_options(s: &str) -> Result<Mpbgp, String> {
    let mut m = Mpbgp::default();
    for option in s.split(';') {
        let Some((key, value)) = option.split_once('=') else {
            return Err(format!(
                "'{option}' has no value: expected key=value (mpbgp_nexthop, mpbgp_ipv4, mpbgp_ipv6)"
            ));
        };
        let value = value.trim();
        match key.trim() {
            "mpbgp_nexthop" if value.is_empty() => m.nexthop = None,
            "mpbgp_nexthop" => m.nexthop = Some(MpbgpNexthop::parse(value)?),
            "mpbgp_ipv4" if value.is_empty() => m.ipv4 = None,
            "mpbgp_ipv4" => {
                m.ipv4 = Some(
                    value
                        .parse()
                        .map_err(|_| format!("mpbgp_ipv4 '{value}' is not an IPv4 address"))?,
                )
            }
            "mpbgp_ipv6" if value.is_empty() => m.ipv6 = None,
            "mpbgp_ipv6" => {
                m.ipv6 = Some(
                    value
                        .parse()
                        .map_err(|_| format!("mpbgp_ipv6 '{value}' is not an IPv6 address"))?,
                )
            }
            other => {
                return Err(format!(
                    "'{other}' is not an MP-BGP option: mpbgp_nexthop, mpbgp_ipv4 or mpbgp_ipv6"
                ))
            }
        }
    }
    Ok(m)
}

/// The seventh field: `ENABLE;RX_MS;TX_MS;MULT`. Disabled BFD is `None`,
/// but its numbers must still parse (kube-vip parses them either way).
fn bfd_options(s: &str) -> Result<Option<BfdSettings>, String> {
    const FORM: &str = "ENABLE;RX_MS;TX_MS;MULT, e.g. true;300;300;3";
    let parts: Vec<&str> = s.split(';').map(str::trim).collect();
    if parts.len() != 4 {
        return Err(format!("{} values, expected 4: {FORM}", parts.len()));
    }
    let enabled = values::boolean(parts[0])
        .map_err(|_| format!("enable '{}' is not true or false ({FORM})", parts[0]))?;
    let interval = |name: &str, s: &str| -> Result<u32, String> {
        if s.is_empty() {
            return Ok(DEFAULT_BFD_INTERVAL_MS);
        }
        let ms: u32 = s
            .parse()
            .map_err(|_| format!("{name} '{s}' is not a number of milliseconds ({FORM})"))?;
        // RFC 5880 carries intervals in microseconds in 32 bits.
        if enabled && (ms == 0 || ms > u32::MAX / 1000) {
            return Err(format!(
                "{name} {ms} ms is out of range: 1-{} ms",
                u32::MAX / 1000
            ));
        }
        Ok(ms)
    };
    let rx_ms = interval("receive interval", parts[1])?;
    let tx_ms = interval("transmit interval", parts[2])?;
    let mult = if parts[3].is_empty() {
        DEFAULT_BFD_MULTIPLIER
    } else {
        match parts[3].parse::<u32>() {
            Ok(m @ 1..=255) => m as u8,
            Ok(_) if !enabled => DEFAULT_BFD_MULTIPLIER,
            Ok(m) => return Err(format!("detect multiplier {m} is out of range: 1-255")),
            Err(_) => {
                return Err(format!(
                    "detect multiplier '{}' is not a number ({FORM})",
                    parts[3]
                ))
            }
        }
    };
    Ok(enabled.then_some(BfdSettings { rx_ms, tx_ms, mult }))
}

/// The entry as error messages show it: the password field (the third)
/// replaced by [`REDACTED`] when it is not empty.
fn mask_password(entry: &str) -> String {
    let (prefix, rest) = match entry.strip_prefix('[').and_then(|b| b.find(']')) {
        Some(end) => entry.split_at(end + 2),
        None => ("", entry),
    };
    let mut fields: Vec<&str> = rest.split(':').collect();
    // Without brackets the address is fields[0]; with them it is the
    // prefix and fields[0] is what follows "]" (normally empty).
    let at = 2;
    if fields.len() > at && !fields[at].is_empty() {
        fields[at] = REDACTED;
    }
    format!("{prefix}{}", fields.join(":"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn peer(address: &str, remote_as: u32) -> BgpPeer {
        BgpPeer {
            address: address.parse().unwrap(),
            remote_as,
            password: None,
            multihop: false,
            port: DEFAULT_BGP_PORT,
            mpbgp: Mpbgp::default(),
            bfd: None,
        }
    }

    const BFD_300: BfdSettings = BfdSettings {
        rx_ms: 300,
        tx_ms: 300,
        mult: 3,
    };

    #[test]
    fn kube_vip_documented_and_tested_peer_strings_parse_to_the_same_peers() {
        let v6 = "2001:db8:2222:3333:c7d9:7235:6bf7:5d52";
        let auto_if = Mpbgp {
            nexthop: Some(MpbgpNexthop::AutoSourceIf),
            ..Mpbgp::default()
        };
        // (input, expected peers): the cases of kube-vip's
        // pkg/kubevip/config_bgp_test.go and its BGP documentation, with the
        // addresses moved into the documentation ranges (the shapes are
        // what matter).
        let cases: Vec<(&str, Vec<BgpPeer>)> = vec![
            (
                "192.0.2.10:65000::false,192.0.2.11:65000::false",
                vec![peer("192.0.2.10", 65000), peer("192.0.2.11", 65000)],
            ),
            (
                "192.0.2.10:65000::false:180,192.0.2.11:65000::false:190",
                vec![
                    BgpPeer {
                        port: 180,
                        ..peer("192.0.2.10", 65000)
                    },
                    BgpPeer {
                        port: 190,
                        ..peer("192.0.2.11", 65000)
                    },
                ],
            ),
            (
                "[2001:db8:2222:3333:c7d9:7235:6bf7:5d52]:65501::false::mpbgp_nexthop=auto_sourceif",
                vec![BgpPeer {
                    mpbgp: auto_if.clone(),
                    ..peer(v6, 65501)
                }],
            ),
            (
                "[2001:db8:2222:3333:c7d9:7235:6bf7:5d52]:65501::false:::true;300;300;3",
                vec![BgpPeer {
                    bfd: Some(BFD_300),
                    ..peer(v6, 65501)
                }],
            ),
            (
                "[2001:db8:2222:3333:c7d9:7235:6bf7:5d52]:65501::false::mpbgp_nexthop=auto_sourceif:true;300;300;3",
                vec![BgpPeer {
                    mpbgp: auto_if.clone(),
                    bfd: Some(BFD_300),
                    ..peer(v6, 65501)
                }],
            ),
            (
                "[2001:db8:64::2]:65000:secret:true",
                vec![BgpPeer {
                    password: Some(Secret::new("secret")),
                    multihop: true,
                    ..peer("2001:db8:64::2", 65000)
                }],
            ),
            (
                "[2001:db8:64::2]:65000::false",
                vec![peer("2001:db8:64::2", 65000)],
            ),
            // k0s's generated strings (a password, multihop, a port, BFD off).
            (
                "192.0.2.44:65000:s3cret:true:1179::false;300;300;3",
                vec![BgpPeer {
                    password: Some(Secret::new("s3cret")),
                    multihop: true,
                    port: 1179,
                    ..peer("192.0.2.44", 65000)
                }],
            ),
            // The documentation's fixed next hop.
            (
                "192.0.2.1:65001::::mpbgp_nexthop=fixed;mpbgp_ipv4=198.51.100.100",
                vec![BgpPeer {
                    mpbgp: Mpbgp {
                        nexthop: Some(MpbgpNexthop::Fixed),
                        ipv4: Some("198.51.100.100".parse().unwrap()),
                        ipv6: None,
                    },
                    ..peer("192.0.2.1", 65001)
                }],
            ),
            // Missing fields take the defaults; empty entries are skipped.
            ("192.0.2.1:65001", vec![peer("192.0.2.1", 65001)]),
            (
                ",192.0.2.1:65001,,[2001:db8::1]:4200000000,",
                vec![peer("192.0.2.1", 65001), peer("2001:db8::1", 4_200_000_000)],
            ),
            ("[2001:db8::1]:65001", vec![peer("2001:db8::1", 65001)]),
            (",,", vec![]),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_peers(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn bfd_field_forms_fill_kube_vips_defaults_and_off_means_none() {
        let bfd =
            |field: &str| parse_peers(&format!("192.0.2.1:65001:::::{field}")).map(|p| p[0].bfd);
        assert_eq!(bfd("true;300;300;3"), Ok(Some(BFD_300)));
        assert_eq!(bfd("true;;;"), Ok(Some(BFD_300)));
        assert_eq!(
            bfd("1;50;100;5"),
            Ok(Some(BfdSettings {
                rx_ms: 50,
                tx_ms: 100,
                mult: 5
            }))
        );
        assert_eq!(
            bfd("true;;1000;255"),
            Ok(Some(BfdSettings {
                rx_ms: 300,
                tx_ms: 1000,
                mult: 255
            }))
        );
        assert_eq!(bfd("false;300;300;3"), Ok(None));
        // Disabled BFD is not range-checked, but must still parse.
        assert_eq!(bfd("false;0;0;0"), Ok(None));
        assert!(bfd("false;x;0;0").is_err());
        assert_eq!(bfd(""), Ok(None));
    }

    #[test]
    fn every_malformed_field_is_named_with_the_peer_it_is_in() {
        // (input, peer index, field, words the problem contains)
        let cases: &[(&str, usize, &str, &str)] = &[
            (
                "192.0.2.1:65000,[2001:db8::1]:65000:x:maybe",
                2,
                "multihop",
                "'maybe'",
            ),
            ("[2001:db8::1]:x", 1, "AS", "'x' is not a number"),
            ("192.0.2.1", 1, "AS", "missing"),
            ("192.0.2.1:", 1, "AS", "missing"),
            ("192.0.2.1:0", 1, "AS", "RFC 7607"),
            ("192.0.2.1:4294967296", 1, "AS", "4-octet"),
            ("192.0.2.1:-1", 1, "AS", "not a number"),
            ("[2001:db8:64::2:65000", 1, "address", "no closing ']'"),
            ("[2001:db8::1]x:65000", 1, "address", "after ']'"),
            ("2001:db8::1:65000", 1, "address", "brackets"),
            ("host.example:65000", 1, "address", "not an IP"),
            (":65000", 1, "address", "missing"),
            ("0.0.0.0:65000", 1, "address", "unicast"),
            ("[ff02::1]:65000", 1, "address", "unicast"),
            ("255.255.255.255:65000", 1, "address", "unicast"),
            ("unnumbered:eth0", 1, "address", "unnumbered"),
            ("192.0.2.1:65000:::0", 1, "port", "0 is not"),
            ("192.0.2.1:65000:::65536", 1, "port", "'65536'"),
            ("192.0.2.1:65000::::mpbgp_nexthop", 1, "MP-BGP", "no value"),
            ("192.0.2.1:65000::::unknown=value", 1, "MP-BGP", "'unknown'"),
            (
                "192.0.2.1:65000::::mpbgp_nexthop=magic",
                1,
                "MP-BGP",
                "'magic'",
            ),
            (
                "192.0.2.1:65000::::mpbgp_ipv4=2001:db8::1",
                1,
                "peer",
                "fields",
            ),
            ("192.0.2.1:65000::::mpbgp_ipv4=fixed", 1, "MP-BGP", "IPv4"),
            (
                "192.0.2.1:65000::::mpbgp_ipv6=192.0.2.9",
                1,
                "MP-BGP",
                "IPv6",
            ),
            ("192.0.2.1:65000::::a=b;;", 1, "MP-BGP", "'a'"),
            ("192.0.2.1:65000:::::true;300;300", 1, "BFD", "3 values"),
            ("192.0.2.1:65000:::::yes please;1;1;1", 1, "BFD", "enable"),
            (
                "192.0.2.1:65000:::::true;0;300;3",
                1,
                "BFD",
                "receive interval 0",
            ),
            (
                "192.0.2.1:65000:::::true;300;5000000;3",
                1,
                "BFD",
                "transmit interval",
            ),
            (
                "192.0.2.1:65000:::::true;300;300;0",
                1,
                "BFD",
                "multiplier 0",
            ),
            (
                "192.0.2.1:65000:::::true;300;300;256",
                1,
                "BFD",
                "multiplier 256",
            ),
            ("192.0.2.1:65000:::::true;300;300;x", 1, "BFD", "'x'"),
            (
                "192.0.2.1:65000:::::true;3;3;3:extra",
                1,
                "peer",
                "8 fields",
            ),
        ];
        for (input, index, field, words) in cases {
            let err = parse_peers(input).expect_err(input);
            assert_eq!((err.index, err.field), (*index, *field), "{input}: {err:?}");
            assert!(err.problem.contains(words), "{input}: {err:?}");
        }
    }

    #[test]
    fn errors_and_debug_output_never_show_the_password() {
        let err = parse_peers("192.0.2.1:65000:hunter2:maybe").unwrap_err();
        assert_eq!(err.peer, "192.0.2.1:65000:<redacted>:maybe");
        let err = parse_peers("[2001:db8::1]:x:hunter2").unwrap_err();
        assert_eq!(err.peer, "[2001:db8::1]:x:<redacted>");
        // An empty password is shown as it is: there is nothing to hide.
        let err = parse_peers("192.0.2.1:65000::maybe").unwrap_err();
        assert_eq!(err.peer, "192.0.2.1:65000::maybe");
        let peers = parse_peers("192.0.2.1:65000:hunter2").unwrap();
        let shown = format!("{peers:?} {}", peers[0].redacted());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            peers[0].password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
    }

    #[test]
    fn the_redacted_form_reparses_to_the_same_peer_but_the_password() {
        for input in [
            "192.0.2.1:65001",
            "192.0.2.1:65001:pw:true:1179",
            "[2001:db8::1]:4200000000::false:179:mpbgp_nexthop=fixed;mpbgp_ipv4=192.0.2.9",
            "[2001:db8::1]:65001:::::true;50;60;7",
        ] {
            let original = parse_peers(input).unwrap().remove(0);
            let shown = original.redacted();
            let mut again = parse_peers(&shown).unwrap().remove(0);
            if original.password.is_some() {
                assert_eq!(
                    again.password.take(),
                    Some(Secret::new(REDACTED)),
                    "{shown}"
                );
                again.password = original.password.clone();
            }
            assert_eq!(again, original, "{input} -> {shown}");
        }
        assert_eq!(
            parse_peers("192.0.2.1:65001:pw").unwrap()[0].redacted(),
            "192.0.2.1:65001:<redacted>:false:179"
        );
    }
}
