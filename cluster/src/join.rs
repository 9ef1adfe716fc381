//! Joining a node to a cluster with a k3s-style token: `K10<sha256 of the CA PEM>::server:<secret>`.
//!
//! The agent does not trust the server yet, so it first fetches `/cacerts` over an unverified TLS
//! connection and accepts the CA only if its SHA-256 is the hash the token pins (k3s's scheme: the token
//! is the trust anchor). Then, verifying the server against that CA, it asks for its node certificate
//! with the token's secret ([`crate::api::join`]) and writes a kubeconfig with it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::api::join::{CredentialRequest, Credentials};
use crate::pki::{self, CertPair};

/// How long each request to the server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "the token is not a cluster join token (expected K10<ca-hash>::server:<secret>, as in the server's \
         <data-dir>/token)"
    )]
    BadToken,
    #[error("--server {0:?} is not an https:// URL (e.g. https://10.0.0.1:6443)")]
    BadUrl(String),
    #[error("cannot reach the server at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error(
        "the server's CA certificate (sha256 {found}) is not the one the token pins ({pinned}): check that \
         --server is the cluster the token came from, and copy the token again from the server's <data-dir>/token"
    )]
    CaMismatch { found: String, pinned: String },
    #[error("the server refused to issue node credentials ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("{0}")]
    Pki(#[from] pki::PkiError),
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Hex SHA-256 of the cluster CA's PEM.
    pub ca_hash: String,
    pub secret: String,
}

impl std::str::FromStr for Token {
    type Err = JoinError;

    fn from_str(s: &str) -> Result<Self, JoinError> {
        let (prefix, secret) = s.trim().rsplit_once("::server:").ok_or(JoinError::BadToken)?;
        let ca_hash = prefix.strip_prefix("K10").ok_or(JoinError::BadToken)?;
        if ca_hash.len() != 64 || !ca_hash.bytes().all(|b| b.is_ascii_hexdigit()) || secret.is_empty() {
            return Err(JoinError::BadToken);
        }
        Ok(Token { ca_hash: ca_hash.to_ascii_lowercase(), secret: secret.to_string() })
    }
}

/// What joining leaves in the agent's data dir.
#[derive(Debug)]
pub struct Joined {
    pub ca_pem: String,
    pub node: CertPair,
    /// The node's kubeconfig (its own certificate), for the agent's client.
    pub kubeconfig: PathBuf,
}

/// Joins `node_name` (answering on `node_ips`) to the cluster at `server` (`https://host:port`).
pub async fn join(
    server: &str,
    token: &Token,
    node_name: &str,
    node_ips: &[IpAddr],
    data_dir: &Path,
) -> Result<Joined, JoinError> {
    let authority = server
        .strip_prefix("https://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| JoinError::BadUrl(server.to_string()))?;
    let unreachable =
        |e: &dyn std::fmt::Display| JoinError::Unreachable { url: server.to_string(), message: e.to_string() };

    // 1. The CA, trusted only because the token pins its hash.
    let blind = rustls_config(None).map_err(|e| unreachable(&e))?;
    let (status, ca_pem) =
        request(&blind, authority, "GET", "/cacerts", None, None).await.map_err(|e| unreachable(&e))?;
    if status != 200 {
        return Err(unreachable(&format!("GET /cacerts answered {status}")));
    }
    let found = hex(&Sha256::digest(ca_pem.as_bytes()));
    if found != token.ca_hash {
        return Err(JoinError::CaMismatch { found, pinned: token.ca_hash.clone() });
    }

    // 2. The node's certificate, over a connection verified against that CA.
    let verified = rustls_config(Some(&ca_pem)).map_err(|e| unreachable(&e))?;
    let body = serde_json::to_vec(&CredentialRequest { node_name: node_name.to_string(), node_ips: node_ips.to_vec() })
        .unwrap_or_default();
    let (status, answer) =
        request(&verified, authority, "POST", "/v1-flotilla/node-credentials", Some(&token.secret), Some(body))
            .await
            .map_err(|e| unreachable(&e))?;
    if status != 200 {
        let message = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(answer);
        return Err(JoinError::Refused { status, message });
    }
    let creds: Credentials = serde_json::from_str(&answer)
        .map_err(|e| JoinError::Refused { status, message: format!("unreadable answer: {e}") })?;
    if creds.ca_cert != ca_pem {
        return Err(JoinError::CaMismatch { found: hex(&Sha256::digest(creds.ca_cert.as_bytes())), pinned: found });
    }

    std::fs::create_dir_all(data_dir).map_err(|source| pki::PkiError::Io { path: data_dir.to_path_buf(), source })?;
    let node = CertPair { cert_pem: creds.cert, key_pem: creds.key };
    let kubeconfig = data_dir.join("kubeconfig.yaml");
    pki::write_private(&kubeconfig, &pki::kubeconfig(server, &ca_pem, &format!("system:node:{node_name}"), &node))?;
    Ok(Joined { ca_pem, node, kubeconfig })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// TLS to the server: verified against `ca_pem`, or (for `/cacerts` only) not verified at all.
fn rustls_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedLater(provider))).with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any server certificate: used only to download the CA, whose hash is then checked against the
/// token (the signatures of the handshake are still verified).
#[derive(Debug)]
struct PinnedLater(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinnedLater {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One HTTP/1.1 request over a fresh TLS connection; returns the status and the body as text.
async fn request(
    tls: &Arc<rustls::ClientConfig>,
    authority: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<Vec<u8>>,
) -> Result<(u16, String), String> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(authority).await.map_err(|e| e.to_string())?;
        let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let stream =
            tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = axum::http::Request::builder().method(method).uri(path).header("host", authority);
        if let Some(secret) = bearer {
            req = req.header("authorization", format!("Bearer {secret}"));
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(body.map(Body::from).unwrap_or_else(Body::empty)).map_err(|e| e.to_string())?;
        let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), 1 << 20).await.map_err(|e| e.to_string())?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work).await.map_err(|_| "timed out".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_like_k3s() {
        let hash = "ab".repeat(32);
        let t: Token = format!("K10{hash}::server:s3cret\n").parse().unwrap();
        assert_eq!(t, Token { ca_hash: hash.clone(), secret: "s3cret".into() });
        for bad in ["s3cret", "K10abc::server:x", &format!("{hash}::server:x"), &format!("K10{hash}::server:")] {
            assert!(bad.parse::<Token>().is_err(), "{bad}");
        }
    }
}
