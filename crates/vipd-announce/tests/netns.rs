//! Namespace tests: real kernels, real raw sockets, real neighbour caches.
//!
//! Topology (netlab): hosts `a`, `b` and `client` on one bridge,
//! 192.0.2.0/24 and 2001:db8::/64. Each announcer runs inside its host's
//! namespace on its own OS thread with a current-thread tokio runtime.

use netlab::{Host, Topology, TopologyBuilder};
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vipd_announce::{
    AnnounceEvent, Announcer, AnnouncerConfig, Command, MacAddr, Reason, SendKind,
};

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address literal")
}

fn topology(tag: &str) -> Topology {
    TopologyBuilder::new(&netlab::unique_prefix(tag))
        .host("a", &[(ip("192.0.2.1"), 24), (ip("2001:db8::1"), 64)])
        .host("b", &[(ip("192.0.2.2"), 24), (ip("2001:db8::2"), 64)])
        .host(
            "client",
            &[(ip("192.0.2.10"), 24), (ip("2001:db8::10"), 64)],
        )
        .build()
        .expect("topology builds")
}

fn host_mac(h: &Host) -> MacAddr {
    h.mac.parse().expect("netlab reports a valid MAC")
}

fn ifindex(h: &Host) -> u32 {
    h.ns.exec("cat", &[&format!("/sys/class/net/{}/ifindex", h.ifname)])
        .expect("read ifindex")
        .trim()
        .parse()
        .expect("numeric ifindex")
}

fn add_vip(h: &Host, vip: &str) {
    let (cidr, extra): (String, &[&str]) = if vip.contains(':') {
        (format!("{vip}/128"), &["nodad"])
    } else {
        (format!("{vip}/32"), &[])
    };
    let mut args = vec!["addr", "add", cidr.as_str(), "dev", "eth0"];
    args.extend_from_slice(extra);
    h.ns.ip(&args).expect("add VIP");
}

fn del_vip(h: &Host, vip: &str) {
    let len = if vip.contains(':') { 128 } else { 32 };
    h.ns.ip(&["addr", "del", &format!("{vip}/{len}"), "dev", "eth0"])
        .expect("delete VIP");
}

/// Polls `f` every 50 ms until it is true or `timeout` passes; returns the
/// elapsed time on success.
fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends one gratuitous ARP (request form) for `vip` from `h` with Thomas
/// Habets' arping (`-U` unsolicited, `-S` source), an independent sender.
/// Its exit status reflects replies, which a GARP never gets, so only a
/// usage error fails the test.
fn arping_garp(h: &Host, vip: &str) {
    arping_garp_as(h, vip, None);
}

/// Like [`arping_garp`], optionally with a forged source MAC (`-s`), which
/// stands in for a copy of our own frame reflected back by the network.
fn arping_garp_as(h: &Host, vip: &str, src_mac: Option<&str>) {
    let mut args = vec!["-U", "-S", vip, "-i", &h.ifname, "-c", "1", "-w", "1"];
    if let Some(m) = src_mac {
        args.extend_from_slice(&["-s", m]);
    }
    args.push(vip);
    let out =
        h.ns.command("arping")
            .args(&args)
            .output()
            .expect("arping runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("usage"),
        "arping rejected its flags: {stderr}"
    );
}

/// The test's side of a running announcer.
struct Running {
    cmd: mpsc::Sender<Command>,
    events: mpsc::Receiver<AnnounceEvent>,
    /// Every event received so far, in order.
    seen: Vec<AnnounceEvent>,
}

impl Running {
    fn send(&self, c: Command) {
        self.cmd.blocking_send(c).expect("announcer is running");
    }

    fn drain(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            self.seen.push(ev);
        }
    }

    /// Waits until an event matching `pred` has been seen (also earlier ones).
    fn wait_event(&mut self, timeout: Duration, pred: impl Fn(&AnnounceEvent) -> bool) -> bool {
        wait_for(timeout, || {
            self.drain();
            self.seen.iter().any(&pred)
        })
        .is_some()
    }

    /// Waits for an event matching `pred` among those not yet seen.
    fn wait_new_event(&mut self, timeout: Duration, pred: impl Fn(&AnnounceEvent) -> bool) -> bool {
        self.drain();
        let from = self.seen.len();
        wait_for(timeout, || {
            self.drain();
            self.seen[from..].iter().any(&pred)
        })
        .is_some()
    }

    fn claims(&mut self) -> Vec<(IpAddr, MacAddr)> {
        self.drain();
        self.seen
            .iter()
            .filter_map(|e| match e {
                AnnounceEvent::DuplicateClaim { vip, mac } => Some((*vip, *mac)),
                AnnounceEvent::Sent { .. } => None,
            })
            .collect()
    }
}

/// Runs an announcer for `host`'s eth0 inside its namespace while `test`
/// runs; cancels and joins it afterwards, also when `test` panics.
fn with_announcer<R>(host: &Host, test: impl FnOnce(&mut Running) -> R) -> R {
    let cfg = AnnouncerConfig {
        ifindex: ifindex(host),
        mac: host_mac(host),
        refresh: Duration::ZERO,
        max_pps: vipd_announce::DEFAULT_MAX_PPS,
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (ev_tx, ev_rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let worker_cancel = cancel.clone();
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            host.ns.enter(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(Announcer::new(cfg, cmd_rx, ev_tx).run(worker_cancel));
            })
        });
        // Cancels the announcer when dropped: on return and on panic.
        let _stop = cancel.drop_guard();
        let mut running = Running {
            cmd: cmd_tx,
            events: ev_rx,
            seen: Vec::new(),
        };
        let r = test(&mut running);
        drop(_stop);
        worker
            .join()
            .expect("announcer thread")
            .expect("entered namespace");
        r
    })
}

/// The VIP moves from `a` to `b`; `b`'s announcer must repoint the client's
/// existing neighbour entry to `b`'s MAC (Linux defaults: arp_accept=0,
/// which updates but never creates entries; for IPv6 an unsolicited NA with
/// Override=1 updates an existing entry, RFC 4861 §7.2.5).
fn neighbour_cache_follows_the_vip(vip: &str, ping: &str) {
    netlab::require_root!();
    let topo = topology(if vip.contains(':') { "nc6" } else { "nc4" });
    let (a, b, client) = (topo.host("a"), topo.host("b"), topo.host("client"));
    let vip_ip = ip(vip);

    add_vip(a, vip);
    client
        .ns
        .exec(ping, &["-c", "1", "-W", "2", vip])
        .expect("client reaches the VIP on a");
    assert_eq!(client.neigh_mac(vip_ip).as_deref(), Some(a.mac.as_str()));

    del_vip(a, vip);
    add_vip(b, vip);
    // Control: moving the address alone does not fix the client's cache.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        client.neigh_mac(vip_ip).as_deref(),
        Some(a.mac.as_str()),
        "client entry changed without an announcement; the test would prove nothing"
    );

    with_announcer(b, |run| {
        run.send(Command::Trigger {
            vip: vip_ip,
            reason: Reason::Acquired,
        });
        let took = wait_for(Duration::from_secs(3), || {
            client.neigh_mac(vip_ip).as_deref() == Some(b.mac.as_str())
        });
        assert!(
            took.is_some(),
            "client still maps {vip} to {:?}, expected b's {}",
            client.neigh_mac(vip_ip),
            b.mac
        );
        eprintln!("client cache repointed to b after {took:?}");
        let kinds: Vec<SendKind> = {
            run.drain();
            run.seen
                .iter()
                .filter_map(|e| match e {
                    AnnounceEvent::Sent { vip: v, kind } if *v == vip_ip => Some(*kind),
                    _ => None,
                })
                .collect()
        };
        if vip_ip.is_ipv4() {
            assert!(
                kinds.contains(&SendKind::GarpRequest) && kinds.contains(&SendKind::GarpReply),
                "{kinds:?}"
            );
        } else {
            assert!(kinds.contains(&SendKind::UnsolicitedNa), "{kinds:?}");
        }
        assert!(
            run.claims().is_empty(),
            "no one else claims the VIP: {:?}",
            run.claims()
        );
    });
}

#[test]
fn garp_burst_repoints_client_neighbour_entry_to_new_holder() {
    neighbour_cache_follows_the_vip(VIP4, "ping");
}

#[test]
fn unsolicited_na_repoints_client_neighbour_entry_to_new_holder() {
    neighbour_cache_follows_the_vip(VIP6, "ping");
}

#[test]
fn peer_garp_for_held_vip_is_reported_and_own_announcements_are_not() {
    netlab::require_root!();
    let topo = topology("dup4");
    let (a, b) = (topo.host("a"), topo.host("b"));
    let vip = ip(VIP4);
    add_vip(a, VIP4);
    let garp_from_b = || arping_garp(b, VIP4);
    with_announcer(a, |run| {
        run.send(Command::Trigger {
            vip,
            reason: Reason::Acquired,
        });
        // Let a's own first wave go out (and be heard by its own sockets if
        // outgoing frames were not filtered).
        assert!(run.wait_event(Duration::from_secs(3), |e| matches!(
            e,
            AnnounceEvent::Sent {
                kind: SendKind::GarpReply,
                ..
            }
        )));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            run.claims().is_empty(),
            "own announcements reported: {:?}",
            run.claims()
        );
        // A frame carrying our own MAC that arrives from the wire (a loop or
        // a reflecting switch) is not a foreign claim either.
        arping_garp_as(b, VIP4, Some(&a.mac));
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            run.claims().is_empty(),
            "own MAC reported as duplicate: {:?}",
            run.claims()
        );

        garp_from_b();
        let b_mac = host_mac(b);
        assert!(
            run.wait_event(Duration::from_secs(3), |e| *e
                == AnnounceEvent::DuplicateClaim { vip, mac: b_mac }),
            "no duplicate claim for b's GARP; events: {:?}",
            run.seen
        );
        let a_mac = host_mac(a);
        assert!(
            run.claims().iter().all(|(_, m)| *m != a_mac),
            "a reported itself"
        );

        // After Stop we no longer hold the VIP: claims are not ours to report.
        run.send(Command::Stop { vip });
        std::thread::sleep(Duration::from_millis(200));
        let before = run.claims().len();
        garp_from_b();
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(run.claims().len(), before, "claim reported after Stop");
    });
}

#[test]
fn two_announcers_for_one_vip_report_each_other_v4_and_v6() {
    netlab::require_root!();
    let topo = topology("dup2");
    let (a, b) = (topo.host("a"), topo.host("b"));
    let (a_mac, b_mac) = (host_mac(a), host_mac(b));
    let vips = [ip(VIP4), ip(VIP6)];
    for h in [a, b] {
        add_vip(h, VIP4);
        add_vip(h, VIP6);
    }
    with_announcer(a, |ra| {
        for vip in vips {
            ra.send(Command::Trigger {
                vip,
                reason: Reason::Acquired,
            });
        }
        with_announcer(b, |rb| {
            for vip in vips {
                rb.send(Command::Trigger {
                    vip,
                    reason: Reason::Acquired,
                });
            }
            for vip in vips {
                assert!(
                    ra.wait_event(Duration::from_secs(4), |e| *e
                        == AnnounceEvent::DuplicateClaim { vip, mac: b_mac }),
                    "a did not see b claim {vip}: {:?}",
                    ra.seen
                );
                assert!(
                    rb.wait_event(Duration::from_secs(4), |e| *e
                        == AnnounceEvent::DuplicateClaim { vip, mac: a_mac }),
                    "b did not see a claim {vip}: {:?}",
                    rb.seen
                );
            }
            assert!(
                ra.claims().iter().all(|(_, m)| *m == b_mac),
                "{:?}",
                ra.claims()
            );
            assert!(
                rb.claims().iter().all(|(_, m)| *m == a_mac),
                "{:?}",
                rb.claims()
            );
        });
    });
}

#[test]
fn announcer_survives_link_flap_and_announces_again() {
    netlab::require_root!();
    let topo = topology("flap");
    let (a, b) = (topo.host("a"), topo.host("b"));
    let vip = ip(VIP4);
    add_vip(a, VIP4);
    with_announcer(a, |run| {
        run.send(Command::Trigger {
            vip,
            reason: Reason::Acquired,
        });
        assert!(run.wait_event(Duration::from_secs(2), |e| matches!(
            e,
            AnnounceEvent::Sent { .. }
        )));
        a.link_down().expect("link down");
        std::thread::sleep(Duration::from_millis(1500));
        a.link_up().expect("link up");
        // The daemon re-triggers on link up (R4); the announcer must still
        // be alive, its sockets usable (reopened if the kernel errored them).
        run.send(Command::Trigger {
            vip,
            reason: Reason::LinkUp,
        });
        assert!(
            run.wait_new_event(Duration::from_secs(3), |e| matches!(
                e,
                AnnounceEvent::Sent { .. }
            )),
            "no announcement after link up: {:?}",
            run.seen
        );
        // And it still hears the wire.
        let b_mac = host_mac(b);
        arping_garp(b, VIP4);
        assert!(
            run.wait_event(Duration::from_secs(3), |e| *e
                == AnnounceEvent::DuplicateClaim { vip, mac: b_mac }),
            "no claim heard after link flap: {:?}",
            run.seen
        );
    });
}

/// 40 IPv4 addresses triggered at once under a 50 frames/s cap: the frames
/// are spread (80 frames take ~1.6 s), every address is still announced,
/// and a foreign claim for an address whose first announcement is still
/// held back by the cap is reported (R5 does not wait for the cap).
#[test]
fn pps_cap_spreads_a_mass_trigger_and_claims_on_deferred_vips_are_reported() {
    netlab::require_root!();
    const CAP: u32 = 50;
    let topo = topology("cap4");
    let (a, b) = (topo.host("a"), topo.host("b"));
    let vips: Vec<IpAddr> = (1..=40u8)
        .map(|h| IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, h)))
        .collect();
    let last = vips[vips.len() - 1];
    let b_mac = host_mac(b);
    with_announcer(a, |run| {
        run.send(Command::SetMaxPps(CAP));
        let t0 = Instant::now();
        for vip in &vips {
            run.send(Command::Trigger {
                vip: *vip,
                reason: Reason::Acquired,
            });
        }
        // The last-triggered address goes out last, ~1.6 s from now; b
        // claims it while it is still waiting.
        arping_garp_as(b, "198.51.100.40", None);
        assert!(
            run.wait_event(Duration::from_secs(3), |e| *e
                == AnnounceEvent::DuplicateClaim {
                    vip: last,
                    mac: b_mac
                }),
            "no claim for a deferred VIP: {:?}",
            run.seen
        );
        let claim_at = run
            .seen
            .iter()
            .position(|e| matches!(e, AnnounceEvent::DuplicateClaim { .. }));
        let last_sent_at = run
            .seen
            .iter()
            .position(|e| matches!(e, AnnounceEvent::Sent { vip, .. } if *vip == last));
        assert!(
            last_sent_at.is_none() || claim_at < last_sent_at,
            "the claim was heard only after {last} was announced; the test proves nothing"
        );

        // Never more than the burst allowance (2 frames) plus the cap's
        // share of the elapsed time, measured after the events were read.
        std::thread::sleep(Duration::from_millis(300));
        run.drain();
        let elapsed = t0.elapsed();
        let sent = run
            .seen
            .iter()
            .filter(|e| matches!(e, AnnounceEvent::Sent { .. }))
            .count();
        let allowed = 2 + (f64::from(CAP) * elapsed.as_secs_f64()).ceil() as usize;
        assert!(
            sent <= allowed,
            "{sent} frames in {elapsed:?}, cap allows {allowed}"
        );

        // Every address still gets its first announcement (both frames).
        let all_done = wait_for(Duration::from_secs(5), || {
            run.drain();
            vips.iter().all(|v| {
                run.seen.iter().any(|e| {
                    *e == AnnounceEvent::Sent {
                        vip: *v,
                        kind: SendKind::GarpReply,
                    }
                })
            })
        });
        let took = t0.elapsed();
        assert!(
            all_done.is_some(),
            "not every VIP announced: {:?}",
            run.seen
        );
        eprintln!("40 VIPs at {CAP} frames/s: first round done after {took:?}");
        assert!(
            took >= Duration::from_millis(1500),
            "80 frames at {CAP}/s cannot finish in {took:?}: cap not applied"
        );
    });
}
