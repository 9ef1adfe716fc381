//! REST routing: parses `/api/v1/...` and `/apis/{group}/{version}/...` paths into a resource, namespace,
//! name and subresource, and dispatches on the method to the object handlers, discovery, watches and the
//! pod subresources (log and exec go to the kubelet proxy).

pub mod discovery;
mod objects;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::errors::{ApiError, ApiResult, json_response};
use super::resources::{self, Resource};

pub async fn ok_text() -> &'static str {
    "ok"
}

pub async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "33",
            "gitVersion": super::GIT_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2026-11-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": format!("linux/{}", if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" }),
        }),
    )
}

pub async fn cacerts(State(state): State<Arc<AppState>>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "text/plain")], state.ca_pem.clone()).into_response()
}

pub async fn not_found() -> Response {
    ApiError::path_not_found().into_response()
}

/// A parsed resource path.
#[derive(Debug)]
pub struct Target {
    pub res: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// `/api/...`: `v1` then the resource path.
pub async fn api_entry(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches("/api").to_string();
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let result = match segs.as_slice() {
        [v] if v == "v1" && req.method() == Method::GET => discovery::resource_list("", "v1"),
        [v, rest @ ..] if v == "v1" => match parse_target("", "v1", rest) {
            Some(target) => dispatch(state, target, req).await,
            None => Err(ApiError::path_not_found()),
        },
        _ => Err(ApiError::path_not_found()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `/apis/...`: group, version, then the resource path.
pub async fn apis_entry(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches("/apis").to_string();
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let result = match segs.as_slice() {
        [group] if req.method() == Method::GET => discovery::api_group(group),
        [group, version] if req.method() == Method::GET => discovery::resource_list(group, version),
        [group, version, rest @ ..] => match parse_target(group, version, rest) {
            Some(target) => dispatch(state, target, req).await,
            None => Err(ApiError::path_not_found()),
        },
        _ => Err(ApiError::path_not_found()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `[plural]`, `[plural, name]`, `[plural, name, sub]`, `[namespaces, ns, plural, ...]`.
fn parse_target(group: &str, version: &str, segs: &[String]) -> Option<Target> {
    let namespaced_path = segs.len() >= 3
        && segs[0] == "namespaces"
        && !(segs.len() == 3 && group.is_empty() && matches!(segs[2].as_str(), "status" | "finalize"));
    let (namespace, rest) = if namespaced_path { (Some(segs[1].clone()), &segs[2..]) } else { (None, segs) };
    let res = resources::find(group, version, rest.first()?)?;
    if namespace.is_some() && !res.namespaced {
        return None;
    }
    if namespace.is_none() && res.namespaced && rest.len() > 1 {
        return None;
    }
    match rest.len() {
        1 => Some(Target { res, namespace, name: None, subresource: None }),
        2 => Some(Target { res, namespace, name: Some(rest[1].clone()), subresource: None }),
        3 => Some(Target { res, namespace, name: Some(rest[1].clone()), subresource: Some(rest[2].clone()) }),
        _ => None,
    }
}

/// The query string as a map (last value wins; repeated keys matter only for exec, which reads the raw query).
pub fn query_map(req: &Request) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default()
}

async fn dispatch(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    crate::api::protobuf::check_accept(req.headers())?;
    let method = req.method().clone();
    let sub = target.subresource.clone();
    match (target.name.is_some(), sub.as_deref(), method) {
        (false, None, Method::GET) => objects::list_or_watch(state, target, req).await,
        (false, None, Method::POST) => objects::create(state, target, req).await,
        (false, None, Method::DELETE) => objects::delete_collection(state, target, req).await,
        (true, None, Method::GET) => objects::get(state, target, req).await,
        (true, None, Method::PUT) => objects::update(state, target, req).await,
        (true, None, Method::PATCH) => objects::patch(state, target, req).await,
        (true, None, Method::DELETE) => objects::delete(state, target, req).await,
        (true, Some("status"), Method::GET) if target.res.status => objects::get(state, target, req).await,
        (true, Some("status"), Method::PUT) if target.res.status => objects::update(state, target, req).await,
        (true, Some("status"), Method::PATCH) if target.res.status => objects::patch(state, target, req).await,
        (true, Some("scale"), Method::GET) if target.res.scale => objects::get_scale(state, target).await,
        (true, Some("scale"), Method::PUT | Method::PATCH) if target.res.scale => {
            objects::update_scale(state, target, req).await
        }
        (true, Some("finalize"), Method::PUT) if target.res.kind == "Namespace" => {
            objects::update(state, target, req).await
        }
        (true, Some("binding"), Method::POST) if target.res.kind == "Pod" => objects::bind(state, target, req).await,
        (true, Some("eviction"), Method::POST) if target.res.kind == "Pod" => objects::evict(state, target, req).await,
        (true, Some("log"), Method::GET) if target.res.kind == "Pod" => Ok(pod_log(state, target, req).await),
        (true, Some("exec" | "attach"), Method::GET | Method::POST) if target.res.kind == "Pod" => {
            Ok(pod_exec(state, target, req).await)
        }
        (true, Some("portforward"), Method::GET | Method::POST) if target.res.kind == "Pod" => {
            let (ns, name) = (target.namespace.unwrap_or_default(), target.name.unwrap_or_default());
            Ok(super::proxy::pod_port_forward(state, ns, name, req).await)
        }
        (_, Some(_), _) | (false, _, _) => Err(ApiError::path_not_found()),
        (true, None, _) => Err(ApiError::method_not_allowed()),
    }
}

async fn pod_log(state: Arc<AppState>, target: Target, req: Request) -> Response {
    let query = req.uri().query().map(str::to_string);
    let (ns, name) = (target.namespace.unwrap_or_default(), target.name.unwrap_or_default());
    super::proxy::pod_log(state, ns, name, query).await
}

async fn pod_exec(state: Arc<AppState>, target: Target, req: Request) -> Response {
    let query = req.uri().query().map(str::to_string);
    let (ns, name) = (target.namespace.unwrap_or_default(), target.name.unwrap_or_default());
    super::proxy::pod_exec(state, ns, name, query, req).await
}
