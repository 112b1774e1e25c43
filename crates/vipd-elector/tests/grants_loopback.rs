//! The quorum shell driving Services grants (issue 13) over real UDP on
//! loopback: three shells in one process, real time, an in-memory sink
//! per node. Every address gets exactly one node; a killed node's
//! addresses move to the others; a killed holder's successor leaves the
//! live nodes' addresses where they are. Kernel binding and the API are
//! not involved (the daemon's namespace tests and the lab cover those).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use vipd_elector::quorum::{
    run_with_grants, GrantLink, GrantSink, NoAddresses, QuorumObservation, Traffic,
};
use vipd_elector::Control;
use vipd_grants::{AddrSet, GrantStatus, GrantTimings, Grants, ServiceView};
use vipd_observe::status::Liveness;
use vipd_quorum::{AuthKey, Config, Node, Status, Timings, Voter, VoterRole, VoterSet};

#[derive(Clone, Default)]
struct MemSink(Arc<Mutex<BTreeSet<IpAddr>>>);

impl GrantSink for MemSink {
    async fn bind(&mut self, set: AddrSet) {
        *self.0.lock().unwrap() = (*set).clone();
    }
    async fn settle(&mut self, set: AddrSet) -> bool {
        *self.0.lock().unwrap() = (*set).clone();
        true
    }
}

struct Member {
    task: tokio::task::JoinHandle<()>,
    sink: MemSink,
    status: watch::Receiver<GrantStatus>,
    _control: mpsc::Sender<Control>,
}

fn free_ports(n: usize) -> Vec<SocketAddr> {
    let socks: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    socks.iter().map(|s| s.local_addr().unwrap()).collect()
}

fn start(set: &VoterSet, i: usize, view: watch::Receiver<Option<Arc<ServiceView>>>) -> Member {
    let timings = Timings::default();
    let key = AuthKey::new(&[9u8; 32]).unwrap();
    let name = format!("n{i}");
    // Sequence numbers start from the wall clock, as the daemon's do
    // (they must grow across a restart on the same port).
    #[allow(clippy::disallowed_methods)]
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let cfg = Config::new(set.clone(), &name, timings, key, wall ^ i as u64, wall).unwrap();
    let origin = Instant::now();
    let node = Node::new(cfg.clone(), origin.elapsed());
    let gt = GrantTimings::new(Duration::from_secs(1), &timings).unwrap();
    let grants = Grants::new(cfg, gt, wall + 1_000_000_000);
    let sink = MemSink::default();
    let (gtx, grx) = watch::channel(grants.status(Duration::ZERO));
    let link = GrantLink {
        grants,
        sink: sink.clone(),
        view,
        observe: gtx,
    };
    let (ctx, mut crx) = mpsc::channel(4);
    let addr = set.voters()[i].addr;
    let task = tokio::spawn(async move {
        let (otx, _orx) = watch::channel(QuorumObservation {
            status: Status {
                role: vipd_quorum::Role::Follower,
                term: 0,
                holder: None,
                voters_reachable: 1,
                hold_remaining: None,
                hold_deadline: None,
                quiet_remaining: Duration::ZERO,
                drops: Default::default(),
            },
            voters: 3,
            socket_bound: false,
            traffic: Traffic::default(),
        });
        let liveness = Liveness::default();
        let hb = liveness.register("quorum", Duration::from_secs(30), Instant::now());
        run_with_grants(
            addr,
            node,
            origin,
            NoAddresses,
            Some(link),
            &mut crx,
            &otx,
            hb,
            true,
        )
        .await;
    });
    Member {
        task,
        sink,
        status: grx,
        _control: ctx,
    }
}

fn owners(members: &[Option<Member>], a: &IpAddr) -> Vec<usize> {
    (0..members.len())
        .filter(|&i| {
            members[i]
                .as_ref()
                .is_some_and(|m| m.sink.0.lock().unwrap().contains(a))
        })
        .collect()
}

/// Waits until every address is bound by exactly one live member; fails
/// on two at any sampled instant.
async fn wait_all_bound(
    members: &[Option<Member>],
    addrs: &BTreeSet<IpAddr>,
    within: Duration,
) -> Duration {
    let t0 = Instant::now();
    loop {
        let mut all = true;
        for a in addrs {
            let o = owners(members, a);
            assert!(o.len() <= 1, "{a} bound by {o:?}");
            all &= o.len() == 1;
        }
        if all {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < within,
            "not every address bound within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_over_loopback_assign_move_and_survive_a_holder_change() {
    let addrs_of = free_ports(3);
    let set = VoterSet::new(
        (0..3)
            .map(|i| Voter {
                name: format!("n{i}"),
                addr: addrs_of[i],
                role: VoterRole::Node,
            })
            .collect(),
    )
    .unwrap();
    let addresses: BTreeSet<IpAddr> = (0..30u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i)))
        .collect();
    let (_vtx, vrx) = watch::channel(Some(Arc::new(ServiceView {
        addresses: addresses.clone(),
        policies: Default::default(),
    })));
    let mut members: Vec<Option<Member>> =
        (0..3).map(|i| Some(start(&set, i, vrx.clone()))).collect();
    let first = wait_all_bound(&members, &addresses, Duration::from_secs(5)).await;
    eprintln!(
        "all 30 addresses bound {} ms after start",
        first.as_millis()
    );
    let holder = (0..3)
        .find(|&i| members[i].as_ref().unwrap().status.borrow().assigner)
        .unwrap();
    // A node that is not the holder dies: its addresses move.
    let victim = (holder + 1) % 3;
    let m = members[victim].take().unwrap();
    m.task.abort();
    let moved = wait_all_bound(&members, &addresses, Duration::from_secs(3)).await;
    eprintln!(
        "n{victim} killed: its addresses bound elsewhere after {} ms",
        moved.as_millis()
    );
    // Restart it: it rejoins; nothing moves back (stickiness), so it gets
    // only what it is given later.
    members[victim] = Some(start(&set, victim, vrx.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_all_bound(&members, &addresses, Duration::from_secs(1)).await;
    // The holder dies: the live nodes keep what they had.
    let before: Vec<BTreeSet<IpAddr>> = members
        .iter()
        .map(|m| {
            m.as_ref()
                .map(|m| m.sink.0.lock().unwrap().clone())
                .unwrap_or_default()
        })
        .collect();
    let m = members[holder].take().unwrap();
    m.task.abort();
    let t0 = Instant::now();
    let mut lost = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        for i in (0..3).filter(|&i| i != holder) {
            let now = members[i].as_ref().unwrap().sink.0.lock().unwrap().clone();
            lost += before[i].difference(&now).count();
        }
        for a in &addresses {
            assert!(owners(&members, a).len() <= 1);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_all_bound(&members, &addresses, Duration::from_secs(1)).await;
    eprintln!("holder n{holder} killed: samples of live nodes' addresses missing: {lost}");
    assert_eq!(
        lost, 0,
        "live nodes keep their addresses through a holder change"
    );
    for m in members.into_iter().flatten() {
        m.task.abort();
    }
}
