//! Object semantics over the store, as kube-apiserver's generic registry implements them: create (uid,
//! timestamps, generateName, namespace checks, defaulting, cluster IP and node port allocation), get, list
//! (selectors, paging), update (optimistic concurrency, status subresources, generation), and delete
//! (graceful pod deletion, finalizers, namespace termination).
//!
//! Objects are stored as their JSON without `metadata.resourceVersion`; the store's `mod_revision` is the
//! resourceVersion and is set on every object read back. Store calls block on disk I/O, so they run on
//! tokio's blocking pool.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::AppState;
use super::defaults;
use super::errors::{ApiError, ApiResult};
use super::resources::{self, Resource};
use super::selectors::{FieldSelector, LabelSelector};
use super::stored::{self, Sparse};
use crate::store::{KeyValue, Revision, StoreError, WatchedStore};

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// The main resource: everything but status (for kinds with a status subresource).
    Main,
    /// The status subresource: only `.status`.
    Status,
    /// `namespaces/{name}/finalize`: only `spec.finalizers`.
    Finalize,
    /// Internal writes that may change anything but identity (bindings, scale, deletion bookkeeping).
    Any,
}

/// The list query options this server honours.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// One page of a list, the objects as stored (without their resourceVersion; [`write_stamped`] adds it).
#[derive(Debug)]
pub struct StoredListPage {
    pub items: Vec<KeyValue>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// How many objects a list reads from the store at a time (without a limit, or with selectors).
const LIST_CHUNK: usize = 500;

/// Delete options from the body or the query.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    /// `dryRun=All` (query or body): nothing is deleted (see `validation::delete_dry_run`).
    pub dry_run: bool,
}

/// Now, as apimachinery serialises `metav1.Time` (whole seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn rfc3339_after(seconds: i64) -> String {
    let ts = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Decodes a stored object and stamps its resourceVersion.
pub fn decode(kv: &KeyValue) -> ApiResult<Value> {
    decode_at(&kv.value, kv.mod_revision)
}

pub fn decode_at(bytes: &[u8], revision: Revision) -> ApiResult<Value> {
    let mut obj: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(revision.to_string()));
    }
    Ok(obj)
}

/// Appends a stored object's JSON with its resourceVersion to `out`: a byte-level edit of the stored
/// bytes ([`stored::stamp_resource_version`]), or the full decode when those bytes are not what the
/// scanner expects (which also reports a stored value that is not JSON).
pub fn write_stamped(kv: &KeyValue, out: &mut Vec<u8>) -> ApiResult<()> {
    if stored::stamp_resource_version(&kv.value, kv.mod_revision, out) {
        return Ok(());
    }
    let obj = decode(kv)?;
    serde_json::to_writer(&mut *out, &obj).map_err(|e| ApiError::internal(format!("encoding an object: {e}")))
}

fn encode(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata was just made an object")
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn finalizers_empty(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty)
}

/// RFC 1123 subdomain (most names) or label (namespaces, services).
fn name_error(name: &str, label_only: bool) -> Option<String> {
    let max = if label_only { 63 } else { 253 };
    let ok_chars =
        name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label_only && c == '.'));
    let ok_ends =
        name.starts_with(|c: char| c.is_ascii_alphanumeric()) && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !name.is_empty() && name.len() <= max && ok_chars && ok_ends {
        return None;
    }
    Some(if label_only {
        format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case \
             alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. \
             'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    } else {
        format!(
            "metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case \
             alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    })
}

/// kube-apiserver's generateName suffix: five characters from an alphabet without vowels.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

fn encode_continue(revision: Revision, key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": key});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> ApiResult<(Revision, String)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE.decode(token).map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rev = value["rv"].as_i64().ok_or_else(bad)?;
    let start = value["start"].as_str().ok_or_else(bad)?.to_string();
    Ok((rev, start))
}

/// Whether the object matches both selectors.
pub fn selected(obj: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches(obj) && fields.matches(obj)
}

impl AppState {
    /// Runs a store operation on the blocking pool.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&WatchedStore) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .unwrap_or_else(|e| Err(StoreError::Backend(format!("store task failed: {e}"))))
    }

    /// One object and its revision; 404 Status when absent.
    pub async fn get_obj(&self, res: &Resource, ns: Option<&str>, name: &str) -> ApiResult<(Value, Revision)> {
        let key = res.key(ns, name);
        match self.blocking(move |s| s.store().get(&key)).await.map_err(ApiError::from_store)? {
            Some(kv) => Ok((decode(&kv)?, kv.mod_revision)),
            None => Err(ApiError::not_found(&res.qualified(), name, res.group, res.plural)),
        }
    }

    /// One page of objects matching the selectors, at one consistent revision across pages.
    pub async fn list_objs(&self, res: &Resource, ns: Option<&str>, opts: &ListOptions) -> ApiResult<ListPage> {
        let page = self.list_stored(res, ns, opts).await?;
        let items = page.items.iter().map(decode).collect::<ApiResult<Vec<_>>>()?;
        Ok(ListPage { items, revision: page.revision, continue_token: page.continue_token })
    }

    /// [`Self::list_objs`] without decoding: the selected objects as stored (see [`write_stamped`]).
    /// Selectors decode only the fields they read ([`Sparse`]); without selectors nothing is decoded.
    pub async fn list_stored(&self, res: &Resource, ns: Option<&str>, opts: &ListOptions) -> ApiResult<StoredListPage> {
        let prefix = res.list_prefix(ns);
        let (mut at, mut after) = match &opts.continue_token {
            Some(token) if !token.is_empty() => {
                let (rev, start) = decode_continue(token)?;
                (Some(rev), Some(start))
            }
            _ => (None, None),
        };
        let filtering = !opts.labels.is_empty() || !opts.fields.is_empty();
        let sparse = Sparse::for_selectors(&opts.labels, &opts.fields);
        let mut items = Vec::new();
        loop {
            let want = opts.limit.map(|l| l.saturating_sub(items.len()));
            // Reading a page of the wanted size is exact without selectors; with them, read larger chunks.
            let chunk = match want {
                Some(n) if !filtering => n.max(1),
                _ => LIST_CHUNK,
            };
            let (p, a) = (prefix.clone(), after.clone());
            let (kvs, revision) = self
                .blocking(move |s| s.store().list(&p, Some(chunk), a.as_deref(), at))
                .await
                .map_err(|err| match err {
                    StoreError::Compacted { .. } => ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can \
                         start a new list without the continue parameter.",
                    ),
                    other => ApiError::from_store(other),
                })?;
            at = Some(revision);
            let exhausted = kvs.len() < chunk;
            let last_key = kvs.last().map(|kv| kv.key.clone());
            for kv in kvs {
                after = Some(kv.key.clone());
                if filtering {
                    let view = sparse
                        .decode(&kv.value)
                        .map_err(|e| ApiError::internal(format!("stored object is not JSON: {e}")))?;
                    if !selected(&view, &opts.labels, &opts.fields) {
                        continue;
                    }
                }
                items.push(kv);
                if opts.limit.is_some_and(|l| items.len() >= l) {
                    let key = &items[items.len() - 1].key;
                    let is_last = exhausted && Some(key) == last_key.as_ref();
                    let token = (!is_last).then(|| encode_continue(revision, key));
                    return Ok(StoredListPage { items, revision, continue_token: token });
                }
            }
            if exhausted {
                return Ok(StoredListPage { items, revision, continue_token: None });
            }
        }
    }

    /// Creates an object (POST). `ns` is the namespace of the URL.
    pub async fn create_obj(&self, res: &Resource, ns: Option<&str>, obj: Value) -> ApiResult<Value> {
        self.create_obj_opts(res, ns, obj, false).await
    }

    /// Creates an object; a dry run (`dryRun=All`) does everything but the write (and so allocates
    /// nothing: a service's address and node ports exist only in the answer).
    pub async fn create_obj_opts(
        &self,
        res: &Resource,
        ns: Option<&str>,
        mut obj: Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let m = meta(&mut obj);
        let given_name = m.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        let generate = m.get("generateName").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        if given_name.is_none() && generate.is_none() {
            return Err(ApiError::invalid(
                res.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        if res.namespaced {
            let ns = ns.ok_or_else(|| ApiError::bad_request("the namespace of the object must be given in the URL"))?;
            if let Some(body_ns) = m.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty())
                && body_ns != ns
            {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        for field in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
            m.remove(field);
        }
        if obj.get("spec").is_some()
            || matches!(res.kind, "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" | "Pod")
        {
            meta(&mut obj).insert("generation".into(), json!(1));
        }
        defaults::apply(res.group, res.kind, &mut obj);
        super::validation::validate(res, &obj, None)?;
        if res.namespaced {
            let ns = ns.unwrap_or_default();
            self.check_namespace_open(res, ns, given_name.as_deref().unwrap_or_default()).await?;
        }
        // Allocation and the create happen under one lock, so two services cannot get the same address.
        let _alloc = if res.kind == "Service" && res.group.is_empty() {
            let guard = self.alloc_lock.lock().await;
            self.allocate_service(&mut obj, None).await?;
            Some(guard)
        } else {
            None
        };
        for _attempt in 0..8 {
            let name = match (&given_name, &generate) {
                (Some(name), _) => name.clone(),
                (None, Some(prefix)) => format!("{prefix}{}", random_suffix()),
                (None, None) => unreachable!("checked above"),
            };
            if let Some(problem) = name_error(&name, matches!(res.kind, "Namespace" | "Service")) {
                return Err(ApiError::invalid(res.kind, &name, &problem));
            }
            meta(&mut obj).insert("name".into(), json!(name));
            let key = res.key(ns, &name);
            if dry_run {
                let k = key.clone();
                match self.blocking(move |s| s.store().get(&k)).await.map_err(ApiError::from_store)? {
                    Some(_) if given_name.is_none() => continue,
                    Some(_) => return Err(ApiError::already_exists(&res.qualified(), &name, res.group, res.plural)),
                    None => return Ok(obj),
                }
            }
            let bytes = encode(&obj);
            match self.blocking(move |s| s.create(&key, &bytes)).await {
                Ok(rev) => {
                    meta(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
                    return Ok(obj);
                }
                Err(StoreError::AlreadyExists) if given_name.is_none() => continue,
                Err(StoreError::AlreadyExists) => {
                    return Err(ApiError::already_exists(&res.qualified(), &name, res.group, res.plural));
                }
                Err(err) => return Err(ApiError::from_store(err)),
            }
        }
        Err(ApiError::new(500, "AlreadyExists", "could not find a free generated name; try again"))
    }

    /// 404 when the namespace does not exist, 403 when it is being deleted.
    async fn check_namespace_open(&self, res: &Resource, ns: &str, name: &str) -> ApiResult<()> {
        let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
        let (namespace, _) = self.get_obj(namespaces, None, ns).await?;
        if namespace.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being \
                     terminated",
                    res.qualified()
                ),
            ));
        }
        Ok(())
    }

    /// Read-modify-write with optimistic concurrency. `f` maps the current object to the desired one.
    /// `precondition` is the resourceVersion the client sent (a PUT body's, or one inside a patch): when it
    /// is not the current one, or the object changes before the write lands, the update fails with 409
    /// Conflict. Without one, a lost race is retried on the newer object, as kube-apiserver does.
    pub async fn update_with<F>(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
        precondition: Option<String>,
        f: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(&Value) -> ApiResult<Value>,
    {
        self.update_with_opts(res, ns, name, sub, precondition, false, f).await
    }

    /// [`Self::update_with`]; a dry run (`dryRun=All`) does everything but the write.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_with_opts<F>(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
        precondition: Option<String>,
        dry_run: bool,
        mut f: F,
    ) -> ApiResult<Value>
    where
        F: FnMut(&Value) -> ApiResult<Value>,
    {
        let conflict = || ApiError::conflict(&res.qualified(), name, res.group, res.plural);
        for _attempt in 0..32 {
            let (current, rev) = self.get_obj(res, ns, name).await?;
            let mut new = f(&current)?;
            if !new.is_object() {
                return Err(ApiError::bad_request("the request body must be a JSON object"));
            }
            let strict = precondition.is_some();
            if precondition.as_ref().is_some_and(|w| *w != rev.to_string()) {
                return Err(conflict());
            }
            let _alloc = if res.kind == "Service" && res.group.is_empty() && matches!(sub, Sub::Main | Sub::Any) {
                Some(self.alloc_lock.lock().await)
            } else {
                None
            };
            self.prepare_update(res, &current, &mut new, sub).await?;
            if strip_rv(&new) == strip_rv(&current) {
                return Ok(current);
            }
            if dry_run {
                return Ok(new);
            }
            let key = res.key(ns, name);
            if should_delete_on_update(res, &new) {
                let k = key.clone();
                return match self.blocking(move |s| s.delete(&k, Some(rev))).await {
                    Ok(_) => Ok(new),
                    Err(StoreError::Conflict { .. }) if !strict => continue,
                    Err(StoreError::Conflict { .. }) => Err(conflict()),
                    Err(StoreError::NotFound) => {
                        Err(ApiError::not_found(&res.qualified(), name, res.group, res.plural))
                    }
                    Err(err) => Err(ApiError::from_store(err)),
                };
            }
            let bytes = encode(&new);
            match self.blocking(move |s| s.update(&key, &bytes, rev)).await {
                Ok(new_rev) => {
                    meta(&mut new).insert("resourceVersion".into(), json!(new_rev.to_string()));
                    return Ok(new);
                }
                Err(StoreError::Conflict { .. }) if !strict => continue,
                Err(StoreError::Conflict { .. }) => return Err(conflict()),
                Err(StoreError::NotFound) => {
                    return Err(ApiError::not_found(&res.qualified(), name, res.group, res.plural));
                }
                Err(err) => return Err(ApiError::from_store(err)),
            }
        }
        Err(conflict())
    }

    /// Applies the rules of an update: immutable identity, which parts `sub` may change, defaulting,
    /// generation, service allocation.
    async fn prepare_update(&self, res: &Resource, current: &Value, new: &mut Value, sub: Sub) -> ApiResult<()> {
        match sub {
            Sub::Main => {
                if res.status {
                    match current.get("status") {
                        Some(status) => new["status"] = status.clone(),
                        None => {
                            if let Some(map) = new.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
            }
            Sub::Status => {
                let mut merged = current.clone();
                merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
                if merged["status"].is_null()
                    && let Some(map) = merged.as_object_mut()
                {
                    map.remove("status");
                }
                *new = merged;
            }
            Sub::Finalize => {
                let mut merged = current.clone();
                let finalizers = new.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
                if !merged.get("spec").is_some_and(Value::is_object) {
                    merged["spec"] = json!({});
                }
                merged["spec"]["finalizers"] = finalizers;
                *new = merged;
            }
            Sub::Any => {}
        }
        new["apiVersion"] = json!(res.api_version());
        new["kind"] = json!(res.kind);
        let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
        let m = meta(new);
        for field in ["name", "namespace", "uid", "creationTimestamp", "generation"] {
            match cur_meta.get(field) {
                Some(v) => {
                    m.insert(field.into(), v.clone());
                }
                None => {
                    m.remove(field);
                }
            }
        }
        if sub != Sub::Any {
            for field in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
                match cur_meta.get(field) {
                    Some(v) => {
                        m.insert(field.into(), v.clone());
                    }
                    None => {
                        m.remove(field);
                    }
                }
            }
        }
        defaults::apply(res.group, res.kind, new);
        if sub == Sub::Main {
            super::validation::validate(res, new, Some(current))?;
        }
        if current.get("spec") != new.get("spec") && current.pointer("/metadata/generation").is_some() {
            let generation = current.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            meta(new).insert("generation".into(), json!(generation + 1));
        }
        if res.kind == "Service" && res.group.is_empty() {
            self.allocate_service(new, Some(current)).await?;
        }
        Ok(())
    }

    /// Deletes an object as kube-apiserver does: preconditions, graceful pod deletion, finalizers and
    /// namespace termination leave the object in place with a deletionTimestamp; otherwise it is removed.
    /// Returns the object as it is after the call.
    pub async fn delete_obj(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        for _attempt in 0..32 {
            let (current, rev) = self.get_obj(res, ns, name).await?;
            if let Some(uid) = &opts.precondition_uid {
                let actual = str_at(&current, "/metadata/uid").unwrap_or_default();
                if uid != actual {
                    return Err(ApiError::conflict_message(
                        &res.qualified(),
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                    ));
                }
            }
            if let Some(wanted) = &opts.precondition_resource_version
                && *wanted != rev.to_string()
            {
                return Err(ApiError::conflict_message(
                    &res.qualified(),
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {wanted}, ResourceVersion in meta: {rev}"
                    ),
                ));
            }
            let deleting = current.pointer("/metadata/deletionTimestamp").is_some();
            let mut next = current.clone();
            if res.kind == "Namespace" && res.group.is_empty() {
                let spec_done = next.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty);
                if deleting && !(spec_done && finalizers_empty(&next)) {
                    return Ok(current);
                }
                if !deleting {
                    let m = meta(&mut next);
                    m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
                    m.insert("deletionGracePeriodSeconds".into(), json!(0));
                    if !next.get("status").is_some_and(Value::is_object) {
                        next["status"] = json!({});
                    }
                    next["status"]["phase"] = json!("Terminating");
                    match self.write_if_unchanged(res, ns, name, &next, rev).await? {
                        Some(obj) => return Ok(obj),
                        None => continue,
                    }
                }
            } else {
                let grace = if res.kind == "Pod" && res.group.is_empty() {
                    let phase = str_at(&current, "/status/phase").unwrap_or_default();
                    if str_at(&current, "/spec/nodeName").is_none() || matches!(phase, "Succeeded" | "Failed") {
                        0
                    } else {
                        opts.grace_period_seconds
                            .or_else(|| current.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64))
                            .unwrap_or(30)
                            .max(0)
                    }
                } else {
                    0
                };
                let current_grace = current.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
                let finalizers_changed = apply_propagation(&mut next, opts.propagation_policy.as_deref());
                let has_finalizers = !finalizers_empty(&next);
                if grace > 0 || has_finalizers {
                    // Graceful: the agent stops the containers and deletes with grace 0. Finalizers: their
                    // owners remove them (the garbage collector removes `orphan` and `foregroundDeletion`),
                    // and the update that empties them deletes the object.
                    if deleting && current_grace.is_some_and(|g| g <= grace) && !finalizers_changed {
                        return Ok(current);
                    }
                    let m = meta(&mut next);
                    if !deleting || grace < current_grace.unwrap_or(i64::MAX) {
                        m.insert("deletionTimestamp".into(), json!(rfc3339_after(grace)));
                    }
                    if !deleting && let Some(generation) = m.get("generation").and_then(Value::as_i64) {
                        // kube-apiserver bumps the generation when it starts deleting an object it keeps.
                        m.insert("generation".into(), json!(generation + 1));
                    }
                    let grace = if deleting { grace.min(current_grace.unwrap_or(grace)) } else { grace };
                    m.insert("deletionGracePeriodSeconds".into(), json!(grace));
                    match self.write_if_unchanged(res, ns, name, &next, rev).await? {
                        Some(obj) => return Ok(obj),
                        None => continue,
                    }
                }
            }
            let key = res.key(ns, name);
            match self.blocking(move |s| s.delete(&key, Some(rev))).await {
                Ok(_) => return Ok(current),
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound) => {
                    return Err(ApiError::not_found(&res.qualified(), name, res.group, res.plural));
                }
                Err(err) => return Err(ApiError::from_store(err)),
            }
        }
        Err(ApiError::conflict(&res.qualified(), name, res.group, res.plural))
    }

    /// Writes `obj` if the key is still at `rev`; `None` when it changed meanwhile (the caller retries).
    async fn write_if_unchanged(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        obj: &Value,
        rev: Revision,
    ) -> ApiResult<Option<Value>> {
        let key = res.key(ns, name);
        let bytes = encode(obj);
        match self.blocking(move |s| s.update(&key, &bytes, rev)).await {
            Ok(new_rev) => {
                let mut obj = obj.clone();
                meta(&mut obj).insert("resourceVersion".into(), json!(new_rev.to_string()));
                Ok(Some(obj))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(StoreError::NotFound) => Err(ApiError::not_found(&res.qualified(), name, res.group, res.plural)),
            Err(err) => Err(ApiError::from_store(err)),
        }
    }

    /// Cluster IP (from 10.43.0.0/16) and node port (30000-32767) allocation for a service being created
    /// (`old` None) or updated. The caller holds `alloc_lock`.
    async fn allocate_service(&self, svc: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        let services = resources::find("", "v1", "services").expect("services are served");
        let prefix = services.prefix();
        let (kvs, _) =
            self.blocking(move |s| s.store().list(&prefix, None, None, None)).await.map_err(ApiError::from_store)?;
        let own_uid = old.and_then(|o| str_at(o, "/metadata/uid")).map(str::to_string);
        let mut used_ips = HashSet::new();
        let mut used_ports = HashSet::new();
        for kv in &kvs {
            let Ok(other) = serde_json::from_slice::<Value>(&kv.value) else { continue };
            if own_uid.is_some() && str_at(&other, "/metadata/uid").map(str::to_string) == own_uid {
                continue;
            }
            if let Some(ip) = str_at(&other, "/spec/clusterIP") {
                used_ips.insert(ip.to_string());
            }
            for port in other.pointer("/spec/ports").and_then(Value::as_array).into_iter().flatten() {
                if let Some(p) = port.get("nodePort").and_then(Value::as_i64) {
                    used_ports.insert(p);
                }
            }
        }
        let name = str_at(svc, "/metadata/name").unwrap_or_default().to_string();
        let spec = &mut svc["spec"];
        let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
        if ty == "ExternalName" {
            return Ok(());
        }
        let old_ip = old.and_then(|o| str_at(o, "/spec/clusterIP")).map(str::to_string);
        let ip = match spec.get("clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            Some("None") => "None".to_string(),
            Some(ip) if Some(ip) == old_ip.as_deref() => ip.to_string(),
            Some(ip) => {
                let parsed: Option<Ipv4Addr> = ip.parse().ok();
                let in_range = parsed.is_some_and(|a| a.octets()[0] == 10 && a.octets()[1] == 43);
                if !in_range {
                    return Err(ApiError::invalid(
                        "Service",
                        &name,
                        &format!(
                            "spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
                        ),
                    ));
                }
                if used_ips.contains(ip) {
                    return Err(ApiError::invalid(
                        "Service",
                        &name,
                        &format!(
                            "spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
                        ),
                    ));
                }
                ip.to_string()
            }
            None => match old_ip {
                Some(ip) => ip,
                None => allocate_ip(&used_ips)
                    .ok_or_else(|| ApiError::internal("failed to allocate a serviceIP: range is full".to_string()))?,
            },
        };
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        let old_ports: Vec<Value> =
            old.and_then(|o| o.pointer("/spec/ports")).and_then(Value::as_array).cloned().unwrap_or_default();
        let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut() {
                if !wants_node_ports {
                    if let Some(map) = port.as_object_mut() {
                        map.remove("nodePort");
                    }
                    continue;
                }
                if let Some(p) = port.get("nodePort").and_then(Value::as_i64) {
                    if used_ports.contains(&p) {
                        return Err(ApiError::invalid(
                            "Service",
                            &name,
                            &format!("spec.ports[0].nodePort: Invalid value: {p}: provided port is already allocated"),
                        ));
                    }
                    if !(30000..=32767).contains(&p) {
                        return Err(ApiError::invalid(
                            "Service",
                            &name,
                            &format!(
                                "spec.ports[0].nodePort: Invalid value: {p}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                            ),
                        ));
                    }
                    used_ports.insert(p);
                    continue;
                }
                let reused = old_ports
                    .iter()
                    .find(|o| o.get("port") == port.get("port") && o.get("protocol") == port.get("protocol"))
                    .and_then(|o| o.get("nodePort"))
                    .and_then(Value::as_i64)
                    .filter(|p| !used_ports.contains(p));
                let p = match reused {
                    Some(p) => p,
                    None => allocate_port(&used_ports).ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full".to_string())
                    })?,
                };
                used_ports.insert(p);
                port["nodePort"] = json!(p);
            }
        }
        Ok(())
    }

    /// First-start objects: the well-known namespaces and the `default/kubernetes` service.
    pub async fn bootstrap(&self, api_ip: std::net::IpAddr, api_port: u16) -> ApiResult<()> {
        let namespaces = resources::find("", "v1", "namespaces").expect("namespaces are served");
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            match self.create_obj(namespaces, None, json!({"metadata": {"name": ns}})).await {
                Ok(_) => {}
                Err(err) if err.reason == "AlreadyExists" => {}
                Err(err) => return Err(err),
            }
        }
        let services = resources::find("", "v1", "services").expect("services are served");
        let kubernetes = json!({
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}]},
        });
        if self.get_obj(services, Some("default"), "kubernetes").await.is_err() {
            match self.create_obj(services, Some("default"), kubernetes).await {
                Ok(_) => {}
                Err(err) if err.reason == "AlreadyExists" => {}
                Err(err) => return Err(err),
            }
        }
        // The service has no selector, so no controller fills its endpoints: the API server does, with
        // its own address (what kube-apiserver's endpoint reconciler does).
        let (ip, family) = (api_ip.to_string(), if api_ip.is_ipv4() { "IPv4" } else { "IPv6" });
        let labels = json!({
            "kubernetes.io/service-name": "kubernetes",
            "endpointslice.kubernetes.io/managed-by": "flotilla-apiserver",
        });
        let slice = json!({
            "metadata": {"name": "kubernetes", "labels": labels},
            "addressType": family,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}}],
            "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}],
        });
        let slices = resources::find("discovery.k8s.io", "v1", "endpointslices").expect("endpointslices are served");
        self.upsert(slices, "default", "kubernetes", slice).await?;
        let endpoints = json!({
            "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": api_port, "protocol": "TCP"}]}],
        });
        let legacy = resources::find("", "v1", "endpoints").expect("endpoints are served");
        self.upsert(legacy, "default", "kubernetes", endpoints).await
    }

    /// Creates the object, or replaces everything but its identity when it exists.
    async fn upsert(&self, res: &Resource, ns: &str, name: &str, obj: Value) -> ApiResult<()> {
        match self.create_obj(res, Some(ns), obj.clone()).await {
            Ok(_) => Ok(()),
            Err(err) if err.reason == "AlreadyExists" => {
                self.update_with(res, Some(ns), name, Sub::Main, None, |_| Ok(obj.clone())).await.map(|_| ())
            }
            Err(err) => Err(err),
        }
    }
}

/// The garbage collector's finalizers a deletion's propagation policy asks for, as kube-apiserver's
/// `deletionFinalizersForGarbageCollection`: Orphan adds `orphan`, Foreground adds `foregroundDeletion`
/// (each removing the other), Background removes both; no policy leaves them as they are (our default
/// policy for every kind is Background, which needs no finalizer). Returns whether the list changed.
fn apply_propagation(obj: &mut Value, policy: Option<&str>) -> bool {
    let Some(policy) = policy else { return false };
    let current: Vec<String> = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let (add, remove) = match policy {
        "Orphan" => (Some(FINALIZER_ORPHAN), vec![FINALIZER_FOREGROUND]),
        "Foreground" => (Some(FINALIZER_FOREGROUND), vec![FINALIZER_ORPHAN]),
        _ => (None, vec![FINALIZER_ORPHAN, FINALIZER_FOREGROUND]),
    };
    let mut next: Vec<String> = current.iter().filter(|f| !remove.contains(&f.as_str())).cloned().collect();
    if let Some(add) = add
        && !next.iter().any(|f| f == add)
    {
        next.push(add.to_string());
    }
    if next == current {
        return false;
    }
    let m = meta(obj);
    if next.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(next));
    }
    true
}

/// The garbage collector's finalizer for `propagationPolicy: Orphan`.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// The garbage collector's finalizer for `propagationPolicy: Foreground`.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

fn strip_rv(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    obj
}

/// kube-apiserver's rule: an update that leaves a deleting object without finalizers and with a zero
/// grace period removes it (a namespace also waits for its `spec.finalizers`).
fn should_delete_on_update(res: &Resource, obj: &Value) -> bool {
    if obj.pointer("/metadata/deletionTimestamp").is_none() || !finalizers_empty(obj) {
        return false;
    }
    if obj.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64) != Some(0) {
        return false;
    }
    if res.kind == "Namespace" && res.group.is_empty() {
        return obj.pointer("/spec/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty);
    }
    true
}

fn allocate_ip(used: &HashSet<String>) -> Option<String> {
    // Random first (like kube-apiserver), so addresses are not reused right after a delete; then a scan.
    for _ in 0..64 {
        let n: u16 = rand::random();
        let ip = Ipv4Addr::new(10, 43, (n >> 8) as u8, n as u8);
        if n > 10 && n != u16::MAX && !used.contains(&ip.to_string()) {
            return Some(ip.to_string());
        }
    }
    (11..u16::MAX).map(|n| Ipv4Addr::new(10, 43, (n >> 8) as u8, n as u8).to_string()).find(|ip| !used.contains(ip))
}

fn allocate_port(used: &HashSet<i64>) -> Option<i64> {
    for _ in 0..64 {
        let p = rand::random_range(30000..=32767);
        if !used.contains(&p) {
            return Some(p);
        }
    }
    (30000..=32767).find(|p| !used.contains(p))
}
