//! The tokio shell: RFC 5881 sockets, one receive endpoint per local
//! address shared by its sessions, one task per session around the
//! [`Session`] core.
//!
//! RFC 5881 rules applied here:
//! - §4: Control packets go to UDP port 3784, from a source port in
//!   49152–65535 that stays the same for the life of the session (one
//!   bound send socket per session).
//! - §5 (GTSM): packets are sent with TTL / Hop Limit 255 and received
//!   packets with any other TTL are discarded. The check is done in user
//!   space, per packet, from the `IP_TTL` / `IPV6_HOPLIMIT` ancillary data
//!   (`IP_RECVTTL` / `IPV6_RECVHOPLIMIT`, set through nix's safe wrappers).
//!   The kernel-side filter (`IP_MINTTL` / `IPV6_MINHOPCOUNT`) would drop
//!   them earlier, but neither socket2 0.6 nor nix 0.31 exposes it and this
//!   crate forbids `unsafe`; the effect on the session is the same.
//! - §3: a packet with Your Discriminator 0 is matched to a session by its
//!   source address; otherwise by Your Discriminator, and the source must
//!   still be that session's peer.
//!
//! IPv6 link-local peers are not supported (they need an interface scope;
//! BGP peers use global addresses here).

use crate::packet::ControlPacket;
use crate::session::{Action, BfdConfig, ConfigError, Input, Session, Status, ADMIN_DOWN_PACKETS};
use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

/// RFC 5881 §4: destination port of single-hop Control packets.
pub const CONTROL_PORT: u16 = 3784;
/// RFC 5881 §4: the source port range.
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;
/// RFC 5881 §5: the only TTL / Hop Limit sent and accepted.
pub const TTL: u8 = 255;
/// IP precedence "internetwork control" (0xc0), as routers mark BFD.
const TOS_NETWORK_CONTROL: u32 = 0xc0;
/// Packets queued per session between the receive loop and its task; more
/// are dropped (a session reads a packet in microseconds).
const SESSION_QUEUE: usize = 32;
/// Pause after a receive error before trying again (no busy loop).
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Errors starting a session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The timers cannot be advertised.
    #[error("BFD session {local} -> {peer}: {source}")]
    Config {
        /// Local address.
        local: IpAddr,
        /// Peer address.
        peer: IpAddr,
        /// What is wrong.
        source: ConfigError,
    },
    /// Local and peer addresses are of different families.
    #[error("BFD session {local} -> {peer}: address families differ")]
    Family {
        /// Local address.
        local: IpAddr,
        /// Peer address.
        peer: IpAddr,
    },
    /// A session to this peer from this local address already exists.
    #[error("BFD session {local} -> {peer} already exists")]
    Duplicate {
        /// Local address.
        local: IpAddr,
        /// Peer address.
        peer: IpAddr,
    },
    /// A socket operation failed.
    #[error("BFD {what} on {addr}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The address involved.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Receive-side counters of one local address.
#[derive(Debug, Default)]
pub struct RxStats {
    /// Packets handed to a session.
    pub delivered: AtomicU64,
    /// Discarded: TTL / Hop Limit not 255, or missing (RFC 5881 §5).
    pub bad_ttl: AtomicU64,
    /// Discarded by the decoder (§6.8.6 packet checks).
    pub malformed: AtomicU64,
    /// Discarded: no session matches (§6.8.6 "If the Your Discriminator
    /// field is nonzero... no session is found, discard").
    pub unmatched: AtomicU64,
}

struct Route {
    peer: IpAddr,
    tx: mpsc::Sender<ControlPacket>,
}

#[derive(Default)]
struct Demux {
    by_disc: HashMap<u32, Route>,
    by_peer: HashMap<IpAddr, u32>,
}

impl Demux {
    fn route(&self, src: IpAddr, your_disc: u32) -> Option<&Route> {
        let disc = if your_disc != 0 {
            your_disc
        } else {
            *self.by_peer.get(&src)?
        };
        self.by_disc.get(&disc).filter(|r| r.peer == src)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One local address's receive socket and its demultiplexer. The receive
/// task is aborted when the last session using it is dropped.
struct Endpoint {
    local: IpAddr,
    demux: Arc<Mutex<Demux>>,
    stats: Arc<RxStats>,
    task: JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Default)]
struct Registry {
    endpoints: HashMap<IpAddr, Weak<Endpoint>>,
    discs: HashSet<u32>,
    counter: u64,
}

/// Starts BFD sessions; shares one receive socket per local address
/// between them. Cheap to clone. Not a global: the daemon owns one.
#[derive(Clone)]
pub struct Bfd {
    registry: Arc<Mutex<Registry>>,
    hasher: RandomState,
}

impl std::fmt::Debug for Bfd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bfd").finish_non_exhaustive()
    }
}

impl Default for Bfd {
    fn default() -> Self {
        Bfd::new()
    }
}

impl Bfd {
    /// An empty registry.
    pub fn new() -> Bfd {
        Bfd {
            registry: Arc::default(),
            hasher: RandomState::new(),
        }
    }

    /// Fresh random bits (std's per-process random hash keys; no rand crate).
    fn random(&self, reg: &mut Registry) -> u64 {
        reg.counter += 1;
        self.hasher.hash_one(reg.counter)
    }

    /// Starts a session from `local` (the BGP session's local address) to
    /// `peer`. Must be called within a tokio runtime: it spawns the
    /// session's task (and, for a new local address, the receive task).
    pub fn start(&self, local: IpAddr, peer: IpAddr, cfg: BfdConfig) -> Result<BfdSession, Error> {
        if local.is_ipv4() != peer.is_ipv4() {
            return Err(Error::Family { local, peer });
        }
        cfg.validate().map_err(|source| Error::Config {
            local,
            peer,
            source,
        })?;
        let mut reg = lock(&self.registry);
        let endpoint = match reg.endpoints.get(&local).and_then(Weak::upgrade) {
            Some(e) => e,
            None => {
                let e = Arc::new(Endpoint::bind(local)?);
                reg.endpoints.insert(local, Arc::downgrade(&e));
                e
            }
        };
        if lock(&endpoint.demux).by_peer.contains_key(&peer) {
            return Err(Error::Duplicate { local, peer });
        }
        // §6.8.1: a non-zero discriminator unique on this system.
        let disc = loop {
            let d = self.random(&mut reg) as u32;
            if d != 0 && !reg.discs.contains(&d) {
                break d;
            }
        };
        let port_seed = self.random(&mut reg);
        let seed = self.random(&mut reg);
        let sock = tx_socket(local, port_seed)?;
        reg.discs.insert(disc);
        drop(reg);

        let core =
            Session::new(cfg, disc, seed, Instant::now()).map_err(|source| Error::Config {
                local,
                peer,
                source,
            })?;
        let (pkt_tx, pkt_rx) = mpsc::channel(SESSION_QUEUE);
        {
            let mut d = lock(&endpoint.demux);
            d.by_disc.insert(disc, Route { peer, tx: pkt_tx });
            d.by_peer.insert(peer, disc);
        }
        let (status_tx, status_rx) = watch::channel(core.status());
        let (cmd_tx, cmd_rx) = mpsc::channel(4);
        let span = tracing::info_span!("bfd", %local, %peer, disc);
        let task = tokio::spawn(tracing::Instrument::instrument(
            run_session(
                core,
                sock,
                SocketAddr::new(peer, CONTROL_PORT),
                pkt_rx,
                cmd_rx,
                status_tx,
            ),
            span,
        ));
        Ok(BfdSession {
            local,
            peer,
            disc,
            status: status_rx,
            cmd: cmd_tx,
            task,
            endpoint,
            registry: Arc::clone(&self.registry),
        })
    }
}

/// A running session. Dropping it aborts the task at once (the peer then
/// sees a detection timeout, as after a crash); [`BfdSession::shutdown`]
/// stops it gracefully (the peer sees AdminDown, diag 7).
pub struct BfdSession {
    local: IpAddr,
    peer: IpAddr,
    disc: u32,
    status: watch::Receiver<Status>,
    cmd: mpsc::Sender<Cmd>,
    task: JoinHandle<()>,
    endpoint: Arc<Endpoint>,
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for BfdSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BfdSession")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("disc", &self.disc)
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

enum Cmd {
    Shutdown(oneshot::Sender<Status>),
    Configure(BfdConfig),
}

impl BfdSession {
    /// The peer address.
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// The local address.
    pub fn local(&self) -> IpAddr {
        self.local
    }

    /// The current status.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver that changes with every status change (state, diag,
    /// timers). Check [`Status::transitions`] to notice flaps that happened
    /// between two reads.
    pub fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Receive counters of this session's local address (shared with the
    /// other sessions on it).
    pub fn rx_stats(&self) -> &RxStats {
        &self.endpoint.stats
    }

    /// Changes the timers (a Poll Sequence when Up, §6.8.3). Invalid values
    /// are ignored by the core; validate first.
    pub async fn configure(&self, cfg: BfdConfig) {
        let _ = self.cmd.send(Cmd::Configure(cfg)).await;
    }

    /// Graceful stop: AdminDown (diag 7), [`ADMIN_DOWN_PACKETS`] packets one
    /// transmit interval apart, then the task ends. Returns the final
    /// status, or `None` if the task had already gone (it is aborted
    /// either way). Bounded by the AdminDown burst plus one second.
    pub async fn shutdown(self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        let bound =
            self.status().tx_interval * u32::from(ADMIN_DOWN_PACKETS) + Duration::from_secs(1);
        if self.cmd.send(Cmd::Shutdown(tx)).await.is_err() {
            return None;
        }
        tokio::time::timeout(bound, rx)
            .await
            .ok()
            .and_then(Result::ok)
    }
}

impl Drop for BfdSession {
    fn drop(&mut self) {
        self.task.abort();
        {
            let mut d = lock(&self.endpoint.demux);
            d.by_disc.remove(&self.disc);
            d.by_peer.remove(&self.peer);
        }
        lock(&self.registry).discs.remove(&self.disc);
    }
}

fn io_err(what: &'static str, addr: SocketAddr) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, addr, source }
}

impl Endpoint {
    fn bind(local: IpAddr) -> Result<Endpoint, Error> {
        let addr = SocketAddr::new(local, CONTROL_PORT);
        let sock = rx_socket(addr).map_err(io_err("receive socket", addr))?;
        let sock = UdpSocket::from_std(sock).map_err(io_err("register receive socket", addr))?;
        let demux = Arc::new(Mutex::new(Demux::default()));
        let stats = Arc::new(RxStats::default());
        // Owned by the Endpoint: aborted in its Drop.
        let task = tokio::spawn(rx_loop(sock, Arc::clone(&demux), Arc::clone(&stats)));
        Ok(Endpoint {
            local,
            demux,
            stats,
            task,
        })
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.local)
            .finish()
    }
}

fn rx_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
        nsock::setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
    } else {
        nsock::setsockopt(&s, sockopt::Ipv4RecvTtl, &true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A send socket bound to `local` and a free port of [`SOURCE_PORTS`],
/// TTL / Hop Limit 255 (RFC 5881 §4, §5).
fn tx_socket(local: IpAddr, seed: u64) -> Result<UdpSocket, Error> {
    let first = SocketAddr::new(local, *SOURCE_PORTS.start());
    let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    let mut last_err = None;
    for i in 0..span.min(256) {
        let port = *SOURCE_PORTS.start() + ((seed.wrapping_add(i * 7919)) % span) as u16;
        let addr = SocketAddr::new(local, port);
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .map_err(io_err("send socket", addr))?;
        let set = if local.is_ipv6() {
            s.set_only_v6(true)
                .and_then(|()| s.set_unicast_hops_v6(u32::from(TTL)))
                .and_then(|()| s.set_tclass_v6(TOS_NETWORK_CONTROL))
        } else {
            s.set_ttl_v4(u32::from(TTL))
                .and_then(|()| s.set_tos_v4(TOS_NETWORK_CONTROL))
        };
        set.and_then(|()| s.set_nonblocking(true))
            .map_err(io_err("send socket options", addr))?;
        match s.bind(&addr.into()) {
            Ok(()) => {
                return UdpSocket::from_std(s.into()).map_err(io_err("register send socket", addr))
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_err = Some(e),
            Err(e) => return Err(io_err("bind send socket", addr)(e)),
        }
    }
    Err(io_err("no free source port", first)(
        last_err.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)),
    ))
}

fn to_socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    s.as_sockaddr_in()
        .map(|a| SocketAddr::from(std::net::SocketAddrV4::from(*a)))
        .or_else(|| {
            s.as_sockaddr_in6()
                .map(|a| SocketAddr::from(std::net::SocketAddrV6::from(*a)))
        })
}

/// One datagram: length, source, TTL / Hop Limit if the kernel reported it.
fn recv_one(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, Option<i32>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = nsock::recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let ttl = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => Some(t),
        _ => None,
    });
    Ok((
        msg.bytes,
        msg.address.as_ref().and_then(to_socket_addr),
        ttl,
    ))
}

async fn rx_loop(sock: UdpSocket, demux: Arc<Mutex<Demux>>, stats: Arc<RxStats>) {
    let mut buf = [0u8; 1500];
    let mut cmsg = nix::cmsg_space!(i32);
    loop {
        let r = sock
            .async_io(Interest::READABLE, || recv_one(&sock, &mut buf, &mut cmsg))
            .await;
        let (len, src, ttl) = match r {
            Ok(v) => v,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "BFD receive failed");
                tokio::time::sleep(RECV_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some(src) = src else { continue };
        // RFC 5881 §5: anything not sent with TTL 255 crossed a router (or
        // was forged off-link): discard.
        if ttl != Some(i32::from(TTL)) {
            stats.bad_ttl.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%src, ?ttl, "BFD packet with TTL != 255 discarded");
            continue;
        }
        let pkt = match ControlPacket::decode(buf.get(..len).unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%src, error = %e, "BFD packet discarded");
                continue;
            }
        };
        let sent = lock(&demux)
            .route(src.ip(), pkt.your_disc)
            .map(|r| r.tx.try_send(pkt).is_ok());
        match sent {
            Some(true) => stats.delivered.fetch_add(1, Ordering::Relaxed),
            _ => stats.unmatched.fetch_add(1, Ordering::Relaxed),
        };
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn run_session(
    mut core: Session,
    sock: UdpSocket,
    peer: SocketAddr,
    mut packets: mpsc::Receiver<ControlPacket>,
    mut cmds: mpsc::Receiver<Cmd>,
    status: watch::Sender<Status>,
) {
    let mut shutdown_reply = None;
    loop {
        let input = tokio::select! {
            () = sleep_until_opt(core.next_deadline()) => Input::Timer,
            Some(p) = packets.recv() => Input::Packet(p),
            c = cmds.recv() => match c {
                Some(Cmd::Shutdown(reply)) => {
                    shutdown_reply = Some(reply);
                    Input::Shutdown
                }
                Some(Cmd::Configure(cfg)) => Input::Configure(cfg),
                // The handle is gone (it aborts us anyway).
                None => return,
            },
        };
        for action in core.handle(Instant::now(), input) {
            match action {
                Action::Send(p) => {
                    if let Err(e) = sock.send_to(&p.encode(), peer).await {
                        // Unreachable peers are what BFD reports through its
                        // state, not through logs: one line per state change.
                        tracing::debug!(error = %e, "BFD send failed");
                    }
                }
                Action::StateChanged { from, to, diag } => {
                    tracing::info!(
                        from = from.label(),
                        to = to.label(),
                        ?diag,
                        remote_diag = ?core.status().remote_diag,
                        "BFD session state changed"
                    );
                }
            }
        }
        let now = core.status();
        status.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
        if core.shutdown_complete() {
            if let Some(reply) = shutdown_reply.take() {
                let _ = reply.send(now);
            }
            return;
        }
    }
}
