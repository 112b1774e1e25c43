//! kube-vip's node-annotation BGP settings (`annotation`): before the
//! speaker starts, read this node's Node object and take the local AS,
//! router ID and peers from its annotations (`vipd::config::bgp_annotations`
//! says which). As kube-vip, vipd waits until they are all there; it polls
//! the Node (one GET a second, only until then) rather than keeping a
//! watch open for a one-time read.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use tracing::{info, warn};
use vipd::config::bgp_annotations::{self, AnnotationProblem};
use vipd::config::{BgpSettings, Config};

use crate::context::{load_kube, wait_for_signal};

/// How often the Node is read while its annotations are incomplete.
const POLL: Duration = Duration::from_secs(1);

/// The settings from this node's annotations under `prefix`, once they are
/// complete. `Err(code)`: exit with it (2 on an invalid Kubernetes
/// configuration, 0 on SIGTERM/SIGINT while waiting).
pub(crate) async fn settings_from_node(
    cfg: &Config,
    base: &BgpSettings,
    prefix: &str,
) -> Result<BgpSettings, std::process::ExitCode> {
    let api = load_kube(cfg, cfg.vip).await?;
    let client = api.general_client(vipd_kube::GeneralOptions {
        qps: f64::from(cfg.kube_api.qps),
        burst: cfg.kube_api.burst,
        timeout: cfg.kube_api.timeout,
    });
    let name = cfg.node_name.clone();
    info!(node = %name, %prefix, "waiting for the BGP settings in this node's annotations");
    let signal = wait_for_signal();
    tokio::pin!(signal);
    let mut last: Option<String> = None;
    loop {
        match read_annotations(&client, &name).await {
            Ok(Some(ann)) => match bgp_annotations::apply(base, prefix, &ann) {
                Ok(s) => {
                    info!(
                        node = %name, local_as = s.local_as, router_id = ?s.router_id,
                        peers = ?s.peers.iter().map(vipd::config::BgpPeer::redacted).collect::<Vec<_>>(),
                        "BGP settings from node annotations"
                    );
                    return Ok(s);
                }
                Err(p) => report(
                    &mut last,
                    p.to_string(),
                    matches!(p, AnnotationProblem::Missing(_)),
                ),
            },
            Ok(None) => report(
                &mut last,
                format!("no Node {name} (nor one labelled kubernetes.io/hostname={name})"),
                true,
            ),
            Err(e) => report(&mut last, format!("cannot read Node {name}: {e}"), true),
        }
        tokio::select! {
            () = &mut signal => return Err(std::process::ExitCode::SUCCESS),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Logs a problem once (not every poll); `waiting` ones at info level.
fn report(last: &mut Option<String>, msg: String, waiting: bool) {
    if last.as_deref() == Some(msg.as_str()) {
        return;
    }
    if waiting {
        info!("{msg}; waiting");
    } else {
        warn!("{msg}; waiting for a usable value");
    }
    *last = Some(msg);
}

/// The annotations of the Node labelled `kubernetes.io/hostname=<name>`
/// (kube-vip's lookup), else of the Node named `name`.
async fn read_annotations(
    client: &vipd_kube::GeneralClient,
    name: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, vipd_kube::GeneralError> {
    let selector = format!("kubernetes.io/hostname={name}");
    let listed = client
        .call(|c| async move {
            Api::<Node>::all(c)
                .list(&ListParams::default().labels(&selector))
                .await
        })
        .await?;
    if let Some(n) = listed.items.into_iter().next() {
        return Ok(Some(n.metadata.annotations.unwrap_or_default()));
    }
    let name = name.to_owned();
    let got = client
        .call(|c| async move { Api::<Node>::all(c).get_opt(&name).await })
        .await?;
    Ok(got.map(|n| n.metadata.annotations.unwrap_or_default()))
}
