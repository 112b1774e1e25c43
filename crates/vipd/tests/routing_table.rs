//! Routing-table mode end to end (issue 14 item 5): real `vipd run`
//! processes with kube-vip's `vip_routingtable` environment, each in a
//! namespace of its own, writing the control-plane VIP's host route into
//! table 198 with protocol 248 (kube-vip's defaults) for a host routing
//! daemon. Read back with `ip -j route show table 198 proto 248`.
//!
//! Without `vip_leaderelection` every healthy node writes the route
//! (kube-vip's `StartVipService`), which needs no API server; the lease
//! path is the elector's, shared with ARP and BGP mode and tested there.
//!
//! Times are printed (`cargo test -p vipd --test routing_table --
//! --nocapture --test-threads 1`); assertions hold only generous liveness
//! bounds.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report
#![allow(clippy::disallowed_types)] // wall-clock timing of real processes

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netlab::NetNs;

const VIP: &str = "203.0.113.10";
const VIP6: &str = "2001:db8::10";
const BOUND: Duration = Duration::from_secs(20);
/// No health checks: no API server here, so the default /livez gate would
/// keep the node ineligible.
const NO_CHECKS: (&str, &str) = ("VIPD_HEALTH_CHECKS", "none");

/// Polls `probe` every `every` until it gives `Ok`, failing with
/// `fail(last error)` once [`BOUND`] has passed: the value and the time
/// until it came.
fn poll<T, E>(
    every: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
    fail: impl Fn(E) -> String,
) -> (T, Duration) {
    let t = Instant::now();
    loop {
        match probe() {
            Ok(v) => return (v, t.elapsed()),
            Err(e) => assert!(t.elapsed() < BOUND, "{}", fail(e)),
        }
        std::thread::sleep(every);
    }
}

/// `vipd run args...` in `ns` as a kube-vip user configures routing-table
/// mode for `vip` on node `node`, stdout and stderr into `log`.
fn vipd_run(ns: &NetNs, args: &[&str], node: &str, vip: &str, log: &Path) -> Command {
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_vipd"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("cp_enable", "true")
        .env("address", vip)
        .env("vip_interface", "lo")
        .env("vip_nodename", node)
        .env("vip_routingtable", "true")
        .env("prometheus_server", "127.0.0.1:2112")
        .env("vip_loglevel", "debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    cmd
}

/// `kill -TERM` to `child`: the moment it was sent.
fn sigterm(child: &Child) -> Instant {
    let pid = child.id().to_string();
    let t = Instant::now();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    t
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// One node: a namespace with `lo` and a veth `eth0` (192.0.2.11) up, and
/// its `vipd run`.
struct Node {
    ns: NetNs,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    fn new(tag: &str) -> Node {
        let ns = NetNs::new(&netlab::unique_prefix(tag)).unwrap();
        for args in [
            &["link", "set", "lo", "up"][..],
            &[
                "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
            ],
            &["link", "set", "eth1", "up"],
            &["link", "set", "eth0", "up"],
            &["addr", "add", "192.0.2.11/24", "dev", "eth0"],
        ] {
            ns.ip(args).unwrap();
        }
        let log = std::env::temp_dir().join(format!("{}.log", netlab::unique_prefix(tag)));
        Node {
            ns,
            child: None,
            log,
        }
    }

    /// `vipd run` as a kube-vip user configures routing-table mode, plus
    /// `extra` environment.
    fn start(&mut self, vip: &str, extra: &[(&str, &str)]) -> Instant {
        let mut cmd = vipd_run(&self.ns, &["run"], "n1", vip, &self.log);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let t = Instant::now();
        self.child = Some(cmd.spawn().unwrap());
        t
    }

    /// [`Node::start`] without health checks.
    fn start_unchecked(&mut self, vip: &str) -> Instant {
        self.start(vip, &[NO_CHECKS])
    }

    /// [`Node::start`] with a health check of `target` every 0.2 s (0.2 s
    /// timeout), plus `more` environment.
    fn start_checked(&mut self, vip: &str, target: &str, more: &[(&str, &str)]) -> Instant {
        let mut env = vec![
            ("VIPD_HEALTH_CHECKS", target),
            ("VIPD_HEALTH_CHECK_PERIOD", "0.2"),
            ("VIPD_HEALTH_CHECK_TIMEOUT", "0.2"),
        ];
        env.extend_from_slice(more);
        self.start(vip, &env)
    }

    fn log(&self) -> String {
        read_log(&self.log)
    }

    fn ip(&self, args: &[&str]) -> String {
        self.ns.ip(args).unwrap()
    }

    /// `ip route add DST dev lo table T proto P`.
    fn add_route(&self, dst: &str, table: &str, proto: &str) {
        self.ip(&[
            "route", "add", dst, "dev", "lo", "table", table, "proto", proto,
        ]);
    }

    /// `ip route del DST table T proto P`.
    fn del_route(&self, dst: &str, table: &str, proto: &str) {
        self.ip(&["route", "del", dst, "table", table, "proto", proto]);
    }

    fn routes(&self, table: &str, proto: &str) -> String {
        routes(&self.ns, table, proto)
    }

    fn has_route(&self, dst: &str) -> bool {
        has_route(&self.ns, dst)
    }

    fn has_addr(&self, addr: &str) -> bool {
        has_addr(&self.ns, addr)
    }

    /// Polls `cond` every few milliseconds; the time until it held.
    fn wait(&self, what: &str, cond: impl Fn(&Node) -> bool) -> Duration {
        let ((), took) = poll(
            Duration::from_millis(2),
            || cond(self).then_some(()).ok_or(()),
            |()| {
                format!(
                    "{what} not within {BOUND:?}\nroutes: {}\n--- log\n{}",
                    self.routes("198", "all"),
                    self.log()
                )
            },
        );
        took
    }

    fn sigterm(&mut self) -> Instant {
        sigterm(self.child.as_ref().unwrap())
    }

    /// SIGKILL (no cleanup at all: what the OOM killer does), reaped.
    fn sigkill(&mut self) -> Instant {
        let mut c = self.child.take().unwrap();
        let t = Instant::now();
        c.kill().unwrap();
        let _ = c.wait();
        t
    }

    /// `GET path` from the daemon's HTTP endpoint (127.0.0.1:2112 in the
    /// node's namespace): `(status code, body)`, or `None` while nothing
    /// answers yet.
    fn http(&self, path: &str) -> Option<(u16, String)> {
        let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        self.ns
            .enter(move || {
                let mut s = TcpStream::connect("127.0.0.1:2112").ok()?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                s.write_all(req.as_bytes()).ok()?;
                let mut raw = String::new();
                s.read_to_string(&mut raw).ok()?;
                let (head, body) = raw.split_once("\r\n\r\n")?;
                let code = head.split_whitespace().nth(1)?.parse().ok()?;
                Some((code, body.to_string()))
            })
            .unwrap()
    }

    /// `/status`'s `routing_table` section.
    fn table_status(&self) -> Option<vipd_observe::status::RoutingTableEntry> {
        let (code, body) = self.http("/status")?;
        assert_eq!(code, 200, "{body}");
        let snap: vipd_observe::status::StatusSnapshot = serde_json::from_str(&body).unwrap();
        snap.routing_table
    }

    /// `/metrics`' value of `series` (the whole name with labels).
    fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http("/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// `vipd status` in the node's namespace: exit code, stdout, stderr.
    fn vipd_status(&self) -> (i32, String, String) {
        let out = self
            .ns
            .command(env!("CARGO_BIN_EXE_vipd"))
            .arg("status")
            .env_clear()
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let (child, log) = (&mut self.child, &self.log);
        let (st, _) = poll(
            Duration::from_millis(10),
            || child.as_mut().unwrap().try_wait().unwrap().ok_or(()),
            |()| format!("vipd did not exit:\n{}", read_log(log)),
        );
        self.child = None;
        st
    }

    /// Waits for vipd's exit, which must be a success.
    fn exits_cleanly(&mut self) {
        let st = self.wait_exit();
        assert!(st.success(), "exit {st:?}\n{}", self.log());
    }

    /// SIGTERM, and a clean exit.
    fn stop(&mut self) {
        self.sigterm();
        self.exits_cleanly();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `ip -j route show table T proto P` in `ns` for both families ("FIB
/// table does not exist" is an empty table).
fn routes(ns: &NetNs, table: &str, proto: &str) -> String {
    let mut out = String::new();
    for family in ["-4", "-6"] {
        match ns.ip(&[
            "-j", family, "route", "show", "table", table, "proto", proto,
        ]) {
            Ok(s) => out.push_str(&s),
            Err(e) if e.to_string().contains("does not exist") => {}
            Err(e) => panic!("ip route show: {e}"),
        }
    }
    out
}

/// Our route for `dst` is in table 198.
fn has_route(ns: &NetNs, dst: &str) -> bool {
    routes(ns, "198", "248").contains(&format!("\"dst\":\"{dst}\""))
}

/// `addr` is bound on `lo`.
fn has_addr(ns: &NetNs, addr: &str) -> bool {
    ns.ip(&["addr", "show", "dev", "lo"])
        .unwrap()
        .contains(&format!("{addr}/"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn the_route_follows_the_vip_and_sigterm_deletes_it() {
    netlab::require_root!();
    let mut starts = Vec::new();
    let mut stops = Vec::new();
    for run in 1..=3 {
        let mut n = Node::new("rte2e");
        // No API server here: the default /livez gate would keep the node
        // ineligible; the health test below covers the gate.
        let t0 = n.start(VIP, &[("vip_arp", "true"), NO_CHECKS]);
        n.wait("route in table 198 proto 248", |n| n.has_route(VIP));
        let up = t0.elapsed();
        // kube-vip's shape: dev vip_interface, unicast, our table and
        // protocol, nothing in main; the address is bound too.
        let json = n.routes("198", "248");
        assert!(json.contains("\"dev\":\"lo\""), "{json}");
        assert!(n.has_addr(VIP), "route without the address");
        assert!(!n.routes("main", "248").contains(VIP));
        assert!(n.log().contains("vip_arp is ignored"), "{}", n.log());

        let t1 = n.sigterm();
        n.wait("route deleted after SIGTERM", |n| !n.has_route(VIP));
        let down = t1.elapsed();
        n.exits_cleanly();
        assert!(!n.has_addr(VIP), "address left after SIGTERM");
        // The route went first (SPEC §5b: withdraw before we stop serving).
        let log = n.log();
        let (route_gone, addr_gone) = (
            log.find("routing table: route deleted")
                .or_else(|| log.find("our routes deleted")),
            log.find("VIP removed"),
        );
        if let (Some(r), Some(a)) = (route_gone, addr_gone) {
            assert!(r < a, "address removed before the route:\n{log}");
        }
        println!(
            "routing table run {run}: start → route present {:.1} ms, SIGTERM → route gone {:.1} ms",
            ms(up),
            ms(down)
        );
        starts.push(ms(up));
        stops.push(ms(down));
    }
    println!("routing table: start → route present (ms) {starts:.1?}; SIGTERM → route gone (ms) {stops:.1?}");
}

#[test]
fn ipv6_vip_gets_a_128_route() {
    netlab::require_root!();
    let mut n = Node::new("rte6");
    n.start_unchecked(VIP6);
    n.wait("IPv6 route in table 198", |n| n.has_route(VIP6));
    let json = n.routes("198", "248");
    assert!(json.contains("\"dev\":\"lo\""), "{json}");
    n.sigterm();
    n.wait("IPv6 route deleted", |n| !n.has_route(VIP6));
    n.exits_cleanly();
}

#[test]
fn clean_at_start_removes_leftovers_of_our_protocol_only() {
    netlab::require_root!();
    let mut n = Node::new("rtclean");
    // Leftovers of a previous run (ours), a neighbour's route in the same
    // table and our protocol in another table.
    for (dst, table, proto) in [
        ("198.51.100.77", "198", "248"),
        ("198.51.100.64/26", "198", "248"),
        ("203.0.113.0/24", "198", "249"),
        ("198.51.100.78", "199", "248"),
    ] {
        n.add_route(dst, table, proto);
    }
    n.start(VIP, &[NO_CHECKS, ("vip_cleanroutingtable", "true")]);
    n.wait("VIP route", |n| n.has_route(VIP));
    let ours = n.routes("198", "248");
    assert!(
        !ours.contains("198.51.100.77") && !ours.contains("198.51.100.64"),
        "leftovers kept: {ours}"
    );
    assert!(n.routes("198", "249").contains("203.0.113.0/24"));
    assert!(n.routes("199", "248").contains("198.51.100.78"));
    assert!(n.log().contains("routing table cleaned"), "{}", n.log());
    n.stop();
    assert!(!n.has_route(VIP));
    // The neighbour's route survives our shutdown too.
    assert!(n.routes("198", "249").contains("203.0.113.0/24"));
}

#[test]
fn without_clean_only_our_own_vips_leftover_route_goes() {
    netlab::require_root!();
    let mut n = Node::new("rtleft");
    n.add_route("198.51.100.77", "198", "248");
    // A leftover route of our VIP from a crash, while this node does not
    // hold it (its health check fails: nothing listens on the port).
    n.add_route(VIP, "198", "248");
    n.start_checked(VIP, "tcp://127.0.0.1:18081", &[]);
    n.wait("leftover VIP route deleted", |n| !n.has_route(VIP));
    assert!(n.has_route("198.51.100.77"), "someone else's route deleted");
    n.stop();
}

#[test]
fn a_failing_health_check_deletes_the_route_and_recovery_writes_it_again() {
    netlab::require_root!();
    let mut n = Node::new("rthc");
    // The check is a TCP port in the node's namespace that the test opens
    // and closes (kube-vip watches the local API server the same way).
    let listen = |n: &Node| {
        n.ns.enter(|| TcpListener::bind("127.0.0.1:18080").unwrap())
            .unwrap()
    };
    let l = listen(&n);
    n.start_checked(
        VIP,
        "tcp://127.0.0.1:18080",
        &[("VIPD_HEALTH_CHECK_FAILURE_THRESHOLD", "2")],
    );
    n.wait("route while healthy", |n| n.has_route(VIP));
    drop(l);
    let gone = n.wait("route deleted when unhealthy", |n| !n.has_route(VIP));
    n.wait("address removed when unhealthy", |n| !n.has_addr(VIP));
    println!(
        "routing table health failure: route gone {:.0} ms after the check target closed",
        ms(gone)
    );
    let _l = listen(&n);
    let back = n.wait("route written again", |n| n.has_route(VIP));
    println!(
        "routing table health recovery: route back after {:.0} ms",
        ms(back)
    );
    assert!(n.has_addr(VIP));
    n.stop();
}

#[test]
fn a_route_deleted_by_hand_comes_back() {
    netlab::require_root!();
    let mut n = Node::new("rtr3");
    // The default reconcile period is 5 s; the route monitor brings it
    // back long before that.
    n.start_unchecked(VIP);
    n.wait("route", |n| n.has_route(VIP));
    // Observability over HTTP: the route is in /status and /metrics, and
    // `vipd status` is content.
    let host = format!("{VIP}/32");
    n.wait("/status shows the route", |n| {
        n.table_status().is_some_and(|t| t.routes == [host.clone()])
    });
    let t = n.table_status().unwrap();
    assert_eq!((t.mode.as_str(), t.table, t.protocol), ("ecmp", 198, 248));
    assert_eq!((t.wanted, t.last_error), (vec![host.clone()], None));
    let routes = r#"vipd_routing_table_routes{table="198"}"#;
    let adds = r#"vipd_routing_table_writes_total{op="add"}"#;
    assert_eq!(n.metric(routes), Some(1.0));
    assert_eq!(n.metric(adds), Some(1.0));
    assert_eq!(n.metric("vipd_routing_table_errors_total"), Some(0.0));
    let (code, out, err) = n.vipd_status();
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "routing table 198 proto 248 (ecmp)  routes 1: {host}"
        )),
        "{out}"
    );

    n.del_route(VIP, "198", "248");
    let back = n.wait("route re-written (R3)", |n| n.has_route(VIP));
    assert!(
        back < Duration::from_secs(2),
        "route back only after {back:?}"
    );
    println!(
        "routing table: route deleted by hand back after {:.0} ms",
        ms(back)
    );
    n.wait("the second write counted", |n| n.metric(adds) == Some(2.0));
    assert_eq!(n.metric(routes), Some(1.0));
    n.stop();
}

/// A route vipd cannot write (another protocol's route holds the VIP's
/// destination in the table) shows in `/status`, in the error counter,
/// and makes `vipd status` fail; once the way is clear the route is
/// written and all is well again.
#[test]
fn a_route_that_cannot_be_written_is_reported_and_judged_unhealthy() {
    netlab::require_root!();
    let mut n = Node::new("rtocc");
    n.add_route(VIP, "198", "249");
    n.start_unchecked(VIP);
    n.wait("the failure in /status", |n| {
        n.table_status().is_some_and(|t| t.last_error.is_some())
    });
    let t = n.table_status().unwrap();
    assert!(t.routes.is_empty(), "{t:?}");
    assert_eq!(t.wanted, vec![format!("{VIP}/32")]);
    assert!(
        n.has_addr(VIP),
        "the address is bound, only the route fails"
    );
    assert!(n.metric("vipd_routing_table_errors_total").unwrap() >= 1.0);
    let (code, out, err) = n.vipd_status();
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains(&format!("NOT written: {VIP}/32")), "{out}");
    assert!(
        err.contains(&format!(
            "routing table 198 (proto 248): no route for {VIP}/32"
        )),
        "{err}"
    );
    println!("routing table, occupied destination: vipd status says {err:?}");
    // The other daemon's route goes: ours is written (back-off ≤ 5 s).
    n.del_route(VIP, "198", "249");
    n.wait("route once the way is clear", |n| n.has_route(VIP));
    n.wait("vipd status content again", |n| n.vipd_status().0 == 0);
    n.stop();
}

/// SIGKILL (OOM killer, abort): vipd deletes nothing itself, and the
/// address guard deletes the route and the address it was told about,
/// route first, leaving every other route alone.
#[test]
fn sigkill_leaves_neither_route_nor_address() {
    netlab::require_root!();
    let mut took = Vec::new();
    for run in 1..=3 {
        let mut n = Node::new("rtkill");
        // Not ours: another protocol in our table, our protocol for an
        // address vipd does not manage, our VIP in another table.
        for (dst, table, proto) in [
            ("203.0.113.0/24", "198", "249"),
            ("198.51.100.77", "198", "248"),
            (VIP, "199", "248"),
        ] {
            n.add_route(dst, table, proto);
        }
        n.start_unchecked(VIP);
        n.wait("route", |n| n.has_route(VIP) && n.has_addr(VIP));
        let t = n.sigkill();
        n.wait("route and address gone after SIGKILL", |n| {
            !n.has_route(VIP) && !n.has_addr(VIP)
        });
        let d = t.elapsed();
        assert!(n.routes("198", "249").contains("203.0.113.0/24"));
        assert!(n.has_route("198.51.100.77"), "an unmanaged route deleted");
        assert!(
            n.routes("199", "248").contains(VIP),
            "our VIP's route in another table deleted"
        );
        // The guard's own lines (its stderr is the daemon's log): route
        // first, then the address.
        let log = n.log();
        let (route, addr) = (
            log.find("the guard deleted it"),
            log.find("the guard removed it"),
        );
        assert!(
            matches!((route, addr), (Some(r), Some(a)) if r < a),
            "guard lines missing or out of order:\n{log}"
        );
        println!(
            "routing table run {run}: SIGKILL → route and address gone {:.1} ms",
            ms(d)
        );
        took.push(ms(d));
    }
    println!("routing table: SIGKILL → route and address gone (ms) {took:.1?}");
}

/// With `vip_leaderelection=true` (kube-vip's `StartCluster`) only the
/// lease holder writes the route; SIGTERM hands it over: the holder
/// deletes its route and address, releases the lease, and the other node
/// writes its own. Two nodes on a bridge, etcd in a third namespace.
#[test]
fn with_leader_election_only_the_holder_writes_the_route() {
    netlab::require_root!();
    let topo = netlab::TopologyBuilder::new(&netlab::unique_prefix("rtle"))
        .host("api", &[("192.0.2.2".parse().unwrap(), 24)])
        .host("n1", &[("192.0.2.11".parse().unwrap(), 24)])
        .host("n2", &[("192.0.2.12".parse().unwrap(), 24)])
        .build()
        .unwrap();
    let _etcd = netlab::etcd::EtcdServer::start_in_ns(
        topo.host("api").ns.name(),
        "192.0.2.2".parse().unwrap(),
        2379,
    )
    .unwrap();
    let logs = std::env::temp_dir().join(netlab::unique_prefix("rtle-logs"));
    std::fs::create_dir_all(&logs).unwrap();
    let log_path = |n: &str| logs.join(format!("{n}.log"));
    let mut children: Vec<(&str, Child)> = Vec::new();
    for n in ["n1", "n2"] {
        let child = vipd_run(
            &topo.host(n).ns,
            &[
                "run",
                "--backend",
                "etcd",
                "--etcd-endpoints",
                "http://192.0.2.2:2379",
                "--lease-duration",
                "3",
                "--renew-deadline",
                "2",
                "--retry-period",
                "0.5",
            ],
            n,
            VIP,
            &log_path(n),
        )
        .env("vip_leaderelection", "true")
        .env(NO_CHECKS.0, NO_CHECKS.1)
        .spawn()
        .unwrap();
        children.push((n, child));
    }
    struct Reap<'a>(&'a mut Vec<(&'static str, Child)>);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            for (_, c) in self.0.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let reap = Reap(&mut children);
    let holders = || -> Vec<&str> {
        ["n1", "n2"]
            .into_iter()
            .filter(|n| has_route(&topo.host(n).ns, VIP))
            .collect()
    };
    let wait_one = |not: Option<&str>| -> String {
        let (one, _) = poll(
            Duration::from_millis(5),
            || {
                let h = holders();
                if h.len() == 1 && Some(h[0]) != not {
                    return Ok(h[0].to_string());
                }
                assert!(h.len() < 2, "both nodes route the VIP: {h:?}");
                Err(h)
            },
            |h| {
                format!(
                    "no single route holder (have {h:?})\n--- n1\n{}\n--- n2\n{}",
                    read_log(&log_path("n1")),
                    read_log(&log_path("n2"))
                )
            },
        );
        one
    };
    let first = wait_one(None);
    let other = if first == "n1" { "n2" } else { "n1" };
    // Stays single for a while (the follower never writes it).
    for _ in 0..50 {
        assert_eq!(holders(), vec![first.as_str()], "route on the follower");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(has_addr(&topo.host(&first).ns, VIP));
    assert!(!has_addr(&topo.host(other).ns, VIP));
    let idx = reap.0.iter().position(|(n, _)| *n == first).unwrap();
    let t = sigterm(&reap.0[idx].1);
    let next = wait_one(Some(&first));
    let took = t.elapsed();
    assert_eq!(next, other);
    assert!(!has_route(&topo.host(&first).ns, VIP));
    println!(
        "routing table with leader election: SIGTERM {first} → route in {next}'s table after {:.0} ms",
        ms(took)
    );
    drop(reap);
    let _ = std::fs::remove_dir_all(&logs);
}
