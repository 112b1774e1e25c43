//! `vipd manifest pod|daemonset|rbac`: ready-to-apply YAML (SPEC §2),
//! equivalent to kube-vip's `manifest pod` / `manifest daemonset` and the
//! RBAC from its documentation, so the migration is an image swap.
//!
//! The objects are k8s-openapi types (API v1.33), turned into JSON values
//! and written by a small emitter ([`yaml`]) that double-quotes every
//! string. The env block uses kube-vip's variable names wherever kube-vip
//! has one, so the same manifest also runs kube-vip (a rollback is the image
//! swapped back); vipd-only settings use `VIPD_*` names, which kube-vip
//! ignores.

pub mod yaml;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, EnvVar, EnvVarSource, HostAlias, HostPathVolumeSource,
    NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    Pod, PodSpec, PodTemplateSpec, SecurityContext, ServiceAccount, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::config::{
    default_health_check, Backend, Config, ManifestRequest, DEFAULT_ARP_REFRESH,
    DEFAULT_HEALTH_FAILURE_THRESHOLD, DEFAULT_HEALTH_PERIOD, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_KUBE_API_BURST, DEFAULT_KUBE_API_QPS, DEFAULT_KUBE_API_TIMEOUT,
    DEFAULT_RECONCILE_PERIOD,
};

/// Name of the pod, DaemonSet, container, ServiceAccount, Role and
/// RoleBinding.
pub const NAME: &str = "vipd";
/// Namespace of the static pod, the DaemonSet and the ServiceAccount
/// (kube-vip's choice; `system-node-critical`-class workloads live there).
pub const WORKLOAD_NAMESPACE: &str = "kube-system";
/// Where the pod mounts the kubeconfig unless `--kubeconfig` says otherwise;
/// kube-vip's path, so kube-vip manifests and vipd manifests agree.
pub const KUBECONFIG_MOUNT_PATH: &str = "/etc/kubernetes/admin.conf";
/// The label kubeadm puts on control-plane nodes (value empty).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Why a manifest could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A k8s-openapi object did not convert to JSON (not expected).
    #[error("cannot serialise the {kind} manifest: {source}")]
    Serialise {
        /// Object kind.
        kind: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
}

/// The YAML for `request`: one document for pod and daemonset, a `---`
/// separated stream (ServiceAccount, Role, RoleBinding) for rbac.
pub fn render(request: &ManifestRequest) -> Result<String, ManifestError> {
    Ok(match request {
        ManifestRequest::Pod {
            config,
            image,
            kubeconfig_host_path,
            in_cluster,
        } => {
            let credentials = if *in_cluster {
                PodCredentials::ServiceAccount
            } else {
                PodCredentials::HostKubeconfig(kubeconfig_host_path)
            };
            yaml::to_yaml(&json("Pod", &pod(config, image, credentials))?)
        }
        ManifestRequest::DaemonSet {
            config,
            image,
            control_plane_only,
        } => yaml::to_yaml(&json(
            "DaemonSet",
            &daemonset(config, image, *control_plane_only),
        )?),
        ManifestRequest::Rbac {
            lease_namespace,
            services,
        } => {
            let (sa, role, binding) = rbac(lease_namespace);
            let mut docs = vec![
                json("ServiceAccount", &sa)?,
                json("Role", &role)?,
                json("RoleBinding", &binding)?,
            ];
            if *services {
                let (cr, crb) = services_rbac();
                docs.push(json("ClusterRole", &cr)?);
                docs.push(json("ClusterRoleBinding", &crb)?);
            }
            yaml::to_yaml_stream(&docs)
        }
    })
}

/// Prints [`render`]'s YAML on stdout and the configuration's warnings
/// (ignored kube-vip flags, say) on stderr; on error a message on stderr
/// and status 1. What `main` calls for [`crate::config::Command::Manifest`].
pub fn print(request: &ManifestRequest) -> ExitCode {
    for w in request.warnings() {
        eprintln!("warning: {w}");
    }
    match render(request) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vipd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn json<T: serde::Serialize>(
    kind: &'static str,
    v: &T,
) -> Result<serde_json::Value, ManifestError> {
    serde_json::to_value(v).map_err(|source| ManifestError::Serialise { kind, source })
}

/// How the pod of [`pod`] authenticates to the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodCredentials<'a> {
    /// The kubeconfig file on the host at this path, mounted read-only
    /// (kube-vip's default: kubeadm's `admin.conf`).
    HostKubeconfig(&'a Path),
    /// The `vipd` ServiceAccount's token (kube-vip's `--inCluster`); only a
    /// pod created through the API server gets one, never a static pod.
    ServiceAccount,
}

/// The pod for kubeadm control-plane nodes: host network and, with
/// [`PodCredentials::HostKubeconfig`] (a static pod), the kubeconfig from
/// the host and kube-vip's `kubernetes` → 127.0.0.1 host alias (kubeadm's
/// kubeconfig may name the control-plane endpoint `kubernetes`). vipd never
/// dials a server equal to its own VIP in control-plane mode (SPEC R6), so
/// `admin.conf` pointing at the VIP is fine. With
/// [`PodCredentials::ServiceAccount`], as kube-vip's `--inCluster`: the
/// `vipd` ServiceAccount instead of both.
pub fn pod(config: &Config, image: &str, credentials: PodCredentials<'_>) -> Pod {
    let spec = match credentials {
        PodCredentials::HostKubeconfig(host_path) => {
            let mount_path = config.kubeconfig.as_ref().map_or_else(
                || KUBECONFIG_MOUNT_PATH.to_string(),
                |p| p.display().to_string(),
            );
            let mut spec = pod_spec(config, image, Some(&mount_path));
            // The host's admin.conf is root-owned 0600, and the image runs
            // as the non-root user 65532: the static pod runs vipd as root
            // (still with only NET_ADMIN/NET_RAW), as kube-vip's does.
            if let Some(sc) = spec
                .containers
                .first_mut()
                .and_then(|c| c.security_context.as_mut())
            {
                sc.run_as_user = Some(0);
            }
            add_host_file(
                &mut spec,
                "kubeconfig",
                &host_path.display().to_string(),
                &mount_path,
            );
            spec.host_aliases = Some(vec![HostAlias {
                ip: "127.0.0.1".into(),
                hostnames: Some(vec!["kubernetes".into()]),
            }]);
            spec
        }
        PodCredentials::ServiceAccount => PodSpec {
            service_account_name: Some(NAME.into()),
            ..pod_spec(config, image, None)
        },
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(WORKLOAD_NAMESPACE.into()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The DaemonSet, authenticated by the `vipd` ServiceAccount ([`rbac`]).
/// With `control_plane_only`: control-plane nodes only (node affinity on
/// [`CONTROL_PLANE_LABEL`]), tolerating their `NoSchedule` / `NoExecute`
/// taints; otherwise every node the scheduler allows.
///
/// This is what kube-vip's `--taint` adds (tolerations for both effects and
/// the control-plane affinity; kube-vip also matches the pre-1.24
/// `node-role.kubernetes.io/master` label, which no Kubernetes vipd supports
/// still sets). Without `--taint` kube-vip adds neither, but vipd keeps
/// control-plane placement as its default: it is what every documented
/// kube-vip DaemonSet command asks for, what vipd's manifests have always
/// produced, and control-plane mode on a worker has no local API server to
/// gate on (SPEC R6). `--taint=false` gives kube-vip's placement without
/// `--taint` (e.g. Services mode on every node).
pub fn daemonset(config: &Config, image: &str, control_plane_only: bool) -> DaemonSet {
    let mut spec = pod_spec(config, image, None);
    spec.service_account_name = Some(NAME.into());
    if control_plane_only {
        control_plane_placement(&mut spec);
    }
    let selector: BTreeMap<String, String> =
        [("app.kubernetes.io/name".to_string(), NAME.to_string())].into();
    DaemonSet {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(WORKLOAD_NAMESPACE.into()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(spec),
            },
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}

/// Control-plane nodes only, tolerating their taints (kube-vip's `--taint`).
fn control_plane_placement(spec: &mut PodSpec) {
    spec.tolerations = Some(
        ["NoSchedule", "NoExecute"]
            .into_iter()
            .map(|effect| Toleration {
                effect: Some(effect.into()),
                operator: Some("Exists".into()),
                ..Toleration::default()
            })
            .collect(),
    );
    spec.affinity = Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: CONTROL_PLANE_LABEL.into(),
                        operator: "Exists".into(),
                        values: None,
                    }]),
                    match_fields: None,
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    });
}

/// Least-privilege RBAC: the `vipd` ServiceAccount in
/// [`WORKLOAD_NAMESPACE`], and a Role plus RoleBinding in the lease's
/// namespace allowing
/// - `coordination.k8s.io` leases: `get`, `create`, `update` (client-go's
///   LeaseLock: read, create if absent, replace with the resourceVersion;
///   release is an update too), and `list` + `watch`, because vipd watches
///   its one lease through a `metadata.name` field selector, which the API
///   server authorises as list/watch;
/// - events: `create`, in the core group and in `events.k8s.io` (events on
///   the Lease, best effort).
///
/// Nothing cluster-wide; Services mode adds [`services_rbac`].
pub fn rbac(lease_namespace: &str) -> (ServiceAccount, Role, RoleBinding) {
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(WORKLOAD_NAMESPACE.into()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let rule = |group: &str, resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    };
    let role = Role {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(lease_namespace.into()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                "coordination.k8s.io",
                "leases",
                &["get", "create", "update", "list", "watch"],
            ),
            rule("", "events", &["create"]),
            rule("events.k8s.io", "events", &["create"]),
        ]),
    };
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(lease_namespace.into()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: NAME.into(),
            namespace: Some(WORKLOAD_NAMESPACE.into()),
            api_group: None,
        }]),
    };
    (sa, role, binding)
}

/// Services mode's cluster-wide rules (`manifest rbac --services`), on top
/// of [`rbac`]'s Role (node leases, the assigner lease and the assignment
/// ConfigMap live in the lease namespace, so the Role also needs
/// configmaps; they are granted here cluster-wide with the IPAM ConfigMap,
/// which lives in kube-system):
/// - services: `get`, `list`, `watch`, `update` (IPAM annotation, vipHost),
///   and `services/status`: `update` (owner writes the ingress);
/// - endpointslices and nodes: `list`, `watch` (eligibility);
/// - configmaps: `get`, `list`, `watch`, `create`, `update` (the IPAM pool,
///   read; the assignment record, written by the assigner);
/// - leases: `delete` is never needed; events: `create` in any namespace
///   (Events about Services).
pub fn services_rbac() -> (ClusterRole, ClusterRoleBinding) {
    let rule = |group: &str, resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(vec![resource.into()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    };
    let name = format!("{NAME}-services");
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule("", "services", &["get", "list", "watch", "update"]),
            rule("", "services/status", &["update"]),
            rule("discovery.k8s.io", "endpointslices", &["list", "watch"]),
            rule("", "nodes", &["list", "watch"]),
            rule(
                "",
                "configmaps",
                &["get", "list", "watch", "create", "update"],
            ),
            rule("", "events", &["create"]),
            rule("events.k8s.io", "events", &["create"]),
        ]),
        aggregation_rule: None,
    };
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: NAME.into(),
            namespace: Some(WORKLOAD_NAMESPACE.into()),
            api_group: None,
        }]),
    };
    (role, binding)
}

fn labels() -> BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_string(), NAME.to_string())].into()
}

/// The pod spec shared by the static pod and the DaemonSet.
fn pod_spec(config: &Config, image: &str, kubeconfig_in_pod: Option<&str>) -> PodSpec {
    let container = Container {
        name: NAME.into(),
        image: Some(image.into()),
        // A static pod must start while the registry (or the VIP in front
        // of it) may be unreachable: never force a pull.
        image_pull_policy: Some("IfNotPresent".into()),
        // kube-vip's subcommand, so this manifest also runs kube-vip.
        args: Some(vec!["manager".into()]),
        env: Some(env_block(config, kubeconfig_in_pod)),
        security_context: Some(SecurityContext {
            // SPEC §2: CAP_NET_ADMIN (addresses) and CAP_NET_RAW (ARP/NA
            // frames) and nothing else.
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                drop: Some(vec!["ALL".into()]),
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let mut spec = PodSpec {
        containers: vec![container],
        host_network: Some(true),
        ..PodSpec::default()
    };
    if let Some(ca) = &config.health.ca_path {
        let ca = ca.display().to_string();
        add_host_file(&mut spec, "health-check-ca", &ca, &ca);
    }
    spec
}

/// Mounts the host file `host_path` read-only at `mount_path`.
fn add_host_file(spec: &mut PodSpec, name: &str, host_path: &str, mount_path: &str) {
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: host_path.into(),
            type_: Some("File".into()),
        }),
        ..Volume::default()
    });
    if let Some(c) = spec.containers.first_mut() {
        c.volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: name.into(),
                mount_path: mount_path.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
    }
}

/// The environment that reproduces `config` in a pod: kube-vip's names
/// where they exist, `VIPD_*` for vipd-only settings that differ from the
/// default. The node name comes from the downward API (`spec.nodeName`), not
/// from the machine that generated the manifest.
pub fn env_block(config: &Config, kubeconfig_in_pod: Option<&str>) -> Vec<EnvVar> {
    let mut env = Vec::new();
    let mut set = |name: &str, value: String| {
        env.push(EnvVar {
            name: name.into(),
            value: Some(value),
            value_from: None,
        })
    };
    set("vip_arp", config.arp.to_string());
    if config.arp {
        let rate = config.arp_refresh.map_or(0, |d| d.as_millis());
        if config.arp_refresh != Some(DEFAULT_ARP_REFRESH) {
            set("vip_arpRate", rate.to_string());
        }
    }
    set("port", config.api_port.to_string());
    set("vip_interface", config.interface.clone());
    set("vip_subnet", config.prefix_len.to_string());
    set("cp_enable", config.control_plane.to_string());
    set("cp_namespace", config.lease_namespace.clone());
    // kube-vip needs it to elect; vipd always elects (SPEC R1).
    set("vip_leaderelection", "true".into());
    set("vip_leasename", config.lease_name.clone());
    set(
        "vip_leaseduration",
        seconds(config.timings.lease_duration()),
    );
    set(
        "vip_renewdeadline",
        seconds(config.timings.renew_deadline()),
    );
    set("vip_retryperiod", seconds(config.timings.retry_period()));
    if let Some(vip) = config.vip {
        set("address", vip.to_string());
    }
    if let Some(svc) = &config.services {
        set("svc_enable", "true".into());
        if svc.interface != config.interface {
            set("vip_servicesinterface", svc.interface.clone());
        }
        if let Some(ns) = &svc.namespace {
            set("svc_namespace", ns.clone());
        }
        if svc.lb_class_only {
            set("lb_class_only", "true".into());
        }
        if svc.lb_class_name != crate::config::DEFAULT_LB_CLASS_NAME {
            set("lb_class_name", svc.lb_class_name.clone());
        }
    }
    match config.http_addr {
        // Go's `:2112` is kube-vip's spelling of "all addresses".
        Some(a) if a.ip().is_unspecified() && a.is_ipv4() => {
            set("prometheus_server", format!(":{}", a.port()))
        }
        Some(a) => set("prometheus_server", a.to_string()),
        // An empty kube-vip variable counts as unset; an empty VIPD_* value
        // disables the server.
        None => set("VIPD_PROMETHEUS_SERVER", String::new()),
    }
    set("vip_loglevel", logrus_level(config.log_level).to_string());
    if let Some(k) = kubeconfig_in_pod {
        set("k8s_config_file", k.into());
    }
    if let Some(a) = &config.kubernetes_addr {
        set("kubernetes_addr", a.clone());
    }
    if let Backend::Etcd(etcd) = &config.backend {
        set("VIPD_BACKEND", "etcd".into());
        set("VIPD_ETCD_ENDPOINTS", etcd.endpoints.join(","));
        for (name, path) in [
            ("VIPD_ETCD_CA_CERT", &etcd.ca_cert),
            ("VIPD_ETCD_CERT", &etcd.cert),
            ("VIPD_ETCD_KEY", &etcd.key),
        ] {
            if let Some(p) = path {
                set(name, p.display().to_string());
            }
        }
    }
    // Health gating: kube-vip's address and tuning, vipd's extra checks.
    let health = &config.health;
    if let Some(a) = &health.address {
        set("control_plane_health_check_address", a.clone());
    }
    let derived_default =
        config.control_plane && config.health_checks == [default_health_check(config.api_port)];
    let extra: Vec<&str> = config
        .health_checks
        .iter()
        .filter(|c| Some(*c) != health.address.as_ref())
        .map(String::as_str)
        .collect();
    if !extra.is_empty() && !derived_default {
        set("VIPD_HEALTH_CHECKS", extra.join(","));
    }
    if health.period != DEFAULT_HEALTH_PERIOD {
        set(
            "control_plane_health_check_period_seconds",
            seconds(health.period),
        );
    }
    if health.timeout != DEFAULT_HEALTH_TIMEOUT {
        set(
            "control_plane_health_check_timeout_seconds",
            seconds(health.timeout),
        );
    }
    if health.failure_threshold != DEFAULT_HEALTH_FAILURE_THRESHOLD {
        set(
            "control_plane_health_check_failure_threshold",
            health.failure_threshold.to_string(),
        );
    }
    if let Some(ca) = &health.ca_path {
        set(
            "control_plane_health_check_ca_path",
            ca.display().to_string(),
        );
    }
    // vipd-only settings, written only when they differ from the default.
    let api = &config.kube_api;
    if api.qps != DEFAULT_KUBE_API_QPS {
        set("VIPD_KUBE_API_QPS", api.qps.to_string());
    }
    if api.burst != DEFAULT_KUBE_API_BURST {
        set("VIPD_KUBE_API_BURST", api.burst.to_string());
    }
    if api.timeout != DEFAULT_KUBE_API_TIMEOUT {
        set("VIPD_KUBE_API_TIMEOUT", seconds(api.timeout));
    }
    if config.wait_for_interface {
        set("VIPD_WAIT_FOR_INTERFACE", "true".into());
    }
    if config.log_json {
        set("VIPD_LOG_FORMAT", "json".into());
    }
    if config.reconcile_period != DEFAULT_RECONCILE_PERIOD {
        set("VIPD_RECONCILE_PERIOD", seconds(config.reconcile_period));
    }
    env.insert(
        // Next to the other identity settings, as kube-vip places it.
        1,
        EnvVar {
            name: "vip_nodename".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".into(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        },
    );
    env
}

/// `15` for whole seconds, `0.5` otherwise (vipd reads both; kube-vip only
/// whole numbers, which is what its users write).
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        d.as_secs_f64().to_string()
    }
}

/// kube-vip's logrus number for a level (`config::values::log_level`'s
/// inverse).
fn logrus_level(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 2,
        tracing::Level::WARN => 3,
        tracing::Level::INFO => 4,
        tracing::Level::DEBUG => 5,
        tracing::Level::TRACE => 6,
    }
}
