//! TLS for the API server: the rustls server config (ring provider; client certificates optional but,
//! when presented, verified against the cluster CA), the client config for talking to node agents, and
//! the accept loop that serves axum over HTTP/1.1 and h2 with upgrades (exec WebSockets).

use std::future::Future;
use std::sync::Arc;

use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::auth::ConnInfo;

/// Errors while building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("bad PEM ({what}): {message}")]
    Pem { what: &'static str, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn parse_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem { what, message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Pem { what, message: "no certificate found".into() });
    }
    Ok(certs)
}

pub fn parse_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| TlsError::Pem { what, message: e.to_string() })?
        .ok_or(TlsError::Pem { what, message: "no private key found".into() })
}

pub fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(ca_pem, "cluster CA")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// The API server's TLS config: serving cert, optional client certs from the cluster CA, ALPN h2 and
/// http/1.1.
pub fn server_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(parse_certs(cert_pem, "server certificate")?, parse_key(key_pem, "server key")?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client config that trusts the cluster CA and presents the given client certificate (the API server
/// talking to node agents).
pub fn client_config(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(parse_certs(cert_pem, "client certificate")?, parse_key(key_pem, "client key")?)?;
    Ok(Arc::new(config))
}

/// Accepts TLS connections on `listener` and serves `app` on each until `shutdown` completes.
pub async fn serve(listener: TcpListener, tls: Arc<ServerConfig>, app: Router, shutdown: impl Future<Output = ()>) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // EMFILE and the like: keep serving the connections we have, retry shortly.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(tcp).await {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
            };
            let conn = ConnInfo::from_handshake(peer, stream.get_ref().1.peer_certificates());
            let service = TowerToHyperService::new(app.layer(Extension(conn)));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
}
