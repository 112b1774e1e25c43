//! A small YAML emitter for JSON values (block style, as `kubectl` prints).
//!
//! Every string is written double-quoted with JSON escaping, which is valid
//! YAML (YAML 1.2 §7.3.1 accepts every JSON escape), so no value can be read
//! back as another type: `"true"`, `"1"`, `"0.5"`, `""`, `":"` and `"#"`
//! stay strings under YAML 1.1 and 1.2 parsers alike. Keys are written plain
//! only when they are unmistakably strings. This avoids depending on the
//! deprecated `serde_yaml` for output.

use serde_json::Value;

/// One YAML document for `value`, ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    for line in block(value, 0) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A multi-document stream: each document starts with `---`.
pub fn to_yaml_stream(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| format!("---\n{}", to_yaml(v)))
        .collect()
}

/// A scalar or empty collection written inline, or `None` for a block.
fn inline(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(quote(s)),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The lines of `value` as a block node indented by `indent` spaces.
fn block(value: &Value, indent: usize) -> Vec<String> {
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = key(k);
                match (inline(v), v) {
                    (Some(s), _) => lines.push(format!("{pad}{key}: {s}")),
                    (None, Value::Array(_)) => {
                        // Sequences under a key sit at the key's indent
                        // ("- " counts as indentation), kubectl's layout.
                        lines.push(format!("{pad}{key}:"));
                        lines.extend(block(v, indent));
                    }
                    (None, _) => {
                        lines.push(format!("{pad}{key}:"));
                        lines.extend(block(v, indent + 2));
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match inline(item) {
                    Some(s) => lines.push(format!("{pad}- {s}")),
                    None => {
                        // The item's first line shares the dash's line.
                        let inner = block(item, indent + 2);
                        for (i, line) in inner.into_iter().enumerate() {
                            if i == 0 {
                                lines.push(format!("{pad}- {}", &line[indent + 2..]));
                            } else {
                                lines.push(line);
                            }
                        }
                    }
                }
            }
        }
        other => lines.push(format!("{pad}{}", inline(other).unwrap_or_default())),
    }
    lines
}

/// A JSON string literal, which is a YAML double-quoted scalar.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Keys such as `apiVersion` or `node-role.kubernetes.io/control-plane`
/// plain; anything a YAML parser could read as a non-string quoted.
fn key(k: &str) -> String {
    const RESERVED: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let plain = k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !RESERVED.contains(&k.to_ascii_lowercase().as_str());
    if plain {
        k.to_string()
    } else {
        quote(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_maps_and_sequences_use_block_layout() {
        let v = json!({"a": {"b": [1, {"c": "x", "d": []}, [true]]}, "e": {}});
        let text = to_yaml(&v);
        assert_eq!(
            text,
            "a:\n  b:\n  - 1\n  - c: \"x\"\n    d: []\n  - - true\ne: {}\n"
        );
    }

    #[test]
    fn ambiguous_strings_and_keys_are_quoted() {
        let v = json!({"true": "true", "x y": "", "k": ":#\n\"q\""});
        let text = to_yaml(&v);
        assert!(text.contains("\"true\": \"true\""), "{text}");
        assert!(text.contains("\"x y\": \"\""), "{text}");
        assert!(text.contains("k: \":#\\n\\\"q\\\"\""), "{text}");
    }
}
