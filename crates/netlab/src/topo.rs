//! A switch namespace with a bridge and hosts attached by veth pairs.
//!
//! ```text
//!   [PFX-sw: br0]──pN──veth──eth0 [PFX-<host>]   (one per host)
//! ```
//! The bridge lives in its own namespace, never in the host's (NETLAB-TIPS).

use crate::ns::{check_doc_addr, Error, NetNs};
use std::net::IpAddr;

/// One host attached to the switch.
#[derive(Debug)]
pub struct Host {
    /// Short name given by the caller ("n1", "client", "api").
    pub name: String,
    /// The host's namespace (dropped after its processes are killed).
    pub ns: NetNs,
    /// Interface name inside the host namespace (always `eth0`).
    pub ifname: String,
    /// Name of the bridge port (switch side of the veth) in the switch namespace.
    pub port: String,
    /// The host's own addresses (with prefix length).
    pub addrs: Vec<(IpAddr, u8)>,
    /// MAC address of `eth0`, lower-case `aa:bb:..`.
    pub mac: String,
}

impl Host {
    /// The host's first IPv4 address, if any.
    pub fn ipv4(&self) -> Option<IpAddr> {
        self.addrs.iter().map(|a| a.0).find(IpAddr::is_ipv4)
    }

    /// The host's first IPv6 address, if any.
    pub fn ipv6(&self) -> Option<IpAddr> {
        self.addrs.iter().map(|a| a.0).find(IpAddr::is_ipv6)
    }

    /// Sets `eth0` down (a crashed node's kernel must stop answering ARP).
    pub fn link_down(&self) -> Result<(), Error> {
        self.ns
            .ip(&["link", "set", &self.ifname, "down"])
            .map(|_| ())
    }

    /// Sets `eth0` up again.
    pub fn link_up(&self) -> Result<(), Error> {
        self.ns.ip(&["link", "set", &self.ifname, "up"]).map(|_| ())
    }

    /// Addresses currently on `eth0` (`ip -o addr show dev eth0`), as text.
    pub fn addresses(&self) -> Result<Vec<IpAddr>, Error> {
        let out = self.ns.ip(&["-o", "addr", "show", "dev", &self.ifname])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.find(|w| *w == "inet" || *w == "inet6")?;
                it.next()?.split('/').next()?.parse().ok()
            })
            .collect())
    }

    /// True when `addr` is configured on `eth0`.
    pub fn has_addr(&self, addr: IpAddr) -> bool {
        self.addresses().map(|a| a.contains(&addr)).unwrap_or(false)
    }

    /// The MAC in this host's neighbour entry for `addr`, if any
    /// (`ip neigh show ADDR dev eth0`).
    pub fn neigh_mac(&self, addr: IpAddr) -> Option<String> {
        let out = self
            .ns
            .ip(&["neigh", "show", &addr.to_string(), "dev", &self.ifname])
            .ok()?;
        let mut it = out.split_whitespace();
        it.find(|w| *w == "lladdr")?;
        it.next().map(str::to_lowercase)
    }
}

/// Describes the hosts to create before [`TopologyBuilder::build`].
#[derive(Debug)]
pub struct TopologyBuilder {
    prefix: String,
    hosts: Vec<(String, Vec<(IpAddr, u8)>)>,
}

impl TopologyBuilder {
    /// A builder whose namespaces are named `PREFIX-sw`, `PREFIX-<host>`.
    /// Use [`crate::unique_prefix`] so parallel tests never collide.
    pub fn new(prefix: &str) -> Self {
        TopologyBuilder {
            prefix: prefix.to_string(),
            hosts: Vec::new(),
        }
    }

    /// Adds a host with its own addresses (documentation ranges only).
    pub fn host(mut self, name: &str, addrs: &[(IpAddr, u8)]) -> Self {
        self.hosts.push((name.to_string(), addrs.to_vec()));
        self
    }

    /// Creates the switch and every host. On error, whatever was created is
    /// removed again by the guards.
    pub fn build(self) -> Result<Topology, Error> {
        for (_, addrs) in &self.hosts {
            for (a, _) in addrs {
                check_doc_addr(*a)?;
            }
        }
        let switch = NetNs::new(&format!("{}-sw", self.prefix))?;
        switch.ip(&["link", "add", "br0", "type", "bridge"])?;
        // No STP delay, no multicast snooping surprises: a plain hub-like switch.
        switch.ip(&[
            "link",
            "set",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        switch.ip(&["link", "set", "br0", "up"])?;
        let mut topo = Topology {
            hosts: Vec::new(),
            switch,
            prefix: self.prefix.clone(),
        };
        for (i, (name, addrs)) in self.hosts.into_iter().enumerate() {
            let ns = NetNs::new(&format!("{}-{}", self.prefix, name))?;
            let port = format!("p{i}");
            topo.switch.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ])?;
            topo.switch.ip(&["link", "set", &port, "master", "br0"])?;
            topo.switch.ip(&["link", "set", &port, "up"])?;
            // A managed host restores its IPv6 address after a link flap; the
            // sysctl stands in for that (NETLAB-TIPS).
            ns.sysctl("net.ipv6.conf.eth0.keep_addr_on_down", "1")?;
            ns.sysctl("net.ipv6.conf.eth0.accept_dad", "0")?;
            for (a, len) in &addrs {
                let flags: &[&str] = if a.is_ipv6() { &["nodad"] } else { &[] };
                let cidr = format!("{a}/{len}");
                let mut args = vec!["addr", "add", cidr.as_str(), "dev", "eth0"];
                args.extend_from_slice(flags);
                ns.ip(&args)?;
            }
            ns.ip(&["link", "set", "eth0", "up"])?;
            let mac = ns
                .exec("cat", &["/sys/class/net/eth0/address"])?
                .trim()
                .to_lowercase();
            topo.hosts.push(Host {
                name,
                ns,
                ifname: "eth0".into(),
                port,
                addrs,
                mac,
            });
        }
        Ok(topo)
    }
}

/// The built topology. Dropping it removes hosts first, then the switch.
#[derive(Debug)]
pub struct Topology {
    /// Hosts in the order they were added. Declared before `switch` so they
    /// are dropped (processes killed, namespaces deleted) first.
    pub hosts: Vec<Host>,
    /// The switch namespace holding `br0`.
    pub switch: NetNs,
    prefix: String,
}

impl Topology {
    /// The per-run name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The host called `name`.
    ///
    /// # Panics
    /// When no such host was added (a bug in the test itself).
    pub fn host(&self, name: &str) -> &Host {
        match self.hosts.iter().find(|h| h.name == name) {
            Some(h) => h,
            None => panic!("no host {name} in topology"),
        }
    }

    /// Cuts layer 2 between host `a` and each of `others` at the bridge
    /// (broadcast and multicast included), in both directions. Replaces any
    /// earlier partition.
    pub fn partition(&self, a: &str, others: &[&str]) -> Result<(), Error> {
        let pa = &self.host(a).port;
        let set: Vec<String> = others
            .iter()
            .map(|o| format!("\"{}\"", self.host(o).port))
            .collect();
        let set = set.join(", ");
        // One rule per line: nft rejects a rule followed by `}` on its line.
        let rules = format!(
            "table bridge vipdlab\ndelete table bridge vipdlab\ntable bridge vipdlab {{\n chain l2cut {{\n  type filter hook forward priority 0; policy accept;\n  iifname \"{pa}\" oifname {{ {set} }} drop\n  iifname {{ {set} }} oifname \"{pa}\" drop\n }}\n}}\n"
        );
        self.switch.nft(&rules)
    }

    /// Removes the partition made by [`Topology::partition`].
    pub fn heal_partition(&self) -> Result<(), Error> {
        self.switch
            .nft("table bridge vipdlab\ndelete table bridge vipdlab\n")
    }
}
