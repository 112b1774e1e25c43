//! How `check-config` shows the effective configuration: the
//! `name = value  (source)` table and the value formats it uses.

use std::time::Duration;

use super::{Config, Setting};

impl Config {
    /// The effective-values table `check-config` prints: one
    /// `name = value  (source)` line per option.
    pub fn describe(&self) -> String {
        table(&self.settings, "")
    }
}

/// `settings` as `name = value  (source)` lines, names padded to one
/// width, each line after `indent`.
pub(super) fn table(settings: &[Setting], indent: &str) -> String {
    let width = settings.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in settings {
        out.push_str(&format!(
            "{indent}{:<width$} = {}  ({})\n",
            s.name, s.value, s.source
        ));
    }
    out
}

/// A duration as `check-config` shows it (`1.5s`).
pub(super) fn secs(d: &Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A boolean as `check-config` shows it.
pub(super) fn yes_no(b: &bool) -> String {
    b.to_string()
}
