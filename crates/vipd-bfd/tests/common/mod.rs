//! Helpers shared by the namespace tests: a BFD shell running on its own
//! thread (entered into a namespace) with a current-thread runtime,
//! driven from the synchronous test.

#![allow(dead_code, clippy::unwrap_used)]

use netlab::NetNs;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use vipd_bfd::{Bfd, BfdConfig, Status};

/// Receive counters: delivered, bad TTL, malformed, unmatched.
pub type Counters = [u64; 4];

enum Cmd {
    /// Drop the session: the task is aborted, nothing more is sent.
    Kill,
    Shutdown(oneshot::Sender<Option<Status>>),
    Counters(oneshot::Sender<Counters>),
}

/// One vipd-bfd shell in a namespace.
pub struct Node {
    cmd: mpsc::UnboundedSender<Cmd>,
    pub status: watch::Receiver<Status>,
    thread: Option<std::thread::JoinHandle<Result<(), netlab::Error>>>,
}

impl Node {
    pub fn start(ns: &NetNs, local: IpAddr, peer: IpAddr, cfg: BfdConfig) -> Node {
        let (cmd, mut cmds) = mpsc::unbounded_channel();
        let (st_tx, st_rx) = std::sync::mpsc::channel();
        let thread = ns
            .spawn_in(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let bfd = Bfd::new();
                    let s = bfd.start(local, peer, cfg).unwrap();
                    st_tx.send(s.subscribe()).unwrap();
                    while let Some(c) = cmds.recv().await {
                        match c {
                            Cmd::Kill => return,
                            Cmd::Shutdown(r) => {
                                let _ = r.send(s.shutdown().await);
                                return;
                            }
                            Cmd::Counters(r) => {
                                let st = s.rx_stats();
                                let _ = r.send([
                                    st.delivered.load(Ordering::Relaxed),
                                    st.bad_ttl.load(Ordering::Relaxed),
                                    st.malformed.load(Ordering::Relaxed),
                                    st.unmatched.load(Ordering::Relaxed),
                                ]);
                            }
                        }
                    }
                })
            })
            .unwrap();
        let status = st_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        Node {
            cmd,
            status,
            thread: Some(thread),
        }
    }

    /// Drops the session (a crash, as far as the peer can tell).
    pub fn kill(mut self) {
        let _ = self.cmd.send(Cmd::Kill);
        self.join();
    }

    /// Graceful stop; returns the final status.
    pub fn shutdown(mut self) -> Option<Status> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::Shutdown(tx)).ok()?;
        let r = rx.blocking_recv().ok().flatten();
        self.join();
        r
    }

    pub fn counters(&self) -> Counters {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Cmd::Counters(tx)).unwrap();
        rx.blocking_recv().unwrap()
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Waits (polling every 1 ms) until `pred` holds; returns how long it took.
    pub fn wait(&self, limit: Duration, pred: impl Fn(&Status) -> bool) -> Option<Duration> {
        wait_status(&self.status, limit, pred)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Kill);
        self.join();
    }
}

/// Polls a status receiver every millisecond until `pred` holds.
pub fn wait_status(
    rx: &watch::Receiver<Status>,
    limit: Duration,
    pred: impl Fn(&Status) -> bool,
) -> Option<Duration> {
    wait_for(limit, || pred(&rx.borrow()))
}

/// Polls `f` every millisecond until it is true or `limit` passes.
pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
