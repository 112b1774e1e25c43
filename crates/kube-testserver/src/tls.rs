//! Certificates and kubeconfig for the test server: a throw-away CA and a
//! server certificate (rcgen, ring), so clients run the real TLS path.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

use crate::Error;

/// A generated CA and server certificate, PEM encoded.
#[derive(Debug, Clone)]
pub struct Certs {
    /// CA certificate (trust anchor for clients).
    pub ca_pem: String,
    /// Server certificate.
    pub cert_pem: String,
    /// Server private key (PKCS#8).
    pub key_pem: String,
}

impl Certs {
    /// Generates a CA and a server certificate valid for `ip`, 127.0.0.1, ::1
    /// and `localhost` (plus `extra` names or IPs).
    pub fn generate(ip: IpAddr, extra: &[String]) -> Result<Self, Error> {
        let tls = |e: rcgen::Error| Error::Tls(e.to_string());
        let ca_key = KeyPair::generate().map_err(tls)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "vipd-kube-testserver CA (TEST ONLY)");
        let ca_cert = ca.self_signed(&ca_key).map_err(tls)?;
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().map_err(tls)?;
        let mut names = vec!["localhost".to_string()];
        names.extend(extra.iter().cloned());
        let mut params = CertificateParams::new(names).map_err(tls)?;
        for a in [
            ip,
            IpAddr::from([127, 0, 0, 1]),
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ] {
            if !params.subject_alt_names.contains(&SanType::IpAddress(a)) {
                params.subject_alt_names.push(SanType::IpAddress(a));
            }
        }
        params
            .distinguished_name
            .push(DnType::CommonName, "vipd-kube-testserver (TEST ONLY)");
        let cert = params.signed_by(&key, &issuer).map_err(tls)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A rustls server config offering h2 and http/1.1 (ALPN).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        let certs = rustls_pemfile_certs(&self.cert_pem)?;
        let key = rustls::pki_types::PrivateKeyDer::try_from(
            pem_der(&self.key_pem, "PRIVATE KEY")
                .ok_or_else(|| Error::Tls("bad key pem".into()))?,
        )
        .map_err(|e| Error::Tls(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| Error::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// Writes `ca.crt`, `server.crt`, `server.key` and `kubeconfig` to `dir`.
    pub fn write(&self, dir: &Path, server_url: &str, token: &str) -> Result<(), Error> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("ca.crt"), &self.ca_pem)?;
        std::fs::write(dir.join("server.crt"), &self.cert_pem)?;
        std::fs::write(dir.join("server.key"), &self.key_pem)?;
        std::fs::write(dir.join("kubeconfig"), self.kubeconfig(server_url, token))?;
        Ok(())
    }

    /// A kubeconfig (YAML) pointing at `server_url`, trusting the CA, using `token`.
    pub fn kubeconfig(&self, server_url: &str, token: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "# kubeconfig of vipd-kube-testserver (TEST SERVER - not a Kubernetes API server)\n\
             apiVersion: v1\nkind: Config\nclusters:\n- name: testserver\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca}\n\
             users:\n- name: testserver\n  user:\n    token: {token}\n\
             contexts:\n- name: testserver\n  context:\n    cluster: testserver\n    user: testserver\n    namespace: kube-system\n\
             current-context: testserver\n"
        )
    }
}

/// Extracts the DER bytes of the first PEM block with this label.
fn pem_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = pem[start..].find(&end)? + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn rustls_pemfile_certs(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    let der =
        pem_der(pem, "CERTIFICATE").ok_or_else(|| Error::Tls("bad certificate pem".into()))?;
    Ok(vec![rustls::pki_types::CertificateDer::from(der)])
}
