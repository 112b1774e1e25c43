//! Parsers for single option values. Each returns `Err(expected)`, a short
//! description of what is accepted, which the caller wraps into a
//! [`ConfigError::Invalid`](super::ConfigError::Invalid) naming the option.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Booleans as Go's `strconv.ParseBool` reads them (kube-vip's env parser),
/// plus yes/no/on/off for humans.
pub(crate) fn boolean(s: &str) -> Result<bool, &'static str> {
    match s.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "yes" | "on" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" | "no" | "off" => Ok(false),
        _ => Err("true or false"),
    }
}

/// Seconds, fractional allowed (`15`, `0.5`), or with a unit (`500ms`, `2s`).
pub(crate) fn seconds(s: &str) -> Result<Duration, &'static str> {
    const EXPECTED: &str = "seconds, e.g. 15 or 0.5";
    let s = s.trim();
    let (number, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(sec) = s.strip_suffix('s') {
        (sec, 1.0)
    } else {
        (s, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| EXPECTED)?;
    let secs = value * scale;
    // An hour is far beyond any sane lease timing; the bound also keeps
    // `Duration::from_secs_f64` away from its panicking range.
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err("seconds between 0 and 86400, e.g. 15 or 0.5");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Whole milliseconds (kube-vip's `vip_arpRate`).
pub(crate) fn millis(s: &str) -> Result<Duration, &'static str> {
    let ms: u64 = s
        .trim()
        .parse()
        .map_err(|_| "milliseconds as a whole number, e.g. 3000 (0 turns it off)")?;
    Ok(Duration::from_millis(ms))
}

/// A literal IP address. kube-vip also takes DNS names (`vip_ddns`); vipd
/// refuses them because a name that resolves differently on two nodes would
/// break single ownership.
pub(crate) fn vip(s: &str) -> Result<IpAddr, &'static str> {
    let ip: IpAddr = s
        .trim()
        .parse()
        .map_err(|_| "one IPv4 or IPv6 address, e.g. 192.0.2.10 or 2001:db8::10 (DNS names and lists are not supported)")?;
    if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
        return Err("a unicast, non-loopback IP address");
    }
    if let IpAddr::V4(v4) = ip {
        if v4.is_broadcast() {
            return Err("a unicast, non-loopback IP address");
        }
    }
    Ok(ip)
}

/// A prefix length, `24` or `/24` (kube-vip's flag help writes `/32`).
pub(crate) fn prefix(s: &str, vip: Option<IpAddr>) -> Result<u8, &'static str> {
    let n: u8 = s
        .trim()
        .trim_start_matches('/')
        .parse()
        .map_err(|_| "a prefix length: 1-32 for IPv4, 1-128 for IPv6")?;
    let max = match vip {
        Some(IpAddr::V6(_)) => 128,
        _ => 32,
    };
    if n == 0 || n > max {
        return Err(if max == 32 {
            "a prefix length 1-32 for an IPv4 address"
        } else {
            "a prefix length 1-128 for an IPv6 address"
        });
    }
    Ok(n)
}

/// The listen address of the HTTP server. Go's `:2112` means every IPv4 and
/// IPv6 address; we bind 0.0.0.0 for it (the kube-vip default) — write
/// `[::]:2112` for IPv6. Empty disables the server.
pub(crate) fn listen_addr(s: &str) -> Result<Option<SocketAddr>, &'static str> {
    const EXPECTED: &str =
        "HOST:PORT with a literal IP, e.g. :2112, 127.0.0.1:2112 or [::]:2112 (empty disables)";
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| EXPECTED)?;
        return Ok(Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port,
        )));
    }
    s.parse().map(Some).map_err(|_| EXPECTED)
}

/// Log level: a name, or kube-vip's numeric `vip_loglevel`.
///
/// kube-vip used logrus levels (0 panic, 1 fatal, 2 error, 3 warn, 4 info,
/// 5 debug, 6 trace); newer releases pass the number to Go's `slog`, where
/// negative values (-4) mean debug. Both readings agree on "bigger or
/// negative = chattier" only at the ends, so we follow logrus for 0–6 and
/// treat any negative number as debug.
pub(crate) fn log_level(s: &str) -> Result<tracing::Level, &'static str> {
    use tracing::Level;
    const EXPECTED: &str =
        "error, warn, info, debug, trace, or kube-vip's logrus number 0-6 (4 = info, 5 = debug)";
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return match n {
            i32::MIN..=-1 => Ok(Level::DEBUG),
            0..=2 => Ok(Level::ERROR),
            3 => Ok(Level::WARN),
            4 => Ok(Level::INFO),
            5 => Ok(Level::DEBUG),
            6 => Ok(Level::TRACE),
            _ => Err(EXPECTED),
        };
    }
    match s.to_ascii_lowercase().as_str() {
        "error" => Ok(Level::ERROR),
        "warn" | "warning" => Ok(Level::WARN),
        "info" => Ok(Level::INFO),
        "debug" => Ok(Level::DEBUG),
        "trace" => Ok(Level::TRACE),
        _ => Err(EXPECTED),
    }
}

/// An interface name as the kernel accepts it (`dev_valid_name`): 1–15
/// bytes, no `/`, `:` or whitespace, not `.` or `..`.
pub(crate) fn interface(s: &str) -> Result<String, &'static str> {
    const EXPECTED: &str =
        "an interface name of 1-15 characters without '/', ':' or spaces, e.g. eth0";
    let s = s.trim();
    if s.is_empty()
        || s.len() > 15
        || s == "."
        || s == ".."
        || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(EXPECTED);
    }
    Ok(s.to_string())
}

/// A Kubernetes object name (RFC 1123 subdomain: lower-case alphanumerics,
/// `-` and `.`, at most 253 characters, alphanumeric at both ends). The same
/// rule keeps etcd keys readable.
pub(crate) fn object_name(s: &str, max: usize) -> Result<String, ()> {
    let ok = !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(s.to_string())
    } else {
        Err(())
    }
}

/// A TCP port.
pub(crate) fn port(s: &str) -> Result<u16, &'static str> {
    match s.trim().parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err("a TCP port 1-65535"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_fractions_and_units() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("15"), Ok(Duration::from_secs(15)));
        assert_eq!(seconds("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds("2s"), Ok(Duration::from_secs(2)));
        assert!(seconds("abc").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("NaN").is_err());
    }

    #[test]
    fn go_style_listen_address_binds_all_ipv4() {
        assert_eq!(
            listen_addr(":2112").ok().flatten(),
            "0.0.0.0:2112".parse().ok()
        );
        assert_eq!(listen_addr(""), Ok(None));
        assert!(listen_addr("localhost:2112").is_err());
    }

    #[test]
    fn logrus_numbers_map_to_tracing_levels() {
        assert_eq!(log_level("4"), Ok(tracing::Level::INFO));
        assert_eq!(log_level("5"), Ok(tracing::Level::DEBUG));
        assert_eq!(log_level("-4"), Ok(tracing::Level::DEBUG));
        assert_eq!(log_level("Warning"), Ok(tracing::Level::WARN));
        assert!(log_level("9").is_err());
        assert!(log_level("loud").is_err());
    }

    #[test]
    fn prefix_range_depends_on_family() {
        let v4 = "192.0.2.1".parse().ok();
        let v6 = "2001:db8::1".parse().ok();
        assert_eq!(prefix("/24", v4), Ok(24));
        assert!(prefix("33", v4).is_err());
        assert_eq!(prefix("64", v6), Ok(64));
        assert!(prefix("129", v6).is_err());
        assert!(prefix("0", v6).is_err());
    }
}
