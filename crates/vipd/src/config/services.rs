//! Services-mode options (`--services`, kube-vip's `svc_enable` and friends).

use std::collections::BTreeMap;

use super::options::*;
use super::{values, yes_no, ConfigError, Resolver};

/// kube-vip's default `lb_class_name` (pkg/kubevip/config_envvar.go).
pub const DEFAULT_LB_CLASS_NAME: &str = "kube-vip.io/kube-vip-class";
/// kube-vip-cloud-provider's ConfigMap (namespace, name).
pub const DEFAULT_IPAM_CONFIGMAP: (&str, &str) = ("kube-system", "kubevip");
/// Announcement frames per second per interface: an IPv4 address costs two
/// frames per announcement, so 1,000 addresses get their first burst within
/// about two seconds without flooding the segment.
pub const DEFAULT_ANNOUNCE_MAX_PPS: u32 = 1000;

/// Settings of Services mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicesSettings {
    /// Interface the Service addresses go on (`vip_servicesinterface`,
    /// default `--interface`).
    pub interface: String,
    /// Only Services of this namespace (`svc_namespace`); `None`: all.
    pub namespace: Option<String>,
    /// Serve only Services of class `lb_class_name` (`lb_class_only`).
    pub lb_class_only: bool,
    /// The loadBalancerClass vipd answers to (`lb_class_name`).
    pub lb_class_name: String,
    /// Labels a node needs to announce Service addresses.
    pub node_selector: BTreeMap<String, String>,
    /// Default fallback for zone-pinned addresses.
    pub zone_fallback: bool,
    /// Move addresses back to the rendezvous winner when it returns.
    pub preempt: bool,
    /// IPAM pools ConfigMap (namespace, name); `None`: no IPAM.
    pub ipam_configmap: Option<(String, String)>,
    /// Announcement frame cap per second (0: none).
    pub announce_max_pps: u32,
}

fn node_selector(s: &str) -> Result<BTreeMap<String, String>, &'static str> {
    const EXPECTED: &str =
        "comma-separated label=value pairs, e.g. vipd.io/lb=true,kubernetes.io/os=linux";
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or(EXPECTED)?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || k.contains(char::is_whitespace) || v.contains(char::is_whitespace) {
            return Err(EXPECTED);
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn configmap_ref(s: &str) -> Result<Option<(String, String)>, &'static str> {
    const EXPECTED: &str = "NAMESPACE/NAME of a ConfigMap, or empty to disable IPAM";
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let (ns, name) = s.split_once('/').ok_or(EXPECTED)?;
    let ns = values::object_name(ns, 63).map_err(|()| EXPECTED)?;
    let name = values::object_name(name, 253).map_err(|()| EXPECTED)?;
    Ok(Some((ns, name)))
}

/// Resolves the Services-mode options; `Ok(None)` when Services mode is off
/// (its other options are then recorded but unused).
pub(super) fn resolve_services(
    r: &mut Resolver<'_>,
    interface: Option<&str>,
    kubernetes_backend: bool,
) -> Result<Option<ServicesSettings>, ConfigError> {
    let (enabled, source) = r.get_or(&SERVICES, false, yes_no, values::boolean)?;
    let own_if = r.get(&SERVICES_INTERFACE, values::interface)?;
    let namespace = r.get(&SERVICES_NAMESPACE, |s| {
        values::object_name(s, 63)
            .map_err(|()| "a namespace of lower-case letters, digits and '-' (at most 63)")
    })?;
    let (lb_class_only, _) = r.get_or(&LB_CLASS_ONLY, false, yes_no, values::boolean)?;
    let (lb_class_name, _) = r.get_or(
        &LB_CLASS_NAME,
        DEFAULT_LB_CLASS_NAME.to_string(),
        Clone::clone,
        |s| {
            let s = s.trim();
            if s.is_empty() || s.contains(char::is_whitespace) {
                Err("a loadBalancerClass, e.g. kube-vip.io/kube-vip-class")
            } else {
                Ok(s.to_string())
            }
        },
    )?;
    let (selector, _) = r.get_or(
        &SERVICES_NODE_SELECTOR,
        BTreeMap::new(),
        |m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        },
        node_selector,
    )?;
    let (zone_fallback, _) = r.get_or(&ZONE_FALLBACK, false, yes_no, values::boolean)?;
    let (preempt, _) = r.get_or(&PREEMPT, false, yes_no, values::boolean)?;
    let default_cm = Some((
        DEFAULT_IPAM_CONFIGMAP.0.to_string(),
        DEFAULT_IPAM_CONFIGMAP.1.to_string(),
    ));
    let (ipam_configmap, _) = r.get_or(
        &IPAM_CONFIGMAP,
        default_cm,
        |c| {
            c.as_ref()
                .map_or_else(|| "off".into(), |(n, m)| format!("{n}/{m}"))
        },
        configmap_ref,
    )?;
    let (announce_max_pps, _) = r.get_or(
        &ANNOUNCE_MAX_PPS,
        DEFAULT_ANNOUNCE_MAX_PPS,
        u32::to_string,
        |s| {
            s.trim()
                .parse()
                .map_err(|_| "frames per second as a whole number (0 = no cap)")
        },
    )?;
    if !enabled {
        return Ok(None);
    }
    if !kubernetes_backend {
        return Err(ConfigError::Unsupported {
            option: SERVICES.describe(),
            value: "true".into(),
            reason: format!(
                "Services mode ({source}) reads Services from the Kubernetes API: use --backend kubernetes"
            ),
        });
    }
    let interface = match (own_if, interface) {
        (Some((i, s)), _) => {
            r.record(&SERVICES_INTERFACE, i.clone(), s);
            i
        }
        (None, Some(i)) => i.to_string(),
        (None, None) => return Err(ConfigError::Missing {
            option: SERVICES_INTERFACE.describe(),
            hint:
                "Services mode needs an interface, e.g. --services-interface eth0 (or --interface)"
                    .into(),
        }),
    };
    let namespace = namespace.map(|(n, s)| {
        r.record(&SERVICES_NAMESPACE, n.clone(), s);
        n
    });
    Ok(Some(ServicesSettings {
        interface,
        namespace,
        lb_class_only,
        lb_class_name,
        node_selector: selector,
        zone_fallback,
        preempt,
        ipam_configmap,
        announce_max_pps,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_selector_parses_pairs_and_rejects_junk() {
        let m = node_selector("a=b, c/d=e").expect("parse");
        assert_eq!(m.get("a").map(String::as_str), Some("b"));
        assert_eq!(m.get("c/d").map(String::as_str), Some("e"));
        assert!(node_selector("a").is_err());
        assert!(node_selector("=b").is_err());
        assert!(node_selector("").expect("empty").is_empty());
    }

    #[test]
    fn configmap_reference_needs_namespace_and_name() {
        assert_eq!(
            configmap_ref("kube-system/kubevip").expect("ok"),
            Some(("kube-system".into(), "kubevip".into()))
        );
        assert_eq!(configmap_ref(" ").expect("off"), None);
        assert!(configmap_ref("kubevip").is_err());
        assert!(configmap_ref("Bad/x").is_err());
    }
}
