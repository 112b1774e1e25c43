//! kube-vip's command-line flags that have no vipd option to map onto
//! (kube-vip's `cmd/kube-vip.go`, the persistent flags of the root command,
//! so `manager` and `manifest pod|daemonset` take them all). Each is
//! accepted with kube-vip's spelling and either does what it does in
//! kube-vip, is ignored with one warning line, or is refused with exit 2
//! (SPEC §3: kube-vip traps are reported, not copied), exactly as kube-vip's
//! environment variables are in `kubevip.rs`.
//!
//! The flags that do map onto a vipd option (`--vip`, `--leaseDuration`,
//! `--serviceInterface`, `--lbClassOnly`, ...) are clap aliases in
//! `options.rs`; `manifest`'s own `--inCluster` and `--taint` are in
//! `options.rs` too. One table ([`FLAGS`]) drives both clap and the checks,
//! so a flag cannot be accepted without a decision about it.

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use super::{values, ConfigError, Source};

/// What one value of a kube-vip flag means for vipd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// vipd behaves as kube-vip does with this value: nothing to report.
    Same,
    /// Harmless but without meaning in vipd: one warning line with the
    /// reason (`Config::warnings`), then carry on.
    Ignore(&'static str),
    /// Selects something vipd has not built: a configuration error (exit 2)
    /// naming the flag, with the reason.
    Refuse(&'static str),
}

/// How the flag is spelt on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A cobra `BoolVar`: `--flag` or `--flag=true|false`.
    Bool {
        /// Effect of `--flag` / `--flag=true`.
        on: Effect,
        /// Effect of `--flag=false` (kube-vip's default for every flag here
        /// but `--lbClassNameLegacyHandling`).
        off: Effect,
    },
    /// Takes a value (`--flag VALUE` or `--flag=VALUE`, repeatable for
    /// kube-vip's string slices); an empty value counts as unset, as for
    /// kube-vip's variables.
    Value(Effect),
}

/// One kube-vip flag without a vipd option.
#[derive(Debug)]
pub(super) struct KubeFlag {
    /// kube-vip's spelling, without the dashes.
    pub(super) name: &'static str,
    /// Its syntax and what each value does.
    pub(super) kind: Kind,
}

/// `--leaderElection=false` and `vip_leaderelection=false` in ARP/NDP
/// mode: vipd has no mode without election there.
pub(super) const ALWAYS_ELECTS: &str = "vipd always elects a leader before binding a VIP (SPEC R1)";
const ZEBRA_SETTING: &str =
    "a zebra (FRR) setting: vipd's BGP speaker announces to its peers and never feeds a local zebra";
const IPVS_SETTING: &str =
    "a setting of kube-vip's IPVS load balancer (--enableLoadBalancer), which is not built into vipd";
const PER_NODE_LEASE: &str =
    "vipd's Services mode elects with one lease per node, never one per Service";

const fn ignored_bool(reason: &'static str) -> Kind {
    Kind::Bool {
        on: Effect::Ignore(reason),
        off: Effect::Same,
    }
}

const fn refused_bool(reason: &'static str) -> Kind {
    Kind::Bool {
        on: Effect::Refuse(reason),
        off: Effect::Same,
    }
}

const fn ignored_value(reason: &'static str) -> Kind {
    Kind::Value(Effect::Ignore(reason))
}

/// Every kube-vip root flag without a vipd option, in kube-vip's order.
pub(super) const FLAGS: &[KubeFlag] = &[
    KubeFlag {
        name: "wireguard",
        kind: refused_bool("WireGuard mode is not built into vipd; use ARP/NDP mode (--arp)"),
    },
    KubeFlag {
        name: "enableLoadBalancer",
        kind: refused_bool(
            "kube-vip's IPVS load balancer is not built into vipd; the VIP leads to the holder's own API server",
        ),
    },
    KubeFlag {
        name: "lbPort",
        kind: ignored_value(IPVS_SETTING),
    },
    KubeFlag {
        name: "lbForwardingMethod",
        kind: ignored_value(IPVS_SETTING),
    },
    KubeFlag {
        name: "ddns",
        kind: refused_bool(
            "Dynamic DNS (a VIP leased by DHCP for a DNS name) is not built into vipd; give the VIP as an IP address (--address)",
        ),
    },
    KubeFlag {
        name: "mirrorDestInterface",
        kind: ignored_value("traffic mirroring is not built into vipd"),
    },
    KubeFlag {
        name: "leaderElection",
        // `=false` means ECMP in BGP and routing-table mode and nothing in
        // ARP/NDP mode: validate.rs decides once the mode is known.
        kind: Kind::Bool {
            on: Effect::Same,
            off: Effect::Same,
        },
    },
    KubeFlag {
        name: "zebra",
        kind: ignored_bool(ZEBRA_SETTING),
    },
    KubeFlag {
        name: "zebraUrl",
        kind: ignored_value(ZEBRA_SETTING),
    },
    KubeFlag {
        name: "zebraVersion",
        kind: ignored_value(ZEBRA_SETTING),
    },
    KubeFlag {
        name: "zebraSoftwareName",
        kind: ignored_value(ZEBRA_SETTING),
    },
    KubeFlag {
        name: "autodetectcp",
        kind: ignored_bool(
            "in control-plane mode vipd always tries the local API server at 127.0.0.1:<api-port> (SPEC R6)",
        ),
    },
    KubeFlag {
        name: "servicesElection",
        kind: ignored_bool(PER_NODE_LEASE),
    },
    KubeFlag {
        name: "lbClassNameLegacyHandling",
        // kube-vip's default (true) is the only handling vipd has.
        kind: Kind::Bool {
            on: Effect::Same,
            off: Effect::Refuse(
                "kube-vip's non-legacy loadBalancerClass handling is not built into vipd (only its default, legacy one); use --lbClassOnly to serve only --lbClassName",
            ),
        },
    },
    KubeFlag {
        name: "onlyAllowTrafficServicePorts",
        // Refused, not ignored: ignoring it would leave open the ports the
        // operator asked to close.
        kind: refused_bool(
            "the Service-port traffic filter is not built into vipd; filter with the host firewall",
        ),
    },
    KubeFlag {
        name: "enableNodeLabeling",
        kind: ignored_bool(
            "vipd does not label nodes; /status and the vipd_is_leader metric say which node holds each address",
        ),
    },
    KubeFlag {
        name: "servicesLeaseName",
        kind: ignored_value(PER_NODE_LEASE),
    },
    KubeFlag {
        name: "dnsMode",
        kind: ignored_value("vipd takes the VIP as an IP address, never a DNS name"),
    },
    KubeFlag {
        name: "disableServiceUpdates",
        // Refused, not ignored: vipd would write the status it was told
        // to leave alone.
        kind: refused_bool(
            "running without writing status.loadBalancer.ingress is not built into vipd",
        ),
    },
    KubeFlag {
        name: "enableEndpoints",
        kind: ignored_bool(
            "vipd reads EndpointSlices (Endpoints are deprecated since Kubernetes 1.33)",
        ),
    },
    KubeFlag {
        name: "loInterfaceGlobalScope",
        // vipd adds every VIP with global scope, on lo too.
        kind: Kind::Bool {
            on: Effect::Same,
            off: Effect::Ignore("vipd adds VIPs with global scope on every interface, lo included"),
        },
    },
    KubeFlag {
        name: "healthCheckPort",
        kind: ignored_value("vipd serves /healthz on --prometheus-server"),
    },
    KubeFlag {
        name: "config-file",
        kind: Kind::Value(Effect::Refuse(
            "reading kube-vip's JSON/YAML configuration file is not built into vipd; use --config (key: value lines of vipd's long flag names) or kube-vip's environment variables",
        )),
    },
];

/// The kube-vip flags given on the command line, in [`FLAGS`] order, with
/// their values (a repeated value flag joined with commas, as kube-vip's
/// string slices).
#[derive(Debug, Default)]
pub(super) struct KubeVipFlags {
    pub(super) given: Vec<(&'static KubeFlag, String)>,
}

/// The clap id of a flag: its own spelling, which no vipd option uses
/// (vipd's ids are snake_case field names; checked by a test).
fn arg(flag: &'static KubeFlag) -> Arg {
    let a = Arg::new(flag.name)
        .long(flag.name)
        .value_parser(clap::value_parser!(String))
        // kube-vip compatibility only: documented in README, not in --help.
        .hide(true);
    match flag.kind {
        Kind::Bool { .. } => a
            .action(ArgAction::Set)
            .num_args(0..=1)
            .require_equals(true)
            .default_missing_value("true")
            .value_name("BOOL"),
        Kind::Value(_) => a.action(ArgAction::Append).value_name("VALUE"),
    }
}

impl FromArgMatches for KubeVipFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = KubeVipFlags::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for flag in FLAGS {
            let Some(values) = matches.get_many::<String>(flag.name) else {
                continue;
            };
            let value = values.map(String::as_str).collect::<Vec<_>>().join(",");
            self.given.retain(|(f, _)| f.name != flag.name);
            self.given.push((flag, value));
        }
        Ok(())
    }
}

impl Args for KubeVipFlags {
    fn augment_args(cmd: Command) -> Command {
        FLAGS.iter().fold(cmd, |cmd, flag| cmd.arg(arg(flag)))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl KubeVipFlags {
    /// The value of boolean flag `name` if it was given and well-formed
    /// (a malformed one is reported by [`KubeVipFlags::check`]).
    pub(super) fn boolean(&self, name: &str) -> Option<bool> {
        self.given
            .iter()
            .rev()
            .find(|(f, _)| f.name == name)
            .and_then(|(_, v)| values::boolean(v).ok())
    }

    /// One warning line per ignored flag, or the first refused one as
    /// [`ConfigError::Unsupported`] (a malformed boolean as
    /// [`ConfigError::Invalid`]), both naming the flag.
    pub(super) fn check(&self) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        for (flag, value) in &self.given {
            let option = format!("--{}", flag.name);
            // A value flag's value is not repeated in the warning: it may
            // be a secret (--peerPass).
            let (effect, shown) = match flag.kind {
                Kind::Bool { on, off } => match values::boolean(value) {
                    Ok(true) => (on, option.clone()),
                    Ok(false) => (off, format!("{option}=false")),
                    Err(expected) => {
                        return Err(ConfigError::Invalid {
                            option,
                            value: value.clone(),
                            from: Source::Flag,
                            expected: expected.into(),
                        })
                    }
                },
                Kind::Value(_) if value.trim().is_empty() => (Effect::Same, option.clone()),
                Kind::Value(effect) => (effect, option.clone()),
            };
            match effect {
                Effect::Same => {}
                Effect::Ignore(reason) => {
                    warnings.push(format!("kube-vip flag {shown} is ignored: {reason}"))
                }
                Effect::Refuse(reason) => {
                    return Err(ConfigError::Unsupported {
                        option: format!("kube-vip flag {option}"),
                        value: value.clone(),
                        reason: reason.into(),
                    })
                }
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::options::{Cli, ALL};
    use clap::{CommandFactory, Parser};

    #[test]
    fn every_flag_is_spelt_once_and_never_shadows_a_vipd_option() {
        Cli::command().debug_assert();
        let run = Cli::command();
        let run = run.find_subcommand("run").unwrap();
        for flag in FLAGS {
            let spellings = run
                .get_arguments()
                .filter(|a| {
                    a.get_long() == Some(flag.name)
                        || a.get_all_aliases()
                            .is_some_and(|al| al.contains(&flag.name))
                })
                .count();
            assert_eq!(spellings, 1, "--{}", flag.name);
            assert!(
                ALL.iter()
                    .all(|o| o.key != flag.name && o.kube_flag != Some(flag.name)),
                "--{} is also a vipd option: map it there instead",
                flag.name
            );
        }
    }

    #[test]
    fn only_the_flags_given_are_reported_in_table_order_without_values() {
        let cli = Cli::try_parse_from([
            "vipd",
            "run",
            "--zebraUrl",
            "unix:/s3cret",
            "--zebra",
            "--dnsMode",
            "a",
            "--dnsMode",
            "b",
            "--wireguard=false",
        ])
        .unwrap();
        let crate::config::options::CliCommand::Run(raw) = cli.command else {
            panic!("not run")
        };
        let given: Vec<(&str, &str)> = raw
            .kube_vip
            .given
            .iter()
            .map(|(f, v)| (f.name, v.as_str()))
            .collect();
        assert_eq!(
            given,
            [
                ("wireguard", "false"),
                ("zebra", "true"),
                ("zebraUrl", "unix:/s3cret"),
                ("dnsMode", "a,b"),
            ]
        );
        let warnings = raw.kube_vip.check().unwrap();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings.iter().all(|w| !w.contains("s3cret")),
            "{warnings:?}"
        );
    }
}
