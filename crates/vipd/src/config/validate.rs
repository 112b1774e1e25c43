//! The heart of configuration: the layers of [`Resolver`] turned into a
//! typed, validated [`Config`]. Every rule is checked here (R1's timing
//! rule, one mode at a time, addresses, paths), before anything on the host
//! is touched; the first violation is returned as a [`ConfigError`].

use std::collections::HashMap;
use std::path::PathBuf;

use super::options::*;
use super::sources::Raw;
use super::*;

/// The `--config` file (flag, else `VIPD_CONFIG`) and its parsed keys;
/// none when unset or empty.
pub(super) fn config_file(
    flag: Option<String>,
    env: &HashMap<String, String>,
) -> Result<(Option<PathBuf>, HashMap<String, String>), ConfigError> {
    let path = flag
        .or_else(|| env.get(CONFIG_ENV).cloned())
        .filter(|p| !p.trim().is_empty())
        .map(PathBuf::from);
    let file = match &path {
        None => HashMap::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::FileRead {
                path: path.clone(),
                error,
            })?;
            let known: Vec<&str> = ALL.iter().map(|o| o.key).collect();
            file::parse(path, &text, &known)?
        }
    };
    Ok((path, file))
}

/// `--prometheus-server`, `--log-level`, `--log-format`: shared by `vipd
/// run` and `vipd witness`.
pub(super) fn observability(
    r: &mut Resolver<'_>,
) -> Result<(Option<std::net::SocketAddr>, tracing::Level, bool), ConfigError> {
    let (http_addr, _) = r.get_or(
        &PROMETHEUS_SERVER,
        values::listen_addr(":2112").ok().flatten(),
        |a| a.map_or_else(|| "off".to_string(), |a| a.to_string()),
        values::listen_addr,
    )?;
    let (log_level, _) = r.get_or(
        &LOG_LEVEL,
        tracing::Level::INFO,
        |l| l.to_string().to_lowercase(),
        values::log_level,
    )?;
    let (log_json, _) = r.get_or(
        &LOG_FORMAT,
        false,
        |j| if *j { "json".into() } else { "text".into() },
        |s| match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(false),
            "json" => Ok(true),
            _ => Err("text or json"),
        },
    )?;
    Ok((http_addr, log_level, log_json))
}

/// Layers → typed, validated [`Config`].
pub(super) fn resolve(
    mut raw: RawOptions,
    env: &HashMap<String, String>,
    host: &HostFacts,
) -> Result<Config, ConfigError> {
    let (config_path, file) = config_file(raw.config.clone(), env)?;
    let kube_vip_flags = std::mem::take(&mut raw.kube_vip);
    let mut warnings = Vec::new();
    let mut r = Resolver {
        flags: raw.into_map(),
        env,
        file,
        settings: Vec::new(),
    };

    // Modes vipd does not implement are errors, not silent no-ops (SPEC §3:
    // "two modes at once" is refused); only kube-vip has switches for them.
    for (name, reason) in kubevip::UNSUPPORTED_MODES {
        if let Some(v) = env.get(*name).filter(|v| !v.trim().is_empty()) {
            match values::boolean(v) {
                Ok(false) => {}
                Ok(true) => {
                    return Err(ConfigError::Unsupported {
                        option: (*name).into(),
                        value: v.clone(),
                        reason: (*reason).into(),
                    })
                }
                Err(expected) => {
                    return Err(ConfigError::Invalid {
                        option: (*name).into(),
                        value: v.clone(),
                        from: Source::KubeVipEnv((*name).into()),
                        expected: expected.into(),
                    })
                }
            }
        }
    }
    // The same for kube-vip's flags (`--bgp`, `--table`, ...), which also
    // carry the switches vipd ignores with a warning.
    warnings.extend(kube_vip_flags.check()?);

    // Address and prefix.
    // Optional only in Services mode (checked once that is resolved).
    let vip = r.get(&ADDRESS, values::vip)?.map(|(vip, source)| {
        r.record(&ADDRESS, vip.to_string(), source);
        vip
    });
    if env.get("vip_cidr").is_some_and(|v| !v.trim().is_empty()) {
        let subnet_from_cidr = matches!(r.raw(&SUBNET), Some(Raw { source: Source::KubeVipEnv(ref k), .. }) if k == "vip_cidr");
        warnings.push(if subnet_from_cidr {
            "kube-vip variable vip_cidr is deprecated: it is honoured as the prefix length, rename it to vip_subnet".into()
        } else {
            "kube-vip variable vip_cidr is deprecated and ignored because the subnet is set elsewhere; remove it".into()
        });
    }
    let default_prefix = if vip.is_some_and(|v| v.is_ipv6()) {
        128
    } else {
        32
    };
    let (prefix_len, _) = r.get_or(
        &SUBNET,
        default_prefix,
        |p| format!("/{p}"),
        |s| values::prefix(s, vip),
    )?;

    // Interface.
    let interface = r.get(&INTERFACE, values::interface)?.map(|(i, source)| {
        r.record(&INTERFACE, i.clone(), source);
        i
    });
    if vip.is_some() && interface.is_none() {
        return Err(ConfigError::Missing {
            option: INTERFACE.describe(),
            hint: "set the interface that carries the VIP, e.g. --interface eth0".into(),
        });
    }
    let (wait_for_interface, _) = r.get_or(&WAIT_FOR_INTERFACE, false, yes_no, values::boolean)?;

    // Announcements.
    let (arp, _) = r.get_or(&ARP, true, yes_no, values::boolean)?;
    let (arp_rate, _) = r.get_or(
        &ARP_RATE,
        DEFAULT_ARP_REFRESH,
        |d| format!("{}ms", d.as_millis()),
        values::millis,
    )?;
    let arp_refresh = (arp && !arp_rate.is_zero()).then_some(arp_rate);

    // Identity and lease.
    let default_node = host.hostname.clone().unwrap_or_default();
    let (node_name, node_source) = r.get_or(&NODE_NAME, default_node, Clone::clone, |s| {
        Ok(s.trim().to_string())
    })?;
    if node_name.is_empty() {
        return Err(ConfigError::Missing {
            option: NODE_NAME.describe(),
            hint: format!(
                "the node name is empty ({node_source}); set a unique name per node, e.g. --node-name \"$(hostname)\""
            ),
        });
    }
    let (lease_full, lease_source) = r.get_or(
        &LEASE_NAME,
        DEFAULT_LEASE_NAME.to_string(),
        Clone::clone,
        |s| Ok(s.trim().to_string()),
    )?;
    // In a pod with nothing configured, the lease lives in the pod's own
    // namespace, as client-go's in-cluster programs default to.
    let sa_path = host.service_account_namespace_file.as_deref();
    let sa_namespace = health::service_account_namespace(sa_path);
    let (ns_flag, ns_source) = r.get_or(
        &LEASE_NAMESPACE,
        sa_namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_LEASE_NAMESPACE.to_string()),
        Clone::clone,
        |s| Ok(s.trim().to_string()),
    )?;
    if let (Source::Default, Some(_), Some(path)) = (&ns_source, &sa_namespace, sa_path) {
        set_source(
            &mut r.settings,
            &LEASE_NAMESPACE,
            Source::ServiceAccount(path.to_path_buf()),
        );
    }
    let invalid_lease = |expected: &str| ConfigError::Invalid {
        option: LEASE_NAME.describe(),
        value: lease_full.clone(),
        from: lease_source.clone(),
        expected: expected.into(),
    };
    let (lease_namespace, lease_name) = match lease_full.split_once('/') {
        Some((ns, name)) => (
            values::object_name(ns, 63).map_err(|()| invalid_lease("NAMESPACE/NAME with a namespace of lower-case letters, digits and '-' (at most 63)"))?,
            values::object_name(name, 253).map_err(|()| invalid_lease("a lease name of lower-case letters, digits, '-' and '.' (at most 253), optionally NAMESPACE/NAME"))?,
        ),
        None => (
            values::object_name(&ns_flag, 63).map_err(|()| ConfigError::Invalid {
                option: LEASE_NAMESPACE.describe(),
                value: ns_flag.clone(),
                from: r.raw(&LEASE_NAMESPACE).map(|r| r.source).unwrap_or(Source::Default),
                expected: "a namespace of lower-case letters, digits and '-' (at most 63)".into(),
            })?,
            values::object_name(&lease_full, 253).map_err(|()| invalid_lease("a lease name of lower-case letters, digits, '-' and '.' (at most 253), optionally NAMESPACE/NAME"))?,
        ),
    };

    if lease_full.contains('/') {
        // `ns/name` overrides --lease-namespace: show that in the table.
        if let Some(s) = r
            .settings
            .iter_mut()
            .find(|s| s.name == LEASE_NAMESPACE.key)
        {
            s.value = lease_namespace.clone();
            s.source = lease_source.clone();
        }
    }

    // Timings, checked against R1's fencing rule.
    let (lease, _) = r.get_or(
        &LEASE_DURATION,
        Duration::from_secs(15),
        secs,
        values::seconds,
    )?;
    let (renew, _) = r.get_or(
        &RENEW_DEADLINE,
        Duration::from_secs(10),
        secs,
        values::seconds,
    )?;
    let (retry, _) = r.get_or(&RETRY_PERIOD, Duration::from_secs(2), secs, values::seconds)?;
    let timings = vipd_election::Timings::new(lease, renew, retry).map_err(|reason| {
        ConfigError::Timings {
            lease,
            renew,
            retry,
            reason,
        }
    })?;

    // Coordination (SPEC §5a), then the backend, whose default depends on it.
    let coordination = quorum::resolve_coordination(&mut r, &node_name, false, &mut warnings)?;
    let quorum_mode = matches!(coordination, Coordination::Quorum(_));
    // Quorum mode needs no store: with no kubeconfig, no in-cluster service
    // account and no etcd endpoints it runs without one (issue 12).
    let default_backend = if !quorum_mode {
        "kubernetes"
    } else if r.raw(&ETCD_ENDPOINTS).is_some() {
        "etcd"
    } else if r.raw(&KUBECONFIG).is_some()
        || env.get("KUBECONFIG").is_some_and(|v| !v.trim().is_empty())
        || env.contains_key("KUBERNETES_SERVICE_HOST")
        || sa_namespace.is_some()
    {
        "kubernetes"
    } else {
        "none"
    };
    let (backend_name, backend_source) = r.get_or(
        &BACKEND,
        default_backend.to_string(),
        Clone::clone,
        |s| match s.trim().to_ascii_lowercase().as_str() {
            "etcd" => Ok("etcd".to_string()),
            "kubernetes" | "k8s" => Ok("kubernetes".to_string()),
            "none" => Ok("none".to_string()),
            _ => Err("etcd, kubernetes or none (none: quorum mode only)"),
        },
    )?;
    if backend_name == "none" && !quorum_mode {
        return Err(ConfigError::Invalid {
            option: BACKEND.describe(),
            value: backend_name,
            from: backend_source,
            expected: "etcd or kubernetes: lease mode keeps its lease in a store; --backend none needs --coordination quorum".into(),
        });
    }
    let endpoints = r.get(&ETCD_ENDPOINTS, |s| {
        let list: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
            .collect();
        if list.is_empty() || list.iter().any(|e| e.contains(char::is_whitespace)) {
            Err("comma-separated endpoints, e.g. http://192.0.2.1:2379,http://192.0.2.2:2379")
        } else {
            Ok(list)
        }
    })?;
    let ca_cert = r.get(&ETCD_CA_CERT, opt_path)?;
    let cert = r.get(&ETCD_CERT, opt_path)?;
    let key = r.get(&ETCD_KEY, opt_path)?;
    let backend = if backend_name == "etcd" {
        let Some((endpoints, ep_source)) = endpoints else {
            return Err(ConfigError::Missing {
                option: ETCD_ENDPOINTS.describe(),
                hint: "--backend etcd needs at least one endpoint, e.g. --etcd-endpoints http://192.0.2.1:2379".into(),
            });
        };
        if cert.is_some() != key.is_some() {
            let (opt, missing) = if cert.is_some() {
                (&ETCD_KEY, "--etcd-key")
            } else {
                (&ETCD_CERT, "--etcd-cert")
            };
            return Err(ConfigError::Missing {
                option: opt.describe(),
                hint: format!("a client certificate needs both --etcd-cert and --etcd-key; {missing} is not set"),
            });
        }
        r.record(&ETCD_ENDPOINTS, endpoints.join(","), ep_source);
        for (opt, v) in [
            (&ETCD_CA_CERT, &ca_cert),
            (&ETCD_CERT, &cert),
            (&ETCD_KEY, &key),
        ] {
            if let Some((p, s)) = v {
                r.record(opt, p.display().to_string(), s.clone());
            }
        }
        Backend::Etcd(EtcdSettings {
            endpoints,
            ca_cert: ca_cert.map(|(p, _)| p),
            cert: cert.map(|(p, _)| p),
            key: key.map(|(p, _)| p),
        })
    } else {
        if endpoints.is_some() || ca_cert.is_some() || cert.is_some() || key.is_some() {
            warnings.push(format!(
                "etcd settings are ignored because --backend is {backend_name}"
            ));
        }
        if backend_name == "none" {
            Backend::None
        } else {
            Backend::Kubernetes
        }
    };

    // Modes.
    let (control_plane, _) = r.get_or(&CONTROL_PLANE, false, yes_no, values::boolean)?;
    let services = services::resolve_services(
        &mut r,
        interface.as_deref(),
        matches!(backend, Backend::Kubernetes),
    )?;
    if vip.is_none() && services.is_none() {
        return Err(ConfigError::Missing {
            option: ADDRESS.describe(),
            hint: "set the virtual IP, e.g. --address 192.0.2.10 (or enable Services mode with --services)".into(),
        });
    }
    if vip.is_none() && control_plane {
        return Err(ConfigError::Missing {
            option: ADDRESS.describe(),
            hint: "control-plane mode needs the control-plane VIP, e.g. --address 192.0.2.10"
                .into(),
        });
    }
    let interface = match (interface, &services) {
        (Some(i), _) => i,
        (None, Some(s)) => s.interface.clone(),
        (None, None) => String::new(),
    };
    let (api_port, _) = r.get_or(&API_PORT, 6443, u16::to_string, values::port)?;
    let kubernetes_addr = r.get(&KUBERNETES_ADDR, |s| {
        if s.trim().is_empty() {
            Err("HOST:PORT of the local API server")
        } else {
            Ok(s.trim().to_string())
        }
    })?;
    if let Some((a, s)) = &kubernetes_addr {
        r.record(&KUBERNETES_ADDR, a.clone(), s.clone());
    }
    let kubeconfig = r.get(&KUBECONFIG, opt_path)?;
    if let Some((p, s)) = &kubeconfig {
        r.record(&KUBECONFIG, p.display().to_string(), s.clone());
    }
    let kube_api = health::resolve_kube_api(&mut r)?;
    let (health_checks, mut health) = health::resolve_health(&mut r, control_plane, api_port)?;
    let mut errors = Vec::new();
    if let Some(e) = health::etcd_mode_trust(
        &mut r,
        &mut health,
        &health_checks,
        matches!(backend, Backend::Etcd(_)),
        api_port,
        host.kubeadm_ca_file.as_deref(),
    ) {
        errors.push(e);
    }

    // BGP and routing-table modes (SPEC §5b).
    let mut bgp = bgp::resolve_bgp(&mut r, &mut warnings)?;
    // kube-vip's election switch: `--leaderElection[=BOOL]` (the flag wins,
    // as every flag over its variable), else `vip_leaderelection`.
    let elect = kube_vip_flags
        .boolean("leaderElection")
        .or_else(|| {
            env.get("vip_leaderelection")
                .and_then(|v| values::boolean(v).ok())
        })
        .unwrap_or(false);
    if let Some(b) = bgp.as_mut() {
        // kube-vip announces from every node unless leader election is
        // on; a quorum always has one holder.
        b.leader_election = matches!(coordination, Coordination::Quorum(_)) || elect;
        b.services_election = env
            .get("svc_election")
            .is_some_and(|v| values::boolean(v) == Ok(true));
    }
    let mut routing_table = bgp::resolve_routing_table(&mut r, &mut warnings)?;
    if let Some(t) = routing_table.as_mut() {
        // kube-vip's routing-table worker: StartCluster (one holder) with
        // vip_leaderelection=true, StartVipService (every node) without.
        t.leader_election = matches!(coordination, Coordination::Quorum(_)) || elect;
        t.services_election = env
            .get("svc_election")
            .is_some_and(|v| values::boolean(v) == Ok(true));
    }
    bgp::one_mode(bgp.is_some(), routing_table.is_some())?;
    if bgp.is_none() && routing_table.is_none() {
        // ARP/NDP mode always elects, so kube-vip's "no election" has no
        // meaning; in BGP and routing-table mode it is the every-node
        // (ECMP) mode read above, not a warning.
        if kube_vip_flags.boolean("leaderElection") == Some(false) {
            warnings.push(format!(
                "kube-vip flag --leaderElection=false is ignored: {}",
                kubevip_flags::ALWAYS_ELECTS
            ));
        }
        if let Some(v) = env
            .get("vip_leaderelection")
            .filter(|v| values::boolean(v) == Ok(false))
        {
            warnings.push(format!(
                "kube-vip variable vip_leaderelection={v} is ignored: {}",
                kubevip_flags::ALWAYS_ELECTS
            ));
        }
    }

    // Observability.
    let (http_addr, log_level, log_json) = observability(&mut r)?;
    let (reconcile_period, _) = r.get_or(
        &RECONCILE_PERIOD,
        DEFAULT_RECONCILE_PERIOD,
        secs,
        |s| match values::seconds(s) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err("seconds greater than zero, e.g. 5 or 0.5"),
        },
    )?;
    let (withdraw_drain, _) =
        r.get_or(
            &WITHDRAW_DRAIN,
            DEFAULT_WITHDRAW_DRAIN,
            secs,
            |s| match values::seconds(s) {
                Ok(d) if d <= Duration::from_secs(30) => Ok(d),
                _ => Err("seconds from 0 to 30, e.g. 0.5"),
            },
        )?;
    let (routed_arp_ignore, _) = r.get_or(&ROUTED_ARP_IGNORE, true, yes_no, values::boolean)?;

    // Leftover variables: one line each.
    warnings.extend(kubevip::warnings(env));
    let known_vipd: Vec<&str> = ALL.iter().map(|o| o.env).chain([CONFIG_ENV]).collect();
    let mut unknown_vipd: Vec<&String> = env
        .keys()
        .filter(|k| k.starts_with("VIPD_") && !known_vipd.contains(&k.as_str()))
        .collect();
    unknown_vipd.sort();
    warnings.extend(
        unknown_vipd
            .into_iter()
            .map(|k| format!("unknown variable {k} is ignored")),
    );

    // Keep the table in option order regardless of resolution order.
    let mut settings = r.settings;
    settings.sort_by_key(|s| ALL.iter().position(|o| o.key == s.name));

    let config = Config {
        vip,
        prefix_len,
        interface,
        wait_for_interface,
        arp,
        arp_refresh,
        node_name,
        lease_name,
        lease_namespace,
        timings,
        backend,
        coordination,
        control_plane,
        services,
        bgp,
        routing_table,
        http_addr,
        log_level,
        log_json,
        reconcile_period,
        withdraw_drain,
        routed_arp_ignore,
        kube_api,
        health_checks,
        health,
        api_port,
        kubernetes_addr: kubernetes_addr.map(|(a, _)| a),
        kubeconfig: kubeconfig.map(|(p, _)| p),
        config_file: config_path,
        warnings,
        errors,
        settings,
    };
    Ok(config)
}
