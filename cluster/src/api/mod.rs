//! The Kubernetes-compatible API server (HTTPS, port 6443 by default). Owned by the API work stream.
//!
//! Layout: `tls.rs` (rustls configs and the accept loop: HTTP/1.1 and h2 over TLS, upgrades for exec),
//! `auth.rs` (client certificate or bearer token on every request but the public ones), `resources.rs`
//! (the table of served resources), `registry.rs` (object semantics over the store: create, update,
//! delete, defaulting, allocation), `handlers/` (REST routing, discovery, subresources), `watch.rs`
//! (streaming watches), `selectors.rs`, `defaults.rs`, `errors.rs` (metav1 Status). `table.rs` (server-side
//! Table printing) and `proxy.rs` (logs and exec proxied to node agents) belong to the kubectl work stream.

pub mod auth;
pub mod authz;
pub mod defaults;
pub mod errors;
mod handlers;
mod images;
pub mod join;
pub mod openapi;
pub mod protobuf;
pub mod proxy;
pub mod registry;
pub mod resources;
pub mod selectors;
pub mod stored;
pub mod strategic;
pub mod table;
pub mod tls;
pub mod validation;
pub mod watch;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};

pub use errors::ApiError;

use crate::store::WatchedStore;

/// The Kubernetes version this server reports (kubectl on these machines picks its binary by the minor).
pub const GIT_VERSION: &str = "v1.33.5+flotilla";

/// Largest accepted request body (kube-apiserver's limit is 3 MiB too).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// What every handler shares.
pub struct AppState {
    /// The store, with its watch fan-out.
    pub store: Arc<WatchedStore>,
    /// PEM of the cluster CA (served at `/cacerts`).
    pub ca_pem: String,
    /// The secret accepted as an admin bearer token.
    pub token_secret: String,
    /// TLS client config for talking to node agents (kubelet port): trusts the cluster CA and presents
    /// the apiserver-kubelet-client certificate.
    pub kubelet_tls: Arc<rustls::ClientConfig>,
    /// Serialises cluster IP and node port allocation.
    pub(crate) alloc_lock: tokio::sync::Mutex<()>,
    /// The cluster CA with its key, to issue joining agents their node certificates ([`join`]); `None`
    /// in a server that cannot sign.
    pub node_ca: Option<Arc<crate::pki::ClusterCa>>,
    /// The image archives this server feeds to agents (`/v1-flotilla/images`); `None`: not served.
    pub images: Option<Arc<crate::images::ImageStore>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(
        store: Arc<WatchedStore>,
        ca_pem: String,
        token_secret: String,
        kubelet_tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            store,
            ca_pem,
            token_secret,
            kubelet_tls,
            alloc_lock: tokio::sync::Mutex::new(()),
            node_ca: None,
            images: None,
        }
    }

    /// Lets this server take image uploads and feed them to agents.
    pub fn with_images(mut self, images: Arc<crate::images::ImageStore>) -> Self {
        self.images = Some(images);
        self
    }

    /// Lets this server issue node credentials to joining agents.
    pub fn with_node_ca(mut self, ca: Arc<crate::pki::ClusterCa>) -> Self {
        self.node_ca = Some(ca);
        self
    }

    /// One object of a core or named-group resource found by its plural (e.g. "pods", "nodes"), with its
    /// resourceVersion set; `namespace` is ignored for cluster-scoped resources.
    pub async fn get_object(
        &self,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let res = resources::RESOURCES.iter().find(|r| r.plural == plural).ok_or_else(ApiError::path_not_found)?;
        Ok(self.get_obj(res, namespace, name).await?.0)
    }
}

/// The router of the whole API: public endpoints, discovery and REST, behind authentication.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(handlers::ok_text))
        .route("/livez", get(handlers::ok_text))
        .route("/readyz", get(handlers::ok_text))
        .route("/version", get(handlers::version))
        .route("/cacerts", get(handlers::cacerts))
        .route("/v1-flotilla/node-credentials", axum::routing::post(join::node_credentials))
        .route("/v1-flotilla/images", get(images::list).post(images::upload))
        .route("/api", get(handlers::discovery::api_versions))
        .route("/apis", get(handlers::discovery::api_groups))
        .route("/apis/authentication.k8s.io", get(auth::authentication_group))
        .route("/apis/authentication.k8s.io/v1", get(auth::authentication_resources))
        .route("/apis/authentication.k8s.io/v1/selfsubjectreviews", any(auth::self_subject_review))
        .route("/api/{*rest}", any(handlers::api_entry))
        .route("/apis/{*rest}", any(handlers::apis_entry))
        .route("/openapi/v2", get(openapi::v2))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/{*rest}", get(openapi::group_version))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .with_state(state)
}
