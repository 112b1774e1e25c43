//! One entry point for the daemon: load credentials, plan the endpoint list
//! and hand out the lease store and the general client built on them.

use crate::client::{ApiEndpoints, Credentials, EndpointInputs, KubeConfigError};
use crate::general::{GeneralClient, GeneralOptions};
use crate::store::KubeLeaseStore;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The daemon's Kubernetes settings (vipd's `Config` fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSettings {
    /// `k8s_config_file`; `None`: `$KUBECONFIG`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// `kubernetes_addr`.
    pub kubernetes_addr: Option<String>,
    /// `port` of the local apiserver.
    pub api_port: u16,
    /// `cp_enable`.
    pub control_plane: bool,
    /// The control-plane VIP (`address`).
    pub vip: IpAddr,
}

/// Loaded credentials and the planned endpoints.
#[derive(Clone, Debug)]
pub struct KubeApi {
    credentials: Credentials,
    endpoints: ApiEndpoints,
}

impl KubeApi {
    /// Loads credentials and plans the endpoints. Errors are configuration
    /// errors (exit 2 before anything is touched). Log
    /// [`KubeApi::endpoints`]`().dropped` in one line when not empty.
    pub async fn load(settings: &KubeSettings) -> Result<Self, KubeConfigError> {
        let credentials = Credentials::load(settings.kubeconfig.as_deref()).await?;
        let inputs = EndpointInputs::new(
            settings.kubernetes_addr.clone(),
            settings.api_port,
            settings.control_plane,
            settings.vip,
        );
        let endpoints = credentials.endpoints(&inputs)?;
        Ok(KubeApi {
            credentials,
            endpoints,
        })
    }

    /// From parts already built (tests, embedding).
    pub fn from_parts(credentials: Credentials, endpoints: ApiEndpoints) -> Self {
        KubeApi {
            credentials,
            endpoints,
        }
    }

    /// The endpoint list and what was dropped.
    pub fn endpoints(&self) -> &ApiEndpoints {
        &self.endpoints
    }

    /// The credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The kubeconfig context's or the service account's namespace: the
    /// lease namespace when neither `cp_namespace` nor `ns/name` gives one.
    pub fn default_namespace(&self) -> &str {
        self.credentials.default_namespace()
    }

    /// The lease store (its own client; every request bounded by
    /// `renew_deadline`).
    pub fn lease_store(
        &self,
        namespace: &str,
        name: &str,
        renew_deadline: Duration,
    ) -> KubeLeaseStore {
        KubeLeaseStore::new(
            self.credentials.clone(),
            &self.endpoints,
            namespace,
            name,
            renew_deadline,
        )
    }

    /// The rate-limited general client (its own connection pool).
    pub fn general_client(&self, opts: GeneralOptions) -> GeneralClient {
        GeneralClient::new(self.credentials.clone(), &self.endpoints, opts)
    }
}

/// Splits kube-vip's `vip_leasename`, which may be `namespace/name`, into
/// (namespace, name); a plain name takes `default_namespace`.
pub fn split_lease_name<'a>(lease: &'a str, default_namespace: &'a str) -> (&'a str, &'a str) {
    match lease.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => (ns, name),
        _ => (default_namespace, lease),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_name_may_carry_its_namespace() {
        assert_eq!(
            split_lease_name("plndr-cp-lock", "kube-system"),
            ("kube-system", "plndr-cp-lock")
        );
        assert_eq!(
            split_lease_name("infra/vip-lock", "kube-system"),
            ("infra", "vip-lock")
        );
        assert_eq!(split_lease_name("/x", "kube-system"), ("kube-system", "/x"));
    }
}
