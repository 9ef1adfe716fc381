//! The object verbs over HTTP: get, list (and watch), create, update, patch, delete, deletecollection,
//! and the scale and binding subresources. Bodies are JSON (3 MiB at most); errors are Status objects.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Target, query_map};
use crate::api::errors::{ApiError, ApiResult, json_response};
use crate::api::registry::{DeleteOptions, ListOptions, Sub};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::watch::{self, WatchRequest};
use crate::api::{AppState, MAX_BODY_BYTES};

/// Reads the request body as JSON; 413 over the limit, 400 when it is not JSON.
async fn read_json(req: Request) -> ApiResult<Value> {
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let bytes = read_body(req).await?;
    if content_type.contains("protobuf") {
        return crate::api::protobuf::decode(&bytes);
    }
    if content_type.contains("cbor") {
        // client-go falls back to JSON after a 415 for CBOR.
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json (got {content_type})"
            ),
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

async fn read_body(req: Request) -> ApiResult<axum::body::Bytes> {
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is too large (the limit is {MAX_BODY_BYTES} bytes)"),
        )
    })
}

/// Whether the client asked for a server-side Table (`kubectl get`).
fn wants_table(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("as=Table"))
}

/// Renders objects as a meta.k8s.io/v1 Table when the client asked for one and the printer exists.
fn maybe_table(
    headers: &HeaderMap,
    target: &Target,
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
) -> Option<Value> {
    if !wants_table(headers) {
        return None;
    }
    Some(crate::api::table::to_table(target.res.group, target.res.plural, objects, list_meta, include_object))
}

fn ok(value: &Value) -> Response {
    json_response(StatusCode::OK, value)
}

fn name_of(target: &Target) -> &str {
    target.name.as_deref().unwrap_or_default()
}

pub async fn get(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let (obj, _) = state.get_obj(target.res, target.namespace.as_deref(), name_of(&target)).await?;
    let query = query_map(&req);
    let list_meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
    let include = query.get("includeObject").map(String::as_str).unwrap_or_default();
    if let Some(table) = maybe_table(req.headers(), &target, std::slice::from_ref(&obj), list_meta, include) {
        return Ok(ok(&table));
    }
    Ok(ok(&obj))
}

fn list_options(query: &std::collections::HashMap<String, String>) -> ApiResult<ListOptions> {
    Ok(ListOptions {
        labels: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or_default())?,
        fields: FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or_default())?,
        limit: match query.get("limit").filter(|s| !s.is_empty()) {
            Some(l) => match l.parse::<i64>() {
                Ok(n) if n > 0 => Some(n as usize),
                Ok(_) => None,
                Err(_) => return Err(ApiError::bad_request(format!("invalid limit: {l}"))),
            },
            None => None,
        },
        continue_token: query.get("continue").cloned(),
    })
}

pub async fn list_or_watch(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let query = query_map(&req);
    let opts = list_options(&query)?;
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let timeout = query.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).map(Duration::from_secs);
        let request = WatchRequest {
            namespace: target.namespace.clone(),
            labels: opts.labels,
            fields: opts.fields,
            resource_version: query.get("resourceVersion").cloned(),
            bookmarks: query.get("allowWatchBookmarks").is_some_and(|b| b == "true" || b == "1"),
            timeout,
            table: wants_table(req.headers()).then(|| query.get("includeObject").cloned().unwrap_or_default()),
        };
        return watch::watch(state, target.res, request).await;
    }
    let page = state.list_objs(target.res, target.namespace.as_deref(), &opts).await?;
    let mut list_meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        list_meta["continue"] = json!(token);
    }
    let include = query.get("includeObject").map(String::as_str).unwrap_or_default();
    if let Some(table) = maybe_table(req.headers(), &target, &page.items, list_meta.clone(), include) {
        return Ok(ok(&table));
    }
    Ok(ok(&json!({
        "kind": target.res.list_kind(),
        "apiVersion": target.res.api_version(),
        "metadata": list_meta,
        "items": page.items,
    })))
}

pub async fn create(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let dry_run = query_map(&req).get("dryRun").is_some_and(|d| d == "All");
    let body = read_json(req).await?;
    if dry_run {
        return Err(ApiError::bad_request("dryRun is not supported by this server yet"));
    }
    let created = state.create_obj(target.res, target.namespace.as_deref(), body).await?;
    Ok(json_response(StatusCode::CREATED, &created))
}

fn check_body_identity(target: &Target, body: &Value) -> ApiResult<()> {
    if let Some(name) = body.pointer("/metadata/name").and_then(Value::as_str)
        && name != name_of(target)
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            name_of(target)
        )));
    }
    if let (Some(ns), Some(url_ns)) = (body.pointer("/metadata/namespace").and_then(Value::as_str), &target.namespace)
        && !ns.is_empty()
        && ns != url_ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// The resourceVersion a request body names (a precondition for the write), if any. A JSON patch (an
/// array) names none.
fn rv_of(body: &Value) -> Option<String> {
    body.pointer("/metadata/resourceVersion").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string)
}

fn sub_of(target: &Target) -> Sub {
    match target.subresource.as_deref() {
        Some("status") => Sub::Status,
        Some("finalize") => Sub::Finalize,
        _ => Sub::Main,
    }
}

pub async fn update(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let body = read_json(req).await?;
    check_body_identity(&target, &body)?;
    let updated = state
        .update_with(target.res, target.namespace.as_deref(), name_of(&target), sub_of(&target), rv_of(&body), |_| {
            Ok(body.clone())
        })
        .await?;
    Ok(ok(&updated))
}

/// Removes strategic-merge-patch directives (`$patch`, `$setElementOrder/...`, `$retainKeys`, ...): the
/// patch is then applied as a JSON merge patch.
fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// The kinds of PATCH this server applies.
enum PatchKind {
    Merge,
    Json,
}

fn patch_kind(headers: &HeaderMap) -> ApiResult<PatchKind> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let ct = ct.split(';').next().unwrap_or_default().trim();
    match ct {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => Ok(PatchKind::Merge),
        "application/json-patch+json" => Ok(PatchKind::Json),
        other => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/strategic-merge-patch+json (got {other:?}; server-side apply is not supported yet)"
            ),
        )),
    }
}

/// Applies a patch body of `kind` to `current`.
fn apply_patch(current: &Value, kind: &PatchKind, patch: &Value) -> ApiResult<Value> {
    let mut doc = current.clone();
    match kind {
        PatchKind::Merge => {
            let mut patch = patch.clone();
            strip_directives(&mut patch);
            json_patch::merge(&mut doc, &patch);
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is not valid: {e}")))?;
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| ApiError::new(422, "Invalid", format!("the JSON patch could not be applied: {e}")))?;
        }
    }
    Ok(doc)
}

pub async fn patch(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let kind = patch_kind(req.headers())?;
    let body = read_json(req).await?;
    let sub = sub_of(&target);
    let name = name_of(&target).to_string();
    let updated = state
        .update_with(target.res, target.namespace.as_deref(), &name, sub, rv_of(&body), |current| {
            let patched = apply_patch(current, &kind, &body)?;
            check_body_identity(&target, &patched)?;
            Ok(patched)
        })
        .await?;
    Ok(ok(&updated))
}

/// DeleteOptions from the body (JSON) and the query (query wins where both give a value).
async fn delete_options(req: Request) -> ApiResult<DeleteOptions> {
    let query = query_map(&req);
    let bytes = read_body(req).await?;
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions are not valid JSON: {e}")))?
    };
    let mut opts = DeleteOptions {
        grace_period_seconds: body.get("gracePeriodSeconds").and_then(Value::as_i64),
        propagation_policy: body.get("propagationPolicy").and_then(Value::as_str).map(str::to_string),
        precondition_uid: body.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    if let Some(grace) = query.get("gracePeriodSeconds") {
        opts.grace_period_seconds =
            Some(grace.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {grace}")))?);
    }
    if let Some(policy) = query.get("propagationPolicy") {
        opts.propagation_policy = Some(policy.clone());
    }
    if let Some(policy) = &opts.propagation_policy
        && !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy {policy:?} is not one of Background, Foreground, Orphan"
        )));
    }
    Ok(opts)
}

pub async fn delete(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let opts = delete_options(req).await?;
    let obj = state.delete_obj(target.res, target.namespace.as_deref(), name_of(&target), &opts).await?;
    Ok(ok(&obj))
}

pub async fn delete_collection(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let query = query_map(&req);
    let mut list_opts = list_options(&query)?;
    list_opts.limit = None;
    list_opts.continue_token = None;
    let opts = delete_options(req).await?;
    let page = state.list_objs(target.res, target.namespace.as_deref(), &list_opts).await?;
    let mut deleted = Vec::new();
    for item in page.items {
        let ns = item.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_string);
        let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
        match state.delete_obj(target.res, ns.as_deref(), &name, &opts).await {
            Ok(obj) => deleted.push(obj),
            Err(err) if err.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(ok(&json!({
        "kind": target.res.list_kind(),
        "apiVersion": target.res.api_version(),
        "metadata": {"resourceVersion": page.revision.to_string()},
        "items": deleted,
    })))
}

/// The autoscaling/v1 Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

pub async fn get_scale(state: Arc<AppState>, target: Target) -> ApiResult<Response> {
    let (obj, _) = state.get_obj(target.res, target.namespace.as_deref(), name_of(&target)).await?;
    Ok(ok(&scale_of(&obj)))
}

pub async fn update_scale(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let is_patch = req.method() == axum::http::Method::PATCH;
    let kind = if is_patch { Some(patch_kind(req.headers())?) } else { None };
    let body = read_json(req).await?;
    let name = name_of(&target).to_string();
    let updated = state
        .update_with(target.res, target.namespace.as_deref(), &name, Sub::Any, rv_of(&body), |current| {
            let scale = match &kind {
                Some(kind) => apply_patch(&scale_of(current), kind, &body)?,
                None => body.clone(),
            };
            let replicas =
                scale.pointer("/spec/replicas").and_then(Value::as_i64).filter(|r| *r >= 0).ok_or_else(|| {
                    ApiError::invalid(
                        "Scale",
                        &name,
                        "spec.replicas: Invalid value: must be greater than or equal to 0",
                    )
                })?;
            let mut next = current.clone();
            next["spec"]["replicas"] = json!(replicas);
            Ok(next)
        })
        .await?;
    Ok(ok(&scale_of(&updated)))
}

/// `pods/{name}/binding`: sets `spec.nodeName` once, with the PodScheduled condition.
pub async fn bind(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let body = read_json(req).await?;
    let node = body
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("Binding", name_of(&target), "target.name: Required value"))?
        .to_string();
    let name = name_of(&target).to_string();
    state
        .update_with(target.res, target.namespace.as_deref(), &name, Sub::Any, None, |current| {
            if let Some(existing) = current.pointer("/spec/nodeName").and_then(Value::as_str).filter(|s| !s.is_empty())
            {
                return Err(ApiError::conflict_message(
                    "pods",
                    &name,
                    &format!("pod {name} is already assigned to node \"{existing}\""),
                ));
            }
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict_message(
                    "pods",
                    &name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            let mut next = current.clone();
            next["spec"]["nodeName"] = json!(node);
            if !next.get("status").is_some_and(Value::is_object) {
                next["status"] = json!({});
            }
            let mut conditions: Vec<Value> =
                next.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default();
            conditions.retain(|c| c["type"] != "PodScheduled");
            conditions.push(json!({
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": null,
                "lastTransitionTime": crate::api::registry::now_rfc3339(),
            }));
            next["status"]["conditions"] = json!(conditions);
            Ok(next)
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}
