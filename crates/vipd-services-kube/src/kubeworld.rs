//! The Kubernetes side of Services mode: reflectors for Services,
//! EndpointSlices, Nodes and the IPAM ConfigMap feed a [`World`]; its
//! derivation goes to the ownership core (addresses, eligibility); the
//! assigner allocates addresses for Services without one (IPAM); the owner
//! of a Service's first address writes `status.loadBalancer.ingress` and the
//! `kube-vip.io/vipHost` annotation; Events say what changed.
//!
//! Every write carries the `resourceVersion` of the object it was computed
//! from: a 409 means someone else changed it first, and the next pass works
//! from the newer object the watch delivers (never a blind overwrite).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, LoadBalancerIngress, LoadBalancerStatus, Node as KubeNode, ObjectReference, Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};
use vipd_kube::reflect::{reflect, ReflectEvent, ReflectorConfig, ReflectorStats};
use vipd_kube::{EventRecorder, EventType, GeneralClient, GeneralError};
use vipd_services::ipam::{self, Claim, IpamError, PoolConfig, Request};
use vipd_services::Input;

use crate::world::{Derived, SvcInfo, World, WorldConfig};
use vipd_observe::metrics::Metrics;
use vipd_observe::status::Heartbeat;

use crate::core::CoreView;

/// kube-vip's annotation naming the node that announces a Service.
pub const ANNOTATION_VIP_HOST: &str = "kube-vip.io/vipHost";

/// Quiet time after a change before deriving (a relist delivers thousands
/// of objects one by one; derive once).
const DEBOUNCE: Duration = Duration::from_millis(20);
/// How long an allocation written but not yet seen back keeps its address
/// reserved.
const PENDING_TTL: Duration = Duration::from_secs(10);
/// Service writes (status, IPAM) in flight at most. The general client's
/// rate limit paces them anyway; the cap keeps a takeover of hundreds of
/// addresses from holding hundreds of cloned Services and request bodies
/// at once (memory), the rest goes out on the next passes.
const MAX_WRITES_IN_FLIGHT: usize = 16;

/// The Kubernetes-world task's wiring.
pub struct KubeWorld {
    /// The general (non-lease) API client: reflectors, status writes, IPAM.
    pub general: Arc<GeneralClient>,
    /// Which Services are served and how eligibility is derived.
    pub cfg: WorldConfig,
    /// IPAM ConfigMap (namespace, name), if IPAM is on.
    pub ipam: Option<(String, String)>,
    /// This node's name (it writes status only for addresses it owns).
    pub node: String,
    /// Where addresses and policies go (the core task's inputs).
    pub core: mpsc::Sender<Input>,
    /// The core's view: owners, announced set, assigner role.
    pub view: watch::Receiver<CoreView>,
    /// Services metrics.
    pub metrics: Arc<Metrics>,
    /// Kubernetes Events on Services, where the API allows them.
    pub events: Option<EventRecorder>,
    /// Liveness beat for `/healthz`.
    pub heartbeat: Heartbeat,
    /// Many nodes announce each address (BGP mode, ECMP): status carries
    /// the addresses, written by any announcing node (the same content
    /// from all, so after the first write nobody writes again), and no
    /// `vipHost` annotation, which names one owner.
    pub shared: bool,
}

struct Reflected<K> {
    rx: mpsc::Receiver<ReflectEvent<K>>,
    stats: Arc<ReflectorStats>,
    listed: bool,
    _task: AbortOnDropHandle<()>,
}

fn start<K>(client: &Arc<GeneralClient>, cfg: ReflectorConfig) -> Reflected<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::Scope: 'static,
    K::DynamicType: Default,
{
    let (tx, rx) = mpsc::channel(1024);
    let stats = Arc::new(ReflectorStats::default());
    let task = tokio::spawn(reflect::<K>(client.clone(), cfg, tx, stats.clone()));
    Reflected {
        rx,
        stats,
        listed: false,
        _task: AbortOnDropHandle::new(task),
    }
}

/// State carried between passes.
#[derive(Default)]
struct Memory {
    addresses: Option<BTreeSet<IpAddr>>,
    policies: Option<BTreeMap<IpAddr, vipd_services::Policy>>,
    /// Allocations written, not yet seen on the Service.
    pending: HashMap<String, (Vec<IpAddr>, Instant)>,
    /// Problems and exhaustion already reported (one Event each).
    reported: HashSet<(String, String)>,
    announced: BTreeSet<IpAddr>,
}

impl KubeWorld {
    /// Runs until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut svcs = start::<Service>(
            &self.general,
            match &self.cfg.namespace {
                Some(ns) => ReflectorConfig::namespaced(ns.clone()),
                None => ReflectorConfig::all(),
            },
        );
        let mut slices = start::<EndpointSlice>(
            &self.general,
            match &self.cfg.namespace {
                Some(ns) => ReflectorConfig::namespaced(ns.clone()),
                None => ReflectorConfig::all(),
            },
        );
        let mut nodes = start::<KubeNode>(&self.general, ReflectorConfig::all());
        let mut cms = self.ipam.as_ref().map(|(ns, name)| {
            start::<ConfigMap>(
                &self.general,
                ReflectorConfig::namespaced(ns.clone()).fields(format!("metadata.name={name}")),
            )
        });
        let mut world = World::default();
        let mut pools: Option<PoolConfig> = None;
        let mut memory = Memory::default();
        let inflight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut view = self.view.clone();
        let mut due: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let wake = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = cancel.cancelled() => return,
                Some(ev) = svcs.rx.recv() => {
                    match ev {
                        ReflectEvent::Listed(v) => { svcs.listed = true; world.replace_services(v) }
                        ReflectEvent::Applied(s) => world.apply_service(s),
                        ReflectEvent::Deleted(s) => world.delete_service(&s),
                    }
                    due.get_or_insert(Instant::now() + DEBOUNCE);
                }
                Some(ev) = slices.rx.recv() => {
                    match ev {
                        ReflectEvent::Listed(v) => { slices.listed = true; world.replace_slices(v) }
                        ReflectEvent::Applied(s) => world.apply_slice(s),
                        ReflectEvent::Deleted(s) => world.delete_slice(&s),
                    }
                    due.get_or_insert(Instant::now() + DEBOUNCE);
                }
                Some(ev) = nodes.rx.recv() => {
                    match ev {
                        ReflectEvent::Listed(v) => { nodes.listed = true; world.replace_nodes(v) }
                        ReflectEvent::Applied(n) => world.apply_node(n),
                        ReflectEvent::Deleted(n) => world.delete_node(&n),
                    }
                    due.get_or_insert(Instant::now() + DEBOUNCE);
                }
                Some(ev) = async { match cms.as_mut() { Some(c) => c.rx.recv().await, None => std::future::pending().await } } => {
                    let cm = match ev {
                        ReflectEvent::Listed(v) => {
                            if let Some(c) = cms.as_mut() { c.listed = true; }
                            v.into_iter().next()
                        }
                        ReflectEvent::Applied(c) => Some(c),
                        ReflectEvent::Deleted(_) => None,
                    };
                    pools = cm.map(|cm| {
                        let data: BTreeMap<String, String> = cm.data.unwrap_or_default();
                        let (p, warnings) = PoolConfig::parse(&data);
                        for w in warnings {
                            warn!("IPAM ConfigMap: {w}");
                        }
                        p
                    });
                    due.get_or_insert(Instant::now() + DEBOUNCE);
                }
                r = view.changed() => {
                    if r.is_err() { return }
                    due.get_or_insert(Instant::now() + DEBOUNCE);
                }
                () = sleep_until(wake), if due.is_some() => {
                    due = None;
                    let synced = svcs.listed && nodes.listed && slices.listed;
                    let v = view.borrow().clone();
                    self.pass(&world, synced, pools.as_ref(), &v, &mut memory, &inflight).await;
                }
                _ = tick.tick() => {
                    self.heartbeat.beat(Instant::now());
                    for (name, r) in [("services", &svcs.stats), ("endpointslices", &slices.stats), ("nodes", &nodes.stats)] {
                        self.relists(name, r);
                    }
                    if let Some(c) = &cms {
                        self.relists("configmaps", &c.stats);
                    }
                    // Retry writes that failed or were skipped.
                    due.get_or_insert(Instant::now());
                }
            }
        }
    }

    fn relists(&self, resource: &str, s: &ReflectorStats) {
        let m = &self.metrics.services;
        m.set_relists(resource, "gone", s.relists_gone.load(Ordering::Relaxed));
        m.set_relists(
            resource,
            "forbidden",
            s.relists_forbidden.load(Ordering::Relaxed),
        );
        m.set_relists(resource, "error", s.relists_error.load(Ordering::Relaxed));
    }

    async fn pass(
        &self,
        world: &World,
        synced: bool,
        pools: Option<&PoolConfig>,
        view: &CoreView,
        memory: &mut Memory,
        inflight: &Arc<Mutex<HashSet<String>>>,
    ) {
        let derived = world.derive(&self.cfg);
        if synced {
            // Only after the first full lists: an empty world before them
            // means "not read yet", not "no Services".
            if memory.addresses.as_ref() != Some(&derived.addresses) {
                memory.addresses = Some(derived.addresses.clone());
                let _ = self
                    .core
                    .send(Input::Addresses(derived.addresses.clone()))
                    .await;
            }
            if memory.policies.as_ref() != Some(&derived.policies) {
                memory.policies = Some(derived.policies.clone());
                let _ = self
                    .core
                    .send(Input::Policies(derived.policies.clone()))
                    .await;
            }
        }
        self.metrics.services.set_problems(derived.problems.len());
        for (key, reason) in &derived.problems {
            if memory.reported.insert((key.clone(), reason.clone())) {
                warn!(service = %key, "{reason}");
                self.event(
                    world,
                    key,
                    vipd_kube::events::reason::SVC_CONFLICT,
                    reason.clone(),
                    EventType::Warning,
                );
            }
        }
        if synced && view.assigner {
            if let Some(p) = pools {
                self.allocate(world, p, &derived, memory, inflight);
            }
        }
        self.acquired_events(world, &derived, view, memory);
        self.write_status(world, &derived, view, inflight);
    }

    fn event(&self, world: &World, key: &str, reason: &str, msg: String, kind: EventType) {
        let (Some(rec), Some(svc)) = (&self.events, world.service(key)) else {
            return;
        };
        let about = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            uid: svc.metadata.uid.clone(),
            resource_version: svc.metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        rec.record_about(about, reason, msg, kind);
    }

    /// Events when this node starts or stops announcing an address.
    fn acquired_events(
        &self,
        world: &World,
        derived: &Derived,
        view: &CoreView,
        memory: &mut Memory,
    ) {
        use vipd_kube::events::reason;
        for addr in view.announced.difference(&memory.announced) {
            for key in derived.by_address.get(addr).into_iter().flatten() {
                let msg = format!("{} announces {addr}", self.node);
                self.event(world, key, reason::SVC_ACQUIRED, msg, EventType::Normal);
            }
        }
        for addr in memory.announced.difference(&view.announced) {
            let owner = view.owners.get(addr).cloned().flatten();
            for key in derived.by_address.get(addr).into_iter().flatten() {
                let msg = match &owner {
                    Some(o) => format!("{addr} moved from {} to {o}", self.node),
                    None => format!("{} stopped announcing {addr}", self.node),
                };
                self.event(world, key, reason::SVC_MOVED, msg, EventType::Normal);
            }
        }
        memory.announced = view.announced.clone();
    }

    /// IPAM (assigner only): an address for every served Service without
    /// one, written as kube-vip-cloud-provider writes it.
    fn allocate(
        &self,
        world: &World,
        pools: &PoolConfig,
        derived: &Derived,
        memory: &mut Memory,
        inflight: &Arc<Mutex<HashSet<String>>>,
    ) {
        let now = Instant::now();
        // A pending allocation ends when the Service shows it (or after the
        // TTL, when the write must have failed).
        memory.pending.retain(|k, (addrs, at)| {
            now < *at + PENDING_TTL
                && derived
                    .services
                    .get(k)
                    .is_none_or(|s| s.addresses != *addrs)
        });
        // IPAM-allocated Services that collide with an older one get a new
        // address (deterministic repair of racing allocators).
        let losers: BTreeSet<String> = world
            .ipam_conflicts(derived, |ns| pools.allow_share(ns))
            .into_iter()
            .collect();
        let mut wanted: Vec<&SvcInfo> = derived.unallocated.iter().collect();
        for key in &losers {
            if let Some(s) = derived.services.get(key) {
                info!(service = %key, addresses = ?s.addresses, "IPAM: address collides with an older Service; re-allocating");
                wanted.push(s);
            }
        }
        if wanted.is_empty() {
            return;
        }
        let mut claims: Vec<Claim> = derived
            .services
            .values()
            .filter(|s| !losers.contains(&s.key))
            .map(|s| Claim {
                key: s.key.clone(),
                namespace: s.namespace.clone(),
                addresses: s.addresses.clone(),
                ports: s.ports.clone(),
            })
            .collect();
        for (key, (addrs, _)) in &memory.pending {
            if let Some(s) = wanted.iter().find(|s| &s.key == key) {
                claims.push(Claim {
                    key: key.clone(),
                    namespace: s.namespace.clone(),
                    addresses: addrs.clone(),
                    ports: s.ports.clone(),
                });
            }
        }
        for svc in wanted {
            if memory.pending.contains_key(&svc.key) {
                continue;
            }
            let flight_key = format!("ipam:{}", svc.key);
            {
                let mut f = inflight.lock().unwrap_or_else(|p| p.into_inner());
                if f.len() >= MAX_WRITES_IN_FLIGHT {
                    // The rest on a later pass (at least once a second).
                    return;
                }
                if !f.insert(flight_key.clone()) {
                    continue;
                }
            }
            let req = request_for(svc);
            match ipam::allocate(pools, &claims, &req) {
                Ok(addrs) if !addrs.is_empty() => {
                    info!(service = %svc.key, addresses = ?addrs, "IPAM: allocated");
                    claims.push(Claim {
                        key: svc.key.clone(),
                        namespace: svc.namespace.clone(),
                        addresses: addrs.clone(),
                        ports: svc.ports.clone(),
                    });
                    memory.pending.insert(svc.key.clone(), (addrs.clone(), now));
                    if let Some(obj) = world.service(&svc.key) {
                        let (client, obj, metrics, inflight) = (
                            self.general.clone(),
                            obj.clone(),
                            self.metrics.clone(),
                            inflight.clone(),
                        );
                        let key = svc.key.clone();
                        tokio::spawn(async move {
                            metrics.services.inc_write("ipam");
                            if let Err(e) = write_allocation(&client, obj, &addrs).await {
                                debug!(service = %key, error = %e, "IPAM write failed; retried on the next pass");
                            }
                            inflight
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&flight_key);
                        });
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let exhausted = matches!(e, IpamError::Exhausted { .. });
                    let reason = e.to_string();
                    if memory.reported.insert((svc.key.clone(), reason.clone())) {
                        if exhausted {
                            self.metrics.services.inc_ipam_exhausted();
                        }
                        warn!(service = %svc.key, "IPAM: {reason}");
                        self.event(
                            world,
                            &svc.key,
                            vipd_kube::events::reason::SVC_POOL_EXHAUSTED,
                            reason,
                            EventType::Warning,
                        );
                    }
                }
            }
            // No write started for this Service.
            inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&flight_key);
        }
    }

    /// The owner of a Service's first address keeps its status and
    /// `vipHost` annotation right (one writer per Service).
    fn write_status(
        &self,
        world: &World,
        derived: &Derived,
        view: &CoreView,
        inflight: &Arc<Mutex<HashSet<String>>>,
    ) {
        for svc in derived.services.values() {
            let Some(first) = svc.addresses.first() else {
                continue;
            };
            if !view.announced.contains(first) {
                continue;
            }
            let Some(obj) = world.service(&svc.key) else {
                continue;
            };
            let host = (!self.shared).then_some(self.node.as_str());
            if status_ok(obj, &svc.addresses, host) {
                continue;
            }
            {
                let mut f = inflight.lock().unwrap_or_else(|p| p.into_inner());
                if f.len() >= MAX_WRITES_IN_FLIGHT {
                    // The rest on a later pass (at least once a second).
                    return;
                }
                if !f.insert(svc.key.clone()) {
                    continue;
                }
            }
            let (client, obj, node, addrs, inflight, metrics) = (
                self.general.clone(),
                obj.clone(),
                (!self.shared).then(|| self.node.clone()),
                svc.addresses.clone(),
                inflight.clone(),
                self.metrics.clone(),
            );
            let key = svc.key.clone();
            tokio::spawn(async move {
                metrics.services.inc_write("status");
                if let Err(e) = write_owner_status(&client, obj, node.as_deref(), &addrs).await {
                    debug!(service = %key, error = %e, "status write failed; retried on the next pass");
                }
                inflight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&key);
            });
        }
    }
}

fn request_for(svc: &SvcInfo) -> Request {
    use crate::world::IpFamily;
    Request {
        key: svc.key.clone(),
        namespace: svc.namespace.clone(),
        families: svc
            .families
            .iter()
            .map(|f| match f {
                IpFamily::V4 => ipam::Family::V4,
                IpFamily::V6 => ipam::Family::V6,
            })
            .collect(),
        require_all: svc.require_dual_stack,
        ports: svc.ports.clone(),
    }
}

/// Whether the Service already shows `addrs` in its status and `node` (if
/// any: shared addresses have no single host) as its `vipHost`. Compared
/// on IPs only: an API server older than 1.30 drops `ipMode`, and
/// comparing it would rewrite forever.
fn status_ok(svc: &Service, addrs: &[IpAddr], node: Option<&str>) -> bool {
    let host_ok = host_ok(svc, node);
    let have: BTreeSet<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|v| v.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default();
    let want: BTreeSet<String> = addrs.iter().map(ToString::to_string).collect();
    host_ok && have == want
}

/// Whether the Service's `vipHost` annotation names `node` (always true
/// without a node: shared addresses have no single host).
fn host_ok(svc: &Service, node: Option<&str>) -> bool {
    node.is_none_or(|node| {
        svc.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_VIP_HOST))
            .is_some_and(|h| h == node)
    })
}

fn api_for(client: kube::Client, svc: &Service) -> Api<Service> {
    Api::namespaced(
        client,
        svc.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// `vipHost` annotation (main resource) then `status.loadBalancer.ingress`
/// (status subresource), each a replace at the resourceVersion read.
async fn write_owner_status(
    client: &GeneralClient,
    mut svc: Service,
    node: Option<&str>,
    addrs: &[IpAddr],
) -> Result<(), GeneralError> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    svc.metadata.managed_fields = None;
    if let (false, Some(node)) = (host_ok(&svc, node), node) {
        svc.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION_VIP_HOST.into(), node.into());
        let body = svc.clone();
        let n = name.clone();
        svc = client
            .call(|c| async move {
                api_for(c, &body)
                    .replace(&n, &PostParams::default(), &body)
                    .await
            })
            .await?;
        svc.metadata.managed_fields = None;
    }
    let ingress = addrs
        .iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.to_string()),
            // The address is on the node itself (SPEC: VIP mode); servers
            // before 1.30 prune the field.
            ip_mode: Some("VIP".into()),
            ..LoadBalancerIngress::default()
        })
        .collect();
    let mut status = svc.status.clone().unwrap_or_default();
    status.load_balancer = Some(LoadBalancerStatus {
        ingress: Some(ingress),
    });
    svc.status = Some(status);
    let body = svc;
    client
        .call(|c| async move {
            api_for(c, &body)
                .replace_status(&name, &PostParams::default(), &body)
                .await
        })
        .await?;
    Ok(())
}

/// IPAM's write, as kube-vip-cloud-provider makes it: the
/// `kube-vip.io/loadbalancerIPs` annotation and the `implementation` label,
/// at the resourceVersion the allocation was computed from.
async fn write_allocation(
    client: &GeneralClient,
    mut svc: Service,
    addrs: &[IpAddr],
) -> Result<(), GeneralError> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    svc.metadata.managed_fields = None;
    let list = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    svc.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(ipam::LOADBALANCER_IPS_ANNOTATION.into(), list);
    svc.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(
            ipam::IMPLEMENTATION_LABEL_KEY.into(),
            ipam::IMPLEMENTATION_LABEL_VALUE.into(),
        );
    let body = svc;
    client
        .call(|c| async move {
            api_for(c, &body)
                .replace(&name, &PostParams::default(), &body)
                .await
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn svc(host: Option<&str>, ingress: &[(&str, Option<&str>)]) -> Service {
        Service {
            metadata: ObjectMeta {
                annotations: host
                    .map(|h| BTreeMap::from([(ANNOTATION_VIP_HOST.to_string(), h.to_string())])),
                ..ObjectMeta::default()
            },
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ingress
                            .iter()
                            .map(|(ip, mode)| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                                ip_mode: mode.map(String::from),
                                ..LoadBalancerIngress::default()
                            })
                            .collect(),
                    ),
                }),
                ..ServiceStatus::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn status_is_compared_on_addresses_and_host_not_on_ip_mode() {
        let a: IpAddr = "198.51.100.10".parse().expect("ip");
        let b: IpAddr = "2001:db8::10".parse().expect("ip");
        // An API server before 1.30 drops ipMode: still up to date.
        assert!(status_ok(
            &svc(Some("n1"), &[("198.51.100.10", None)]),
            &[a],
            Some("n1")
        ));
        assert!(status_ok(
            &svc(Some("n1"), &[("198.51.100.10", Some("VIP"))]),
            &[a],
            Some("n1")
        ));
        // Another owner, a missing family, or no host: rewrite.
        assert!(!status_ok(
            &svc(Some("n2"), &[("198.51.100.10", None)]),
            &[a],
            Some("n1")
        ));
        assert!(!status_ok(
            &svc(Some("n1"), &[("198.51.100.10", None)]),
            &[a, b],
            Some("n1")
        ));
        assert!(!status_ok(
            &svc(None, &[("198.51.100.10", None)]),
            &[a],
            Some("n1")
        ));
        // Shared (ECMP) addresses: any host, or none, is fine.
        assert!(status_ok(
            &svc(None, &[("198.51.100.10", None)]),
            &[a],
            None
        ));
        assert!(status_ok(
            &svc(Some("n2"), &[("198.51.100.10", None)]),
            &[a],
            None
        ));
        assert!(!status_ok(&svc(None, &[]), &[a], None));
    }

    #[test]
    fn ipam_request_carries_families_ports_and_dual_stack_requirement() {
        use crate::world::IpFamily;
        let info = SvcInfo {
            key: "ns/a".into(),
            namespace: "ns".into(),
            name: "a".into(),
            addresses: vec![],
            ports: BTreeSet::from([("TCP".to_string(), 80)]),
            families: vec![IpFamily::V6, IpFamily::V4],
            require_dual_stack: true,
            local: false,
        };
        let r = request_for(&info);
        assert_eq!(r.families, vec![ipam::Family::V6, ipam::Family::V4]);
        assert!(r.require_all);
        assert_eq!(r.ports, info.ports);
        assert_eq!(r.namespace, "ns");
    }
}
