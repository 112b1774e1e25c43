//! The address guard process (`vipd guard`, hidden): see
//! [`vipd_vip::guard`] for why and how. This file starts it from the daemon
//! and is its `main`.

use std::io::BufRead;
use std::os::unix::process::CommandExt as _;
use std::process::{ExitCode, Stdio};
use std::sync::OnceLock;

use tracing::{info, warn};
use vipd_vip::guard::{remove_leftovers, remove_route_leftovers, GuardPipe, GuardState};

/// The guard of this process, once started (`None`: it could not start).
static PIPE: OnceLock<Option<GuardPipe>> = OnceLock::new();

/// The pipe every VIP manager of this process reports to.
pub(crate) fn pipe() -> Option<GuardPipe> {
    PIPE.get().cloned().flatten()
}

/// Starts the guard (once per process). A guard that cannot start is
/// logged and done without: vipd runs as before, and its restart's
/// reconcile (R3) remains the way leftovers go.
pub(super) fn start() {
    PIPE.get_or_init(|| match spawn() {
        Ok(p) => Some(p),
        Err(e) => {
            warn!(error = %e, "cannot start the address guard; a crash of vipd will leave its addresses until it restarts");
            None
        }
    });
}

fn spawn() -> std::io::Result<GuardPipe> {
    let mut cmd = std::process::Command::new("/proc/self/exe");
    // /proc/self/exe, not current_exe(): it still runs this binary after a
    // package upgrade replaced the file on disk.
    cmd.arg0("vipd-guard")
        .arg("guard")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Its own process group: a signal to the daemon's group (a
        // terminal's Ctrl-C, `kill -- -PGID`) does not take it along.
        .process_group(0);
    let mut child = tokio::process::Command::from(cmd).spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("the guard has no standard input"))?;
    let pid = child.id();
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => {
                warn!(%status, "the address guard exited; a crash of vipd will leave its addresses until it restarts")
            }
            Err(e) => warn!(error = %e, "lost track of the address guard"),
        }
    });
    info!(pid, "address guard started");
    Ok(GuardPipe::new(stdin))
}

/// `vipd guard`: reads the daemon's lines until end-of-file, then removes
/// what is still listed: routing-table routes first, then addresses (see
/// [`vipd_vip::guard`] for why that order). Always exits 0 (nobody waits
/// for its status).
pub fn guard_main() -> ExitCode {
    super::init_logging_with(tracing::Level::INFO, false);
    let mut state = GuardState::default();
    for line in std::io::stdin().lock().lines() {
        match line {
            Ok(l) => state.apply(&l),
            // Unreadable input is end-of-input: the daemon is gone.
            Err(_) => break,
        }
    }
    if state.corrupt() {
        warn!("address guard: unreadable input from vipd; removing nothing");
    }
    let leftovers = state.leftovers();
    let routes = state.route_leftovers();
    if leftovers.is_empty() && routes.is_empty() {
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            warn!(error = %e, "address guard: no runtime; addresses left in place");
            return ExitCode::SUCCESS;
        }
    };
    // Routes before addresses, as the daemon's own stop: the routing
    // daemon withdraws the VIP while this node still answers for it, so
    // no router is left sending to a node without the address.
    for o in rt.block_on(remove_route_leftovers(&routes)) {
        let (table, protocol) = o.scope;
        match o.result {
            Ok(true) => {
                warn!(vip = %o.addr, table, protocol, "vipd exited without deleting its route: the guard deleted it")
            }
            Ok(false) => {}
            Err(e) => {
                warn!(vip = %o.addr, table, protocol, error = %e, "vipd exited without deleting its route and the guard could not delete it")
            }
        }
    }
    for o in rt.block_on(remove_leftovers(&leftovers)) {
        let (interface, _) = &o.scope;
        match o.result {
            Ok(true) => {
                warn!(vip = %o.vip, %interface, "vipd exited without removing its address: the guard removed it")
            }
            Ok(false) => {}
            Err(e) => {
                warn!(vip = %o.vip, %interface, error = %e, "vipd exited without removing its address and the guard could not remove it")
            }
        }
    }
    ExitCode::SUCCESS
}
