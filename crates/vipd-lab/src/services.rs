//! Services mode in the lab (`vipd lab run --backend kubernetes --services
//! N`): N LoadBalancer Services with one address each from 203.0.113.0/24,
//! created in the Kubernetes API test server, announced by the nodes' vipd
//! running with `--services` (kube-vip's `svc_enable`) next to the
//! control-plane VIP.
//!
//! What is observed, beyond the control-plane VIP:
//! - who holds each of the N addresses ([`netlab::MultiAddrWatcher`]: one
//!   `ip monitor` over all nodes), so two-holder time is measured for
//!   *every* address;
//! - from the client, a [`Prober`] on each of a few *sampled* addresses
//!   ([`sample`]: first, last and evenly between), so client-visible gaps
//!   are per sampled address;
//! - claims on the wire for every address ([`crate::wire::WireMonitor`]).
//!
//! The objects are built from k8s-openapi types and stored through the
//! test server's control endpoint, as the vipd test suites do
//! (`crates/vipd/tests/services.rs`): address in the
//! `kube-vip.io/loadbalancerIPs` annotation, which is where vipd (like
//! kube-vip since v0.9) reads a Service's requested addresses.

use crate::measure::end_state;
use k8s_openapi::api::core::v1::{Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use netlab::probe::{Prober, Sample};
use netlab::{HoldingLog, LabClock, MultiAddrWatcher, NetNs, Topology};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Most Services a lab run creates: one address each, 203.0.113.10 to
/// 203.0.113.249.
pub const MAX_SERVICES: usize = 240;
/// Most addresses the client probes.
pub const MAX_SAMPLED: usize = 4;
/// The route the client needs to reach the Service addresses on-link.
pub const SERVICE_NET: &str = "203.0.113.0/24";
/// Namespace of the lab's Services.
pub const SERVICE_NS: &str = "default";
/// The annotation carrying a Service's requested addresses.
pub const LB_IPS_ANNOTATION: &str = "kube-vip.io/loadbalancerIPs";

/// The address of Service `i` (0-based): 203.0.113.(10 + i).
pub fn address(i: usize) -> IpAddr {
    let last = u8::try_from(10 + i.min(MAX_SERVICES - 1)).unwrap_or(249);
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
}

/// The name of Service `i`.
pub fn name(i: usize) -> String {
    format!("lab-svc-{i:03}")
}

/// The addresses of `n` Services.
pub fn addresses(n: usize) -> Vec<IpAddr> {
    (0..n.min(MAX_SERVICES)).map(address).collect()
}

/// Up to [`MAX_SAMPLED`] of `addrs`, spread evenly: first, last, between.
pub fn sample(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let n = addrs.len();
    let k = n.min(MAX_SAMPLED);
    if k <= 1 {
        return addrs.iter().take(k).copied().collect();
    }
    let mut idx: Vec<usize> = (0..k).map(|j| j * (n - 1) / (k - 1)).collect();
    idx.dedup();
    idx.into_iter().map(|i| addrs[i]).collect()
}

/// `obj` as the API's JSON, with its `kind` and `apiVersion` (k8s-openapi
/// types carry neither when serialized on their own).
pub fn to_value<T: serde::Serialize>(kind: &str, api_version: &str, obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).unwrap_or(Value::Null);
    v["kind"] = kind.into();
    v["apiVersion"] = api_version.into();
    v
}

/// A Node object for `name` (Services mode reads nodes for eligibility).
pub fn node(name: &str) -> Value {
    to_value(
        "Node",
        "v1",
        &Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        },
    )
}

/// LoadBalancer Service `i`: one TCP `port` (the lab's responders'),
/// `externalTrafficPolicy: Cluster`, its address in the annotation.
pub fn service(i: usize, port: u16) -> Value {
    lb_service(&name(i), address(i), port)
}

/// A single-stack LoadBalancer Service `name` in [`SERVICE_NS`] with one
/// TCP `port`, `externalTrafficPolicy: Cluster`, and `ip` in the
/// [`LB_IPS_ANNOTATION`] (its family from the address).
pub fn lb_service(name: &str, ip: IpAddr, port: u16) -> Value {
    let family = if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    to_value(
        "Service",
        "v1",
        &Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(SERVICE_NS.into()),
                annotations: Some(BTreeMap::from([(
                    LB_IPS_ANNOTATION.to_string(),
                    ip.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some("Cluster".into()),
                ip_families: Some(vec![family.into()]),
                ip_family_policy: Some("SingleStack".into()),
                ports: Some(vec![ServicePort {
                    port: i32::from(port),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        },
    )
}

/// Every object of a Services lab: the nodes, then `n` Services on `port`.
pub fn objects(nodes: &[String], n: usize, port: u16) -> Vec<Value> {
    nodes
        .iter()
        .map(|n| node(n))
        .chain((0..n.min(MAX_SERVICES)).map(|i| service(i, port)))
        .collect()
}

/// What the lab observes of the Service addresses (see the module docs).
/// Drops its probers and its `ip monitor` with it.
#[derive(Debug)]
pub struct ServicesView {
    addrs: Vec<IpAddr>,
    watcher: MultiAddrWatcher,
    probers: Vec<(IpAddr, Prober)>,
}

impl ServicesView {
    /// Starts watching `addrs` on `nodes` and probing the sampled ones from
    /// `client` on `port`.
    pub fn start(
        topo: &Topology,
        nodes: &[&str],
        client: &NetNs,
        addrs: Vec<IpAddr>,
        port: u16,
        clock: LabClock,
    ) -> Result<ServicesView, netlab::Error> {
        let set: BTreeSet<IpAddr> = addrs.iter().copied().collect();
        let watcher = MultiAddrWatcher::start(topo, nodes, &set, clock)?;
        let probers = sample(&addrs)
            .into_iter()
            .map(|a| Ok((a, Prober::start(client, SocketAddr::new(a, port), clock)?)))
            .collect::<Result<Vec<_>, netlab::Error>>()?;
        Ok(ServicesView {
            addrs,
            watcher,
            probers,
        })
    }

    /// Every Service address.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// The sampled addresses, in order.
    pub fn sampled(&self) -> Vec<IpAddr> {
        self.probers.iter().map(|(a, _)| *a).collect()
    }

    /// Probe samples of sampled address `addr` (empty for another one).
    pub fn samples(&self, addr: IpAddr) -> Vec<Sample> {
        self.probers
            .iter()
            .find(|(a, _)| *a == addr)
            .map(|(_, p)| p.samples())
            .unwrap_or_default()
    }

    /// Every address's holding log.
    pub fn logs(&self) -> BTreeMap<IpAddr, HoldingLog> {
        self.watcher.logs()
    }

    /// Address → its holders now (held addresses only).
    pub fn holders_all(&self) -> BTreeMap<IpAddr, Vec<String>> {
        self.watcher.holders_all()
    }

    /// Addresses held by exactly one node now.
    pub fn held_once(&self) -> usize {
        self.holders_all().values().filter(|h| h.len() == 1).count()
    }

    /// The node holding the most addresses now (`None`: nobody holds any).
    pub fn busiest(&self) -> Option<String> {
        busiest(&self.holders_all())
    }

    /// Steady: every address held by exactly one node, and every sampled
    /// address served by its holder for the last second (see
    /// [`crate::measure::end_state`]).
    pub fn steady(&self, now: std::time::Duration) -> bool {
        let all = self.holders_all();
        let once = self
            .addrs
            .iter()
            .all(|a| all.get(a).is_some_and(|h| h.len() == 1));
        once && {
            let logs = self.logs();
            self.probers.iter().all(|(a, p)| {
                logs.get(a)
                    .is_some_and(|l| end_state(&p.samples(), l, now).1)
            })
        }
    }
}

/// The node holding the most addresses in `holders` (ties: the first by
/// name); only sole holders count.
pub fn busiest(holders: &BTreeMap<IpAddr, Vec<String>>) -> Option<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for h in holders.values() {
        if let [one] = h.as_slice() {
            *count.entry(one.as_str()).or_default() += 1;
        }
    }
    let top = count.values().copied().max()?;
    count
        .into_iter()
        .find(|(_, c)| *c == top)
        .map(|(n, _)| n.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn services_get_documentation_addresses_in_their_annotation() {
        let objs = objects(&["n1".into(), "n2".into()], 3, 8080);
        assert_eq!(objs.len(), 5);
        assert_eq!(objs[0]["kind"], "Node");
        let s: Service = serde_json::from_value(objs[4].clone()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("lab-svc-002"));
        assert_eq!(
            s.metadata.annotations.unwrap()[LB_IPS_ANNOTATION],
            "203.0.113.12"
        );
        let spec = s.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.ports.unwrap()[0].port, 8080);
        for a in addresses(MAX_SERVICES) {
            netlab::check_doc_addr(a).unwrap();
        }
        assert_eq!(address(MAX_SERVICES - 1).to_string(), "203.0.113.249");
    }

    #[test]
    fn sampling_spreads_over_the_addresses() {
        let a = addresses(50);
        let s = sample(&a);
        assert_eq!(s.len(), MAX_SAMPLED);
        assert_eq!(s[0], a[0]);
        assert_eq!(s[3], a[49]);
        assert_eq!(sample(&a[..2]), a[..2].to_vec());
        assert_eq!(sample(&a[..1]), a[..1].to_vec());
        assert!(sample(&[]).is_empty());
    }

    #[test]
    fn busiest_counts_sole_holders_only() {
        let h = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let m: BTreeMap<IpAddr, Vec<String>> = [
            (address(0), h(&["n2"])),
            (address(1), h(&["n2"])),
            (address(2), h(&["n1", "n3"])),
            (address(3), h(&["n3"])),
        ]
        .into();
        assert_eq!(busiest(&m).as_deref(), Some("n2"));
        assert_eq!(busiest(&BTreeMap::new()), None);
    }
}
