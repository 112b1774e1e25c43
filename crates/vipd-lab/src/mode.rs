//! `vipd lab`'s top-level options: `--mode arp|bgp` and `--router`,
//! accepted before or after the subcommand, and `vipd lab --mode bgp`
//! without a subcommand (the BGP demo). clap parses [`RawLabArgs`];
//! [`crate::LabArgs`] is it with the subcommand resolved.

use crate::{bgp, LabArgs, LabCommand, OutputArgs};

/// Which lab `vipd lab` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LabMode {
    /// The L2 lab: one holder, gratuitous ARP/NA, every ARP scenario.
    Arp,
    /// The BGP lab: a router (FRR or BIRD) between the client and the
    /// nodes, ECMP over every node announcing the VIP (see the `bgp` module).
    Bgp,
}

/// What clap parses; [`LabArgs`] is this with the subcommand resolved.
#[derive(Debug, clap::Args)]
pub(crate) struct RawLabArgs {
    /// `arp`: the L2/ARP failover lab (default; every subcommand as
    /// documented); `bgp`: a router namespace between the client and the
    /// nodes, ECMP to every node, scenarios graceful, crash-bfd,
    /// crash-nobfd, dead-bfd, dead-nobfd, health, peer-restart, link-flap
    /// (`vipd lab --mode bgp` alone runs each once).
    #[arg(long, global = true, value_enum, default_value_t = LabMode::Arp)]
    mode: LabMode,
    /// The BGP lab's router: `frr` (default) or `bird` (BGP mode only).
    #[arg(long, global = true, value_enum)]
    router: Option<bgp::net::RouterChoice>,
    #[command(subcommand)]
    command: Option<LabCommand>,
}

impl clap::FromArgMatches for LabArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut m.clone())
    }

    fn from_arg_matches_mut(m: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        let raw = RawLabArgs::from_arg_matches_mut(m)?;
        let command = match (raw.command, raw.mode) {
            (Some(c), _) => c,
            (None, LabMode::Bgp) => LabCommand::Demo {
                out: OutputArgs {
                    json: None,
                    svg: None,
                    run_dir: None,
                },
            },
            (None, LabMode::Arp) => {
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::MissingSubcommand,
                    "'vipd lab' needs a subcommand (demo, run, bench), or --mode bgp",
                ))
            }
        };
        Ok(LabArgs {
            mode: raw.mode,
            router: raw.router,
            command,
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for LabArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        RawLabArgs::augment_args(cmd)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        RawLabArgs::augment_args_for_update(cmd)
    }
}
