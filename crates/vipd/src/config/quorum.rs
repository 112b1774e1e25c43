//! Quorum mode's settings (SPEC §5a, issue 12): `--coordination`,
//! `--peers`, `--peer-key-file` and the quorum timings, shared by `vipd run`
//! and `vipd witness`. Everything is checked here, before a socket is
//! opened: a missing key, a node absent from its own peer list or timings
//! that break Q4's window exit with status 2.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::options::*;
use super::sources::{opt_path, Resolver};
use super::{ConfigError, Source};

/// How ownership of the control-plane VIP is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coordination {
    /// A lease in the Kubernetes API or etcd (SPEC §5; kube-vip's way).
    Lease,
    /// vipd peers grant ownership among themselves (SPEC §5a).
    Quorum(QuorumSettings),
}

/// The shared key's bytes. Never printed (SPEC §6: no secrets in logs).
#[derive(Clone, PartialEq, Eq)]
pub struct PeerKey(Vec<u8>);

impl PeerKey {
    /// The raw key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerKey({} bytes)", self.0.len())
    }
}

/// Validated quorum settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSettings {
    /// The voters, this node included, in the order given.
    pub voters: Vec<vipd_quorum::Voter>,
    /// The key file (shown by `check-config`; its content is in `key`).
    pub key_file: PathBuf,
    /// The shared key.
    pub key: PeerKey,
    /// Promise, heartbeat, election wait, drift bound, jitter.
    pub timings: vipd_quorum::Timings,
}

impl QuorumSettings {
    /// This node's quorum socket address (its entry in `--peers`).
    pub fn own_addr(&self, node: &str) -> Option<std::net::SocketAddr> {
        self.voters.iter().find(|v| v.name == node).map(|v| v.addr)
    }
}

/// Resolves `--coordination` and, in quorum mode, the rest. `witness`
/// forces quorum mode (a witness is nothing else). Warnings (settings that
/// are ignored, a key file others can read) go to `warnings`.
pub(super) fn resolve_coordination(
    r: &mut Resolver<'_>,
    node_name: &str,
    witness: bool,
    warnings: &mut Vec<String>,
) -> Result<Coordination, ConfigError> {
    let (quorum, _) = if witness {
        r.record(&COORDINATION, "quorum".into(), Source::Default);
        (true, Source::Default)
    } else {
        r.get_or(
            &COORDINATION,
            false,
            |q| if *q { "quorum".into() } else { "lease".into() },
            |s| match s.trim().to_ascii_lowercase().as_str() {
                "lease" => Ok(false),
                "quorum" => Ok(true),
                _ => Err("lease or quorum"),
            },
        )?
    };
    if !quorum {
        if [&PEERS, &PEER_KEY_FILE, &QUORUM_PROMISE, &QUORUM_HEARTBEAT]
            .iter()
            .any(|o| r.raw(o).is_some())
        {
            warnings.push(
                "quorum settings (--peers, --peer-key-file, --quorum-*) are ignored because --coordination is lease".into(),
            );
        }
        return Ok(Coordination::Lease);
    }

    let Some(raw) = r.raw(&PEERS) else {
        return Err(ConfigError::Missing {
            option: PEERS.describe(),
            hint: "quorum mode needs every voter, this node included, e.g. --peers n1=192.0.2.11:7480,n2=192.0.2.12:7480,n3=192.0.2.13:7480".into(),
        });
    };
    let invalid_peers = |expected: String| ConfigError::Invalid {
        option: PEERS.describe(),
        value: raw.value.clone(),
        from: raw.source.clone(),
        expected,
    };
    let voters = vipd_quorum::parse_peers(&raw.value).map_err(|e| invalid_peers(e.to_string()))?;
    // Names, count and this node's membership, as the core will check them.
    let set = vipd_quorum::VoterSet::new(voters.clone())
        .map_err(|e| invalid_peers(format!("a valid voter set: {e}")))?;
    if set.index_of(node_name).is_none() {
        return Err(invalid_peers(format!(
            "a list that names this node ({node_name:?}, from --node-name/VIPD_NODE_NAME): every member is given the same list, itself included"
        )));
    }
    if set.voters().len() % 2 == 0 {
        warnings.push(format!(
            "{} voters: an even count tolerates no more failures than one voter fewer; add a witness (vipd witness) or remove a voter",
            set.voters().len()
        ));
    }
    r.record(&PEERS, raw.value.clone(), raw.source.clone());

    let Some((key_file, key_source)) = r.get(&PEER_KEY_FILE, opt_path)? else {
        return Err(ConfigError::Missing {
            option: PEER_KEY_FILE.describe(),
            hint: "quorum messages are authenticated with a shared key: write one to a file readable only by vipd (e.g. `openssl rand -hex 32 > /etc/vipd/peer.key; chmod 600 /etc/vipd/peer.key`) and give the same file to every member".into(),
        });
    };
    let key = read_key(&key_file, &key_source, warnings)?;
    r.record(&PEER_KEY_FILE, key_file.display().to_string(), key_source);

    let d = vipd_quorum::Timings::default();
    let (promise, _) = r.get_or(
        &QUORUM_PROMISE,
        d.promise(),
        super::secs,
        super::values::seconds,
    )?;
    let (heartbeat, _) = r.get_or(
        &QUORUM_HEARTBEAT,
        d.heartbeat(),
        super::secs,
        super::values::seconds,
    )?;
    let (drift, _) = r.get_or(&QUORUM_DRIFT_PPM, d.drift_ppm(), u32::to_string, |s| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| "ppm, e.g. 10000 for 1%")
    })?;
    let (emin, emax) = d.election_range();
    let timings = vipd_quorum::Timings::new(promise, heartbeat, emin, emax, drift, d.jitter())
        .map_err(|e| ConfigError::Invalid {
            option: format!(
                "{}, {}, {}",
                QUORUM_PROMISE.describe(),
                QUORUM_HEARTBEAT.describe(),
                QUORUM_DRIFT_PPM.describe()
            ),
            value: format!(
                "{}, {}, {drift}",
                super::secs(&promise),
                super::secs(&heartbeat)
            ),
            from: Source::Default,
            expected: format!("timings that keep Q4's hold window: {e}"),
        })?;
    if promise > Duration::from_secs(30) {
        warnings.push(format!(
            "--quorum-promise {} is long: a crashed holder's address stays dark that long",
            super::secs(&promise)
        ));
    }
    Ok(Coordination::Quorum(QuorumSettings {
        voters,
        key_file,
        key,
        timings,
    }))
}

/// The resolved configuration of `vipd witness`.
#[derive(Debug, Clone, PartialEq)]
pub struct WitnessConfig {
    /// This voter's name in the peer list.
    pub node_name: String,
    /// The quorum (this node's entry is a witness: it votes, never holds).
    pub quorum: QuorumSettings,
    /// HTTP listen address (`/metrics`, `/healthz`, `/readyz`, `/status`).
    pub http_addr: Option<std::net::SocketAddr>,
    /// Log verbosity.
    pub log_level: tracing::Level,
    /// JSON logs instead of text.
    pub log_json: bool,
    /// One line per ignored or doubtful setting.
    pub warnings: Vec<String>,
}

/// `vipd witness`: the same layers as `vipd run` (flag > `VIPD_*` > kube-vip
/// variable > `--config` file > default) for the few options a witness has.
pub(super) fn resolve_witness(
    args: WitnessArgs,
    env: &std::collections::HashMap<String, String>,
    host: &super::HostFacts,
) -> Result<WitnessConfig, ConfigError> {
    let (_, file) = super::validate::config_file(args.config.clone(), env)?;
    let mut r = Resolver {
        flags: args.into_map(),
        env,
        file,
        settings: Vec::new(),
    };
    let mut warnings = Vec::new();
    let default_node = host.hostname.clone().unwrap_or_default();
    let (node_name, _) = r.get_or(&NODE_NAME, default_node, Clone::clone, |s| {
        Ok(s.trim().to_string())
    })?;
    if node_name.is_empty() {
        return Err(ConfigError::Missing {
            option: NODE_NAME.describe(),
            hint: "the witness's name in --peers, e.g. --node-name witness".into(),
        });
    }
    let Coordination::Quorum(mut quorum) =
        resolve_coordination(&mut r, &node_name, true, &mut warnings)?
    else {
        unreachable!("resolve_coordination(witness = true) always yields quorum mode")
    };
    for v in &mut quorum.voters {
        if v.name == node_name {
            v.role = vipd_quorum::VoterRole::Witness;
        }
    }
    let (http_addr, log_level, log_json) = super::validate::observability(&mut r)?;
    Ok(WitnessConfig {
        node_name,
        quorum,
        http_addr,
        log_level,
        log_json,
        warnings,
    })
}

fn read_key(
    path: &Path,
    source: &Source,
    warnings: &mut Vec<String>,
) -> Result<PeerKey, ConfigError> {
    let invalid = |expected: String| ConfigError::Invalid {
        option: PEER_KEY_FILE.describe(),
        value: path.display().to_string(),
        from: source.clone(),
        expected,
    };
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("a readable key file ({e})")))?;
    // A key written with `echo` or an editor ends in a newline; the same
    // file must give the same key on every member.
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let key = bytes[..end].to_vec();
    if key.len() < 16 {
        return Err(invalid(format!(
            "a key of at least 16 bytes (got {}), e.g. from `openssl rand -hex 32`",
            key.len()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o004 != 0 {
                warnings.push(format!(
                    "the quorum key file {} is readable by every user: anyone who reads it can vote; chmod 600 it",
                    path.display()
                ));
            }
        }
    }
    Ok(PeerKey(key))
}
