//! The BGP lab's fault recipes: which node they hit, and how they end.
//! Each is *inject, wait for the router, heal*; [`super::run`] measures.

/// One named BGP fault recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// A node's vipd gets SIGTERM: it withdraws (UPDATE) before it unbinds
    /// and exits; restarted at heal.
    Graceful,
    /// A BFD node's vipd SIGKILLed: its kernel closes the TCP session
    /// (FIN/RST), the router drops the session at once; restarted at heal.
    CrashBfd,
    /// The same on the node without BFD (the TCP close alone).
    CrashNoBfd,
    /// A BFD node dies without a word: its link goes down (no FIN, no
    /// NOTIFICATION). BFD 300 ms × 3 detects it; link up at heal.
    DeadBfd,
    /// The same on the node without BFD: only the BGP hold time detects it.
    DeadNoBfd,
    /// A node's health check (a TCP port in its namespace) fails: vipd
    /// withdraws; the port opens again at heal.
    Health,
    /// The router's BGP daemons restart (SIGTERM, start again): every
    /// session drops and must come back with every path.
    PeerRestart,
    /// A BFD node's link down for `--hold`, then up; vipd keeps running.
    LinkFlap,
}

impl Scenario {
    /// Every scenario, in the order `all` and the demo run them.
    pub const ALL: [Scenario; 8] = [
        Scenario::Graceful,
        Scenario::CrashBfd,
        Scenario::CrashNoBfd,
        Scenario::DeadBfd,
        Scenario::DeadNoBfd,
        Scenario::Health,
        Scenario::PeerRestart,
        Scenario::LinkFlap,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Graceful => "graceful",
            Scenario::CrashBfd => "crash-bfd",
            Scenario::CrashNoBfd => "crash-nobfd",
            Scenario::DeadBfd => "dead-bfd",
            Scenario::DeadNoBfd => "dead-nobfd",
            Scenario::Health => "health",
            Scenario::PeerRestart => "peer-restart",
            Scenario::LinkFlap => "link-flap",
        }
    }

    /// True when the fault hits the node configured without BFD (n1);
    /// the others hit the last node, which runs BFD.
    pub fn targets_no_bfd_node(self) -> bool {
        matches!(self, Scenario::CrashNoBfd | Scenario::DeadNoBfd)
    }

    /// True when the fault hits every node's session at once (the router
    /// restarts) rather than one node's path.
    pub fn hits_router(self) -> bool {
        self == Scenario::PeerRestart
    }

    /// Heals only after the router's route changed (or the hold-time bound
    /// passed), rather than after a fixed `--hold`: the point is to see the
    /// detection, however long it takes.
    pub fn heals_after_route_change(self) -> bool {
        !matches!(self, Scenario::LinkFlap | Scenario::PeerRestart)
    }

    /// Parses a comma-separated list (`all` for every scenario).
    pub fn parse_list(s: &str) -> Result<Vec<Scenario>, String> {
        let mut out = Vec::new();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                out.extend(Scenario::ALL);
                continue;
            }
            match Scenario::ALL.iter().find(|sc| sc.name() == w) {
                Some(sc) => out.push(*sc),
                None => {
                    let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                    return Err(format!(
                        "unknown BGP scenario `{w}`; known: all, {}",
                        names.join(", ")
                    ));
                }
            }
        }
        if out.is_empty() {
            return Err("no scenario given".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn all_expands_and_names_round_trip() {
        assert_eq!(Scenario::parse_list("all").unwrap(), Scenario::ALL.to_vec());
        for sc in Scenario::ALL {
            assert_eq!(Scenario::parse_list(sc.name()).unwrap(), vec![sc]);
        }
        assert_eq!(
            Scenario::parse_list(" graceful, dead-bfd ,").unwrap(),
            vec![Scenario::Graceful, Scenario::DeadBfd]
        );
    }

    #[test]
    fn unknown_and_empty_lists_are_refused_with_the_known_names() {
        let e = Scenario::parse_list("graceful,sigterm").unwrap_err();
        assert!(e.contains("`sigterm`") && e.contains("peer-restart"), "{e}");
        assert!(Scenario::parse_list(" , ").is_err());
    }

    #[test]
    fn only_the_no_bfd_scenarios_hit_the_node_without_bfd() {
        let nobfd: Vec<_> = Scenario::ALL
            .iter()
            .filter(|s| s.targets_no_bfd_node())
            .map(|s| s.name())
            .collect();
        assert_eq!(nobfd, ["crash-nobfd", "dead-nobfd"]);
    }
}
