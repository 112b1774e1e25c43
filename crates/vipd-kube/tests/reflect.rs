//! The reflector (list + watch that never gives up, SPEC R2) against the
//! TEST SERVER: initial list, live changes, relist after compaction, 403,
//! silent connections, selectors, a cluster-scoped kind.

mod common;

use common::{start, Env, NS};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::Resource;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vipd_kube::{
    reflect, GeneralClient, GeneralOptions, ReflectEvent, ReflectorConfig, ReflectorStats,
};
use vipd_kube_testserver::FaultRule;

/// The all-namespaces ConfigMap collection: the reflector's path when it
/// watches every namespace, while the test's own writes go to namespaced
/// paths, so fault rules on this prefix hit the reflector only.
const ALL_CONFIGMAPS: &str = "/api/v1/configmaps";

/// Bounds a step; generous, these are real sockets.
async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs} s"))
}

fn key<K: Resource>(o: &K) -> String {
    format!(
        "{}/{}",
        o.meta().namespace.as_deref().unwrap_or(""),
        o.meta().name.as_deref().unwrap_or("")
    )
}

/// A running reflector and the consumer-side mirror built from its events,
/// exactly as a consumer should build it.
struct Reflected<K> {
    rx: mpsc::Receiver<ReflectEvent<K>>,
    stats: Arc<ReflectorStats>,
    task: JoinHandle<()>,
    state: BTreeMap<String, K>,
    listed: u64,
}

impl<K> Drop for Reflected<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn spawn<K>(env: &Env, cfg: ReflectorConfig) -> Reflected<K>
where
    K: Resource
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    K::Scope: 'static,
    K::DynamicType: Default,
{
    let creds = env.credentials().await;
    let eps = creds.endpoints(&env.inputs()).expect("endpoints");
    let client = Arc::new(GeneralClient::new(creds, &eps, GeneralOptions::default()));
    let (tx, rx) = mpsc::channel(64);
    let stats = Arc::new(ReflectorStats::default());
    let cfg = cfg.backoff(Duration::from_millis(50), Duration::from_millis(500));
    let task = tokio::spawn(reflect::<K>(client, cfg, tx, stats.clone()));
    Reflected {
        rx,
        stats,
        task,
        state: BTreeMap::new(),
        listed: 0,
    }
}

impl<K: Resource + Clone> Reflected<K> {
    /// The next event, applied to the mirror.
    async fn next(&mut self) -> ReflectEvent<K> {
        let ev = within(20, "next reflector event", self.rx.recv())
            .await
            .expect("reflector alive");
        match &ev {
            ReflectEvent::Listed(all) => {
                self.listed += 1;
                self.state = all.iter().map(|o| (key(o), o.clone())).collect();
            }
            ReflectEvent::Applied(o) => {
                self.state.insert(key(o), o.clone());
            }
            ReflectEvent::Deleted(o) => {
                self.state.remove(&key(o));
            }
        }
        ev
    }

    /// Consumes events until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        within(30, what, async {
            while !done(self) {
                self.next().await;
            }
        })
        .await;
    }

    fn keys(&self) -> Vec<String> {
        self.state.keys().cloned().collect()
    }

    fn stat(&self, f: impl Fn(&ReflectorStats) -> &AtomicU64) -> u64 {
        f(&self.stats).load(Ordering::Relaxed)
    }
}

/// Waits until a counter reaches `n` (the reflector sends no event for a
/// failure, so the counter is polled).
async fn counter_reaches(
    stats: &ReflectorStats,
    what: &str,
    c: fn(&ReflectorStats) -> &AtomicU64,
    n: u64,
) {
    within(20, what, async {
        while c(stats).load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn config_map(ns: &str, name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("v".to_owned(), value.to_owned())])),
        ..ConfigMap::default()
    }
}

fn value(cm: &ConfigMap) -> &str {
    cm.data
        .as_ref()
        .and_then(|d| d.get("v"))
        .map_or("", String::as_str)
}

fn service(name: &str, app: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// Stores `obj` directly in the server (`serde_json::to_value` of a
/// k8s-openapi object carries the apiVersion and kind `put_object` needs).
fn seed<T: k8s_openapi::serde::Serialize>(env: &Env, obj: &T) {
    let value = serde_json::to_value(obj).expect("serializable");
    env.server.put_object(value).expect("seed object");
}

/// The server's ConfigMaps (all namespaces) as `ns/name → value`.
async fn server_config_maps(env: &Env) -> BTreeMap<String, String> {
    let api: Api<ConfigMap> = Api::all(env.raw_client().await);
    let list = within(20, "list", api.list(&ListParams::default()))
        .await
        .expect("list");
    list.items
        .iter()
        .map(|c| (key(c), value(c).to_owned()))
        .collect()
}

fn mirror_values(r: &Reflected<ConfigMap>) -> BTreeMap<String, String> {
    r.state
        .iter()
        .map(|(k, c)| (k.clone(), value(c).to_owned()))
        .collect()
}

#[tokio::test]
async fn initial_list_delivers_every_existing_object_of_the_namespace() {
    let env = start().await;
    seed(&env, &config_map(NS, "a", "1"));
    seed(&env, &config_map(NS, "b", "2"));
    seed(&env, &config_map("other", "c", "3"));
    let mut r = spawn::<ConfigMap>(&env, ReflectorConfig::namespaced(NS)).await;
    let ReflectEvent::Listed(items) = r.next().await else {
        panic!("first event is not Listed");
    };
    let mut names: Vec<String> = items.iter().map(key).collect();
    names.sort();
    assert_eq!(names, [format!("{NS}/a"), format!("{NS}/b")]);
    assert_eq!(r.stat(|s| &s.lists), 1);
}

#[tokio::test]
async fn changes_after_the_list_arrive_as_applied_and_deleted() {
    let env = start().await;
    seed(&env, &config_map(NS, "a", "1"));
    let mut r = spawn::<ConfigMap>(&env, ReflectorConfig::namespaced(NS)).await;
    r.until("listed", |r| r.listed == 1).await;
    let api: Api<ConfigMap> = Api::namespaced(env.raw_client().await, NS);

    within(
        20,
        "create",
        api.create(&PostParams::default(), &config_map(NS, "b", "1")),
    )
    .await
    .expect("create");
    match r.next().await {
        ReflectEvent::Applied(c) => assert_eq!(key(&c), format!("{NS}/b")),
        other => panic!("expected Applied(b), got {other:?}"),
    }

    within(
        20,
        "replace",
        api.replace("a", &PostParams::default(), &config_map(NS, "a", "2")),
    )
    .await
    .expect("replace");
    match r.next().await {
        ReflectEvent::Applied(c) => {
            assert_eq!(key(&c), format!("{NS}/a"));
            assert_eq!(value(&c), "2");
        }
        other => panic!("expected Applied(a=2), got {other:?}"),
    }

    within(20, "delete", api.delete("b", &DeleteParams::default()))
        .await
        .expect("delete");
    match r.next().await {
        ReflectEvent::Deleted(c) => assert_eq!(key(&c), format!("{NS}/b")),
        other => panic!("expected Deleted(b), got {other:?}"),
    }
    assert_eq!(mirror_values(&r), server_config_maps(&env).await);
    assert_eq!(r.stat(|s| &s.events), 3);
    assert_eq!(r.stat(|s| &s.lists), 1);
    assert_eq!(r.stat(|s| &s.relists_gone), 0);
    assert_eq!(r.stat(|s| &s.relists_error), 0);
}

#[tokio::test]
async fn compaction_while_the_watch_is_down_forces_a_complete_relist() {
    let env = start().await;
    for (n, v) in [("a", "1"), ("b", "1"), ("c", "1")] {
        seed(&env, &config_map(NS, n, v));
    }
    let mut r = spawn::<ConfigMap>(&env, ReflectorConfig::all()).await;
    r.until("listed", |r| r.listed == 1).await;

    // The reflector's watch breaks and cannot come back...
    env.server.set_faults(vec![FaultRule {
        path_prefix: Some(ALL_CONFIGMAPS.into()),
        error_percent: 100,
        error_status: Some(503),
        ..FaultRule::default()
    }]);
    assert!(env.server.close_established(None) >= 1);
    counter_reaches(&r.stats, "watch failure counted", |s| &s.relists_error, 1).await;
    // ...while objects change and the history is compacted away.
    let api: Api<ConfigMap> = Api::namespaced(env.raw_client().await, NS);
    within(20, "delete a", api.delete("a", &DeleteParams::default()))
        .await
        .expect("delete");
    within(
        20,
        "replace b",
        api.replace("b", &PostParams::default(), &config_map(NS, "b", "2")),
    )
    .await
    .expect("replace");
    within(
        20,
        "create d",
        api.create(&PostParams::default(), &config_map(NS, "d", "1")),
    )
    .await
    .expect("create");
    env.server.compact();
    env.server.clear_faults();

    // The re-watch from the old resourceVersion gets 410: relist.
    r.until("relisted", |r| r.listed == 2).await;
    assert!(r.stat(|s| &s.relists_gone) >= 1, "relist counted as 410");
    assert_eq!(r.stat(|s| &s.lists), 2);
    assert_eq!(mirror_values(&r), server_config_maps(&env).await);
    assert_eq!(
        r.keys(),
        [format!("{NS}/b"), format!("{NS}/c"), format!("{NS}/d")]
    );

    // And it watches again.
    within(
        20,
        "create e",
        api.create(&PostParams::default(), &config_map(NS, "e", "1")),
    )
    .await
    .expect("create");
    r.until("e arrives", |r| r.state.contains_key(&format!("{NS}/e")))
        .await;
}

#[tokio::test]
async fn forbidden_backs_off_relists_and_recovers_when_allowed_again() {
    let env = start().await;
    seed(&env, &config_map(NS, "a", "1"));
    let mut r = spawn::<ConfigMap>(&env, ReflectorConfig::all()).await;
    r.until("listed", |r| r.listed == 1).await;

    env.server.set_faults(vec![FaultRule {
        path_prefix: Some(ALL_CONFIGMAPS.into()),
        error_percent: 100,
        error_status: Some(403),
        ..FaultRule::default()
    }]);
    assert!(env.server.close_established(None) >= 1);
    // Several 403s in a row: it keeps trying (with back-off), never gives up.
    counter_reaches(&r.stats, "403s counted", |s| &s.relists_forbidden, 3).await;
    assert_eq!(r.stat(|s| &s.lists), 1, "no list succeeded while forbidden");

    let api: Api<ConfigMap> = Api::namespaced(env.raw_client().await, NS);
    within(
        20,
        "create b",
        api.create(&PostParams::default(), &config_map(NS, "b", "1")),
    )
    .await
    .expect("create");
    env.server.clear_faults();

    r.until("relisted", |r| r.listed == 2).await;
    assert_eq!(mirror_values(&r), server_config_maps(&env).await);
    assert_eq!(r.keys(), [format!("{NS}/a"), format!("{NS}/b")]);

    within(
        20,
        "create c",
        api.create(&PostParams::default(), &config_map(NS, "c", "1")),
    )
    .await
    .expect("create");
    r.until("c arrives", |r| r.state.contains_key(&format!("{NS}/c")))
        .await;
}

#[tokio::test]
async fn silent_watch_is_abandoned_after_its_timeout_and_resumes_from_the_last_version() {
    let env = start().await;
    seed(&env, &config_map(NS, "a", "1"));
    // 1 s server-side timeout + the reflector's grace (10 s).
    let mut r = spawn::<ConfigMap>(&env, ReflectorConfig::namespaced(NS).watch_timeout(1)).await;
    r.until("listed", |r| r.listed == 1).await;
    // Let at least one watch end normally and be re-issued.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The reflector's connection goes silent: no answer, no RST.
    assert!(env.server.black_hole_established(None) >= 1);
    let api: Api<ConfigMap> = Api::namespaced(env.raw_client().await, NS);
    within(
        20,
        "create b",
        api.create(&PostParams::default(), &config_map(NS, "b", "1")),
    )
    .await
    .expect("create");
    // The change arrives once the dead watch is given up and a new
    // connection re-watches from the last resourceVersion (no relist).
    r.until("b arrives", |r| r.state.contains_key(&format!("{NS}/b")))
        .await;
    assert!(r.stat(|s| &s.relists_error) >= 1, "silence counted");
    assert_eq!(r.stat(|s| &s.lists), 1, "resumed without a relist");
}

#[tokio::test]
async fn label_selector_limits_the_reflected_services() {
    let env = start().await;
    seed(&env, &service("a1", "a"));
    seed(&env, &service("b1", "b"));
    let mut r = spawn::<Service>(&env, ReflectorConfig::namespaced(NS).labels("app=a")).await;
    r.until("listed", |r| r.listed == 1).await;
    assert_eq!(r.keys(), [format!("{NS}/a1")]);

    let api: Api<Service> = Api::namespaced(env.raw_client().await, NS);
    // b2 first: were it delivered, it would come before a2.
    within(
        20,
        "create b2",
        api.create(&PostParams::default(), &service("b2", "b")),
    )
    .await
    .expect("create");
    within(
        20,
        "create a2",
        api.create(&PostParams::default(), &service("a2", "a")),
    )
    .await
    .expect("create");
    match r.next().await {
        ReflectEvent::Applied(s) => assert_eq!(key(&s), format!("{NS}/a2")),
        other => panic!("expected Applied(a2), got {other:?}"),
    }
    assert_eq!(r.keys(), [format!("{NS}/a1"), format!("{NS}/a2")]);
}

#[tokio::test]
async fn cluster_scoped_nodes_are_listed_and_watched() {
    let env = start().await;
    seed(&env, &node("node-a"));
    let mut r = spawn::<Node>(&env, ReflectorConfig::all()).await;
    r.until("listed", |r| r.listed == 1).await;
    assert_eq!(r.keys(), ["/node-a"]);

    let api: Api<Node> = Api::all(env.raw_client().await);
    within(
        20,
        "create node-b",
        api.create(&PostParams::default(), &node("node-b")),
    )
    .await
    .expect("create");
    within(
        20,
        "delete node-a",
        api.delete("node-a", &DeleteParams::default()),
    )
    .await
    .expect("delete");
    match r.next().await {
        ReflectEvent::Applied(n) => assert_eq!(key(&n), "/node-b"),
        other => panic!("expected Applied(node-b), got {other:?}"),
    }
    match r.next().await {
        ReflectEvent::Deleted(n) => assert_eq!(key(&n), "/node-a"),
        other => panic!("expected Deleted(node-a), got {other:?}"),
    }
    assert_eq!(r.keys(), ["/node-b"]);
}

#[tokio::test]
async fn reflector_ends_when_the_receiver_is_dropped() {
    let env = start().await;
    let mut r = spawn::<ConfigMap>(&env, ReflectorConfig::namespaced(NS)).await;
    r.until("listed", |r| r.listed == 1).await;
    let (_, placeholder) = mpsc::channel(1);
    drop(std::mem::replace(&mut r.rx, placeholder));
    let task = std::mem::replace(&mut r.task, tokio::spawn(async {}));
    within(20, "reflector ends", task)
        .await
        .expect("ended without panicking");
}
