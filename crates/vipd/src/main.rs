//! `vipd`: keeps virtual IPs reachable on bare-metal clusters, through
//! network outages. This file only parses the command line and hands over;
//! the daemon's wiring is in `daemon.rs`.

#![forbid(unsafe_code)]

mod context;
mod daemon;
mod elect;
#[cfg(feature = "kubernetes")]
mod services;
mod supervise;

use std::process::ExitCode;

use vipd::config::{self, Command};

fn main() -> ExitCode {
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
            print!("{}", cfg.describe());
            ExitCode::SUCCESS
        }
        Command::Run(cfg) => daemon::main(*cfg),
        Command::Manifest(m) => vipd::manifest::print(&m),
        Command::Lab(lab) => vipd_lab::run(lab),
    }
}
