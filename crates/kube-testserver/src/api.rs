//! The Kubernetes API request handler: fault injection, authentication,
//! routing to the store, and watch streams.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::faults::Conn;
use crate::resources::{self, ResourceDef};
use crate::store::{Change, EventType};
use crate::workloads;
use crate::Shared;

/// The response body type of both listeners.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// apiserver's request body limit (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// apiserver's default watch timeout is random in [1800 s, 3600 s); we use the low end.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// `/version` as recorded from the real v1.28.7 server.
pub const VERSION_BODY: &str = r#"{"major":"1","minor":"28","gitVersion":"v1.28.7","gitCommit":"chengsir22-9258ab62-97d04a81","gitTreeState":"archive","buildDate":"2026-11-26T14:56:56Z","goVersion":"go1.27.3","compiler":"gc","platform":"linux/amd64"}"#;

/// A JSON response.
pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(bytes)).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.body)
}

fn text_response(code: u16, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from_static(text.as_bytes())).boxed_unsync())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// A parsed resource URL.
#[derive(Debug)]
struct Target {
    res: &'static ResourceDef,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    let res = resources::find(group, version, plural)?;
    if ns.is_some() != res.namespaced && (ns.is_some() || name.is_some()) {
        return None;
    }
    if sub
        .as_deref()
        .is_some_and(|s| s != "status" || !res.has_status)
    {
        return None;
    }
    Some(Target { res, ns, name, sub })
}

fn verb_of(method: &Method, t: &Target, query: &HashMap<String, String>) -> &'static str {
    let watch = matches!(query.get("watch").map(String::as_str), Some("1" | "true"));
    match (method.as_str(), t.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unsupported",
    }
}

/// Handles one API request end to end.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Response<Body> {
    let client = conn.peer.ip();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let target = parse_path(&path);
    let (verb, resource) = match &target {
        Some(t) => {
            let mut r = t.res.qualified();
            if let Some(s) = &t.sub {
                r = format!("{r}/{s}");
            }
            (verb_of(req.method(), t, &query).to_string(), r)
        }
        None => (req.method().as_str().to_lowercase(), path.clone()),
    };
    shared.faults.count(&verb, &resource, client);

    // Network-level faults first: they act before the server "sees" the request.
    if conn.dead.is_cancelled() {
        std::future::pending::<()>().await;
    }
    let d = shared.faults.decide(client, &path);
    if d.close {
        conn.kill.cancel();
        std::future::pending::<()>().await;
    }
    if d.black_hole {
        let mut changed = shared.faults.subscribe();
        while shared.faults.black_holed(client, &path) {
            tokio::select! {
                r = changed.changed() => if r.is_err() { std::future::pending::<()>().await },
                _ = conn.dead.cancelled() => std::future::pending::<()>().await,
            }
        }
    }
    if !d.latency.is_zero() {
        tokio::time::sleep(d.latency).await;
    }
    if let Some(code) = d.error {
        return error_response(&ApiError::injected(code));
    }

    // Authentication: a bearer token on every request; the public
    // health/version endpoints also accept anonymous requests, as apiserver
    // does with its system:public-info-viewer binding.
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let public = ["/healthz", "/livez", "/readyz", "/version"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    let token_ok = auth.as_deref() == Some(&format!("Bearer {}", shared.token));
    if !(token_ok || (public && auth.is_none())) {
        return error_response(&ApiError::unauthorized());
    }
    if public {
        return if path == "/version" {
            let v: Value = serde_json::from_str(VERSION_BODY).unwrap_or(Value::Null);
            json_response(200, &v)
        } else {
            text_response(200, "ok")
        };
    }
    let Some(t) = target else {
        return error_response(&ApiError::path_not_found());
    };
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(&format!("reading body: {e}"))),
    };
    match route(
        &shared,
        &conn,
        &path,
        &t,
        &verb,
        &query,
        &content_type,
        &body,
    )
    .await
    {
        Ok(resp) => resp,
        Err(e) => {
            if e.code >= 500 || method != Method::GET {
                tracing::debug!(%verb, %resource, code = e.code, "request failed");
            }
            error_response(&e)
        }
    }
}

fn decode(body: &Bytes) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(&format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "couldn't get version/kind; json parse error: expected an object",
        ));
    }
    Ok(v)
}

/// Checks kind/apiVersion/namespace/name of a body against the URL and fills kind/apiVersion.
fn check_body(t: &Target, obj: &mut Value, name: Option<&str>) -> Result<(), ApiError> {
    let res = t.res;
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(res.kind)
        .to_string();
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if kind != res.kind || (!av.is_empty() && av != res.api_version()) {
        return Err(ApiError::bad_request(&format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            res.api_version()
        )));
    }
    if let Some(m) = obj.as_object_mut() {
        m.insert("kind".into(), json!(res.kind));
        m.insert("apiVersion".into(), json!(res.api_version()));
    }
    resources::decode_check(res, obj)?;
    if let (Some(want), Some(have)) = (
        &t.ns,
        obj.pointer("/metadata/namespace").and_then(Value::as_str),
    ) {
        if !have.is_empty() && have != want {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    if let Some(url_name) = name {
        let have = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if have != url_name {
            return Err(ApiError::bad_request(&format!(
                "the name of the object ({have}) does not match the name on the URL ({url_name})"
            )));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn route(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    path: &str,
    t: &Target,
    verb: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    let store = &shared.store;
    let res = t.res;
    let ns = t.ns.as_deref().unwrap_or("");
    let status_only = t.sub.is_some();
    match verb {
        "get" => {
            let name = t.name.as_deref().unwrap_or("");
            Ok(json_response(200, &store.get(res, ns, name)?))
        }
        "list" => {
            let sel = Selectors::parse(query)?;
            let (items, rev) = store.list(res, t.ns.as_deref());
            let items: Vec<Value> = items
                .into_iter()
                .filter(|o| sel.matches(o))
                .map(|mut o| {
                    // List items carry no kind/apiVersion on the wire.
                    if let Some(m) = o.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    o
                })
                .collect();
            Ok(json_response(
                200,
                &json!({
                    "kind": format!("{}List", res.kind),
                    "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": rev.to_string()},
                    "items": items,
                }),
            ))
        }
        "watch" => watch(shared, conn, t, query, path),
        "create" => {
            let mut obj = decode(body)?;
            check_body(t, &mut obj, None)?;
            let warnings = field_validation(t, &obj, query)?;
            let resp = json_response(201, &store.create(res, ns, obj)?);
            Ok(with_warnings(resp, &warnings))
        }
        "update" => {
            let name = t.name.as_deref().unwrap_or("");
            let mut obj = decode(body)?;
            check_body(t, &mut obj, Some(name))?;
            let warnings = field_validation(t, &obj, query)?;
            let (v, created) = store.update(res, ns, name, obj, status_only)?;
            let resp = json_response(if created { 201 } else { 200 }, &v);
            Ok(with_warnings(resp, &warnings))
        }
        "patch" => {
            let name = t.name.as_deref().unwrap_or("");
            let ct = content_type.split(';').next().unwrap_or("").trim();
            // Strategic merge patch is served as a plain merge patch: for the
            // fields vipd patches (status.loadBalancer, labels, annotations)
            // the two agree; list-merge-by-key is not emulated.
            if ct != "application/merge-patch+json"
                && ct != "application/strategic-merge-patch+json"
            {
                return Err(ApiError::unsupported_media_type(ct));
            }
            let patch = decode(body)?;
            let mut probe = store.get(res, ns, name)?;
            resources::merge_patch(&mut probe, &patch);
            resources::decode_check(res, &mut probe)?;
            Ok(json_response(
                200,
                &store.patch(res, ns, name, &patch, status_only)?,
            ))
        }
        "delete" => {
            let name = t.name.as_deref().unwrap_or("");
            let opts: Value = if body.is_empty() {
                json!({})
            } else {
                decode(body)?
            };
            let pre_rv = opts
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str);
            let pre_uid = opts.pointer("/preconditions/uid").and_then(Value::as_str);
            let old = store.delete(res, ns, name, pre_rv, pre_uid)?;
            if res.return_deleted_object {
                return Ok(json_response(200, &old));
            }
            let mut details = serde_json::Map::new();
            details.insert("name".into(), json!(name));
            if !res.group.is_empty() {
                details.insert("group".into(), json!(res.group));
            }
            details.insert("kind".into(), json!(res.plural));
            details.insert(
                "uid".into(),
                old.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            );
            Ok(json_response(
                200,
                &json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Success", "details": details,
                }),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Server-side field validation (KEP-2885) of a create or update body, for
/// the kinds `crate::workloads` decodes: a type error is a 400 as always; an
/// unknown field is a 400 under `fieldValidation=Strict`, a warning under
/// the default `Warn`, nothing under `Ignore`. Returns the warnings.
fn field_validation(
    t: &Target,
    obj: &Value,
    query: &HashMap<String, String>,
) -> Result<Vec<String>, ApiError> {
    let res = t.res;
    let unknown = match workloads::unknown_fields(res.group, res.kind, obj) {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            return Err(ApiError::bad_request(&format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                res.kind, res.version, res.kind
            )))
        }
    };
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match workloads::FieldValidation::parse(query.get("fieldValidation").map(String::as_str)) {
        workloads::FieldValidation::Strict if !msgs.is_empty() => Err(ApiError::bad_request(
            &format!("strict decoding error: {}", msgs.join(", ")),
        )),
        workloads::FieldValidation::Ignore => Ok(Vec::new()),
        _ => Ok(msgs),
    }
}

/// Adds one `Warning: 299 - "..."` header per message (RFC 7234 §5.5, as
/// apiserver sends them).
fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// Label and field selectors of a list or watch.
#[derive(Debug, Default)]
struct Selectors {
    labels: Vec<LabelReq>,
    fields: Vec<(String, bool, String)>,
}

#[derive(Debug)]
enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Selectors {
    fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let mut sel = Self::default();
        for r in split_top(q.get("labelSelector").map(String::as_str).unwrap_or("")) {
            let set = |rest: &str| -> Vec<String> {
                rest.trim()
                    .trim_start_matches('(')
                    .trim_end_matches(')')
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .collect()
            };
            let req = if let Some(k) = r.strip_prefix('!') {
                LabelReq::NotExists(k.trim().into())
            } else if let Some((k, v)) = r.split_once(" notin ") {
                LabelReq::NotIn(k.trim().into(), set(v))
            } else if let Some((k, v)) = r.split_once(" in ") {
                LabelReq::In(k.trim().into(), set(v))
            } else if let Some((k, v)) = r.split_once("!=") {
                LabelReq::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if r.contains(' ') || r.contains('(') {
                return Err(ApiError::bad_request(&format!(
                    "unable to parse requirement: {r}"
                )));
            } else {
                LabelReq::Exists(r.clone())
            };
            sel.labels.push(req);
        }
        for r in split_top(q.get("fieldSelector").map(String::as_str).unwrap_or("")) {
            let (k, neg, v) = if let Some((k, v)) = r.split_once("!=") {
                (k, true, v)
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                (k, false, v)
            } else {
                return Err(ApiError::bad_request(&format!(
                    "invalid selector: '{r}'; can't understand '{r}'"
                )));
            };
            if k != "metadata.name" && k != "metadata.namespace" {
                return Err(ApiError::bad_request(&format!(
                    "field label not supported: {k}"
                )));
            }
            sel.fields.push((k.to_string(), neg, v.to_string()));
        }
        Ok(sel)
    }

    fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|r| match r {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::Ne(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        });
        labels_ok
            && self.fields.iter().all(|(k, neg, v)| {
                let field = k.trim_start_matches("metadata.");
                let have = obj
                    .get("metadata")
                    .and_then(|m| m.get(field))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                (have == v) != *neg
            })
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(BodyExt::boxed_unsync(StreamBody::new(StreamExt::boxed(
            stream,
        ))))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed_unsync()))
}

/// WATCH: replays history after `resourceVersion` (or the current state as
/// ADDED when it is absent or "0"), then streams live changes as JSON lines.
fn watch(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    t: &Target,
    query: &HashMap<String, String>,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::parse(query)?;
    let from = match query.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(s) => Some(crate::store::parse_rv(s)?),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(DEFAULT_WATCH_TIMEOUT, Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let (replay, live) = match shared.store.watch(t.res, from) {
        Ok(x) => x,
        Err(too_old) => {
            // apiserver answers 200 and sends one ERROR event (watch_cache.go:
            // "too old resource version: %d (%d)"), then closes the stream.
            let e = ApiError::expired(&format!(
                "too old resource version: {} ({})",
                from.unwrap_or(0),
                too_old.compacted
            ));
            let _ = tx.try_send(event_line("ERROR", &e.body));
            drop(tx);
            return Ok(stream_response(rx));
        }
    };
    let res = t.res;
    let ns = t.ns.clone();
    let filter = move |c: &Change| {
        std::ptr::eq(c.res, res)
            && ns.as_deref().is_none_or(|ns| {
                c.object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    == Some(ns)
            })
            && sel.matches(&c.object)
    };
    let task = WatchTask {
        shared: shared.clone(),
        conn: conn.clone(),
        path: path.to_string(),
        replay: replay.into(),
        live,
        tx,
        deadline: Instant::now() + timeout,
    };
    // Owned by the response body: when the client goes away the receiver is
    // dropped, `tx.send` fails and the task ends.
    tokio::spawn(task.run(filter));
    Ok(stream_response(rx))
}

struct WatchTask {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    path: String,
    replay: VecDeque<Arc<Change>>,
    live: mpsc::UnboundedReceiver<Arc<Change>>,
    tx: mpsc::Sender<Bytes>,
    deadline: Instant,
}

impl WatchTask {
    async fn run(mut self, filter: impl Fn(&Change) -> bool) {
        let client: IpAddr = self.conn.peer.ip();
        loop {
            let change = match self.replay.pop_front() {
                Some(c) => c,
                None => tokio::select! {
                    c = self.live.recv() => match c { Some(c) => c, None => return },
                    _ = tokio::time::sleep_until(self.deadline) => return,
                    _ = self.conn.dead.cancelled() => {
                        // A black-holed connection: the stream goes silent but stays open.
                        self.tx.closed().await;
                        return;
                    },
                    _ = self.tx.closed() => return,
                },
            };
            if self.conn.dead.is_cancelled() {
                // A black-holed connection: the stream goes silent but stays open.
                self.tx.closed().await;
                return;
            }
            if !filter(&change) {
                continue;
            }
            // A black-hole rule freezes delivery; TCP would deliver later.
            let mut changed = self.shared.faults.subscribe();
            while self.shared.faults.black_holed(client, &self.path) {
                tokio::select! {
                    r = changed.changed() => if r.is_err() { return },
                    _ = self.tx.closed() => return,
                }
            }
            let kind = change.kind;
            debug_assert!(matches!(
                kind,
                EventType::Added | EventType::Modified | EventType::Deleted
            ));
            if self
                .tx
                .send(event_line(kind.as_str(), &change.object))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
