//! `vipd manifest pod|daemonset|rbac`: the YAML parses back into the
//! k8s-openapi types, and the objects carry what kube-vip's generator gives
//! (host network, env block, NET_ADMIN + NET_RAW only, kubeconfig hostPath
//! for the static pod, control-plane tolerations) with least-privilege RBAC.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Deserialize;
use vipd::config::{parse_command_with, Command, Config, HostFacts, ManifestRequest};
use vipd::manifest;

fn request(line: &str, pairs: &[(&str, &str)]) -> ManifestRequest {
    let args: Vec<String> = std::iter::once("vipd")
        .chain(line.split_whitespace())
        .map(String::from)
        .collect();
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match parse_command_with(&args, &env, &HostFacts::default()) {
        Ok(Command::Manifest(r)) => r,
        other => panic!("{line}: {other:?}"),
    }
}

fn yaml(line: &str, pairs: &[(&str, &str)]) -> String {
    manifest::render(&request(line, pairs)).expect("render")
}

const CP: &str = "--address 192.0.2.10 --interface eth0 --control-plane --node-name gen-host";

fn container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1);
    &spec.containers[0]
}

fn env_value<'a>(c: &'a Container, name: &str) -> Option<&'a EnvVar> {
    c.env.as_ref()?.iter().find(|e| e.name == name)
}

fn value<'a>(c: &'a Container, name: &str) -> Option<&'a str> {
    env_value(c, name)?.value.as_deref()
}

/// Host network, exactly NET_ADMIN + NET_RAW after dropping ALL, kube-vip's
/// `manager` argument, node name from the downward API.
fn assert_common(spec: &PodSpec) {
    assert_eq!(spec.host_network, Some(true));
    let c = container(spec);
    assert_eq!(c.args.as_deref(), Some(&["manager".to_string()][..]));
    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .expect("capabilities");
    assert_eq!(
        caps.add.as_deref(),
        Some(&["NET_ADMIN".to_string(), "NET_RAW".to_string()][..])
    );
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    let node = env_value(c, "vip_nodename").expect("vip_nodename");
    assert_eq!(node.value, None);
    assert_eq!(
        node.value_from
            .as_ref()
            .and_then(|f| f.field_ref.as_ref())
            .map(|f| f.field_path.as_str()),
        Some("spec.nodeName")
    );
}

#[test]
fn static_pod_parses_back_with_kube_vip_env_and_kubeconfig_host_path() {
    let text = yaml(
        &format!("manifest pod {CP} --image registry.example/vipd:t --lease-duration 5 --renew-deadline 3 --retry-period 1"),
        &[],
    );
    let pod: Pod = serde_yaml::from_str(&text).expect("a Pod");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
    let spec = pod.spec.as_ref().expect("spec");
    assert_common(spec);
    let c = container(spec);
    assert_eq!(c.image.as_deref(), Some("registry.example/vipd:t"));
    // The image's user is 65532; the host's admin.conf is root-only.
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.run_as_user, Some(0), "static pod runs as root");
    // kube-vip's names, with values kube-vip would read the same way.
    for (name, v) in [
        ("vip_arp", "true"),
        ("port", "6443"),
        ("vip_interface", "eth0"),
        ("vip_subnet", "32"),
        ("cp_enable", "true"),
        ("cp_namespace", "kube-system"),
        ("vip_leaderelection", "true"),
        ("vip_leasename", "plndr-cp-lock"),
        ("vip_leaseduration", "5"),
        ("vip_renewdeadline", "3"),
        ("vip_retryperiod", "1"),
        ("address", "192.0.2.10"),
        ("prometheus_server", ":2112"),
        ("vip_loglevel", "4"),
        ("k8s_config_file", "/etc/kubernetes/admin.conf"),
    ] {
        assert_eq!(value(c, name), Some(v), "{name}\n{text}");
    }
    // The generating host's name never leaks into the manifest.
    assert!(!text.contains("gen-host"), "{text}");
    // vipd limits malloc arenas itself (crates/vipd/src/sys.rs): no
    // environment tricks in the manifest.
    assert!(env_value(c, "MALLOC_ARENA_MAX").is_none(), "{text}");
    // The default /livez check is derived again in the pod: not written.
    assert!(env_value(c, "VIPD_HEALTH_CHECKS").is_none(), "{text}");
    // admin.conf from the host, read-only, at the k8s_config_file path.
    let volumes = spec.volumes.as_ref().expect("volumes");
    let kubeconfig = volumes
        .iter()
        .find(|v| v.name == "kubeconfig")
        .and_then(|v| v.host_path.as_ref())
        .expect("kubeconfig hostPath");
    assert_eq!(kubeconfig.path, "/etc/kubernetes/admin.conf");
    let mount = c
        .volume_mounts
        .as_ref()
        .and_then(|m| m.iter().find(|m| m.name == "kubeconfig"))
        .expect("mount");
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/etc/kubernetes/admin.conf", Some(true))
    );
    assert!(spec.service_account_name.is_none());
}

#[test]
fn static_pod_can_mount_super_admin_conf_at_the_admin_conf_path() {
    let text = yaml(
        &format!("manifest pod {CP} --kubeconfig-host-path /etc/kubernetes/super-admin.conf"),
        &[],
    );
    let pod: Pod = serde_yaml::from_str(&text).expect("a Pod");
    let spec = pod.spec.expect("spec");
    let host = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.host_path.as_ref())
        .map(|h| h.path.clone());
    assert_eq!(host.as_deref(), Some("/etc/kubernetes/super-admin.conf"));
    assert_eq!(
        value(container(&spec), "k8s_config_file"),
        Some("/etc/kubernetes/admin.conf")
    );
}

#[test]
fn daemonset_targets_control_plane_nodes_with_the_service_account_and_no_kubeconfig() {
    let text = yaml(&format!("manifest daemonset {CP}"), &[]);
    let ds: DaemonSet = serde_yaml::from_str(&text).expect("a DaemonSet");
    assert_eq!(ds.metadata.namespace.as_deref(), Some("kube-system"));
    let ds_spec = ds.spec.expect("spec");
    let template_labels = ds_spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    for (k, v) in ds_spec.selector.match_labels.unwrap_or_default() {
        assert_eq!(
            template_labels.get(&k),
            Some(&v),
            "selector must match the template"
        );
    }
    let spec = ds_spec.template.spec.expect("pod spec");
    assert_common(&spec);
    // The service-account token is readable by the image's non-root user.
    let sc = container(&spec).security_context.as_ref();
    assert_eq!(
        sc.and_then(|s| s.run_as_user),
        None,
        "DaemonSet keeps the image's user"
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("vipd"));
    assert!(spec.volumes.is_none(), "{text}");
    assert!(env_value(container(&spec), "k8s_config_file").is_none());
    let mut tolerations: Vec<(Option<String>, Option<String>)> = spec
        .tolerations
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.effect, t.operator))
        .collect();
    tolerations.sort();
    assert_eq!(
        tolerations,
        [
            (Some("NoExecute".into()), Some("Exists".into())),
            (Some("NoSchedule".into()), Some("Exists".into())),
        ]
    );
    let terms = spec
        .affinity
        .and_then(|a| a.node_affinity)
        .and_then(|n| n.required_during_scheduling_ignored_during_execution)
        .map(|s| s.node_selector_terms)
        .unwrap_or_default();
    let reqs: Vec<(String, String)> = terms
        .into_iter()
        .flat_map(|t| t.match_expressions.unwrap_or_default())
        .map(|r| (r.key, r.operator))
        .collect();
    assert_eq!(
        reqs,
        [(
            "node-role.kubernetes.io/control-plane".to_string(),
            "Exists".to_string()
        )]
    );
}

#[test]
fn rbac_is_a_stream_of_service_account_role_and_binding_with_least_privilege() {
    let text = yaml("manifest rbac --lease-namespace infra", &[]);
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(serde_yaml::Value::deserialize)
        .collect::<Result<_, _>>()
        .expect("yaml stream");
    assert_eq!(docs.len(), 3, "{text}");
    let sa: ServiceAccount = serde_yaml::from_value(docs[0].clone()).expect("ServiceAccount");
    let role: Role = serde_yaml::from_value(docs[1].clone()).expect("Role");
    let binding: RoleBinding = serde_yaml::from_value(docs[2].clone()).expect("RoleBinding");
    assert_eq!(
        (
            sa.metadata.name.as_deref(),
            sa.metadata.namespace.as_deref()
        ),
        (Some("vipd"), Some("kube-system"))
    );
    // The Role lives with the lease, not cluster-wide.
    assert_eq!(role.metadata.namespace.as_deref(), Some("infra"));
    let mut grants: Vec<(String, String, Vec<String>)> = role
        .rules
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| {
            let verbs = r.verbs.clone();
            let resources = r.resources.clone().unwrap_or_default();
            r.api_groups
                .unwrap_or_default()
                .into_iter()
                .flat_map(move |g| {
                    let verbs = verbs.clone();
                    resources
                        .clone()
                        .into_iter()
                        .map(move |res| (g.clone(), res, verbs.clone()))
                })
        })
        .collect();
    grants.sort();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        grants,
        [
            (String::new(), "events".into(), v(&["create"])),
            (
                "coordination.k8s.io".into(),
                "leases".into(),
                v(&["get", "create", "update", "list", "watch"])
            ),
            ("events.k8s.io".into(), "events".into(), v(&["create"])),
        ]
    );
    assert_eq!(binding.metadata.namespace.as_deref(), Some("infra"));
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", "vipd")
    );
    let subjects = binding.subjects.unwrap_or_default();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (
            subjects[0].kind.as_str(),
            subjects[0].name.as_str(),
            subjects[0].namespace.as_deref()
        ),
        ("ServiceAccount", "vipd", Some("kube-system"))
    );
}

#[test]
fn env_block_round_trips_to_the_same_config() {
    // A manifest from a non-default configuration, read back by vipd's own
    // parser as the pod would, yields the same effective values.
    let text = yaml(
        &format!(
            "manifest pod {CP} --subnet 24 --arp-rate 1500 --lease-namespace infra \
             --lease-name vip-lock --lease-duration 4 --renew-deadline 2.5 --retry-period 0.5 \
             --prometheus-server 127.0.0.1:9100 --log-level debug --log-format json \
             --health-check tcp://192.0.2.1:6443 --health-check-address https://127.0.0.1:6443/readyz \
             --health-check-period 2 --health-check-timeout 1 --health-check-failure-threshold 4 \
             --health-check-ca-path /etc/kubernetes/pki/ca.crt --kube-api-qps 5 --kube-api-burst 10 \
             --kube-api-timeout 7 --reconcile-period 3 --wait-for-interface"
        ),
        &[],
    );
    let pod: Pod = serde_yaml::from_str(&text).expect("a Pod");
    let spec = pod.spec.expect("spec");
    let c = container(&spec);
    let mut env: HashMap<String, String> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    env.insert("vip_nodename".into(), "node-1".into()); // the downward API's job
    let back =
        Config::from_sources_with_hostname(&["vipd".to_string(), "run".to_string()], &env, None)
            .expect("the manifest's env is a valid configuration");
    let original = match request(
        &format!(
            "manifest pod {CP} --subnet 24 --arp-rate 1500 --lease-namespace infra \
             --lease-name vip-lock --lease-duration 4 --renew-deadline 2.5 --retry-period 0.5 \
             --prometheus-server 127.0.0.1:9100 --log-level debug --log-format json \
             --health-check tcp://192.0.2.1:6443 --health-check-address https://127.0.0.1:6443/readyz \
             --health-check-period 2 --health-check-timeout 1 --health-check-failure-threshold 4 \
             --health-check-ca-path /etc/kubernetes/pki/ca.crt --kube-api-qps 5 --kube-api-burst 10 \
             --kube-api-timeout 7 --reconcile-period 3 --wait-for-interface"
        ),
        &[],
    ) {
        ManifestRequest::Pod { config, .. } => config,
        other => panic!("{other:?}"),
    };
    assert_eq!(back.vip, original.vip);
    assert_eq!(back.prefix_len, 24);
    assert_eq!(back.arp_refresh, original.arp_refresh);
    assert_eq!(
        (back.lease_namespace.as_str(), back.lease_name.as_str()),
        ("infra", "vip-lock")
    );
    assert_eq!(back.timings, original.timings);
    assert_eq!(back.http_addr, original.http_addr);
    assert_eq!((back.log_level, back.log_json), (original.log_level, true));
    assert_eq!(back.health_checks, original.health_checks);
    assert_eq!(back.health, original.health);
    assert_eq!(back.kube_api, original.kube_api);
    assert_eq!(back.reconcile_period, original.reconcile_period);
    assert!(back.wait_for_interface && back.control_plane);
    assert_eq!(
        back.kubeconfig.as_deref(),
        Some(std::path::Path::new("/etc/kubernetes/admin.conf"))
    );
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    // The CA the HTTPS check needs is mounted from the host.
    let ca = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "health-check-ca")
        .and_then(|v| v.host_path.as_ref())
        .map(|h| h.path.clone());
    assert_eq!(ca.as_deref(), Some("/etc/kubernetes/pki/ca.crt"));
}

#[test]
fn prometheus_server_off_survives_the_round_trip() {
    let text = yaml(
        &format!("manifest daemonset {CP}"),
        &[("VIPD_PROMETHEUS_SERVER", "")],
    );
    let ds: DaemonSet = serde_yaml::from_str(&text).expect("a DaemonSet");
    let spec = ds.spec.and_then(|s| s.template.spec).expect("pod spec");
    let c = container(&spec);
    assert_eq!(value(c, "VIPD_PROMETHEUS_SERVER"), Some(""));
    assert!(env_value(c, "prometheus_server").is_none());
}

#[test]
fn rbac_for_services_mode_adds_a_cluster_role_for_services_slices_nodes_and_configmaps() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let text = yaml("manifest rbac --services", &[]);
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(serde_yaml::Value::deserialize)
        .collect::<Result<_, _>>()
        .expect("yaml stream");
    assert_eq!(docs.len(), 5, "{text}");
    let cr: ClusterRole = serde_yaml::from_value(docs[3].clone()).expect("ClusterRole");
    let crb: ClusterRoleBinding =
        serde_yaml::from_value(docs[4].clone()).expect("ClusterRoleBinding");
    let grants: Vec<(String, Vec<String>)> = cr
        .rules
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| {
            let verbs = r.verbs.clone();
            r.resources
                .unwrap_or_default()
                .into_iter()
                .map(move |res| (res, verbs.clone()))
        })
        .collect();
    let verbs = |res: &str| -> Vec<String> {
        grants
            .iter()
            .filter(|(r, _)| r == res)
            .flat_map(|(_, v)| v.clone())
            .collect()
    };
    assert!(verbs("services/status").contains(&"update".to_string()));
    assert!(verbs("endpointslices").contains(&"watch".to_string()));
    assert!(verbs("nodes").contains(&"list".to_string()));
    assert!(!verbs("services").contains(&"delete".to_string()));
    assert_eq!(crb.role_ref.name, cr.metadata.name.unwrap_or_default());
    // Without the flag: the namespaced three only.
    let plain = yaml("manifest rbac", &[]);
    assert!(!plain.contains("ClusterRole"), "{plain}");
}

/// The built binary with `args` and an empty environment: (exit code,
/// stdout, stderr).
fn vipd_bin(args: &str) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vipd"))
        .args(args.split_whitespace())
        .env_clear()
        .output()
        .expect("run vipd");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(key, operator)` of every required node-affinity expression, and
/// `(effect, operator)` of every toleration, sorted.
type Placement = (Vec<(String, String)>, Vec<(String, String)>);

fn placement(spec: &PodSpec) -> Placement {
    let affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|s| s.node_selector_terms.clone())
        .unwrap_or_default()
        .into_iter()
        .flat_map(|t| t.match_expressions.unwrap_or_default())
        .map(|r| (r.key, r.operator))
        .collect();
    let mut tolerations: Vec<(String, String)> = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| {
            (
                t.effect.clone().unwrap_or_default(),
                t.operator.clone().unwrap_or_default(),
            )
        })
        .collect();
    tolerations.sort();
    (affinity, tolerations)
}

/// kube-vip's documented DaemonSet command, unchanged
/// (kube-vip.io/docs/installation/daemonset, ARP mode).
const KUBE_VIP_DAEMONSET: &str = "manifest daemonset --interface eth0 --address 192.0.2.10 \
     --inCluster --taint --controlplane --services --arp --leaderElection";
/// kube-vip's documented static pod command, unchanged
/// (kube-vip.io/docs/installation/static, ARP mode).
const KUBE_VIP_POD: &str = "manifest pod --interface eth0 --address 192.0.2.10 \
     --controlplane --services --arp --leaderElection";

/// The env values kube-vip's generator writes for the documented commands,
/// which vipd's block must carry with kube-vip's names.
fn assert_kube_vip_env(c: &Container, text: &str) {
    for (name, v) in [
        ("vip_arp", "true"),
        ("vip_interface", "eth0"),
        ("address", "192.0.2.10"),
        ("port", "6443"),
        ("cp_enable", "true"),
        ("cp_namespace", "kube-system"),
        ("svc_enable", "true"),
        ("vip_leaderelection", "true"),
        ("vip_leasename", "plndr-cp-lock"),
    ] {
        assert_eq!(value(c, name), Some(v), "{name}\n{text}");
    }
}

#[test]
fn kube_vips_documented_daemonset_command_runs_unchanged() {
    let (code, text, stderr) = vipd_bin(KUBE_VIP_DAEMONSET);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.is_empty(),
        "no warning for a documented command: {stderr}"
    );
    let ds: DaemonSet = serde_yaml::from_str(&text).expect("a DaemonSet");
    let spec = ds.spec.and_then(|s| s.template.spec).expect("pod spec");
    assert_common(&spec);
    let c = container(&spec);
    assert_eq!(
        c.image.as_deref(),
        Some(vipd::config::default_image().as_str())
    );
    assert_kube_vip_env(c, &text);
    // --inCluster: the ServiceAccount, no kubeconfig from the host.
    assert_eq!(spec.service_account_name.as_deref(), Some("vipd"));
    assert!(spec.volumes.is_none(), "{text}");
    assert!(env_value(c, "k8s_config_file").is_none(), "{text}");
    // --taint: control-plane nodes only, tolerating both taint effects.
    let exists = |a: &str| (a.to_string(), "Exists".to_string());
    assert_eq!(
        placement(&spec),
        (
            vec![exists("node-role.kubernetes.io/control-plane")],
            vec![exists("NoExecute"), exists("NoSchedule")]
        ),
        "{text}"
    );
    // vipd's default placement is the same: without --taint the output is
    // what it always was (see `manifest::daemonset`).
    let (_, plain, _) = vipd_bin(
        "manifest daemonset --interface eth0 --address 192.0.2.10 --controlplane --services --arp",
    );
    assert_eq!(plain, text);
}

#[test]
fn daemonset_with_taint_false_runs_on_every_node_as_kube_vip_without_taint() {
    let text = yaml(&format!("manifest daemonset {CP} --taint=false"), &[]);
    let ds: DaemonSet = serde_yaml::from_str(&text).expect("a DaemonSet");
    let spec = ds.spec.and_then(|s| s.template.spec).expect("pod spec");
    assert_eq!(placement(&spec), (vec![], vec![]), "{text}");
    assert!(
        spec.affinity.is_none() && spec.tolerations.is_none(),
        "{text}"
    );
    assert_eq!(spec.service_account_name.as_deref(), Some("vipd"));
}

#[test]
fn kube_vips_documented_static_pod_command_runs_unchanged() {
    let (code, text, stderr) = vipd_bin(KUBE_VIP_POD);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.is_empty(),
        "no warning for a documented command: {stderr}"
    );
    let pod: Pod = serde_yaml::from_str(&text).expect("a Pod");
    let spec = pod.spec.expect("spec");
    assert_common(&spec);
    let c = container(&spec);
    assert_eq!(
        c.image.as_deref(),
        Some(vipd::config::default_image().as_str())
    );
    assert_kube_vip_env(c, &text);
    // kube-vip's static pod: admin.conf from the host, `kubernetes` on
    // loopback, no ServiceAccount, no placement rules (it is per node).
    assert_eq!(
        value(c, "k8s_config_file"),
        Some("/etc/kubernetes/admin.conf")
    );
    let host_paths: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| Some(v.host_path.as_ref()?.path.clone()))
        .collect();
    assert_eq!(host_paths, ["/etc/kubernetes/admin.conf"], "{text}");
    let aliases: Vec<(String, Vec<String>)> = spec
        .host_aliases
        .iter()
        .flatten()
        .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        aliases,
        [("127.0.0.1".to_string(), vec!["kubernetes".to_string()])]
    );
    assert!(spec.service_account_name.is_none(), "{text}");
    assert_eq!(placement(&spec), (vec![], vec![]), "{text}");
}

#[test]
fn pod_in_cluster_uses_the_service_account_instead_of_the_host_kubeconfig() {
    let (code, text, stderr) = vipd_bin(&format!("{KUBE_VIP_POD} --inCluster"));
    assert_eq!(code, Some(0), "{stderr}");
    let pod: Pod = serde_yaml::from_str(&text).expect("a Pod");
    let spec = pod.spec.expect("spec");
    assert_eq!(spec.service_account_name.as_deref(), Some("vipd"));
    assert!(spec.volumes.is_none(), "{text}");
    assert!(spec.host_aliases.is_none(), "{text}");
    assert!(env_value(container(&spec), "k8s_config_file").is_none());
    // A static pod gets no token: said once, on stderr, not in the YAML.
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("static pod"), "{stderr}");
    // A kubeconfig to mount contradicts --inCluster.
    let (code, out, stderr) = vipd_bin(&format!(
        "{KUBE_VIP_POD} --inCluster --kubeconfig-host-path /etc/kubernetes/super-admin.conf"
    ));
    assert_eq!((code, out.as_str()), (Some(2), ""), "{stderr}");
    assert!(stderr.contains("--inCluster"), "{stderr}");
    // --inCluster=false is kube-vip's default: the host's kubeconfig.
    let text = yaml(&format!("manifest pod {CP} --inCluster=false"), &[]);
    let pod: Pod = serde_yaml::from_str(&text).expect("a Pod");
    assert!(pod.spec.and_then(|s| s.service_account_name).is_none());
}
