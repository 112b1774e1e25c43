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
    let err = allocate(&cfg, &claims, &req("team/c", &[Family::V4], &[])).expect_err("exhausted");
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
fn fill(cfg: &PoolConfig, family: Family, limit: usize) -> (BTreeSet<IpAddr>, Option<IpamError>) {
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
