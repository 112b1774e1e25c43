//! The wire monitor: every ARP / Neighbour Advertisement on the lab's bridge
//! that claims the VIP, with its source MAC and the time it was seen.
//!
//! It runs `tcpdump -l -n -e -t -i br0 arp or icmp6` in the switch namespace
//! (NETLAB-TIPS: that shows every claim with its source MAC) and stamps each
//! line with the lab's [`LabClock`] when it is read; `-l` makes tcpdump flush
//! every line, so the stamp is within a millisecond or so of the frame.
//!
//! ## What counts as a claim
//!
//! A frame *claims* the VIP when a receiver's neighbour cache would point the
//! VIP at the frame's source MAC:
//! - an ARP request whose sender IP is the VIP (`who-has X tell VIP`); a
//!   gratuitous one when X is the VIP too (RFC 5227 §3 announcement form);
//! - an ARP reply `VIP is-at MAC`; gratuitous when sent to broadcast;
//! - an IPv6 Neighbour Advertisement for target VIP; unsolicited when sent
//!   to all-nodes `ff02::1` (RFC 4861 §7.2.6).
//!
//! ## Two MACs claiming ([`two_mac_time`])
//!
//! A clean failover shows claims from the old holder's MAC, then from the
//! new one's. Two claimants *at once* is: a claim from MAC A at `ta`, a claim
//! from a different MAC B at `tb` with `0 <= tb - ta <= window` (1 s, the
//! Linux ARP `locktime` beyond which a cache follows the newest claim
//! anyway), **and** at `tb` the node owning A still holds the VIP per its
//! addresses (a MAC of no lab node always counts as still claiming). The
//! interval `[ta, tb]` is then a two-MAC interval; the reported time is the
//! length of the union of those intervals. The holding condition is what
//! separates "A claimed, released, then B claimed 300 ms later" (a correct
//! handover, 0) from "A and B both answer for the VIP" (split brain).

use netlab::{HoldingLog, LabClock, NetNs};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::ops::Range;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The kind of frame that claimed the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimKind {
    /// ARP request `who-has VIP tell VIP` (gratuitous, request form).
    GarpRequest,
    /// ARP reply `VIP is-at MAC` to broadcast (gratuitous, reply form).
    GarpReply,
    /// ARP request from the VIP for another address (updates caches too).
    ArpRequest,
    /// ARP reply `VIP is-at MAC` to one asker.
    ArpReply,
    /// Neighbour Advertisement for the VIP to `ff02::1` (unsolicited).
    UnsolicitedNa,
    /// Neighbour Advertisement for the VIP to one asker.
    Na,
}

impl ClaimKind {
    /// True for announcements (gratuitous ARP, unsolicited NA), as opposed
    /// to answers to a neighbour's question.
    pub fn is_announcement(self) -> bool {
        matches!(
            self,
            ClaimKind::GarpRequest | ClaimKind::GarpReply | ClaimKind::UnsolicitedNa
        )
    }
}

/// Serializes a [`Duration`] as seconds (f64): the JSON report's time unit.
fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// One frame on the bridge claiming the VIP.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Claim {
    /// When the line was read, on the lab clock.
    #[serde(serialize_with = "ser_secs")]
    pub t: Duration,
    /// Source MAC of the frame, lower case.
    pub mac: String,
    /// What kind of frame it was.
    pub kind: ClaimKind,
}

/// Parses one line of `tcpdump -l -n -e -t` and returns the source MAC and
/// the kind of claim when the frame claims `vip`; `None` otherwise.
///
/// Lines look like
/// `aa:.. > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.0.2.100 tell 192.0.2.100, length 28`,
/// `... Reply 192.0.2.100 is-at aa:.., length 28` and
/// `... ethertype IPv6 (0x86dd), length 86: 2001:db8::100 > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8::100, length 32`.
pub fn parse_line(line: &str, vip: IpAddr) -> Option<(String, ClaimKind)> {
    parse_claim(line)
        .filter(|(ip, _, _)| *ip == vip)
        .map(|(_, mac, kind)| (mac, kind))
}

/// Like [`parse_line`] for any address: the address the frame claims, its
/// source MAC and the kind of claim (Services mode watches many addresses
/// with one capture).
pub fn parse_claim(line: &str) -> Option<(IpAddr, String, ClaimKind)> {
    let (head, body) = line.split_once(": ")?;
    let mut h = head.split_whitespace();
    let src = h.next()?.to_lowercase();
    if h.next()? != ">" {
        return None;
    }
    let dst = h.next()?.trim_end_matches(',').to_lowercase();
    let words: Vec<&str> = body
        .split_whitespace()
        .map(|w| w.trim_end_matches(','))
        .collect();
    let ip = |w: &str| w.parse::<IpAddr>().ok();
    let (claimed, kind) = match words.first().copied() {
        Some("Request") => {
            // `who-has X [(tha)] tell Y`: claims Y.
            let target = words
                .iter()
                .position(|w| *w == "who-has")
                .and_then(|i| words.get(i + 1))?;
            let sender = ip(words
                .iter()
                .position(|w| *w == "tell")
                .and_then(|i| words.get(i + 1))?)?;
            if ip(target) == Some(sender) {
                (sender, ClaimKind::GarpRequest)
            } else {
                (sender, ClaimKind::ArpRequest)
            }
        }
        Some("Reply") => {
            if words.get(2) != Some(&"is-at") {
                return None;
            }
            let claimed = ip(words.get(1)?)?;
            if dst == "ff:ff:ff:ff:ff:ff" {
                (claimed, ClaimKind::GarpReply)
            } else {
                (claimed, ClaimKind::ArpReply)
            }
        }
        _ => {
            if !body.contains("neighbor advertisement") {
                return None;
            }
            let tgt = ip(words
                .iter()
                .position(|w| *w == "tgt")
                .and_then(|i| words.get(i + 2))?)?;
            // `SRCIP > DSTIP: ICMP6, ...`
            let ip_dst = words.get(2)?.trim_end_matches(':');
            if ip_dst == "ff02::1" {
                (tgt, ClaimKind::UnsolicitedNa)
            } else {
                (tgt, ClaimKind::Na)
            }
        }
    };
    Some((claimed, src, kind))
}

/// Length of the union of the two-MAC intervals inside `range` (see the
/// module docs for the exact definition). `node_of_mac` maps a MAC to the
/// lab node owning it; `log` says who held the VIP when.
pub fn two_mac_time(
    claims: &[Claim],
    node_of_mac: &HashMap<String, String>,
    log: &HoldingLog,
    range: Range<Duration>,
    window: Duration,
) -> Duration {
    let inside: Vec<&Claim> = claims.iter().filter(|c| range.contains(&c.t)).collect();
    let mut spans: Vec<(Duration, Duration)> = Vec::new();
    for (j, b) in inside.iter().enumerate() {
        let holders = log.holders_at(b.t);
        for a in inside[..j].iter().rev() {
            if b.t - a.t > window {
                break;
            }
            if a.mac == b.mac {
                continue;
            }
            let still = node_of_mac.get(&a.mac).is_none_or(|n| holders.contains(n));
            if still {
                spans.push((a.t, b.t));
            }
        }
    }
    union_len(spans)
}

/// Total length of the union of `[from, to]` spans.
fn union_len(mut spans: Vec<(Duration, Duration)>) -> Duration {
    spans.sort();
    let mut total = Duration::ZERO;
    let mut cur: Option<(Duration, Duration)> = None;
    for (f, t) in spans {
        cur = match cur {
            Some((cf, ct)) if f <= ct => Some((cf, ct.max(t))),
            Some((cf, ct)) => {
                total += ct - cf;
                Some((f, t))
            }
            None => Some((f, t)),
        };
    }
    if let Some((cf, ct)) = cur {
        total += ct - cf;
    }
    total
}

/// A running `tcpdump` on the bridge; stops (kills its own child by pid)
/// when dropped.
#[derive(Debug)]
pub struct WireMonitor {
    /// The first watched address (the control-plane VIP).
    first: IpAddr,
    claims: Arc<Mutex<HashMap<IpAddr, Vec<Claim>>>>,
    child: Child,
    reader: Option<JoinHandle<()>>,
}

impl WireMonitor {
    /// Starts watching `br0` in the switch namespace for claims of `vip`
    /// and of every address in `more` (Service addresses).
    pub fn start(
        switch: &NetNs,
        vip: IpAddr,
        more: &[IpAddr],
        clock: LabClock,
    ) -> Result<WireMonitor, netlab::Error> {
        let watched: std::collections::HashSet<IpAddr> =
            std::iter::once(vip).chain(more.iter().copied()).collect();
        let mut child = switch
            .command("tcpdump")
            .args(["-l", "-n", "-e", "-t", "-i", "br0", "arp or icmp6"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| netlab::Error::Spawn {
                cmd: "tcpdump -i br0".into(),
                source,
            })?;
        let stdout = child.stdout.take().ok_or_else(|| netlab::Error::Io {
            what: "tcpdump stdout".into(),
            source: std::io::Error::other("not piped"),
        })?;
        let claims = Arc::new(Mutex::new(HashMap::new()));
        let sink = claims.clone();
        let reader = std::thread::Builder::new()
            .name("vipd-lab-wire".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let t = clock.now();
                    let Some((ip, mac, kind)) = parse_claim(&line) else {
                        continue;
                    };
                    if !watched.contains(&ip) {
                        continue;
                    }
                    if let Ok(mut g) = sink.lock() {
                        g.entry(ip)
                            .or_insert_with(Vec::new)
                            .push(Claim { t, mac, kind });
                    }
                }
            });
        let reader = match reader {
            Ok(r) => r,
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(netlab::Error::Io {
                    what: "spawn wire reader".into(),
                    source,
                });
            }
        };
        // tcpdump needs a moment to open the capture before frames count.
        std::thread::sleep(Duration::from_millis(300));
        Ok(WireMonitor {
            first: vip,
            claims,
            child,
            reader: Some(reader),
        })
    }

    /// Claims of the VIP seen so far, in arrival order.
    pub fn claims(&self) -> Vec<Claim> {
        self.claims_of(self.first)
    }

    /// Claims of `addr` seen so far, in arrival order.
    pub fn claims_of(&self, addr: IpAddr) -> Vec<Claim> {
        self.claims
            .lock()
            .ok()
            .and_then(|g| g.get(&addr).cloned())
            .unwrap_or_default()
    }
}

impl Drop for WireMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    const A: &str = "02:00:00:00:00:0a";
    const B: &str = "02:00:00:00:00:0b";

    fn vip4() -> IpAddr {
        "192.0.2.100".parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn claim(t: u64, mac: &str) -> Claim {
        Claim {
            t: ms(t),
            mac: mac.into(),
            kind: ClaimKind::GarpRequest,
        }
    }

    fn macs() -> HashMap<String, String> {
        [
            (A.to_string(), "n1".to_string()),
            (B.to_string(), "n2".to_string()),
        ]
        .into()
    }

    fn log(ev: &[(u64, &str, bool)]) -> HoldingLog {
        let mut l = HoldingLog::new();
        for (t, h, on) in ev {
            l.observe(ms(*t), h, *on);
        }
        l
    }

    #[test]
    fn parses_gratuitous_arp_request_and_reply_forms() {
        let req = "0a:1b:2c:3d:4e:5f > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.0.2.100 tell 192.0.2.100, length 28";
        assert_eq!(
            parse_line(req, vip4()),
            Some(("0a:1b:2c:3d:4e:5f".into(), ClaimKind::GarpRequest))
        );
        let req_tha = "0a:1b:2c:3d:4e:5f > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.0.2.100 (ff:ff:ff:ff:ff:ff) tell 192.0.2.100, length 28";
        assert_eq!(
            parse_line(req_tha, vip4()).map(|c| c.1),
            Some(ClaimKind::GarpRequest)
        );
        let rep = "0A:1B:2C:3D:4E:5F > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Reply 192.0.2.100 is-at 0a:1b:2c:3d:4e:5f, length 28";
        assert_eq!(
            parse_line(rep, vip4()),
            Some(("0a:1b:2c:3d:4e:5f".into(), ClaimKind::GarpReply))
        );
        let unicast = "0a:1b:2c:3d:4e:5f > 66:55:44:33:22:11, ethertype ARP (0x0806), length 42: Reply 192.0.2.100 is-at 0a:1b:2c:3d:4e:5f, length 28";
        assert_eq!(
            parse_line(unicast, vip4()).map(|c| c.1),
            Some(ClaimKind::ArpReply)
        );
        let from_vip = "0a:1b:2c:3d:4e:5f > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.0.2.50 tell 192.0.2.100, length 28";
        assert_eq!(
            parse_line(from_vip, vip4()).map(|c| c.1),
            Some(ClaimKind::ArpRequest)
        );
    }

    #[test]
    fn questions_about_the_vip_and_other_addresses_are_not_claims() {
        let ask = "66:55:44:33:22:11 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.0.2.100 tell 192.0.2.50, length 28";
        assert_eq!(parse_line(ask, vip4()), None);
        let other = "0a:1b:2c:3d:4e:5f > 66:55:44:33:22:11, ethertype ARP (0x0806), length 42: Reply 192.0.2.11 is-at 0a:1b:2c:3d:4e:5f, length 28";
        assert_eq!(parse_line(other, vip4()), None);
        assert_eq!(parse_line("tcpdump: listening on br0", vip4()), None);
        assert_eq!(parse_line("", vip4()), None);
    }

    #[test]
    fn parse_claim_names_the_claimed_service_address() {
        let req = "0a:1b:2c:3d:4e:5f > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 203.0.113.17 tell 203.0.113.17, length 28";
        assert_eq!(
            parse_claim(req),
            Some((
                "203.0.113.17".parse().unwrap(),
                "0a:1b:2c:3d:4e:5f".into(),
                ClaimKind::GarpRequest
            ))
        );
        assert_eq!(parse_line(req, vip4()), None);
        let ask = "66:55:44:33:22:11 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 203.0.113.17 tell 192.0.2.50, length 28";
        assert_eq!(
            parse_claim(ask).map(|c| (c.0, c.2)),
            Some(("192.0.2.50".parse().unwrap(), ClaimKind::ArpRequest)),
            "the asker claims its own address, not the one it asks for"
        );
    }

    #[test]
    fn parses_neighbour_advertisements_for_the_vip() {
        let vip6: IpAddr = "2001:db8::100".parse().unwrap();
        let una = "0a:1b:2c:3d:4e:5f > 33:33:00:00:00:01, ethertype IPv6 (0x86dd), length 86: 2001:db8::100 > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8::100, length 32";
        assert_eq!(
            parse_line(una, vip6),
            Some(("0a:1b:2c:3d:4e:5f".into(), ClaimKind::UnsolicitedNa))
        );
        let na = "0a:1b:2c:3d:4e:5f > 66:55:44:33:22:11, ethertype IPv6 (0x86dd), length 86: 2001:db8::100 > 2001:db8::50: ICMP6, neighbor advertisement, tgt is 2001:db8::100, length 32";
        assert_eq!(parse_line(na, vip6).map(|c| c.1), Some(ClaimKind::Na));
        let ns = "66:55:44:33:22:11 > 33:33:ff:00:01:00, ethertype IPv6 (0x86dd), length 86: 2001:db8::50 > ff02::1:ff00:100: ICMP6, neighbor solicitation, who has 2001:db8::100, length 32";
        assert_eq!(parse_line(ns, vip6), None);
    }

    #[test]
    fn handover_after_release_has_no_two_mac_time() {
        // n1 claims, releases at 400, n2 acquires and claims at 600.
        let l = log(&[(0, "n1", true), (400, "n1", false), (550, "n2", true)]);
        let c = vec![claim(100, A), claim(600, B), claim(1700, B)];
        assert_eq!(
            two_mac_time(&c, &macs(), &l, ms(0)..ms(5000), ms(1000)),
            Duration::ZERO
        );
    }

    #[test]
    fn claims_from_two_holders_within_the_window_count_their_span() {
        let l = log(&[(0, "n1", true), (500, "n2", true)]);
        let c = vec![claim(400, A), claim(600, B), claim(700, A)];
        // [400,600] and [600,700] (B still holds at 700): 300 ms.
        assert_eq!(
            two_mac_time(&c, &macs(), &l, ms(0)..ms(5000), ms(1000)),
            ms(300)
        );
    }

    #[test]
    fn claims_further_apart_than_the_window_do_not_count() {
        let l = log(&[(0, "n1", true), (500, "n2", true)]);
        let c = vec![claim(100, A), claim(1600, B)];
        assert_eq!(
            two_mac_time(&c, &macs(), &l, ms(0)..ms(5000), ms(1000)),
            Duration::ZERO
        );
    }

    #[test]
    fn unknown_mac_always_counts_as_claiming() {
        let l = log(&[(0, "n1", true)]);
        let c = vec![claim(100, "de:ad:be:ef:00:01"), claim(300, A)];
        assert_eq!(
            two_mac_time(&c, &macs(), &l, ms(0)..ms(5000), ms(1000)),
            ms(200)
        );
    }

    #[test]
    fn union_merges_overlapping_spans() {
        assert_eq!(
            union_len(vec![
                (ms(0), ms(100)),
                (ms(50), ms(150)),
                (ms(200), ms(210))
            ]),
            ms(160)
        );
        assert_eq!(union_len(vec![]), Duration::ZERO);
    }
}
