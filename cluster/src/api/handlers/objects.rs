//! The object verbs over HTTP: get, list (and watch), create, update, patch, delete, deletecollection,
//! and the scale and binding subresources. Bodies are JSON (3 MiB at most); errors are Status objects.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Target, query_map};
use crate::api::errors::{ApiError, ApiResult, json_response};
use crate::api::registry::{DeleteOptions, ListOptions, Sub, write_stamped};
use crate::api::resources::Resource;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::table::IncludeObject;
use crate::api::validation;
use crate::api::watch::{self, WatchRequest};
use crate::api::{AppState, MAX_BODY_BYTES};
use crate::store::KeyValue;

/// Reads the request body as JSON; 413 over the limit, 400 when it is not JSON.
async fn read_json(req: Request) -> ApiResult<Value> {
    Ok(read_json_raw(req).await?.0)
}

/// The body as JSON, with its bytes when they were JSON (field validation finds duplicate keys there).
async fn read_json_raw(req: Request) -> ApiResult<(Value, Option<axum::body::Bytes>)> {
    let content_type =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let bytes = read_body(req).await?;
    if content_type.contains("protobuf") {
        return Ok((crate::api::protobuf::decode(&bytes)?, None));
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
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    Ok((value, Some(bytes)))
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

/// `sendInitialEvents`, checked as kube-apiserver's ValidateListOptions does for a watch: it needs
/// `resourceVersionMatch=NotOlderThan` and `allowWatchBookmarks=true`, and a resourceVersionMatch
/// needs it.
fn watch_start_options(query: &std::collections::HashMap<String, String>, bookmarks: bool) -> ApiResult<Option<bool>> {
    let send = match query.get("sendInitialEvents").map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!("invalid sendInitialEvents: {other:?}; hint: true or false")));
        }
    };
    let rv_match = query.get("resourceVersionMatch").map(String::as_str).filter(|m| !m.is_empty());
    let invalid =
        |cause: &str| ApiError::new(422, "Invalid", format!("ListOptions.meta.k8s.io \"\" is invalid: {cause}"));
    match (send, rv_match) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(invalid(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        )),
        (Some(_), m) if m != Some("NotOlderThan") => Err(invalid(&format!(
            "resourceVersionMatch: Unsupported value: \"{}\": supported values: \"NotOlderThan\"",
            m.unwrap_or_default()
        ))),
        (Some(_), _) if !bookmarks => Err(invalid(
            "allowWatchBookmarks: Required value: allowWatchBookmarks must be true if sendInitialEvents != nil",
        )),
        (send, _) => Ok(send),
    }
}

pub async fn list_or_watch(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let query = query_map(&req);
    let opts = list_options(&query)?;
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true" || b == "1");
        let send_initial_events = watch_start_options(&query, bookmarks)?;
        let timeout = query.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).map(Duration::from_secs);
        let request = WatchRequest {
            namespace: target.namespace.clone(),
            labels: opts.labels,
            fields: opts.fields,
            resource_version: query.get("resourceVersion").cloned(),
            bookmarks,
            send_initial_events,
            timeout,
            table: wants_table(req.headers()).then(|| query.get("includeObject").cloned().unwrap_or_default()),
        };
        return watch::watch(state, target.res, request).await;
    }
    let page = state.list_stored(target.res, target.namespace.as_deref(), &opts).await?;
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = &page.continue_token {
        meta["continue"] = json!(token);
    }
    if wants_table(req.headers()) {
        let include = IncludeObject::from_query(query.get("includeObject").map(String::as_str).unwrap_or_default());
        let (group, plural) = (target.res.group, target.res.plural);
        let body = blocking_body(move || {
            crate::api::stored::table_from_stored(group, plural, &page.items, meta, include, jiff::Timestamp::now())
        })
        .await?;
        return Ok(json_bytes(body));
    }
    stored_list_response(target.res, meta, page.items).await
}

/// Builds a response body on the blocking pool: for thousands of objects it is milliseconds of copying
/// and formatting that should not hold up a runtime worker.
async fn blocking_body<F>(build: F) -> ApiResult<Vec<u8>>
where
    F: FnOnce() -> ApiResult<Vec<u8>> + Send + 'static,
{
    tokio::task::spawn_blocking(build).await.map_err(|e| ApiError::internal(format!("building a list failed: {e}")))?
}

fn json_bytes(body: Vec<u8>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON list: its envelope around the objects as stored, each stamped with its resourceVersion by a
/// byte-level edit ([`write_stamped`]) rather than a decode and an encode per item. The same bytes as
/// serialising the decoded list.
async fn stored_list_response(res: &Resource, list_meta: Value, items: Vec<KeyValue>) -> ApiResult<Response> {
    let envelope = json!({
        "kind": res.list_kind(),
        "apiVersion": res.api_version(),
        "metadata": list_meta,
        "items": [],
    });
    let envelope = serde_json::to_vec(&envelope).unwrap_or_default();
    let body = blocking_body(move || {
        // The envelope ends with `[]}`: the items go between the brackets.
        let head = envelope.strip_suffix(b"]}").unwrap_or(&envelope);
        let size = head.len() + items.iter().map(|kv| kv.value.len() + 48).sum::<usize>() + 2;
        let mut body = Vec::with_capacity(size);
        body.extend_from_slice(head);
        for (i, kv) in items.into_iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            write_stamped(&kv, &mut body)?;
        }
        body.extend_from_slice(b"]}");
        Ok(body)
    })
    .await?;
    Ok(json_bytes(body))
}

pub async fn create(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let query = query_map(&req);
    let (dry_run, fields) = (validation::dry_run(&query)?, validation::field_validation(&query)?);
    let (mut body, raw) = read_json_raw(req).await?;
    let warnings = validation::check_fields(target.res, &mut body, raw.as_deref(), fields, false)?;
    let created = state.create_obj_opts(target.res, target.namespace.as_deref(), body, dry_run).await?;
    Ok(validation::with_warnings(json_response(StatusCode::CREATED, &created), &warnings))
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
    let query = query_map(&req);
    let (dry_run, fields) = (validation::dry_run(&query)?, validation::field_validation(&query)?);
    let (mut body, raw) = read_json_raw(req).await?;
    let warnings = validation::check_fields(target.res, &mut body, raw.as_deref(), fields, false)?;
    check_body_identity(&target, &body)?;
    let (ns, name, sub) = (target.namespace.as_deref(), name_of(&target), sub_of(&target));
    let updated =
        state.update_with_opts(target.res, ns, name, sub, rv_of(&body), dry_run, |_| Ok(body.clone())).await?;
    Ok(validation::with_warnings(ok(&updated), &warnings))
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
    Strategic,
}

fn patch_kind(headers: &HeaderMap) -> ApiResult<PatchKind> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let ct = ct.split(';').next().unwrap_or_default().trim();
    match ct {
        "application/merge-patch+json" => Ok(PatchKind::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
        "application/json-patch+json" => Ok(PatchKind::Json),
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            Err(crate::api::strategic::server_side_apply_refused())
        }
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
        PatchKind::Strategic => {
            let type_of = |field: &str| current.get(field).and_then(Value::as_str).unwrap_or_default();
            let root = crate::api::strategic::root_type(type_of("apiVersion"), type_of("kind"));
            doc = crate::api::strategic::apply(current, patch, root)?;
        }
    }
    Ok(doc)
}

pub async fn patch(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let kind = patch_kind(req.headers())?;
    let query = query_map(&req);
    let (dry_run, fields) = (validation::dry_run(&query)?, validation::field_validation(&query)?);
    let (mut body, raw) = read_json_raw(req).await?;
    // Merge and strategic patches are checked as sent (their shape is the object's); a JSON patch by
    // the object it produces.
    let is_json_patch = matches!(kind, PatchKind::Json);
    let mut warnings = if is_json_patch {
        Vec::new()
    } else {
        validation::check_fields(target.res, &mut body, raw.as_deref(), fields, true)?
    };
    let sub = sub_of(&target);
    let name = name_of(&target).to_string();
    let updated = state
        .update_with_opts(target.res, target.namespace.as_deref(), &name, sub, rv_of(&body), dry_run, |current| {
            let mut patched = apply_patch(current, &kind, &body)?;
            if is_json_patch {
                warnings = validation::check_fields(target.res, &mut patched, None, fields, false)?;
            }
            check_body_identity(&target, &patched)?;
            Ok(patched)
        })
        .await?;
    Ok(validation::with_warnings(ok(&updated), &warnings))
}

/// DeleteOptions from the body (JSON) and the query (query wins where both give a value).
async fn delete_options(req: Request) -> ApiResult<DeleteOptions> {
    let query = query_map(&req);
    let body = small_body(req, "DeleteOptions").await?;
    delete_options_of(&query, &body)
}

/// The body of a small request object (DeleteOptions, Eviction) as JSON: empty is `{}`, and protobuf is
/// decoded, since client-go's typed clients (kubectl drain) send these as protobuf.
async fn small_body(req: Request, kind: &str) -> ApiResult<Value> {
    let protobuf =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("protobuf"));
    let bytes = read_body(req).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(json!({}))
    } else if protobuf {
        crate::api::protobuf::decode(&bytes)
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("{kind} is not valid JSON: {e}")))
    }
}

fn delete_options_of(query: &std::collections::HashMap<String, String>, body: &Value) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        grace_period_seconds: body.get("gracePeriodSeconds").and_then(Value::as_i64),
        propagation_policy: body.get("propagationPolicy").and_then(Value::as_str).map(str::to_string),
        precondition_uid: body.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string),
        precondition_resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run: validation::delete_dry_run(query, body)?,
    };
    if let Some(grace) = query.get("gracePeriodSeconds") {
        opts.grace_period_seconds =
            Some(grace.parse().map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds: {grace}")))?);
    }
    if let Some(policy) = query.get("propagationPolicy") {
        opts.propagation_policy = Some(policy.clone());
    }
    // The older `orphanDependents` field: true is Orphan, false is Background.
    let orphan = match query.get("orphanDependents") {
        Some(o) => Some(o == "true" || o == "1"),
        None => body.get("orphanDependents").and_then(Value::as_bool),
    };
    if let Some(orphan) = orphan {
        if opts.propagation_policy.is_some() {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                "propagationPolicy: Invalid value: orphanDependents and propagationPolicy cannot both be set; \
                 hint: drop orphanDependents",
            ));
        }
        opts.propagation_policy = Some(if orphan { "Orphan" } else { "Background" }.to_string());
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
    if opts.dry_run {
        // A dry run deletes nothing: the answer is the object as it is.
        let (obj, _) = state.get_obj(target.res, target.namespace.as_deref(), name_of(&target)).await?;
        return Ok(ok(&obj));
    }
    let obj = state.delete_obj(target.res, target.namespace.as_deref(), name_of(&target), &opts).await?;
    Ok(ok(&obj))
}

/// `POST pods/{name}/eviction` (`kubectl drain`): a graceful delete with the Eviction's `deleteOptions`,
/// answered with kube-apiserver's 201 Success Status. PodDisruptionBudgets are not served here, so
/// nothing can refuse an eviction (kube answers 429 when a budget would be broken).
pub async fn evict(state: Arc<AppState>, target: Target, req: Request) -> ApiResult<Response> {
    let query = query_map(&req);
    let eviction = small_body(req, "Eviction").await?;
    let opts = delete_options_of(&query, eviction.get("deleteOptions").unwrap_or(&json!({})))?;
    if !opts.dry_run {
        state.delete_obj(target.res, target.namespace.as_deref(), name_of(&target), &opts).await?;
    }
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(crate::api::errors::json_response(StatusCode::CREATED, &status))
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
        if opts.dry_run {
            deleted.push(item);
            continue;
        }
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
    let dry_run = validation::dry_run(&query_map(&req))?;
    let body = read_json(req).await?;
    let name = name_of(&target).to_string();
    let (ns, rv) = (target.namespace.as_deref(), rv_of(&body));
    let updated = state
        .update_with_opts(target.res, ns, &name, Sub::Any, rv, dry_run, |current| {
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
