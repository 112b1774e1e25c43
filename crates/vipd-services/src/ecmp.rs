//! Services in BGP mode without leader election (issue 14): every eligible
//! node announces a Service address at once and the router spreads the
//! traffic over them (ECMP), as kube-vip's BGP mode does with
//! `svc_election` off. There is no owner, so none of the ownership core's
//! leases, assignment or handoff applies: a node only decides, from what
//! it reads, whether *it* may announce each address.
//!
//! The rule per address, from the address's [`Policy`] (derived by the
//! Kubernetes side from the Services sharing it):
//!
//! - no policy: every node announces (`externalTrafficPolicy: Cluster`,
//!   kube-proxy forwards from any node);
//! - `nodes: Some(set)`: only nodes in the set (`Local` → nodes hosting a
//!   ready endpoint; node selector; excluded nodes). A node keeps
//!   announcing as long as it hosts *one* ready endpoint, however many
//!   others come and go: a rolling update replaces pods one by one, and a
//!   node withdraws only when its last ready endpoint goes (the fault of
//!   kube-vip #1397 was withdrawing on the first endpoint removal);
//! - a zone pin: the pinned zone's eligible nodes if there is one, else
//!   (with fallback) every eligible node. Without node leases there is no
//!   liveness here: a pinned zone counts as present while its nodes are
//!   in the eligible set.
//!
//! A node that fails its health checks (SPEC R8) announces nothing. Until
//! the first full read of the world ([`Input::Addresses`]) nothing is
//! announced either: an empty cache means "not read yet", not "no
//! Services".

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::{Input, NodeId, Policy};

/// One node's ECMP decision state. Inputs are the ownership core's
/// [`Input`]s; the ones about leases and the assignment do not apply and
/// are ignored.
#[derive(Clone, Debug)]
pub struct Ecmp {
    me: NodeId,
    addresses: Option<BTreeSet<IpAddr>>,
    policies: BTreeMap<IpAddr, Policy>,
    eligible: bool,
    assigner: bool,
}

impl Ecmp {
    /// A node that has read nothing yet; eligible until told otherwise
    /// (the driver sends the health gate's first value before anything
    /// else when checks are configured).
    pub fn new(me: impl Into<NodeId>) -> Ecmp {
        Ecmp {
            me: me.into(),
            addresses: None,
            policies: BTreeMap::new(),
            eligible: true,
            assigner: false,
        }
    }

    /// Applies one input; returns whether [`Ecmp::announce`] may have
    /// changed.
    pub fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Addresses(a) => {
                let changed = self.addresses.as_ref() != Some(&a);
                self.addresses = Some(a);
                changed
            }
            Input::Policies(p) => {
                let changed = self.policies != p;
                self.policies = p;
                changed
            }
            Input::Eligibility { address, policy } => {
                self.policies.insert(address, policy.clone()) != Some(policy)
            }
            Input::Eligible(e) => std::mem::replace(&mut self.eligible, e) != e,
            Input::IsAssigner(a) => {
                // Only IPAM uses the assigner role in this mode.
                self.assigner = a;
                false
            }
            Input::Tick
            | Input::OwnRenewal { .. }
            | Input::OwnRecord(_)
            | Input::NodeRecord { .. }
            | Input::Assignment { .. }
            | Input::Listed(_) => false,
        }
    }

    /// The addresses this node announces now.
    pub fn announce(&self) -> BTreeSet<IpAddr> {
        if !self.eligible {
            return BTreeSet::new();
        }
        let Some(all) = &self.addresses else {
            return BTreeSet::new();
        };
        all.iter()
            .filter(|a| may_announce(self.policies.get(a), &self.me))
            .copied()
            .collect()
    }

    /// Whether this node holds the assigner role (IPAM allocations).
    pub fn is_assigner(&self) -> bool {
        self.assigner
    }

    /// Whether the health gate lets this node announce.
    pub fn is_eligible(&self) -> bool {
        self.eligible
    }

    /// Addresses known (after the first read).
    pub fn known(&self) -> usize {
        self.addresses.as_ref().map_or(0, BTreeSet::len)
    }
}

/// Whether node `me` announces an address with `policy` (absent: every
/// node). The candidates are taken among the nodes the policy names plus
/// `me`: ECMP has no liveness, so every named node counts as present.
pub fn may_announce(policy: Option<&Policy>, me: &NodeId) -> bool {
    let Some(p) = policy else {
        return true;
    };
    let mut present: BTreeSet<NodeId> = p.nodes.clone().unwrap_or_default();
    if let Some(pin) = &p.zone {
        present.extend(pin.preferred.iter().cloned());
    }
    present.insert(me.clone());
    p.candidates(&present).contains(me)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ZonePin;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(names: &[&str]) -> BTreeSet<NodeId> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn only(names: &[&str]) -> Policy {
        Policy {
            nodes: Some(set(names)),
            zone: None,
        }
    }

    fn node_with(addrs: &[&str], policies: &[(&str, Policy)]) -> Ecmp {
        let mut n = Ecmp::new("n1");
        n.handle(Input::Addresses(addrs.iter().map(|a| ip(a)).collect()));
        n.handle(Input::Policies(
            policies.iter().map(|(a, p)| (ip(a), p.clone())).collect(),
        ));
        n
    }

    #[test]
    fn nothing_is_announced_before_the_first_read() {
        let mut n = Ecmp::new("n1");
        assert!(n.announce().is_empty());
        assert!(n.handle(Input::Addresses(BTreeSet::from([ip("203.0.113.10")]))));
        assert_eq!(n.announce(), BTreeSet::from([ip("203.0.113.10")]));
    }

    #[test]
    fn cluster_policy_addresses_are_announced_by_every_node() {
        let n = node_with(&["203.0.113.10", "203.0.113.11"], &[]);
        assert_eq!(n.announce().len(), 2);
    }

    #[test]
    fn local_policy_announces_only_where_a_ready_endpoint_is() {
        let n = node_with(
            &["203.0.113.10", "203.0.113.11"],
            &[
                ("203.0.113.10", only(&["n1", "n3"])),
                ("203.0.113.11", only(&["n2"])),
            ],
        );
        assert_eq!(n.announce(), BTreeSet::from([ip("203.0.113.10")]));
        // Nobody hosts an endpoint: nobody announces.
        let n = node_with(&["203.0.113.10"], &[("203.0.113.10", only(&[]))]);
        assert!(n.announce().is_empty());
    }

    #[test]
    fn a_rolling_update_keeps_the_route_while_one_ready_endpoint_remains() {
        // n1 hosts pods a and b; the update replaces them one at a time.
        // Eligibility is "hosts any ready endpoint", so the policy stays
        // {n1, ...} until the last one goes; the route never flaps.
        let mut n = node_with(&["203.0.113.10"], &[("203.0.113.10", only(&["n1", "n2"]))]);
        let a = ip("203.0.113.10");
        for step in [only(&["n1", "n2"]), only(&["n1"]), only(&["n1", "n3"])] {
            n.handle(Input::Policies(BTreeMap::from([(a, step)])));
            assert_eq!(n.announce(), BTreeSet::from([a]));
        }
        // Last endpoint on n1 gone: withdraw.
        assert!(n.handle(Input::Policies(BTreeMap::from([(a, only(&["n3"]))]))));
        assert!(n.announce().is_empty());
    }

    #[test]
    fn an_unhealthy_node_announces_nothing_and_comes_back() {
        let mut n = node_with(&["203.0.113.10"], &[]);
        assert!(n.handle(Input::Eligible(false)));
        assert!(n.announce().is_empty());
        assert!(!n.handle(Input::Eligible(false)));
        assert!(n.handle(Input::Eligible(true)));
        assert_eq!(n.announce().len(), 1);
    }

    #[test]
    fn zone_pins_prefer_the_pinned_zone_and_fall_back_only_when_allowed() {
        let pinned = |fallback| Policy {
            nodes: None,
            zone: Some(ZonePin {
                preferred: set(&["n2"]),
                fallback,
            }),
        };
        assert!(!may_announce(Some(&pinned(true)), &"n1".to_owned()));
        assert!(may_announce(Some(&pinned(true)), &"n2".to_owned()));
        // The pinned zone has no eligible node: fallback decides.
        let mut p = pinned(true);
        p.nodes = Some(set(&["n1"]));
        assert!(may_announce(Some(&p), &"n1".to_owned()));
        let mut p = pinned(false);
        p.nodes = Some(set(&["n1"]));
        assert!(!may_announce(Some(&p), &"n1".to_owned()));
    }

    #[test]
    fn lease_inputs_change_nothing_and_the_assigner_role_is_kept_for_ipam() {
        let mut n = node_with(&["203.0.113.10"], &[]);
        let before = n.announce();
        assert!(!n.handle(Input::Tick));
        assert!(!n.handle(Input::Listed(Vec::new())));
        assert!(!n.handle(Input::IsAssigner(true)));
        assert!(n.is_assigner());
        assert_eq!(n.announce(), before);
    }
}
