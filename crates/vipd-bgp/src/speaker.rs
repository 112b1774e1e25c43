//! The thin tokio shell around one [`Session`]: it owns the TCP
//! connection, sleeps until the session's next deadline and executes its
//! actions. All protocol decisions are the core's.
//!
//! ```text
//!   routes (watch) ──┐
//!   commands (mpsc) ─┼─► peer task ──► Session::handle ──► actions
//!   TCP bytes ───────┘        │                              │
//!                             └──── status (watch) ◄─────────┘
//! ```
//!
//! One task per peer; every peer of a node watches the same routes
//! channel, so a change reaches all routers at once. The task is owned by
//! its [`Peer`] handle and aborted when the handle is dropped;
//! [`Peer::shutdown`] is the graceful path (withdraw, Cease, close).

use std::collections::BTreeSet;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;
use vipd_bfd::{Bfd, BfdConfig, BfdSession, State as BfdState, Status as BfdStatus};

use crate::packet::Prefix;
use crate::session::{Action, Config, Input, Negotiated, Session, State, Status};

/// BGP's well-known port (RFC 4271 §8.2.1).
pub const BGP_PORT: u16 = 179;

/// How vipd reaches one router.
#[derive(Debug, Clone)]
pub struct Transport {
    /// The router's address and port.
    pub peer: SocketAddr,
    /// Local address to connect from (kube-vip `bgp_sourceip`).
    pub source_ip: Option<IpAddr>,
    /// Interface to bind to (kube-vip `bgp_sourceif`): the route to the
    /// peer must leave through it.
    pub source_if: Option<String>,
    /// IP TTL / hop limit of our packets: 1 for a directly connected eBGP
    /// peer (RFC 4271 §5.1.3's "one hop" default, as GoBGP does), 255 for
    /// multihop (kube-vip `bgp_multihop`) or iBGP.
    pub ttl: u32,
    /// TCP MD5 signature key (RFC 2385, kube-vip `bgp_peerpass`).
    pub md5_key: Option<Md5Key>,
    /// BFD to the peer (kube-vip's 7th `bgp_peers` field): the registry
    /// shared by all peers of the node, and the timers.
    pub bfd: Option<(Bfd, BfdConfig)>,
}

/// A TCP MD5 key; `Debug` never shows it (SPEC §6: no secrets in logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Md5Key(Vec<u8>);

impl Md5Key {
    /// A key of 1–80 bytes (the kernel's limit); `None` otherwise.
    pub fn new(key: &[u8]) -> Option<Self> {
        (!key.is_empty() && key.len() <= vipd_sys::tcp::MAX_KEY_LEN).then(|| Self(key.to_vec()))
    }
}

impl std::fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Md5Key(redacted)")
    }
}

impl Transport {
    /// A directly connected peer on port 179.
    pub fn direct(peer: IpAddr) -> Self {
        Self {
            peer: SocketAddr::new(peer, BGP_PORT),
            source_ip: None,
            source_if: None,
            ttl: 1,
            md5_key: None,
            bfd: None,
        }
    }
}

/// What the peer task publishes after every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The router.
    pub peer: SocketAddr,
    /// Session state.
    pub state: State,
    /// When `state` was entered.
    pub since: Instant,
    /// What was negotiated (OpenConfirm, Established).
    pub negotiated: Option<Negotiated>,
    /// Prefixes the router has been told about (Adj-RIB-Out).
    pub advertised: Vec<Prefix>,
    /// Counters.
    pub counters: Status,
    /// The BFD session's view, when BFD is configured and started.
    pub bfd: Option<BfdStatus>,
}

enum Command {
    Down(String),
    Stop(String, oneshot::Sender<()>),
}

/// Handle of one running peer task. Dropping it aborts the task (the
/// kernel then closes the connection: the router notices at once, or at
/// its hold time if the path is dead).
#[derive(Debug)]
pub struct Peer {
    status: watch::Receiver<PeerStatus>,
    commands: mpsc::Sender<Command>,
    task: AbortOnDropHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Down(r) => write!(f, "Down({r})"),
            Command::Stop(m, _) => write!(f, "Stop({m})"),
        }
    }
}

impl Peer {
    /// Starts the session (it connects at once) with the routes in
    /// `routes`, following every change.
    pub fn spawn(
        cfg: Config,
        transport: Transport,
        routes: watch::Receiver<BTreeSet<IpAddr>>,
    ) -> Self {
        let now = Instant::now();
        let (status_tx, status) = watch::channel(PeerStatus {
            peer: transport.peer,
            state: State::Idle,
            since: now,
            negotiated: None,
            advertised: Vec::new(),
            counters: Status::default(),
            bfd: None,
        });
        let (commands, rx) = mpsc::channel(8);
        let task = PeerTask {
            session: Session::new(cfg),
            transport,
            routes,
            commands: rx,
            status: status_tx,
            conn: None,
            connecting: None,
            buf: vec![0u8; 16 * 1024],
            bfd: None,
            bfd_up: false,
        };
        let span = tracing::info_span!("bgp", peer = %task.transport.peer);
        let task = AbortOnDropHandle::new(tokio::spawn(task.run().instrument(span)));
        Self {
            status,
            commands,
            task,
        }
    }

    /// A receiver of the peer's status.
    pub fn status(&self) -> watch::Receiver<PeerStatus> {
        self.status.clone()
    }

    /// Drops the session now (BFD down, or the shell knows the path is
    /// dead); it reconnects after the back-off.
    pub async fn down(&self, reason: &str) {
        // A closed channel means the task is gone: nothing to drop.
        let _ = self.commands.send(Command::Down(reason.to_owned())).await;
    }

    /// Graceful stop: withdraw every route, send Cease / Administrative
    /// Shutdown with `message` (RFC 8203), wait until the bytes are handed
    /// to the kernel and the connection is closed, at most `grace`.
    pub async fn shutdown(self, message: &str, grace: Duration) {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Stop(message.to_owned(), tx))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(grace, rx).await;
        }
        drop(self.task);
    }

    /// Whether the task ended (only by panic: it runs until shut down).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

type Connecting = Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>>;

struct PeerTask {
    session: Session,
    transport: Transport,
    routes: watch::Receiver<BTreeSet<IpAddr>>,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<PeerStatus>,
    conn: Option<(OwnedReadHalf, OwnedWriteHalf)>,
    connecting: Option<Connecting>,
    buf: Vec<u8>,
    /// Started at the first connect, once our local address is known, and
    /// kept across BGP reconnects (it is the path's health, not the
    /// session's).
    bfd: Option<(BfdSession, watch::Receiver<BfdStatus>)>,
    /// BFD has been Up since the BGP session last dropped for it.
    bfd_up: bool,
}

/// What woke the task.
enum Wake {
    Tick,
    Connected(io::Result<TcpStream>),
    Read(io::Result<usize>),
    Routes,
    RoutesGone,
    Bfd,
    Command(Option<Command>),
}

impl PeerTask {
    async fn run(mut self) {
        let routes = self.routes.borrow_and_update().clone();
        self.step(Input::Routes(&routes)).await;
        self.step(Input::Start).await;
        let mut routes_open = true;
        loop {
            let deadline = self.session.next_deadline();
            let wake = tokio::select! {
                () = sleep_until(deadline) => Wake::Tick,
                r = connect_done(&mut self.connecting) => Wake::Connected(r),
                r = read_some(&mut self.conn, &mut self.buf) => Wake::Read(r),
                r = self.routes.changed(), if routes_open => match r {
                    Ok(()) => Wake::Routes,
                    Err(_) => Wake::RoutesGone,
                },
                () = bfd_changed(&mut self.bfd) => Wake::Bfd,
                c = self.commands.recv() => Wake::Command(c),
            };
            match wake {
                Wake::Tick => self.step(Input::Tick).await,
                Wake::Connected(Ok(stream)) => {
                    self.connecting = None;
                    match stream.local_addr() {
                        Ok(local) => {
                            self.start_bfd(local.ip());
                            let _ = stream.set_nodelay(true);
                            self.conn = Some(stream.into_split());
                            self.step(Input::Connected { local: local.ip() }).await;
                        }
                        Err(_) => self.step(Input::ConnectFailed).await,
                    }
                }
                Wake::Connected(Err(e)) => {
                    self.connecting = None;
                    tracing::debug!(error = %e, "BGP connect failed");
                    self.step(Input::ConnectFailed).await;
                }
                Wake::Read(Ok(0)) | Wake::Read(Err(_)) => {
                    self.conn = None;
                    self.step(Input::Closed).await;
                }
                Wake::Read(Ok(n)) => {
                    let bytes = self.buf[..n].to_vec();
                    self.step(Input::Received(&bytes)).await;
                }
                Wake::Routes => {
                    let routes = self.routes.borrow_and_update().clone();
                    self.step(Input::Routes(&routes)).await;
                }
                // The owner dropped the routes channel: keep the last set.
                Wake::RoutesGone => routes_open = false,
                Wake::Bfd => self.bfd_changed().await,
                Wake::Command(Some(Command::Down(why))) => self.step(Input::Down(why)).await,
                Wake::Command(Some(Command::Stop(msg, done))) => {
                    // Routes withdrawn and Cease sent first, then BFD's
                    // AdminDown (RFC 5882 §3.2: the router must not read
                    // our stop as a path failure).
                    self.step(Input::Stop(msg)).await;
                    if let Some((b, _)) = self.bfd.take() {
                        b.shutdown().await;
                    }
                    let _ = done.send(());
                    return;
                }
                // The handle is gone (it aborts the task on drop, so this
                // is only reached in a race): stop quietly.
                Wake::Command(None) => return,
            }
        }
    }

    fn start_bfd(&mut self, local: IpAddr) {
        let Some((bfd, cfg)) = &self.transport.bfd else {
            return;
        };
        if self.bfd.as_ref().is_some_and(|(b, _)| b.local() == local) {
            return;
        }
        match bfd.start(local, self.transport.peer.ip(), *cfg) {
            Ok(b) => {
                let rx = b.subscribe();
                self.bfd = Some((b, rx));
            }
            Err(e) => tracing::warn!(error = %e, "BFD session not started; BGP runs without it"),
        }
    }

    /// RFC 5882 §3.2: BFD leaving Up tears the BGP session down at once,
    /// unless the peer said AdminDown (then it is not a path failure).
    async fn bfd_changed(&mut self) {
        let Some((_, rx)) = self.bfd.as_mut() else {
            return;
        };
        let st = *rx.borrow_and_update();
        self.status.send_modify(|s| s.bfd = Some(st));
        if st.state == BfdState::Up {
            if !self.bfd_up {
                tracing::info!("BFD up");
            }
            self.bfd_up = true;
        } else if self.bfd_up {
            self.bfd_up = false;
            if st.remote_state == BfdState::AdminDown {
                tracing::info!("BFD: the router shut its session down administratively");
            } else {
                tracing::warn!(diag = ?st.local_diag, "BFD down: dropping the BGP session");
                self.step(Input::Down(format!("BFD down ({:?})", st.local_diag)))
                    .await;
            }
        }
    }

    /// Feeds one input and executes the actions in order.
    async fn step(&mut self, input: Input<'_>) {
        let actions = self.session.handle(Instant::now(), input);
        for a in actions {
            match a {
                Action::Connect => {
                    self.conn = None;
                    self.connecting = Some(Box::pin(connect(self.transport.clone())));
                }
                Action::Send(bytes) => {
                    if let Some((_, w)) = self.conn.as_mut() {
                        if let Err(e) = w.write_all(&bytes).await {
                            tracing::debug!(error = %e, "BGP write failed");
                            // The read side reports the close next.
                        }
                    }
                }
                Action::Close => {
                    self.connecting = None;
                    if let Some((_, mut w)) = self.conn.take() {
                        // FIN after what was written, so a NOTIFICATION
                        // arrives before the close.
                        let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
                    }
                }
                Action::StateChanged { from, to, reason } => {
                    if to == State::Established {
                        tracing::info!(%from, %to, %reason, "BGP session established");
                    } else if from == State::Established {
                        tracing::warn!(%from, %to, %reason, "BGP session lost");
                    } else {
                        tracing::debug!(%from, %to, %reason, "BGP session state");
                    }
                    self.status.send_modify(|s| s.since = Instant::now());
                }
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let s = &self.session;
        self.status.send_if_modified(|st| {
            let next = PeerStatus {
                peer: st.peer,
                state: s.state(),
                since: st.since,
                negotiated: s.negotiated().cloned(),
                advertised: s.advertised().iter().copied().collect(),
                counters: s.status().clone(),
                bfd: st.bfd,
            };
            let changed = *st != next;
            *st = next;
            changed
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn bfd_changed(b: &mut Option<(BfdSession, watch::Receiver<BfdStatus>)>) {
    match b.as_mut() {
        // A closed channel (the BFD task ended) is not a change.
        Some((_, rx)) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn connect_done(c: &mut Option<Connecting>) -> io::Result<TcpStream> {
    match c.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn read_some(
    conn: &mut Option<(OwnedReadHalf, OwnedWriteHalf)>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match conn.as_mut() {
        Some((r, _)) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// Opens the TCP connection with the socket options set *before* the SYN:
/// TTL, MD5 key, source address and interface.
async fn connect(t: Transport) -> io::Result<TcpStream> {
    let domain = Domain::for_address(t.peer);
    let sock = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    match t.peer {
        SocketAddr::V4(_) => sock.set_ttl_v4(t.ttl)?,
        SocketAddr::V6(_) => sock.set_unicast_hops_v6(t.ttl)?,
    }
    if let Some(key) = &t.md5_key {
        // Before connect: the SYN itself must be signed.
        vipd_sys::tcp::set_md5_key(&sock, t.peer, &key.0)?;
    }
    if let Some(dev) = &t.source_if {
        sock.bind_device(Some(dev.as_bytes()))?;
    }
    if let Some(ip) = t.source_ip {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    sock.set_nonblocking(true)?;
    let std: std::net::TcpStream = sock.into();
    TcpSocket::from_std_stream(std).connect(t.peer).await
}
