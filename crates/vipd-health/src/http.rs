//! HTTP(S) GET probe.
//!
//! One fresh TCP (and TLS) connection per probe, sent with
//! `Connection: close` and dropped after the status line: a health check
//! must never ride on a pooled connection that may be half dead (the
//! dead-connection failure of SPEC R6). Status 200–399 is up, as for a
//! Kubernetes `httpGet` probe; kube-vip accepts only 200, which for the
//! apiserver's `/livez` (200 or 500) makes no difference.
//!
//! TLS mirrors kube-vip's `newHealthCheckHTTPClient`: verification is always
//! on; the trust store is the system's, plus the PEM file of
//! `control_plane_health_check_ca_path` when given. There is no "insecure"
//! mode. The CA file is read once, when the probe is built, so a missing or
//! empty file is a configuration error at start-up (kube-vip fails its init
//! the same way).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::spec::HttpProbe;
use crate::{BuildError, ProbeError};

/// System CA bundles, first readable one wins (`SSL_CERT_FILE` first, as
/// OpenSSL and Go's crypto/x509 honour it).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",             // openSUSE
    "/etc/ssl/cert.pem",                  // Alpine (LibreSSL), macOS
];

/// A ready-to-run HTTP(S) probe (TLS configuration built once).
#[derive(Clone)]
pub struct HttpProber {
    url: Uri,
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for HttpProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProber")
            .field("url", &self.url)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl HttpProber {
    /// Builds the prober; reads the CA file now.
    pub fn new(spec: &HttpProbe) -> Result<Self, BuildError> {
        let url = spec.url.clone();
        let raw_host = url.host().unwrap_or_default();
        // `Uri::host` keeps the brackets of an IPv6 literal.
        let host = raw_host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(raw_host)
            .to_string();
        let tls_wanted = spec.is_tls();
        let port = url.port_u16().unwrap_or(if tls_wanted { 443 } else { 80 });
        let tls = if tls_wanted {
            let config = client_config(spec.ca_path.as_deref(), &spec.extra_roots)?;
            let name = spec.server_name.clone().unwrap_or_else(|| host.clone());
            let server_name =
                ServerName::try_from(name.clone()).map_err(|_| BuildError::ServerName { name })?;
            Some((TlsConnector::from(Arc::new(config)), server_name))
        } else {
            None
        };
        Ok(HttpProber {
            url,
            host,
            port,
            tls,
        })
    }

    /// Runs one GET; `Ok(status)` for 200–399. The caller bounds it with
    /// the check's timeout.
    pub async fn probe(&self) -> Result<u16, ProbeError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(ProbeError::Connect)?;
        let status = match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(ProbeError::Tls)?;
                self.get(tls).await?
            }
            None => self.get(tcp).await?,
        };
        if (200..400).contains(&status) {
            Ok(status)
        } else {
            Err(ProbeError::Status(status))
        }
    }

    async fn get<IO>(&self, io: IO) -> Result<u16, ProbeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
                .await
                .map_err(ProbeError::Http)?;
        let path = self
            .url
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let authority = self
            .url
            .authority()
            .map_or_else(|| self.host.clone(), |a| a.as_str().to_string());
        let req = Request::get(path)
            .header(header::HOST, authority)
            .header(header::CONNECTION, "close")
            .header(header::USER_AGENT, "vipd-health")
            .header(header::ACCEPT, "*/*")
            .body(Empty::<Bytes>::new())
            .map_err(|e| ProbeError::Request(e.to_string()))?;
        // Drive the connection in this future instead of a spawned task:
        // nothing outlives the probe, and dropping it closes the socket.
        let response = sender.send_request(req);
        tokio::pin!(response, conn);
        let result = tokio::select! {
            biased;
            r = &mut response => r,
            // The connection can finish (server closed after answering) in
            // the same poll that delivered the response: collect it now;
            // if it never came, the response future fails.
            r = &mut conn => match r {
                Ok(()) => response.await,
                Err(e) => Err(e),
            },
        };
        result
            .map(|resp| resp.status().as_u16())
            .map_err(ProbeError::Http)
    }
}

/// rustls client config: system roots plus `ca_path`, ring provider
/// (selected explicitly so a second provider in the build cannot make the
/// process-default lookup fail).
fn client_config(ca_path: Option<&Path>, extra: &[Vec<u8>]) -> Result<ClientConfig, BuildError> {
    let mut roots = RootCertStore::empty();
    let env_bundle = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let system = env_bundle
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
        .find_map(|p| read_pem_certs(&p).ok().filter(|c| !c.is_empty()));
    if let Some(certs) = system {
        // Unparseable entries in a system bundle are skipped, like Go's
        // AppendCertsFromPEM does.
        roots.add_parsable_certificates(certs);
    }
    if let Some(path) = ca_path {
        let certs = read_pem_certs(path).map_err(|source| BuildError::CaFile {
            path: path.to_path_buf(),
            source,
        })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(BuildError::NoCertificates {
                path: path.to_path_buf(),
            });
        }
    }
    roots.add_parsable_certificates(extra.iter().map(|d| CertificateDer::from(d.clone())));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(BuildError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_pem_certs(path: &Path) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let file = std::fs::File::open(path)?;
    let mut reader = std::io::BufReader::new(file);
    rustls_pemfile::certs(&mut reader).collect()
}
