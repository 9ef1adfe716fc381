//! Discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`) in the
//! legacy (non-aggregated) format, generated from the resource table.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::api::errors::{ApiError, json_response};
use crate::api::resources::{RESOURCES, Resource, groups};

pub async fn api_versions(State(_state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }),
    )
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub async fn api_groups(State(_state): State<Arc<AppState>>) -> Response {
    let groups: Vec<Value> = groups().into_iter().map(|(g, v)| group_json(g, v)).collect();
    json_response(StatusCode::OK, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
}

/// `/apis/{group}`.
pub fn api_group(group: &str) -> Result<Response, ApiError> {
    let (g, v) = groups().into_iter().find(|(g, _)| *g == group).ok_or_else(ApiError::path_not_found)?;
    let mut doc = group_json(g, v);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Ok(json_response(StatusCode::OK, &doc))
}

const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn entry(res: &Resource, name: String, kind: &str, verbs: &[&str], main: bool) -> Value {
    let mut e = json!({
        "name": name,
        "singularName": if main { res.singular } else { "" },
        "namespaced": res.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if main {
        if !res.short_names.is_empty() {
            e["shortNames"] = json!(res.short_names);
        }
        if res.all {
            e["categories"] = json!(["all"]);
        }
    }
    if kind == "Scale" {
        e["group"] = json!("autoscaling");
        e["version"] = json!("v1");
    }
    e
}

/// `/api/v1` or `/apis/{group}/{version}`: the resources and their subresources.
pub fn resource_list(group: &str, version: &str) -> Result<Response, ApiError> {
    let mut list = Vec::new();
    for res in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        list.push(entry(res, res.plural.to_string(), res.kind, VERBS, true));
        if res.status {
            list.push(entry(res, format!("{}/status", res.plural), res.kind, &["get", "patch", "update"], false));
        }
        if res.scale {
            list.push(entry(res, format!("{}/scale", res.plural), "Scale", &["get", "patch", "update"], false));
        }
        match (res.group, res.plural) {
            ("", "pods") => {
                list.push(entry(res, "pods/binding".into(), "Binding", &["create"], false));
                list.push(entry(res, "pods/log".into(), "Pod", &["get"], false));
                list.push(entry(res, "pods/exec".into(), "PodExecOptions", &["create", "get"], false));
            }
            ("", "namespaces") => {
                list.push(entry(res, "namespaces/finalize".into(), "Namespace", &["update"], false));
            }
            _ => {}
        }
    }
    if list.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    ))
}

/// `/openapi/v3`: the index of per-group-version documents, as kubectl's OpenAPI v3 client reads it.
pub async fn openapi_v3_root() -> Response {
    let mut paths = serde_json::Map::new();
    paths.insert("api/v1".into(), json!({"serverRelativeURL": "/openapi/v3/api/v1"}));
    for (group, version) in groups() {
        let gv = format!("apis/{group}/{version}");
        paths.insert(gv.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{gv}")}));
    }
    json_response(StatusCode::OK, &json!({"paths": paths}))
}

/// `/openapi/v3/api/v1` and `/openapi/v3/apis/{group}/{version}`: a minimal document that declares, for
/// every resource, the PATCH operation with its group-version-kind and the `fieldValidation` parameter.
/// That is what kubectl looks for to decide that validation is done server-side (so it does not
/// download schemas to validate client-side). Full schemas come with issue 3 of 5.
pub fn openapi_v3_doc(group: &str, version: &str) -> Result<Response, ApiError> {
    let mut paths = serde_json::Map::new();
    for res in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        let base = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
        let path = if res.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", res.plural)
        } else {
            format!("{base}/{}/{{name}}", res.plural)
        };
        let op = json!({
            "operationId": format!("patch{}", res.kind),
            "parameters": [
                {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            ],
            "responses": {"200": {"description": "OK"}},
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": {"group": res.group, "version": res.version, "kind": res.kind},
        });
        let mut post = op.clone();
        post["operationId"] = json!(format!("create{}", res.kind));
        post["x-kubernetes-action"] = json!("post");
        paths.insert(path, json!({"patch": op, "put": post.clone()}));
    }
    if paths.is_empty() {
        return Err(ApiError::path_not_found());
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": crate::api::GIT_VERSION},
            "paths": paths,
            "components": {"schemas": {}},
        }),
    ))
}

/// `/openapi/v3/...` sub-documents.
pub async fn openapi_v3_sub(req: axum::extract::Request) -> Response {
    let path = req.uri().path().trim_start_matches("/openapi/v3/").to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let result = match segs.as_slice() {
        ["api", version] => openapi_v3_doc("", version),
        ["apis", group, version] => openapi_v3_doc(group, version),
        _ => Err(ApiError::path_not_found()),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// No OpenAPI v2 document (issue 3 of 5); kubectl uses v3.
pub async fn openapi_missing() -> Response {
    ApiError::path_not_found().into_response()
}
