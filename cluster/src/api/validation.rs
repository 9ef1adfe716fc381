//! Request validation as kube-apiserver does it, in its wording (kubectl prints these messages verbatim):
//!
//! - field validation (`fieldValidation=Strict|Warn|Ignore`, Warn when absent): a body is decoded into the
//!   k8s-openapi type of its kind; unknown and duplicate fields fail the request (Strict, 400 naming every
//!   one), become `Warning` headers (Warn), or are dropped (Ignore; kube-apiserver drops them too), and a
//!   value of the wrong type is always a 400 naming the field;
//! - object validation: the 422 `Invalid` Status with `details.causes` for the mistakes learners make
//!   (required fields, selector and template labels, ports, enums, immutable fields);
//! - `dryRun`: only `All` is a dry run, anything else but empty is a 400.
//!
//! Names (`metadata.name` as a DNS-1123 subdomain or label) are checked by the registry when it names the
//! object (`generateName` is resolved there).

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::HeaderValue;
use axum::response::Response;
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::openapi::{KindVisitor, with_kind};
use super::resources::Resource;

/// What to do with unknown or duplicate fields in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

/// The `fieldValidation` query parameter (Warn when absent, as kube-apiserver defaults it).
pub fn field_validation(query: &HashMap<String, String>) -> ApiResult<FieldValidation> {
    match query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
        ))),
    }
}

/// The `dryRun` query parameter: true for `All`, false when absent; 400 for anything else.
pub fn dry_run(query: &HashMap<String, String>) -> ApiResult<bool> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => {
            Err(ApiError::bad_request(format!("dryRun: Unsupported value: \"{other}\": supported values: \"All\"")))
        }
    }
}

/// A delete's dry run: `dryRun=All` in the query, or `"dryRun": ["All"]` in its DeleteOptions body (where
/// kubectl puts it).
pub fn delete_dry_run(query: &HashMap<String, String>, body: &Value) -> ApiResult<bool> {
    if dry_run(query)? {
        return Ok(true);
    }
    match body.get("dryRun") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Array(items)) => {
            for item in items {
                if item.as_str() != Some("All") {
                    return Err(ApiError::bad_request(format!(
                        "dryRun: Unsupported value: {item}: supported values: \"All\""
                    )));
                }
            }
            Ok(!items.is_empty())
        }
        Some(other) => Err(ApiError::bad_request(format!("dryRun: Invalid value: {other}: must be a list"))),
    }
}

/// Adds one `Warning: 299 - "..."` header per warning (kubectl prints each as `Warning: ...`).
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", value);
        }
    }
    resp
}

/// A path as kube-apiserver prints it: `spec.containers[0].image`.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> Vec<Segment> {
    let mut segments = match path {
        serde_ignored::Path::Root => return Vec::new(),
        serde_ignored::Path::Seq { parent, .. }
        | serde_ignored::Path::Map { parent, .. }
        | serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => ignored_path(parent),
    };
    match path {
        serde_ignored::Path::Seq { index, .. } => segments.push(Segment::Index(*index)),
        serde_ignored::Path::Map { key, .. } => segments.push(Segment::Key(key.clone())),
        _ => {}
    }
    segments
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(key) => out = join(&out, key),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Decodes a value into the kind's type, collecting the unknown fields' paths.
struct Decode<'a>(&'a Value);

impl KindVisitor for Decode<'_> {
    type Out = Result<Vec<Vec<Segment>>, String>;
    fn visit<T: DeserializeOwned + k8s_openapi::Resource>(self) -> Self::Out {
        let mut unknown = Vec::new();
        let result: Result<T, _> = {
            let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
            let ignored = serde_ignored::Deserializer::new(self.0, &mut record);
            serde_path_to_error::deserialize(ignored)
        };
        match result {
            Ok(_) => Ok(unknown),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner().to_string();
                Err(if path == "." { inner } else { format!("{path}: {inner}") })
            }
        }
    }
}

/// A copy without nulls (kube-apiserver reads `null` as "not set", whatever the field's type) and, for
/// patches, without strategic-merge-patch directives (`$patch`, `$setElementOrder/...`, ...).
fn decodable(value: &Value, patch: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !v.is_null() && (!patch || !k.starts_with('$')))
                .map(|(k, v)| (k.clone(), decodable(v, patch)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| decodable(v, patch)).collect()),
        other => other.clone(),
    }
}

fn remove_path(value: &mut Value, segments: &[Segment]) {
    match segments {
        [] => {}
        [Segment::Key(key)] => {
            if let Some(map) = value.as_object_mut() {
                map.shift_remove(key);
            }
        }
        [Segment::Key(key), rest @ ..] => {
            if let Some(child) = value.get_mut(key.as_str()) {
                remove_path(child, rest);
            }
        }
        [Segment::Index(i), rest @ ..] => {
            if let Some(child) = value.get_mut(*i) {
                remove_path(child, rest);
            }
        }
    }
}

/// Checks a request body (an object for create/update, or a merge/strategic patch when `patch`) against
/// the type of `res`. `raw` is the body as sent, when it was JSON (duplicates are only visible there).
/// Returns the warnings to send (Warn); unknown fields are removed from `body` unless the request fails.
pub fn check_fields(
    res: &Resource,
    body: &mut Value,
    raw: Option<&[u8]>,
    mode: FieldValidation,
    patch: bool,
) -> ApiResult<Vec<String>> {
    if !body.is_object() {
        return Ok(Vec::new());
    }
    let mut candidate = decodable(body, patch);
    if patch {
        // A patch names neither kind nor apiVersion as the decoder wants them.
        if let Some(map) = candidate.as_object_mut() {
            map.remove("kind");
            map.remove("apiVersion");
        }
    }
    let unknown = match with_kind(res.group, res.kind, Decode(&candidate)) {
        None => return Ok(Vec::new()),
        Some(Ok(unknown)) => unknown,
        Some(Err(err)) => {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {err}",
                kind = res.kind,
                version = res.version
            )));
        }
    };
    drop(candidate);
    let duplicates = match (raw, mode) {
        (Some(raw), FieldValidation::Strict | FieldValidation::Warn) => duplicate_fields(raw),
        _ => Vec::new(),
    };
    let mut problems: Vec<String> = unknown.iter().map(|p| format!("unknown field \"{}\"", render(p))).collect();
    problems.extend(duplicates.iter().map(|p| format!("duplicate field \"{p}\"")));
    match mode {
        FieldValidation::Strict if !problems.is_empty() => {
            let message = format!("strict decoding error: {}", problems.join(", "));
            Err(ApiError::bad_request(if patch {
                message
            } else {
                format!(
                    "{kind} in version \"{}\" cannot be handled as a {kind}: {message}",
                    res.version,
                    kind = res.kind
                )
            }))
        }
        _ => {
            for path in &unknown {
                remove_path(body, path);
            }
            Ok(if mode == FieldValidation::Warn { problems } else { Vec::new() })
        }
    }
}

/// Paths of keys that appear twice in one JSON object of `raw` (`spec.replicas`).
fn duplicate_fields(raw: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(raw);
    let _ = Scan { path: String::new(), found: &mut found }.deserialize(&mut de);
    found
}

struct Scan<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            if !seen.insert(key) {
                self.found.push(path.clone());
            }
            map.next_value_seed(Scan { path, found: self.found })?;
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq.next_element_seed(Scan { path: format!("{}[{i}]", self.path), found: self.found })?.is_some() {
            i += 1;
        }
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------
// Object validation (422 Invalid).

/// One field error, as apimachinery's `field.Error`.
#[derive(Debug, Clone)]
pub struct FieldError {
    pub field: String,
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: &'static str,
    /// The message without the field: `Required value`, `Invalid value: 0: must be ...`.
    pub message: String,
}

impl FieldError {
    fn required(field: String, detail: &str) -> Self {
        let message =
            if detail.is_empty() { "Required value".to_string() } else { format!("Required value: {detail}") };
        Self { field, reason: "FieldValueRequired", message }
    }
    fn invalid(field: String, value: &str, detail: &str) -> Self {
        Self { field, reason: "FieldValueInvalid", message: format!("Invalid value: {value}: {detail}") }
    }
    fn not_supported(field: String, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            field,
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: \"{value}\": supported values: {}", list.join(", ")),
        }
    }
    fn duplicate(field: String, value: &str) -> Self {
        Self { field, reason: "FieldValueDuplicate", message: format!("Duplicate value: {value}") }
    }
    fn forbidden(field: String, detail: &str) -> Self {
        Self { field, reason: "FieldValueForbidden", message: format!("Forbidden: {detail}") }
    }
}

/// The 422 for `errors`: `Deployment.apps "web" is invalid: [a: ..., b: ...]` with `details.causes`.
pub fn invalid(res: &Resource, name: &str, errors: &[FieldError]) -> ApiError {
    let qualified = if res.group.is_empty() { res.kind.to_string() } else { format!("{}.{}", res.kind, res.group) };
    let parts: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
    let joined = if parts.len() == 1 { parts[0].clone() } else { format!("[{}]", parts.join(", ")) };
    let mut err = ApiError::new(422, "Invalid", format!("{qualified} \"{name}\" is invalid: {joined}"));
    let causes: Vec<Value> =
        errors.iter().map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field})).collect();
    let mut details = json!({"name": name, "kind": res.kind, "causes": causes});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    err.details = Some(Box::new(details));
    err
}

/// Validates an object about to be written (`old` is the stored object on update): the 422 when invalid.
pub fn validate(res: &Resource, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
    let mut errors = Vec::new();
    validate_meta(obj, &mut errors);
    match (res.group, res.kind) {
        ("", "Pod") => {
            if let Some(spec) = obj.get("spec") {
                validate_pod_spec(spec, "spec", &mut errors);
            } else {
                errors.push(FieldError::required("spec.containers".into(), ""));
            }
            if let Some(old) = old {
                validate_pod_update(obj, old, &mut errors);
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            validate_workload(res, obj, old, &mut errors);
        }
        ("batch", "Job") => {
            if let Some(template) = obj.pointer("/spec/template") {
                validate_template(template, "spec.template", &["OnFailure", "Never"], &mut errors);
            }
        }
        ("batch", "CronJob") => {
            if let Some(template) = obj.pointer("/spec/jobTemplate/spec/template") {
                validate_template(template, "spec.jobTemplate.spec.template", &["OnFailure", "Never"], &mut errors);
            }
            if obj.pointer("/spec/schedule").and_then(Value::as_str).is_none_or(str::is_empty) {
                errors.push(FieldError::required("spec.schedule".into(), ""));
            }
        }
        ("", "Service") => validate_service(obj, old, &mut errors),
        ("", "ConfigMap" | "Secret") => validate_config_keys(obj, &mut errors),
        _ => {}
    }
    if errors.is_empty() {
        return Ok(());
    }
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    Err(invalid(res, name, &errors))
}

fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// Go's `%#v` of a `map[string]string`: `map[string]string{"app":"web"}`.
fn go_map(map: Option<&serde_json::Map<String, Value>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(map) => {
            let sorted: BTreeMap<&String, &Value> = map.iter().collect();
            let items: Vec<String> =
                sorted.iter().map(|(k, v)| format!("\"{k}\":\"{}\"", v.as_str().unwrap_or_default())).collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

fn is_label_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name_part(s)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_qualified_name(key: &str) -> bool {
    match key.rsplit_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name_part(name),
        None => is_label_name_part(key),
    }
}

const LABEL_VALUE_HELP: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', \
                                '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
                                or 'my_value',  or '12345', regex used for validation is \
                                '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_HELP: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
                                   and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
                                   '123-abc', regex used for validation is \
                                   '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const DNS_LABEL_HELP: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
                              and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', \
                              regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn validate_labels(labels: Option<&Value>, field: &str, errors: &mut Vec<FieldError>) {
    let Some(map) = labels.and_then(Value::as_object) else { return };
    for (key, value) in map {
        if !is_qualified_name(key) {
            errors.push(FieldError::invalid(field.into(), &quoted(key), QUALIFIED_NAME_HELP));
        }
        match value.as_str() {
            Some(v) if !is_label_value(v) => {
                errors.push(FieldError::invalid(field.into(), &quoted(v), LABEL_VALUE_HELP));
            }
            _ => {}
        }
    }
}

fn validate_meta(obj: &Value, errors: &mut Vec<FieldError>) {
    validate_labels(obj.pointer("/metadata/labels"), "metadata.labels", errors);
    if let Some(annotations) = obj.pointer("/metadata/annotations").and_then(Value::as_object) {
        for key in annotations.keys() {
            if !is_qualified_name(key) {
                errors.push(FieldError::invalid("metadata.annotations".into(), &quoted(key), QUALIFIED_NAME_HELP));
            }
        }
    }
}

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn validate_port_number(value: Option<&Value>, field: String, required: bool, errors: &mut Vec<FieldError>) {
    match value.and_then(Value::as_i64) {
        None if required => errors.push(FieldError::required(field, "")),
        Some(p) if !(1..=65535).contains(&p) => {
            errors.push(FieldError::invalid(field, &p.to_string(), "must be between 1 and 65535, inclusive"));
        }
        _ => {}
    }
}

fn validate_containers(spec: &Value, key: &str, path: &str, names: &mut HashSet<String>, errors: &mut Vec<FieldError>) {
    for (i, container) in spec.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
        let at = format!("{path}.{key}[{i}]");
        match container.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            None => errors.push(FieldError::required(format!("{at}.name"), "")),
            Some(name) => {
                if !is_dns_label(name) {
                    errors.push(FieldError::invalid(format!("{at}.name"), &quoted(name), DNS_LABEL_HELP));
                }
                if !names.insert(name.to_string()) {
                    errors.push(FieldError::duplicate(format!("{at}.name"), &quoted(name)));
                }
            }
        }
        if container.get("image").and_then(Value::as_str).is_none_or(str::is_empty) {
            errors.push(FieldError::required(format!("{at}.image"), ""));
        }
        if let Some(policy) = container.get("imagePullPolicy").and_then(Value::as_str)
            && !matches!(policy, "Always" | "IfNotPresent" | "Never")
        {
            errors.push(FieldError::not_supported(
                format!("{at}.imagePullPolicy"),
                policy,
                &["Always", "IfNotPresent", "Never"],
            ));
        }
        for (j, port) in container.get("ports").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let pat = format!("{at}.ports[{j}]");
            validate_port_number(port.get("containerPort"), format!("{pat}.containerPort"), true, errors);
            validate_port_number(port.get("hostPort"), format!("{pat}.hostPort"), false, errors);
            if let Some(protocol) = port.get("protocol").and_then(Value::as_str)
                && !PROTOCOLS.contains(&protocol)
            {
                errors.push(FieldError::not_supported(format!("{pat}.protocol"), protocol, PROTOCOLS));
            }
        }
    }
}

/// `PodSpec` at `path` (`spec`, `spec.template.spec`).
fn validate_pod_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if spec.get("containers").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        errors.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = HashSet::new();
    validate_containers(spec, "containers", path, &mut names, errors);
    validate_containers(spec, "initContainers", path, &mut names, errors);
    if let Some(policy) = spec.get("restartPolicy").and_then(Value::as_str)
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        errors.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            policy,
            &["Always", "OnFailure", "Never"],
        ));
    }
    let mut volumes = HashSet::new();
    for (i, volume) in spec.get("volumes").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let name = volume.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            errors.push(FieldError::required(format!("{path}.volumes[{i}].name"), ""));
        } else if !volumes.insert(name.to_string()) {
            errors.push(FieldError::duplicate(format!("{path}.volumes[{i}].name"), &quoted(name)));
        }
    }
}

/// A pod template: its labels, spec, and the restart policies the owning kind allows.
fn validate_template(template: &Value, path: &str, restart: &[&str], errors: &mut Vec<FieldError>) {
    validate_labels(template.pointer("/metadata/labels"), &format!("{path}.metadata.labels"), errors);
    match template.get("spec") {
        Some(spec) => {
            validate_pod_spec(spec, &format!("{path}.spec"), errors);
            let policy = spec.get("restartPolicy").and_then(Value::as_str).unwrap_or("Always");
            if !restart.contains(&policy) {
                errors.push(FieldError::not_supported(format!("{path}.spec.restartPolicy"), policy, restart));
            }
        }
        None => errors.push(FieldError::required(format!("{path}.spec.containers"), "")),
    }
}

/// How apimachinery prints a `*v1.LabelSelector` in a field error (Go's `%#v` of the pointee).
fn go_selector(selector: Option<&Value>) -> String {
    match selector {
        None => "null".to_string(),
        Some(sel) => format!(
            "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:[]v1.LabelSelectorRequirement{}}}",
            go_map(sel.get("matchLabels").and_then(Value::as_object)),
            if sel.get("matchExpressions").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
                "{...}"
            } else {
                "(nil)"
            }
        ),
    }
}

/// Whether a `LabelSelector` (matchLabels and matchExpressions) selects these labels.
fn selector_matches(selector: &Value, labels: Option<&serde_json::Map<String, Value>>) -> bool {
    let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    if match_labels.into_iter().flatten().any(|(k, v)| get(k) != v.as_str()) {
        return false;
    }
    selector.get("matchExpressions").and_then(Value::as_array).into_iter().flatten().all(|req| {
        let key = req.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> =
            req.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        match req.get("operator").and_then(Value::as_str).unwrap_or_default() {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    })
}

fn validate_workload(res: &Resource, obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    if let Some(replicas) = spec.get("replicas").and_then(Value::as_i64)
        && replicas < 0
    {
        errors.push(FieldError::invalid(
            "spec.replicas".into(),
            &replicas.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let selector = spec.get("selector");
    let template_labels = spec.pointer("/template/metadata/labels").and_then(Value::as_object);
    match selector {
        None => errors.push(FieldError::required("spec.selector".into(), "")),
        Some(sel) => {
            let match_labels = sel.get("matchLabels").and_then(Value::as_object);
            let expressions = sel.get("matchExpressions").and_then(Value::as_array);
            if match_labels.is_none_or(|m| m.is_empty()) && expressions.is_none_or(|e| e.is_empty()) {
                errors.push(FieldError::invalid(
                    "spec.selector".into(),
                    &go_selector(Some(sel)),
                    &format!("empty selector is invalid for {}", res.singular),
                ));
            } else {
                if !selector_matches(sel, template_labels) {
                    errors.push(FieldError::invalid(
                        "spec.template.metadata.labels".into(),
                        &go_map(template_labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    match spec.get("template") {
        Some(template) => validate_template(template, "spec.template", &["Always"], errors),
        None => errors.push(FieldError::required("spec.template".into(), "")),
    }
    if let Some(old) = old {
        let old_selector = old.pointer("/spec/selector");
        if old_selector.is_some() && selector != old_selector {
            errors.push(FieldError::invalid("spec.selector".into(), &go_selector(selector), "field is immutable"));
        }
        if res.kind == "StatefulSet" {
            let mut a = spec.clone();
            let mut b = old.get("spec").cloned().unwrap_or(json!({}));
            for field in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
            ] {
                for s in [&mut a, &mut b] {
                    if let Some(map) = s.as_object_mut() {
                        map.remove(field);
                    }
                }
            }
            if a != b {
                errors.push(FieldError::forbidden(
                    "spec".into(),
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
                     'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
    }
}

/// kube-apiserver lets a pod update change only images, activeDeadlineSeconds, tolerations (additions) and
/// terminationGracePeriodSeconds; the scheduler's binding and the node's status go through subresources.
fn validate_pod_update(new: &Value, old: &Value, errors: &mut Vec<FieldError>) {
    let strip = |spec: Option<&Value>| -> Value {
        let mut spec = spec.cloned().unwrap_or(json!({}));
        for key in ["containers", "initContainers"] {
            if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
                for c in list {
                    if let Some(map) = c.as_object_mut() {
                        map.remove("image");
                    }
                }
            }
        }
        if let Some(map) = spec.as_object_mut() {
            for key in ["activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"] {
                map.remove(key);
            }
            // Set by the binding; an update that carries the bound node (kubectl edit) keeps it.
            if map.get("nodeName").is_some_and(|n| n.as_str().is_none_or(str::is_empty)) {
                map.remove("nodeName");
            }
        }
        spec
    };
    let (mut a, b) = (strip(new.get("spec")), strip(old.get("spec")));
    if a.get("nodeName").is_none()
        && let (Some(map), Some(node)) = (a.as_object_mut(), b.get("nodeName").cloned())
    {
        map.insert("nodeName".into(), node);
    }
    if b.get("nodeName").is_none()
        && let Some(map) = a.as_object_mut()
    {
        map.remove("nodeName");
    }
    if a != b {
        errors.push(FieldError::forbidden(
            "spec".into(),
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,\
             `spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),\
             `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
}

fn validate_service(obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&ty) {
        errors.push(FieldError::not_supported("spec.type".into(), ty, TYPES));
    }
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let ports = spec.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errors.push(FieldError::required("spec.ports".into(), ""));
    }
    if ty == "ExternalName" && spec.get("externalName").and_then(Value::as_str).is_none_or(str::is_empty) {
        errors.push(FieldError::required("spec.externalName".into(), ""));
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let name = port.get("name").and_then(Value::as_str).unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errors.push(FieldError::required(format!("{at}.name"), ""));
        } else if !name.is_empty() {
            if !is_dns_label(name) {
                errors.push(FieldError::invalid(format!("{at}.name"), &quoted(name), DNS_LABEL_HELP));
            }
            if !names.insert(name.to_string()) {
                errors.push(FieldError::duplicate(format!("{at}.name"), &quoted(name)));
            }
        }
        validate_port_number(port.get("port"), format!("{at}.port"), true, errors);
        if let Some(protocol) = port.get("protocol").and_then(Value::as_str)
            && !PROTOCOLS.contains(&protocol)
        {
            errors.push(FieldError::not_supported(format!("{at}.protocol"), protocol, PROTOCOLS));
        }
        if let Some(target) = port.get("targetPort")
            && target.is_number()
        {
            validate_port_number(Some(target), format!("{at}.targetPort"), false, errors);
        }
        if let Some(node_port) = port.get("nodePort").and_then(Value::as_i64)
            && !matches!(ty, "NodePort" | "LoadBalancer")
            && node_port != 0
        {
            errors.push(FieldError::forbidden(format!("{at}.nodePort"), "may not be used when `type` is 'ClusterIP'"));
        }
    }
    if let Some(old) = old {
        let old_ip = old.pointer("/spec/clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty());
        let new_ip = spec.get("clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty());
        if let (Some(old_ip), Some(new_ip)) = (old_ip, new_ip)
            && old_ip != new_ip
            && ty != "ExternalName"
        {
            errors.push(FieldError::invalid("spec.clusterIPs[0]".into(), &quoted(new_ip), "may not change once set"));
        }
    }
}

fn validate_config_keys(obj: &Value, errors: &mut Vec<FieldError>) {
    for field in ["data", "binaryData", "stringData"] {
        for key in obj.get(field).and_then(Value::as_object).into_iter().flat_map(|m| m.keys()) {
            let ok = !key.is_empty()
                && key.len() <= 253
                && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                errors.push(FieldError::invalid(
                    format!("{field}[{key}]"),
                    &quoted(key),
                    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  \
                     or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources::find;

    fn deployments() -> &'static Resource {
        find("apps", "v1", "deployments").unwrap()
    }

    #[test]
    fn strict_names_every_unknown_and_duplicate_field() {
        let raw = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"a","imagee":"x","image":"y"}],"foo":1,"foo":2}}"#;
        let mut body: Value = serde_json::from_slice(raw).unwrap();
        let pods = find("", "v1", "pods").unwrap();
        let err = check_fields(pods, &mut body, Some(raw), FieldValidation::Strict, false).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \
             \"spec.containers[0].imagee\", unknown field \"spec.foo\", duplicate field \"spec.foo\""
        );
        let started = std::time::Instant::now();
        let warnings = check_fields(pods, &mut body, Some(raw), FieldValidation::Warn, false).unwrap();
        eprintln!("check_fields took {:?}", started.elapsed());
        assert_eq!(warnings.len(), 3);
        // The unknown fields are dropped, as kube-apiserver drops them.
        assert!(body.pointer("/spec/containers/0/imagee").is_none());
        assert_eq!(body.pointer("/spec/containers/0/image"), Some(&json!("y")));
    }

    #[test]
    fn wrong_types_name_the_field_and_nulls_are_unset() {
        let pods = find("", "v1", "pods").unwrap();
        let mut body = json!({"metadata": {"name": "p", "creationTimestamp": null},
            "spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": "http"}]}]}});
        let err = check_fields(pods, &mut body, None, FieldValidation::Ignore, false).unwrap_err();
        assert!(err.message.contains("spec.containers[0].ports[0].containerPort: invalid type"), "{}", err.message);
        let mut patch = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "a", "image": null}]}});
        assert!(check_fields(pods, &mut patch, None, FieldValidation::Strict, true).unwrap().is_empty());
    }

    #[test]
    fn selector_must_match_template_labels() {
        let obj = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let err = validate(deployments(), &obj, None).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: \
             map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"
        );
        let causes = &err.details.as_ref().unwrap()["causes"];
        assert_eq!(causes[0]["field"], "spec.template.metadata.labels");
        assert_eq!(causes[0]["reason"], "FieldValueInvalid");
    }

    #[test]
    fn required_container_fields_and_immutable_selector() {
        let obj = json!({"metadata": {"name": "web"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}}});
        let err = validate(deployments(), &obj, None).unwrap_err();
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: spec.template.spec.containers[0].image: Required value"
        );
        let mut old = obj.clone();
        old["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        let mut new = obj.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx");
        let err = validate(deployments(), &new, Some(&old)).unwrap_err();
        assert!(
            err.message.contains(
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}"
            ),
            "{}",
            err.message
        );
        assert!(err.message.ends_with("field is immutable"), "{}", err.message);
    }

    #[test]
    fn query_parameters() {
        let q = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        assert!(dry_run(&q("dryRun", "All")).unwrap());
        assert!(!dry_run(&HashMap::new()).unwrap());
        assert_eq!(dry_run(&q("dryRun", "Some")).unwrap_err().code, 400);
        assert_eq!(field_validation(&HashMap::new()).unwrap(), FieldValidation::Warn);
        assert_eq!(field_validation(&q("fieldValidation", "Strict")).unwrap(), FieldValidation::Strict);
        assert_eq!(field_validation(&q("fieldValidation", "x")).unwrap_err().code, 400);
    }
}
