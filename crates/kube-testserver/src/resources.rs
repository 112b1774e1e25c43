//! The resources the test server serves and their per-kind behaviour
//! (apiserver's registry strategies: create-on-update, unconditional update,
//! status subresource, defaulting, validation).

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ResourceId};
use crate::microtime;

/// One served resource (a `GroupVersionResource` and its strategy flags).
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceDef {
    /// API group, "" for core.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Resource plural, as in the URL.
    pub plural: &'static str,
    /// Kind of the objects.
    pub kind: &'static str,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Has a `/status` subresource (status is ignored on create and main-resource updates).
    pub has_status: bool,
    /// `AllowCreateOnUpdate` of the registry strategy: PUT on a missing object creates it.
    pub allow_create_on_update: bool,
    /// `AllowUnconditionalUpdate`: PUT without resourceVersion is accepted.
    pub allow_unconditional_update: bool,
    /// DELETE answers with the deleted object rather than a success Status.
    pub return_deleted_object: bool,
    /// Objects carry `metadata.generation`.
    pub has_generation: bool,
}

impl ResourceDef {
    /// `apiVersion` of the objects (`v1` or `group/version`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (`leases.coordination.k8s.io`), or the plural for core.
    pub fn qualified(&self) -> String {
        ResourceId::from(self).qualified()
    }

    /// `Kind.group` as Go's `GroupKind.String()` prints it.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

impl<'a> From<&'a ResourceDef> for ResourceId<'a> {
    fn from(res: &'a ResourceDef) -> Self {
        ResourceId {
            group: res.group,
            plural: res.plural,
        }
    }
}

const fn def(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    has_status: bool,
    allow_create_on_update: bool,
    allow_unconditional_update: bool,
) -> ResourceDef {
    ResourceDef {
        group,
        version: "v1",
        plural,
        kind,
        namespaced,
        has_status,
        allow_create_on_update,
        allow_unconditional_update,
        return_deleted_object: false,
        has_generation: false,
    }
}

/// Every served resource. Strategy flags follow kubernetes/pkg/registry/*/strategy.go
/// (v1.28): leases allow create-on-update but not unconditional update (hence the
/// transcript's 422 for a PUT without resourceVersion); services answer DELETE
/// with the object.
pub static RESOURCES: &[ResourceDef] = &[
    def(
        "coordination.k8s.io",
        "leases",
        "Lease",
        true,
        false,
        true,
        false,
    ),
    def("", "events", "Event", true, false, true, true),
    def("events.k8s.io", "events", "Event", true, false, true, true),
    ResourceDef {
        return_deleted_object: true,
        ..def("", "services", "Service", true, true, false, true)
    },
    ResourceDef {
        has_generation: true,
        ..def(
            "discovery.k8s.io",
            "endpointslices",
            "EndpointSlice",
            true,
            false,
            false,
            true,
        )
    },
    def("", "nodes", "Node", false, true, false, true),
    def("", "configmaps", "ConfigMap", true, false, false, true),
    // What a deployment of vipd creates (charts/vipd, `vipd manifest`):
    // stored and validated, never run (crate::workloads).
    def(
        "",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        false,
        true,
    ),
    ResourceDef {
        has_generation: true,
        ..def("apps", "daemonsets", "DaemonSet", true, true, false, true)
    },
    def(
        "rbac.authorization.k8s.io",
        "roles",
        "Role",
        true,
        false,
        true,
        true,
    ),
    def(
        "rbac.authorization.k8s.io",
        "rolebindings",
        "RoleBinding",
        true,
        false,
        true,
        true,
    ),
    def(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "ClusterRole",
        false,
        false,
        true,
        true,
    ),
    def(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        false,
        true,
        true,
    ),
];

/// Looks a resource up by URL parts.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Looks a resource up by an object's `apiVersion` and `kind`.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Checks the body's typed fields the way the JSON decoder would (400 on failure)
/// and normalises them (MicroTime re-printed in UTC with microseconds).
pub fn decode_check(res: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let fields: &[(&str, &str)] = match (res.group, res.kind) {
        ("coordination.k8s.io", "Lease") => &[("spec", "acquireTime"), ("spec", "renewTime")],
        ("events.k8s.io", "Event") => &[("", "eventTime")],
        _ => &[],
    };
    for (parent, field) in fields {
        let slot = if parent.is_empty() {
            obj.get_mut(*field)
        } else {
            obj.get_mut(*parent).and_then(|p| p.get_mut(*field))
        };
        let Some(slot) = slot else { continue };
        let bad = |why: String| {
            ApiError::bad_request(&format!(
                "{} in version \"{}\" cannot be handled as a {}: {why}",
                res.kind, res.version, res.kind
            ))
        };
        match slot {
            Value::Null => {}
            Value::String(s) => {
                let t = microtime::parse_rfc3339_micro(s).map_err(bad)?;
                *slot = Value::String(t);
            }
            other => {
                let what = match other {
                    Value::Bool(_) => "bool",
                    Value::Number(_) => "number",
                    Value::Array(_) => "array",
                    _ => "object",
                };
                return Err(bad(format!(
                    "json: cannot unmarshal {what} into Go value of type string"
                )));
            }
        }
    }
    Ok(())
}

/// Validates the object as the registry strategy would (422 on failure, named by Kind).
pub fn validate(res: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    if !is_dns_subdomain(name) {
        causes.push((
            "metadata.name".to_string(),
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
                 character (e.g. 'example.com', regex used for validation is \
                 '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ),
        ));
    }
    crate::workloads::validate(res.group, res.kind, obj, &mut causes);
    if res.kind == "Lease" {
        // kubernetes/pkg/apis/coordination/validation: duration > 0, transitions >= 0.
        if let Some(d) = obj
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
        {
            if d <= 0 {
                causes.push((
                    "spec.leaseDurationSeconds".into(),
                    format!("Invalid value: {d}: must be greater than 0"),
                ));
            }
        }
        if let Some(t) = obj
            .pointer("/spec/leaseTransitions")
            .and_then(Value::as_i64)
        {
            if t < 0 {
                causes.push((
                    "spec.leaseTransitions".into(),
                    format!("Invalid value: {t}: must be greater than or equal to 0"),
                ));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &res.qualified_kind(),
            res.group,
            res.kind,
            name,
            &causes,
        ))
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

/// Server-side defaults applied on create (and on update where values are missing).
/// `old` is the stored object on update; allocated values (clusterIP, node ports)
/// are kept from it, as apiserver's `patchAllocatedValues` does.
pub fn apply_defaults(
    res: &ResourceDef,
    obj: &mut Value,
    old: Option<&Value>,
    alloc: &mut Allocator,
) {
    match (res.group, res.kind) {
        ("", "Event") => {
            if let Some(m) = obj.as_object_mut() {
                m.entry("eventTime").or_insert(Value::Null);
                m.entry("reportingComponent").or_insert(json!(""));
                m.entry("reportingInstance").or_insert(json!(""));
            }
        }
        ("", "Service") => default_service(obj, old, alloc),
        _ => {}
    }
}

/// Allocates cluster IPs and node ports for Services.
#[derive(Debug)]
pub struct Allocator {
    next_ip: u32,
    next_port: u16,
    /// First three octets of the cluster-IP range (a /24).
    pub cluster_ip_prefix: [u8; 3],
}

impl Default for Allocator {
    fn default() -> Self {
        Self {
            next_ip: 10,
            next_port: 30000,
            // TEST-NET-3 (RFC 5737): the project only uses documentation ranges.
            // A clusterIP is only data here; nothing routes or configures it.
            cluster_ip_prefix: [203, 0, 113],
        }
    }
}

impl Allocator {
    fn ip(&mut self) -> String {
        let host = self.next_ip;
        self.next_ip = if self.next_ip >= 254 {
            10
        } else {
            self.next_ip + 1
        };
        let [a, b, c] = self.cluster_ip_prefix;
        format!("{a}.{b}.{c}.{host}")
    }
    fn port(&mut self) -> u16 {
        let p = self.next_port;
        self.next_port = if self.next_port >= 32767 {
            30000
        } else {
            self.next_port + 1
        };
        p
    }
}

fn default_service(obj: &mut Value, old: Option<&Value>, alloc: &mut Allocator) {
    let old_spec = old
        .and_then(|o| o.get("spec"))
        .cloned()
        .unwrap_or(json!({}));
    let Some(m) = obj.as_object_mut() else { return };
    let spec = m.entry("spec").or_insert(json!({}));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    spec.insert("type".into(), json!(ty));
    let lb = ty == "LoadBalancer";
    let node_ports = lb || ty == "NodePort";
    if ty != "ExternalName" {
        for key in ["clusterIP", "clusterIPs"] {
            if spec.get(key).is_none() {
                if let Some(v) = old_spec.get(key) {
                    spec.insert(key.into(), v.clone());
                }
            }
        }
        if spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            let ip = alloc.ip();
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        if spec.get("clusterIPs").is_none() {
            let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if node_ports {
        spec.entry("externalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    if lb {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert(json!(true));
    }
    let old_ports = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            let Some(p) = p.as_object_mut() else { continue };
            p.entry("protocol").or_insert(json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                p.entry("targetPort").or_insert(port);
            }
            if node_ports && p.get("nodePort").is_none() {
                let same = old_ports.iter().find(|o| o.get("port") == p.get("port"));
                let np = same
                    .and_then(|o| o.get("nodePort").cloned())
                    .unwrap_or_else(|| json!(alloc.port()));
                p.insert("nodePort".into(), np);
            }
        }
    }
    let local = spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
    if lb && local && spec.get("healthCheckNodePort").is_none() {
        let hc = old_spec
            .get("healthCheckNodePort")
            .cloned()
            .unwrap_or_else(|| json!(alloc.port()));
        spec.insert("healthCheckNodePort".into(), hc);
    }
    m.entry("status").or_insert(json!({"loadBalancer": {}}));
}

/// Drops status fields a v1.28 apiserver does not know: `ingress[].ipMode`
/// (KEP-1860, alpha and off by default in 1.29, absent in 1.28) is pruned
/// silently, as the transcript `service-status-merge-patch` shows.
pub fn prune_unknown_status(res: &ResourceDef, obj: &mut Value) {
    if res.kind != "Service" {
        return;
    }
    if let Some(ingress) = obj
        .pointer_mut("/status/loadBalancer/ingress")
        .and_then(Value::as_array_mut)
    {
        for i in ingress.iter_mut().filter_map(Value::as_object_mut) {
            i.remove("ipMode");
        }
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}
