//! The test server's error type: `meta/v1 Status` bodies, built the way
//! kube-apiserver builds them (`k8s.io/apimachinery/pkg/api/errors`), so
//! clients see the same codes, reasons, messages and details as from a real
//! server.
//!
//! This module imports nothing from the rest of the crate: every other
//! module may return an [`ApiError`]; errors about one resource name it by a
//! [`ResourceId`] (a served resource's definition converts into one).

use serde_json::{json, Map, Value};

/// The resource an error is about, as apiserver names it in messages and
/// `details`: its API group ("" for core) and plural.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceId<'a> {
    /// API group, "" for core.
    pub group: &'a str,
    /// Resource plural, as in the URL.
    pub plural: &'a str,
}

impl ResourceId<'_> {
    /// `plural.group` (`leases.coordination.k8s.io`), or the plural for core.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The optimistic-lock message of apiserver's `genericregistry.OptimisticLockErrorMsg`.
pub const OPTIMISTIC_LOCK_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// An API error: the HTTP status code and the `Status` body to send with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code (also the Status `code`).
    pub code: u16,
    /// The full `Status` object.
    pub body: Value,
}

fn status(code: u16, message: &str, reason: Option<&str>, details: Option<Value>) -> ApiError {
    let mut m = Map::new();
    m.insert("kind".into(), json!("Status"));
    m.insert("apiVersion".into(), json!("v1"));
    m.insert("metadata".into(), json!({}));
    m.insert("status".into(), json!("Failure"));
    m.insert("message".into(), json!(message));
    if let Some(r) = reason {
        m.insert("reason".into(), json!(r));
    }
    if let Some(d) = details {
        m.insert("details".into(), d);
    }
    m.insert("code".into(), json!(code));
    ApiError {
        code,
        body: Value::Object(m),
    }
}

/// `details` of a resource error: name, group (omitted for the core group) and
/// the resource plural as `kind` (apiserver puts the resource there, not the Kind).
fn details(res: ResourceId<'_>, name: &str) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), json!(name));
    if !res.group.is_empty() {
        d.insert("group".into(), json!(res.group));
    }
    d.insert("kind".into(), json!(res.plural));
    Value::Object(d)
}

impl ApiError {
    /// 404 `NotFound` for a named object.
    pub fn not_found<'a>(res: impl Into<ResourceId<'a>>, name: &str) -> Self {
        let res = res.into();
        let msg = format!("{} \"{name}\" not found", res.qualified());
        status(404, &msg, Some("NotFound"), Some(details(res, name)))
    }

    /// 404 for a path the server does not serve.
    pub fn path_not_found() -> Self {
        status(
            404,
            "the server could not find the requested resource",
            Some("NotFound"),
            Some(json!({})),
        )
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed() -> Self {
        status(
            405,
            "the server does not allow this method on the requested resource",
            Some("MethodNotAllowed"),
            Some(json!({})),
        )
    }

    /// 409 `AlreadyExists` on create.
    pub fn already_exists<'a>(res: impl Into<ResourceId<'a>>, name: &str) -> Self {
        let res = res.into();
        let msg = format!("{} \"{name}\" already exists", res.qualified());
        status(409, &msg, Some("AlreadyExists"), Some(details(res, name)))
    }

    /// 409 `Conflict`; `why` is the optimistic-lock message or a precondition failure.
    pub fn conflict<'a>(res: impl Into<ResourceId<'a>>, name: &str, why: &str) -> Self {
        let res = res.into();
        let msg = format!(
            "Operation cannot be fulfilled on {} \"{name}\": {why}",
            res.qualified()
        );
        status(409, &msg, Some("Conflict"), Some(details(res, name)))
    }

    /// 422 `Invalid`. `qualified_kind` is what apiserver names the object by:
    /// the resource (`leases.coordination.k8s.io`) for the registry's
    /// resourceVersion check, the Kind (`Lease.coordination.k8s.io`) for
    /// strategy validation. `causes` are (field, message) pairs.
    pub fn invalid(
        qualified_kind: &str,
        group: &str,
        kind: &str,
        name: &str,
        causes: &[(String, String)],
    ) -> Self {
        let list: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        // Go's ErrorList aggregate prints one error bare, several as "[a, b]".
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let msg = format!("{qualified_kind} \"{name}\" is invalid: {joined}");
        let mut d = Map::new();
        d.insert("name".into(), json!(name));
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(kind));
        let causes: Vec<Value> = causes
            .iter()
            .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
            .collect();
        d.insert("causes".into(), Value::Array(causes));
        status(422, &msg, Some("Invalid"), Some(Value::Object(d)))
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: &str) -> Self {
        status(400, message, Some("BadRequest"), None)
    }

    /// 401 `Unauthorized`, exactly as the transcript shows.
    pub fn unauthorized() -> Self {
        status(401, "Unauthorized", Some("Unauthorized"), None)
    }

    /// 500 with a bare message and no reason (how apiserver reports plain Go errors,
    /// e.g. a malformed resourceVersion).
    pub fn internal(message: &str) -> Self {
        status(500, message, None, None)
    }

    /// 410 `Expired`, sent inside a watch `ERROR` event.
    pub fn expired(message: &str) -> Self {
        status(410, message, Some("Expired"), None)
    }

    /// 415 for a PATCH content type the server does not understand.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        let msg = format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
        );
        status(415, &msg, Some("UnsupportedMediaType"), None)
    }

    /// An injected server error (fault injection), 500 or 503.
    pub fn injected(code: u16) -> Self {
        let reason = if code == 503 {
            "ServiceUnavailable"
        } else {
            "InternalError"
        };
        status(
            code,
            "injected fault (vipd-kube-testserver)",
            Some(reason),
            None,
        )
    }
}
