//! Strategic merge patch (`application/strategic-merge-patch+json`), applied as apimachinery's
//! `strategicpatch` applies it to built-in types: lists merge by a per-field merge key or are replaced,
//! `null` deletes a key, and the directives `$patch` (replace / delete / merge), `$retainKeys`,
//! `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>` do what kubectl expects when it
//! sends the patches of `apply`, `edit`, `patch`, `label`, `annotate` and `set image`.
//!
//! The patch metadata (which list merges on which key) lives in [`FIELDS`], a table over the
//! Kubernetes OpenAPI definitions of the kinds this server serves: one row per field that either carries
//! `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy` or leads to a type that does. A test in
//! `tests/tests/kubectl_apply.rs` holds the table against the OpenAPI definitions bundled with
//! kubernetes-validate, so a field missing here (which would silently replace a list kubectl expects to
//! merge) fails there. Fields the table does not know are merged as maps and replaced as lists, which is
//! what JSON merge patch does, and what apimachinery does for a field without patch metadata.

use serde_json::{Map, Value};

use super::ApiError;

/// One field with patch metadata, or on the way to one. Type names are the OpenAPI definition names
/// without their `io.k8s.api.` / `io.k8s.apimachinery.pkg.apis.` prefix (`core.v1.PodSpec`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchField {
    /// The type that has the field.
    pub ty: &'static str,
    /// The field's JSON name.
    pub field: &'static str,
    /// The type of the field's value (of each element, for a list) when that type has patch metadata
    /// somewhere below it; "" otherwise.
    pub child: &'static str,
    /// `x-kubernetes-patch-merge-key`, or "".
    pub merge_key: &'static str,
    /// `x-kubernetes-patch-strategy` as written there (`merge`, `replace`, `retainKeys`,
    /// `merge,retainKeys`), or "".
    pub strategy: &'static str,
}

const fn f(
    ty: &'static str,
    field: &'static str,
    child: &'static str,
    merge_key: &'static str,
    strategy: &'static str,
) -> PatchField {
    PatchField { ty, field, child, merge_key, strategy }
}

/// The patch metadata of every served kind (and of `autoscaling/v1` Scale), from the Kubernetes 1.33
/// OpenAPI definitions. Lists not named here (tolerations, args, command, EndpointSlice endpoints, ...)
/// are atomic: a patch replaces them whole.
pub static FIELDS: &[PatchField] = &[
    f("core.v1.Namespace", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.Namespace", "status", "core.v1.NamespaceStatus", "", ""),
    f("core.v1.Pod", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.Pod", "spec", "core.v1.PodSpec", "", ""),
    f("core.v1.Pod", "status", "core.v1.PodStatus", "", ""),
    f("core.v1.Service", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.Service", "spec", "core.v1.ServiceSpec", "", ""),
    f("core.v1.Service", "status", "core.v1.ServiceStatus", "", ""),
    f("core.v1.Endpoints", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.Node", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.Node", "spec", "core.v1.NodeSpec", "", ""),
    f("core.v1.Node", "status", "core.v1.NodeStatus", "", ""),
    f("core.v1.Event", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.ConfigMap", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.Secret", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.PersistentVolumeClaim", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.PersistentVolumeClaim", "status", "core.v1.PersistentVolumeClaimStatus", "", ""),
    f("core.v1.PersistentVolume", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.ServiceAccount", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.ServiceAccount", "secrets", "", "name", "merge"),
    f("apps.v1.Deployment", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("apps.v1.Deployment", "spec", "apps.v1.DeploymentSpec", "", ""),
    f("apps.v1.Deployment", "status", "apps.v1.DeploymentStatus", "", ""),
    f("apps.v1.ReplicaSet", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("apps.v1.ReplicaSet", "spec", "apps.v1.ReplicaSetSpec", "", ""),
    f("apps.v1.ReplicaSet", "status", "apps.v1.ReplicaSetStatus", "", ""),
    f("apps.v1.StatefulSet", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("apps.v1.StatefulSet", "spec", "apps.v1.StatefulSetSpec", "", ""),
    f("apps.v1.StatefulSet", "status", "apps.v1.StatefulSetStatus", "", ""),
    f("apps.v1.DaemonSet", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("apps.v1.DaemonSet", "spec", "apps.v1.DaemonSetSpec", "", ""),
    f("apps.v1.DaemonSet", "status", "apps.v1.DaemonSetStatus", "", ""),
    f("batch.v1.Job", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("batch.v1.Job", "spec", "batch.v1.JobSpec", "", ""),
    f("batch.v1.Job", "status", "batch.v1.JobStatus", "", ""),
    f("batch.v1.CronJob", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("batch.v1.CronJob", "spec", "batch.v1.CronJobSpec", "", ""),
    f("discovery.v1.EndpointSlice", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("networking.v1.NetworkPolicy", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("coordination.v1.Lease", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("events.v1.Event", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("autoscaling.v1.Scale", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("meta.v1.ObjectMeta", "finalizers", "", "", "merge"),
    f("meta.v1.ObjectMeta", "ownerReferences", "", "uid", "merge"),
    f("core.v1.NamespaceStatus", "conditions", "", "type", "merge"),
    f("core.v1.PodSpec", "containers", "core.v1.Container", "name", "merge"),
    f("core.v1.PodSpec", "ephemeralContainers", "core.v1.EphemeralContainer", "name", "merge"),
    f("core.v1.PodSpec", "hostAliases", "", "ip", "merge"),
    f("core.v1.PodSpec", "imagePullSecrets", "", "name", "merge"),
    f("core.v1.PodSpec", "initContainers", "core.v1.Container", "name", "merge"),
    f("core.v1.PodSpec", "resourceClaims", "", "name", "merge,retainKeys"),
    f("core.v1.PodSpec", "schedulingGates", "", "name", "merge"),
    f("core.v1.PodSpec", "topologySpreadConstraints", "", "topologyKey", "merge"),
    f("core.v1.PodSpec", "volumes", "core.v1.Volume", "name", "merge,retainKeys"),
    f("core.v1.PodStatus", "conditions", "", "type", "merge"),
    f("core.v1.PodStatus", "containerStatuses", "core.v1.ContainerStatus", "", ""),
    f("core.v1.PodStatus", "ephemeralContainerStatuses", "core.v1.ContainerStatus", "", ""),
    f("core.v1.PodStatus", "hostIPs", "", "ip", "merge"),
    f("core.v1.PodStatus", "initContainerStatuses", "core.v1.ContainerStatus", "", ""),
    f("core.v1.PodStatus", "podIPs", "", "ip", "merge"),
    f("core.v1.PodStatus", "resourceClaimStatuses", "", "name", "merge,retainKeys"),
    f("core.v1.ServiceSpec", "ports", "", "port", "merge"),
    f("core.v1.ServiceStatus", "conditions", "", "type", "merge"),
    f("core.v1.NodeSpec", "podCIDRs", "", "", "merge"),
    f("core.v1.NodeStatus", "addresses", "", "type", "merge"),
    f("core.v1.NodeStatus", "conditions", "", "type", "merge"),
    f("core.v1.PersistentVolumeClaimStatus", "conditions", "", "type", "merge"),
    f("apps.v1.DeploymentSpec", "strategy", "", "", "retainKeys"),
    f("apps.v1.DeploymentSpec", "template", "core.v1.PodTemplateSpec", "", ""),
    f("apps.v1.DeploymentStatus", "conditions", "", "type", "merge"),
    f("apps.v1.ReplicaSetSpec", "template", "core.v1.PodTemplateSpec", "", ""),
    f("apps.v1.ReplicaSetStatus", "conditions", "", "type", "merge"),
    f("apps.v1.StatefulSetSpec", "template", "core.v1.PodTemplateSpec", "", ""),
    f("apps.v1.StatefulSetSpec", "volumeClaimTemplates", "core.v1.PersistentVolumeClaim", "", ""),
    f("apps.v1.StatefulSetStatus", "conditions", "", "type", "merge"),
    f("apps.v1.DaemonSetSpec", "template", "core.v1.PodTemplateSpec", "", ""),
    f("apps.v1.DaemonSetStatus", "conditions", "", "type", "merge"),
    f("batch.v1.JobSpec", "template", "core.v1.PodTemplateSpec", "", ""),
    f("batch.v1.JobStatus", "conditions", "", "type", "merge"),
    f("batch.v1.CronJobSpec", "jobTemplate", "batch.v1.JobTemplateSpec", "", ""),
    f("core.v1.Container", "env", "", "name", "merge"),
    f("core.v1.Container", "ports", "", "containerPort", "merge"),
    f("core.v1.Container", "volumeDevices", "", "devicePath", "merge"),
    f("core.v1.Container", "volumeMounts", "", "mountPath", "merge"),
    f("core.v1.EphemeralContainer", "env", "", "name", "merge"),
    f("core.v1.EphemeralContainer", "ports", "", "containerPort", "merge"),
    f("core.v1.EphemeralContainer", "volumeDevices", "", "devicePath", "merge"),
    f("core.v1.EphemeralContainer", "volumeMounts", "", "mountPath", "merge"),
    f("core.v1.Volume", "ephemeral", "core.v1.EphemeralVolumeSource", "", ""),
    f("core.v1.ContainerStatus", "allocatedResourcesStatus", "", "name", "merge"),
    f("core.v1.ContainerStatus", "volumeMounts", "", "mountPath", "merge"),
    f("core.v1.PodTemplateSpec", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("core.v1.PodTemplateSpec", "spec", "core.v1.PodSpec", "", ""),
    f("batch.v1.JobTemplateSpec", "metadata", "meta.v1.ObjectMeta", "", ""),
    f("batch.v1.JobTemplateSpec", "spec", "batch.v1.JobSpec", "", ""),
    f("core.v1.EphemeralVolumeSource", "volumeClaimTemplate", "core.v1.PersistentVolumeClaimTemplate", "", ""),
    f("core.v1.PersistentVolumeClaimTemplate", "metadata", "meta.v1.ObjectMeta", "", ""),
];

/// The OpenAPI group segment of each served API group.
const GROUPS: &[(&str, &str)] = &[
    ("", "core"),
    ("apps", "apps"),
    ("batch", "batch"),
    ("autoscaling", "autoscaling"),
    ("discovery.k8s.io", "discovery"),
    ("networking.k8s.io", "networking"),
    ("coordination.k8s.io", "coordination"),
    ("events.k8s.io", "events"),
];

/// The table's name for the type of objects of `api_version` and `kind` (`apps/v1`, `Deployment` →
/// `apps.v1.Deployment`); None for a type the table does not describe.
pub fn root_type(api_version: &str, kind: &str) -> Option<&'static str> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (_, segment) = GROUPS.iter().find(|(g, _)| *g == group)?;
    let name = format!("{segment}.{version}.{kind}");
    FIELDS.iter().find(|f| f.ty == name).map(|f| f.ty)
}

/// Why a strategic merge patch could not be applied. Both name the offending part of the patch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch is malformed (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The patch is well formed but cannot apply to this object (422 Invalid).
    #[error("{0}")]
    Invalid(String),
}

impl From<PatchError> for ApiError {
    fn from(e: PatchError) -> Self {
        match e {
            PatchError::BadRequest(m) => ApiError::bad_request(m),
            PatchError::Invalid(m) => ApiError::new(422, "Invalid", m),
        }
    }
}

/// The answer to a server-side apply (`kubectl apply --server-side`): 415, which kubectl reports as
/// "Server-side apply not available on the server". Server-side apply needs managedFields and per-manager
/// field ownership with conflict detection; this server does not track them, so it refuses rather than
/// apply without the conflicts a user relies on.
pub fn server_side_apply_refused() -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        "server-side apply (application/apply-patch+yaml) is not supported by this server: it does not track \
         field managers (managedFields); use client-side apply (kubectl apply without --server-side), or \
         kubectl patch / replace",
    )
}

type Result<T> = std::result::Result<T, PatchError>;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Applies the strategic merge patch `patch` to `original`, an object of the type the table calls
/// `root` (see [`root_type`]). Without a type the table knows, the patch is a JSON merge patch (its
/// directives removed): there is no merge key to go by.
pub fn apply(original: &Value, patch: &Value, root: Option<&str>) -> Result<Value> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadRequest(format!(
            "a strategic merge patch must be a JSON object, got {}",
            type_name(patch)
        )));
    };
    let original = match original {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    match root {
        Some(ty) => Ok(Value::Object(merge_map(original, patch.clone(), Some(ty), "")?)),
        None => {
            let mut doc = Value::Object(original);
            let mut patch = Value::Object(patch.clone());
            strip_directives(&mut patch);
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
    }
}

/// Removes every `$`-key (directives) from a patch applied as a JSON merge patch.
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

/// What a field's patch metadata says to do with its value.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    child: Option<&'static str>,
    merge_key: &'static str,
    /// `merge` or `replace` (`retainKeys` only matters to whoever computes a patch).
    strategy: &'static str,
}

fn lookup(ty: Option<&str>, field: &str) -> Meta {
    let Some(ty) = ty else { return Meta::default() };
    let Some(row) = FIELDS.iter().find(|f| f.ty == ty && f.field == field) else { return Meta::default() };
    let strategy = row.strategy.split(',').find(|s| *s != "retainKeys").unwrap_or("");
    Meta { child: Some(row.child).filter(|c| !c.is_empty()), merge_key: row.merge_key, strategy }
}

/// A dotted path for messages: `spec.template.spec.containers`.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// The value a patch value becomes when it is taken whole (the original has no such key, or a
/// different type there, or the field is replaced): nulls in maps dropped, maps carrying `$patch` dropped
/// (None), other directives removed, as apimachinery does before the object is decoded.
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            let mut out = Map::new();
            for (k, v) in map {
                if v.is_null() || k.starts_with('$') {
                    continue;
                }
                if let Some(v) = clean(v) {
                    out.insert(k, v);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(clean_element).collect())),
        other => Some(other),
    }
}

/// `clean` for a list element: a null element stays (there is no key to drop).
fn clean_element(value: Value) -> Option<Value> {
    if value.is_null() { Some(value) } else { clean(value) }
}

fn clean_map(map: Map<String, Value>) -> Map<String, Value> {
    match clean(Value::Object(map)) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Merges `patch` into `original`, both maps of type `ty` at `path`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    ty: Option<&str>,
    path: &str,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.shift_remove(DIRECTIVE);
                Ok(clean_map(patch))
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_directive(directive, path, "replace or delete")),
        };
    }
    apply_retain_keys(&mut original, &mut patch, path)?;
    merge_element_orders(&mut original, &mut patch, ty, path)?;

    // Additions and changes first, then the deletions from primitive lists, so a list both merged and
    // pruned in one patch ends the same whatever order the keys came in.
    let (deletions, changes): (Vec<_>, Vec<_>) =
        patch.into_iter().partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, value) in changes {
        if key.starts_with('$') {
            // A directive this version does not know: apimachinery would keep it as a field that the
            // typed decoding then drops.
            continue;
        }
        let field_path = join(path, &key);
        if value.is_null() {
            original.shift_remove(&key);
            continue;
        }
        // Taken out in place (not removed) so the field keeps its position in the object.
        let Some(current) = original.get_mut(&key).map(std::mem::take) else {
            if let Some(v) = clean(value) {
                original.insert(key, v);
            }
            continue;
        };
        let meta = lookup(ty, &key);
        let merged = match (current, value) {
            (Value::Object(current), Value::Object(value)) => {
                if meta.strategy == "replace" {
                    Some(Value::Object(clean_map(value)))
                } else {
                    Some(Value::Object(merge_map(current, value, meta.child, &field_path)?))
                }
            }
            (Value::Array(current), Value::Array(value)) => {
                Some(Value::Array(merge_list_field(current, value, meta, false, &field_path)?))
            }
            (_, value) => clean(value),
        };
        match merged {
            Some(v) => original.insert(key, v),
            None => original.shift_remove(&key),
        };
    }
    for (key, value) in deletions {
        let field = directive_field(&key, DELETE_FROM_PRIMITIVE_LIST, path)?;
        let Value::Array(value) = value else {
            return Err(PatchError::BadRequest(format!(
                "invalid patch format of primitive list: {} must be a list",
                join(path, &key)
            )));
        };
        // Nothing to delete from a list that is not there.
        let Some(Value::Array(current)) = original.get(field) else { continue };
        let merged = merge_list_field(current.clone(), value, lookup(ty, field), true, &join(path, field))?;
        original.insert(field.to_string(), Value::Array(merged));
    }
    Ok(original)
}

/// The field a `$setElementOrder/<field>` or `$deleteFromPrimitiveList/<field>` key names.
fn directive_field<'k>(key: &'k str, prefix: &str, path: &str) -> Result<&'k str> {
    match key.split_once('/') {
        Some((p, field)) if p == prefix => Ok(field),
        _ => {
            let what = if prefix == SET_ELEMENT_ORDER { "setElementOrder list" } else { "primitive list" };
            Err(PatchError::BadRequest(format!(
                "invalid patch format of {what}: {} should be {prefix}/<field>",
                join(path, key)
            )))
        }
    }
}

/// An unknown `$patch` value; `allowed` is what the place it was found takes.
fn bad_directive(directive: &Value, path: &str, allowed: &str) -> PatchError {
    let at = if path.is_empty() { String::new() } else { format!(" in {path}") };
    PatchError::BadRequest(format!("unknown patch type: {directive}{at}; $patch there must be {allowed}"))
}

/// `$retainKeys`: the keys of `original` not in the list are cleared; every key the patch sets must be
/// in the list.
fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>, path: &str) -> Result<()> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRequest(format!(
            "invalid patch format of retainKeys: {} must be a list of field names",
            join(path, RETAIN_KEYS)
        )));
    };
    let keeps = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if !keeps(k) {
            return Err(PatchError::BadRequest(format!(
                "invalid patch format of retainKeys: {} sets {k:?}, which its $retainKeys list does not name",
                if path.is_empty() { "the patch" } else { path }
            )));
        }
    }
    original.retain(|k, _| keeps(k));
    Ok(())
}

/// Applies every `$setElementOrder/<field>` of `patch`: merges that field's list (removing it from
/// the patch) and orders the result: the listed order first, items only the server has keep their
/// place relative to it.
fn merge_element_orders(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    ty: Option<&str>,
    path: &str,
) -> Result<()> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
    for key in keys {
        let Some(Value::Array(order)) = patch.shift_remove(&key) else {
            return Err(PatchError::BadRequest(format!(
                "invalid patch format of setElementOrder list: {} must be a list",
                join(path, &key)
            )));
        };
        let field = directive_field(&key, SET_ELEMENT_ORDER, path)?.to_string();
        let field_path = join(path, &field);
        let current = match original.get(&field) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => {
                return Err(PatchError::Invalid(format!(
                    "{field_path} is {} on the server, but the patch orders it as a list",
                    type_name(other)
                )));
            }
        };
        let incoming = match patch.get(&field) {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => {
                return Err(PatchError::BadRequest(format!(
                    "{field_path} is {} in the patch, but its $setElementOrder list orders it as a list",
                    type_name(other)
                )));
            }
        };
        let meta = lookup(ty, &field);
        if let Some(incoming) = &incoming {
            check_order_list(incoming, &order, meta.merge_key, &field_path)?;
        }
        let merged = match (current.clone(), incoming) {
            (Some(current), None) => current,
            (current, Some(incoming)) => {
                merge_list_field(current.unwrap_or_default(), incoming, meta, false, &field_path)?
            }
            (None, None) => continue,
        };
        let (listed, server_only) = partition(merged, &order, meta.merge_key, &field_path)?;
        let ordered =
            normalize_order(listed, server_only, &order, &current.unwrap_or_default(), meta.merge_key, &field_path)?;
        original.insert(field.clone(), Value::Array(ordered));
        patch.shift_remove(&field);
    }
    Ok(())
}

/// The items of the patch list (other than deletions) must appear in the `$setElementOrder` list, in
/// the same relative order.
fn check_order_list(incoming: &[Value], order: &[Value], merge_key: &str, path: &str) -> Result<()> {
    if incoming.is_empty() || order.is_empty() {
        return Ok(());
    }
    let items: Vec<&Value> = incoming.iter().filter(|v| v.get(DIRECTIVE).is_none()).collect();
    let (mut i, mut j) = (0, 0);
    while i < items.len() && j < order.len() {
        if key_of(items[i], merge_key, path)? == key_of(&order[j], merge_key, path)? {
            i += 1;
        }
        j += 1;
    }
    if i < items.len() {
        return Err(PatchError::BadRequest(format!(
            "the order of the items of {path} in the patch does not match its $setElementOrder list: {} is \
             missing from it or out of order",
            items[i]
        )));
    }
    Ok(())
}

/// The identity of a list item: its merge key's value, or the item itself for a list of primitives.
fn key_of<'v>(item: &'v Value, merge_key: &str, path: &str) -> Result<&'v Value> {
    if merge_key.is_empty() {
        return Ok(item);
    }
    match item {
        Value::Object(map) => map.get(merge_key).ok_or_else(|| no_merge_key(item, merge_key, path)),
        other => Err(PatchError::BadRequest(format!(
            "{path} merges its items by {merge_key:?}, so each must be a map, but one is {}: {other}",
            type_name(other)
        ))),
    }
}

fn no_merge_key(item: &Value, merge_key: &str, path: &str) -> PatchError {
    PatchError::BadRequest(format!(
        "{path}: the item {item} does not contain the declared merge key {merge_key:?}; every item of this \
         list is identified by its {merge_key:?}"
    ))
}

fn position(list: &[Value], item: &Value, merge_key: &str) -> Option<usize> {
    let id = if merge_key.is_empty() { Some(item) } else { item.get(merge_key) };
    list.iter().position(|v| {
        let other = if merge_key.is_empty() { Some(v) } else { v.get(merge_key) };
        other == id
    })
}

/// Splits `merged` into the items `by` names and the others, keeping their order.
fn partition(merged: Vec<Value>, by: &[Value], merge_key: &str, path: &str) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut listed = Vec::new();
    let mut others = Vec::new();
    for item in merged {
        key_of(&item, merge_key, path)?;
        if position(by, &item, merge_key).is_some() { listed.push(item) } else { others.push(item) }
    }
    Ok((listed, others))
}

/// apimachinery's ordering of a merged list: the patch's items in the patch's order, the server-only
/// items in the server's order, and the two interleaved so a server-only item stays in front of a patch
/// item it was in front of on the server.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    path: &str,
) -> Result<Vec<Value>> {
    for item in patch_items.iter().chain(server_only.iter()).chain(patch_order.iter()).chain(server_order.iter()) {
        key_of(item, merge_key, path)?;
    }
    patch_items.sort_by_key(|v| position(patch_order, v, merge_key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v, merge_key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, merge_key), position(server_order, r, merge_key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    Ok(out)
}

/// Merges two lists of one field as its metadata says: merged (by merge key, or as a set of
/// primitives) under strategy `merge`, else the patch's list replaces the server's.
fn merge_list_field(
    current: Vec<Value>,
    incoming: Vec<Value>,
    meta: Meta,
    is_delete_list: bool,
    path: &str,
) -> Result<Vec<Value>> {
    if meta.strategy != "merge" {
        return Ok(incoming.into_iter().filter_map(clean_element).collect());
    }
    merge_list(current, incoming, meta, is_delete_list, path)
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum ElementKind {
    Map,
    Primitive,
}

/// The one kind of element both lists hold (lists of lists and mixed lists are refused).
fn element_kind(lists: [&[Value]; 2], path: &str) -> Result<Option<ElementKind>> {
    let mut kind: Option<(ElementKind, &'static str)> = None;
    for item in lists.into_iter().flatten() {
        let this = match item {
            Value::Array(_) => {
                return Err(PatchError::Invalid(format!("{path}: lists of lists are not supported")));
            }
            Value::Object(_) => ElementKind::Map,
            _ => ElementKind::Primitive,
        };
        let name = type_name(item);
        match kind {
            None => kind = Some((this, name)),
            Some((_, seen)) if seen != name => {
                return Err(PatchError::BadRequest(format!(
                    "{path}: list element types are not identical ({seen} and {name})"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(kind.map(|(k, _)| k))
}

fn merge_list(
    current: Vec<Value>,
    incoming: Vec<Value>,
    meta: Meta,
    is_delete_list: bool,
    path: &str,
) -> Result<Vec<Value>> {
    if current.is_empty() && incoming.is_empty() {
        return Ok(current);
    }
    let Some(kind) = element_kind([&current, &incoming], path)? else { return Ok(current) };
    let merge_key = if kind == ElementKind::Map { meta.merge_key } else { "" };
    let (server_order, patch_order, merged) = if kind == ElementKind::Primitive {
        if is_delete_list {
            return Ok(current.into_iter().filter(|v| !incoming.contains(v)).collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(current.len() + incoming.len());
        for v in current.iter().chain(incoming.iter()) {
            if !merged.contains(v) {
                merged.push(v.clone());
            }
        }
        (current, incoming, merged)
    } else {
        if merge_key.is_empty() {
            return Err(PatchError::BadRequest(format!(
                "{path}: cannot merge lists without a merge key; this field has no patch merge key, so its \
                 list can only be replaced"
            )));
        }
        let (current, incoming) = apply_list_directives(current, incoming, merge_key, path)?;
        let mut merged = current.clone();
        for item in &incoming {
            let id = key_of(item, merge_key, path)?;
            let found = merged.iter().position(|v| v.get(merge_key) == Some(id));
            match (found, item) {
                (Some(i), Value::Object(patch)) => {
                    let Value::Object(server) = std::mem::take(&mut merged[i]) else {
                        return Err(PatchError::Invalid(format!("{path}: an item on the server is not a map")));
                    };
                    let item_path = format!("{path}[{merge_key}={id}]");
                    merged[i] = Value::Object(merge_map(server, patch.clone(), meta.child, &item_path)?);
                }
                _ => merged.extend(clean(item.clone())),
            }
        }
        (current, incoming, merged)
    };
    let (patch_items, server_only) = partition(merged, &patch_order, merge_key, path)?;
    normalize_order(patch_items, server_only, &patch_order, &server_order, merge_key, path)
}

/// The `$patch` items of a merging list: `delete` removes the server's items with that key, `replace`
/// makes the rest of the patch list the whole list. Returns the server list and the patch list left.
fn apply_list_directives(
    mut current: Vec<Value>,
    incoming: Vec<Value>,
    merge_key: &str,
    path: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut rest = Vec::with_capacity(incoming.len());
    let mut replace = false;
    for item in incoming {
        let Some(directive) = item.get(DIRECTIVE) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let id = key_of(&item, merge_key, path)?.clone();
                for v in &current {
                    key_of(v, merge_key, path)?;
                }
                current.retain(|v| v.get(merge_key) != Some(&id));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(PatchError::BadRequest(format!(
                    "{path}: merging lists cannot yet be specified in the patch ($patch: merge in a list item)"
                )));
            }
            _ => return Err(bad_directive(directive, path, "replace or delete (on an item of a merging list)")),
        }
    }
    if replace {
        let replaced = rest.into_iter().filter_map(clean_element).collect();
        return Ok((replaced, Vec::new()));
    }
    Ok((current, rest))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const POD: Option<&str> = Some("core.v1.Pod");
    const DEPLOYMENT: Option<&str> = Some("apps.v1.Deployment");

    fn patched(ty: Option<&str>, original: Value, patch: Value) -> Value {
        apply(&original, &patch, ty).unwrap()
    }

    fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn root_types_of_served_kinds() {
        assert_eq!(root_type("v1", "Pod"), Some("core.v1.Pod"));
        assert_eq!(root_type("apps/v1", "Deployment"), Some("apps.v1.Deployment"));
        assert_eq!(root_type("batch/v1", "CronJob"), Some("batch.v1.CronJob"));
        assert_eq!(root_type("autoscaling/v1", "Scale"), Some("autoscaling.v1.Scale"));
        assert_eq!(root_type("example.com/v1", "Widget"), None);
        for res in crate::api::resources::RESOURCES {
            assert!(root_type(&res.api_version(), res.kind).is_some(), "{} has no row in FIELDS", res.kind);
        }
    }

    #[test]
    fn every_child_type_has_rows() {
        for row in FIELDS.iter().filter(|r| !r.child.is_empty()) {
            assert!(
                FIELDS.iter().any(|r| r.ty == row.child),
                "{}.{}: child {} has no rows",
                row.ty,
                row.field,
                row.child
            );
        }
    }

    #[test]
    fn containers_merge_by_name_and_keep_the_others() {
        let out = patched(
            POD,
            pod(json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}])),
            json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]));
    }

    #[test]
    fn a_new_item_is_added_in_front_of_server_only_items_after_it() {
        // The patch's items come first unless the server had an item in front of them.
        let out = patched(
            POD,
            pod(json!([{"name": "a", "image": "a"}])),
            json!({"spec": {"containers": [{"name": "z", "image": "z"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "z", "image": "z"}, {"name": "a", "image": "a"}]));
    }

    #[test]
    fn nested_merge_keys_env_ports_volume_mounts() {
        let original = pod(json!([{
            "name": "web",
            "image": "nginx",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }]));
        let out = patched(
            POD,
            original,
            json!({"spec": {"containers": [{
                "name": "web",
                "env": [{"name": "B", "value": "3"}],
                "ports": [{"containerPort": 443}],
                "volumeMounts": [{"mountPath": "/data", "readOnly": true}],
            }]}}),
        );
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["image"], "nginx");
        assert_eq!(c["env"], json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]));
        assert_eq!(c["ports"], json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}]));
        assert_eq!(c["volumeMounts"], json!([{"name": "data", "mountPath": "/data", "readOnly": true}]));
    }

    #[test]
    fn lists_without_a_merge_key_are_replaced() {
        let original = json!({"apiVersion": "v1", "kind": "Pod", "spec": {
            "containers": [{"name": "a", "args": ["x", "y"]}],
            "tolerations": [{"key": "k", "operator": "Exists"}],
        }});
        let out = patched(
            POD,
            original,
            json!({"spec": {"tolerations": [{"key": "other", "operator": "Exists"}], "containers": [{"name": "a", "args": ["z"]}]}}),
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "other", "operator": "Exists"}]));
        assert_eq!(out["spec"]["containers"][0]["args"], json!(["z"]));
    }

    #[test]
    fn null_deletes_a_key_and_a_missing_null_is_ignored() {
        let original = json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}});
        let out = patched(POD, original, json!({"metadata": {"labels": {"a": null, "c": null, "d": "4"}}}));
        assert_eq!(out["metadata"]["labels"], json!({"b": "2", "d": "4"}));
    }

    #[test]
    fn fields_keep_their_position() {
        let original =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": 1}, "status": {}});
        let out = patched(POD, original, json!({"spec": {"a": 2}}));
        let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["apiVersion", "kind", "metadata", "spec", "status"]);
    }

    #[test]
    fn map_directive_replace_and_delete() {
        let original = json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}}});
        let out = patched(
            POD,
            original,
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}, "annotations": {"$patch": "delete"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"c": "3"}));
        assert_eq!(out["metadata"]["annotations"], json!({}));
    }

    #[test]
    fn list_item_directive_delete() {
        let out = patched(
            POD,
            pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])),
            json!({"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "a"}, {"name": "c"}]));
    }

    #[test]
    fn list_directive_replace() {
        let out = patched(
            POD,
            pod(json!([{"name": "a", "image": "a"}, {"name": "b"}])),
            json!({"spec": {"containers": [{"name": "x", "image": "x"}, {"$patch": "replace"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "x", "image": "x"}]));
    }

    #[test]
    fn list_directive_merge_is_refused() {
        let err = apply(&pod(json!([{"name": "a"}])), &json!({"spec": {"containers": [{"$patch": "merge"}]}}), POD)
            .unwrap_err();
        assert!(
            matches!(&err, PatchError::BadRequest(m) if m.contains("merging lists cannot yet be specified")),
            "{err}"
        );
    }

    #[test]
    fn unknown_directive_is_refused_naming_it() {
        let err = apply(&pod(json!([])), &json!({"spec": {"$patch": "frobnicate"}}), POD).unwrap_err();
        assert!(matches!(&err, PatchError::BadRequest(m) if m.contains("frobnicate") && m.contains("spec")), "{err}");
    }

    #[test]
    fn retain_keys_clears_the_other_fields() {
        let original = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        }}});
        let out = patched(
            DEPLOYMENT,
            original,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}}),
        );
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn retain_keys_must_name_every_field_the_patch_sets() {
        let err = apply(
            &json!({"spec": {"strategy": {"type": "Recreate"}}}),
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}),
            DEPLOYMENT,
        )
        .unwrap_err();
        assert!(
            matches!(&err, PatchError::BadRequest(m) if m.contains("retainKeys") && m.contains("rollingUpdate")),
            "{err}"
        );
    }

    #[test]
    fn volumes_retain_keys_switch_the_source() {
        let original = json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}});
        let out = patched(
            POD,
            original,
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}),
        );
        assert_eq!(out["spec"]["volumes"], json!([{"name": "v", "configMap": {"name": "cm"}}]));
    }

    #[test]
    fn set_element_order_reorders_the_patch_items() {
        let out = patched(
            POD,
            pod(json!([{"name": "a"}, {"name": "b"}])),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "new"}],
            }}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}, {"name": "a", "image": "new"}]));
    }

    #[test]
    fn set_element_order_keeps_server_only_items_in_place() {
        // b is only on the server: it stays in front of c, which it preceded there.
        let out = patched(
            POD,
            pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                "containers": [{"name": "c", "image": "c2"}],
            }}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}, {"name": "c", "image": "c2"}, {"name": "a"}]));
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let err = apply(
            &pod(json!([{"name": "a"}, {"name": "b"}])),
            &json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "b", "image": "x"}],
            }}),
            POD,
        )
        .unwrap_err();
        assert!(
            matches!(&err, PatchError::BadRequest(m) if m.contains("$setElementOrder") && m.contains("containers")),
            "{err}"
        );
    }

    #[test]
    fn set_element_order_needs_a_field_name() {
        let err = apply(&pod(json!([])), &json!({"spec": {"$setElementOrder": []}}), POD).unwrap_err();
        assert!(matches!(&err, PatchError::BadRequest(m) if m.contains("setElementOrder list")), "{err}");
    }

    #[test]
    fn finalizers_merge_as_a_set_of_primitives() {
        let original = json!({"metadata": {"name": "p", "finalizers": ["a", "b"]}});
        let out = patched(POD, original, json!({"metadata": {"finalizers": ["b", "c"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    }

    #[test]
    fn delete_from_primitive_list() {
        let original = json!({"metadata": {"name": "p", "finalizers": ["a", "b", "c"]}});
        let out = patched(
            POD,
            original,
            json!({"metadata": {
                "$setElementOrder/finalizers": ["c", "a"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
            }}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a"]));
        // Deleting from a list the object does not have leaves it absent.
        let out =
            patched(POD, json!({"metadata": {}}), json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}));
        assert_eq!(out["metadata"], json!({}));
    }

    #[test]
    fn owner_references_merge_by_uid_and_conditions_by_type() {
        let original = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
        let out = patched(
            POD,
            original,
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b2"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(out["metadata"]["ownerReferences"], json!([{"uid": "1", "name": "a"}, {"uid": "2", "name": "b2"}]));
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}])
        );
    }

    #[test]
    fn service_ports_merge_by_port_and_template_containers_by_name() {
        let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        let out = patched(Some("core.v1.Service"), svc, json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}));
        assert_eq!(out["spec"]["ports"], json!([{"port": 80, "targetPort": 9090}, {"port": 443}]));

        let cronjob = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}}});
        let out = patched(
            Some("batch.v1.CronJob"),
            cronjob,
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "x"}]}}}}}}),
        );
        assert_eq!(
            out.pointer("/spec/jobTemplate/spec/template/spec/containers").unwrap(),
            &json!([{"name": "a"}, {"name": "b", "image": "x"}])
        );
    }

    #[test]
    fn missing_merge_key_is_refused_naming_the_field() {
        let err =
            apply(&pod(json!([{"name": "a"}])), &json!({"spec": {"containers": [{"image": "x"}]}}), POD).unwrap_err();
        assert!(
            matches!(&err, PatchError::BadRequest(m) if m.contains("spec.containers") && m.contains("\"name\"")),
            "{err}"
        );
    }

    #[test]
    fn lists_of_lists_and_mixed_lists_are_refused() {
        let original = json!({"metadata": {"finalizers": ["a"]}});
        let err = apply(&original, &json!({"metadata": {"finalizers": [["b"]]}}), POD).unwrap_err();
        assert!(matches!(&err, PatchError::Invalid(m) if m.contains("lists of lists")), "{err}");
        let err = apply(&original, &json!({"metadata": {"finalizers": [1]}}), POD).unwrap_err();
        assert!(matches!(&err, PatchError::BadRequest(m) if m.contains("metadata.finalizers")), "{err}");
    }

    #[test]
    fn a_patch_must_be_an_object() {
        let err = apply(&pod(json!([])), &json!([{"op": "add"}]), POD).unwrap_err();
        assert!(matches!(&err, PatchError::BadRequest(m) if m.contains("JSON object")), "{err}");
    }

    #[test]
    fn new_values_lose_their_directives_and_nulls() {
        let out = patched(
            POD,
            json!({"spec": {}}),
            json!({"spec": {"containers": [
                {"name": "a", "env": [{"name": "X", "value": null}], "$setElementOrder/env": [{"name": "X"}]},
                {"name": "gone", "$patch": "delete"},
            ]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "a", "env": [{"name": "X"}]}]));
    }

    #[test]
    fn a_type_change_takes_the_patch_value() {
        let out = patched(POD, json!({"spec": {"nodeSelector": {"a": "b"}}}), json!({"spec": {"nodeSelector": "x"}}));
        assert_eq!(out["spec"]["nodeSelector"], "x");
    }

    #[test]
    fn unknown_types_get_json_merge_patch() {
        let out = apply(
            &json!({"spec": {"items": [{"name": "a"}], "keep": 1}}),
            &json!({"spec": {"items": [{"name": "b"}], "$retainKeys": ["items"]}}),
            None,
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"items": [{"name": "b"}], "keep": 1}}));
    }

    #[test]
    fn whole_object_directive_delete_empties_it() {
        let out = patched(POD, json!({"metadata": {"name": "p"}}), json!({"$patch": "delete"}));
        assert_eq!(out, json!({}));
    }
}
