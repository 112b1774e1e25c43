//! The address guard: a second, tiny process that removes vipd's addresses
//! when the daemon dies without removing them itself.
//!
//! Why: the kernel keeps an address after the process that added it is
//! gone. A daemon killed by SIGKILL, the OOM killer, a segfault or an
//! abort leaves its VIP answering ARP on a node that no longer holds it,
//! while the quorum (SPEC §5a) or the lease (R1) lets a successor bind the
//! same address: two holders on the wire until the daemon restarts and
//! removes the leftover (R3). Found in the lab (`sigkill-restart`, quorum
//! mode: 322 ms of two holders, because a quorum successor is faster than
//! a restart).
//!
//! How: the daemon starts `vipd guard` with a pipe on its standard input
//! (in its own process group, so a signal to the daemon's group misses it)
//! and, through [`GuardPipe`], writes one line *before* each address it
//! adds and one after each address it removed. The pipe's read end sees
//! end-of-file when the daemon dies, however it dies (the kernel closes
//! its descriptors); the guard then deletes every address still listed,
//! and only if the kernel still shows it with vipd's tag (R3: never a
//! node's own address). A graceful stop has removed and un-listed
//! everything first, so the guard finds nothing to do.
//!
//! Limits, stated: a guard killed together with the daemon (a SIGKILL to
//! the whole cgroup, a container whose PID 1 is the daemon) cannot help;
//! the restarted daemon's reconcile (R3) removes the leftover then.
//!
//! The line format (`+`/`-`, tag, interface, address/prefix) is private to
//! the two halves of this module.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::noop_waker_ref;
use tokio::io::AsyncWrite;

use crate::netlink::{Netlink, NetlinkError};
use crate::reconcile::Vip;

/// Where the daemon's addresses are: interface name and `IFA_PROTO` tag.
pub type GuardScope = (String, u8);

/// The daemon's end of the pipe to the guard. Cloned into every VIP
/// manager, which writes through its own [`ManagerGuard`]; all clones write
/// to the one pipe.
///
/// Writes never block the caller: a line the pipe cannot take at once (the
/// guard stopped reading) marks the pipe broken, logged once, and nothing
/// more is written. The daemon never waits for its guard; a torn line makes
/// the guard remove nothing ([`GuardState::apply`]), an unsent one leaves
/// that address to the restarted daemon's reconcile.
#[derive(Clone)]
pub struct GuardPipe {
    /// `None` once a write failed.
    out: Arc<Mutex<Option<Writer>>>,
}

/// The pipe's write end, whatever its type (a child's stdin; a test stream).
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

impl std::fmt::Debug for GuardPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GuardPipe")
    }
}

impl GuardPipe {
    /// Wraps the write end (the guard's standard input).
    pub fn new(out: impl AsyncWrite + Send + 'static) -> Self {
        Self {
            out: Arc::new(Mutex::new(Some(Box::pin(out)))),
        }
    }

    /// The handle one VIP manager reports through: its interface and tag.
    pub fn for_manager(&self, ifname: &str, tag: u8) -> ManagerGuard {
        ManagerGuard {
            pipe: self.clone(),
            scope: (ifname.to_string(), tag),
            told: BTreeSet::new(),
        }
    }

    /// True until a write failed (the guard is gone or stopped reading).
    pub fn healthy(&self) -> bool {
        self.out.lock().map(|o| o.is_some()).unwrap_or(false)
    }

    fn write(&self, text: &str) {
        let Ok(mut slot) = self.out.lock() else {
            return;
        };
        let Some(out) = slot.as_mut() else {
            return;
        };
        // One poll with a no-op waker: a pipe with room takes the whole
        // line at once (lines are far below PIPE_BUF, so the write is
        // atomic); anything else means the guard is not reading.
        let mut cx = Context::from_waker(noop_waker_ref());
        let ok = matches!(
            out.as_mut().poll_write(&mut cx, text.as_bytes()),
            Poll::Ready(Ok(n)) if n == text.len()
        );
        if !ok {
            tracing::warn!(
                "the address guard stopped reading; vipd goes on without it (a crash of vipd now leaves its addresses until it restarts)"
            );
            *slot = None;
        }
    }
}

/// One VIP manager's view of the guard: what it has told the guard may be
/// on its interface, so that each change is written once.
#[derive(Debug)]
pub struct ManagerGuard {
    pipe: GuardPipe,
    scope: GuardScope,
    told: BTreeSet<Vip>,
}

impl ManagerGuard {
    /// `vip` may be on the interface from now on. Called before the
    /// address is added, so the guard always knows a superset of what the
    /// kernel has.
    pub fn adding(&mut self, vip: Vip) {
        if self.told.insert(vip) {
            self.pipe.write(&line('+', &self.scope, vip));
        }
    }

    /// `vip` is gone (called after its removal).
    pub fn removed(&mut self, vip: Vip) {
        if self.told.remove(&vip) {
            self.pipe.write(&line('-', &self.scope, vip));
        }
    }

    /// Brings the guard to what a fresh kernel dump shows as ours (adopted
    /// leftovers, addresses someone else deleted).
    pub fn sync(&mut self, ours: &BTreeSet<Vip>) {
        let new: Vec<Vip> = ours.difference(&self.told).copied().collect();
        let gone: Vec<Vip> = self.told.difference(ours).copied().collect();
        new.into_iter().for_each(|v| self.adding(v));
        gone.into_iter().for_each(|v| self.removed(v));
    }
}

fn line(op: char, (ifname, tag): &GuardScope, vip: Vip) -> String {
    format!("{op}{tag} {ifname} {}/{}\n", vip.addr, vip.prefix_len)
}

/// The guard's sans-IO state: what the daemon may have on which interface.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuardState {
    listed: BTreeMap<GuardScope, BTreeSet<Vip>>,
    /// A line could not be parsed: the stream is not trustworthy.
    corrupt: bool,
}

impl GuardState {
    /// Applies one line from the daemon. A malformed line (a torn write,
    /// a different version) makes the whole stream untrusted: the guard
    /// then removes nothing at all, rather than something wrong.
    pub fn apply(&mut self, text: &str) {
        match parse(text) {
            Some((true, scope, vip)) => {
                self.listed.entry(scope).or_default().insert(vip);
            }
            Some((false, scope, vip)) => {
                if let Some(set) = self.listed.get_mut(&scope) {
                    set.remove(&vip);
                    if set.is_empty() {
                        self.listed.remove(&scope);
                    }
                }
            }
            None => self.corrupt = true,
        }
    }

    /// What to remove at end-of-file (nothing if the stream was corrupt).
    pub fn leftovers(&self) -> BTreeMap<GuardScope, BTreeSet<Vip>> {
        if self.corrupt {
            BTreeMap::new()
        } else {
            self.listed.clone()
        }
    }

    /// True when a malformed line was seen.
    pub fn corrupt(&self) -> bool {
        self.corrupt
    }
}

fn parse(text: &str) -> Option<(bool, GuardScope, Vip)> {
    let text = text.trim_end_matches('\n');
    let add = match text.chars().next()? {
        '+' => true,
        '-' => false,
        _ => return None,
    };
    let mut words = text.get(1..)?.split(' ');
    let tag: u8 = words.next()?.parse().ok()?;
    let ifname = words.next()?.to_string();
    let (addr, prefix) = words.next()?.split_once('/')?;
    if words.next().is_some() || ifname.is_empty() {
        return None;
    }
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return None;
    }
    Some((add, (ifname, tag), Vip::new(addr, prefix)))
}

/// One address the guard removed or could not remove.
#[derive(Debug)]
pub struct GuardOutcome {
    /// Interface and tag.
    pub scope: GuardScope,
    /// The address.
    pub vip: Vip,
    /// `Ok(true)`: removed; `Ok(false)`: already gone (or no longer
    /// vipd's); `Err`: the interface or netlink failed (the error's text,
    /// shared by every address of the interface).
    pub result: Result<bool, String>,
}

/// Deletes every leftover that the kernel still shows with its tag (R3:
/// an address without vipd's tag is never touched).
pub async fn remove_leftovers(
    leftovers: &BTreeMap<GuardScope, BTreeSet<Vip>>,
) -> Vec<GuardOutcome> {
    let mut out = Vec::new();
    for ((ifname, tag), vips) in leftovers {
        let outcome = |vip: Vip, result| GuardOutcome {
            scope: (ifname.clone(), *tag),
            vip,
            result,
        };
        // One socket and one dump per interface: Services mode may list
        // a thousand addresses, and the guard should be quick.
        match ours_on(ifname, *tag).await {
            Ok((nl, ifindex, ours)) => {
                for vip in vips {
                    let result = if ours.contains(vip) {
                        nl.del_vip(ifindex, *vip)
                            .await
                            .map(|()| true)
                            .map_err(|e| e.to_string())
                    } else {
                        Ok(false)
                    };
                    out.push(outcome(*vip, result));
                }
            }
            Err(e) => {
                let text = e.to_string();
                out.extend(vips.iter().map(|v| outcome(*v, Err(text.clone()))));
            }
        }
    }
    out
}

/// A netlink socket with `tag`, the index of `ifname`, and the addresses
/// on it that carry the tag.
async fn ours_on(ifname: &str, tag: u8) -> Result<(Netlink, u32, BTreeSet<Vip>), NetlinkError> {
    let nl = Netlink::with_tag(tag)?;
    let link = nl.link_by_name(ifname).await?;
    let ours = nl
        .addresses(link.ifindex)
        .await?
        .iter()
        .filter(|a| a.ours)
        .map(|a| a.vip())
        .collect();
    Ok((nl, link.ifindex, ours))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn v(s: &str, p: u8) -> Vip {
        Vip::new(s.parse().unwrap(), p)
    }

    fn scope() -> GuardScope {
        ("eth0".into(), 0x7e)
    }

    #[test]
    fn lines_round_trip_and_removal_unlists() {
        let mut g = GuardState::default();
        g.apply(&line('+', &scope(), v("192.0.2.100", 32)));
        g.apply(&line('+', &scope(), v("2001:db8::100", 128)));
        g.apply(&line('-', &scope(), v("192.0.2.100", 32)));
        let left = g.leftovers();
        assert_eq!(left.len(), 1);
        assert_eq!(left[&scope()], BTreeSet::from([v("2001:db8::100", 128)]));
        g.apply(&line('-', &scope(), v("2001:db8::100", 128)));
        assert!(g.leftovers().is_empty());
    }

    #[test]
    fn scopes_are_kept_apart() {
        let mut g = GuardState::default();
        let other: GuardScope = ("eth1".into(), 0x7f);
        g.apply(&line('+', &scope(), v("192.0.2.100", 32)));
        g.apply(&line('+', &other, v("203.0.113.10", 32)));
        g.apply(&line('-', &other, v("192.0.2.100", 32)));
        let left = g.leftovers();
        assert_eq!(left[&scope()], BTreeSet::from([v("192.0.2.100", 32)]));
        assert_eq!(left[&other], BTreeSet::from([v("203.0.113.10", 32)]));
    }

    #[test]
    fn a_malformed_line_makes_the_guard_remove_nothing() {
        for bad in [
            "",
            "*126 eth0 192.0.2.1/32",
            "+126 eth0 192.0.2.1",
            "+126 eth0 192.0.2.1/33",
            "+300 eth0 192.0.2.1/32",
            "+126  192.0.2.1/32",
            "+126 eth0 192.0.2.1/32 extra",
            "+126 eth0 not-an-ip/32",
            "+126 eth0 2001:db8::1/129",
        ] {
            let mut g = GuardState::default();
            g.apply(&line('+', &scope(), v("192.0.2.100", 32)));
            g.apply(bad);
            assert!(g.corrupt(), "{bad:?} accepted");
            assert!(g.leftovers().is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn the_pipe_writes_whole_lines_and_stands_down_when_full() {
        // A duplex stream with room for a little more than one line.
        let (a, mut b) = tokio::io::duplex(40);
        let pipe = GuardPipe::new(a);
        let mut g = pipe.for_manager("eth0", 0x7e);
        g.adding(v("192.0.2.100", 32));
        assert!(pipe.healthy());
        let mut buf = [0u8; 64];
        let mut cx = Context::from_waker(noop_waker_ref());
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        let r = tokio::io::AsyncRead::poll_read(Pin::new(&mut b), &mut cx, &mut rb);
        assert!(matches!(r, Poll::Ready(Ok(()))));
        let text = String::from_utf8(rb.filled().to_vec()).unwrap();
        let mut state = GuardState::default();
        state.apply(&text);
        assert_eq!(
            state.leftovers()[&scope()],
            BTreeSet::from([v("192.0.2.100", 32)])
        );
        // Nobody reads now: the second line fits, the third does not.
        g.adding(v("2001:db8::100", 128));
        g.adding(v("2001:db8::101", 128));
        assert!(!pipe.healthy());
    }
}
