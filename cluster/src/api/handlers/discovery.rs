//! Discovery documents (`/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`) in the
//! legacy (non-aggregated) format, generated from the resource table.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
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
    let mut groups: Vec<Value> = groups().into_iter().map(|(g, v)| group_json(g, v)).collect();
    groups.push(crate::api::auth::authentication_group_json());
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
                let mut eviction = entry(res, "pods/eviction".into(), "Eviction", &["create"], false);
                eviction["group"] = json!("policy");
                eviction["version"] = json!("v1");
                list.push(eviction);
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
