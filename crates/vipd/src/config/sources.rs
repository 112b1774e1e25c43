//! Where values come from: the four layers (flag, `VIPD_*` variable,
//! kube-vip variable, `--config` file) consulted in precedence order by
//! [`Resolver`], and the [`Source`] and [`Setting`] records that
//! `check-config` prints. Turning values into a [`Config`](super::Config)
//! is in `validate.rs`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use super::options::Opt;
use super::ConfigError;

/// Where an effective value came from (printed by `check-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// A `VIPD_*` variable (its name).
    Env(String),
    /// A kube-vip variable (its name).
    KubeVipEnv(String),
    /// The `--config` file.
    File,
    /// The pod's service-account namespace file (its path).
    ServiceAccount(PathBuf),
    /// A file found on the host (kubeadm's cluster CA).
    HostFile(PathBuf),
    /// The built-in default.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::KubeVipEnv(name) => write!(f, "kube-vip env {name}"),
            Source::File => f.write_str("file"),
            Source::ServiceAccount(path) => write!(f, "service account {}", path.display()),
            Source::HostFile(path) => write!(f, "found {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// One line of the effective-values table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The option's long flag name, e.g. `lease-duration`.
    pub name: &'static str,
    /// The effective value as text.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

/// A raw value and its origin.
pub(super) struct Raw {
    pub(super) value: String,
    pub(super) source: Source,
}

/// The four layers, consulted in precedence order.
pub(super) struct Resolver<'a> {
    pub(super) flags: HashMap<&'static str, String>,
    pub(super) env: &'a HashMap<String, String>,
    pub(super) file: HashMap<String, String>,
    pub(super) settings: Vec<Setting>,
}

impl Resolver<'_> {
    pub(super) fn raw(&self, opt: &Opt) -> Option<Raw> {
        if let Some(v) = self.flags.get(opt.key) {
            return Some(Raw {
                value: v.clone(),
                source: Source::Flag,
            });
        }
        if let Some(v) = self.env.get(opt.env) {
            return Some(Raw {
                value: v.clone(),
                source: Source::Env(opt.env.into()),
            });
        }
        for k in opt.kube {
            // kube-vip reads `os.Getenv(..) != ""`: empty means unset.
            if let Some(v) = self.env.get(*k).filter(|v| !v.trim().is_empty()) {
                return Some(Raw {
                    value: v.clone(),
                    source: Source::KubeVipEnv((*k).into()),
                });
            }
        }
        self.file.get(opt.key).map(|v| Raw {
            value: v.clone(),
            source: Source::File,
        })
    }

    /// Parses the option if set anywhere; records it for `describe`.
    pub(super) fn get<T>(
        &mut self,
        opt: &Opt,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<Option<(T, Source)>, ConfigError> {
        let Some(raw) = self.raw(opt) else {
            return Ok(None);
        };
        match parse(&raw.value) {
            Ok(v) => Ok(Some((v, raw.source))),
            Err(expected) => Err(ConfigError::Invalid {
                option: opt.describe(),
                value: raw.value,
                from: raw.source,
                expected: expected.into(),
            }),
        }
    }

    /// [`Resolver::get`] with a default, recording the effective value.
    pub(super) fn get_or<T>(
        &mut self,
        opt: &Opt,
        default: T,
        show: impl Fn(&T) -> String,
        parse: impl FnOnce(&str) -> Result<T, &'static str>,
    ) -> Result<(T, Source), ConfigError> {
        let found = match self.raw(opt) {
            None => None,
            Some(raw) => match parse(&raw.value) {
                Ok(v) => Some((v, raw.source)),
                Err(expected) => {
                    return Err(ConfigError::Invalid {
                        option: opt.describe(),
                        value: raw.value,
                        from: raw.source,
                        expected: expected.into(),
                    })
                }
            },
        };
        let (value, source) = found.unwrap_or((default, Source::Default));
        self.record(opt, show(&value), source.clone());
        Ok((value, source))
    }

    pub(super) fn record(&mut self, opt: &Opt, value: String, source: Source) {
        self.settings.push(Setting {
            name: opt.key,
            value,
            source,
        });
    }
}

/// Overrides the recorded source of `opt` (a value derived elsewhere).
pub(super) fn set_source(settings: &mut [Setting], opt: &Opt, source: Source) {
    if let Some(s) = settings.iter_mut().find(|s| s.name == opt.key) {
        s.source = source;
    }
}

pub(super) fn opt_path(s: &str) -> Result<PathBuf, &'static str> {
    if s.trim().is_empty() {
        Err("a file path")
    } else {
        Ok(PathBuf::from(s.trim()))
    }
}
