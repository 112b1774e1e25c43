//! Behaviour of the session core, driven with a scripted peer and paused
//! time: no sockets, no sleeps.

use super::*;
use crate::packet::{Attribute, Segment};

const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const PEER_ID: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn cfg() -> Config {
    let mut c = Config::new(65001, 65000, LOCAL);
    c.seed = 7;
    c
}

fn peer_open(asn: u32, hold: u16, caps: Vec<Capability>) -> Vec<u8> {
    Message::Open(Open {
        version: 4,
        my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
        hold_time: hold,
        bgp_id: PEER_ID,
        capabilities: caps,
    })
    .encode(Codec::default())
    .expect("encodes")
}

fn full_caps(asn: u32) -> Vec<Capability> {
    vec![
        Capability::family(Family::Ipv4),
        Capability::family(Family::Ipv6),
        Capability::RouteRefresh,
        Capability::FourOctetAs(asn),
    ]
}

fn wire(m: Message) -> Vec<u8> {
    m.encode(Codec {
        four_octet_as: true,
    })
    .expect("encodes")
}

/// Every message the actions send, decoded with `codec`.
fn sent(actions: &[Action], codec: Codec) -> Vec<Message> {
    let mut out = Vec::new();
    for a in actions {
        if let Action::Send(b) = a {
            let mut rest = b.as_slice();
            while let Ok(Some(n)) = frame_len(rest) {
                out.push(Message::decode(&rest[..n], codec).expect("we send valid messages"));
                rest = &rest[n..];
            }
            assert!(rest.is_empty(), "partial message sent");
        }
    }
    out
}

fn wide() -> Codec {
    Codec {
        four_octet_as: true,
    }
}

fn transitions(actions: &[Action]) -> Vec<State> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::StateChanged { to, .. } => Some(*to),
            _ => None,
        })
        .collect()
}

fn announced(msgs: &[Message]) -> Vec<Prefix> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u.announced().copied().collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn withdrawn(msgs: &[Message]) -> Vec<Prefix> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u.withdrawn_all().copied().collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn set(addrs: &[&str]) -> BTreeSet<IpAddr> {
    addrs.iter().map(|a| ip(a)).collect()
}

/// Start → connect → OPEN exchange → KEEPALIVE: returns the actions of the
/// last step (the initial routes).
fn establish(s: &mut Session, now: Instant, local: IpAddr, caps: Vec<Capability>) -> Vec<Action> {
    let a = s.handle(now, Input::Start);
    assert_eq!(a.first(), Some(&Action::Connect));
    let a = s.handle(now, Input::Connected { local });
    assert!(matches!(
        sent(&a, Codec::default()).as_slice(),
        [Message::Open(_)]
    ));
    let a = s.handle(now, Input::Received(&peer_open(65000, 90, caps)));
    assert!(matches!(
        sent(&a, Codec::default()).as_slice(),
        [Message::Keepalive]
    ));
    assert_eq!(s.state(), State::OpenConfirm);
    let a = s.handle(now, Input::Received(&wire(Message::Keepalive)));
    assert_eq!(s.state(), State::Established);
    a
}

#[tokio::test(start_paused = true)]
async fn start_connects_and_sends_our_open_with_capabilities() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    assert_eq!(
        s.handle(now, Input::Start),
        vec![
            Action::Connect,
            Action::StateChanged {
                from: State::Idle,
                to: State::Connect,
                reason: Reason::Started
            },
        ]
    );
    let a = s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    let msgs = sent(&a, Codec::default());
    let [Message::Open(o)] = msgs.as_slice() else {
        panic!("not an OPEN");
    };
    assert_eq!(
        (o.version, o.my_as, o.hold_time, o.bgp_id),
        (4, 65001, 30, LOCAL)
    );
    assert_eq!(o.asn(), 65001);
    assert_eq!(o.families(), vec![Family::Ipv4, Family::Ipv6]);
    assert!(o.has(|c| matches!(c, Capability::RouteRefresh)));
    // Graceful restart is off by default: it would keep a dead node's route.
    assert!(!o.has(|c| matches!(c, Capability::GracefulRestart { .. })));
    assert_eq!(s.state(), State::OpenSent);
}

#[tokio::test(start_paused = true)]
async fn established_announces_the_desired_host_routes_with_our_next_hop_and_path() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(now, Input::Routes(&set(&["203.0.113.10", "203.0.113.11"])));
    let a = establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let msgs = sent(&a, wide());
    let [Message::Update(u)] = msgs.as_slice() else {
        panic!("one UPDATE expected, got {msgs:?}");
    };
    assert_eq!(
        u.nlri,
        vec![
            Prefix::host(ip("203.0.113.10")),
            Prefix::host(ip("203.0.113.11"))
        ]
    );
    assert!(u.attributes.contains(&Attribute::NextHop(LOCAL)));
    assert!(u
        .attributes
        .contains(&Attribute::AsPath(vec![Segment::Sequence(vec![65001])])));
    assert_eq!(s.advertised().len(), 2);
    assert_eq!(s.status().updates_sent, 1);
    assert_eq!(s.status().established_count, 1);
    let n = s.negotiated().expect("negotiated");
    assert_eq!((n.hold_time, n.keepalive), (30, 10));
    assert!(n.codec.four_octet_as && n.route_refresh);
}

#[tokio::test(start_paused = true)]
async fn route_changes_send_only_differences_withdrawals_first() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(now, Input::Routes(&set(&["203.0.113.10", "203.0.113.11"])));
    establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let a = s.handle(now, Input::Routes(&set(&["203.0.113.11", "203.0.113.12"])));
    let msgs = sent(&a, wide());
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        withdrawn(&msgs[..1]),
        vec![Prefix::host(ip("203.0.113.10"))]
    );
    assert_eq!(
        announced(&msgs[1..]),
        vec![Prefix::host(ip("203.0.113.12"))]
    );
    // The same set again: nothing to say.
    let a = s.handle(now, Input::Routes(&set(&["203.0.113.11", "203.0.113.12"])));
    assert!(sent(&a, wide()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn ipv6_routes_go_in_mp_reach_with_the_v6_local_address_as_next_hop() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(
        now,
        Input::Routes(&set(&["2001:db8:99::10", "203.0.113.10"])),
    );
    let a = establish(&mut s, now, ip("2001:db8::11"), full_caps(65000));
    let msgs = sent(&a, wide());
    // IPv4 has no next hop on an IPv6 session without `next_hop_v4`.
    assert_eq!(announced(&msgs), vec![Prefix::host(ip("2001:db8:99::10"))]);
    let Message::Update(u) = &msgs[0] else {
        panic!("update")
    };
    assert!(u.attributes.iter().any(|a| matches!(a,
        Attribute::MpReach { family: Family::Ipv6, next_hops, .. } if next_hops == &vec![ip("2001:db8::11")])));
    assert_eq!(s.status().unsendable, 1);
}

#[tokio::test(start_paused = true)]
async fn configured_next_hops_let_both_families_ride_one_session() {
    let mut c = cfg();
    c.next_hop_v6 = Some("2001:db8::11".parse().expect("v6"));
    let mut s = Session::new(c);
    let now = Instant::now();
    s.handle(
        now,
        Input::Routes(&set(&["2001:db8:99::10", "203.0.113.10"])),
    );
    let a = establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let got = announced(&sent(&a, wide()));
    assert_eq!(got.len(), 2);
    assert_eq!(s.status().unsendable, 0);
}

#[tokio::test(start_paused = true)]
async fn a_peer_without_multiprotocol_gets_ipv4_only() {
    let mut c = cfg();
    c.next_hop_v6 = Some("2001:db8::11".parse().expect("v6"));
    let mut s = Session::new(c);
    let now = Instant::now();
    s.handle(
        now,
        Input::Routes(&set(&["2001:db8:99::10", "203.0.113.10"])),
    );
    let a = establish(
        &mut s,
        now,
        IpAddr::V4(LOCAL),
        vec![Capability::FourOctetAs(65000)],
    );
    assert_eq!(
        announced(&sent(&a, wide())),
        vec![Prefix::host(ip("203.0.113.10"))]
    );
    assert_eq!(s.status().unsendable, 1);
}

#[tokio::test(start_paused = true)]
async fn a_two_octet_peer_gets_as_trans_and_as4_path_for_a_four_octet_as() {
    let mut c = cfg();
    c.local_as = 4_200_000_001;
    let mut s = Session::new(c);
    let now = Instant::now();
    s.handle(now, Input::Routes(&set(&["203.0.113.10"])));
    // No 4-octet capability from the peer: AS_PATH is 2-octet.
    let a = establish(
        &mut s,
        now,
        IpAddr::V4(LOCAL),
        vec![Capability::family(Family::Ipv4)],
    );
    let msgs = sent(&a, Codec::default());
    let Message::Update(u) = &msgs[0] else {
        panic!("update")
    };
    assert!(u
        .attributes
        .contains(&Attribute::AsPath(vec![Segment::Sequence(vec![23456])])));
    assert!(u
        .attributes
        .contains(&Attribute::As4Path(vec![Segment::Sequence(vec![
            4_200_000_001
        ])])));
}

#[tokio::test(start_paused = true)]
async fn bad_peer_as_is_refused_with_open_error_2() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(now, Input::Start);
    s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    let a = s.handle(
        now,
        Input::Received(&peer_open(65099, 90, full_caps(65099))),
    );
    let msgs = sent(&a, Codec::default());
    assert_eq!(msgs, vec![Message::Notification(Notification::new(2, 2))]);
    assert!(a.contains(&Action::Close));
    assert_eq!(s.state(), State::Idle);
}

#[tokio::test(start_paused = true)]
async fn hold_time_of_one_or_two_seconds_is_unacceptable() {
    for hold in [1, 2] {
        let mut s = Session::new(cfg());
        let now = Instant::now();
        s.handle(now, Input::Start);
        s.handle(
            now,
            Input::Connected {
                local: IpAddr::V4(LOCAL),
            },
        );
        let a = s.handle(
            now,
            Input::Received(&peer_open(65000, hold, full_caps(65000))),
        );
        assert_eq!(
            sent(&a, Codec::default()),
            vec![Message::Notification(Notification::new(2, 6))]
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_shorter_peer_hold_time_wins_and_keepalive_is_a_third_of_it() {
    let mut s = Session::new(cfg());
    let t0 = Instant::now();
    s.handle(t0, Input::Start);
    s.handle(
        t0,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    s.handle(t0, Input::Received(&peer_open(65000, 9, full_caps(65000))));
    s.handle(t0, Input::Received(&wire(Message::Keepalive)));
    let n = s.negotiated().expect("negotiated");
    assert_eq!((n.hold_time, n.keepalive), (9, 3));
    // Keepalives come every 2.25–3 s (RFC 4271 §10 jitter) and keep coming.
    let mut sent_at = Vec::new();
    while sent_at.len() < 20 {
        let now = s.next_deadline().expect("timers");
        let a = s.handle(now, Input::Tick);
        if sent(&a, wide()).contains(&Message::Keepalive) {
            sent_at.push(now);
        }
        // The peer keeps its side alive, so the hold timer never fires.
        s.handle(now, Input::Received(&wire(Message::Keepalive)));
    }
    let mut prev = t0;
    for t in sent_at {
        let gap = t - prev;
        assert!(
            gap >= Duration::from_millis(2250) && gap <= Duration::from_secs(3),
            "{gap:?}"
        );
        prev = t;
    }
    assert_eq!(s.state(), State::Established);
}

#[tokio::test(start_paused = true)]
async fn hold_timer_expiry_sends_notification_4_and_reconnects_after_backoff() {
    let mut s = Session::new(cfg());
    let t0 = Instant::now();
    establish(&mut s, t0, IpAddr::V4(LOCAL), full_caps(65000));
    // Only our keepalives flow; the peer says nothing for 30 s.
    let mut now;
    let a = loop {
        now = s.next_deadline().expect("timers");
        let a = s.handle(now, Input::Tick);
        if s.state() == State::Idle {
            break a;
        }
    };
    assert_eq!(now - t0, Duration::from_secs(30));
    assert!(sent(&a, wide()).contains(&Message::Notification(Notification::new(4, 0))));
    assert!(a.contains(&Action::Close));
    assert!(
        s.advertised().is_empty(),
        "a new session starts from an empty Adj-RIB-Out"
    );
    // Reconnect within the first back-off step (0.25–0.5 s).
    let retry = s.next_deadline().expect("retry scheduled");
    assert!(retry - now >= Duration::from_millis(250) && retry - now <= Duration::from_millis(500));
    assert_eq!(s.handle(retry, Input::Tick).first(), Some(&Action::Connect));
}

#[tokio::test(start_paused = true)]
async fn failed_connects_back_off_exponentially_to_the_cap_then_reset_when_established() {
    let mut s = Session::new(cfg());
    let mut now = Instant::now();
    s.handle(now, Input::Start);
    let mut delays = Vec::new();
    for _ in 0..10 {
        s.handle(now, Input::ConnectFailed);
        let next = s.next_deadline().expect("retry");
        delays.push(next - now);
        now = next;
        assert_eq!(s.handle(now, Input::Tick).first(), Some(&Action::Connect));
    }
    for (i, d) in delays.iter().enumerate() {
        let base = Duration::from_millis(500) * 2u32.pow(u32::try_from(i).unwrap_or(31).min(16));
        let base = base.min(Duration::from_secs(30));
        assert!(
            *d >= base / 2 && *d <= base,
            "attempt {i}: {d:?} vs base {base:?}"
        );
    }
    // Connected and established: the next failure waits the first step again.
    s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    s.handle(
        now,
        Input::Received(&peer_open(65000, 90, full_caps(65000))),
    );
    s.handle(now, Input::Received(&wire(Message::Keepalive)));
    s.handle(now, Input::Closed);
    let d = s.next_deadline().expect("retry") - now;
    assert!(d <= Duration::from_millis(500), "{d:?}");
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_hangs_times_out_and_retries() {
    let mut s = Session::new(cfg());
    let t0 = Instant::now();
    s.handle(t0, Input::Start);
    let deadline = s.next_deadline().expect("connect timeout");
    assert_eq!(deadline - t0, Duration::from_secs(5));
    let a = s.handle(deadline, Input::Tick);
    assert!(a.contains(&Action::Close));
    assert!(matches!(
        a.last(),
        Some(Action::StateChanged {
            reason: Reason::ConnectTimeout,
            ..
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn stop_withdraws_everything_then_sends_admin_shutdown_and_stays_idle() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(
        now,
        Input::Routes(&set(&["203.0.113.10", "2001:db8:99::10"])),
    );
    let mut c = cfg();
    c.next_hop_v6 = Some("2001:db8::11".parse().expect("v6"));
    let mut s2 = Session::new(c);
    s2.handle(
        now,
        Input::Routes(&set(&["203.0.113.10", "2001:db8:99::10"])),
    );
    establish(&mut s2, now, IpAddr::V4(LOCAL), full_caps(65000));
    let a = s2.handle(now, Input::Stop("vipd stopping: SIGTERM".into()));
    let msgs = sent(&a, wide());
    let n = msgs.len();
    assert_eq!(withdrawn(&msgs[..n - 1]).len(), 2, "{msgs:?}");
    let Message::Notification(note) = &msgs[n - 1] else {
        panic!("last is the Cease")
    };
    assert_eq!(
        note.shutdown_message().as_deref(),
        Some("vipd stopping: SIGTERM")
    );
    assert_eq!(a.iter().filter(|x| **x == Action::Close).count(), 1);
    assert_eq!(s2.state(), State::Idle);
    assert_eq!(
        s2.next_deadline(),
        None,
        "a stopped session does not reconnect"
    );
    // Stopping before anything was connected is quiet.
    assert_eq!(
        transitions(&s.handle(now, Input::Stop("x".into()))),
        Vec::<State>::new()
    );
}

#[tokio::test(start_paused = true)]
async fn a_notification_from_the_peer_drops_the_session_without_answering() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let n = Notification::admin_shutdown("router maintenance");
    let a = s.handle(
        now,
        Input::Received(&wire(Message::Notification(n.clone()))),
    );
    assert!(sent(&a, wide()).is_empty());
    assert_eq!(s.state(), State::Idle);
    assert!(a.contains(&Action::StateChanged {
        from: State::Established,
        to: State::Idle,
        reason: Reason::NotificationReceived(n)
    }));
    assert!(s.next_deadline().is_some(), "reconnects");
    assert_eq!(s.status().notifications_received, 1);
}

#[tokio::test(start_paused = true)]
async fn down_from_bfd_drops_at_once_with_cease_bfd_down() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let a = s.handle(now, Input::Down("BFD down".into()));
    assert_eq!(
        sent(&a, wide()),
        vec![Message::Notification(Notification::new(6, 10))]
    );
    assert_eq!(s.state(), State::Idle);
    assert_eq!(s.status().last_error.as_deref(), Some("down: BFD down"));
}

#[tokio::test(start_paused = true)]
async fn a_message_out_of_order_is_an_fsm_error_with_the_state_subcode() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(now, Input::Start);
    s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    let a = s.handle(now, Input::Received(&wire(Message::Keepalive)));
    assert_eq!(
        sent(&a, Codec::default()),
        vec![Message::Notification(Notification::new(5, 1))]
    );
    let mut s = Session::new(cfg());
    establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let a = s.handle(
        now,
        Input::Received(&peer_open(65000, 90, full_caps(65000))),
    );
    assert_eq!(
        sent(&a, wide()),
        vec![Message::Notification(Notification::new(5, 3))]
    );
}

#[tokio::test(start_paused = true)]
async fn bytes_arriving_one_at_a_time_are_framed() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(now, Input::Start);
    s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    let mut stream = peer_open(65000, 90, full_caps(65000));
    stream.extend(wire(Message::Keepalive));
    for b in &stream {
        s.handle(now, Input::Received(std::slice::from_ref(b)));
    }
    assert_eq!(s.state(), State::Established);
}

#[tokio::test(start_paused = true)]
async fn garbage_earns_a_header_notification() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let a = s.handle(now, Input::Received(&[0u8; 19]));
    assert_eq!(
        sent(&a, wide()),
        vec![Message::Notification(Notification::new(1, 1))]
    );
    assert_eq!(s.state(), State::Idle);
}

#[tokio::test(start_paused = true)]
async fn received_routes_are_counted_never_installed_and_malformed_ones_do_not_reset() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let upd = Update {
        attributes: vec![
            Attribute::Origin(crate::packet::Origin::Igp),
            Attribute::AsPath(vec![Segment::Sequence(vec![65000])]),
            Attribute::NextHop(PEER_ID),
        ],
        nlri: vec![
            Prefix::host(ip("198.51.100.1")),
            Prefix::host(ip("198.51.100.2")),
        ],
        ..Update::default()
    };
    let a = s.handle(now, Input::Received(&wire(Message::Update(upd))));
    assert!(a.is_empty(), "nothing to do about a received route: {a:?}");
    assert_eq!(s.status().received, 2);
    let wd = Update {
        withdrawn: vec![Prefix::host(ip("198.51.100.1"))],
        ..Update::default()
    };
    s.handle(now, Input::Received(&wire(Message::Update(wd))));
    assert_eq!(s.status().received, 1);
    // ORIGIN 9 is malformed: treat-as-withdraw, session stays up.
    let bad = Update {
        attributes: vec![Attribute::Other {
            flags: 0x40,
            code: 1,
            value: vec![9],
        }],
        nlri: vec![Prefix::host(ip("198.51.100.3"))],
        ..Update::default()
    };
    s.handle(now, Input::Received(&wire(Message::Update(bad))));
    assert_eq!(s.state(), State::Established);
    assert_eq!((s.status().received, s.status().malformed_updates), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn route_refresh_resends_the_family() {
    let mut s = Session::new(cfg());
    let now = Instant::now();
    s.handle(now, Input::Routes(&set(&["203.0.113.10"])));
    establish(&mut s, now, IpAddr::V4(LOCAL), full_caps(65000));
    let a = s.handle(
        now,
        Input::Received(&wire(Message::RouteRefresh { afi: 1, safi: 1 })),
    );
    assert_eq!(
        announced(&sent(&a, wide())),
        vec![Prefix::host(ip("203.0.113.10"))]
    );
    let a = s.handle(
        now,
        Input::Received(&wire(Message::RouteRefresh { afi: 2, safi: 1 })),
    );
    assert!(announced(&sent(&a, wide())).is_empty());
}

#[tokio::test(start_paused = true)]
async fn graceful_restart_when_configured_advertises_the_capability_and_sends_end_of_rib() {
    let mut c = cfg();
    c.graceful_restart = Some(120);
    c.families = vec![Family::Ipv4];
    let mut s = Session::new(c);
    let now = Instant::now();
    s.handle(now, Input::Start);
    let a = s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    let msgs = sent(&a, Codec::default());
    let [Message::Open(o)] = msgs.as_slice() else {
        panic!("open");
    };
    assert!(o.has(|c| matches!(
        c,
        Capability::GracefulRestart {
            restart_time: 120,
            ..
        }
    )));
    let mut caps = full_caps(65000);
    caps.push(Capability::GracefulRestart {
        restarting: false,
        restart_time: 90,
        families: vec![],
    });
    s.handle(now, Input::Received(&peer_open(65000, 90, caps)));
    let a = s.handle(now, Input::Received(&wire(Message::Keepalive)));
    let msgs = sent(&a, wide());
    let eor: Vec<_> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Update(u) => u.end_of_rib_family(),
            _ => None,
        })
        .collect();
    assert_eq!(eor, vec![Family::Ipv4]);
}

#[tokio::test(start_paused = true)]
async fn ibgp_peer_with_our_router_id_is_refused_and_ibgp_routes_carry_local_pref() {
    let mut c = cfg();
    c.remote_as = 65001;
    let mut s = Session::new(c.clone());
    let now = Instant::now();
    s.handle(now, Input::Start);
    s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    let same_id = Message::Open(Open {
        version: 4,
        my_as: 65001,
        hold_time: 90,
        bgp_id: LOCAL,
        capabilities: full_caps(65001),
    })
    .encode(Codec::default())
    .expect("encodes");
    let a = s.handle(now, Input::Received(&same_id));
    assert_eq!(
        sent(&a, Codec::default()),
        vec![Message::Notification(Notification::new(2, 3))]
    );
    let mut s = Session::new(c);
    s.handle(now, Input::Routes(&set(&["203.0.113.10"])));
    s.handle(now, Input::Start);
    s.handle(
        now,
        Input::Connected {
            local: IpAddr::V4(LOCAL),
        },
    );
    s.handle(
        now,
        Input::Received(&peer_open(65001, 90, full_caps(65001))),
    );
    let a = s.handle(now, Input::Received(&wire(Message::Keepalive)));
    let msgs = sent(&a, wide());
    let Message::Update(u) = &msgs[0] else {
        panic!("update")
    };
    assert!(u.attributes.contains(&Attribute::LocalPref(100)));
    assert!(u.attributes.contains(&Attribute::AsPath(vec![])));
}
