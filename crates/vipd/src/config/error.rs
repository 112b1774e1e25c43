//! Why a configuration is refused: [`ConfigError`], each variant naming
//! the option, the value and what is accepted (SPEC §3), and the exit
//! status that goes with it.

use std::path::PathBuf;
use std::time::Duration;

use super::Source;

/// Why the configuration was refused. `main` exits with status 2 (clap's
/// own exit code for [`ConfigError::Usage`], 0 for `--help`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Command-line syntax error, or `--help` / `--version`: call
    /// [`clap::Error::exit`] on it.
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// A value that does not parse or is out of range.
    #[error("invalid {option} {value:?} from {from}: expected {expected}")]
    Invalid {
        /// Flag and variable spellings, e.g. `--lease-duration (VIPD_LEASE_DURATION, vip_leaseduration)`.
        option: String,
        /// The value given.
        value: String,
        /// Where it came from.
        from: Source,
        /// What is accepted.
        expected: String,
    },
    /// A required option is absent.
    #[error("missing {option}: {hint}")]
    Missing {
        /// Flag and variable spellings.
        option: String,
        /// What to set.
        hint: String,
    },
    /// The three lease timings break R1's fencing rule.
    #[error("invalid lease timings --lease-duration {lease:?} (vip_leaseduration), --renew-deadline {renew:?} (vip_renewdeadline), --retry-period {retry:?} (vip_retryperiod): {reason}")]
    Timings {
        /// Lease duration given.
        lease: Duration,
        /// Renew deadline given.
        renew: Duration,
        /// Retry period given.
        retry: Duration,
        /// The violated rule.
        reason: vipd_election::TimingError,
    },
    /// A valid value asking for something vipd does not do (yet).
    #[error("unsupported {option} {value:?}: {reason}")]
    Unsupported {
        /// Flag and variable spellings.
        option: String,
        /// The value given.
        value: String,
        /// Why, and what to use instead.
        reason: String,
    },
    /// One entry of a BGP peer list does not parse (`bgp_peers`).
    #[error("invalid {option} from {from}: peer {} ({}): field {}: {}", .peer.index, .peer.peer, .peer.field, .peer.problem)]
    BgpPeer {
        /// Flag and variable spellings.
        option: String,
        /// Where the list came from.
        from: Source,
        /// Which entry and field, the entry with its password redacted.
        peer: Box<super::PeerError>,
    },
    /// The configured interface does not exist (and `--wait-for-interface`
    /// is off).
    #[error("unknown --interface (VIPD_INTERFACE, vip_interface) {0:?}: no such interface in this network namespace; pass --wait-for-interface to wait for it")]
    UnknownInterface(String),
    /// The `--config` file could not be read.
    #[error("cannot read --config (VIPD_CONFIG) {path:?}: {error}")]
    FileRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A line of the `--config` file is malformed.
    #[error("{path}:{line}: {message}", path = path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// Reports the error and exits: clap's own handling for
    /// [`ConfigError::Usage`] (status 0 for `--help`/`--version`, 2 for
    /// syntax errors), otherwise `vipd: <message>` on stderr and status 2,
    /// as SPEC §3 requires for invalid configuration.
    pub fn exit(&self) -> ! {
        match self {
            ConfigError::Usage(e) => e.exit(),
            other => {
                eprintln!("vipd: {other}");
                std::process::exit(2)
            }
        }
    }
}
