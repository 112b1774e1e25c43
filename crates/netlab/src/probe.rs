//! Client-observed service measurement: a TCP [`Responder`] per server
//! namespace that answers with the host's name, a [`Prober`] in the client
//! namespace that asks the VIP every few milliseconds, and pure analysis
//! functions over the recorded [`Sample`]s.
//!
//! ```text
//!   [client ns] Prober ──TCP SYN to VIP:port every 10 ms──► whichever node holds the VIP
//!                     ◄── "n2\n" ───────────────────────── Responder in that node's ns
//! ```
//!
//! Everything here is plain std threads: netlab is shared by the test suite
//! and `vipd lab`, and must not drag an async runtime in.
//!
//! Time: the lab measures real elapsed time of real processes, so it reads
//! the OS monotonic clock through [`LabClock`]. This is the only place that
//! uses `std::time::Instant`; the daemon's logic never does (it uses tokio's
//! pausable clock, see `.clippy.toml`).

use crate::ns::{Error, NetNs};
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::Range;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A monotonic clock shared by every probe and watcher of one scenario, so
/// their timestamps ([`Duration`] since the clock's creation) compare.
// The lab measures elapsed time of real processes; a pausable tokio clock
// would be meaningless here (see module docs).
#[allow(clippy::disallowed_types)]
#[derive(Debug, Clone, Copy)]
pub struct LabClock {
    start: std::time::Instant,
}

impl LabClock {
    /// A clock whose zero is now.
    #[allow(clippy::disallowed_types)]
    pub fn new() -> Self {
        LabClock {
            start: std::time::Instant::now(),
        }
    }

    /// Time elapsed since the clock was created.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Default for LabClock {
    fn default() -> Self {
        Self::new()
    }
}

/// A TCP server inside one namespace answering every connection with
/// `NAME\n` and closing it, on `0.0.0.0:PORT` and `[::]:PORT` (the IPv6
/// socket is v6-only so both binds coexist). It stops when dropped.
#[derive(Debug)]
pub struct Responder {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), Error>>>,
    port: u16,
}

fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    // A restarted responder must not wait for TIME_WAIT of the previous one.
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(128)?;
    let l: TcpListener = sock.into();
    // Non-blocking so the loop can poll both sockets and the stop flag.
    l.set_nonblocking(true)?;
    Ok(l)
}

impl Responder {
    /// Starts answering `name` on `PORT` in namespace `ns`. Returns once both
    /// sockets listen, or with the bind error.
    pub fn start(ns: &NetNs, name: &str, port: u16) -> Result<Responder, Error> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Result<(), Error>>();
        let reply = format!("{name}\n").into_bytes();
        let ns_name = ns.name().to_string();
        let flag = stop.clone();
        let handle = ns.spawn_in(move || {
            let bind = |addr: SocketAddr| {
                listener(addr).map_err(|source| Error::Io {
                    what: format!("listen on {addr} in {ns_name}"),
                    source,
                })
            };
            let socks = match (
                bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))),
                bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))),
            ) {
                (Ok(a), Ok(b)) => [a, b],
                (Err(e), _) | (_, Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let _ = tx.send(Ok(()));
            serve(&socks, &reply, &flag)
        })?;
        let bound = rx.recv().unwrap_or_else(|_| {
            Err(Error::Io {
                what: format!("responder thread in {} ended before binding", ns.name()),
                source: std::io::Error::other("thread ended"),
            })
        });
        let mut r = Responder {
            stop,
            handle: Some(handle),
            port,
        };
        match bound {
            Ok(()) => Ok(r),
            Err(e) => {
                r.shutdown();
                Err(e)
            }
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(socks: &[TcpListener; 2], reply: &[u8], stop: &AtomicBool) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::Write;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [
            PollFd::new(socks[0].as_fd(), PollFlags::POLLIN),
            PollFd::new(socks[1].as_fd(), PollFlags::POLLIN),
        ];
        // 100 ms bounds how long drop waits for the thread to notice `stop`.
        if poll(&mut fds, PollTimeout::from(100u8)).is_err() {
            continue;
        }
        for l in socks {
            while let Ok((mut conn, _)) = l.accept() {
                // Accepted sockets are blocking on Linux; a few bytes into a
                // fresh send buffer never block.
                let _ = conn.write_all(reply);
            }
        }
    }
}

/// One probe attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// When the attempt started, on the prober's [`LabClock`].
    pub t: Duration,
    /// The name the server answered with; `None` when the attempt failed
    /// (timeout, refused, unreachable, empty answer).
    pub served_by: Option<String>,
}

/// Tuning of a [`Prober`].
#[derive(Debug, Clone, Copy)]
pub struct ProbeOptions {
    /// Time between attempt starts.
    pub interval: Duration,
    /// Connect + read timeout of one attempt.
    pub timeout: Duration,
    /// Most attempts in flight at once; ticks beyond it are skipped.
    pub max_in_flight: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(150),
            max_in_flight: 32,
        }
    }
}

/// Connects to a target every [`ProbeOptions::interval`] from inside a
/// namespace and records who answered.
///
/// Each attempt runs on its own short-lived thread, so an attempt that hangs
/// until its timeout (VIP unreachable) does not delay the next ones: the
/// time of recovery is resolved to one interval, not one timeout.
#[derive(Debug)]
pub struct Prober {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<(), Error>>>,
    clock: LabClock,
}

impl Prober {
    /// Starts probing `target` from namespace `ns` with default options.
    pub fn start(ns: &NetNs, target: SocketAddr, clock: LabClock) -> Result<Prober, Error> {
        Self::with_options(ns, target, clock, ProbeOptions::default())
    }

    /// Starts probing with explicit options.
    pub fn with_options(
        ns: &NetNs,
        target: SocketAddr,
        clock: LabClock,
        opts: ProbeOptions,
    ) -> Result<Prober, Error> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, f) = (samples.clone(), stop.clone());
        // Threads spawned from a thread that entered the namespace inherit
        // its network namespace (clone(2) copies the caller's nsproxy).
        let handle = ns.spawn_in(move || probe_loop(target, clock, opts, &s, &f))?;
        Ok(Prober {
            samples,
            stop,
            handle: Some(handle),
            clock,
        })
    }

    /// The clock the samples are stamped with.
    pub fn clock(&self) -> LabClock {
        self.clock
    }

    /// Samples recorded so far, ordered by start time.
    pub fn samples(&self) -> Vec<Sample> {
        let mut v = self.samples.lock().map(|g| g.clone()).unwrap_or_default();
        v.sort_by_key(|s| s.t);
        v
    }

    /// Stops probing (waiting for attempts in flight) and returns every sample.
    pub fn stop(mut self) -> Vec<Sample> {
        self.shutdown();
        self.samples()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn probe_loop(
    target: SocketAddr,
    clock: LabClock,
    opts: ProbeOptions,
    samples: &Arc<Mutex<Vec<Sample>>>,
    stop: &AtomicBool,
) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut next = clock.now();
    while !stop.load(Ordering::Relaxed) {
        if in_flight.load(Ordering::Relaxed) < opts.max_in_flight {
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (s, n) = (samples.clone(), in_flight.clone());
            let spawned = std::thread::Builder::new()
                .name("netlab-probe".into())
                .spawn(move || {
                    let t = clock.now();
                    let served_by = attempt(target, opts.timeout);
                    if let Ok(mut g) = s.lock() {
                        g.push(Sample { t, served_by });
                    }
                    n.fetch_sub(1, Ordering::Relaxed);
                });
            if spawned.is_err() {
                in_flight.fetch_sub(1, Ordering::Relaxed);
            }
        }
        next += opts.interval;
        let now = clock.now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Fell behind (loaded machine): do not burst to catch up.
            next = now;
        }
    }
    // Let attempts in flight record their result before samples are read.
    while in_flight.load(Ordering::Relaxed) > 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One connection: connect, read the answer until EOF, within `timeout`.
fn attempt(target: SocketAddr, timeout: Duration) -> Option<String> {
    let s = TcpStream::connect_timeout(&target, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut buf = Vec::with_capacity(32);
    s.take(256).read_to_end(&mut buf).ok()?;
    let name = String::from_utf8_lossy(&buf).trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// Longest time without a successful answer inside `window`: the largest
/// distance between consecutive successful attempt starts, with the window's
/// ends as boundaries (an outage running to the end of the window counts up
/// to its end). Resolution is one probe interval; a healthy service shows
/// about one interval.
pub fn longest_gap(samples: &[Sample], window: Range<Duration>) -> Duration {
    let mut prev = window.start;
    let mut longest = Duration::ZERO;
    for s in samples {
        if s.t < window.start || s.t > window.end || s.served_by.is_none() {
            continue;
        }
        longest = longest.max(s.t - prev);
        prev = s.t;
    }
    longest.max(window.end.saturating_sub(prev))
}

/// Time from `from` until the client is served without a single failure for
/// `hold` (by `by` only, when given): the delay until the start of the first
/// run of successful samples that spans at least `hold`. `None` when no such
/// run was observed (including a run still shorter than `hold` at the end).
pub fn served_continuously_after(
    samples: &[Sample],
    from: Duration,
    hold: Duration,
    by: Option<&str>,
) -> Option<Duration> {
    let ok = |s: &Sample| match (&s.served_by, by) {
        (Some(n), Some(want)) => n == want,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let mut run_start: Option<Duration> = None;
    for s in samples.iter().filter(|s| s.t >= from) {
        if ok(s) {
            let start = *run_start.get_or_insert(s.t);
            if s.t - start >= hold {
                return Some(start - from);
            }
        } else {
            run_start = None;
        }
    }
    None
}

/// Who answered inside `window`, in order of first answer, with the number
/// of answers each.
pub fn servers(samples: &[Sample], window: Range<Duration>) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for s in samples.iter().filter(|s| window.contains(&s.t)) {
        if let Some(n) = &s.served_by {
            match out.iter_mut().find(|(m, _)| m == n) {
                Some(e) => e.1 += 1,
                None => out.push((n.clone(), 1)),
            }
        }
    }
    out
}

/// The name in the last successful sample, if any.
pub fn last_server(samples: &[Sample]) -> Option<&str> {
    samples.iter().rev().find_map(|s| s.served_by.as_deref())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Samples every 10 ms from `from` to `to` (exclusive), served by `by`.
    fn run(from: u64, to: u64, by: Option<&str>) -> Vec<Sample> {
        (from..to)
            .step_by(10)
            .map(|t| Sample {
                t: ms(t),
                served_by: by.map(str::to_string),
            })
            .collect()
    }

    fn outage_then(other: &str) -> Vec<Sample> {
        // n1 serves until 990 ms, nobody 1000..1500, then `other`.
        let mut v = run(0, 1000, Some("n1"));
        v.extend(run(1000, 1500, None));
        v.extend(run(1500, 3000, Some(other)));
        v
    }

    #[test]
    fn longest_gap_spans_last_answer_to_first_answer_after_outage() {
        let v = outage_then("n2");
        assert_eq!(longest_gap(&v, ms(0)..ms(2990)), ms(1500 - 990));
    }

    #[test]
    fn longest_gap_of_healthy_service_is_one_interval() {
        let v = run(0, 1000, Some("n1"));
        assert_eq!(longest_gap(&v, ms(0)..ms(990)), ms(10));
    }

    #[test]
    fn longest_gap_counts_outage_running_to_window_end() {
        let mut v = run(0, 500, Some("n1"));
        v.extend(run(500, 2000, None));
        assert_eq!(longest_gap(&v, ms(100)..ms(1990)), ms(1990 - 490));
    }

    #[test]
    fn longest_gap_ignores_outages_outside_the_window() {
        let v = outage_then("n2");
        assert_eq!(longest_gap(&v, ms(1600)..ms(2900)), ms(10));
    }

    #[test]
    fn longest_gap_of_window_without_answers_is_the_window() {
        let v = run(0, 1000, None);
        assert_eq!(longest_gap(&v, ms(200)..ms(700)), ms(500));
    }

    #[test]
    fn recovery_is_start_of_first_run_that_lasts_hold() {
        let mut v = run(0, 500, None);
        // A flap: 200 ms served, then 100 ms out, then served for good.
        v.extend(run(500, 700, Some("n2")));
        v.extend(run(700, 800, None));
        v.extend(run(800, 2000, Some("n2")));
        let got = served_continuously_after(&v, ms(100), ms(500), None);
        assert_eq!(got, Some(ms(700)));
        // With a hold shorter than the flap's run, the flap counts.
        assert_eq!(
            served_continuously_after(&v, ms(100), ms(150), None),
            Some(ms(400))
        );
    }

    #[test]
    fn recovery_by_named_server_skips_others() {
        let mut v = run(0, 1000, Some("n1"));
        v.extend(run(1000, 2000, Some("n3")));
        assert_eq!(
            served_continuously_after(&v, ms(0), ms(300), Some("n3")),
            Some(ms(1000))
        );
        assert_eq!(
            served_continuously_after(&v, ms(0), ms(300), Some("n2")),
            None
        );
    }

    #[test]
    fn recovery_not_reported_when_final_run_is_shorter_than_hold() {
        let mut v = run(0, 1000, None);
        v.extend(run(1000, 1200, Some("n1")));
        assert_eq!(served_continuously_after(&v, ms(0), ms(500), None), None);
    }

    #[test]
    fn servers_lists_each_answering_node_once_in_order() {
        let v = outage_then("n2");
        assert_eq!(
            servers(&v, ms(0)..ms(5000)),
            vec![("n1".to_string(), 100), ("n2".to_string(), 150)]
        );
        assert_eq!(servers(&v, ms(1000)..ms(1500)), vec![]);
        assert_eq!(last_server(&v), Some("n2"));
    }
}
