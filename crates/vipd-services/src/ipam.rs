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
mod tests;
