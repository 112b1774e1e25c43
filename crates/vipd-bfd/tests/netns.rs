//! Two vipd-bfd shells in two namespaces over a bridge (root only): they
//! come Up, a killed side is detected by the other within its detection
//! time, a graceful shutdown reads as AdminDown (diag 7 at the peer, diag 3
//! locally), and a packet that did not arrive with TTL 255 is discarded
//! (RFC 5881 §5). IPv4 and IPv6.

#![allow(clippy::unwrap_used)]

mod common;

use common::Node;
use netlab::{Topology, TopologyBuilder};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use vipd_bfd::{BfdConfig, ControlPacket, Diag, State};

fn topo(tag: &str) -> Topology {
    let a4: IpAddr = "192.0.2.11".parse().unwrap();
    let b4: IpAddr = "192.0.2.12".parse().unwrap();
    let a6: IpAddr = "2001:db8:bfd::11".parse().unwrap();
    let b6: IpAddr = "2001:db8:bfd::12".parse().unwrap();
    TopologyBuilder::new(&netlab::unique_prefix(tag))
        .host("a", &[(a4, 24), (a6, 64)])
        .host("b", &[(b4, 24), (b6, 64)])
        .build()
        .unwrap()
}

fn addrs(t: &Topology, v6: bool) -> (IpAddr, IpAddr) {
    let pick = |h: &str| {
        let h = t.host(h);
        if v6 {
            h.ipv6().unwrap()
        } else {
            h.ipv4().unwrap()
        }
    };
    (pick("a"), pick("b"))
}

const UP_LIMIT: Duration = Duration::from_secs(5);

fn up_then_kill_then_graceful(v6: bool) {
    let t = topo(if v6 { "bfd6" } else { "bfd4" });
    let (a, b) = addrs(&t, v6);
    let cfg = BfdConfig::default();
    let fam = if v6 { "IPv6" } else { "IPv4" };

    // Up on both sides.
    let na = Node::start(&t.host("a").ns, a, b, cfg);
    let nb = Node::start(&t.host("b").ns, b, a, cfg);
    let up = na.wait(UP_LIMIT, |s| s.state == State::Up).expect("a Up");
    nb.wait(UP_LIMIT, |s| s.state == State::Up).expect("b Up");
    println!("{fam}: Up after {up:?}");
    // Settle on the fast timers (Poll/Final done on both sides).
    std::thread::sleep(Duration::from_millis(1_500));
    let st = na.status.borrow().to_owned();
    assert_eq!(st.tx_interval, Duration::from_millis(300));
    assert_eq!(st.detection_time, Duration::from_millis(900));
    let c = na.counters();
    assert!(c[0] > 3 && c[1] == 0 && c[2] == 0, "counters {c:?}");

    // Kill b: a goes Down with diag 1 within the detection time.
    nb.kill();
    let took = na
        .wait(Duration::from_secs(3), |s| s.state == State::Down)
        .expect("a Down after b was killed");
    let st = *na.status.borrow();
    println!("{fam}: killed peer detected after {took:?} (detection time 900 ms)");
    assert_eq!(st.local_diag, Diag::ControlDetectionTimeExpired);
    assert!(took <= Duration::from_millis(1_200), "{took:?}");

    // A new b comes up with a; then a stops gracefully.
    let nb = Node::start(&t.host("b").ns, b, a, cfg);
    na.wait(UP_LIMIT, |s| s.state == State::Up)
        .expect("a Up again");
    nb.wait(UP_LIMIT, |s| s.state == State::Up)
        .expect("b Up again");
    std::thread::sleep(Duration::from_millis(500));
    let watch_b = nb.status.clone();
    let w = watch_b.clone();
    // Watch b from the moment the shutdown starts, on another thread.
    let seen = std::thread::spawn(move || {
        common::wait_status(&w, Duration::from_secs(2), |s| s.state == State::Down)
    });
    let t_stop = tokio::time::Instant::now();
    let last = na.shutdown().expect("shutdown status");
    let stop_took = t_stop.elapsed();
    assert_eq!(
        (last.state, last.local_diag),
        (State::AdminDown, Diag::AdminDown)
    );
    let seen = seen.join().unwrap().expect("b Down after a's shutdown");
    assert!(seen <= Duration::from_millis(100), "{seen:?}");
    let st = *watch_b.borrow();
    assert_eq!(
        (st.local_diag, st.remote_state, st.remote_diag),
        (
            Diag::NeighborSignaledDown,
            State::AdminDown,
            Diag::AdminDown
        )
    );
    println!(
        "{fam}: graceful shutdown took {stop_took:?} (3 AdminDown packets); peer Down with diag 3 (remote diag 7) {:?} after it started",
        seen
    );
    // b stays Down (not a timeout later) while a is gone.
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(watch_b.borrow().local_diag, Diag::NeighborSignaledDown);
    drop(nb);
}

#[test]
fn ipv4_up_kill_detected_and_graceful_admin_down() {
    netlab::require_root!();
    up_then_kill_then_graceful(false);
}

#[test]
fn ipv6_up_kill_detected_and_graceful_admin_down() {
    netlab::require_root!();
    up_then_kill_then_graceful(true);
}

#[test]
fn packets_not_sent_with_ttl_255_are_discarded() {
    netlab::require_root!();
    let t = topo("bfdttl");
    let (a, b) = addrs(&t, false);
    let na = Node::start(&t.host("a").ns, a, b, BfdConfig::default());
    // A forged "Down" from b's address with TTL 64: were it accepted, a
    // would move to Init.
    let forged = ControlPacket {
        diag: Diag::None,
        state: State::Down,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_disc: 0x4242,
        your_disc: 0,
        desired_min_tx: 1_000_000,
        required_min_rx: 300_000,
        required_min_echo_rx: 0,
    }
    .encode();
    let send = |ttl: u32| {
        t.host("b")
            .ns
            .enter(move || {
                let s = std::net::UdpSocket::bind(SocketAddr::new(b, 49999)).unwrap();
                s.set_ttl(ttl).unwrap();
                s.send_to(&forged, SocketAddr::new(a, 3784)).unwrap();
            })
            .unwrap()
    };
    send(64);
    common::wait_for(Duration::from_secs(2), || na.counters()[1] == 1)
        .expect("TTL 64 packet counted as bad_ttl");
    assert_eq!(na.status.borrow().state, State::Down);
    assert_eq!(na.counters()[0], 0);
    // The same packet with TTL 255 is accepted: the check is what stopped it.
    send(255);
    na.wait(Duration::from_secs(2), |s| s.state == State::Init)
        .expect("TTL 255 packet accepted");
    assert_eq!(na.counters()[0], 1);
}
