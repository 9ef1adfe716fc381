//! `POST /v1-flotilla/node-credentials`: how a node agent started with `flotilla agent --token` gets its
//! certificate, as a k3s agent gets `client-kubelet.crt` from its server.
//!
//! The caller proves it holds the join token (the bearer secret, which the authentication middleware has
//! already checked: only the token and admin certificates reach this handler with `system:masters`). The
//! answer is a certificate for `system:node:<name>` in `system:nodes`, valid both as the agent's client
//! certificate (so NodeRestriction confines it to its own Node, Lease and pods) and as the serving
//! certificate of its kubelet port (SANs: the node's name and addresses), plus the CA to trust.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{MASTERS_GROUP, UserInfo};
use super::errors::{ApiError, json_response};

/// What the agent sends.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialRequest {
    pub node_name: String,
    /// The addresses the node's kubelet port answers on (the API server dials the first).
    pub node_ips: Vec<IpAddr>,
}

/// What the agent gets back (PEM).
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub ca_cert: String,
    pub cert: String,
    pub key: String,
}

/// Largest request body accepted (a name and a few addresses).
const BODY_LIMIT: usize = 16 * 1024;

pub async fn node_credentials(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match issue(&state, req).await {
        Ok(creds) => json_response(StatusCode::OK, &serde_json::to_value(creds).unwrap_or_default()),
        Err(e) => e.into_response(),
    }
}

async fn issue(state: &AppState, req: Request) -> Result<Credentials, ApiError> {
    let trusted = req.extensions().get::<UserInfo>().is_some_and(|u| u.groups.iter().any(|g| g == MASTERS_GROUP));
    if !trusted {
        return Err(ApiError::new(
            403,
            "Forbidden",
            "only the cluster's join token can request node credentials (flotilla agent --token)",
        ));
    }
    let Some(ca) = state.node_ca.as_ref() else {
        return Err(ApiError::bad_request("this server cannot issue node credentials (it has no CA key)"));
    };
    let body = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    let request: CredentialRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("a node credential request must be JSON: {e}")))?;
    let name = &request.node_name;
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        return Err(ApiError::bad_request(format!(
            "node name {name:?} is not a valid DNS subdomain (lowercase letters, digits, '-' and '.'): pass \
             --node-name"
        )));
    }
    let names = vec![name.clone(), "localhost".to_string()];
    let pair = ca
        .issue(&format!("system:node:{name}"), Some("system:nodes"), &names, &request.node_ips, true, true)
        .map_err(|e| ApiError::internal(format!("issuing node credentials: {e}")))?;
    tracing::info!(node = %name, ips = ?request.node_ips, "issued node credentials");
    Ok(Credentials { ca_cert: ca.cert_pem.clone(), cert: pair.cert_pem, key: pair.key_pem })
}
