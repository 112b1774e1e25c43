//! BGP mode for the control-plane VIP (SPEC §5b, issue 14): the VIP is
//! bound locally (on `vip_interface`, usually `lo`, with no ARP/NDP
//! announcements) and a host route for it is announced to every
//! configured router.
//!
//! ```text
//!   Lead/Fence ──allowed──┐
//!                         ├─▶ forward: allowed ∩ bound ──routes──▶ Peer tasks ──TCP──▶ routers
//!   VipManager ──bound────┘                                           │
//!                                                       PeerStatus ◀──┘ (metrics, /status)
//! ```
//!
//! A route is announced only while the address is both wanted (`allowed`,
//! set by the holder) and confirmed in the kernel (`bound`): traffic the
//! router sends us always finds the address. On the way out the order is
//! reversed: [`BgpGate::withdraw`] takes the route away and waits until
//! every Established peer has been sent the withdrawal, and only then does
//! the holder remove the address (SPEC §5b: withdraw before we stop
//! serving).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};
use vipd::config::{BgpPeer, BgpSettings, MpbgpNexthop, RouterId};
use vipd_bgp::{Md5Key, Peer, PeerStatus, Prefix, State, Transport};
use vipd_observe::metrics::BgpPeerSample;
use vipd_observe::status::{BfdEntry, BgpEntry, BgpPeerEntry};
use vipd_vip::{Netlink, Vip};

use crate::context::Obs;

/// How long a withdrawal may take to reach the peers before the address
/// is removed anyway: a TCP write of one UPDATE to a live peer takes well
/// under a millisecond; a dead peer must not hold the fence up.
const WITHDRAW_WAIT: Duration = Duration::from_millis(300);

/// kube-vip's TTL for `bgp_multihop` peers (GoBGP `EbgpMultihop.MultihopTtl`).
const MULTIHOP_TTL: u32 = 50;

/// The running speaker: one peer task per configured router, shared by
/// everything in the process that announces (the control-plane VIP and
/// Services): a router accepts one session per neighbour, so two speakers
/// on one node would reset each other.
pub(crate) struct Bgp {
    gate: BgpGate,
    peers: Vec<Peer>,
    _forward: AbortOnDropHandle<()>,
}

/// What a holder needs to announce and withdraw: cheap to clone.
#[derive(Clone)]
pub(crate) struct BgpGate {
    allowed: Arc<watch::Sender<BTreeSet<IpAddr>>>,
    /// Kernel-confirmed address sets, one per VIP manager that feeds the
    /// speaker ([`BgpGate::attach`]).
    sources: tokio::sync::mpsc::UnboundedSender<watch::Receiver<BTreeSet<Vip>>>,
    statuses: Vec<watch::Receiver<PeerStatus>>,
    /// Each peer's AS, in `statuses` order (for `/status`).
    remote_as: Vec<u32>,
}

impl BgpGate {
    /// A gate without a speaker (no peers): tests of its callers.
    #[cfg(test)]
    pub(crate) fn detached() -> (BgpGate, watch::Receiver<BTreeSet<IpAddr>>) {
        let (allowed, rx) = watch::channel(BTreeSet::new());
        let (sources, _) = tokio::sync::mpsc::unbounded_channel();
        let gate = BgpGate {
            allowed: Arc::new(allowed),
            sources,
            statuses: Vec::new(),
            remote_as: Vec::new(),
        };
        (gate, rx)
    }

    /// Adds a VIP manager's bound set: an allowed address is announced
    /// once any attached manager confirms it in the kernel.
    pub(crate) fn attach(&self, bound: watch::Receiver<BTreeSet<Vip>>) {
        // Fails only when the speaker is gone (shutdown): nothing to feed.
        let _ = self.sources.send(bound);
    }

    /// The address may be announced once the kernel has it.
    pub(crate) fn announce(&self, addr: IpAddr) {
        self.allowed.send_if_modified(|a| a.insert(addr));
    }

    /// Takes the route away and waits (at most [`WITHDRAW_WAIT`]) until no
    /// Established peer still has it in its Adj-RIB-Out.
    pub(crate) async fn withdraw(&self, addr: IpAddr) {
        self.withdraw_all(&BTreeSet::from([addr])).await;
    }

    /// [`BgpGate::withdraw`] for several addresses at once: one wait, so a
    /// Service change that drops many addresses costs one round, not one
    /// per address.
    pub(crate) async fn withdraw_all(&self, addrs: &BTreeSet<IpAddr>) {
        if !self.allowed.send_if_modified(|a| {
            let before = a.len();
            a.retain(|x| !addrs.contains(x));
            a.len() != before
        }) {
            return;
        }
        let hosts: Vec<Prefix> = addrs.iter().map(|a| Prefix::host(*a)).collect();
        let all = async {
            for rx in &self.statuses {
                let mut rx = rx.clone();
                let _ = rx
                    .wait_for(|s| {
                        s.state != State::Established
                            || !hosts.iter().any(|h| s.advertised.contains(h))
                    })
                    .await;
            }
        };
        if tokio::time::timeout(WITHDRAW_WAIT, all).await.is_err() {
            warn!(addresses = ?addrs, "withdrawal not written to every peer within {WITHDRAW_WAIT:?}; removing the addresses anyway");
        }
    }
}

/// The process's one speaker (see [`Bgp`]), started by [`start_shared`]
/// before any mode runs, like the address guard.
static SPEAKER: std::sync::Mutex<Option<(Bgp, AbortOnDropHandle<()>)>> =
    std::sync::Mutex::new(None);
/// Its gate, for every mode that announces.
static GATE: std::sync::OnceLock<BgpGate> = std::sync::OnceLock::new();

/// Starts the process's speaker and its reporter (metrics, `/status`).
/// Called once, from `run`, when BGP mode is configured.
pub(crate) async fn start_shared(s: &BgpSettings, obs: &Obs) -> Result<(), BgpStartError> {
    let b = Bgp::start(s).await?;
    let mode = if s.leader_election { "leader" } else { "ecmp" };
    let report = spawn_reporter(b.gate(), obs.clone(), mode);
    let _ = GATE.set(b.gate());
    *SPEAKER.lock().unwrap_or_else(|p| p.into_inner()) = Some((b, report));
    Ok(())
}

/// The shared speaker's gate, once [`start_shared`] ran.
pub(crate) fn shared_gate() -> Option<BgpGate> {
    GATE.get().cloned()
}

/// Closes the shared speaker's sessions (withdraw all, Cease /
/// Administrative Shutdown with `message`); called once every mode has
/// withdrawn and removed its addresses.
pub(crate) async fn shutdown_shared(message: &str) {
    let taken = SPEAKER.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((b, _report)) = taken {
        b.shutdown(message).await;
    }
}

/// Keeps metrics and `/status` in step with the sessions: on every
/// change, and once a second so ages and counters stay fresh. Stops when
/// the handle drops (with the speaker, [`shutdown_shared`]).
fn spawn_reporter(gate: BgpGate, obs: Obs, mode: &'static str) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut rxs = gate.statuses.clone();
        let mut allowed = gate.allowed.subscribe();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            report(&gate, &rxs, &allowed.borrow_and_update(), &obs, mode);
            let any_change = async {
                if rxs.is_empty() {
                    // select_all panics on an empty list.
                    return std::future::pending().await;
                }
                let _ =
                    futures::future::select_all(rxs.iter_mut().map(|rx| Box::pin(rx.changed())))
                        .await;
            };
            tokio::select! {
                _ = tick.tick() => {}
                _ = allowed.changed() => {}
                () = any_change => {}
            }
        }
    }))
}

fn report(
    gate: &BgpGate,
    rxs: &[watch::Receiver<PeerStatus>],
    allowed: &BTreeSet<IpAddr>,
    obs: &Obs,
    mode: &'static str,
) {
    let now = tokio::time::Instant::now();
    let mut peers = Vec::new();
    for (rx, remote_as) in rxs.iter().zip(&gate.remote_as) {
        let st = rx.borrow().clone();
        let state = st.state.to_string();
        obs.metrics.bgp.observe_peer(&BgpPeerSample {
            peer: st.peer,
            state: &state,
            updates_sent: st.counters.updates_sent,
            updates_received: st.counters.updates_received,
            established: st.counters.established_count,
            advertised: st.advertised.len(),
            received: st.counters.received,
            bfd_state: st.bfd.map(|b| b.state.code()),
        });
        peers.push(BgpPeerEntry {
            peer: st.peer.to_string(),
            remote_as: *remote_as,
            state,
            state_age_ms: u64::try_from(now.saturating_duration_since(st.since).as_millis())
                .unwrap_or(u64::MAX),
            hold_time: st.negotiated.as_ref().map(|n| n.hold_time),
            keepalive: st.negotiated.as_ref().map(|n| n.keepalive),
            families: st
                .negotiated
                .as_ref()
                .map(|n| n.families.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            advertised: st.advertised.iter().map(ToString::to_string).collect(),
            received: u64::try_from(st.counters.received).unwrap_or(u64::MAX),
            updates_sent: st.counters.updates_sent,
            updates_received: st.counters.updates_received,
            last_error: st.counters.last_error.clone(),
            bfd: st.bfd.map(|b| BfdEntry {
                state: format!("{:?}", b.state),
                local_diag: format!("{:?}", b.local_diag),
                remote_state: format!("{:?}", b.remote_state),
                remote_diag: format!("{:?}", b.remote_diag),
                detection_time_ms: u64::try_from(b.detection_time.as_millis()).unwrap_or(u64::MAX),
            }),
        });
    }
    obs.status.set_bgp(
        BgpEntry {
            mode: mode.into(),
            announced: allowed
                .iter()
                .map(|a| Prefix::host(*a).to_string())
                .collect(),
            peers,
        },
        now,
    );
}

/// Why the speaker cannot start: a configuration problem only the running
/// system reveals (the router-ID interface has no IPv4 address, say).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BgpStartError {
    /// `bgp_routerinterface` could not give a router ID.
    #[error("bgp_routerinterface {name}: {problem}")]
    RouterInterface {
        /// The interface.
        name: String,
        /// What went wrong.
        problem: String,
    },
    /// An MP-BGP next-hop mode could not find its address.
    #[error("mpbgp_nexthop for peer {peer}: {problem}")]
    NextHop {
        /// The peer, redacted.
        peer: String,
        /// What went wrong.
        problem: String,
    },
}

impl Bgp {
    /// Resolves what needs the kernel (router ID from an interface, MP-BGP
    /// next hops) and starts one session per peer, announcing nothing
    /// until a holder allows it.
    /// VIP managers attach their bound sets through [`BgpGate::attach`].
    pub(crate) async fn start(s: &BgpSettings) -> Result<Bgp, BgpStartError> {
        let router_id = router_id(s).await?;
        let (allowed, allowed_rx) = watch::channel(BTreeSet::new());
        let (routes_tx, routes_rx) = watch::channel(BTreeSet::new());
        let registry = vipd_bfd::Bfd::new();
        let mut peers = Vec::new();
        for p in &s.peers {
            let (cfg, transport) = peer_config(s, p, router_id, &registry).await?;
            info!(peer = %transport.peer, remote_as = p.remote_as, bfd = p.bfd.is_some(), "starting BGP session");
            peers.push(Peer::spawn(cfg, transport, routes_rx.clone()));
        }
        let statuses = peers.iter().map(Peer::status).collect();
        let remote_as = s.peers.iter().map(|p| p.remote_as).collect();
        let (sources, sources_rx) = tokio::sync::mpsc::unbounded_channel();
        let forward = tokio::spawn(forward(allowed_rx, sources_rx, routes_tx));
        Ok(Bgp {
            gate: BgpGate {
                allowed: Arc::new(allowed),
                sources,
                statuses,
                remote_as,
            },
            peers,
            _forward: AbortOnDropHandle::new(forward),
        })
    }

    /// The holder's handle.
    pub(crate) fn gate(&self) -> BgpGate {
        self.gate.clone()
    }

    /// Graceful stop: withdraw everything, Cease / Administrative Shutdown
    /// with `message` (RFC 8203) to every router at once, BFD AdminDown.
    pub(crate) async fn shutdown(self, message: &str) {
        self.gate.allowed.send_replace(BTreeSet::new());
        let grace = Duration::from_secs(2);
        futures::future::join_all(self.peers.into_iter().map(|p| p.shutdown(message, grace))).await;
        info!("BGP sessions closed");
    }
}

/// Keeps the announced set at allowed ∩ (union of the attached bound sets).
async fn forward(
    mut allowed: watch::Receiver<BTreeSet<IpAddr>>,
    mut sources: tokio::sync::mpsc::UnboundedReceiver<watch::Receiver<BTreeSet<Vip>>>,
    routes: watch::Sender<BTreeSet<IpAddr>>,
) {
    let mut bound: Vec<watch::Receiver<BTreeSet<Vip>>> = Vec::new();
    let mut more = true;
    loop {
        let want: BTreeSet<IpAddr> = {
            let a = allowed.borrow_and_update();
            bound
                .iter_mut()
                .flat_map(|b| {
                    b.borrow_and_update()
                        .iter()
                        .map(|v| v.addr)
                        .collect::<Vec<_>>()
                })
                .filter(|x| a.contains(x))
                .collect()
        };
        routes.send_if_modified(|r| {
            let changed = *r != want;
            *r = want;
            changed
        });
        enum Woke {
            Allowed(bool),
            Source(Option<watch::Receiver<BTreeSet<Vip>>>),
            Bound(usize, bool),
        }
        let woke = {
            let any_bound = async {
                if bound.is_empty() {
                    // select_all panics on an empty list.
                    return std::future::pending().await;
                }
                let changed = bound
                    .iter_mut()
                    .enumerate()
                    .map(|(i, b)| Box::pin(async move { (i, b.changed().await.is_ok()) }));
                futures::future::select_all(changed).await.0
            };
            tokio::select! {
                r = allowed.changed() => Woke::Allowed(r.is_ok()),
                s = sources.recv(), if more => Woke::Source(s),
                (i, alive) = any_bound => Woke::Bound(i, alive),
            }
        };
        match woke {
            Woke::Allowed(false) => return,
            Woke::Allowed(true) | Woke::Bound(_, true) => {}
            Woke::Source(Some(rx)) => bound.push(rx),
            Woke::Source(None) => more = false,
            // A manager that stopped (its sender dropped) confirms nothing.
            Woke::Bound(i, false) => {
                bound.swap_remove(i);
            }
        }
    }
}

async fn router_id(s: &BgpSettings) -> Result<Ipv4Addr, BgpStartError> {
    match &s.router_id {
        RouterId::Fixed(id) => Ok(*id),
        RouterId::FromInterface(name) => {
            let err = |problem: String| BgpStartError::RouterInterface {
                name: name.clone(),
                problem,
            };
            let addrs = interface_addresses(name).await.map_err(err)?;
            addrs
                .into_iter()
                .find_map(|a| match a {
                    IpAddr::V4(v4) if !v4.is_loopback() => Some(v4),
                    _ => None,
                })
                .ok_or_else(|| err("has no IPv4 address to use as the router ID".into()))
        }
        // Refused by configuration until the node read is wired in.
        RouterId::FromNodeAnnotations => Err(BgpStartError::RouterInterface {
            name: "(node annotations)".into(),
            problem: "router ID from node annotations is not supported yet".into(),
        }),
    }
}

async fn interface_addresses(name: &str) -> Result<Vec<IpAddr>, String> {
    let nl = Netlink::new().map_err(|e| e.to_string())?;
    let link = nl.link_by_name(name).await.map_err(|e| e.to_string())?;
    let addrs = nl
        .addresses(link.ifindex)
        .await
        .map_err(|e| e.to_string())?;
    Ok(addrs.into_iter().map(|a| a.addr).collect())
}

fn usable(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v) => !v.is_loopback() && !v.is_link_local(),
        // fe80::/10 is not a next hop a router can use without a scope.
        IpAddr::V6(v) => !v.is_loopback() && (v.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// The session and transport of one peer, kube-vip's semantics.
async fn peer_config(
    s: &BgpSettings,
    p: &BgpPeer,
    router_id: Ipv4Addr,
    registry: &vipd_bfd::Bfd,
) -> Result<(vipd_bgp::Config, Transport), BgpStartError> {
    let mut cfg = vipd_bgp::Config::new(s.local_as, p.remote_as, router_id);
    cfg.hold_time = u16::try_from(s.hold_time.as_secs()).unwrap_or(u16::MAX);
    cfg.keepalive = u16::try_from(s.keepalive.as_secs()).unwrap_or(u16::MAX);
    cfg.seed = vipd_backoff::random_u64();
    let m = s.mpbgp_for(p);
    let nh_err = |problem: String| BgpStartError::NextHop {
        peer: p.redacted(),
        problem,
    };
    match m.nexthop {
        None => {}
        Some(MpbgpNexthop::Fixed) => {
            cfg.next_hop_v4 = m.ipv4;
            cfg.next_hop_v6 = m.ipv6;
        }
        Some(MpbgpNexthop::AutoSourceIf) => {
            let name = s.source_if.clone().unwrap_or_default();
            let addrs = interface_addresses(&name).await.map_err(nh_err)?;
            fill_next_hops(&mut cfg, &addrs);
        }
        Some(MpbgpNexthop::AutoSourceIp) => {
            let ip = s
                .source_ip
                .ok_or_else(|| nh_err("bgp_sourceip is not set".into()))?;
            let addrs = addresses_beside(ip).await.map_err(nh_err)?;
            fill_next_hops(&mut cfg, &[ip]);
            fill_next_hops(&mut cfg, &addrs);
        }
    }
    let internal = s.local_as == p.remote_as;
    let transport = Transport {
        peer: SocketAddr::new(p.address, p.port),
        source_ip: s.source_ip,
        source_if: s.source_if.clone(),
        // eBGP to a neighbour: one hop (RFC 4271 §5.1.3's default, as
        // GoBGP); multihop: kube-vip's 50; iBGP: the kernel's usual 64.
        ttl: if p.multihop {
            MULTIHOP_TTL
        } else if internal {
            64
        } else {
            1
        },
        md5_key: p
            .password
            .as_ref()
            .and_then(|pw| Md5Key::new(pw.expose().as_bytes())),
        bfd: p.bfd.map(|b| {
            (
                registry.clone(),
                vipd_bfd::BfdConfig {
                    desired_min_tx: Duration::from_millis(u64::from(b.tx_ms)),
                    required_min_rx: Duration::from_millis(u64::from(b.rx_ms)),
                    detect_mult: b.mult,
                },
            )
        }),
    };
    Ok((cfg, transport))
}

/// The first usable address of each family not set yet.
fn fill_next_hops(cfg: &mut vipd_bgp::Config, addrs: &[IpAddr]) {
    for a in addrs.iter().filter(|a| usable(a)) {
        match a {
            IpAddr::V4(v) if cfg.next_hop_v4.is_none() => cfg.next_hop_v4 = Some(*v),
            IpAddr::V6(v) if cfg.next_hop_v6.is_none() => cfg.next_hop_v6 = Some(*v),
            _ => {}
        }
    }
}

/// Addresses on the interface that holds `ip` (kube-vip `auto_sourceip`).
async fn addresses_beside(ip: IpAddr) -> Result<Vec<IpAddr>, String> {
    let nl = Netlink::new().map_err(|e| e.to_string())?;
    let all = nl.all_addresses().await.map_err(|e| e.to_string())?;
    let Some((ifindex, _)) = all.iter().find(|(_, a)| a.addr == ip) else {
        return Err(format!("no interface has bgp_sourceip {ip}"));
    };
    Ok(all
        .iter()
        .filter(|(i, _)| i == ifindex)
        .map(|(_, a)| a.addr)
        .collect())
}
