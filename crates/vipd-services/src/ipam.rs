//! IPAM for Services without an address, compatible with
//! kube-vip-cloud-provider's ConfigMap (`kubevip` in `kube-system`). Pure:
//! no Kubernetes types, no IO, no state kept between calls.
//!
//! # The ConfigMap (keys as kube-vip-cloud-provider reads them)
//!
//! - `cidr-<ns>`, `range-<ns>`, `cidr-global`, `range-global`: comma-separated
//!   CIDRs (`192.0.2.0/24`) or inclusive ranges (`192.0.2.10-192.0.2.20`),
//!   IPv4 and IPv6 mixed for dual stack. Within one scope a `cidr-` key
//!   hides the `range-` key (the provider tries `cidr` first).
//! - `allow-share-<ns>` (falling back to `allow-share-global`): Go
//!   `strconv.ParseBool` values.
//! - `skip-end-ips-in-cidr`: exactly `"true"` skips the network and
//!   broadcast address of every IPv4 CIDR shorter than /31.
//! - `search-order`: `"desc"` hands out the highest free address first;
//!   anything else ascending.
//! - `interface-<ns>` / `interface-global`: written by the provider to the
//!   `kube-vip.io/serviceInterface` annotation ([`PoolConfig::interface`]).
//!
//! # Deliberate differences from the provider (each safer or more lenient)
//!
//! - The namespace scope (`cidr-<ns>`, else `range-<ns>`) is preferred over
//!   the global one. The provider tries `cidr-<ns>`, `cidr-global`,
//!   `range-<ns>`, `range-global` in that order, so a `cidr-global` hides a
//!   `range-<ns>` there.
//! - Bad entries are skipped with a warning instead of failing the whole
//!   pool; a scope left with no usable entry counts as absent.
//! - The in-use set is every [`Claim`] the caller passes (all Services with
//!   an address, cluster-wide), not only the labelled Services of the pool's
//!   scope: overlapping namespace pools cannot hand out a duplicate.
//! - Sharing only joins addresses whose every user is in the requesting
//!   namespace, compares `(protocol, port)` (the provider compares port
//!   numbers only, and shares with any namespace when the pool is global),
//!   picks deterministically in search order (the provider iterates a Go
//!   map), works for both families (the provider: IPv4 only) and only joins
//!   addresses inside the requester's pool.
//! - Adjacent CIDRs are not merged before `skip-end-ips-in-cidr` trims
//!   their ends (the provider merges them in a `netipx.IPSet` first).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The ConfigMap the provider reads (in [`CONFIG_MAP_NAMESPACE`]).
pub const CONFIG_MAP_NAME: &str = "kubevip";
/// Namespace of [`CONFIG_MAP_NAME`].
pub const CONFIG_MAP_NAMESPACE: &str = "kube-system";
/// Annotation holding the allocated addresses, comma-separated, in the
/// order returned by [`allocate`].
pub const LOADBALANCER_IPS_ANNOTATION: &str = "kube-vip.io/loadbalancerIPs";
/// Label key the provider sets on every Service it implements.
pub const IMPLEMENTATION_LABEL_KEY: &str = "implementation";
/// Value of [`IMPLEMENTATION_LABEL_KEY`].
pub const IMPLEMENTATION_LABEL_VALUE: &str = "kube-vip";
/// Annotation the provider sets from `interface-<ns>` / `interface-global`.
pub const SERVICE_INTERFACE_ANNOTATION: &str = "kube-vip.io/serviceInterface";

/// A Service port for sharing decisions: (protocol upper-case, e.g. `"TCP"`,
/// port). Kubernetes defaults an absent protocol to `TCP`.
pub type PortKey = (String, u16);

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    /// Parses Kubernetes' `spec.ipFamilies` spelling (`IPv4`, `IPv6`).
    pub fn from_k8s(s: &str) -> Option<Family> {
        match s {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The families to request for a Service, and whether all are required,
/// from `spec.ipFamilyPolicy` and `spec.ipFamilies` as the provider reads
/// them: absent or `SingleStack` → the first listed family only (none
/// listed: empty, and [`allocate`] takes IPv4 if the pool has it, else
/// IPv6); `PreferDualStack` / `RequireDualStack` → the first listed family
/// (default IPv4) then the other one, even when only one is listed (the
/// provider allocates both whenever the pool has both).
pub fn plan_families(ip_family_policy: Option<&str>, ip_families: &[&str]) -> (Vec<Family>, bool) {
    let first = ip_families.iter().find_map(|s| Family::from_k8s(s));
    match ip_family_policy {
        Some(p @ ("PreferDualStack" | "RequireDualStack")) => {
            let first = first.unwrap_or(Family::V4);
            (vec![first, first.other()], p == "RequireDualStack")
        }
        _ => (first.into_iter().collect(), false),
    }
}

/// Which end of the pool is handed out first (`search-order`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchOrder {
    /// Lowest free address first (the default).
    #[default]
    Ascending,
    /// Highest free address first (`search-order: desc`).
    Descending,
}

/// Inclusive address intervals of one family, sorted and merged. IPv4
/// addresses are stored as their `u32` value widened to `u128`.
type Intervals = Vec<(u128, u128)>;

/// One scope's addresses (a namespace's or the global one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    /// The ConfigMap key the addresses came from (for messages).
    source: String,
    v4: Intervals,
    v6: Intervals,
}

impl Pool {
    /// The ConfigMap key the pool came from, e.g. `cidr-global`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the pool has addresses of `family`.
    pub fn has_family(&self, family: Family) -> bool {
        !self.intervals(family).is_empty()
    }

    /// True when `addr` is in the pool (before the `.0`/`.255` rule of
    /// [`allocate`]).
    pub fn contains(&self, addr: &IpAddr) -> bool {
        let (family, v) = to_u128(addr);
        in_intervals(self.intervals(family), v)
    }

    /// Number of addresses of `family` in the pool, saturating at
    /// `u128::MAX`.
    pub fn size(&self, family: Family) -> u128 {
        self.intervals(family).iter().fold(0u128, |n, (lo, hi)| {
            n.saturating_add(hi - lo).saturating_add(1)
        })
    }

    fn intervals(&self, family: Family) -> &Intervals {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }
}

/// The parsed ConfigMap. `parse` never fails: bad entries become warnings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// Pools by scope name; `"global"` is the global scope, as in the
    /// provider (a namespace literally named `global` shares it).
    pools: BTreeMap<String, Pool>,
    allow_share: BTreeMap<String, bool>,
    interfaces: BTreeMap<String, String>,
    skip_end_ips: bool,
    order: SearchOrder,
}

const GLOBAL: &str = "global";

impl PoolConfig {
    /// Parses the ConfigMap's `data`. Returns the configuration and one
    /// warning line per entry or key that was ignored.
    pub fn parse(data: &BTreeMap<String, String>) -> (PoolConfig, Vec<String>) {
        let mut warnings = Vec::new();
        let mut cfg = PoolConfig::default();
        // Scope → (cidr value, range value): resolved after the global keys,
        // because skip-end-ips-in-cidr changes how CIDRs expand.
        let mut scopes: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
        for (key, value) in data {
            let value = value.as_str();
            if key == "skip-end-ips-in-cidr" {
                // The provider compares with "true" exactly.
                cfg.skip_end_ips = value == "true";
                if value != "true" && value != "false" {
                    warnings.push(format!(
                        "{key}: {value:?} is not \"true\" or \"false\"; taken as false"
                    ));
                }
            } else if key == "search-order" {
                cfg.order = if value == "desc" {
                    SearchOrder::Descending
                } else {
                    SearchOrder::Ascending
                };
                if !matches!(value, "desc" | "asc" | "") {
                    warnings.push(format!(
                        "{key}: {value:?} is not \"desc\" or \"asc\"; ascending"
                    ));
                }
            } else if let Some(ns) = scoped(key, "allow-share-", &mut warnings) {
                match parse_go_bool(value) {
                    Some(b) => {
                        cfg.allow_share.insert(ns.to_owned(), b);
                    }
                    // The provider ignores the ParseBool error: sharing off.
                    None => {
                        warnings.push(format!("{key}: {value:?} is not a boolean; sharing off"))
                    }
                }
            } else if let Some(ns) = scoped(key, "interface-", &mut warnings) {
                cfg.interfaces
                    .insert(ns.to_owned(), value.trim().to_owned());
            } else if let Some(ns) = scoped(key, "cidr-", &mut warnings) {
                scopes.entry(ns).or_default().0 = Some(value);
            } else if let Some(ns) = scoped(key, "range-", &mut warnings) {
                scopes.entry(ns).or_default().1 = Some(value);
            } else if !key.starts_with("allow-share-")
                && !key.starts_with("interface-")
                && !key.starts_with("cidr-")
                && !key.starts_with("range-")
            {
                warnings.push(format!("{key}: unknown key ignored"));
            }
        }
        for (ns, (cidr, range)) in scopes {
            let mut pool = None;
            if let Some(value) = cidr {
                let key = format!("cidr-{ns}");
                pool = build_pool(&key, value, cfg.skip_end_ips, parse_cidr, &mut warnings);
                if pool.is_some() && range.is_some() {
                    warnings.push(format!("range-{ns}: ignored because {key} is set"));
                }
            }
            if pool.is_none() {
                if let Some(value) = range {
                    let key = format!("range-{ns}");
                    pool = build_pool(&key, value, cfg.skip_end_ips, parse_range, &mut warnings);
                }
            }
            if let Some(pool) = pool {
                cfg.pools.insert(ns.to_owned(), pool);
            }
        }
        (cfg, warnings)
    }

    /// The pool a Service in `namespace` allocates from: the namespace's
    /// own if configured, else the global one.
    pub fn pool_for(&self, namespace: &str) -> Option<&Pool> {
        self.pools.get(namespace).or_else(|| self.pools.get(GLOBAL))
    }

    /// True when a Service in `namespace` has a pool (its own or global).
    pub fn has_pool(&self, namespace: &str) -> bool {
        self.pool_for(namespace).is_some()
    }

    /// `allow-share-<namespace>`, else `allow-share-global`, else false.
    pub fn allow_share(&self, namespace: &str) -> bool {
        self.allow_share
            .get(namespace)
            .or_else(|| self.allow_share.get(GLOBAL))
            .copied()
            .unwrap_or(false)
    }

    /// `interface-<namespace>`, else `interface-global`: the value the
    /// provider writes to [`SERVICE_INTERFACE_ANNOTATION`].
    pub fn interface(&self, namespace: &str) -> Option<&str> {
        self.interfaces
            .get(namespace)
            .or_else(|| self.interfaces.get(GLOBAL))
            .map(String::as_str)
    }

    /// `search-order`.
    pub fn search_order(&self) -> SearchOrder {
        self.order
    }

    /// `skip-end-ips-in-cidr`.
    pub fn skip_end_ips(&self) -> bool {
        self.skip_end_ips
    }
}

/// The scope of `key` if it starts with `prefix` and names one.
fn scoped<'k>(key: &'k str, prefix: &str, warnings: &mut Vec<String>) -> Option<&'k str> {
    let ns = key.strip_prefix(prefix)?;
    if ns.is_empty() {
        warnings.push(format!("{key}: no namespace after {prefix:?}; ignored"));
        return None;
    }
    Some(ns)
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

type EntryParser = fn(&str, bool) -> Result<(Family, u128, u128), String>;

/// Parses one comma-separated value into a pool; `None` if nothing usable.
fn build_pool(
    key: &str,
    value: &str,
    skip_end_ips: bool,
    parse: EntryParser,
    warnings: &mut Vec<String>,
) -> Option<Pool> {
    let mut pool = Pool {
        source: key.to_owned(),
        ..Pool::default()
    };
    for entry in value.split(',').map(str::trim) {
        if entry.is_empty() {
            warnings.push(format!("{key}: empty entry skipped"));
            continue;
        }
        // kube-vip's DHCP marker: the provider returns 0.0.0.0 for it.
        if entry == "0.0.0.0/32" {
            warnings.push(format!("{key}: {entry:?} (DHCP) is not supported; skipped"));
            continue;
        }
        match parse(entry, skip_end_ips) {
            Ok((Family::V4, lo, hi)) => pool.v4.push((lo, hi)),
            Ok((Family::V6, lo, hi)) => pool.v6.push((lo, hi)),
            Err(why) => warnings.push(format!("{key}: {entry:?}: {why}; skipped")),
        }
    }
    merge(&mut pool.v4);
    merge(&mut pool.v6);
    if pool.v4.is_empty() && pool.v6.is_empty() {
        warnings.push(format!("{key}: no usable entry; ignored"));
        return None;
    }
    Some(pool)
}

/// `a.b.c.d/n` or `x::/n`. Host bits are masked (Go's `netipx.IPSet` does
/// the same with a non-canonical prefix).
fn parse_cidr(entry: &str, skip_end_ips: bool) -> Result<(Family, u128, u128), String> {
    let (addr, len) = entry.split_once('/').ok_or("not a CIDR")?;
    let addr: IpAddr = addr.parse().map_err(|_| "bad address")?;
    let len: u32 = len.parse().map_err(|_| "bad prefix length")?;
    let (family, v) = to_u128(&addr);
    let bits = match family {
        Family::V4 => 32,
        Family::V6 => 128,
    };
    if len > bits {
        return Err(format!("prefix length {len} exceeds {bits}"));
    }
    let host = if len == bits {
        0
    } else {
        (1u128 << (bits - len)) - 1
    };
    let (lo, hi) = (v & !host, (v & !host) | host);
    // The provider's buildHostsFromCidr: with skip-end-ips-in-cidr, IPv4
    // prefixes lose their network and broadcast addresses, except /31
    // (RFC 3021 point-to-point) and /32.
    if family == Family::V4 && skip_end_ips && len < 31 {
        return Ok((family, lo + 1, hi - 1));
    }
    Ok((family, lo, hi))
}

/// `start-end`, inclusive, one family.
fn parse_range(entry: &str, _skip_end_ips: bool) -> Result<(Family, u128, u128), String> {
    let (start, end) = entry.split_once('-').ok_or("not a start-end range")?;
    let start: IpAddr = start.trim().parse().map_err(|_| "bad start address")?;
    let end: IpAddr = end.trim().parse().map_err(|_| "bad end address")?;
    let ((fs, lo), (fe, hi)) = (to_u128(&start), to_u128(&end));
    if fs != fe {
        return Err("start and end are of different families".into());
    }
    if lo > hi {
        return Err("start is above end".into());
    }
    Ok((fs, lo, hi))
}

/// Sorts and merges overlapping or adjacent intervals.
fn merge(iv: &mut Intervals) {
    iv.sort_unstable();
    let mut out: Intervals = Vec::with_capacity(iv.len());
    for &(lo, hi) in iv.iter() {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *iv = out;
}

fn in_intervals(iv: &Intervals, v: u128) -> bool {
    // Sorted and disjoint: the only candidate is the last interval
    // starting at or below `v`.
    let i = iv.partition_point(|&(lo, _)| lo <= v);
    i > 0 && iv[i - 1].1 >= v
}

fn to_u128(addr: &IpAddr) -> (Family, u128) {
    match addr {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(*a))),
        IpAddr::V6(a) => (Family::V6, u128::from(*a)),
    }
}

fn from_u128(family: Family, v: u128) -> IpAddr {
    match family {
        // IPv4 values never exceed u32::MAX (they come from an Ipv4Addr).
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// The provider's `FindFreeAddress` never returns an IPv4 address whose
/// last octet is 0 or 255, in CIDRs and ranges alike ("assumed gateway or
/// broadcast"): kept so a pool hands out the same addresses under vipd.
fn never_handed_out(family: Family, v: u128) -> bool {
    family == Family::V4 && matches!(v & 0xff, 0 | 0xff)
}

/// An existing claim: a Service (key `namespace/name`) that already has
/// addresses (from the annotation, `spec.loadBalancerIP` or an earlier
/// allocation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// `namespace/name`.
    pub key: String,
    /// The Service's namespace.
    pub namespace: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// Its ports; empty means the Service takes its addresses whole (the
    /// provider treats a Service without ports as not shareable).
    pub ports: BTreeSet<PortKey>,
}

/// A Service that needs addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `namespace/name`; a claim with the same key is ignored (re-allocation).
    pub key: String,
    /// The Service's namespace.
    pub namespace: String,
    /// Families in order of preference, 1 or 2 (see [`plan_families`]);
    /// empty: IPv4 if the pool has it, else IPv6 (the provider's default).
    pub families: Vec<Family>,
    /// Every family must be allocated (`RequireDualStack`); otherwise
    /// whatever can be allocated is returned (`PreferDualStack`).
    pub require_all: bool,
    /// The Service's ports; empty means it cannot share.
    pub ports: BTreeSet<PortKey>,
}

/// Why [`allocate`] returned no address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    /// Neither the namespace nor the global scope has a pool.
    #[error("no address pool for namespace {namespace}: no cidr-/range-{namespace} and no cidr-/range-global")]
    NoPool {
        /// The Service's namespace.
        namespace: String,
    },
    /// The pool has no address of the requested family.
    #[error("pool {pool} for namespace {namespace} has no {family} addresses")]
    NoFamily {
        /// The Service's namespace.
        namespace: String,
        /// The family requested.
        family: Family,
        /// The ConfigMap key of the pool.
        pool: String,
    },
    /// Every address of the family is taken (and none can be shared).
    #[error("pool {pool} for namespace {namespace} has no free {family} address")]
    Exhausted {
        /// The Service's namespace.
        namespace: String,
        /// The family requested.
        family: Family,
        /// The ConfigMap key of the pool.
        pool: String,
    },
}

/// Addresses in use, per family value, with the indices of the claims
/// using each.
type Used = BTreeMap<u128, Vec<usize>>;

/// Picks addresses for `req`, one per family, in `req.families` order.
///
/// Stateless: the in-use set is rebuilt from `claims` on every call, as
/// the daemon rebuilds its state from Services. Cost: O(c log c) for `c`
/// claimed addresses plus, per family, the number of used or skipped
/// addresses walked past before the first free one (ranges are walked
/// lazily: a /32 of IPv6 costs no more than a /120).
///
/// Sharing: when sharing is allowed for the namespace and the request has
/// ports, an address of the pool already in use is reused if every Service
/// using it is in the same namespace, has ports, and none of them overlaps
/// the request's (preferred over a fresh address, as the provider does).
pub fn allocate(
    pool: &PoolConfig,
    claims: &[Claim],
    req: &Request,
) -> Result<Vec<IpAddr>, IpamError> {
    let namespace = req.namespace.as_str();
    let p = pool.pool_for(namespace).ok_or_else(|| IpamError::NoPool {
        namespace: namespace.to_owned(),
    })?;
    let families = if req.families.is_empty() {
        vec![if p.has_family(Family::V4) {
            Family::V4
        } else {
            Family::V6
        }]
    } else {
        req.families.clone()
    };
    // The provider checks that both families have a pool before allocating
    // anything for RequireDualStack.
    if req.require_all {
        if let Some(&family) = families.iter().find(|f| !p.has_family(**f)) {
            return Err(no_family(namespace, family, p));
        }
    }
    let share = pool.allow_share(namespace) && !req.ports.is_empty();
    let mut used: [Used; 2] = [Used::new(), Used::new()];
    for (i, claim) in claims.iter().enumerate() {
        if claim.key == req.key {
            continue;
        }
        for addr in &claim.addresses {
            let (family, v) = to_u128(addr);
            let slot = &mut used[family_index(family)];
            let users = slot.entry(v).or_default();
            // A Service listing the same address twice counts once.
            if users.last() != Some(&i) {
                users.push(i);
            }
        }
    }
    let mut out = Vec::with_capacity(families.len());
    let mut first_err = None;
    for family in families {
        let used = &used[family_index(family)];
        let picked = if !p.has_family(family) {
            Err(no_family(namespace, family, p))
        } else if let Some(v) = share
            .then(|| shareable(p, family, used, claims, req, pool.order))
            .flatten()
        {
            Ok(v)
        } else {
            first_free(p.intervals(family), family, used, pool.order).ok_or_else(|| {
                IpamError::Exhausted {
                    namespace: namespace.to_owned(),
                    family,
                    pool: p.source.clone(),
                }
            })
        };
        match picked {
            Ok(v) => out.push(from_u128(family, v)),
            Err(e) if req.require_all => return Err(e),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (out.is_empty(), first_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

fn no_family(namespace: &str, family: Family, p: &Pool) -> IpamError {
    IpamError::NoFamily {
        namespace: namespace.to_owned(),
        family,
        pool: p.source.clone(),
    }
}

/// The first used address of the pool (in search order) the request may
/// join.
fn shareable(
    p: &Pool,
    family: Family,
    used: &Used,
    claims: &[Claim],
    req: &Request,
    order: SearchOrder,
) -> Option<u128> {
    let ok = |(&v, users): (&u128, &Vec<usize>)| {
        let joinable = in_intervals(p.intervals(family), v)
            && !never_handed_out(family, v)
            && users.iter().all(|&i| {
                claims.get(i).is_some_and(|c| {
                    c.namespace == req.namespace
                        && !c.ports.is_empty()
                        && c.ports.is_disjoint(&req.ports)
                })
            });
        joinable.then_some(v)
    };
    match order {
        SearchOrder::Ascending => used.iter().find_map(ok),
        SearchOrder::Descending => used.iter().rev().find_map(ok),
    }
}

/// The first free address in search order: walks each interval lazily,
/// in step with the sorted used set, so the cost is the number of used or
/// skipped addresses passed, never the size of the interval.
fn first_free(iv: &Intervals, family: Family, used: &Used, order: SearchOrder) -> Option<u128> {
    match order {
        SearchOrder::Ascending => iv.iter().find_map(|&(lo, hi)| {
            let mut taken = used.range(lo..=hi).map(|(v, _)| *v).peekable();
            let mut c = lo;
            loop {
                while taken.next_if(|&u| u < c).is_some() {}
                if taken.peek() != Some(&c) && !never_handed_out(family, c) {
                    return Some(c);
                }
                if c == hi {
                    return None;
                }
                c += 1;
            }
        }),
        SearchOrder::Descending => iv.iter().rev().find_map(|&(lo, hi)| {
            let mut taken = used.range(lo..=hi).rev().map(|(v, _)| *v).peekable();
            let mut c = hi;
            loop {
                while taken.next_if(|&u| u > c).is_some() {}
                if taken.peek() != Some(&c) && !never_handed_out(family, c) {
                    return Some(c);
                }
                if c == lo {
                    return None;
                }
                c -= 1;
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> (PoolConfig, Vec<String>) {
        let data = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PoolConfig::parse(&data)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn ports(list: &[(&str, u16)]) -> BTreeSet<PortKey> {
        list.iter().map(|(p, n)| (p.to_string(), *n)).collect()
    }

    fn req(key: &str, families: &[Family], p: &[(&str, u16)]) -> Request {
        let namespace = key.split('/').next().unwrap_or_default().to_owned();
        Request {
            key: key.into(),
            namespace,
            families: families.to_vec(),
            require_all: false,
            ports: ports(p),
        }
    }

    fn claim(key: &str, addrs: &[&str], p: &[(&str, u16)]) -> Claim {
        let namespace = key.split('/').next().unwrap_or_default().to_owned();
        Claim {
            key: key.into(),
            namespace,
            addresses: addrs.iter().map(|a| ip(a)).collect(),
            ports: ports(p),
        }
    }

    #[test]
    fn parse_reads_every_key_kind_and_warns_once_per_bad_entry() {
        let (cfg, warnings) = config(&[
            (
                "cidr-team-a",
                "192.0.2.0/28, 2001:db8::/120,192.0.2.300/24,192.0.2.0/33,,0.0.0.0/32",
            ),
            (
                "range-team-b",
                "198.51.100.10-198.51.100.20,198.51.100.30-198.51.100.25,198.51.100.1-2001:db8::1",
            ),
            ("range-team-c", "nonsense"),
            ("cidr-global", "203.0.113.0/24"),
            ("allow-share-team-a", "True"),
            ("allow-share-team-b", "yes"),
            ("interface-global", "eth1"),
            ("skip-end-ips-in-cidr", "true"),
            ("search-order", "desc"),
            ("colour", "blue"),
            ("cidr-", "192.0.2.0/24"),
        ]);
        let a = cfg.pool_for("team-a").expect("team-a pool");
        assert_eq!(a.source(), "cidr-team-a");
        assert!(a.contains(&ip("192.0.2.5")) && a.contains(&ip("2001:db8::ff")));
        // skip-end-ips-in-cidr trimmed the /28's network and broadcast.
        assert!(!a.contains(&ip("192.0.2.0")) && !a.contains(&ip("192.0.2.15")));
        assert_eq!(a.size(Family::V4), 14);
        assert_eq!(a.size(Family::V6), 256);
        let b = cfg.pool_for("team-b").expect("team-b pool");
        assert_eq!(b.size(Family::V4), 11);
        assert!(!b.has_family(Family::V6));
        // team-c's only entry is bad: it falls back to the global pool.
        assert_eq!(
            cfg.pool_for("team-c").map(Pool::source),
            Some("cidr-global")
        );
        assert!(cfg.allow_share("team-a"));
        assert!(!cfg.allow_share("team-b"));
        assert_eq!(cfg.interface("anything"), Some("eth1"));
        assert!(cfg.skip_end_ips());
        assert_eq!(cfg.search_order(), SearchOrder::Descending);
        // 192.0.2.300, /33, empty, DHCP, reversed range, mixed range,
        // "nonsense" + range-team-c unusable, bad bool, unknown key, "cidr-".
        assert_eq!(warnings.len(), 11, "{warnings:#?}");
        assert!(warnings.iter().all(|w| !w.contains('\n')));
        for needle in [
            "192.0.2.300",
            "/33",
            "empty",
            "DHCP",
            "above end",
            "different families",
            "yes",
            "colour",
        ] {
            assert!(
                warnings.iter().any(|w| w.contains(needle)),
                "no warning about {needle}: {warnings:#?}"
            );
        }
    }

    #[test]
    fn cidr_key_hides_range_key_of_the_same_scope_with_a_warning() {
        let (cfg, warnings) = config(&[
            ("cidr-a", "192.0.2.0/30"),
            ("range-a", "198.51.100.1-198.51.100.9"),
        ]);
        let pool = cfg.pool_for("a").expect("pool");
        assert_eq!(pool.source(), "cidr-a");
        assert!(!pool.contains(&ip("198.51.100.1")));
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn namespace_pool_is_preferred_over_global() {
        let (cfg, _) = config(&[
            ("cidr-global", "192.0.2.0/24"),
            ("range-team", "198.51.100.10-198.51.100.20"),
        ]);
        let got = allocate(&cfg, &[], &req("team/svc", &[Family::V4], &[])).expect("allocates");
        assert_eq!(got, vec![ip("198.51.100.10")]);
        let other = allocate(&cfg, &[], &req("other/svc", &[Family::V4], &[])).expect("allocates");
        assert_eq!(other, vec![ip("192.0.2.1")]);
        assert!(cfg.has_pool("other"));
    }

    #[test]
    fn no_pool_anywhere_is_an_error_not_a_panic() {
        let (cfg, _) = config(&[("cidr-team", "192.0.2.0/24")]);
        assert!(!cfg.has_pool("other"));
        let err = allocate(&cfg, &[], &req("other/svc", &[], &[])).expect_err("no pool");
        assert_eq!(
            err,
            IpamError::NoPool {
                namespace: "other".into()
            }
        );
    }

    #[test]
    fn ascending_order_takes_lowest_free_address_across_ranges() {
        // Listed high range first: order is by address, as the provider's
        // IPSet sorts its ranges.
        let (cfg, _) = config(&[(
            "range-global",
            "198.51.100.50-198.51.100.52,192.0.2.10-192.0.2.11",
        )]);
        let claims = [claim("x/a", &["192.0.2.10"], &[])];
        let got = allocate(&cfg, &claims, &req("x/b", &[Family::V4], &[])).expect("allocates");
        assert_eq!(got, vec![ip("192.0.2.11")]);
    }

    #[test]
    fn desc_order_takes_highest_free_address_first() {
        let (cfg, _) = config(&[
            (
                "range-global",
                "2001:db8::10-2001:db8::12,2001:db8:1::20-2001:db8:1::21",
            ),
            ("search-order", "desc"),
        ]);
        let claims = [claim("x/a", &["2001:db8:1::21", "2001:db8:1::20"], &[])];
        let got = allocate(&cfg, &claims, &req("x/b", &[Family::V6], &[])).expect("allocates");
        assert_eq!(got, vec![ip("2001:db8::12")]);
    }

    #[test]
    fn skip_end_ips_skips_network_and_broadcast_of_small_ipv4_cidrs_only_when_true() {
        let plain = config(&[("cidr-global", "192.0.2.200/30")]).0;
        let skip = config(&[
            ("cidr-global", "192.0.2.200/30"),
            ("skip-end-ips-in-cidr", "true"),
        ])
        .0;
        let r = req("x/a", &[Family::V4], &[]);
        assert_eq!(allocate(&plain, &[], &r), Ok(vec![ip("192.0.2.200")]));
        assert_eq!(allocate(&skip, &[], &r), Ok(vec![ip("192.0.2.201")]));
        // Descending shows the broadcast end too.
        let skip_desc = config(&[
            ("cidr-global", "192.0.2.200/30"),
            ("skip-end-ips-in-cidr", "true"),
            ("search-order", "desc"),
        ])
        .0;
        assert_eq!(allocate(&skip_desc, &[], &r), Ok(vec![ip("192.0.2.202")]));
        // /31 keeps both addresses (RFC 3021).
        let p2p = config(&[
            ("cidr-global", "192.0.2.10/31"),
            ("skip-end-ips-in-cidr", "true"),
        ])
        .0;
        assert_eq!(allocate(&p2p, &[], &r), Ok(vec![ip("192.0.2.10")]));
    }

    #[test]
    fn ipv4_addresses_ending_in_0_or_255_are_never_handed_out() {
        let r = req("x/a", &[Family::V4], &[]);
        let (low, _) = config(&[("range-global", "192.0.2.0-192.0.2.3")]);
        assert_eq!(allocate(&low, &[], &r), Ok(vec![ip("192.0.2.1")]));
        let (high, _) = config(&[
            ("range-global", "192.0.2.253-192.0.2.255"),
            ("search-order", "desc"),
        ]);
        assert_eq!(allocate(&high, &[], &r), Ok(vec![ip("192.0.2.254")]));
        let claims = [claim("y/b", &["192.0.2.253", "192.0.2.254"], &[])];
        assert!(matches!(
            allocate(&high, &claims, &r),
            Err(IpamError::Exhausted { .. })
        ));
    }

    #[test]
    fn sharing_joins_an_address_only_when_allowed_and_ports_do_not_overlap() {
        let shared = config(&[
            ("cidr-global", "192.0.2.0/29"),
            ("allow-share-team", "true"),
        ])
        .0;
        let claims = [claim("team/web", &["192.0.2.1"], &[("TCP", 80)])];
        // Disjoint ports (UDP 80 is not TCP 80): joins 192.0.2.1.
        let dns = req("team/dns", &[Family::V4], &[("UDP", 80), ("TCP", 53)]);
        assert_eq!(allocate(&shared, &claims, &dns), Ok(vec![ip("192.0.2.1")]));
        // Overlapping port: a fresh address.
        let web2 = req("team/web2", &[Family::V4], &[("TCP", 80)]);
        assert_eq!(allocate(&shared, &claims, &web2), Ok(vec![ip("192.0.2.2")]));
        // No ports on the request: never shares.
        assert_eq!(
            allocate(&shared, &claims, &req("team/bare", &[Family::V4], &[])),
            Ok(vec![ip("192.0.2.2")])
        );
        // Sharing not allowed for the namespace: a fresh address.
        let other = req("other/dns", &[Family::V4], &[("TCP", 53)]);
        assert_eq!(
            allocate(&shared, &claims, &other),
            Ok(vec![ip("192.0.2.2")])
        );
        // Allowed, but the address's user is in another namespace.
        let both = config(&[
            ("cidr-global", "192.0.2.0/29"),
            ("allow-share-global", "true"),
        ])
        .0;
        assert_eq!(allocate(&both, &claims, &other), Ok(vec![ip("192.0.2.2")]));
        // A user without ports takes its address whole.
        let whole = [claim("team/any", &["192.0.2.1"], &[])];
        assert_eq!(allocate(&shared, &whole, &dns), Ok(vec![ip("192.0.2.2")]));
        // Every user counts: a second user with TCP 53 blocks the join.
        let two = [
            claims[0].clone(),
            claim("team/dns-old", &["192.0.2.1"], &[("TCP", 53)]),
        ];
        assert_eq!(allocate(&shared, &two, &dns), Ok(vec![ip("192.0.2.2")]));
    }

    #[test]
    fn exhausted_pool_returns_exhausted_error() {
        let (cfg, _) = config(&[("range-team", "192.0.2.1-192.0.2.2")]);
        let claims = [
            claim("team/a", &["192.0.2.1"], &[]),
            claim("elsewhere/b", &["192.0.2.2"], &[]),
        ];
        let err =
            allocate(&cfg, &claims, &req("team/c", &[Family::V4], &[])).expect_err("exhausted");
        assert_eq!(
            err,
            IpamError::Exhausted {
                namespace: "team".into(),
                family: Family::V4,
                pool: "range-team".into()
            }
        );
        // Re-allocating for a Service that holds an address sees it free.
        let again = allocate(&cfg, &claims, &req("team/a", &[Family::V4], &[]));
        assert_eq!(again, Ok(vec![ip("192.0.2.1")]));
    }

    #[test]
    fn require_dual_stack_fails_when_a_family_is_missing_or_exhausted() {
        let v4_only = config(&[("cidr-global", "192.0.2.0/24")]).0;
        let mut r = req("x/a", &[Family::V4, Family::V6], &[]);
        r.require_all = true;
        assert!(matches!(
            allocate(&v4_only, &[], &r),
            Err(IpamError::NoFamily {
                family: Family::V6,
                ..
            })
        ));
        let dual = config(&[(
            "range-global",
            "192.0.2.1-192.0.2.1,2001:db8::1-2001:db8::1",
        )])
        .0;
        assert_eq!(
            allocate(&dual, &[], &r),
            Ok(vec![ip("192.0.2.1"), ip("2001:db8::1")])
        );
        let claims = [claim("y/b", &["2001:db8::1"], &[])];
        assert!(matches!(
            allocate(&dual, &claims, &r),
            Err(IpamError::Exhausted {
                family: Family::V6,
                ..
            })
        ));
    }

    #[test]
    fn prefer_dual_stack_returns_what_it_can_in_family_order() {
        let v4_only = config(&[("cidr-global", "192.0.2.0/24")]).0;
        let (families, require) = plan_families(Some("PreferDualStack"), &["IPv6"]);
        assert_eq!(
            (families.as_slice(), require),
            ([Family::V6, Family::V4].as_slice(), false)
        );
        let r = req("x/a", &families, &[]);
        assert_eq!(allocate(&v4_only, &[], &r), Ok(vec![ip("192.0.2.1")]));
        let dual = config(&[(
            "range-global",
            "192.0.2.1-192.0.2.1,2001:db8::1-2001:db8::2",
        )])
        .0;
        assert_eq!(
            allocate(&dual, &[], &r),
            Ok(vec![ip("2001:db8::1"), ip("192.0.2.1")])
        );
        // Both exhausted: the first family's error.
        let claims = [claim(
            "y/b",
            &["192.0.2.1", "2001:db8::1", "2001:db8::2"],
            &[],
        )];
        assert!(matches!(
            allocate(&dual, &claims, &r),
            Err(IpamError::Exhausted {
                family: Family::V6,
                ..
            })
        ));
    }

    #[test]
    fn plan_families_follows_ip_family_policy() {
        assert_eq!(plan_families(None, &[]), (vec![], false));
        assert_eq!(
            plan_families(Some("SingleStack"), &["IPv6", "IPv4"]),
            (vec![Family::V6], false)
        );
        assert_eq!(
            plan_families(Some("RequireDualStack"), &[]),
            (vec![Family::V4, Family::V6], true)
        );
        // Empty families: IPv4 when the pool has it, else IPv6.
        let v6 = config(&[("cidr-global", "2001:db8::/64")]).0;
        assert_eq!(
            allocate(&v6, &[], &req("x/a", &[], &[])),
            Ok(vec![ip("2001:db8::")])
        );
        let single_v4 = req("x/a", &[Family::V4], &[]);
        assert!(matches!(
            allocate(&v6, &[], &single_v4),
            Err(IpamError::NoFamily {
                family: Family::V4,
                ..
            })
        ));
    }

    #[test]
    fn huge_ipv6_cidr_allocates_without_materialising_it() {
        // A /32 has 2^96 addresses: any eager expansion never finishes.
        let (cfg, _) = config(&[("cidr-global", "2001:db8::/32")]);
        let claims = [claim("x/a", &["2001:db8::", "2001:db8::1"], &[])];
        let got = allocate(&cfg, &claims, &req("x/b", &[Family::V6], &[])).expect("allocates");
        assert_eq!(got, vec![ip("2001:db8::2")]);
        let desc = config(&[("cidr-global", "2001:db8::/32"), ("search-order", "desc")]).0;
        let top = allocate(&desc, &[], &req("x/b", &[Family::V6], &[])).expect("allocates");
        assert_eq!(top, vec![ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")]);
        assert_eq!(
            cfg.pool_for("x").map(|p| p.size(Family::V6)),
            Some(1u128 << 96)
        );
    }

    /// Allocates in sequence, each result becoming a claim, until the pool
    /// is exhausted or `limit` is reached. Returns the distinct addresses.
    fn fill(
        cfg: &PoolConfig,
        family: Family,
        limit: usize,
    ) -> (BTreeSet<IpAddr>, Option<IpamError>) {
        let mut claims = Vec::new();
        let mut seen = BTreeSet::new();
        while claims.len() < limit {
            let key = format!("ns{}/svc{}", claims.len() % 7, claims.len());
            let r = req(&key, &[family], &[("TCP", 443)]);
            match allocate(cfg, &claims, &r) {
                Ok(addrs) => {
                    for a in &addrs {
                        assert!(seen.insert(*a), "{a} handed out twice");
                    }
                    claims.push(Claim {
                        key,
                        namespace: r.namespace,
                        addresses: addrs,
                        ports: r.ports,
                    });
                }
                Err(e) => return (seen, Some(e)),
            }
        }
        (seen, None)
    }

    #[test]
    fn thousand_sequential_allocations_in_a_1024_address_pool_are_distinct() {
        // 2^10 addresses, the size of a /22, from the documentation prefix.
        let (cfg, _) = config(&[("cidr-global", "2001:db8::/118")]);
        let (seen, err) = fill(&cfg, Family::V6, 1000);
        assert_eq!((seen.len(), err), (1000, None));
        let pool = cfg.pool_for("any").expect("pool");
        assert!(seen.iter().all(|a| pool.contains(a)));
    }

    #[test]
    fn ipv4_pool_fills_every_usable_address_then_reports_exhaustion() {
        // All three IPv4 documentation /24s; .0 and .255 are never handed
        // out, so each /24 yields 254.
        let (cfg, _) = config(&[("cidr-global", "192.0.2.0/24,198.51.100.0/24,203.0.113.0/24")]);
        let (seen, err) = fill(&cfg, Family::V4, 10_000);
        assert_eq!(seen.len(), 3 * (256 - 2));
        assert!(matches!(
            err,
            Some(IpamError::Exhausted {
                family: Family::V4,
                ..
            })
        ));
    }
}
