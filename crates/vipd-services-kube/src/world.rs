//! Kubernetes objects → the LoadBalancer addresses vipd serves and which
//! nodes may own each one. Pure: the watch tasks feed [`World`] and the
//! assigner calls [`World::derive`]; no IO, no clock.
//!
//! Which Services are served follows kube-vip (so a cluster can switch
//! without relabelling anything):
//!
//! - only `spec.type: LoadBalancer` (kube-vip `pkg/services/services.go`);
//! - `kube-vip.io/ignore: "true"` (exactly that string) skips the Service;
//! - load balancer class, kube-vip's default "legacy" handling
//!   (`lbClassFilterLegacy` in `pkg/services/watch_services.go`): a Service
//!   naming another class is skipped; one without a class is served unless
//!   `lb_class_only` is set;
//! - addresses from the `kube-vip.io/loadbalancerIPs` annotation (split on
//!   commas, each entry trimmed, as kube-vip's `FetchServiceAddresses`),
//!   else `spec.loadBalancerIP`.
//!
//! Deliberate differences from kube-vip:
//!
//! - kube-vip falls back to `status.loadBalancer.ingress` when neither is
//!   set (`FetchServiceAddresses` in `pkg/services/instance.go`), so it ends
//!   up binding addresses another controller published (k3s's ServiceLB
//!   writes node IPs there). vipd never reads status: a Service without an
//!   address is [`Derived::unallocated`], for vipd's IPAM.
//! - `0.0.0.0` asks kube-vip for a DHCP lease on a macvlan
//!   (`NewInstance` in `pkg/services/instance.go`). vipd has no DHCP client,
//!   so such a Service is reported in [`Derived::problems`] and not served.
//! - kube-vip keeps unparsable entries (newer versions treat them as DNS
//!   names); vipd reports them and serves the entries that parse.
//! - A blank annotation counts as absent (kube-vip would try to bind "").
//!
//! Eligibility (issue 5, item 3) is expressed as a
//! [`vipd_services::Policy`] per address; see [`World::derive`].

use k8s_openapi::api::core::v1::{Node, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use vipd_services::{NodeId, Policy, ZonePin};

/// Annotation carrying a Service's addresses (kube-vip and
/// kube-vip-cloud-provider write it), comma-separated, v4 and v6.
pub const ANNOTATION_LB_IPS: &str = "kube-vip.io/loadbalancerIPs";
/// Annotation that makes kube-vip (and vipd) leave a Service alone when set
/// to `"true"`.
pub const ANNOTATION_IGNORE: &str = "kube-vip.io/ignore";
/// vipd annotation pinning a Service's addresses to a zone (the value of
/// the nodes' [`LABEL_ZONE`]).
pub const ANNOTATION_ZONE: &str = "vipd.io/zone";
/// vipd annotation, `"true"` or `"false"`: may a zone-pinned address move
/// out of its zone when no node of the zone can own it. Overrides
/// [`WorldConfig::zone_fallback`].
pub const ANNOTATION_ZONE_FALLBACK: &str = "vipd.io/zone-fallback";
/// Node label (any value) keeping a node out of every load balancer, as the
/// Kubernetes service controller honours it.
pub const LABEL_EXCLUDE_LB: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// Well-known node label naming the node's zone.
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Label the EndpointSlice controller puts on every slice of a Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// kube-vip's default load balancer class (`--lbClassName`).
pub const DEFAULT_LB_CLASS: &str = "kube-vip.io/kube-vip-class";

/// Which Services and nodes take part (from vipd's configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldConfig {
    /// `svc_namespace`: only Services of this namespace; `None` = all.
    pub namespace: Option<String>,
    /// `lb_class_only`: serve only Services whose `spec.loadBalancerClass`
    /// is `lb_class_name` (otherwise Services without a class too).
    pub lb_class_only: bool,
    /// `lb_class_name`: the class vipd answers to.
    pub lb_class_name: String,
    /// Labels a node must carry to own addresses; empty = any node.
    pub node_selector: BTreeMap<String, String>,
    /// Default for [`ANNOTATION_ZONE_FALLBACK`] when a Service pins a zone.
    pub zone_fallback: bool,
}

impl Default for WorldConfig {
    /// kube-vip's defaults; a zone pin holds (no fallback) unless asked,
    /// since pinning exists to stop cross-zone drift.
    fn default() -> Self {
        Self {
            namespace: None,
            lb_class_only: false,
            lb_class_name: DEFAULT_LB_CLASS.to_owned(),
            node_selector: BTreeMap::new(),
            zone_fallback: false,
        }
    }
}

/// The cached objects: keys are `namespace/name` for Services and
/// EndpointSlices, the name for Nodes.
#[derive(Clone, Debug, Default)]
pub struct World {
    services: BTreeMap<String, Service>,
    slices: BTreeMap<String, EndpointSlice>,
    nodes: BTreeMap<String, Node>,
}

/// IP family of a Service (`spec.ipFamilies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// `IPv4`.
    V4,
    /// `IPv6`.
    V6,
}

/// One served Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SvcInfo {
    /// `namespace/name`.
    pub key: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Requested addresses in annotation order, without duplicates; empty
    /// for [`Derived::unallocated`] Services.
    pub addresses: Vec<IpAddr>,
    /// `(protocol, port)` of every `spec.ports` entry (protocol defaults to
    /// `TCP` as in the API).
    pub ports: BTreeSet<(String, u16)>,
    /// Families from `spec.ipFamilies`; when absent, both for the dual-stack
    /// policies and IPv4 otherwise (the API server normally fills it).
    pub families: Vec<IpFamily>,
    /// `spec.ipFamilyPolicy: RequireDualStack`.
    pub require_dual_stack: bool,
    /// `spec.externalTrafficPolicy: Local`.
    pub local: bool,
}

/// Everything [`World::derive`] concludes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Derived {
    /// Every address to announce.
    pub addresses: BTreeSet<IpAddr>,
    /// Eligibility, only for addresses some rule restricts (absent = every
    /// live node). `nodes: Some(empty)` means nobody may own the address.
    pub policies: BTreeMap<IpAddr, Policy>,
    /// Served Services that have addresses, by key.
    pub services: BTreeMap<String, SvcInfo>,
    /// Address → keys of the Services sharing it (sorted).
    pub by_address: BTreeMap<IpAddr, Vec<String>>,
    /// Served Services that request no address at all (IPAM's job).
    pub unallocated: Vec<SvcInfo>,
    /// `(service key, reason)` for what vipd will not or cannot do.
    pub problems: Vec<(String, String)>,
}

/// `namespace/name` of a namespaced object.
pub fn object_key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn node_key(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

fn keyed<T>(v: Vec<T>, key: impl Fn(&T) -> String) -> BTreeMap<String, T> {
    v.into_iter().map(|o| (key(&o), o)).collect()
}

fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(name).map(String::as_str)
}

fn label<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(name).map(String::as_str)
}

impl World {
    /// Replaces every Service (after a list).
    pub fn replace_services(&mut self, v: Vec<Service>) {
        self.services = keyed(v, |s| object_key(&s.metadata));
    }

    /// Adds or updates one Service (watch ADDED / MODIFIED).
    pub fn apply_service(&mut self, s: Service) {
        self.services.insert(object_key(&s.metadata), s);
    }

    /// Forgets one Service (watch DELETED).
    pub fn delete_service(&mut self, s: &Service) {
        self.services.remove(&object_key(&s.metadata));
    }

    /// Replaces every EndpointSlice (after a list).
    pub fn replace_slices(&mut self, v: Vec<EndpointSlice>) {
        self.slices = keyed(v, |s| object_key(&s.metadata));
    }

    /// Adds or updates one EndpointSlice.
    pub fn apply_slice(&mut self, s: EndpointSlice) {
        self.slices.insert(object_key(&s.metadata), s);
    }

    /// Forgets one EndpointSlice.
    pub fn delete_slice(&mut self, s: &EndpointSlice) {
        self.slices.remove(&object_key(&s.metadata));
    }

    /// Replaces every Node (after a list).
    pub fn replace_nodes(&mut self, v: Vec<Node>) {
        self.nodes = keyed(v, node_key);
    }

    /// Adds or updates one Node.
    pub fn apply_node(&mut self, n: Node) {
        self.nodes.insert(node_key(&n), n);
    }

    /// Forgets one Node.
    pub fn delete_node(&mut self, n: &Node) {
        self.nodes.remove(&node_key(n));
    }

    /// The cached Service with key `namespace/name`.
    pub fn service(&self, key: &str) -> Option<&Service> {
        self.services.get(key)
    }

    /// Services whose address IPAM must hand out again: allocated by an
    /// IPAM (label `implementation: kube-vip`, as kube-vip-cloud-provider
    /// and vipd write it) yet sharing an address with an *older* Service
    /// (creationTimestamp, then key) they may not share with — another
    /// namespace, sharing not allowed for the namespace (`allow_share`), or
    /// overlapping `(protocol, port)`. Two allocators racing (two assigners
    /// for a moment, or vipd next to the cloud provider during a migration)
    /// can produce that; the repair is deterministic: the older Service
    /// keeps the address. Services whose address a user set are never
    /// touched (they are only reported, see [`Derived::problems`]).
    pub fn ipam_conflicts(
        &self,
        derived: &Derived,
        allow_share: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let age = |key: &String| {
            let created = self
                .services
                .get(key)
                .and_then(|s| s.metadata.creation_timestamp.clone())
                .map(|t| t.0);
            (created, key.clone())
        };
        let mut losers = BTreeSet::new();
        for keys in derived.by_address.values().filter(|k| k.len() > 1) {
            let mut ordered: Vec<&String> = keys.iter().collect();
            ordered.sort_by_key(|k| age(k));
            let mut kept: Vec<&SvcInfo> = Vec::new();
            for key in ordered {
                let Some(info) = derived.services.get(key.as_str()) else {
                    continue;
                };
                let clash = kept.iter().any(|k| {
                    k.namespace != info.namespace
                        || !allow_share(&info.namespace)
                        || k.ports.is_empty()
                        || info.ports.is_empty()
                        || !k.ports.is_disjoint(&info.ports)
                });
                if clash && self.ipam_labelled(key) {
                    losers.insert(key.clone());
                } else {
                    kept.push(info);
                }
            }
        }
        losers.into_iter().collect()
    }

    fn ipam_labelled(&self, key: &str) -> bool {
        self.services
            .get(key)
            .and_then(|s| s.metadata.labels.as_ref())
            .and_then(|l| l.get("implementation"))
            .is_some_and(|v| v == "kube-vip")
    }

    /// Derives the served addresses and their eligibility.
    ///
    /// The node universe is the Node objects known. A node may own an
    /// address of a Service when it
    /// - does not carry [`LABEL_EXCLUDE_LB`] (any value),
    /// - matches [`WorldConfig::node_selector`],
    /// - for `externalTrafficPolicy: Local`, hosts a ready endpoint of the
    ///   Service: kube-proxy drops traffic on other nodes, so announcing
    ///   from them blackholes it (kube-vip withdraws too);
    ///
    /// and a zone pin ([`ANNOTATION_ZONE`]) prefers that zone's nodes. When
    /// none of this restricts anything (no selector, no excluded node, not
    /// Local, no pin) the address has no policy, so nodes whose Node object
    /// is not (yet) cached may own it too. Services sharing an address
    /// combine with [`Policy::shared_with`], in key order.
    pub fn derive(&self, cfg: &WorldConfig) -> Derived {
        let nodes = NodeIndex::new(&self.nodes, cfg);
        let ready = self.ready_nodes();
        let mut out = Derived::default();
        // Per address: the combined policy and who claimed which port.
        let mut combined: BTreeMap<IpAddr, Policy> = BTreeMap::new();
        let mut claimed: BTreeMap<IpAddr, BTreeMap<(String, u16), String>> = BTreeMap::new();

        for (key, svc) in &self.services {
            let Some(spec) = svc.spec.as_ref() else {
                continue;
            };
            if !served(svc, spec, cfg) {
                continue;
            }
            let info = match svc_info(key, svc, spec, &mut out.problems) {
                Requested::Addresses(info) => info,
                Requested::Nothing(info) => {
                    out.unallocated.push(info);
                    continue;
                }
                Requested::Unusable => continue,
            };
            let policy = policy(svc, &info, &nodes, &ready, cfg, &mut out.problems);
            for addr in &info.addresses {
                out.by_address.entry(*addr).or_default().push(key.clone());
                let ports = claimed.entry(*addr).or_default();
                for port in &info.ports {
                    match ports.get(port) {
                        Some(other) => out.problems.push((
                            key.clone(),
                            format!(
                                "{}/{} on {addr} is also used by Service {other}",
                                port.0, port.1
                            ),
                        )),
                        None => {
                            ports.insert(port.clone(), key.clone());
                        }
                    }
                }
                let merged = match combined.get(addr) {
                    None => policy.clone(),
                    Some(prev) => {
                        if let (Some(a), Some(b)) = (&prev.zone, &policy.zone) {
                            if a.preferred != b.preferred {
                                out.problems.push((
                                    key.clone(),
                                    format!(
                                        "{addr} is shared with Services pinned to another \
                                         zone; the first pin (by key) wins"
                                    ),
                                ));
                            }
                        }
                        prev.shared_with(&policy)
                    }
                };
                combined.insert(*addr, merged);
            }
            out.services.insert(key.clone(), info);
        }

        out.addresses = out.by_address.keys().copied().collect();
        out.policies = combined
            .into_iter()
            .filter(|(_, p)| *p != Policy::default())
            .collect();
        out
    }

    /// Nodes hosting a ready endpoint, per `(namespace, service name)`.
    /// The EndpointSlice API: `conditions.ready` absent means ready
    /// ("unknown state ... should be interpreted as ready"), and the
    /// controller sets it false for terminating endpoints.
    ///
    /// A Service with no ready endpoint anywhere falls back to the nodes
    /// whose endpoints are terminating but still `serving` (KEP-1669):
    /// kube-proxy sends a node's `Local` traffic to those when it has no
    /// ready one, so announcing from them keeps a one-replica rolling
    /// update (old pod terminating, new one not ready yet) reachable
    /// instead of withdrawn everywhere. While any endpoint is ready, only
    /// ready ones count: new connections go where they are welcome.
    fn ready_nodes(&self) -> BTreeMap<(String, String), BTreeSet<NodeId>> {
        let mut ready: BTreeMap<(String, String), BTreeSet<NodeId>> = BTreeMap::new();
        let mut serving: BTreeMap<(String, String), BTreeSet<NodeId>> = BTreeMap::new();
        for slice in self.slices.values() {
            let Some(svc) = label(&slice.metadata, LABEL_SERVICE_NAME) else {
                continue;
            };
            let key = (
                slice.metadata.namespace.clone().unwrap_or_default(),
                svc.to_owned(),
            );
            let set = ready.entry(key.clone()).or_default();
            for ep in &slice.endpoints {
                let Some(node) = &ep.node_name else { continue };
                let c = ep.conditions.as_ref();
                if c.and_then(|c| c.ready).unwrap_or(true) {
                    set.insert(node.clone());
                } else if c.and_then(|c| c.serving) == Some(true) {
                    serving.entry(key.clone()).or_default().insert(node.clone());
                }
            }
        }
        for (key, nodes) in &mut ready {
            if nodes.is_empty() {
                if let Some(s) = serving.remove(key) {
                    *nodes = s;
                }
            }
        }
        ready
    }
}

/// One Service's own policy (before sharing).
fn policy(
    svc: &Service,
    info: &SvcInfo,
    nodes: &NodeIndex,
    ready: &BTreeMap<(String, String), BTreeSet<NodeId>>,
    cfg: &WorldConfig,
    problems: &mut Vec<(String, String)>,
) -> Policy {
    let key = info.key.as_str();
    let mut policy = Policy::default();
    if info.local {
        let hosting = ready
            .get(&(info.namespace.clone(), info.name.clone()))
            .cloned()
            .unwrap_or_default();
        policy.nodes = Some(nodes.eligible.intersection(&hosting).cloned().collect());
    } else if nodes.restricted {
        policy.nodes = Some(nodes.eligible.clone());
    }
    if let Some(zone) = annotation(&svc.metadata, ANNOTATION_ZONE) {
        let zone = zone.trim();
        if zone.is_empty() {
            problems.push((
                key.to_owned(),
                format!("{ANNOTATION_ZONE} is empty: not pinned"),
            ));
        } else {
            let fallback = match annotation(&svc.metadata, ANNOTATION_ZONE_FALLBACK) {
                None => cfg.zone_fallback,
                Some(v) => match v.trim() {
                    "true" => true,
                    "false" => false,
                    other => {
                        problems.push((
                            key.to_owned(),
                            format!(
                                "{ANNOTATION_ZONE_FALLBACK}: {other:?} is neither \"true\" \
                                 nor \"false\"; using the default ({})",
                                cfg.zone_fallback
                            ),
                        ));
                        cfg.zone_fallback
                    }
                },
            };
            policy.zone = Some(ZonePin {
                preferred: nodes.zones.get(zone).cloned().unwrap_or_default(),
                fallback,
            });
        }
    }
    policy
}

/// Node-level eligibility, computed once per derivation.
struct NodeIndex {
    /// Known nodes passing the exclude label and the node selector.
    eligible: BTreeSet<NodeId>,
    /// Whether that set restricts anything (a selector is configured or a
    /// node is excluded), i.e. whether `Policy::nodes` must be `Some`.
    restricted: bool,
    /// Zone label value → known nodes of that zone.
    zones: BTreeMap<String, BTreeSet<NodeId>>,
}

impl NodeIndex {
    fn new(nodes: &BTreeMap<String, Node>, cfg: &WorldConfig) -> Self {
        let mut eligible = BTreeSet::new();
        let mut zones: BTreeMap<String, BTreeSet<NodeId>> = BTreeMap::new();
        let mut excluded_any = false;
        for (name, node) in nodes {
            let meta = &node.metadata;
            if let Some(zone) = label(meta, LABEL_ZONE) {
                zones
                    .entry(zone.to_owned())
                    .or_default()
                    .insert(name.clone());
            }
            // Presence alone excludes: the service controller ignores the
            // value (k8s.io/cloud-provider, `shouldIncludeNode`).
            let excluded = label(meta, LABEL_EXCLUDE_LB).is_some();
            excluded_any |= excluded;
            let selected = cfg
                .node_selector
                .iter()
                .all(|(k, v)| label(meta, k) == Some(v.as_str()));
            if !excluded && selected {
                eligible.insert(name.clone());
            }
        }
        Self {
            eligible,
            restricted: excluded_any || !cfg.node_selector.is_empty(),
            zones,
        }
    }
}

/// Whether vipd serves this Service at all (type, namespace, ignore, class).
fn served(svc: &Service, spec: &ServiceSpec, cfg: &WorldConfig) -> bool {
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return false;
    }
    if let Some(ns) = &cfg.namespace {
        if svc.metadata.namespace.as_ref() != Some(ns) {
            return false;
        }
    }
    if annotation(&svc.metadata, ANNOTATION_IGNORE) == Some("true") {
        return false;
    }
    // kube-vip's default (legacy) class handling: another class → not ours;
    // no class → ours unless only our class is wanted.
    match &spec.load_balancer_class {
        Some(class) => *class == cfg.lb_class_name,
        None => !cfg.lb_class_only,
    }
}

/// What a served Service asks for.
enum Requested {
    /// At least one usable address.
    Addresses(SvcInfo),
    /// Neither the annotation nor `spec.loadBalancerIP`: IPAM's job.
    Nothing(SvcInfo),
    /// Something was requested but vipd cannot serve it (reported).
    Unusable,
}

fn svc_info(
    key: &str,
    svc: &Service,
    spec: &ServiceSpec,
    problems: &mut Vec<(String, String)>,
) -> Requested {
    let (requested, source): (Vec<&str>, &str) =
        match annotation(&svc.metadata, ANNOTATION_LB_IPS).filter(|v| !v.trim().is_empty()) {
            Some(v) => (v.split(',').collect(), ANNOTATION_LB_IPS),
            None => match spec.load_balancer_ip.as_deref() {
                Some(v) if !v.trim().is_empty() => (vec![v], "spec.loadBalancerIP"),
                _ => (Vec::new(), ""),
            },
        };
    let mut addresses: Vec<IpAddr> = Vec::new();
    for entry in requested.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        match entry.parse::<IpAddr>() {
            Err(_) => problems.push((
                key.to_owned(),
                format!("{source}: {entry:?} is not an IP address"),
            )),
            // kube-vip's DHCP request: nothing to announce until a lease
            // exists, and vipd has no DHCP client.
            Ok(a) if a.is_unspecified() => {
                problems.push((
                    key.to_owned(),
                    format!(
                        "{source}: {entry} requests a DHCP address, which vipd does not support"
                    ),
                ));
                return Requested::Unusable;
            }
            Ok(a) if a.is_loopback() || a.is_multicast() || is_broadcast(&a) => problems.push((
                key.to_owned(),
                format!("{source}: {entry} is not a unicast address"),
            )),
            Ok(a) if !addresses.contains(&a) => addresses.push(a),
            Ok(_) => {}
        }
    }

    let meta = &svc.metadata;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()), port))
        })
        .collect();
    let policy = spec.ip_family_policy.as_deref();
    let mut families: Vec<IpFamily> = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(IpFamily::V4),
            "IPv6" => Some(IpFamily::V6),
            _ => None,
        })
        .collect();
    if families.is_empty() {
        families = match policy {
            Some("RequireDualStack" | "PreferDualStack") => vec![IpFamily::V4, IpFamily::V6],
            _ => vec![IpFamily::V4],
        };
    }
    let info = SvcInfo {
        key: key.to_owned(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        addresses,
        ports,
        families,
        require_dual_stack: policy == Some("RequireDualStack"),
        local: spec.external_traffic_policy.as_deref() == Some("Local"),
    };
    if !info.addresses.is_empty() {
        Requested::Addresses(info)
    } else if requested.iter().all(|e| e.trim().is_empty()) {
        Requested::Nothing(info)
    } else {
        // Entries were given but none is usable (reported above). IPAM must
        // not overwrite what the user asked for.
        Requested::Unusable
    }
}

fn is_broadcast(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V4(v4) if v4.is_broadcast())
}

#[cfg(test)]
mod tests;
