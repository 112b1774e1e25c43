//! The control endpoint: plain HTTP/1.1 + JSON, so tests can drive it with a
//! few lines of `std::net::TcpStream` (see the table in the crate docs).

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{json_response, Body};
use crate::{client_of, FaultRule, Shared};

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((t, _)) => t,
                Err(_) => continue,
            },
            _ = stop.cancelled() => return,
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        // Control connections are short-lived and end with the server (stop token).
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&shared, req).await) }
            });
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
            tokio::select! {
                _ = conn => {},
                _ = stop.cancelled() => {},
            }
        });
    }
}

fn bad(msg: &str) -> Response<Body> {
    json_response(400, &json!({"error": msg}))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body: Bytes = match Limited::new(req.into_body(), 4 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad(&e.to_string()),
    };
    let json_body = || -> Result<Value, String> {
        if body.is_empty() {
            Ok(json!({}))
        } else {
            serde_json::from_slice(&body).map_err(|e| e.to_string())
        }
    };
    let v = match json_body() {
        Ok(v) => v,
        Err(e) => return bad(&e),
    };
    match (&method, path.as_str()) {
        (&Method::GET, "/_stats") => json_response(200, &json!(shared.stats())),
        (&Method::DELETE, "/_stats") => {
            shared.faults.reset_counts();
            json_response(200, &json!({}))
        }
        (&Method::GET, "/_faults") => json_response(200, &json!({"rules": shared.faults.rules()})),
        (&Method::PUT, "/_faults") => {
            let rules = v.get("rules").cloned().unwrap_or(json!([]));
            match serde_json::from_value::<Vec<FaultRule>>(rules) {
                Ok(r) => {
                    shared.faults.set_rules(r);
                    json_response(200, &json!({"rules": shared.faults.rules()}))
                }
                Err(e) => bad(&e.to_string()),
            }
        }
        (&Method::DELETE, "/_faults") => {
            shared.faults.set_rules(Vec::new());
            json_response(200, &json!({"rules": []}))
        }
        (&Method::POST, "/_faults/black-hole-established") => {
            let n = shared.faults.black_hole_established(client_of(&v));
            json_response(200, &json!({"marked": n}))
        }
        (&Method::POST, "/_faults/close-established") => {
            let n = shared.faults.close_established(client_of(&v));
            json_response(200, &json!({"closed": n}))
        }
        (&Method::POST, "/_compact") => {
            json_response(200, &json!({"compactedRevision": shared.store.compact()}))
        }
        (&Method::PUT, "/_history") => match v.get("limit").and_then(Value::as_u64) {
            Some(n) => {
                shared
                    .store
                    .set_history_limit(usize::try_from(n).unwrap_or(usize::MAX));
                json_response(200, &json!({"limit": n}))
            }
            None => bad("body must be {\"limit\": N}"),
        },
        (&Method::POST, "/_objects") => match shared.put_object(v) {
            Ok(o) => json_response(201, &o),
            Err(e) => bad(&e.to_string()),
        },
        _ => json_response(404, &json!({"error": "unknown control path"})),
    }
}
