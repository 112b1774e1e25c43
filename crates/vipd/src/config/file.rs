//! The optional configuration file (`--config FILE`): one `key: value` or
//! `key = value` per line, keys are the long flag names (`lease-duration`, or
//! `lease_duration`), `#` starts a comment, values may be quoted. This is
//! deliberately not full TOML or YAML: flat keys cover every option and need
//! no parser dependency.

use std::collections::HashMap;
use std::path::Path;

use super::ConfigError;

/// Parses file `text` into a map from canonical (dashed) key to value.
/// `known` lists the accepted keys; anything else is an error, because a
/// misspelt key in a file vipd's own users wrote should not pass silently.
pub(crate) fn parse(
    path: &Path,
    text: &str,
    known: &[&str],
) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = strip_comment(raw).trim();
        if line.is_empty() || line.starts_with('[') {
            // `[section]` headers are tolerated so a flat TOML file works.
            continue;
        }
        let Some(split) = line.find([':', '=']) else {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                line: line_no,
                message: "expected `key: value` or `key = value`".into(),
            });
        };
        let key = line[..split].trim().replace('_', "-");
        let value = unquote(line[split + 1..].trim());
        if !known.contains(&key.as_str()) {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                line: line_no,
                message: format!(
                    "unknown key `{key}`; accepted keys are the long flag names: {}",
                    known.join(", ")
                ),
            });
        }
        if out.insert(key.clone(), value.to_string()).is_some() {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                line: line_no,
                message: format!("key `{key}` given twice"),
            });
        }
    }
    Ok(out)
}

/// Drops a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_toml_style_lines_parse_to_dashed_keys() {
        let text = "# vipd\naddress: 192.0.2.10\nlease_duration = 30 # flaky link\n[x]\nnode-name: \"n#1\"\n";
        let map = parse(
            Path::new("f"),
            text,
            &["address", "lease-duration", "node-name"],
        );
        let map = map.ok().unwrap_or_default();
        assert_eq!(map.get("address").map(String::as_str), Some("192.0.2.10"));
        assert_eq!(map.get("lease-duration").map(String::as_str), Some("30"));
        assert_eq!(map.get("node-name").map(String::as_str), Some("n#1"));
    }

    #[test]
    fn unknown_key_names_the_line() {
        let err = parse(Path::new("f"), "\nadress: 1\n", &["address"])
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("f:2") && e.contains("adress")),
            "{err:?}"
        );
    }
}
