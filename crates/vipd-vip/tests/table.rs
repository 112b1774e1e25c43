//! Namespace tests of routing-table mode's sink ([`RouteTable`]): real
//! netlink in a namespace this test creates (and deletes on drop), read
//! back with `ip -j route show table T proto P`. Root only.

use std::fmt::Display;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use netlab::NetNs;
use vipd_vip::{RouteMonitor, RouteTable, TableError, TableSpec};

const SPEC: TableSpec = TableSpec {
    table: 198,
    protocol: 248,
    route_type: 1,
};

/// A test step's result, or the failure report `what: error`.
trait Must<T> {
    fn must(self, what: impl Display) -> T;
}

impl<T, E: Display> Must<T> for Result<T, E> {
    fn must(self, what: impl Display) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test address {s}: {e}"))
}

/// A namespace with `lo` and a veth pair `vip0`/`vip1` up (no dummy
/// module on these kernels).
fn lab() -> NetNs {
    let ns = NetNs::new(&netlab::unique_prefix("rt")).must("netns");
    for args in [
        &["link", "set", "lo", "up"][..],
        &[
            "link", "add", "vip0", "type", "veth", "peer", "name", "vip1",
        ],
        &["link", "set", "vip1", "up"],
        &["link", "set", "vip0", "up"],
    ] {
        ns.ip(args).must(format_args!("ip {args:?}"));
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
            .must("runtime");
        rt.block_on(f(name));
    })
    .must("enter");
}

/// `ip -n NS args...`.
fn ip_n(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["-n", ns];
    full.extend_from_slice(args);
    netlab::run_ok("ip", &full).must(format_args!("ip {full:?}"))
}

/// `ip -n NS route add DST dev lo table T proto P` (`-6` for an IPv6
/// destination).
fn add_route(ns: &str, dst: &str, table: &str, proto: &str) {
    let route = [
        "route", "add", dst, "dev", "lo", "table", table, "proto", proto,
    ];
    if dst.contains(':') {
        ip_n(ns, &[&["-6"][..], &route].concat());
    } else {
        ip_n(ns, &route);
    }
}

/// `ip -j route show table T proto P` for both families, concatenated
/// (a family without that table, "FIB table does not exist", shows
/// nothing).
fn shown(ns: &str, table: &str, proto: &str) -> String {
    let mut out = String::new();
    for family in ["-4", "-6"] {
        let args = [
            "-n", ns, "-j", family, "route", "show", "table", table, "proto", proto,
        ];
        match netlab::run_ok("ip", &args) {
            Ok(s) => out.push_str(&s),
            Err(e) if e.to_string().contains("does not exist") => {}
            Err(e) => panic!("ip {args:?}: {e}"),
        }
    }
    out
}

fn has_dst(json: &str, dst: &str) -> bool {
    json.contains(&format!("\"dst\":\"{dst}\""))
}

/// `dst` is in table T with protocol P; else fails with `what` and what
/// is there.
fn assert_shown(ns: &str, table: &str, proto: &str, dst: &str, what: &str) {
    let json = shown(ns, table, proto);
    assert!(has_dst(&json, dst), "{what}: {json}");
}

fn ifindex(ns: &str, name: &str) -> u32 {
    let out = ip_n(ns, &["-o", "link", "show", name]);
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ifindex in {out:?}"))
}

fn open(spec: TableSpec) -> RouteTable {
    RouteTable::new(spec).must("open")
}

/// Adds `a` twice (EEXIST of our own route is success).
async fn add_twice(t: &RouteTable, a: &str, dev: u32) {
    t.add(ip(a), dev).await.must(format_args!("add {a}"));
    t.add(ip(a), dev).await.must(format_args!("re-add {a}"));
}

/// Removes `a` twice (ESRCH is success).
async fn remove_twice(t: &RouteTable, a: &str) {
    t.remove(ip(a)).await.must(format_args!("remove {a}"));
    t.remove(ip(a)).await.must(format_args!("re-remove {a}"));
}

/// `m` wakes within `within`; else fails with `what`.
async fn wakes(m: &mut RouteMonitor, within: Duration, what: &str) {
    tokio::time::timeout(within, m.changed())
        .await
        .unwrap_or_else(|_| panic!("{what}"));
}

#[test]
fn add_and_remove_are_idempotent_for_ipv4_and_ipv6() {
    netlab::require_root!();
    let ns = lab();
    let dev = ifindex(ns.name(), "vip0");
    run_in(&ns, move |name| async move {
        let t = open(SPEC);
        for a in ["192.0.2.10", "2001:db8::10"] {
            add_twice(&t, a, dev).await;
        }
        let json = shown(&name, "198", "248");
        assert!(has_dst(&json, "192.0.2.10"), "IPv4 route missing: {json}");
        assert!(has_dst(&json, "2001:db8::10"), "IPv6 route missing: {json}");
        assert!(
            json.contains("\"dev\":\"vip0\""),
            "route not on vip0: {json}"
        );
        // Nothing leaked into the main table.
        let main = shown(&name, "main", "248");
        assert!(!has_dst(&main, "192.0.2.10"), "route in main: {main}");

        let listed = t.list().await.must("list");
        let dsts: Vec<IpAddr> = listed.iter().map(|r| r.dst).collect();
        assert_eq!(dsts, vec![ip("192.0.2.10"), ip("2001:db8::10")]);
        assert!(listed
            .iter()
            .all(|r| r.is_host() && r.ifindex == Some(dev) && r.route_type == 1));

        for a in ["192.0.2.10", "2001:db8::10"] {
            remove_twice(&t, a).await;
        }
        let json = shown(&name, "198", "248");
        assert!(
            !has_dst(&json, "192.0.2.10") && !has_dst(&json, "2001:db8::10"),
            "routes left: {json}"
        );
        assert!(t.list().await.must("list").is_empty());
    });
}

#[test]
fn clean_removes_only_our_protocol_in_our_table() {
    netlab::require_root!();
    let ns = lab();
    let n = ns.name().to_string();
    // Leftovers of ours (a host route and a prefix), a neighbour's route in
    // the same table, and our protocol in another table.
    for (dst, table, proto) in [
        ("203.0.113.5", "198", "248"),
        ("203.0.113.64/26", "198", "248"),
        ("2001:db8::5", "198", "248"),
        ("198.51.100.0/24", "198", "249"),
        ("2001:db8:1::/64", "198", "static"),
        ("198.51.100.7", "199", "248"),
    ] {
        add_route(&n, dst, table, proto);
    }
    run_in(&ns, move |name| async move {
        let t = open(SPEC);
        let removed = t.clean().await.must("clean");
        let dsts: Vec<String> = removed
            .iter()
            .map(|r| format!("{}/{}", r.dst, r.prefix_len))
            .collect();
        assert_eq!(
            dsts,
            ["203.0.113.5/32", "203.0.113.64/26", "2001:db8::5/128"]
        );
        assert_eq!(
            shown(&name, "198", "248").replace("[]", "").trim(),
            "",
            "ours left"
        );
        for (table, proto, dst, what) in [
            ("198", "249", "198.51.100.0/24", "neighbour's route gone"),
            ("198", "static", "2001:db8:1::/64", "static route gone"),
            ("199", "248", "198.51.100.7", "other table touched"),
        ] {
            assert_shown(&name, table, proto, dst, what);
        }
        // Cleaning an empty table is fine.
        assert!(t.clean().await.must("clean").is_empty());
    });
}

#[test]
fn another_protocols_route_is_occupied_and_never_removed() {
    netlab::require_root!();
    let ns = lab();
    let n = ns.name().to_string();
    add_route(&n, "192.0.2.20", "198", "static");
    let dev = ifindex(&n, "vip0");
    run_in(&ns, move |name| async move {
        let t = open(SPEC);
        match t.add(ip("192.0.2.20"), dev).await {
            Err(TableError::Occupied {
                protocol: 4,
                table: 198,
                ..
            }) => {}
            other => panic!("expected Occupied by static (4), got {other:?}"),
        }
        t.remove(ip("192.0.2.20")).await.must("remove");
        assert_shown(
            &name,
            "198",
            "static",
            "192.0.2.20",
            "foreign route removed",
        );
    });
}

#[test]
fn tables_above_255_and_other_route_types_work() {
    netlab::require_root!();
    let ns = lab();
    let dev = ifindex(ns.name(), "vip0");
    run_in(&ns, move |name| async move {
        let t = open(TableSpec {
            table: 1000,
            ..SPEC
        });
        t.add(ip("198.51.100.10"), dev).await.must("add");
        assert!(has_dst(&shown(&name, "1000", "248"), "198.51.100.10"));
        assert_eq!(t.list().await.map(|l| l.len()).unwrap_or(0), 1);
        t.remove(ip("198.51.100.10")).await.must("remove");
        assert!(!has_dst(&shown(&name, "1000", "248"), "198.51.100.10"));

        // A blackhole route takes no device; kube-vip's always-a-device
        // shape would be refused here.
        let t = open(TableSpec {
            route_type: 6,
            ..SPEC
        });
        t.add(ip("203.0.113.9"), dev).await.must("add blackhole");
        let json = shown(&name, "198", "248");
        assert!(
            json.contains("blackhole") && has_dst(&json, "203.0.113.9"),
            "{json}"
        );
        t.remove(ip("203.0.113.9")).await.must("remove");
    });
}

#[test]
fn invalid_specs_are_refused_before_any_socket() {
    assert!(matches!(
        RouteTable::new(TableSpec { table: 0, ..SPEC }),
        Err(TableError::InvalidSpec(_))
    ));
    assert!(matches!(
        RouteTable::new(TableSpec {
            protocol: 0,
            ..SPEC
        }),
        Err(TableError::InvalidSpec(_))
    ));
}

#[test]
fn the_monitor_wakes_on_route_changes_in_its_table_only() {
    netlab::require_root!();
    let ns = lab();
    run_in(&ns, move |name| async move {
        let wait = Duration::from_secs(2);
        let mut m = RouteMonitor::new(198);
        // The first wake is the subscription itself.
        wakes(&mut m, wait, "no first wake").await;
        // Another table: no wake.
        ip_n(
            &name,
            &["route", "add", "198.51.100.1", "dev", "lo", "table", "199"],
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(200), m.changed())
                .await
                .is_err(),
            "woke for table 199"
        );
        add_route(&name, "198.51.100.2", "198", "9");
        wakes(&mut m, wait, "no wake for an add in table 198").await;
        ip_n(&name, &["route", "del", "198.51.100.2", "table", "198"]);
        wakes(&mut m, wait, "no wake for a delete in table 198").await;
    });
}
