//! Namespace integration tests: real netlink against a veth pair inside a
//! network namespace this test creates (and deletes on drop). Root only.
//!
//! A veth pair rather than a dummy: dummy devices are `NOARP`, on which the
//! kernel skips IPv6 DAD altogether, so "added with NODAD, not tentative"
//! would pass even if NODAD were missing.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use netlab::NetNs;
use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use vipd_vip::{
    preflight, KernelAddr, LinkInfo, Netlink, NetlinkError, PreflightError, RefuseReason, Vip,
    VipEvent, VipManager, VipManagerConfig,
};

const IF: &str = "vip0";

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
}

fn vip4() -> Vip {
    Vip::host(ip("192.0.2.10"))
}

fn vip6() -> Vip {
    Vip::host(ip("2001:db8::10"))
}

/// A namespace with a veth pair `vip0`/`vip1`, both up.
fn lab() -> NetNs {
    let ns = NetNs::new(&netlab::unique_prefix("vip")).unwrap_or_else(|e| panic!("netns: {e}"));
    for args in [
        &["link", "add", IF, "type", "veth", "peer", "name", "vip1"][..],
        &["link", "set", "vip1", "up"],
        &["link", "set", IF, "up"],
    ] {
        ns.ip(args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    }
    ns
}

/// Runs `f` on a current-thread runtime inside the namespace.
fn run_in<F, Fut>(ns: &NetNs, f: F)
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let name = ns.name().to_string();
    ns.enter(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        rt.block_on(f(name));
    })
    .unwrap_or_else(|e| panic!("enter: {e}"));
}

/// `ip -n NS args...` (works from any namespace).
fn ip_n(ns: &str, args: &[&str]) {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    netlab::run_ok("ip", &full).unwrap_or_else(|e| panic!("ip {full:?}: {e}"));
}

async fn link(nl: &Netlink) -> LinkInfo {
    nl.link_by_name(IF)
        .await
        .unwrap_or_else(|e| panic!("link: {e}"))
}

async fn addrs(nl: &Netlink) -> Vec<KernelAddr> {
    let l = link(nl).await;
    nl.addresses(l.ifindex)
        .await
        .unwrap_or_else(|e| panic!("dump: {e}"))
}

async fn find(nl: &Netlink, addr: IpAddr) -> Option<KernelAddr> {
    addrs(nl).await.into_iter().find(|a| a.addr == addr)
}

/// Waits for the first event matching `pred`, failing after `within`.
async fn expect_event(
    rx: &mut mpsc::UnboundedReceiver<VipEvent>,
    within: Duration,
    what: &str,
    pred: impl Fn(&VipEvent) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event channel closed while waiting for {what}"),
            Err(_) => panic!("no {what} within {within:?}"),
        }
    }
}

fn is_bound(ev: &VipEvent, vip: Vip) -> bool {
    matches!(ev, VipEvent::Bound { vip: v, .. } if *v == vip)
}

struct Running {
    mgr: VipManager,
    events: mpsc::UnboundedReceiver<VipEvent>,
    desired: watch::Sender<BTreeSet<Vip>>,
    cancel: CancellationToken,
}

/// A manager with a long period, so anything faster is event-driven.
fn start(want: &[Vip]) -> Running {
    let (desired, desired_rx) = watch::channel(want.iter().copied().collect());
    let (tx, events) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let mut cfg = VipManagerConfig::new(IF);
    cfg.reconcile_period = Duration::from_secs(30);
    let mgr = VipManager::spawn(cfg, desired_rx, tx, cancel.clone());
    Running {
        mgr,
        events,
        desired,
        cancel,
    }
}

#[test]
fn ipv4_and_ipv6_vips_are_added_tagged_and_deleted() {
    netlab::require_root!();
    let ns = lab();
    run_in(&ns, |_| async move {
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        let l = link(&nl).await;
        assert!(l.usable() && l.mac.is_some(), "{l:?}");
        for v in [vip4(), vip6()] {
            nl.add_vip(l.ifindex, v)
                .await
                .unwrap_or_else(|e| panic!("add {v}: {e}"));
            // Existing address: success, no duplicate.
            nl.add_vip(l.ifindex, v)
                .await
                .unwrap_or_else(|e| panic!("re-add {v}: {e}"));
            // A fresh connection re-dumps: the tag comes from the kernel.
            let fresh = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
            let k = find(&fresh, v.addr)
                .await
                .unwrap_or_else(|| panic!("{v} missing"));
            assert!(k.ours, "{v} not recognised as ours: {k:?}");
            assert_eq!(k.prefix_len, v.prefix_len);
            assert!(
                !k.tentative && !k.dad_failed,
                "{v} not usable at once: {k:?}"
            );
        }
        for v in [vip4(), vip6()] {
            nl.del_vip(l.ifindex, v)
                .await
                .unwrap_or_else(|e| panic!("del {v}: {e}"));
            assert!(find(&nl, v.addr).await.is_none(), "{v} still present");
            // Already gone: success.
            nl.del_vip(l.ifindex, v)
                .await
                .unwrap_or_else(|e| panic!("re-del {v}: {e}"));
        }
    });
}

#[test]
fn untagged_address_is_never_deleted() {
    netlab::require_root!();
    let ns = lab();
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", IF])
        .unwrap_or_else(|e| panic!("{e}"));
    ns.ip(&["addr", "add", "2001:db8::1/64", "dev", IF])
        .unwrap_or_else(|e| panic!("{e}"));
    run_in(&ns, |_| async move {
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        let l = link(&nl).await;
        for v in [
            Vip::new(ip("192.0.2.1"), 24),
            Vip::new(ip("2001:db8::1"), 64),
        ] {
            let k = find(&nl, v.addr)
                .await
                .unwrap_or_else(|| panic!("{v} missing"));
            assert!(!k.ours, "hand-added {v} taken for ours");
            match nl.del_vip(l.ifindex, v).await {
                Err(NetlinkError::NotOurs { vip, .. }) => assert_eq!(vip, v),
                other => panic!("deleting untagged {v}: {other:?}"),
            }
            assert!(find(&nl, v.addr).await.is_some(), "{v} was deleted");
        }
        // Control for the NODAD check above: without NODAD the kernel
        // reports the same kind of address tentative on this link.
        let k = find(&nl, ip("2001:db8::1"))
            .await
            .unwrap_or_else(|| panic!("missing"));
        assert!(
            k.tentative,
            "hand-added IPv6 address should be in DAD: {k:?}"
        );
    });
}

#[test]
fn manager_re_adds_vip_removed_by_hand_and_binds_again() {
    netlab::require_root!();
    let ns = lab();
    run_in(&ns, |name| async move {
        let mut r = start(&[vip4(), vip6()]);
        for v in [vip4(), vip6()] {
            expect_event(&mut r.events, Duration::from_secs(5), "first Bound", |e| {
                is_bound(e, v)
            })
            .await;
        }
        assert_eq!(
            *r.mgr.bound().borrow(),
            [vip4(), vip6()].into_iter().collect()
        );
        for v in [vip4(), vip6()] {
            let t0 = Instant::now();
            ip_n(&name, &["addr", "del", &v.to_string(), "dev", IF]);
            expect_event(
                &mut r.events,
                Duration::from_secs(2),
                "Unbound",
                |e| matches!(e, VipEvent::Unbound { vip } if *vip == v),
            )
            .await;
            expect_event(&mut r.events, Duration::from_secs(2), "Bound again", |e| {
                is_bound(e, v)
            })
            .await;
            // Event-driven: far below the 30 s reconcile period.
            assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
            let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
            let k = find(&nl, v.addr)
                .await
                .unwrap_or_else(|| panic!("{v} not re-added"));
            assert!(k.ours);
        }
        r.cancel.cancel();
        r.mgr.join().await.unwrap_or_else(|e| panic!("task: {e}"));
        drop(r.desired);
    });
}

#[test]
fn leftover_tagged_vip_removed_at_startup() {
    netlab::require_root!();
    let ns = lab();
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", IF])
        .unwrap_or_else(|e| panic!("{e}"));
    run_in(&ns, |_| async move {
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        let l = link(&nl).await;
        let stale4 = Vip::host(ip("192.0.2.20"));
        let stale6 = Vip::host(ip("2001:db8::20"));
        for v in [stale4, stale6] {
            nl.add_vip(l.ifindex, v)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // Not the leader: wants nothing.
        let r = start(&[]);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = addrs(&nl).await;
            if !now.iter().any(|a| a.ours) {
                break;
            }
            assert!(Instant::now() < deadline, "leftovers not removed: {now:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            find(&nl, ip("192.0.2.1")).await.is_some(),
            "node address removed"
        );
        drop(r);
    });
}

#[test]
fn preflight_rejects_node_address_as_vip() {
    netlab::require_root!();
    let ns = lab();
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "vip1"])
        .unwrap_or_else(|e| panic!("{e}"));
    run_in(&ns, |_| async move {
        let node = Vip::host(ip("192.0.2.1"));
        match preflight(IF, &[vip4(), node]).await {
            Err(e @ PreflightError::NodeAddress { .. }) => {
                assert!(
                    e.to_string().contains("192.0.2.1"),
                    "message must name it: {e}"
                );
            }
            other => panic!("node address accepted as VIP: {other:?}"),
        }
        match preflight("nosuch0", &[vip4()]).await {
            Err(PreflightError::NoSuchInterface(n)) => assert_eq!(n, "nosuch0"),
            other => panic!("missing interface accepted: {other:?}"),
        }
        // A leftover of ours is fine: the manager adopts or removes it.
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        let l = link(&nl).await;
        nl.add_vip(l.ifindex, vip6())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let got = preflight(IF, &[vip4(), vip6()])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.ifindex, l.ifindex);
    });
}

#[test]
fn wanted_node_address_is_refused_and_left_alone() {
    netlab::require_root!();
    let ns = lab();
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", IF])
        .unwrap_or_else(|e| panic!("{e}"));
    run_in(&ns, |_| async move {
        let node = Vip::host(ip("192.0.2.1"));
        let mut r = start(&[node, vip4()]);
        expect_event(&mut r.events, Duration::from_secs(5), "Refused", |e| {
            matches!(e, VipEvent::Refused { vip, reason: RefuseReason::NotOurs { prefix_len: 24 } } if *vip == node)
        })
        .await;
        expect_event(
            &mut r.events,
            Duration::from_secs(5),
            "Bound of the other VIP",
            |e| is_bound(e, vip4()),
        )
        .await;
        assert!(!r.mgr.bound().borrow().contains(&node));
        // Losing leadership must not delete the node's address either.
        r.desired.send_replace(BTreeSet::new());
        expect_event(
            &mut r.events,
            Duration::from_secs(5),
            "Unbound",
            |e| matches!(e, VipEvent::Unbound { vip } if *vip == vip4()),
        )
        .await;
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        let k = find(&nl, node.addr)
            .await
            .unwrap_or_else(|| panic!("node address deleted"));
        assert!(!k.ours && k.prefix_len == 24);
    });
}

#[test]
fn link_flap_re_adds_flushed_ipv6_vip_and_rebinds() {
    netlab::require_root!();
    let ns = lab();
    run_in(&ns, |name| async move {
        let mut r = start(&[vip4(), vip6()]);
        for v in [vip4(), vip6()] {
            expect_event(&mut r.events, Duration::from_secs(5), "first Bound", |e| {
                is_bound(e, v)
            })
            .await;
        }
        ip_n(&name, &["link", "set", IF, "down"]);
        expect_event(&mut r.events, Duration::from_secs(2), "LinkDown", |e| {
            matches!(e, VipEvent::LinkDown)
        })
        .await;
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        // The kernel flushed the IPv6 VIP (keep_addr_on_down=0).
        let now = addrs(&nl).await;
        assert!(
            !now.iter().any(|a| a.addr == vip6().addr),
            "IPv6 VIP survived link down: {now:?} {:?}",
            link(&nl).await
        );
        assert!(r.mgr.bound().borrow().is_empty());
        ip_n(&name, &["link", "set", IF, "up"]);
        expect_event(&mut r.events, Duration::from_secs(2), "LinkUp", |e| {
            matches!(e, VipEvent::LinkUp { .. })
        })
        .await;
        let mut pending: BTreeSet<Vip> = [vip4(), vip6()].into_iter().collect();
        timeout(Duration::from_secs(3), async {
            while !pending.is_empty() {
                if let Some(VipEvent::Bound { vip, .. }) = r.events.recv().await {
                    pending.remove(&vip);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not re-bound after link up"));
        let k = find(&nl, vip6().addr)
            .await
            .unwrap_or_else(|| panic!("IPv6 VIP not re-added"));
        assert!(k.ours && !k.tentative);
    });
}

#[test]
fn remove_all_now_returns_only_after_vips_are_gone() {
    netlab::require_root!();
    let ns = lab();
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", IF])
        .unwrap_or_else(|e| panic!("{e}"));
    run_in(&ns, |_| async move {
        let mut r = start(&[vip4(), vip6()]);
        for v in [vip4(), vip6()] {
            expect_event(&mut r.events, Duration::from_secs(5), "Bound", |e| {
                is_bound(e, v)
            })
            .await;
        }
        timeout(Duration::from_secs(3), r.mgr.remove_all_now())
            .await
            .unwrap_or_else(|_| panic!("drain not confirmed"))
            .unwrap_or_else(|e| panic!("{e}"));
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        let now = addrs(&nl).await;
        assert!(
            !now.iter().any(|a| a.ours),
            "VIPs left after drain: {now:?}"
        );
        assert!(
            now.iter().any(|a| a.addr == ip("192.0.2.1")),
            "node address removed"
        );
        assert!(r.mgr.bound().borrow().is_empty());
        // Draining is sticky: a later desired change does not re-add.
        r.desired.send_replace([vip4()].into_iter().collect());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            find(&nl, vip4().addr).await.is_none(),
            "VIP re-added after drain"
        );
    });
}

#[test]
fn remove_now_confirms_the_removal_and_a_later_desired_change_binds_again() {
    // Quorum mode fences through remove_now on every lost hold and must be
    // able to hold again afterwards (found in the lab: remove_all_now was
    // used, and a node that had fenced once never bound the VIP again).
    netlab::require_root!();
    let ns = lab();
    ns.ip(&["addr", "add", "192.0.2.1/24", "dev", IF])
        .unwrap_or_else(|e| panic!("{e}"));
    run_in(&ns, |_| async move {
        let mut r = start(&[vip4(), vip6()]);
        for v in [vip4(), vip6()] {
            expect_event(&mut r.events, Duration::from_secs(5), "Bound", |e| {
                is_bound(e, v)
            })
            .await;
        }
        r.desired.send_replace([vip6()].into_iter().collect());
        timeout(
            Duration::from_secs(3),
            r.mgr.remove_now([vip4()].into_iter().collect()),
        )
        .await
        .unwrap_or_else(|_| panic!("removal not confirmed"))
        .unwrap_or_else(|e| panic!("{e}"));
        let nl = Netlink::new().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            find(&nl, vip4().addr).await.is_none(),
            "confirmed, but the VIP is still there"
        );
        assert!(
            find(&nl, vip6().addr).await.is_some(),
            "an address not named was removed"
        );
        r.desired
            .send_replace([vip4(), vip6()].into_iter().collect());
        expect_event(&mut r.events, Duration::from_secs(5), "Bound again", |e| {
            is_bound(e, vip4())
        })
        .await;
        assert!(find(&nl, vip4().addr).await.is_some_and(|k| k.ours));
    });
}

#[test]
fn manager_waits_for_missing_interface_and_binds_when_it_appears() {
    netlab::require_root!();
    let ns = NetNs::new(&netlab::unique_prefix("vipm")).unwrap_or_else(|e| panic!("{e}"));
    run_in(&ns, |name| async move {
        let mut r = start(&[vip4()]);
        expect_event(
            &mut r.events,
            Duration::from_secs(2),
            "missing-interface error",
            |e| {
                matches!(
                    e,
                    VipEvent::Error {
                        error: NetlinkError::NoSuchInterface(_),
                        ..
                    }
                )
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        ip_n(
            &name,
            &["link", "add", IF, "type", "veth", "peer", "name", "vip1"],
        );
        ip_n(&name, &["link", "set", "vip1", "up"]);
        ip_n(&name, &["link", "set", IF, "up"]);
        expect_event(&mut r.events, Duration::from_secs(5), "Bound", |e| {
            is_bound(e, vip4())
        })
        .await;
    });
}

#[test]
fn monitor_reports_resync_after_socket_overrun() {
    netlab::require_root!();
    let ns = lab();
    let batch = std::env::temp_dir().join(format!("{}.batch", ns.name()));
    let lines: String = (1..=3000u32)
        .map(|i| format!("addr add 2001:db8::1:{i:x}/128 dev {IF} nodad\n"))
        .collect();
    std::fs::write(&batch, lines).unwrap_or_else(|e| panic!("{e}"));
    // Removed on drop, also when the test panics.
    struct TempFile(std::path::PathBuf);
    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _guard = TempFile(batch.clone());
    let path = batch;
    run_in(&ns, move |name| async move {
        let mut m = vipd_vip::Monitor::new();
        assert_eq!(
            m.next().await,
            vipd_vip::MonitorEvent::Resync,
            "first event after subscribing"
        );
        // Block the only runtime thread while the kernel sends 3000
        // notifications: nobody reads the socket, its buffer overflows.
        let path = path.to_string_lossy().into_owned();
        netlab::run_ok("ip", &["-n", &name, "-batch", &path]).unwrap_or_else(|e| panic!("{e}"));
        let mut seen = 0usize;
        timeout(Duration::from_secs(10), async {
            loop {
                match m.next().await {
                    vipd_vip::MonitorEvent::Resync => break,
                    _ => seen += 1,
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no Resync after overrun ({seen} events read)"));
        assert!(
            seen < 3000,
            "all {seen} events arrived: no overrun happened"
        );
        // The subscription keeps working after the overrun.
        ip_n(&name, &["addr", "add", "192.0.2.77/32", "dev", IF]);
        timeout(Duration::from_secs(5), async {
            loop {
                let ev = m.next().await;
                if let vipd_vip::MonitorEvent::AddrAdded { addr, .. } = ev {
                    if addr.addr == ip("192.0.2.77") {
                        break;
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("monitor dead after overrun"));
    });
}
