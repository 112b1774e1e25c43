//! The workload and RBAC kinds a deployment of vipd creates (what
//! `helm install` of `charts/vipd` or `kubectl apply` of `vipd manifest`
//! sends): DaemonSet, ServiceAccount, Role, RoleBinding, ClusterRole,
//! ClusterRoleBinding. TEST SERVER: these are stored, never run.
//!
//! Two checks the real apiserver makes on them, so a malformed manifest fails
//! here as it would in a cluster:
//! * **Decoding** into the typed object (k8s-openapi's types, API v1.33): a
//!   wrong JSON type is a 400; a field the type does not have is an unknown
//!   field, a 400 under `fieldValidation=Strict` (what kubectl and helm's
//!   server-side apply send) and a `Warning: 299` header under the default
//!   `Warn` (KEP-2885, server-side field validation, GA in 1.27).
//! * **Validation** (422), the rules of kubernetes/pkg/apis/apps/validation
//!   and rbac/validation that a chart can get wrong: selector vs template
//!   labels, containers and images present, env var names, roleRef kinds,
//!   rule verbs and API groups, ServiceAccount subjects' namespaces.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::Value;

/// `fieldValidation` query parameter of create and update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Unknown fields are dropped silently.
    Ignore,
    /// Unknown fields are dropped and reported in `Warning` headers (the
    /// server's default).
    Warn,
    /// Unknown fields fail the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query value; anything else is a 400 in the real server,
    /// here the default.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("Ignore") => Self::Ignore,
            Some("Strict") => Self::Strict,
            _ => Self::Warn,
        }
    }
}

/// Decodes `obj` as its typed kind when it is one of this module's kinds.
/// `Ok(None)` for other kinds; `Ok(Some(paths))` with the unknown fields'
/// paths (`spec.template.spec.containers[0].foo`); `Err(message)` for a body
/// that does not decode (a type error).
pub fn unknown_fields(group: &str, kind: &str, obj: &Value) -> Result<Option<Vec<String>>, String> {
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
        obj: &Value,
    ) -> Result<Value, String> {
        let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }
    let back = match (group, kind) {
        ("apps", "DaemonSet") => round_trip::<DaemonSet>(obj)?,
        ("", "ServiceAccount") => round_trip::<ServiceAccount>(obj)?,
        ("rbac.authorization.k8s.io", "Role") => round_trip::<Role>(obj)?,
        ("rbac.authorization.k8s.io", "RoleBinding") => round_trip::<RoleBinding>(obj)?,
        ("rbac.authorization.k8s.io", "ClusterRole") => round_trip::<ClusterRole>(obj)?,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(obj)?
        }
        _ => return Ok(None),
    };
    let mut out = Vec::new();
    // The typed decoder keeps every field it knows (k8s-openapi skips
    // unknown ones), so whatever the round trip lost was unknown.
    diff("", obj, &back, &mut out);
    Ok(Some(out))
}

fn diff(path: &str, sent: &Value, kept: &Value, out: &mut Vec<String>) {
    match (sent, kept) {
        (Value::Object(s), Value::Object(k)) => {
            for (key, v) in s {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => diff(&p, v, kv, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(s), Value::Array(k)) => {
            for (i, (sv, kv)) in s.iter().zip(k).enumerate() {
                diff(&format!("{path}[{i}]"), sv, kv, out);
            }
        }
        _ => {}
    }
}

/// Validation causes (field, message) for this module's kinds, worded as
/// apiserver's field errors.
pub fn validate(group: &str, kind: &str, obj: &Value, causes: &mut Vec<(String, String)>) {
    match (group, kind) {
        ("apps", "DaemonSet") => daemonset(obj, causes),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => rules(obj, causes),
        ("rbac.authorization.k8s.io", "RoleBinding") => binding(obj, false, causes),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => binding(obj, true, causes),
        _ => {}
    }
}

fn required(field: &str, causes: &mut Vec<(String, String)>) {
    causes.push((field.into(), "Required value".into()));
}

/// apps/validation ValidateDaemonSetSpec: a selector, matching the
/// template's labels; core/validation: containers with names and images,
/// C-identifier-like env var names.
fn daemonset(obj: &Value, causes: &mut Vec<(String, String)>) {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object);
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    match selector {
        None if obj.pointer("/spec/selector/matchExpressions").is_none() => {
            required("spec.selector", causes)
        }
        Some(sel) => {
            let matches = sel
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
            if !matches {
                causes.push((
                    "spec.template.metadata.labels".into(),
                    format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        labels.map_or_else(
                            || "null".to_string(),
                            |l| Value::from(l.clone()).to_string()
                        )
                    ),
                ));
            }
        }
        None => {}
    }
    let containers = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        required("spec.template.spec.containers", causes);
        return;
    };
    for (i, c) in containers.iter().enumerate() {
        let at = format!("spec.template.spec.containers[{i}]");
        if c.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            required(&format!("{at}.name"), causes);
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            required(&format!("{at}.image"), causes);
        }
        for (j, e) in c
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = e.get("name").and_then(Value::as_str).unwrap_or("");
            if !env_name_ok(name) {
                causes.push((
                    format!("{at}.env[{j}].name"),
                    format!(
                        "Invalid value: \"{name}\": a valid environment variable name must consist \
                         of alphabetic characters, digits, '_', '-', or '.', and must not start with \
                         a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex \
                         used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
                    ),
                ));
            }
        }
    }
}

fn env_name_ok(name: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    name.bytes()
        .next()
        .is_some_and(|b| !b.is_ascii_digit() && ok(b))
        && name.bytes().all(ok)
}

/// rbac/validation ValidatePolicyRule: verbs always; API groups for
/// resource rules.
fn rules(obj: &Value, causes: &mut Vec<(String, String)>) {
    for (i, r) in obj
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let empty = |k: &str| r.get(k).and_then(Value::as_array).is_none_or(Vec::is_empty);
        if empty("verbs") {
            causes.push((
                format!("rules[{i}].verbs"),
                "Required value: verbs must contain at least one value".into(),
            ));
        }
        if !empty("resources") && empty("apiGroups") {
            causes.push((
                format!("rules[{i}].apiGroups"),
                "Required value: resource rules must supply at least one api group".into(),
            ));
        }
    }
}

/// rbac/validation ValidateRoleBinding / ValidateClusterRoleBinding.
fn binding(obj: &Value, cluster: bool, causes: &mut Vec<(String, String)>) {
    let kind = obj
        .pointer("/roleRef/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let allowed: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !allowed.contains(&kind) {
        let list: Vec<String> = allowed.iter().map(|k| format!("\"{k}\"")).collect();
        causes.push((
            "roleRef.kind".into(),
            format!(
                "Unsupported value: \"{kind}\": supported values: {}",
                list.join(", ")
            ),
        ));
    }
    if obj.pointer("/roleRef/apiGroup").and_then(Value::as_str) != Some("rbac.authorization.k8s.io")
    {
        causes.push((
            "roleRef.apiGroup".into(),
            "Unsupported value: supported values: \"rbac.authorization.k8s.io\"".into(),
        ));
    }
    if obj
        .pointer("/roleRef/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        required("roleRef.name", causes);
    }
    for (i, s) in obj
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if s.get("kind").and_then(Value::as_str) == Some("ServiceAccount") {
            if s.get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
                && cluster
            {
                required(&format!("subjects[{i}].namespace"), causes);
            }
            if s.get("apiGroup")
                .and_then(Value::as_str)
                .is_some_and(|g| !g.is_empty())
            {
                causes.push((
                    format!("subjects[{i}].apiGroup"),
                    "Unsupported value: supported values: \"\"".into(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_field_paths_are_found_and_known_ones_kept() {
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "vipd"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "i", "imagePolicy": "x"}]}},
                "bogus": 1}});
        let got = unknown_fields("apps", "DaemonSet", &ds).expect("decodes");
        assert_eq!(
            got,
            Some(vec![
                "spec.bogus".to_string(),
                "spec.template.spec.containers[0].imagePolicy".to_string()
            ])
        );
        assert_eq!(unknown_fields("", "ConfigMap", &ds), Ok(None));
    }

    #[test]
    fn wrong_json_type_does_not_decode() {
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": 5}});
        assert!(unknown_fields("", "ServiceAccount", &sa).is_err());
    }

    #[test]
    fn daemonset_selector_must_match_template_and_images_are_required() {
        let ds = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "c"}},
                "spec": {"containers": [{"name": "c", "env": [{"name": "1x"}]}]}}}});
        let mut causes = Vec::new();
        validate("apps", "DaemonSet", &ds, &mut causes);
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.template.metadata.labels",
                "spec.template.spec.containers[0].image",
                "spec.template.spec.containers[0].env[0].name"
            ]
        );
    }

    #[test]
    fn cluster_role_binding_refuses_a_role_and_namespaceless_service_accounts() {
        let crb = json!({"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "vipd"}]});
        let mut causes = Vec::new();
        validate(
            "rbac.authorization.k8s.io",
            "ClusterRoleBinding",
            &crb,
            &mut causes,
        );
        let fields: Vec<&str> = causes.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["roleRef.kind", "subjects[0].namespace"]);
        let mut causes = Vec::new();
        validate(
            "rbac.authorization.k8s.io",
            "Role",
            &json!({"rules": [{"resources": ["x"], "verbs": []}]}),
            &mut causes,
        );
        assert_eq!(causes.len(), 2);
    }
}
