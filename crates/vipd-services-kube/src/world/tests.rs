use super::*;
use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, NodeSpec, ServicePort, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn set(names: &[&str]) -> BTreeSet<NodeId> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn map(kv: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

/// A LoadBalancer Service with TCP port 80 and the given annotations.
fn svc(ns: &str, name: &str, annotations: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.to_owned()),
            name: Some(name.to_owned()),
            annotations: map(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".to_owned()),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn with_spec(mut s: Service, f: impl FnOnce(&mut ServiceSpec)) -> Service {
    if let Some(spec) = s.spec.as_mut() {
        f(spec);
    }
    s
}

fn local(s: Service) -> Service {
    with_spec(s, |sp| {
        sp.external_traffic_policy = Some("Local".to_owned())
    })
}

fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: map(labels),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    }
}

/// A slice of Service `ns/svc_name` with endpoints `(node, ready)`.
fn slice(ns: &str, name: &str, svc_name: &str, eps: &[(&str, Option<bool>)]) -> EndpointSlice {
    EndpointSlice {
        address_type: "IPv4".to_owned(),
        metadata: ObjectMeta {
            namespace: Some(ns.to_owned()),
            name: Some(name.to_owned()),
            labels: map(&[(LABEL_SERVICE_NAME, svc_name)]),
            ..ObjectMeta::default()
        },
        endpoints: eps
            .iter()
            .enumerate()
            .map(|(i, (n, ready))| Endpoint {
                addresses: vec![format!("192.0.2.{}", 100 + i)],
                node_name: Some((*n).to_owned()),
                conditions: Some(EndpointConditions {
                    ready: *ready,
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
        ports: None,
    }
}

fn world(services: Vec<Service>, nodes: Vec<Node>, slices: Vec<EndpointSlice>) -> World {
    let mut w = World::default();
    w.replace_services(services);
    w.replace_nodes(nodes);
    w.replace_slices(slices);
    w
}

fn three_nodes() -> Vec<Node> {
    vec![node("n1", &[]), node("n2", &[]), node("n3", &[])]
}

fn served_keys(d: &Derived) -> Vec<&str> {
    d.services.keys().map(String::as_str).collect()
}

#[test]
fn only_load_balancer_services_are_served() {
    let lb = svc("ns", "lb", &[(ANNOTATION_LB_IPS, "192.0.2.1")]);
    let cluster_ip = with_spec(svc("ns", "cip", &[(ANNOTATION_LB_IPS, "192.0.2.2")]), |s| {
        s.type_ = Some("ClusterIP".to_owned())
    });
    let untyped = with_spec(
        svc("ns", "none", &[(ANNOTATION_LB_IPS, "192.0.2.3")]),
        |s| s.type_ = None,
    );
    let d =
        world(vec![lb, cluster_ip, untyped], three_nodes(), vec![]).derive(&WorldConfig::default());
    assert_eq!(served_keys(&d), ["ns/lb"]);
    assert_eq!(d.addresses, BTreeSet::from([ip("192.0.2.1")]));
}

#[test]
fn namespace_filter_limits_served_services() {
    let a = svc("a", "s", &[(ANNOTATION_LB_IPS, "192.0.2.1")]);
    let b = svc("b", "s", &[(ANNOTATION_LB_IPS, "192.0.2.2")]);
    let w = world(vec![a, b], three_nodes(), vec![]);
    let all = w.derive(&WorldConfig::default());
    assert_eq!(served_keys(&all), ["a/s", "b/s"]);
    let only_b = w.derive(&WorldConfig {
        namespace: Some("b".to_owned()),
        ..WorldConfig::default()
    });
    assert_eq!(served_keys(&only_b), ["b/s"]);
}

#[test]
fn ignore_annotation_true_skips_the_service() {
    let ignored = svc(
        "ns",
        "x",
        &[
            (ANNOTATION_LB_IPS, "192.0.2.1"),
            (ANNOTATION_IGNORE, "true"),
        ],
    );
    let not_ignored = svc(
        "ns",
        "y",
        &[
            (ANNOTATION_LB_IPS, "192.0.2.2"),
            (ANNOTATION_IGNORE, "false"),
        ],
    );
    let d =
        world(vec![ignored, not_ignored], three_nodes(), vec![]).derive(&WorldConfig::default());
    assert_eq!(served_keys(&d), ["ns/y"]);
    assert!(!d.addresses.contains(&ip("192.0.2.1")));
}

fn classed(name: &str, addr: &str, class: Option<&str>) -> Service {
    with_spec(svc("ns", name, &[(ANNOTATION_LB_IPS, addr)]), |s| {
        s.load_balancer_class = class.map(str::to_owned)
    })
}

#[test]
fn class_filter_serves_unclassed_and_own_class_by_default() {
    let w = world(
        vec![
            classed("none", "192.0.2.1", None),
            classed("ours", "192.0.2.2", Some(DEFAULT_LB_CLASS)),
            classed("other", "192.0.2.3", Some("example.com/other")),
        ],
        three_nodes(),
        vec![],
    );
    let d = w.derive(&WorldConfig::default());
    assert_eq!(served_keys(&d), ["ns/none", "ns/ours"]);
}

#[test]
fn class_only_mode_serves_only_the_configured_class() {
    let w = world(
        vec![
            classed("none", "192.0.2.1", None),
            classed("ours", "192.0.2.2", Some("example.com/vipd")),
            classed("default", "192.0.2.3", Some(DEFAULT_LB_CLASS)),
        ],
        three_nodes(),
        vec![],
    );
    let d = w.derive(&WorldConfig {
        lb_class_only: true,
        lb_class_name: "example.com/vipd".to_owned(),
        ..WorldConfig::default()
    });
    assert_eq!(served_keys(&d), ["ns/ours"]);
}

#[test]
fn dual_stack_annotation_is_split_on_commas_and_trimmed() {
    let s = svc(
        "ns",
        "ds",
        &[(ANNOTATION_LB_IPS, " 192.0.2.10 ,2001:db8::10,, 192.0.2.10")],
    );
    let d = world(vec![s], three_nodes(), vec![]).derive(&WorldConfig::default());
    let info = &d.services["ns/ds"];
    assert_eq!(info.addresses, [ip("192.0.2.10"), ip("2001:db8::10")]);
    assert_eq!(
        d.addresses,
        BTreeSet::from([ip("192.0.2.10"), ip("2001:db8::10")])
    );
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

#[test]
fn annotation_wins_over_spec_load_balancer_ip_which_is_the_fallback() {
    let both = with_spec(
        svc("ns", "both", &[(ANNOTATION_LB_IPS, "192.0.2.1")]),
        |s| s.load_balancer_ip = Some("192.0.2.99".to_owned()),
    );
    let legacy = with_spec(svc("ns", "legacy", &[(ANNOTATION_LB_IPS, "  ")]), |s| {
        s.load_balancer_ip = Some("198.51.100.7".to_owned())
    });
    let d = world(vec![both, legacy], three_nodes(), vec![]).derive(&WorldConfig::default());
    assert_eq!(d.services["ns/both"].addresses, [ip("192.0.2.1")]);
    assert_eq!(d.services["ns/legacy"].addresses, [ip("198.51.100.7")]);
    assert!(!d.addresses.contains(&ip("192.0.2.99")));
}

#[test]
fn status_ingress_written_by_others_is_never_used() {
    let mut s = svc("ns", "k3s", &[]);
    s.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some("203.0.113.5".to_owned()),
                ..LoadBalancerIngress::default()
            }]),
        }),
        conditions: None,
    });
    let d = world(vec![s], three_nodes(), vec![]).derive(&WorldConfig::default());
    assert!(d.addresses.is_empty());
    assert!(d.services.is_empty());
    let keys: Vec<&str> = d.unallocated.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["ns/k3s"]);
    assert!(d.unallocated[0].addresses.is_empty());
}

#[test]
fn dhcp_request_is_reported_and_not_served_nor_allocated() {
    for value in ["0.0.0.0", "192.0.2.1,0.0.0.0", "::"] {
        let s = svc("ns", "dhcp", &[(ANNOTATION_LB_IPS, value)]);
        let d = world(vec![s], three_nodes(), vec![]).derive(&WorldConfig::default());
        assert!(d.addresses.is_empty(), "{value}");
        assert!(d.unallocated.is_empty(), "{value}");
        assert_eq!(d.problems.len(), 1, "{value}: {:?}", d.problems);
        assert_eq!(d.problems[0].0, "ns/dhcp");
        assert!(d.problems[0].1.contains("DHCP"), "{:?}", d.problems);
    }
}

#[test]
fn bad_entries_are_reported_and_good_ones_served() {
    let partly = svc(
        "ns",
        "partly",
        &[(ANNOTATION_LB_IPS, "192.0.2.1,lb.example,224.0.0.5")],
    );
    let none_usable = svc("ns", "bad", &[(ANNOTATION_LB_IPS, "not-an-ip")]);
    let d = world(vec![partly, none_usable], three_nodes(), vec![]).derive(&WorldConfig::default());
    assert_eq!(d.addresses, BTreeSet::from([ip("192.0.2.1")]));
    let reported: Vec<&str> = d.problems.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(reported, ["ns/bad", "ns/partly", "ns/partly"]);
    // A user's unusable request is not handed to IPAM to overwrite.
    assert!(d.unallocated.is_empty());
}

#[test]
fn unrestricted_address_has_no_policy() {
    let s = svc("ns", "s", &[(ANNOTATION_LB_IPS, "192.0.2.1")]);
    let nodes = vec![node("n1", &[(LABEL_ZONE, "a")]), node("n2", &[])];
    let d = world(vec![s], nodes, vec![]).derive(&WorldConfig::default());
    assert_eq!(d.addresses.len(), 1);
    assert!(d.policies.is_empty(), "{:?}", d.policies);
}

#[test]
fn excluded_nodes_are_never_eligible_whatever_the_label_value() {
    let s = svc("ns", "s", &[(ANNOTATION_LB_IPS, "192.0.2.1")]);
    let nodes = vec![
        node("n1", &[(LABEL_EXCLUDE_LB, "")]),
        node("n2", &[(LABEL_EXCLUDE_LB, "false")]),
        node("n3", &[]),
    ];
    let d = world(vec![s], nodes, vec![]).derive(&WorldConfig::default());
    assert_eq!(d.policies[&ip("192.0.2.1")].nodes, Some(set(&["n3"])));
}

#[test]
fn node_selector_restricts_eligible_nodes() {
    let s = svc("ns", "s", &[(ANNOTATION_LB_IPS, "192.0.2.1")]);
    let nodes = vec![
        node("n1", &[("role", "edge")]),
        node("n2", &[("role", "worker")]),
        node("n3", &[("role", "edge"), (LABEL_EXCLUDE_LB, "true")]),
    ];
    let cfg = WorldConfig {
        node_selector: [("role".to_owned(), "edge".to_owned())].into(),
        ..WorldConfig::default()
    };
    let d = world(vec![s], nodes, vec![]).derive(&cfg);
    assert_eq!(d.policies[&ip("192.0.2.1")].nodes, Some(set(&["n1"])));
}

#[test]
fn local_policy_allows_only_nodes_with_ready_endpoints() {
    let s = local(svc("ns", "web", &[(ANNOTATION_LB_IPS, "192.0.2.1")]));
    let slices = vec![
        // Absent `ready` means ready; false does not count.
        slice(
            "ns",
            "web-a",
            "web",
            &[("n1", Some(true)), ("n2", Some(false))],
        ),
        slice("ns", "web-b", "web", &[("n3", None)]),
        // Another Service, and the same name in another namespace.
        slice("ns", "db-a", "db", &[("n2", Some(true))]),
        slice("other", "web-a", "web", &[("n2", Some(true))]),
    ];
    let nodes = vec![
        node("n1", &[]),
        node("n2", &[]),
        node("n3", &[(LABEL_EXCLUDE_LB, "")]),
    ];
    let d = world(vec![s], nodes, slices).derive(&WorldConfig::default());
    assert!(d.services["ns/web"].local);
    // n3 hosts a ready endpoint but is excluded.
    assert_eq!(d.policies[&ip("192.0.2.1")].nodes, Some(set(&["n1"])));
}

#[test]
fn local_service_without_ready_endpoints_may_be_owned_by_nobody() {
    let s = local(svc("ns", "web", &[(ANNOTATION_LB_IPS, "192.0.2.1")]));
    let slices = vec![slice("ns", "web-a", "web", &[("n1", Some(false))])];
    let d = world(vec![s], three_nodes(), slices).derive(&WorldConfig::default());
    assert!(d.addresses.contains(&ip("192.0.2.1")));
    assert_eq!(d.policies[&ip("192.0.2.1")].nodes, Some(BTreeSet::new()));
}

#[test]
fn without_a_ready_endpoint_anywhere_terminating_but_serving_ones_count() {
    let s = local(svc("ns", "web", &[(ANNOTATION_LB_IPS, "192.0.2.1")]));
    let terminating = |n: &str, serving: Option<bool>| Endpoint {
        addresses: vec!["192.0.2.150".to_owned()],
        node_name: Some(n.to_owned()),
        conditions: Some(EndpointConditions {
            ready: Some(false),
            serving,
            terminating: Some(true),
        }),
        ..Endpoint::default()
    };
    // One replica replaced: the old pod on n1 terminates (still serving),
    // the new one on n2 is not ready yet.
    let mut sl = slice("ns", "web-a", "web", &[("n2", Some(false))]);
    sl.endpoints.push(terminating("n1", Some(true)));
    sl.endpoints.push(terminating("n3", Some(false)));
    let d = world(vec![s.clone()], three_nodes(), vec![sl.clone()]).derive(&WorldConfig::default());
    assert_eq!(d.policies[&ip("192.0.2.1")].nodes, Some(set(&["n1"])));
    // The new pod turns ready: only it counts from then on.
    sl.endpoints[0].conditions = Some(EndpointConditions {
        ready: Some(true),
        ..EndpointConditions::default()
    });
    let d = world(vec![s], three_nodes(), vec![sl]).derive(&WorldConfig::default());
    assert_eq!(d.policies[&ip("192.0.2.1")].nodes, Some(set(&["n2"])));
}

#[test]
fn shared_address_of_two_local_services_needs_endpoints_of_both() {
    let a = local(svc("ns", "a", &[(ANNOTATION_LB_IPS, "192.0.2.1")]));
    let b = with_spec(
        local(svc("ns", "b", &[(ANNOTATION_LB_IPS, "192.0.2.1")])),
        |s| {
            s.ports = Some(vec![ServicePort {
                port: 53,
                protocol: Some("UDP".to_owned()),
                ..ServicePort::default()
            }])
        },
    );
    let slices = vec![
        slice("ns", "a-1", "a", &[("n1", None), ("n2", None)]),
        slice("ns", "b-1", "b", &[("n2", None), ("n3", None)]),
    ];
    let d = world(vec![a, b], three_nodes(), slices).derive(&WorldConfig::default());
    assert_eq!(d.by_address[&ip("192.0.2.1")], ["ns/a", "ns/b"]);
    assert_eq!(d.policies[&ip("192.0.2.1")].nodes, Some(set(&["n2"])));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

#[test]
fn shared_address_with_overlapping_ports_is_reported() {
    let a = svc("ns", "a", &[(ANNOTATION_LB_IPS, "192.0.2.1")]);
    let b = svc("ns", "b", &[(ANNOTATION_LB_IPS, "192.0.2.1,192.0.2.2")]);
    let d = world(vec![a, b], three_nodes(), vec![]).derive(&WorldConfig::default());
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    assert_eq!(d.problems[0].0, "ns/b");
    assert!(d.problems[0].1.contains("ns/a"), "{:?}", d.problems);
    // Still served: the address itself is fine, the ports are the user's to fix.
    assert_eq!(d.by_address[&ip("192.0.2.1")], ["ns/a", "ns/b"]);
}

fn zoned(annotations: &[(&str, &str)]) -> (World, IpAddr) {
    let mut ann = vec![
        (ANNOTATION_LB_IPS, "192.0.2.1"),
        (ANNOTATION_ZONE, "zone-a"),
    ];
    ann.extend_from_slice(annotations);
    let nodes = vec![
        node("n1", &[(LABEL_ZONE, "zone-a")]),
        node("n2", &[(LABEL_ZONE, "zone-b")]),
        node("n3", &[(LABEL_ZONE, "zone-a")]),
    ];
    (
        world(vec![svc("ns", "z", &ann)], nodes, vec![]),
        ip("192.0.2.1"),
    )
}

#[test]
fn zone_pin_prefers_zone_nodes_with_configured_fallback() {
    let (w, addr) = zoned(&[]);
    for fallback in [false, true] {
        let d = w.derive(&WorldConfig {
            zone_fallback: fallback,
            ..WorldConfig::default()
        });
        let policy = &d.policies[&addr];
        assert_eq!(policy.nodes, None);
        assert_eq!(
            policy.zone,
            Some(ZonePin {
                preferred: set(&["n1", "n3"]),
                fallback
            })
        );
    }
}

#[test]
fn zone_fallback_annotation_overrides_the_default() {
    let (w, addr) = zoned(&[(ANNOTATION_ZONE_FALLBACK, "true")]);
    let d = w.derive(&WorldConfig::default());
    assert_eq!(
        d.policies[&addr].zone.as_ref().map(|z| z.fallback),
        Some(true)
    );

    let (w, addr) = zoned(&[(ANNOTATION_ZONE_FALLBACK, "false")]);
    let cfg = WorldConfig {
        zone_fallback: true,
        ..WorldConfig::default()
    };
    let d = w.derive(&cfg);
    assert_eq!(
        d.policies[&addr].zone.as_ref().map(|z| z.fallback),
        Some(false)
    );
    // Without fallback and no live node of the zone, nobody is a candidate.
    let live = set(&["n2"]);
    assert!(d.policies[&addr].candidates(&live).is_empty());
}

#[test]
fn invalid_zone_fallback_is_reported_and_the_default_used() {
    let (w, addr) = zoned(&[(ANNOTATION_ZONE_FALLBACK, "yes")]);
    let d = w.derive(&WorldConfig::default());
    assert_eq!(
        d.policies[&addr].zone.as_ref().map(|z| z.fallback),
        Some(false)
    );
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
}

#[test]
fn shared_address_pinned_to_two_zones_keeps_first_pin_and_reports() {
    let nodes = vec![
        node("n1", &[(LABEL_ZONE, "zone-a")]),
        node("n2", &[(LABEL_ZONE, "zone-b")]),
    ];
    let a = svc(
        "ns",
        "a",
        &[
            (ANNOTATION_LB_IPS, "192.0.2.1"),
            (ANNOTATION_ZONE, "zone-a"),
            (ANNOTATION_ZONE_FALLBACK, "true"),
        ],
    );
    let b = with_spec(
        svc(
            "ns",
            "b",
            &[
                (ANNOTATION_LB_IPS, "192.0.2.1"),
                (ANNOTATION_ZONE, "zone-b"),
            ],
        ),
        |s| {
            s.ports = Some(vec![ServicePort {
                port: 443,
                ..ServicePort::default()
            }])
        },
    );
    let d = world(vec![a, b], nodes, vec![]).derive(&WorldConfig::default());
    let pin = d.policies[&ip("192.0.2.1")].zone.clone();
    // Fallback only if every sharing Service allows it (b uses the default: no).
    assert_eq!(
        pin,
        Some(ZonePin {
            preferred: set(&["n1"]),
            fallback: false
        })
    );
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    assert_eq!(d.problems[0].0, "ns/b");
}

#[test]
fn unallocated_service_carries_families_ports_and_traffic_policy() {
    let s = with_spec(local(svc("ns", "new", &[])), |sp| {
        sp.ip_family_policy = Some("RequireDualStack".to_owned());
    });
    let v6 = with_spec(svc("ns", "v6", &[]), |sp| {
        sp.ip_families = Some(vec!["IPv6".to_owned()]);
    });
    let d = world(vec![s, v6], three_nodes(), vec![]).derive(&WorldConfig::default());
    assert_eq!(d.unallocated.len(), 2);
    let new = &d.unallocated[0];
    assert_eq!(new.key, "ns/new");
    assert_eq!(new.families, [IpFamily::V4, IpFamily::V6]);
    assert!(new.require_dual_stack && new.local);
    assert_eq!(new.ports, BTreeSet::from([("TCP".to_owned(), 80)]));
    assert_eq!(d.unallocated[1].families, [IpFamily::V6]);
    assert!(!d.unallocated[1].require_dual_stack);
}

#[test]
fn watch_events_update_the_cached_objects() {
    let mut w = World::default();
    w.apply_service(svc("ns", "s", &[(ANNOTATION_LB_IPS, "192.0.2.1")]));
    assert!(w.service("ns/s").is_some());
    // MODIFIED replaces the object under the same key.
    w.apply_service(svc("ns", "s", &[(ANNOTATION_LB_IPS, "192.0.2.2")]));
    let d = w.derive(&WorldConfig::default());
    assert_eq!(d.addresses, BTreeSet::from([ip("192.0.2.2")]));

    w.apply_node(node("n1", &[(LABEL_EXCLUDE_LB, "")]));
    w.apply_node(node("n2", &[]));
    let d = w.derive(&WorldConfig::default());
    assert_eq!(d.policies[&ip("192.0.2.2")].nodes, Some(set(&["n2"])));
    w.delete_node(&node("n1", &[]));
    assert!(w.derive(&WorldConfig::default()).policies.is_empty());

    let s = local(svc("ns", "s", &[(ANNOTATION_LB_IPS, "192.0.2.2")]));
    w.apply_service(s.clone());
    w.apply_slice(slice("ns", "s-1", "s", &[("n2", None)]));
    let d = w.derive(&WorldConfig::default());
    assert_eq!(d.policies[&ip("192.0.2.2")].nodes, Some(set(&["n2"])));
    w.delete_slice(&slice("ns", "s-1", "s", &[]));
    let d = w.derive(&WorldConfig::default());
    assert_eq!(d.policies[&ip("192.0.2.2")].nodes, Some(BTreeSet::new()));

    w.delete_service(&s);
    assert!(w.service("ns/s").is_none());
    assert!(w.derive(&WorldConfig::default()).addresses.is_empty());
}

fn ipam_labelled(mut s: Service, created: &str) -> Service {
    s.metadata.labels = map(&[("implementation", "kube-vip")]);
    s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        created.parse().expect("time"),
    ));
    s
}

#[test]
fn ipam_conflict_hands_the_address_to_the_older_service_only_when_labelled() {
    let a = "203.0.113.10";
    // Same address and port, both from IPAM: the younger one loses.
    let old = ipam_labelled(
        svc("default", "old", &[(ANNOTATION_LB_IPS, a)]),
        "2026-11-26T10:00:00Z",
    );
    let young = ipam_labelled(
        svc("default", "young", &[(ANNOTATION_LB_IPS, a)]),
        "2026-11-26T11:00:00Z",
    );
    let w = world(vec![young.clone(), old.clone()], three_nodes(), vec![]);
    let d = w.derive(&WorldConfig::default());
    assert_eq!(
        w.ipam_conflicts(&d, |_| true),
        vec!["default/young".to_string()]
    );
    // A user-set address is never re-allocated, even when younger.
    let mut user = young.clone();
    user.metadata.labels = None;
    let w = world(vec![user, old.clone()], three_nodes(), vec![]);
    let d = w.derive(&WorldConfig::default());
    assert!(w.ipam_conflicts(&d, |_| true).is_empty());
    // Disjoint ports in one namespace share when allowed, not otherwise.
    let other_port = with_spec(young, |s| {
        if let Some(p) = s.ports.as_mut().and_then(|p| p.first_mut()) {
            p.port = 443;
        }
    });
    let w = world(vec![other_port, old], three_nodes(), vec![]);
    let d = w.derive(&WorldConfig::default());
    assert!(w.ipam_conflicts(&d, |_| true).is_empty());
    assert_eq!(
        w.ipam_conflicts(&d, |_| false),
        vec!["default/young".to_string()]
    );
}
