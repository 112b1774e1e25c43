//! kube-vip's node-annotation form of the BGP settings (`annotation` /
//! `--annotations`, a prefix `P`): the local AS, router ID and peers come
//! from annotations on this node's Node object instead of the environment,
//! so one DaemonSet serves nodes with different peers (Equinix Metal writes
//! them). Pure: the daemon reads the Node and hands its annotations here.
//!
//! What kube-vip reads (`pkg/manager/watch_annotations.go`,
//! `parseBgpAnnotations`), and vipd with it:
//!
//! - `P/node-asn`: the local AS (required).
//! - `P/src-ip`: the router ID (required; vipd also binds the sessions to
//!   it, as the node's address on the peering network).
//! - `P/peer-asn`: the peers' AS (required).
//! - `P/peer-ip`: the peer addresses, comma-separated (at least one).
//! - `P/bgp-pass`: the TCP MD5 password, base64 (optional). kube-vip sets
//!   it on a template after copying the peers, so its peers never get it;
//!   vipd gives it to every annotation peer, which is what it is for.
//! - `P/peer-multi-hop`: `true`/`false` (optional).
//!
//! Equinix Metal's newer form nests the same keys per peer:
//! `P/bgp-peers-<N>-<key>`; vipd accepts each key in that form for peer 0
//! and collects `P/bgp-peers-<N>-peer-ip` for every `N`.
//!
//! Until every required key is present kube-vip waits (it watches the
//! Node); so does vipd: [`AnnotationProblem::Missing`] means "not yet".

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;

use super::bgp::{BgpSettings, RouterId};
use super::bgp_peers::{BgpPeer, Mpbgp, Secret};

/// Why the annotations do not give settings (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationProblem {
    /// A required key is absent or empty: wait for it.
    #[error("node annotation {0} is missing or empty")]
    Missing(String),
    /// A key is present but unusable (the value is shown, except for the
    /// password).
    #[error("node annotation {key} = {value:?}: {expected}")]
    Invalid {
        /// The full annotation key.
        key: String,
        /// Its value (redacted for `bgp-pass`).
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// The BGP settings for this node: `base` with the local AS, router ID,
/// source address and peers taken from `annotations` under `prefix`.
pub fn apply(
    base: &BgpSettings,
    prefix: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<BgpSettings, AnnotationProblem> {
    let find = |key: &str| -> Option<(String, &str)> {
        [
            format!("{prefix}/{key}"),
            format!("{prefix}/bgp-peers-0-{key}"),
        ]
        .into_iter()
        .find_map(|k| {
            let v = annotations.get(&k)?.trim();
            (!v.is_empty()).then_some((k, v))
        })
    };
    let required =
        |key: &str| find(key).ok_or_else(|| AnnotationProblem::Missing(format!("{prefix}/{key}")));
    let asn = |(key, v): (String, &str)| -> Result<u32, AnnotationProblem> {
        match v.parse::<u32>() {
            Ok(n) if n != 0 => Ok(n),
            _ => Err(AnnotationProblem::Invalid {
                key,
                value: v.to_owned(),
                expected: "an AS number 1..=4294967295",
            }),
        }
    };
    let local_as = asn(required("node-asn")?)?;
    let (src_key, src) = required("src-ip")?;
    let router_id: Ipv4Addr = src.parse().map_err(|_| AnnotationProblem::Invalid {
        key: src_key,
        value: src.to_owned(),
        expected: "an IPv4 address (it is also the BGP router ID)",
    })?;
    let remote_as = asn(required("peer-asn")?)?;
    let multihop = match find("peer-multi-hop") {
        None => false,
        Some((key, v)) => match v {
            "true" => true,
            "false" => false,
            _ => {
                return Err(AnnotationProblem::Invalid {
                    key,
                    value: v.to_owned(),
                    expected: "true or false",
                })
            }
        },
    };
    let password = match find("bgp-pass") {
        None => None,
        Some((key, v)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v)
                .map_err(|_| AnnotationProblem::Invalid {
                    key: key.clone(),
                    value: "<redacted>".into(),
                    expected: "base64 (standard alphabet, padded)",
                })?;
            let text = String::from_utf8(bytes).map_err(|_| AnnotationProblem::Invalid {
                key,
                value: "<redacted>".into(),
                expected: "base64 of a UTF-8 password",
            })?;
            Some(Secret::new(text))
        }
    };
    // Peer addresses: P/peer-ip, then every P/bgp-peers-<N>-peer-ip in key
    // order (BTreeMap), without repeats.
    let mut lists: Vec<(String, &str)> = Vec::new();
    if let Some(v) = annotations.get(&format!("{prefix}/peer-ip")) {
        lists.push((format!("{prefix}/peer-ip"), v));
    }
    let nested = format!("{prefix}/bgp-peers-");
    for (k, v) in annotations.range(nested.clone()..) {
        let Some(rest) = k.strip_prefix(&nested) else {
            break;
        };
        if rest
            .split_once('-')
            .is_some_and(|(n, key)| key == "peer-ip" && n.parse::<u32>().is_ok())
        {
            lists.push((k.clone(), v));
        }
    }
    let mut addresses: Vec<IpAddr> = Vec::new();
    for (key, list) in lists {
        for a in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            let ip: IpAddr = a.parse().map_err(|_| AnnotationProblem::Invalid {
                key: key.clone(),
                value: a.to_owned(),
                expected: "IP addresses, comma-separated",
            })?;
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
    }
    if addresses.is_empty() {
        return Err(AnnotationProblem::Missing(format!("{prefix}/peer-ip")));
    }
    let mut out = base.clone();
    out.local_as = local_as;
    out.router_id = RouterId::Fixed(router_id);
    out.source_ip = Some(IpAddr::V4(router_id));
    out.peers = addresses
        .into_iter()
        .map(|address| BgpPeer {
            address,
            remote_as,
            password: password.clone(),
            multihop,
            port: 179,
            mpbgp: Mpbgp::default(),
            bfd: None,
        })
        .collect();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn base() -> BgpSettings {
        BgpSettings {
            router_id: RouterId::FromNodeAnnotations,
            local_as: 65000,
            peers: Vec::new(),
            source_if: None,
            source_ip: None,
            hold_time: Duration::from_secs(30),
            keepalive: Duration::from_secs(10),
            mpbgp: Mpbgp::default(),
            node_annotations: Some("metal.equinix.com".into()),
            leader_election: false,
            services_election: false,
        }
    }

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("metal.equinix.com/{k}"), (*v).to_owned()))
            .collect()
    }

    const P: &str = "metal.equinix.com";

    #[test]
    fn the_flat_form_gives_as_router_id_source_and_every_peer() {
        let s = apply(
            &base(),
            P,
            &ann(&[
                ("node-asn", "65001"),
                ("src-ip", "192.0.2.11"),
                ("peer-asn", "65530"),
                ("peer-ip", "192.0.2.1, 192.0.2.2"),
                // base64("s3cret")
                ("bgp-pass", "czNjcmV0"),
                ("peer-multi-hop", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(s.local_as, 65001);
        assert_eq!(s.router_id, RouterId::Fixed(Ipv4Addr::new(192, 0, 2, 11)));
        assert_eq!(s.source_ip, Some("192.0.2.11".parse().unwrap()));
        assert_eq!(s.peers.len(), 2);
        for p in &s.peers {
            assert_eq!(p.remote_as, 65530);
            assert!(p.multihop);
            assert_eq!(p.password.as_ref().map(Secret::expose), Some("s3cret"));
            assert_eq!(p.port, 179);
        }
        // Everything else stays as configured.
        assert_eq!(s.hold_time, Duration::from_secs(30));
    }

    #[test]
    fn the_nested_form_is_read_for_peer_zero_and_every_peer_address() {
        let s = apply(
            &base(),
            P,
            &ann(&[
                ("bgp-peers-0-node-asn", "65001"),
                ("bgp-peers-0-src-ip", "192.0.2.11"),
                ("bgp-peers-0-peer-asn", "65530"),
                ("bgp-peers-0-peer-ip", "192.0.2.1"),
                ("bgp-peers-1-peer-ip", "192.0.2.2"),
                ("bgp-peers-1-peer-asn", "65530"),
            ]),
        )
        .unwrap();
        let addrs: Vec<String> = s.peers.iter().map(|p| p.address.to_string()).collect();
        assert_eq!(addrs, ["192.0.2.1", "192.0.2.2"]);
        assert!(s.peers.iter().all(|p| p.password.is_none() && !p.multihop));
    }

    #[test]
    fn a_missing_key_means_wait_and_a_bad_one_names_itself() {
        let full = [
            ("node-asn", "65001"),
            ("src-ip", "192.0.2.11"),
            ("peer-asn", "65530"),
            ("peer-ip", "192.0.2.1"),
        ];
        for skip in 0..full.len() {
            let some: Vec<(&str, &str)> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, kv)| *kv)
                .collect();
            match apply(&base(), P, &ann(&some)) {
                Err(AnnotationProblem::Missing(k)) => {
                    assert_eq!(k, format!("{P}/{}", full[skip].0));
                }
                other => panic!("without {}: {other:?}", full[skip].0),
            }
        }
        let bad = |k: &'static str, v: &'static str| {
            let mut a: Vec<(&str, &str)> = full.to_vec();
            a.retain(|(x, _)| *x != k);
            a.push((k, v));
            apply(&base(), P, &ann(&a)).unwrap_err()
        };
        for (k, v) in [
            ("node-asn", "0"),
            ("node-asn", "x"),
            ("src-ip", "2001:db8::1"),
            ("peer-ip", "192.0.2.1,nope"),
            ("peer-multi-hop", "yes"),
        ] {
            match bad(k, v) {
                AnnotationProblem::Invalid { key, .. } => assert_eq!(key, format!("{P}/{k}")),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
        // The password is never shown.
        let e = bad("bgp-pass", "not base64!").to_string();
        assert!(e.contains("<redacted>") && !e.contains("not base64"), "{e}");
    }
}
