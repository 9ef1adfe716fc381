//! `/openapi/v3`: the OpenAPI 3.0 documents kubectl reads (`explain`, the `fieldValidation` support check,
//! client-side apply's patch metadata), generated from the k8s-openapi types' JSON schemas (schemars) and the
//! resource table, one document per group-version, in kube-apiserver's shape: component schemas named like
//! `io.k8s.api.core.v1.Pod` with `x-kubernetes-group-version-kind` on the kinds, and a path per verb.
//!
//! The documents are built once, on the first request (tens of milliseconds), and kept as serialized bytes
//! only: the JSON trees are dropped, so they cost the server their size on the wire and nothing else.
//! The index links each document with `?hash=` (its SHA-512); a request naming the current hash gets an
//! immutable Cache-Control, like kube-apiserver's, so kubectl's disk cache never asks twice.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::errors::ApiError;
use super::resources::{RESOURCES, Resource, groups};

/// Something done with the k8s-openapi type of a served kind (its schema, or decoding into it).
pub trait KindVisitor {
    type Out;
    fn visit<T: JsonSchema + DeserializeOwned + k8s_openapi::Resource>(self) -> Self::Out;
}

/// Calls `v` with the k8s-openapi type of `group`/`kind`; None for a kind without one.
pub fn with_kind<V: KindVisitor>(group: &str, kind: &str, v: V) -> Option<V::Out> {
    use k8s_openapi::api::{apps, batch, coordination, core, discovery, events, networking};
    Some(match (group, kind) {
        ("", "Namespace") => v.visit::<core::v1::Namespace>(),
        ("", "Pod") => v.visit::<core::v1::Pod>(),
        ("", "Service") => v.visit::<core::v1::Service>(),
        ("", "Endpoints") => v.visit::<core::v1::Endpoints>(),
        ("", "Node") => v.visit::<core::v1::Node>(),
        ("", "Event") => v.visit::<core::v1::Event>(),
        ("", "ConfigMap") => v.visit::<core::v1::ConfigMap>(),
        ("", "Secret") => v.visit::<core::v1::Secret>(),
        ("", "PersistentVolumeClaim") => v.visit::<core::v1::PersistentVolumeClaim>(),
        ("", "PersistentVolume") => v.visit::<core::v1::PersistentVolume>(),
        ("", "ServiceAccount") => v.visit::<core::v1::ServiceAccount>(),
        ("apps", "Deployment") => v.visit::<apps::v1::Deployment>(),
        ("apps", "ReplicaSet") => v.visit::<apps::v1::ReplicaSet>(),
        ("apps", "StatefulSet") => v.visit::<apps::v1::StatefulSet>(),
        ("apps", "DaemonSet") => v.visit::<apps::v1::DaemonSet>(),
        ("batch", "Job") => v.visit::<batch::v1::Job>(),
        ("batch", "CronJob") => v.visit::<batch::v1::CronJob>(),
        ("discovery.k8s.io", "EndpointSlice") => v.visit::<discovery::v1::EndpointSlice>(),
        ("networking.k8s.io", "NetworkPolicy") => v.visit::<networking::v1::NetworkPolicy>(),
        ("coordination.k8s.io", "Lease") => v.visit::<coordination::v1::Lease>(),
        ("events.k8s.io", "Event") => v.visit::<events::v1::Event>(),
        ("autoscaling", "Scale") => v.visit::<k8s_openapi::api::autoscaling::v1::Scale>(),
        _ => return None,
    })
}

/// Adds the schema of a kind (and everything it references) to a generator; returns its component name.
struct AddSchema<'a>(&'a mut SchemaGenerator);

impl KindVisitor for AddSchema<'_> {
    type Out = String;
    fn visit<T: JsonSchema + DeserializeOwned + k8s_openapi::Resource>(self) -> String {
        self.0.subschema_for::<T>();
        T::schema_name().into_owned()
    }
}

/// One served document.
struct Document {
    bytes: Bytes,
    /// Upper-case hex SHA-512 of `bytes`, as kube-apiserver names its documents.
    hash: String,
}

struct Documents {
    /// `api/v1`, `apis/apps/v1`, ... → document.
    docs: BTreeMap<String, Document>,
    index: Bytes,
}

static DOCUMENTS: OnceLock<Documents> = OnceLock::new();

/// The `/openapi/v3/...` key of a group-version: `api/v1` or `apis/apps/v1`.
fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn build_all() -> Documents {
    let mut gvs = vec![("", "v1")];
    gvs.extend(groups());
    let mut docs = BTreeMap::new();
    for (group, version) in gvs {
        let doc = document(group, version);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let hash = hex_upper(&Sha512::digest(&bytes));
        docs.insert(gv_key(group, version), Document { bytes: Bytes::from(bytes), hash });
    }
    let paths: Map<String, Value> = docs
        .iter()
        .map(|(key, doc)| (key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash)})))
        .collect();
    let index = Bytes::from(serde_json::to_vec(&json!({"paths": paths})).unwrap_or_default());
    Documents { docs, index }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The documents, built on first use (off the async runtime: building takes a moment).
async fn documents() -> &'static Documents {
    if let Some(docs) = DOCUMENTS.get() {
        return docs;
    }
    let build = || {
        let docs = DOCUMENTS.get_or_init(build_all);
        // Building allocates tens of megabytes of small JSON nodes that are freed at once; give them
        // back to the system rather than keep them in the allocator's free lists.
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free heap memory; it has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
        docs
    };
    match tokio::task::spawn_blocking(build).await {
        Ok(docs) => docs,
        Err(_) => DOCUMENTS.get_or_init(build_all),
    }
}

/// `CoreV1`, `AppsV1`, `NetworkingV1` (kube-apiserver's operation id infix).
fn op_infix(group: &str, version: &str) -> String {
    let first = if group.is_empty() { "core" } else { group.split('.').next().unwrap_or(group) };
    let mut out = String::new();
    for part in [first, version] {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn bool_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "boolean", "uniqueItems": true}})
}

fn int_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "integer", "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

const DRY_RUN: &str = "When present, indicates that modifications should not be persisted. An invalid or unrecognized \
                       dryRun directive will result in an error response and no further processing of the request. \
                       Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER: &str = "fieldManager is a name associated with the actor or entity that is making these changes.";
const FIELD_VALIDATION: &str = "fieldValidation instructs the server on how to handle objects in the request \
                                (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: \
                                This will ignore any unknown fields that are silently dropped from the object, and \
                                will ignore all but the last duplicate field that the decoder encounters. - Warn: \
                                This will send a warning via the standard warning response header for each unknown \
                                field that is dropped from the object, and for each duplicate field that is \
                                encountered. - Strict: This will fail the request with a BadRequest error if any \
                                unknown fields would be dropped from the object, or if any duplicate fields are \
                                present. The error returned from the server will contain all unknown and duplicate \
                                fields encountered. Warn is the default.";

fn write_params() -> Vec<Value> {
    vec![
        query_param("dryRun", DRY_RUN),
        query_param("fieldManager", FIELD_MANAGER),
        query_param("fieldValidation", FIELD_VALIDATION),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        bool_param("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        query_param("continue", "The continue option should be set when retrieving more results from the server."),
        query_param("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
        query_param("labelSelector", "A selector to restrict the list of returned objects by their labels."),
        int_param("limit", "limit is a maximum number of responses to return for a list call."),
        query_param(
            "resourceVersion",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query_param(
            "resourceVersionMatch",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        bool_param("sendInitialEvents", "`sendInitialEvents=true` may be set together with `watch=true`."),
        int_param("timeoutSeconds", "Timeout for the list/watch call."),
        bool_param(
            "watch",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn json_content(schema: &Value) -> Value {
    json!({"application/json": {"schema": schema}, "application/yaml": {"schema": schema}})
}

/// One operation object.
fn operation(
    id: String,
    action: &str,
    gvk: &Value,
    params: Vec<Value>,
    body: Option<Value>,
    response: &Value,
    description: String,
) -> Value {
    let mut op = json!({
        "description": description,
        "operationId": id,
        "responses": {
            "200": {"description": "OK", "content": json_content(response)},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(body) = body {
        op["requestBody"] = json!({"content": body, "required": true});
    }
    op
}

/// The request body of a PATCH: the patch types this server applies. Strategic merge patch is declared
/// only when the schemas carry the patch metadata (kubectl then computes client-side apply patches from
/// them), so kubectl never builds a strategic patch from schemas that lack the merge keys.
fn patch_body() -> Value {
    let patch = json!({"type": "object"});
    let mut content = json!({
        "application/json-patch+json": {"schema": patch},
        "application/merge-patch+json": {"schema": patch},
    });
    if patch_meta::AVAILABLE {
        content["application/strategic-merge-patch+json"] = json!({"schema": patch});
    }
    content
}

/// The paths of one resource (collection, item, its subresources, and the all-namespaces list).
fn resource_paths(res: &Resource, schema: &str, paths: &mut Map<String, Value>) {
    let base = if res.group.is_empty() {
        format!("/api/{}", res.version)
    } else {
        format!("/apis/{}/{}", res.group, res.version)
    };
    let infix = op_infix(res.group, res.version);
    let scope = if res.namespaced { "Namespaced" } else { "" };
    let kind = res.kind;
    let gvk = json!({"group": res.group, "version": res.version, "kind": kind});
    let obj = schema_ref(schema);
    let list = json!({"type": "object", "description": format!("{}List is a list of {kind}.", kind)});
    let status = schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.Status");
    let collection = if res.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", res.plural)
    } else {
        format!("{base}/{}", res.plural)
    };
    let mut common = vec![query_param("pretty", "If 'true', then the output is pretty printed.")];
    if res.namespaced {
        common.insert(0, path_param("namespace", "object name and auth scope, such as for teams and projects"));
    }
    let mut collection_item = json!({
        "get": operation(format!("list{infix}{scope}{kind}"), "list", &gvk, list_params(), None, &list,
            format!("list or watch objects of kind {kind}")),
        "post": operation(format!("create{infix}{scope}{kind}"), "post", &gvk, write_params(), Some(json_content(&obj)), &obj,
            format!("create a {kind}")),
        "delete": operation(format!("deletecollection{infix}{scope}{kind}"), "deletecollection", &gvk, vec![
            query_param("dryRun", DRY_RUN),
            int_param("gracePeriodSeconds", "The duration in seconds before the object should be deleted."),
            query_param("labelSelector", "A selector to restrict the list of returned objects by their labels."),
            query_param("propagationPolicy", "Whether and how garbage collection will be performed."),
        ], None, &status, format!("delete collection of {kind}")),
        "parameters": common,
    });
    collection_item["post"]["responses"]["201"] = json!({"description": "Created", "content": json_content(&obj)});
    paths.insert(collection.clone(), collection_item);

    let mut item_params = vec![path_param("name", &format!("name of the {kind}"))];
    if res.namespaced {
        item_params.push(path_param("namespace", "object name and auth scope, such as for teams and projects"));
    }
    item_params.push(query_param("pretty", "If 'true', then the output is pretty printed."));
    let item = json!({
        "get": operation(format!("read{infix}{scope}{kind}"), "get", &gvk, vec![], None, &obj,
            format!("read the specified {kind}")),
        "put": operation(format!("replace{infix}{scope}{kind}"), "put", &gvk, write_params(), Some(json_content(&obj)), &obj,
            format!("replace the specified {kind}")),
        "patch": operation(format!("patch{infix}{scope}{kind}"), "patch", &gvk, {
            let mut p = write_params();
            p.push(bool_param("force", "Force is going to \"force\" Apply requests."));
            p
        }, Some(patch_body()), &obj, format!("partially update the specified {kind}")),
        "delete": operation(format!("delete{infix}{scope}{kind}"), "delete", &gvk, vec![
            query_param("dryRun", DRY_RUN),
            int_param("gracePeriodSeconds", "The duration in seconds before the object should be deleted."),
            query_param("propagationPolicy", "Whether and how garbage collection will be performed."),
        ], None, &obj, format!("delete a {kind}")),
        "parameters": item_params,
    });
    paths.insert(format!("{collection}/{{name}}"), item);

    let mut subresources: Vec<(&str, &str, Value, Value)> = Vec::new();
    if res.status {
        subresources.push(("status", "Status", obj.clone(), gvk.clone()));
    }
    if res.scale {
        let scale_gvk = json!({"group": "autoscaling", "version": "v1", "kind": "Scale"});
        subresources.push(("scale", "Scale", schema_ref("io.k8s.api.autoscaling.v1.Scale"), scale_gvk));
    }
    for (sub, suffix, schema, sub_gvk) in subresources {
        let item = json!({
            "get": operation(format!("read{infix}{scope}{kind}{suffix}"), "get", &sub_gvk, vec![], None, &schema,
                format!("read {sub} of the specified {kind}")),
            "put": operation(format!("replace{infix}{scope}{kind}{suffix}"), "put", &sub_gvk, write_params(),
                Some(json_content(&schema)), &schema, format!("replace {sub} of the specified {kind}")),
            "patch": operation(format!("patch{infix}{scope}{kind}{suffix}"), "patch", &sub_gvk, write_params(),
                Some(patch_body()), &schema, format!("partially update {sub} of the specified {kind}")),
            "parameters": item_params,
        });
        paths.insert(format!("{collection}/{{name}}/{sub}"), item);
    }
    if res.namespaced {
        paths.insert(
            format!("{base}/{}", res.plural),
            json!({
                "get": operation(format!("list{infix}{kind}ForAllNamespaces"), "list", &gvk, list_params(), None, &list,
                    format!("list or watch objects of kind {kind}")),
            }),
        );
    }
}

/// The document of one group-version.
fn document(group: &str, version: &str) -> Value {
    let mut generator = SchemaSettings::openapi3().with(|s| s.meta_schema = None).into_generator();
    let mut kinds: Vec<(&'static Resource, String)> = Vec::new();
    for res in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        if let Some(name) = with_kind(res.group, res.kind, AddSchema(&mut generator)) {
            kinds.push((res, name));
        }
    }
    if kinds.iter().any(|(res, _)| res.scale) {
        with_kind("autoscaling", "Scale", AddSchema(&mut generator));
    }
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>();
    let mut schemas = generator.take_definitions(true);
    for (name, schema) in schemas.iter_mut() {
        fix_schema(name, schema);
    }
    let mut paths = Map::new();
    for (res, name) in &kinds {
        resource_paths(res, name, &mut paths);
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": super::GIT_VERSION.split('+').next().unwrap_or("v1.33.5")},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"BearerToken": {
            "type": "apiKey", "name": "authorization", "in": "header",
            "description": "Bearer Token authentication",
        }}},
        "security": [{"BearerToken": []}],
    })
}

/// Makes a generated schema look like kube-apiserver's: the group-version-kind of top-level kinds (every
/// kind sharing that schema: `core/v1 Event` is its own type), no `metadata` among the required fields, and
/// the patch metadata client-side apply reads.
fn fix_schema(name: &str, schema: &mut Value) {
    let gvks: Vec<Value> = RESOURCES
        .iter()
        .filter(|res| with_kind(res.group, res.kind, SchemaName).as_deref() == Some(name))
        .map(|res| json!({"group": res.group, "kind": res.kind, "version": res.version}))
        .chain(
            (name == "io.k8s.api.autoscaling.v1.Scale")
                .then(|| json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})),
        )
        .chain(
            (name == "io.k8s.apimachinery.pkg.apis.meta.v1.Status")
                .then(|| json!({"group": "", "kind": "Status", "version": "v1"})),
        )
        .collect();
    let Some(obj) = schema.as_object_mut() else { return };
    if !gvks.is_empty() {
        obj.insert("x-kubernetes-group-version-kind".into(), Value::Array(gvks));
        if let Some(required) = obj.get_mut("required").and_then(Value::as_array_mut) {
            required.retain(|f| f != "metadata");
            if required.is_empty() {
                obj.remove("required");
            }
        }
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for (field, prop) in props.iter_mut() {
            patch_meta::annotate(name, field, prop);
        }
    }
}

/// The strategic-merge-patch metadata of the schemas (`x-kubernetes-patch-merge-key`/`-strategy`), from
/// the table the server's own strategic merge patch uses, so client-side apply (which computes its patch
/// from these schemas) and the server agree on every list.
mod patch_meta {
    use serde_json::{Value, json};

    use crate::api::strategic::FIELDS;

    /// PATCH declares strategic merge patch: the schemas carry the metadata kubectl computes it from.
    pub const AVAILABLE: bool = true;

    /// Adds the metadata of `field` of the component schema `schema` (`io.k8s.api.core.v1.PodSpec`).
    pub fn annotate(schema: &str, field: &str, prop: &mut Value) {
        let short = schema
            .strip_prefix("io.k8s.api.")
            .or_else(|| schema.strip_prefix("io.k8s.apimachinery.pkg.apis."))
            .unwrap_or(schema);
        let Some(row) = FIELDS.iter().find(|row| row.ty == short && row.field == field) else { return };
        let Some(map) = prop.as_object_mut() else { return };
        if !row.merge_key.is_empty() {
            map.insert("x-kubernetes-patch-merge-key".into(), json!(row.merge_key));
        }
        if !row.strategy.is_empty() {
            map.insert("x-kubernetes-patch-strategy".into(), json!(row.strategy));
        }
    }
}

struct SchemaName;

impl KindVisitor for SchemaName {
    type Out = String;
    fn visit<T: JsonSchema + DeserializeOwned + k8s_openapi::Resource>(self) -> String {
        T::schema_name().into_owned()
    }
}

fn json_bytes(code: StatusCode, bytes: Bytes, extra: &[(header::HeaderName, String)]) -> Response {
    let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(value) {
            resp.headers_mut().insert(name.clone(), value);
        }
    }
    resp
}

/// `GET /openapi/v3`: the index of documents.
pub async fn index() -> Response {
    let docs = documents().await;
    json_bytes(StatusCode::OK, docs.index.clone(), &[(header::CACHE_CONTROL, "no-cache, private".into())])
}

/// `GET /openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}` (with or without `?hash=`).
pub async fn group_version(req: Request) -> Response {
    let key = req.uri().path().trim_start_matches("/openapi/v3/").trim_end_matches('/').to_string();
    let docs = documents().await;
    let Some(doc) = docs.docs.get(&key) else {
        return ApiError::path_not_found().into_response();
    };
    let etag = format!("\"{}\"", doc.hash);
    let asked_hash = super::handlers::query_map(&req).get("hash").cloned();
    if let Some(asked) = &asked_hash
        && !asked.is_empty()
        && *asked != doc.hash
    {
        // An old hash: send the client to the current document, as kube-apiserver does.
        let location = format!("/openapi/v3/{key}?hash={}", doc.hash);
        let mut resp = StatusCode::MOVED_PERMANENTLY.into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            resp.headers_mut().insert(header::LOCATION, value);
        }
        resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, private"));
        return resp;
    }
    let cache = if asked_hash.is_some() { "public, immutable" } else { "no-cache, private" };
    let extra = [(header::ETAG, etag.clone()), (header::CACHE_CONTROL, cache.to_string())];
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    if not_modified {
        return json_bytes(StatusCode::NOT_MODIFIED, Bytes::new(), &extra);
    }
    json_bytes(StatusCode::OK, doc.bytes.clone(), &extra)
}

/// `/openapi/v2`: not served; kubectl uses v3 for everything it does against this server.
pub async fn v2() -> Response {
    ApiError::path_not_found().into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_kind_has_a_type_and_a_schema_with_its_gvk() {
        for res in RESOURCES {
            assert!(with_kind(res.group, res.kind, SchemaName).is_some(), "{} has no k8s-openapi type", res.kind);
        }
        let started = std::time::Instant::now();
        let docs = build_all();
        let total: usize = docs.docs.values().map(|d| d.bytes.len()).sum();
        eprintln!("built {} documents, {total} bytes, in {:?}", docs.docs.len(), started.elapsed());
        for res in RESOURCES {
            let doc: Value = serde_json::from_slice(&docs.docs[&gv_key(res.group, res.version)].bytes).unwrap();
            let name = with_kind(res.group, res.kind, SchemaName).unwrap();
            let schema = &doc["components"]["schemas"][&name];
            let gvks = schema["x-kubernetes-group-version-kind"].as_array().unwrap();
            assert!(gvks.iter().any(|g| g["kind"] == res.kind && g["group"] == res.group), "{name}: {gvks:?}");
            assert!(!schema["required"].as_array().is_some_and(|r| r.iter().any(|f| f == "metadata")));
        }
    }

    #[test]
    fn patch_operations_declare_field_validation() {
        let docs = build_all();
        let doc: Value = serde_json::from_slice(&docs.docs["apis/apps/v1"].bytes).unwrap();
        let patch = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        let params = patch["parameters"].as_array().unwrap();
        assert!(params.iter().any(|p| p["name"] == "fieldValidation"));
        // References are wrapped in allOf with the field's description beside, as kube-apiserver does.
        let spec = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
        assert_eq!(spec["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec");
        assert!(spec["description"].as_str().is_some());
        let containers = &doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
        let index: Value = serde_json::from_slice(&docs.index).unwrap();
        let url = index["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
    }
}
