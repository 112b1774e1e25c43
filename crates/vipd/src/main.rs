//! `vipd`: keeps virtual IPs reachable on bare-metal clusters, through
//! network outages. This file only parses the command line and hands over;
//! the daemon's wiring is in `daemon.rs`.

// `unsafe` only in the vipd-sys crate (libc calls, each with its SAFETY comment).
#![forbid(unsafe_code)]

mod context;
mod daemon;
#[cfg(feature = "kubernetes")]
mod routing;
mod services;
mod supervise;

use std::process::ExitCode;

use vipd::config::{self, Command};

fn main() -> ExitCode {
    vipd_sys::process::limit_malloc_arenas();
    // Before any thread exists: capabilities are per thread.
    let caps = vipd_sys::process::raise_permitted_capabilities();
    let args: Vec<String> = std::env::args().collect();
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let command = match config::parse_command(&args, &env) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match command {
        Command::Version => {
            println!("vipd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::CheckConfig(cfg) => {
            for w in &cfg.warnings {
                eprintln!("warning: {w}");
            }
            for e in &cfg.errors {
                eprintln!("error: {e}");
            }
            print!("{}", cfg.describe());
            ExitCode::SUCCESS
        }
        Command::Run(cfg) => daemon::main(*cfg, caps),
        Command::Witness(cfg) => daemon::witness_main(*cfg),
        Command::Guard => daemon::guard_main(),
        Command::Manifest(m) => vipd::manifest::print(&m),
        Command::Lab(lab) => vipd_lab::run(*lab),
        Command::Status(req) => status(&req),
    }
}

/// `vipd status`: 0 when the daemon answers and holds what it should, 1
/// when it cannot be asked, 3 when it answers but holds nothing it should
/// (each reason on stderr).
fn status(req: &config::StatusRequest) -> ExitCode {
    use vipd_observe::client;
    let (snapshot, body) = match client::fetch(req.addr, req.timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vipd: {e}");
            return ExitCode::from(1);
        }
    };
    if req.json {
        println!("{}", body.trim_end());
    } else {
        print!("{}", client::render(&snapshot));
    }
    let problems = client::verdict(&snapshot);
    for p in &problems {
        eprintln!("vipd: {p}");
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}
