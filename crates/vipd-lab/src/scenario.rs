//! The fault recipes. Each is *inject, hold, heal*; the runner then lets the
//! lab settle and measures. They follow crates/vipd/tests/scenarios.rs.

use crate::cluster::WITNESS;
use crate::lab::{Coordination, Implementation, Lab, Variant};
use crate::LabError;
use std::time::Duration;

/// One named fault recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Holder gets SIGTERM (graceful handover, R7); restarted at heal.
    Sigterm,
    /// Holder SIGKILLed, restarted 1 s later as kubelet would.
    SigkillRestart,
    /// Holder node crash: SIGKILL + link down; at heal the node "reboots"
    /// (addresses gone), link up, vipd started.
    Crash,
    /// Holder's link down, then up at heal (vipd keeps running).
    LinkFlap,
    /// Holder cut from the API (etcd or the test server) by nftables in its
    /// namespace.
    ApiCut,
    /// The API down for everyone longer than the lease, then back (etcd
    /// stopped; the test server's packets dropped, see [`crate::api`]).
    ApiDown,
    /// L2 partition between the holder and the other nodes (the client still
    /// reaches everyone).
    Partition,
    /// 30 % random packet loss on the holder, both directions.
    Loss,
    /// One node isolated: a follower's link down, up at heal. The holder
    /// must not notice (no gap, no change), and the node coming back must
    /// not unseat it (SPEC §5a Q7 in quorum mode).
    Isolated,
    /// The VIP deleted by hand on the holder.
    VipDeleted,
    /// A stale VIP left on a follower (crash leftover; vipd-tagged with
    /// vipd, added by hand with keepalived) that the restarted follower must
    /// remove.
    StaleVip,
    /// Services run: the node announcing the most Service addresses
    /// crashes (as [`Scenario::Crash`]).
    SvcCrash,
    /// Services run: the API down for everyone (as [`Scenario::ApiDown`]).
    /// In lease mode every node's own lease lapses, so every Service
    /// address is withdrawn after the renew deadline until the API is back
    /// (R1 over availability): the gap is the expected, measured truth. In
    /// quorum mode the grants do not need the API (issue 13): no gap.
    SvcApiDown,
    /// Services run: the busiest node's link flaps (as
    /// [`Scenario::LinkFlap`]).
    SvcLinkFlap,
    /// The holder's peer traffic (vipd's quorum UDP; keepalived's VRRP) to
    /// and from every peer dropped at the switch, while the client and the
    /// API still reach every node. Not applicable to vipd in lease mode
    /// (no peer traffic).
    PeerPartition,
    /// 20 % random loss of all peer traffic between any two hosts, at the
    /// switch. Not applicable to vipd in lease mode.
    PeerLoss,
    /// The quorum witness SIGKILLed, restarted at heal (quorum mode with
    /// `--witness` only).
    WitnessDown,
}

/// Who a run acts on, chosen when the lab is steady.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The node holding the VIP before the fault (Services scenarios: the
    /// node announcing the most Service addresses).
    pub holder: String,
    /// A node not holding it.
    pub follower: String,
    /// Every vipd node.
    pub nodes: Vec<String>,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 11] = [
        Scenario::Sigterm,
        Scenario::SigkillRestart,
        Scenario::Crash,
        Scenario::LinkFlap,
        Scenario::ApiCut,
        Scenario::ApiDown,
        Scenario::Partition,
        Scenario::Loss,
        Scenario::VipDeleted,
        Scenario::StaleVip,
        Scenario::Isolated,
    ];

    /// The Services scenarios, in the order `services` runs them.
    pub const SERVICES: [Scenario; 3] = [
        Scenario::SvcCrash,
        Scenario::SvcApiDown,
        Scenario::SvcLinkFlap,
    ];

    /// The peer-traffic and witness scenarios, in the order `peer` runs
    /// them (`all` adds the first two in quorum mode, and the third with a
    /// witness).
    pub const PEER: [Scenario; 3] = [
        Scenario::PeerPartition,
        Scenario::PeerLoss,
        Scenario::WitnessDown,
    ];

    /// True for the Services scenarios (they need `--services N`).
    pub fn is_services(self) -> bool {
        Scenario::SERVICES.contains(&self)
    }

    /// True when the fault acts on every node at once (the API down), not
    /// on one target.
    pub fn hits_every_node(self) -> bool {
        matches!(self, Scenario::ApiDown | Scenario::SvcApiDown)
    }

    /// The scenario's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Sigterm => "sigterm",
            Scenario::SigkillRestart => "sigkill-restart",
            Scenario::Crash => "crash",
            Scenario::LinkFlap => "link-flap",
            Scenario::ApiCut => "api-cut",
            Scenario::ApiDown => "api-down",
            Scenario::Partition => "partition",
            Scenario::Loss => "loss",
            Scenario::Isolated => "isolated",
            Scenario::VipDeleted => "vip-deleted",
            Scenario::StaleVip => "stale-vip",
            Scenario::SvcCrash => "svc-crash",
            Scenario::SvcApiDown => "svc-api-down",
            Scenario::SvcLinkFlap => "svc-link-flap",
            Scenario::PeerPartition => "peer-partition",
            Scenario::PeerLoss => "peer-loss",
            Scenario::WitnessDown => "witness-down",
        }
    }

    /// Why the scenario cannot run on `v` (`None`: it can). `witness`: the
    /// lab has a quorum witness. A scenario that does not apply is
    /// reported as such, never run and never counted as a pass.
    pub fn not_applicable(self, v: Variant, witness: bool) -> Option<&'static str> {
        let quorum =
            v.implementation == Implementation::Vipd && v.coordination == Coordination::Quorum;
        match self {
            Scenario::PeerPartition | Scenario::PeerLoss
                if v.implementation == Implementation::Vipd && !quorum =>
            {
                Some("vipd in lease mode has no peer traffic (its nodes meet only in the API: see api-cut, api-down)")
            }
            Scenario::WitnessDown if !(quorum && witness) => {
                Some("no witness here (vipd quorum mode with --witness only)")
            }
            _ => None,
        }
    }

    /// Parses a comma-separated list; `all` expands to [`Scenario::ALL`]
    /// and, when the run has vipd in quorum mode (`quorum`), peer-partition
    /// and peer-loss, and with a witness (`witness`) witness-down too;
    /// `peer` to [`Scenario::PEER`]; `services` to [`Scenario::SERVICES`].
    pub fn parse_list(s: &str, quorum: bool, witness: bool) -> Result<Vec<Scenario>, String> {
        let mut out = Vec::new();
        let every = || {
            Scenario::ALL
                .iter()
                .chain(&Scenario::SERVICES)
                .chain(&Scenario::PEER)
        };
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                out.extend(Scenario::ALL);
                if quorum {
                    out.extend([Scenario::PeerPartition, Scenario::PeerLoss]);
                }
                if quorum && witness {
                    out.push(Scenario::WitnessDown);
                }
                continue;
            }
            if w == "peer" {
                out.extend(Scenario::PEER);
                continue;
            }
            if w == "services" {
                out.extend(Scenario::SERVICES);
                continue;
            }
            match every().find(|sc| sc.name() == w) {
                Some(sc) => out.push(*sc),
                None => {
                    let names: Vec<&str> = every().map(|s| s.name()).collect();
                    return Err(format!(
                        "unknown scenario `{w}`; known: all, peer, services, {}",
                        names.join(", ")
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("no scenario given".into());
        }
        Ok(out)
    }

    /// How long the fault is held: at least `requested`, and long enough for
    /// the fault to have its effect (a lease to expire, a fence to trip).
    /// `lease` is the lease duration.
    pub fn hold(self, requested: Duration, lease: Duration) -> Duration {
        let min = match self {
            // "Restarted after 1 s, as kubelet would": fixed.
            Scenario::SigkillRestart => return Duration::from_secs(1),
            // A takeover needs the lease to expire, then an election. A
            // partition must outlast failure detection too, or keepalived's
            // backups (master down after ~1.2 leases, see keepalived.rs)
            // would never notice it and the scenario would test nothing.
            // The peer faults likewise: the holder must lose its promises
            // (or keepalived its adverts) and a successor be elected; loss
            // and a dead witness must be survived for a while to show that
            // they are.
            Scenario::Crash
            | Scenario::SvcCrash
            | Scenario::ApiCut
            | Scenario::Partition
            | Scenario::Isolated
            | Scenario::PeerPartition
            | Scenario::PeerLoss
            | Scenario::WitnessDown => lease + Duration::from_secs(2),
            // "Longer than the lease": everyone must have fenced.
            Scenario::ApiDown | Scenario::SvcApiDown => lease + Duration::from_secs(1),
            // The follower's vipd must restart and reconcile (1 s period).
            Scenario::StaleVip => Duration::from_secs(3),
            _ => Duration::ZERO,
        };
        requested.max(min)
    }

    /// True when two-holder time is counted only from the heal: the stale
    /// copy is planted while its node is fenced off at layer 2, so its
    /// address-level overlap before the heal cannot reach anyone (as in
    /// tests/scenarios.rs `stale_vip_left_on_a_follower_is_removed`).
    pub fn count_from_heal(self) -> bool {
        self == Scenario::StaleVip
    }

    /// Injects the fault; returns a short description for the live view.
    /// A Services scenario is the control-plane recipe of the same name,
    /// aimed at [`Targets::holder`] (the busiest node).
    pub fn inject(self, lab: &mut Lab, t: &Targets) -> Result<String, LabError> {
        let h = t.holder.as_str();
        let api = lab.backend().server_name();
        let busiest = if self.is_services() { " (busiest)" } else { "" };
        Ok(match self {
            Scenario::Sigterm => {
                let clean = lab.sigterm(h)?;
                if clean {
                    format!("{h} SIGTERM")
                } else {
                    format!("{h} SIGTERM (ignored, SIGKILLed after 10 s)")
                }
            }
            Scenario::SigkillRestart => {
                lab.sigkill(h)?;
                format!("{h} SIGKILL, restart in 1 s")
            }
            Scenario::Crash | Scenario::SvcCrash => {
                lab.sigkill(h)?;
                lab.topo.host(h).link_down()?;
                format!("{h}{busiest} crashed (SIGKILL + link down)")
            }
            Scenario::LinkFlap | Scenario::SvcLinkFlap => {
                lab.topo.host(h).link_down()?;
                format!("{h}{busiest} link down")
            }
            Scenario::ApiCut => {
                lab.cut_from_api(h)?;
                format!("{h} cut from {api}")
            }
            Scenario::ApiDown | Scenario::SvcApiDown => {
                lab.api_down()?;
                format!("{api} down for everyone")
            }
            Scenario::Partition => {
                // The witness is a peer like the nodes: cut it off too.
                let mut others: Vec<&str> = t
                    .nodes
                    .iter()
                    .map(String::as_str)
                    .filter(|n| *n != h)
                    .collect();
                if lab.has_witness() {
                    others.push(WITNESS);
                }
                lab.topo.partition(h, &others)?;
                format!("{h} partitioned from {}", others.join(","))
            }
            Scenario::Loss => {
                lab.lossy(h, 30)?;
                format!("30% loss on {h}")
            }
            Scenario::Isolated => {
                let f = t.follower.as_str();
                lab.topo.host(f).link_down()?;
                format!("follower {f} isolated (link down)")
            }
            Scenario::VipDeleted => {
                lab.delete_vip(h)?;
                format!("VIP deleted on {h}")
            }
            Scenario::StaleVip => {
                // Faithful leftover: vipd's own tag, on a node whose vipd is
                // down (as after SIGKILL), fenced at L2 from the client and
                // the other nodes but able to reach etcd; then vipd restarts
                // there, finds the lease held by someone else and must
                // remove the copy.
                let f = t.follower.as_str();
                lab.sigkill(f)?;
                let mut cut: Vec<&str> = t
                    .nodes
                    .iter()
                    .map(String::as_str)
                    .filter(|n| *n != f)
                    .collect();
                if lab.has_witness() {
                    cut.push(WITNESS);
                }
                cut.push("client");
                lab.topo.partition(f, &cut)?;
                lab.plant_vip(f)?;
                lab.start(f)?;
                format!(
                    "stale VIP planted on {f}, {} restarted",
                    lab.implementation().name()
                )
            }
            Scenario::PeerPartition => match lab.cut_peers(h)? {
                Some(traffic) => format!(
                    "{h}'s {} to and from its peers dropped at the switch",
                    traffic.name()
                ),
                None => return Err(not_applicable(self)),
            },
            Scenario::PeerLoss => match lab.lossy_peers(20)? {
                Some(traffic) => format!(
                    "20% loss of {} between all peers at the switch",
                    traffic.name()
                ),
                None => return Err(not_applicable(self)),
            },
            Scenario::WitnessDown => {
                if !lab.has_witness() {
                    return Err(not_applicable(self));
                }
                lab.kill_witness();
                format!("witness {WITNESS} SIGKILLed")
            }
        })
    }

    /// Heals the fault (and restarts what the fault stopped).
    pub fn heal(self, lab: &mut Lab, t: &Targets) -> Result<(), LabError> {
        let h = t.holder.as_str();
        match self {
            Scenario::Sigterm | Scenario::SigkillRestart => lab.start(h)?,
            Scenario::Crash | Scenario::SvcCrash => {
                // The node reboots: a reboot loses every address the crash
                // left configured (the leftover-at-start case is the
                // stale-vip scenario), the link comes up, vipd starts.
                lab.forget_addresses(h)?;
                lab.topo.host(h).link_up()?;
                lab.start(h)?;
            }
            Scenario::LinkFlap | Scenario::SvcLinkFlap => lab.topo.host(h).link_up()?,
            Scenario::Isolated => lab.topo.host(&t.follower).link_up()?,
            Scenario::ApiCut | Scenario::Loss => lab.clear_node_rules(h)?,
            Scenario::ApiDown | Scenario::SvcApiDown => lab.api_up()?,
            Scenario::Partition | Scenario::StaleVip => lab.topo.heal_partition()?,
            Scenario::VipDeleted => {}
            Scenario::PeerPartition | Scenario::PeerLoss => lab.clear_peer_rules()?,
            Scenario::WitnessDown => lab.start_witness()?,
        }
        Ok(())
    }
}

/// The error of a scenario injected where it does not apply (the plan
/// filters those out first: a bug if it happens).
fn not_applicable(sc: Scenario) -> LabError {
    LabError::Setup(format!(
        "scenario {} does not apply to this lab (it should have been skipped)",
        sc.name()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn scenario_lists_parse_names_and_all() {
        assert_eq!(
            Scenario::parse_list("api-cut, loss", false, false).unwrap(),
            vec![Scenario::ApiCut, Scenario::Loss]
        );
        assert_eq!(
            Scenario::parse_list("all", false, false).unwrap(),
            Scenario::ALL.to_vec()
        );
        assert_eq!(
            Scenario::parse_list("services,crash", false, false).unwrap(),
            vec![
                Scenario::SvcCrash,
                Scenario::SvcApiDown,
                Scenario::SvcLinkFlap,
                Scenario::Crash
            ]
        );
        let err = Scenario::parse_list("sigterm,bogus", true, true).unwrap_err();
        assert!(
            err.contains("bogus")
                && err.contains("stale-vip")
                && err.contains("svc-crash")
                && err.contains("peer-partition")
                && err.contains("witness-down"),
            "{err}"
        );
        assert!(Scenario::parse_list(",", false, false).is_err());
    }

    #[test]
    fn all_adds_the_peer_scenarios_only_in_quorum_mode_and_witness_down_only_with_a_witness() {
        let names = |s: &str, q, w| -> Vec<&'static str> {
            Scenario::parse_list(s, q, w)
                .unwrap()
                .into_iter()
                .map(Scenario::name)
                .collect()
        };
        let q = names("all", true, false);
        assert_eq!(q.len(), 13);
        assert_eq!(&q[11..], ["peer-partition", "peer-loss"]);
        let w = names("all", true, true);
        assert_eq!(&w[11..], ["peer-partition", "peer-loss", "witness-down"]);
        // A witness without quorum mode adds nothing (the CLI refuses it).
        assert_eq!(names("all", false, true).len(), 11);
        assert_eq!(
            names("peer,sigterm", false, false),
            ["peer-partition", "peer-loss", "witness-down", "sigterm"]
        );
        assert_eq!(names("witness-down", false, false), ["witness-down"]);
    }

    #[test]
    fn peer_scenarios_do_not_apply_to_lease_mode_and_witness_down_needs_a_witness() {
        let v = |implementation, coordination| Variant {
            implementation,
            coordination,
        };
        let lease = v(Implementation::Vipd, Coordination::Lease);
        let quorum = v(Implementation::Vipd, Coordination::Quorum);
        let keepalived = v(Implementation::Keepalived, Coordination::Lease);
        for sc in [Scenario::PeerPartition, Scenario::PeerLoss] {
            assert!(sc.not_applicable(lease, false).is_some());
            assert_eq!(sc.not_applicable(quorum, false), None);
            assert_eq!(sc.not_applicable(quorum, true), None);
            // keepalived's peer traffic is VRRP: the fault applies.
            assert_eq!(sc.not_applicable(keepalived, false), None);
        }
        let wd = Scenario::WitnessDown;
        assert!(wd.not_applicable(quorum, false).is_some());
        assert!(wd.not_applicable(lease, true).is_some());
        assert!(wd.not_applicable(keepalived, true).is_some());
        assert_eq!(wd.not_applicable(quorum, true), None);
        // Every classic scenario applies everywhere.
        for sc in Scenario::ALL {
            for var in [lease, quorum, keepalived] {
                assert_eq!(sc.not_applicable(var, true), None, "{}", sc.name());
            }
        }
    }

    #[test]
    fn holds_cover_lease_expiry_where_the_fault_needs_it() {
        let lease = Duration::from_secs(3);
        let short = Duration::from_secs(1);
        assert_eq!(Scenario::Crash.hold(short, lease), Duration::from_secs(5));
        assert_eq!(Scenario::ApiDown.hold(short, lease), Duration::from_secs(4));
        assert_eq!(
            Scenario::Partition.hold(short, lease),
            Duration::from_secs(5)
        );
        assert_eq!(
            Scenario::SigkillRestart.hold(Duration::from_secs(9), lease),
            Duration::from_secs(1)
        );
        assert_eq!(
            Scenario::Loss.hold(Duration::from_secs(9), lease),
            Duration::from_secs(9)
        );
    }
}
