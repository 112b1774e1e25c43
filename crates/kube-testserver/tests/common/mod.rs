//! Shared helpers: a minimal HTTPS client (one connection per `Conn`) that
//! trusts the test server's CA, so tests see raw status, headers and bodies.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use vipd_kube_testserver::{Config, TestServer};

/// Starts an in-process server on 127.0.0.1 with the default token.
pub async fn start() -> TestServer {
    match TestServer::start(Config::default()).await {
        Ok(s) => s,
        Err(e) => panic!("test server did not start: {e}"),
    }
}

/// A raw answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

fn tls_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()).flatten() {
        roots.add(cert).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// One HTTP/1.1 connection over TLS.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    pub token: String,
}

impl Conn {
    pub async fn open(server: &TestServer) -> Self {
        let tcp = TcpStream::connect(server.addr()).await.expect("connect");
        let connector = TlsConnector::from(tls_config(server.ca_pem(), &[b"http/1.1"]));
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS handshake");
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP handshake");
        tokio::spawn(conn);
        Self {
            sender,
            token: server.token().to_string(),
        }
    }

    fn build(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", self.token));
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        let bytes = body
            .map(|v| serde_json::to_vec(v).expect("json"))
            .unwrap_or_default();
        b.body(Full::new(Bytes::from(bytes))).expect("request")
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        let req = self.build(method, path, content_type, body);
        self.sender.ready().await.expect("connection usable");
        let resp = self.sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends a GET and reports transport errors instead of panicking.
    pub async fn get_result(&mut self, path: &str) -> Result<Answer, String> {
        let req = self.build("GET", path, None, None);
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends a request and reads the body for at most `window` (watch streams).
    pub async fn send_for(&mut self, method: &str, path: &str, window: Duration) -> Answer {
        let req = self.build(method, path, None, None);
        self.sender.ready().await.expect("connection usable");
        let resp = self.sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(window, async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(d) = frame.into_data() {
                    out.extend_from_slice(&d);
                }
            }
        })
        .await;
        Answer {
            status,
            headers,
            body: Bytes::from(out),
        }
    }

    /// Sends a request with a deadline; `None` if no answer arrived in time.
    pub async fn try_send(&mut self, method: &str, path: &str, within: Duration) -> Option<Answer> {
        tokio::time::timeout(within, self.send(method, path, None, None))
            .await
            .ok()
    }
}

/// One HTTP/2 request (ALPN h2) on a fresh connection; returns the status.
pub async fn h2_get(server: &TestServer, path: &str) -> (u16, Option<Vec<u8>>) {
    let tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let connector = TlsConnector::from(tls_config(server.ca_pem(), &[b"h2"]));
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(format!("https://localhost{path}"))
        .header("authorization", format!("Bearer {}", server.token()))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = sender.send_request(req).await.expect("h2 response");
    (resp.status().as_u16(), alpn)
}

/// A plain HTTP/1.1 request to the control endpoint with std::net, as a test
/// in another namespace would do it. Returns (status, JSON body).
pub fn control(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("control connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: control\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("control write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("control read");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}
