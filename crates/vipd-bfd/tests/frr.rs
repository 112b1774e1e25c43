//! vipd-bfd against a real peer: FRR's `bfdd` (Debian package frr) in its
//! own namespace, peered with our shell over a bridge (root only). Up on
//! both sides as FRR reports it (`show bfd peers json`), our side killed →
//! FRR goes down on detection time, our graceful shutdown → FRR shows the
//! peer administratively down.
//!
//! bfdd runs in the foreground inside the namespace with its own config,
//! pid file, control socket and vty socket in a temporary directory, so the
//! host's FRR (if any) is never touched. A small local helper, on purpose
//! independent of netlab's router module.

#![allow(clippy::unwrap_used)]

mod common;

use common::{wait_for, Node};
use netlab::{NetNs, TopologyBuilder};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;
use vipd_bfd::{BfdConfig, Diag, State};

const BFDD: &str = "/usr/lib/frr/bfdd";

/// One bfdd in a namespace; Drop kills its process group and removes the
/// directory.
struct Bfdd {
    child: Child,
    dir: PathBuf,
    ns: String,
}

impl Bfdd {
    fn start(ns: &NetNs, local: IpAddr, peer: IpAddr) -> Bfdd {
        let dir = std::env::temp_dir().join(format!("{}-bfdd", ns.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // bfdd drops privileges to the frr user: it must write here.
        chmod(&dir, "777");
        let conf = dir.join("bfdd.conf");
        std::fs::write(
            &conf,
            format!(
                "bfd\n peer {peer} local-address {local}\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n!\n"
            ),
        )
        .unwrap();
        chmod(&conf, "666");
        let log = std::fs::File::create(dir.join("bfdd.log")).unwrap();
        let d = dir.to_str().unwrap();
        let child = ns
            .command(BFDD)
            .args(["-f", conf.to_str().unwrap()])
            .args(["--vty_socket", d])
            .args(["-i", &format!("{d}/bfdd.pid")])
            .args(["--bfdctl", &format!("{d}/bfdd.sock")])
            .args(["-P", "0", "--log", "stdout"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Own process group, so Drop can end everything it started.
            .process_group(0)
            .spawn()
            .expect("start bfdd (package frr)");
        let b = Bfdd {
            child,
            dir,
            ns: ns.name().to_string(),
        };
        let vty = b.dir.join("bfdd.vty");
        wait_for(Duration::from_secs(10), || {
            vty.exists() && b.peers().is_some()
        })
        .unwrap_or_else(|| panic!("bfdd vty never answered; log:\n{}", b.log()));
        b
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bfdd.log")).unwrap_or_default()
    }

    /// `show bfd peers json`, parsed; None if vtysh fails.
    fn peers(&self) -> Option<Vec<serde_json::Value>> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.dir)
            .args(["-c", "show bfd peers json"])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()?
            .as_array()
            .cloned()
    }

    /// The one peer's field `key` as text ("status", "diagnostic", ...).
    fn field(&self, key: &str) -> Option<String> {
        let p = self.peers()?;
        let v = p.first()?.get(key)?;
        Some(v.as_str().map_or_else(|| v.to_string(), str::to_string))
    }
}

fn chmod(p: &Path, mode: &str) {
    netlab::run_ok("chmod", &[mode, p.to_str().unwrap()]).unwrap();
}

impl Drop for Bfdd {
    fn drop(&mut self) {
        let pgid = format!("-{}", self.child.id());
        let _ = netlab::run_ok("kill", &["-KILL", "--", &pgid]);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn frr_bfdd_sees_up_then_timeout_then_admin_down() {
    netlab::require_root!();
    if !Path::new(BFDD).exists() {
        eprintln!("SKIPPED: {BFDD} not installed (Debian package frr)");
        return;
    }
    let r: IpAddr = "198.51.100.1".parse().unwrap();
    let n: IpAddr = "198.51.100.2".parse().unwrap();
    let t = TopologyBuilder::new(&netlab::unique_prefix("bfdfrr"))
        .host("r", &[(r, 24)])
        .host("n", &[(n, 24)])
        .build()
        .unwrap();
    let frr = Bfdd::start(&t.host("r").ns, r, n);
    let cfg = BfdConfig::default();

    // Up on both sides.
    let ours = Node::start(&t.host("n").ns, n, r, cfg);
    let up = ours
        .wait(Duration::from_secs(10), |s| s.state == State::Up)
        .unwrap_or_else(|| panic!("ours never Up; FRR: {:?}\n{}", frr.peers(), frr.log()));
    wait_for(Duration::from_secs(5), || {
        frr.field("status").as_deref() == Some("up")
    })
    .unwrap_or_else(|| panic!("FRR never up: {:?}", frr.peers()));
    println!("FRR: our side Up after {up:?}");
    // FRR ran its Poll on Up and we answered: its view of our timers is
    // the fast one.
    wait_for(Duration::from_secs(5), || {
        frr.field("remote-transmit-interval").as_deref() == Some("300")
    })
    .unwrap_or_else(|| panic!("FRR view of our timers: {:?}", frr.peers()));
    let st = *ours.status.borrow();
    assert_eq!(st.tx_interval, Duration::from_millis(300), "{st:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(ours.status.borrow().transitions, st.transitions, "no flap");
    assert_eq!(frr.field("status").as_deref(), Some("up"));

    // Kill ours: FRR declares it down by detection time (300 ms × 3).
    ours.kill();
    let t_kill = tokio::time::Instant::now();
    let took = wait_for(Duration::from_secs(5), || {
        frr.field("status").as_deref() == Some("down")
    })
    .expect("FRR down after our side was killed");
    let diag = frr.field("diagnostic");
    let t_read = tokio::time::Instant::now();
    let _ = frr.peers();
    let read = t_read.elapsed();
    println!(
        "FRR: killed vipd-bfd detected after {took:?} (upper bound: one vtysh read takes {read:?}; detection time 900 ms), diagnostic {diag:?}"
    );
    assert!(t_kill.elapsed() >= took);
    assert!(took <= Duration::from_millis(1_500), "{took:?}");
    assert_eq!(diag.as_deref(), Some("control detection time expired"));

    // Again Up, then a graceful stop: FRR must report administratively
    // down, not a timeout.
    let ours = Node::start(&t.host("n").ns, n, r, cfg);
    ours.wait(Duration::from_secs(10), |s| s.state == State::Up)
        .expect("ours Up again");
    wait_for(Duration::from_secs(5), || {
        frr.field("status").as_deref() == Some("up")
    })
    .expect("FRR up again");
    std::thread::sleep(Duration::from_millis(500));
    let last = ours.shutdown().expect("shutdown status");
    assert_eq!(last.local_diag, Diag::AdminDown);
    wait_for(Duration::from_secs(2), || {
        frr.field("status").as_deref() == Some("down")
    })
    .unwrap_or_else(|| panic!("FRR not down after shutdown: {:?}", frr.peers()));
    let peer = frr.peers().unwrap();
    println!("FRR after graceful shutdown: {}", peer[0]);
    assert_eq!(
        frr.field("remote-diagnostic").as_deref(),
        Some("administratively down")
    );
    assert_eq!(
        frr.field("diagnostic").as_deref(),
        Some("neighbor signaled session down")
    );
}
