//! Authentication: every request needs a client certificate signed by the cluster CA (checked by rustls
//! during the handshake; the accept loop records whether one was presented) or the admin bearer token,
//! except the public endpoints kube-apiserver also leaves open to probes and bootstrapping agents.
//! Every authenticated caller is an administrator for now (no RBAC in this issue).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::errors::ApiError;

/// What the TLS layer learnt about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client presented a certificate that chains to the cluster CA.
    pub client_cert: bool,
}

const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/cacerts"];

/// Middleware: 401 Status unless the request is authenticated or public.
pub async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if PUBLIC_PATHS.iter().any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))) {
        return next.run(req).await;
    }
    let by_cert = req.extensions().get::<ConnInfo>().is_some_and(|c| c.client_cert);
    let by_token = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|token| constant_time_eq(token.trim().as_bytes(), state.token_secret.as_bytes()));
    if by_cert || by_token { next.run(req).await } else { ApiError::unauthorized().into_response() }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
