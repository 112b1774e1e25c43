//! The sans-IO reconcile core of SPEC R3.
//!
//! [`Reconciler::reconcile`] compares what this node should announce (the
//! desired set, driven by leadership) with what the kernel reports for the
//! VIP interface and returns what to do and what changed. It performs no IO
//! and reads no clock: the tokio shell in [`crate::task`] feeds it a fresh
//! kernel dump on every netlink event and every reconcile period, executes
//! the returned actions and forwards the reports as events.
//!
//! Rules, in the order they are applied:
//! 1. An address tagged as ours that is not wanted (with exactly that prefix
//!    length) is removed: a leftover from a crash, a lost leadership, or a
//!    changed configuration. This also runs at startup, with the link down
//!    and whatever the desired set is.
//! 2. A wanted VIP whose address is present but NOT tagged as ours is never
//!    bound, re-added or deleted: it is the node's own IP or somebody
//!    else's. It is reported once per occurrence as [`ReconcileAction::Refuse`].
//! 3. A wanted VIP that is absent, or present but `dad_failed` (IPv6), is
//!    (re-)added while the link is up. Adding to a down link is pointless for
//!    IPv6 (the kernel flushes IPv6 addresses on link down unless
//!    `keep_addr_on_down` is set, NETLAB-TIPS) and we want one uniform rule.
//! 4. A wanted VIP is *bound* when it is present, ours, neither tentative nor
//!    dad_failed, and the link is up. Every transition into bound is reported
//!    as [`ReconcileAction::Bound`], because the announcer must send a
//!    gratuitous ARP / unsolicited NA burst on every acquisition (SPEC R4):
//!    first bind, re-bind after someone removed it, re-bind after the link
//!    came back.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

/// A virtual IP as configured on the interface: address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vip {
    /// The address (IPv4 or IPv6).
    pub addr: IpAddr,
    /// Prefix length used when the address is added (32/128 for a host VIP).
    pub prefix_len: u8,
}

impl Vip {
    /// A VIP with an explicit prefix length.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Self {
        Self { addr, prefix_len }
    }

    /// A host VIP: /32 for IPv4, /128 for IPv6 (kube-vip's default).
    pub fn host(addr: IpAddr) -> Self {
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix_len }
    }
}

impl fmt::Display for Vip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// One address the kernel reports on the VIP interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelAddr {
    /// The local address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// True when vipd's tag is on it (see [`crate::netlink::VIPD_ADDR_PROTO`]).
    pub ours: bool,
    /// IPv6 duplicate address detection still running (`IFA_F_TENTATIVE`).
    pub tentative: bool,
    /// IPv6 duplicate address detection failed (`IFA_F_DADFAILED`).
    pub dad_failed: bool,
}

impl KernelAddr {
    /// The address as a [`Vip`] (address and prefix length).
    pub fn vip(&self) -> Vip {
        Vip::new(self.addr, self.prefix_len)
    }
}

/// What the kernel shows for the VIP interface at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The interface is administratively up and has carrier (`IFF_UP` and
    /// `IFF_RUNNING`). False also when the interface does not exist.
    pub link_up: bool,
    /// Every address of the interface (both families).
    pub addrs: Vec<KernelAddr>,
}

/// Why a wanted VIP is not bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The address is on the interface without vipd's tag: the node's own
    /// IP or an address another tool manages. vipd never takes it over.
    NotOurs {
        /// Prefix length of the foreign address as the kernel reports it.
        prefix_len: u8,
    },
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOurs { prefix_len } => write!(
                f,
                "address already configured (/{prefix_len}) without vipd's tag: \
                 it is the node's own IP or managed by someone else"
            ),
        }
    }
}

/// What the shell must do, or report, after one reconcile step.
///
/// The order of a returned batch is meaningful: link reports, then
/// `Unbound` (stop announcing before the address goes), `Remove`, `Add`,
/// `Bound`, `Refuse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileAction {
    /// The link went from up (or unknown) to down, or the interface vanished.
    LinkDown,
    /// The link came back up (or is seen up for the first time after being
    /// down). Every present VIP is reported `Bound` again in the same batch.
    LinkUp,
    /// Stop announcing this VIP: not wanted any more, removed by someone,
    /// link down, or DAD failed.
    Unbound(Vip),
    /// Delete this tagged address from the interface.
    Remove(Vip),
    /// Add this address to the interface, tagged as ours.
    Add(Vip),
    /// The VIP is now present and usable: announce it (GARP / NA burst).
    Bound(Vip),
    /// A wanted VIP is present but not ours; it is left untouched.
    Refuse {
        /// The wanted VIP.
        vip: Vip,
        /// Why it is refused.
        reason: RefuseReason,
    },
}

/// The R3 reconcile state machine. See the module documentation for the rules.
#[derive(Debug, Default)]
pub struct Reconciler {
    want: BTreeSet<Vip>,
    /// VIPs reported `Bound` and not yet `Unbound`.
    bound: BTreeSet<Vip>,
    /// VIPs reported `Refuse` while the condition persists (report once).
    refused: BTreeSet<Vip>,
    /// Link state of the previous observation; `None` before the first.
    link_up: Option<bool>,
}

impl Reconciler {
    /// A reconciler that wants nothing and has observed nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the desired set (what this node should announce now).
    pub fn set_desired(&mut self, want: BTreeSet<Vip>) {
        self.want = want;
    }

    /// The desired set.
    pub fn desired(&self) -> &BTreeSet<Vip> {
        &self.want
    }

    /// VIPs currently reported bound.
    pub fn bound(&self) -> &BTreeSet<Vip> {
        &self.bound
    }

    /// True when `observed` holds no address tagged as ours.
    pub fn none_of_ours(observed: &Observed) -> bool {
        !observed.addrs.iter().any(|a| a.ours)
    }

    /// True when none of `vips` is on the interface with vipd's tag.
    pub fn none_of(observed: &Observed, vips: &BTreeSet<Vip>) -> bool {
        !observed
            .addrs
            .iter()
            .any(|a| a.ours && vips.contains(&a.vip()))
    }

    /// One reconcile step against a fresh kernel observation.
    pub fn reconcile(&mut self, observed: &Observed) -> Vec<ReconcileAction> {
        let mut link_reports = Vec::new();
        let mut removes = Vec::new();
        let mut adds = Vec::new();
        let mut refuses = Vec::new();
        let link_up = observed.link_up;

        match (self.link_up, link_up) {
            (Some(true) | None, false) => link_reports.push(ReconcileAction::LinkDown),
            (Some(false), true) => link_reports.push(ReconcileAction::LinkUp),
            _ => {}
        }
        self.link_up = Some(link_up);

        // Rule 1: tagged but not wanted (exact address and prefix) -> remove.
        // A tagged wanted address with DAD failed is removed and re-added.
        for a in observed.addrs.iter().filter(|a| a.ours) {
            let v = a.vip();
            let unwanted = !self.want.contains(&v) || a.dad_failed;
            if unwanted && !removes.contains(&ReconcileAction::Remove(v)) {
                removes.push(ReconcileAction::Remove(v));
            }
        }

        let mut now_bound = BTreeSet::new();
        let mut now_refused = BTreeSet::new();
        for v in &self.want {
            let same_addr = observed.addrs.iter().filter(|a| a.addr == v.addr);
            // Rule 2: a foreign address with the VIP's address wins.
            if let Some(foreign) = same_addr.clone().find(|a| !a.ours) {
                now_refused.insert(*v);
                if !self.refused.contains(v) {
                    refuses.push(ReconcileAction::Refuse {
                        vip: *v,
                        reason: RefuseReason::NotOurs {
                            prefix_len: foreign.prefix_len,
                        },
                    });
                }
                continue;
            }
            let exact = same_addr
                .clone()
                .find(|a| a.ours && a.prefix_len == v.prefix_len);
            match exact {
                // Rule 4: usable only when DAD is over and the link is up.
                Some(a) if !a.dad_failed => {
                    if !a.tentative && link_up {
                        now_bound.insert(*v);
                    }
                }
                // Rule 3: absent or DAD failed (already queued for removal).
                _ => {
                    if link_up {
                        adds.push(ReconcileAction::Add(*v));
                    }
                }
            }
        }

        let mut out = link_reports;
        out.extend(
            self.bound
                .difference(&now_bound)
                .map(|v| ReconcileAction::Unbound(*v)),
        );
        out.extend(removes);
        out.extend(adds);
        out.extend(
            now_bound
                .difference(&self.bound)
                .map(|v| ReconcileAction::Bound(*v)),
        );
        // After LinkUp every present VIP must be announced again, even an
        // IPv4 VIP the kernel kept: neighbours may have aged us out (R4).
        // With the link down nothing is bound, so the difference above
        // already yields each of them.
        out.extend(refuses);
        self.bound = now_bound;
        self.refused = now_refused;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReconcileAction::*;

    fn v4(last: u8) -> Vip {
        Vip::host(IpAddr::from([192, 0, 2, last]))
    }

    fn v6(last: u16) -> Vip {
        Vip::host(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, last]))
    }

    fn ours(v: Vip) -> KernelAddr {
        KernelAddr {
            addr: v.addr,
            prefix_len: v.prefix_len,
            ours: true,
            tentative: false,
            dad_failed: false,
        }
    }

    fn foreign(addr: IpAddr, prefix_len: u8) -> KernelAddr {
        KernelAddr {
            addr,
            prefix_len,
            ours: false,
            tentative: false,
            dad_failed: false,
        }
    }

    fn up(addrs: Vec<KernelAddr>) -> Observed {
        Observed {
            link_up: true,
            addrs,
        }
    }

    fn down(addrs: Vec<KernelAddr>) -> Observed {
        Observed {
            link_up: false,
            addrs,
        }
    }

    fn want(vips: &[Vip]) -> BTreeSet<Vip> {
        vips.iter().copied().collect()
    }

    /// Runs `steps` (desired set, observation, expected actions) in order on
    /// one reconciler, so multi-step behaviours read as scenario tables.
    fn scenario(steps: &[(&[Vip], Observed, Vec<ReconcileAction>)]) {
        let mut r = Reconciler::new();
        for (i, (w, obs, expected)) in steps.iter().enumerate() {
            r.set_desired(want(w));
            let got = r.reconcile(obs);
            assert_eq!(&got, expected, "step {i}");
        }
    }

    #[test]
    fn wanted_vip_is_added_then_bound_once() {
        let a = v4(10);
        scenario(&[
            (&[a], up(vec![]), vec![Add(a)]),
            (&[a], up(vec![ours(a)]), vec![Bound(a)]),
            (&[a], up(vec![ours(a)]), vec![]),
        ]);
    }

    #[test]
    fn removed_vip_is_re_added_while_held() {
        let a = v4(10);
        scenario(&[
            (&[a], up(vec![ours(a)]), vec![Bound(a)]),
            // Someone ran `ip addr del`: stop announcing, add it back.
            (&[a], up(vec![]), vec![Unbound(a), Add(a)]),
            // Back: a fresh Bound so the announcer sends a new burst (R4).
            (&[a], up(vec![ours(a)]), vec![Bound(a)]),
        ]);
    }

    #[test]
    fn leftover_tagged_vip_removed_at_startup() {
        let stale = v4(10);
        let node = foreign(IpAddr::from([192, 0, 2, 1]), 24);
        scenario(&[(&[], up(vec![node, ours(stale)]), vec![Remove(stale)])]);
    }

    #[test]
    fn leftover_tagged_vip_removed_even_with_link_down() {
        let stale = v6(10);
        scenario(&[(&[], down(vec![ours(stale)]), vec![LinkDown, Remove(stale)])]);
    }

    #[test]
    fn untagged_node_address_never_removed() {
        let node = foreign(IpAddr::from([192, 0, 2, 1]), 24);
        let node6 = foreign(IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]), 64);
        let mut r = Reconciler::new();
        for w in [want(&[]), want(&[v4(10)])] {
            r.set_desired(w);
            let got = r.reconcile(&up(vec![node, node6]));
            assert!(
                !got.iter().any(|a| matches!(a, Remove(_))),
                "removed an untagged address: {got:?}"
            );
        }
    }

    #[test]
    fn wanted_vip_that_is_the_node_ip_is_refused_once_and_never_bound() {
        let a = v4(1);
        let node = foreign(a.addr, 24);
        let refuse = Refuse {
            vip: a,
            reason: RefuseReason::NotOurs { prefix_len: 24 },
        };
        scenario(&[
            (&[a], up(vec![node]), vec![refuse]),
            // Reported once per occurrence, not on every tick.
            (&[a], up(vec![node]), vec![]),
            // The foreign address goes away: now we may take the VIP.
            (&[a], up(vec![]), vec![Add(a)]),
            (&[a], up(vec![ours(a)]), vec![Bound(a)]),
            // It comes back next to ours (IPv4 allows another prefix length):
            // refuse again and stop announcing, but do not delete ours
            // either while still wanted.
            (&[a], up(vec![ours(a), node]), vec![Unbound(a), refuse]),
        ]);
    }

    #[test]
    fn unwanted_vip_is_unbound_before_removal() {
        let a = v4(10);
        let b = v6(10);
        scenario(&[
            (
                &[a, b],
                up(vec![ours(a), ours(b)]),
                vec![Bound(a), Bound(b)],
            ),
            (
                &[b],
                up(vec![ours(a), ours(b)]),
                vec![Unbound(a), Remove(a)],
            ),
            (&[], up(vec![ours(b)]), vec![Unbound(b), Remove(b)]),
            (&[], up(vec![]), vec![]),
        ]);
    }

    #[test]
    fn tagged_vip_with_other_prefix_is_replaced() {
        let wanted = Vip::new(IpAddr::from([192, 0, 2, 10]), 24);
        let old = Vip::host(wanted.addr);
        scenario(&[(
            &[wanted],
            up(vec![ours(old)]),
            vec![Remove(old), Add(wanted)],
        )]);
    }

    #[test]
    fn tentative_vip_is_not_bound_until_dad_completes() {
        let a = v6(10);
        let tentative = KernelAddr {
            tentative: true,
            ..ours(a)
        };
        scenario(&[
            (&[a], up(vec![tentative]), vec![]),
            (&[a], up(vec![ours(a)]), vec![Bound(a)]),
        ]);
    }

    #[test]
    fn dad_failed_vip_is_removed_and_re_added() {
        let a = v6(10);
        let failed = KernelAddr {
            dad_failed: true,
            ..ours(a)
        };
        scenario(&[
            (&[a], up(vec![ours(a)]), vec![Bound(a)]),
            (&[a], up(vec![failed]), vec![Unbound(a), Remove(a), Add(a)]),
        ]);
    }

    #[test]
    fn link_flap_flushes_ipv6_and_rebinds_everything_on_link_up() {
        let a = v4(10);
        let b = v6(10);
        scenario(&[
            (
                &[a, b],
                up(vec![ours(a), ours(b)]),
                vec![Bound(a), Bound(b)],
            ),
            // Link down: the kernel keeps IPv4, flushes IPv6. Nothing is
            // announced and nothing added to a down link.
            (
                &[a, b],
                down(vec![ours(a)]),
                vec![LinkDown, Unbound(a), Unbound(b)],
            ),
            (&[a, b], down(vec![ours(a)]), vec![]),
            // Link up: the kept IPv4 VIP is announced again at once, the
            // flushed IPv6 VIP is re-added and bound on the next dump.
            (&[a, b], up(vec![ours(a)]), vec![LinkUp, Add(b), Bound(a)]),
            (&[a, b], up(vec![ours(a), ours(b)]), vec![Bound(b)]),
        ]);
    }

    #[test]
    fn link_down_at_startup_is_reported_and_nothing_added() {
        let a = v4(10);
        scenario(&[
            (&[a], down(vec![]), vec![LinkDown]),
            (&[a], up(vec![]), vec![LinkUp, Add(a)]),
        ]);
    }

    #[test]
    fn tagged_address_of_other_vip_is_not_mistaken_for_wanted_one() {
        let a = v4(10);
        let b = v4(11);
        scenario(&[(&[a], up(vec![ours(b)]), vec![Remove(b), Add(a)])]);
    }

    #[test]
    fn none_of_ours_ignores_foreign_addresses() {
        let node = foreign(IpAddr::from([192, 0, 2, 1]), 24);
        assert!(Reconciler::none_of_ours(&up(vec![node])));
        assert!(!Reconciler::none_of_ours(&up(vec![node, ours(v4(9))])));
    }

    #[test]
    fn none_of_looks_only_at_the_given_addresses_and_only_at_ours() {
        let set = BTreeSet::from([v4(9)]);
        let node = foreign(IpAddr::from([192, 0, 2, 1]), 24);
        assert!(Reconciler::none_of(&up(vec![node, ours(v4(8))]), &set));
        assert!(!Reconciler::none_of(&up(vec![ours(v4(9))]), &set));
    }
}
