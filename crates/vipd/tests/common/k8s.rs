//! Kubernetes objects for the in-repo API test server, built from
//! `k8s-openapi` types (never hand-written JSON) and stamped with their
//! kind and API version, as `put_object` wants them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

/// Metadata with a name and, for namespaced kinds, a namespace.
pub fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}

/// `obj` as JSON with `kind` and `apiVersion` set.
pub fn to_value<T: serde::Serialize>(kind: &str, api_version: &str, obj: &T) -> Value {
    let mut v = serde_json::to_value(obj).unwrap();
    v["kind"] = kind.into();
    v["apiVersion"] = api_version.into();
    v
}
