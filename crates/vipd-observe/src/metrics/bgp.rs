//! BGP-mode metrics (SPEC §5b, issue 14): one set of series per configured
//! peer, plus BFD (RFC 5880) when the peer has it. Registered by
//! [`crate::metrics::Metrics::new`] on the same registry; a process without
//! BGP mode exports the families with no series.
//!
//! The caller hands in plain values (this crate does not know `vipd-bgp`'s
//! or `vipd-bfd`'s types), once per change of a peer's status.
//!
//! ## Counters mirror cumulative counts, and never go down
//!
//! The BGP speaker keeps cumulative counts per peer task (UPDATEs sent and
//! received, times Established). [`BgpMetrics::observe_peer`] mirrors them
//! into counters by the difference to the count it last saw for that peer.
//! When the count it is given is *lower* than the last one, the peer's
//! session object was recreated (peer task restarted, configuration
//! reloaded) and started again from zero: the counter then grows by the
//! whole new count (everything the new object has counted since it
//! started), and later samples by the difference to that new baseline. This
//! is the reset rule Prometheus' `rate()` applies itself, so the exported
//! counter stays monotonic and loses no increase.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerOnly {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerState {
    peer: String,
    state: String,
}

/// Every `state` label `vipd_bgp_session_state` carries, RFC 4271 §8.2.2
/// names (one is 1, the rest 0). vipd's speaker never listens, so it has no
/// Active state: a failed connect goes back to Idle.
pub const BGP_STATES: [&str; 5] = ["Idle", "Connect", "OpenSent", "OpenConfirm", "Established"];

/// `vipd_bfd_state` value for Up (RFC 5880 §4.1 `Sta`: 0 AdminDown,
/// 1 Down, 2 Init, 3 Up).
pub const BFD_STATE_UP: u8 = 3;

/// One peer's status, in plain values.
#[derive(Debug, Clone, Copy)]
pub struct BgpPeerSample<'a> {
    /// The router, `address:port` (the `peer` label: `192.0.2.1:179`,
    /// `[2001:db8::1]:179`).
    pub peer: SocketAddr,
    /// Session state, one of [`BGP_STATES`]; the session is up when it is
    /// `Established`.
    pub state: &'a str,
    /// Cumulative UPDATE messages sent by the peer's session object.
    pub updates_sent: u64,
    /// Cumulative UPDATE messages received.
    pub updates_received: u64,
    /// Times the session object reached Established.
    pub established: u64,
    /// Prefixes the router has been told about now (Adj-RIB-Out).
    pub advertised: usize,
    /// Prefixes the router announced to us and did not withdraw.
    pub received: usize,
    /// The BFD session's state code (RFC 5880 §4.1: 0 AdminDown, 1 Down,
    /// 2 Init, 3 Up), when BFD is configured and started for the peer.
    pub bfd_state: Option<u8>,
}

/// Last cumulative counts seen for one peer.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    updates_sent: u64,
    updates_received: u64,
    established: u64,
}

/// The BGP and BFD metrics.
#[derive(Debug, Default)]
pub struct BgpMetrics {
    up: Family<PeerOnly, Gauge>,
    state: Family<PeerState, Gauge>,
    updates_sent: Family<PeerOnly, Counter>,
    updates_received: Family<PeerOnly, Counter>,
    established: Family<PeerOnly, Counter>,
    advertised: Family<PeerOnly, Gauge>,
    received: Family<PeerOnly, Gauge>,
    bfd_up: Family<PeerOnly, Gauge>,
    bfd_state: Family<PeerOnly, Gauge>,
    seen: Mutex<HashMap<SocketAddr, Seen>>,
}

impl BgpMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "vipd_bgp_session_up",
            "1 while the BGP session with the peer is Established",
            self.up.clone(),
        );
        registry.register(
            "vipd_bgp_session_state",
            "1 for the BGP session's current RFC 4271 state (Idle, Connect, OpenSent, OpenConfirm, Established); a session stuck in OpenSent had its OPEN refused",
            self.state.clone(),
        );
        registry.register(
            "vipd_bgp_updates_sent",
            "BGP UPDATE messages sent to the peer",
            self.updates_sent.clone(),
        );
        registry.register(
            "vipd_bgp_updates_received",
            "BGP UPDATE messages received from the peer",
            self.updates_received.clone(),
        );
        registry.register(
            "vipd_bgp_established",
            "Times the BGP session with the peer reached Established",
            self.established.clone(),
        );
        registry.register(
            "vipd_bgp_prefixes_advertised",
            "Prefixes this node has announced to the peer now (Adj-RIB-Out)",
            self.advertised.clone(),
        );
        registry.register(
            "vipd_bgp_prefixes_received",
            "Prefixes the peer has announced to this node and not withdrawn",
            self.received.clone(),
        );
        registry.register(
            "vipd_bfd_session_up",
            "1 while the BFD session with the BGP peer is Up (series present only for peers with BFD)",
            self.bfd_up.clone(),
        );
        registry.register(
            "vipd_bfd_state",
            "BFD session state as the RFC 5880 code: 0 AdminDown, 1 Down, 2 Init, 3 Up",
            self.bfd_state.clone(),
        );
    }

    /// Applies one peer's status. Gauges are set; counters move by the
    /// increase since the last sample, a lower count being a recreated
    /// session object that started from zero (see the module doc): they
    /// never go down. A peer whose BFD is gone (`bfd_state: None`) loses its
    /// BFD series.
    pub fn observe_peer(&self, s: &BgpPeerSample<'_>) {
        let peer = PeerOnly {
            peer: s.peer.to_string(),
        };
        self.up
            .get_or_create(&peer)
            .set(i64::from(s.state == "Established"));
        for state in BGP_STATES {
            self.state
                .get_or_create(&PeerState {
                    peer: peer.peer.clone(),
                    state: state.into(),
                })
                .set(i64::from(state == s.state));
        }
        self.advertised
            .get_or_create(&peer)
            .set(i64::try_from(s.advertised).unwrap_or(i64::MAX));
        self.received
            .get_or_create(&peer)
            .set(i64::try_from(s.received).unwrap_or(i64::MAX));
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            let last = seen.entry(s.peer).or_default();
            advance(
                &self.updates_sent.get_or_create(&peer),
                &mut last.updates_sent,
                s.updates_sent,
            );
            advance(
                &self.updates_received.get_or_create(&peer),
                &mut last.updates_received,
                s.updates_received,
            );
            advance(
                &self.established.get_or_create(&peer),
                &mut last.established,
                s.established,
            );
        }
        match s.bfd_state {
            Some(code) => {
                self.bfd_up
                    .get_or_create(&peer)
                    .set(i64::from(code == BFD_STATE_UP));
                self.bfd_state.get_or_create(&peer).set(i64::from(code));
            }
            None => {
                self.bfd_up.remove(&peer);
                self.bfd_state.remove(&peer);
            }
        }
    }

    /// Drops every series of a peer removed from the configuration. Its
    /// counters start again from zero if it comes back (a counter reset,
    /// which Prometheus handles).
    pub fn remove_peer(&self, peer: SocketAddr) {
        let label = PeerOnly {
            peer: peer.to_string(),
        };
        for family in [
            &self.up,
            &self.advertised,
            &self.received,
            &self.bfd_up,
            &self.bfd_state,
        ] {
            family.remove(&label);
        }
        for family in [
            &self.updates_sent,
            &self.updates_received,
            &self.established,
        ] {
            family.remove(&label);
        }
        for state in BGP_STATES {
            self.state.remove(&PeerState {
                peer: label.peer.clone(),
                state: state.into(),
            });
        }
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&peer);
    }
}

/// Moves `counter` by the increase from `*last` to `total`, where a `total`
/// below `*last` counts from zero (a recreated source), and remembers
/// `total` as the new baseline.
fn advance(counter: &Counter, last: &mut u64, total: u64) {
    let increase = total.checked_sub(*last).unwrap_or(total);
    if increase > 0 {
        counter.inc_by(increase);
    }
    *last = total;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn sample(peer: &str) -> BgpPeerSample<'static> {
        BgpPeerSample {
            peer: peer.parse().unwrap_or_else(|e| panic!("{peer}: {e}")),
            state: "Established",
            updates_sent: 3,
            updates_received: 1,
            established: 1,
            advertised: 2,
            received: 0,
            bfd_state: Some(BFD_STATE_UP),
        }
    }

    fn assert_has(text: &str, needles: &[&str]) {
        for needle in needles {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }

    #[test]
    fn an_established_peer_exports_every_family_with_its_peer_label() {
        let m = Metrics::new("0");
        m.bgp.observe_peer(&sample("192.0.2.1:179"));
        m.bgp.observe_peer(&BgpPeerSample {
            state: "OpenSent",
            updates_sent: 0,
            updates_received: 0,
            established: 0,
            advertised: 0,
            received: 4,
            bfd_state: Some(1),
            ..sample("[2001:db8::1]:179")
        });
        let text = m.encode();
        assert_has(
            &text,
            &[
                r#"vipd_bgp_session_up{peer="192.0.2.1:179"} 1"#,
                r#"vipd_bgp_session_state{peer="192.0.2.1:179",state="Established"} 1"#,
                r#"vipd_bgp_session_state{peer="192.0.2.1:179",state="Idle"} 0"#,
                r#"vipd_bgp_updates_sent_total{peer="192.0.2.1:179"} 3"#,
                r#"vipd_bgp_updates_received_total{peer="192.0.2.1:179"} 1"#,
                r#"vipd_bgp_established_total{peer="192.0.2.1:179"} 1"#,
                r#"vipd_bgp_prefixes_advertised{peer="192.0.2.1:179"} 2"#,
                r#"vipd_bgp_prefixes_received{peer="192.0.2.1:179"} 0"#,
                r#"vipd_bfd_session_up{peer="192.0.2.1:179"} 1"#,
                r#"vipd_bfd_state{peer="192.0.2.1:179"} 3"#,
                r#"vipd_bgp_session_up{peer="[2001:db8::1]:179"} 0"#,
                r#"vipd_bgp_session_state{peer="[2001:db8::1]:179",state="OpenSent"} 1"#,
                r#"vipd_bgp_session_state{peer="[2001:db8::1]:179",state="Established"} 0"#,
                r#"vipd_bgp_prefixes_received{peer="[2001:db8::1]:179"} 4"#,
                r#"vipd_bfd_session_up{peer="[2001:db8::1]:179"} 0"#,
                r#"vipd_bfd_state{peer="[2001:db8::1]:179"} 1"#,
                "# HELP vipd_bfd_state BFD session state as the RFC 5880 code",
                "# TYPE vipd_bgp_updates_sent counter",
                "# TYPE vipd_bgp_session_up gauge",
            ],
        );
        let one_hot = text
            .lines()
            .filter(|l| l.starts_with(r#"vipd_bgp_session_state{peer="192.0.2.1:179""#))
            .map(|l| l.rsplit(' ').next().unwrap_or_default())
            .collect::<Vec<_>>();
        assert_eq!(one_hot.len(), BGP_STATES.len(), "{text}");
        assert_eq!(one_hot.iter().filter(|v| **v == "1").count(), 1, "{text}");
    }

    #[test]
    fn counters_never_decrease_when_the_session_object_is_recreated() {
        let m = Metrics::new("0");
        let peer = "192.0.2.1:179";
        let counters = |m: &Metrics| {
            let text = m.encode();
            [
                "vipd_bgp_updates_sent_total",
                "vipd_bgp_updates_received_total",
                "vipd_bgp_established_total",
            ]
            .map(|name| {
                let prefix = format!(r#"{name}{{peer="{peer}"}} "#);
                text.lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
            })
        };
        let at = |sent, received, established| BgpPeerSample {
            updates_sent: sent,
            updates_received: received,
            established,
            ..sample(peer)
        };
        // (sample given, counters expected): the first sample counts in
        // full, repeats add nothing, a drop is a new object counting from
        // zero, and growth after it is measured from the new baseline.
        for (given, expected) in [
            ((10, 4, 2), [10, 4, 2]),
            ((10, 4, 2), [10, 4, 2]),
            ((12, 5, 2), [12, 5, 2]),
            ((1, 0, 1), [13, 5, 3]),
            ((4, 2, 1), [16, 7, 3]),
            ((0, 0, 0), [16, 7, 3]),
        ] {
            m.bgp.observe_peer(&at(given.0, given.1, given.2));
            assert_eq!(counters(&m), expected, "after {given:?}");
        }
    }

    #[test]
    fn bfd_gone_or_peer_removed_drops_its_series() {
        let m = Metrics::new("0");
        let s = sample("192.0.2.1:179");
        m.bgp.observe_peer(&s);
        m.bgp.observe_peer(&BgpPeerSample {
            bfd_state: None,
            ..s
        });
        let text = m.encode();
        assert!(!text.contains("vipd_bfd_state{"), "{text}");
        assert!(!text.contains("vipd_bfd_session_up{"), "{text}");
        assert!(text.contains(r#"vipd_bgp_session_up{peer="192.0.2.1:179"} 1"#));
        m.bgp.remove_peer(s.peer);
        let text = m.encode();
        assert!(!text.contains("192.0.2.1:179"), "{text}");
        // Back again: counters restart from the new object's count.
        m.bgp.observe_peer(&BgpPeerSample {
            updates_sent: 1,
            ..s
        });
        assert!(m
            .encode()
            .contains(r#"vipd_bgp_updates_sent_total{peer="192.0.2.1:179"} 1"#));
    }
}
