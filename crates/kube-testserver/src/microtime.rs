//! Kubernetes `MicroTime` parsing with Go's `time.Parse` error messages, and
//! wall-clock timestamps.
//!
//! apiserver decodes `MicroTime` with `time.Parse(RFC3339Micro, s)` where
//! `RFC3339Micro = "2006-01-02T15:04:05.000000Z07:00"`; a failure becomes a 400
//! whose message embeds Go's `ParseError`, e.g.
//! `parsing time "yesterday" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "yesterday" as "2006"`.
//! Go requires exactly six fraction digits for the `.000000` element.

const LAYOUT: &str = "2006-01-02T15:04:05.000000Z07:00";

fn cannot(value: &str, rest: &str, elem: &str) -> String {
    format!("parsing time \"{value}\" as \"{LAYOUT}\": cannot parse \"{rest}\" as \"{elem}\"")
}

fn range(value: &str, what: &str) -> String {
    format!("parsing time \"{value}\": {what} out of range")
}

/// Parses `n` digits (Go's fixed `getnum`); `None` when they are not digits.
fn digits(s: &str, n: usize) -> Option<(i64, &str)> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &s[n..]))
}

/// Go's non-fixed `getnum` (one or two digits), used by the `15` hour element.
fn one_or_two(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    if b.get(1).is_some_and(u8::is_ascii_digit) {
        digits(s, 2)
    } else {
        digits(s, 1)
    }
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an RFC3339Micro time as Go does and returns it re-printed in UTC
/// (apiserver stores and echoes MicroTime normalised that way).
pub fn parse_rfc3339_micro(v: &str) -> Result<String, String> {
    let mut rest = v;
    let (year, r) = digits(rest, 4).ok_or_else(|| cannot(v, rest, "2006"))?;
    rest = r;
    let mut fields = [0i64; 5];
    let elems = [
        ("-", "01"),
        ("-", "02"),
        ("T", "15"),
        (":", "04"),
        (":", "05"),
    ];
    for (i, (lit, elem)) in elems.iter().enumerate() {
        rest = rest.strip_prefix(lit).ok_or_else(|| cannot(v, rest, lit))?;
        let parsed = if *elem == "15" {
            one_or_two(rest)
        } else {
            digits(rest, 2)
        };
        let (n, r) = parsed.ok_or_else(|| cannot(v, rest, elem))?;
        fields[i] = n;
        rest = r;
        let out = match *elem {
            "01" => !(1..=12).contains(&n),
            "15" => !(0..24).contains(&n),
            "04" | "05" => !(0..60).contains(&n),
            _ => false,
        };
        if out {
            let what = match *elem {
                "01" => "month",
                "15" => "hour",
                "04" => "minute",
                _ => "second",
            };
            return Err(range(v, what));
        }
    }
    let [month, day, hour, minute, second] = fields;
    // ".000000": a '.' or ',' then exactly six digits.
    let frac_ok = rest.len() >= 7
        && matches!(rest.as_bytes()[0], b'.' | b',')
        && rest.as_bytes()[1..7].iter().all(u8::is_ascii_digit);
    if !frac_ok {
        return Err(cannot(v, rest, ".000000"));
    }
    let micros: i64 = rest[1..7].parse().map_err(|_| cannot(v, rest, ".000000"))?;
    rest = &rest[7..];
    let offset_s = if let Some(r) = rest.strip_prefix('Z') {
        rest = r;
        0
    } else {
        let b = rest.as_bytes();
        if b.len() < 6 || b[3] != b':' {
            return Err(cannot(v, rest, "Z07:00"));
        }
        let hh = digits(&rest[1..3], 2).map(|x| x.0);
        let mm = digits(&rest[4..6], 2).map(|x| x.0);
        let sign = match b[0] {
            b'+' => 1,
            b'-' => -1,
            _ => 0,
        };
        let (Some(hh), Some(mm)) = (hh, mm) else {
            return Err(cannot(v, rest, "Z07:00"));
        };
        if sign == 0 {
            return Err(cannot(v, rest, "Z07:00"));
        }
        if hh > 24 {
            return Err(range(v, "time zone offset hour"));
        }
        if mm > 60 {
            return Err(range(v, "time zone offset minute"));
        }
        rest = &rest[6..];
        sign * (hh * 3600 + mm * 60)
    };
    if !rest.is_empty() {
        return Err(format!("parsing time \"{v}\": extra text: \"{rest}\""));
    }
    if day < 1 || day > days_in(month, year) {
        return Err(range(v, "day"));
    }
    let secs =
        days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_s;
    Ok(format_micros(secs, micros))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn format_secs(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(86400));
    let s = secs.rem_euclid(86400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn format_micros(secs: i64, micros: i64) -> String {
    format!("{}.{micros:06}Z", format_secs(secs))
}

/// Wall-clock seconds since the Unix epoch.
#[allow(clippy::disallowed_methods)]
fn wall_secs() -> i64 {
    // Wall time is what apiserver stamps into creationTimestamp for other
    // readers; nothing in the server's logic depends on it.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The current wall time as a `meta/v1 Time` (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    format!("{}Z", format_secs(wall_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_bad_renew_time_message_matches_go() {
        assert_eq!(
            parse_rfc3339_micro("yesterday").expect_err("must fail"),
            "parsing time \"yesterday\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"yesterday\" as \"2006\""
        );
    }

    #[test]
    fn microtime_requires_six_fraction_digits() {
        let e = parse_rfc3339_micro("2026-11-26T15:30:00Z").expect_err("must fail");
        assert!(e.ends_with("cannot parse \"Z\" as \".000000\""), "{e}");
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        assert_eq!(
            parse_rfc3339_micro("2026-11-26T01:30:00.000001+02:00").as_deref(),
            Ok("2026-11-25T23:30:00.000001Z")
        );
        assert_eq!(
            parse_rfc3339_micro("2024-02-29T00:00:00.500000Z").as_deref(),
            Ok("2024-02-29T00:00:00.500000Z")
        );
    }

    #[test]
    fn out_of_range_fields_use_go_range_messages() {
        assert_eq!(
            parse_rfc3339_micro("2026-13-01T00:00:00.000000Z").expect_err("must fail"),
            "parsing time \"2026-13-01T00:00:00.000000Z\": month out of range"
        );
        assert_eq!(
            parse_rfc3339_micro("2026-02-30T00:00:00.000000Z").expect_err("must fail"),
            "parsing time \"2026-02-30T00:00:00.000000Z\": day out of range"
        );
    }
}
