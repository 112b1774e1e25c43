//! `vipd-kube-testserver`: TEST SERVER — not a Kubernetes API server.
//! Runs the in-repo Kubernetes API emulation as its own process (so tests can
//! start it inside a network namespace). Prints `ready` on stdout when serving.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use vipd_kube_testserver::{Config, TestServer, BANNER};

/// TEST SERVER — not a Kubernetes API server. Emulates the part of the
/// Kubernetes API vipd uses (leases, events, services, endpointslices,
/// nodes, configmaps) for vipd's tests, with fault injection on a control
/// endpoint. Never use it as a real cluster.
#[derive(Debug, Parser)]
#[command(name = "vipd-kube-testserver", version, about = BANNER, long_about = None)]
struct Args {
    /// HTTPS API address (IP:PORT).
    #[arg(long)]
    listen: SocketAddr,
    /// Plain-HTTP control address for fault injection and stats (IP:PORT).
    #[arg(long)]
    control: Option<SocketAddr>,
    /// Bearer token required on every API request.
    #[arg(long)]
    token: String,
    /// Directory for ca.crt, server.crt, server.key and kubeconfig.
    #[arg(long)]
    cert_dir: PathBuf,
    /// Extra certificate SAN (DNS name or IP); repeatable.
    #[arg(long = "san")]
    sans: Vec<String>,
    /// Watch history size (events); older resourceVersions get 410 Expired.
    #[arg(long, default_value_t = 100)]
    history: usize,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vipd-kube-testserver: runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let config = Config {
            listen: args.listen,
            control: args.control,
            token: args.token,
            cert_dir: Some(args.cert_dir),
            extra_sans: args.sans,
            history_limit: args.history,
        };
        let server = match TestServer::start(config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("vipd-kube-testserver: {e}");
                return std::process::ExitCode::from(1);
            }
        };
        println!("ready");
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("vipd-kube-testserver: signal: {e}");
                    return std::process::ExitCode::from(1);
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        server.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}
