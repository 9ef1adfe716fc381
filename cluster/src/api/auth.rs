//! Authentication: every request needs a client certificate signed by the cluster CA (checked by rustls
//! during the handshake) or the admin bearer token, except the public endpoints kube-apiserver also leaves
//! open to probes and bootstrapping agents (`/healthz`, `/livez`, `/readyz`, `/version`, `/cacerts`).
//!
//! Who the caller is follows kube-apiserver's x509 authenticator: the certificate's Common Name is the user
//! name and its Organizations are the groups; the bearer token (the join token's secret) is the cluster
//! administrator. Every authenticated user also gets the group `system:authenticated`. The identity is put
//! into the request's extensions as a [`UserInfo`], where `authz.rs` (NodeRestriction) and the
//! SelfSubjectReview handler (`kubectl auth whoami`) read it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::pki_types::CertificateDer;
use serde_json::json;

use super::AppState;
use super::errors::{ApiError, json_response};

/// What the TLS layer learnt about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The user named by the client certificate, when one was presented (rustls has already checked that
    /// it chains to the cluster CA) and it names a user.
    pub user: Option<UserInfo>,
}

impl ConnInfo {
    /// The connection's identity from the certificates the client presented in the handshake.
    pub fn from_handshake(peer: SocketAddr, certs: Option<&[CertificateDer<'_>]>) -> Self {
        let user = certs.and_then(|certs| certs.first()).and_then(|leaf| user_from_cert(leaf.as_ref()));
        Self { peer, user }
    }
}

/// An authenticated user, as kube-apiserver's `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub username: String,
    pub groups: Vec<String>,
}

/// The user the bearer token stands for.
pub const ADMIN_USER: &str = "system:admin";
/// The group kube-apiserver's default RBAC binds to cluster-admin.
pub const MASTERS_GROUP: &str = "system:masters";
/// The group of node agents (kubelets).
pub const NODES_GROUP: &str = "system:nodes";
const AUTHENTICATED_GROUP: &str = "system:authenticated";

impl UserInfo {
    fn new(username: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
        Self { username, groups }
    }

    /// The node this user is the agent of (`system:node:<name>` in group `system:nodes`), as kube's
    /// node identifier decides it.
    pub fn node_name(&self) -> Option<&str> {
        let name = self.username.strip_prefix("system:node:")?;
        (!name.is_empty() && self.groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
    }
}

/// CN → user, O → groups; None when the certificate does not parse or has no Common Name (kube-apiserver
/// refuses those too).
fn user_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let username = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    if username.is_empty() {
        return None;
    }
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some(UserInfo::new(username, groups))
}

const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/cacerts"];

/// Middleware: 401 Status unless the request is authenticated or public; then authorization (403 Status
/// when a node agent reaches beyond its own node). The identity goes into the request's extensions.
pub async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if PUBLIC_PATHS.iter().any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))) {
        return next.run(req).await;
    }
    let by_cert = req.extensions().get::<ConnInfo>().and_then(|c| c.user.clone());
    let user = by_cert.or_else(|| {
        let token = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))?;
        constant_time_eq(token.trim().as_bytes(), state.token_secret.as_bytes())
            .then(|| UserInfo::new(ADMIN_USER.to_string(), vec![MASTERS_GROUP.to_string()]))
    });
    let Some(user) = user else { return ApiError::unauthorized().into_response() };
    let mut req = match super::authz::authorize(&state, &user, req).await {
        Ok(req) => req,
        Err(err) => return err.into_response(),
    };
    req.extensions_mut().insert(user);
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`): the caller's own
/// identity, as kube-apiserver answers it.
pub async fn self_subject_review(req: Request) -> Response {
    if req.method() != axum::http::Method::POST {
        return ApiError::method_not_allowed().into_response();
    }
    let Some(user) = req.extensions().get::<UserInfo>().cloned() else {
        return ApiError::unauthorized().into_response();
    };
    let created = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    json_response(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": created},
            "status": {"userInfo": {"username": user.username, "groups": user.groups}},
        }),
    )
}

/// `/apis/authentication.k8s.io/v1`: the discovery document kubectl reads before `auth whoami`.
pub async fn authentication_resources() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": "authentication.k8s.io/v1",
            "resources": [{
                "name": "selfsubjectreviews",
                "singularName": "selfsubjectreview",
                "namespaced": false,
                "kind": "SelfSubjectReview",
                "verbs": ["create"],
            }],
        }),
    )
}

/// `/apis/authentication.k8s.io`.
pub async fn authentication_group() -> Response {
    let mut doc = authentication_group_json();
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    json_response(StatusCode::OK, &doc)
}

/// The authentication group's entry in `/apis`.
pub fn authentication_group_json() -> serde_json::Value {
    let gv = json!({"groupVersion": "authentication.k8s.io/v1", "version": "v1"});
    json!({"name": "authentication.k8s.io", "versions": [gv.clone()], "preferredVersion": gv})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_subject_names_user_and_groups() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = crate::pki::ClusterCa::load_or_create(dir.path()).expect("ca");
        let pair = ca.issue("system:node:n1", Some("system:nodes"), &[], &[], false, true).expect("cert");
        let der = crate::api::tls::parse_certs(&pair.cert_pem, "test").expect("pem");
        let user = user_from_cert(der[0].as_ref()).expect("a user");
        assert_eq!(user.username, "system:node:n1");
        assert_eq!(user.groups, vec!["system:nodes".to_string(), "system:authenticated".to_string()]);
        assert_eq!(user.node_name(), Some("n1"));
    }

    #[test]
    fn node_name_needs_the_nodes_group() {
        let user = UserInfo::new("system:node:n1".into(), vec!["other".into()]);
        assert_eq!(user.node_name(), None);
        let admin = UserInfo::new(ADMIN_USER.into(), vec![MASTERS_GROUP.into()]);
        assert_eq!(admin.node_name(), None);
    }
}
