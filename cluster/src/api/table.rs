//! Server-side Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), the format `kubectl get`
//! asks for and prints as is.
//!
//! The columns, their order, their descriptions and the way each cell is computed follow kube-apiserver's
//! printers (`pkg/printers/internalversion/printers.go`), ported to work on the JSON objects the store holds,
//! so `kubectl get pods -o wide` looks exactly as it does against a real cluster. Descriptions are the
//! OpenAPI field docs (the strings Go's `SwaggerDoc()` returns), taken from k8s-openapi's schema text.
//! Resources without a printer get `NAME AGE`, the columns a CustomResourceDefinition gets by default.
//!
//! Everything here is a pure function of the objects and the current time, so it is unit-tested with
//! JSON fixtures and a fixed clock.

use jiff::Timestamp;
use serde_json::{Map, Value, json};

/// What each row carries besides its cells (`?includeObject=`): kube-apiserver's default for `meta.k8s.io/v1`
/// Tables is the object's metadata as a `PartialObjectMetadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No `object` in the rows.
    None,
    /// `PartialObjectMetadata` with the object's `metadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; an absent or unknown value means the default, `Metadata`.
    pub fn from_query(value: &str) -> Self {
        match value {
            "None" => IncludeObject::None,
            "Object" => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Whether an `Accept` header asks for a `meta.k8s.io` Table (kubectl sends
/// `application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`).
/// Parameters are matched case-insensitively; both `v1` and `v1beta1` count (the answer is always `v1`).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !(media.eq_ignore_ascii_case("application/json") || media == "*/*" || media.is_empty()) {
            return false;
        }
        let (mut as_table, mut group) = (false, false);
        for param in parts {
            let Some((key, value)) = param.split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "as" => as_table = value.eq_ignore_ascii_case("Table"),
                "g" => group = value.eq_ignore_ascii_case("meta.k8s.io"),
                _ => {}
            }
        }
        as_table && group
    })
}

/// Builds the `meta.k8s.io/v1` Table for `objects` of resource `plural` in API group `group` ("" for core),
/// as kube-apiserver answers a list (or, with one object, a get) asked for with `as=Table`.
/// `list_meta` becomes the Table's `metadata` (`resourceVersion`, `continue`); `include_object` is the raw
/// `includeObject` query value ("" when absent).
pub fn to_table(group: &str, plural: &str, objects: &[Value], list_meta: Value, include_object: &str) -> Value {
    to_table_at(group, plural, objects, list_meta, IncludeObject::from_query(include_object), Timestamp::now())
}

/// [`to_table`] with an explicit clock, for tests and for callers that build several tables at one instant.
pub fn to_table_at(
    group: &str,
    plural: &str,
    objects: &[Value],
    list_meta: Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let printer = RowPrinter::new(group, plural);
    let columns: Vec<Value> = printer.printer.columns.iter().map(Column::to_json).collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut out = printer.row(object, now);
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    out.insert("object".into(), partial_object_metadata(object));
                }
                IncludeObject::Object => {
                    out.insert("object".into(), object.clone());
                }
            }
            Value::Object(out)
        })
        .collect();
    let metadata = match list_meta {
        Value::Object(map) => Value::Object(map),
        _ => json!({}),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// One resource's printer, for callers that write a Table's rows themselves (the list path writes them
/// from stored bytes, see `api::stored`): the same cells as [`to_table_at`].
pub struct RowPrinter {
    printer: Printer,
    paths: Option<&'static [&'static str]>,
}

impl RowPrinter {
    pub fn new(group: &str, plural: &str) -> Self {
        let paths: Option<&'static [&'static str]> = match (group, plural) {
            ("", "pods") => Some(&POD_PATHS),
            _ => None,
        };
        RowPrinter { printer: printer_for(group, plural), paths }
    }

    /// The dotted paths of an object the printer reads (through arrays: of every element) when they are
    /// known and much less than the object, so a list may decode only those; `None` means the whole object.
    pub fn paths(&self) -> Option<&'static [&'static str]> {
        self.paths
    }

    /// A row's `cells` and, when the printer gives them, `conditions` (the caller adds `object`).
    pub fn row(&self, object: &Value, now: Timestamp) -> Map<String, Value> {
        let row = (self.printer.row)(object, now);
        let mut out = Map::new();
        out.insert("cells".into(), Value::Array(row.cells));
        if let Some(conditions) = row.conditions {
            out.insert("conditions".into(), conditions);
        }
        out
    }
}

/// What [`print_pod`] reads (keep in step with it; `stored::tests` checks rows from these against rows
/// from whole pods).
const POD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec.initContainers.name",
    "spec.initContainers.restartPolicy",
    "spec.containers.name",
    "spec.readinessGates",
    "spec.nodeName",
    "status",
];

/// The `object` of a row under `includeObject=Metadata`.
fn partial_object_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One column definition (`metav1.TableColumnDefinition`; every field is always serialized, as in Go).
struct Column {
    name: &'static str,
    ty: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i64,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A normal column (shown by `kubectl get`).
const fn col(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", description, priority: 0 }
}

/// A `-o wide` column.
const fn wide(name: &'static str, ty: &'static str, description: &'static str) -> Column {
    Column { name, ty, format: "", description, priority: 1 }
}

const NAME: Column = Column { name: "Name", ty: "string", format: "name", description: D_NAME, priority: 0 };
const AGE: Column = col("Age", "string", D_CREATED);
const CONTAINERS: Column = wide("Containers", "string", "Names of each container in the template.");
const IMAGES: Column = wide("Images", "string", "Images referenced by each container in the template.");

struct Row {
    cells: Vec<Value>,
    conditions: Option<Value>,
}

impl Row {
    fn new(cells: Vec<Value>) -> Self {
        Row { cells, conditions: None }
    }
}

/// Computes one row's cells from an object and the current time.
type RowFn = fn(&Value, Timestamp) -> Row;

struct Printer {
    columns: &'static [Column],
    row: RowFn,
}

fn printer_for(group: &str, plural: &str) -> Printer {
    let (columns, row): (&'static [Column], RowFn) = match (group, plural) {
        ("", "pods") => (&POD_COLUMNS, print_pod),
        ("", "services") => (&SERVICE_COLUMNS, print_service),
        ("", "endpoints") => (&ENDPOINTS_COLUMNS, print_endpoints),
        ("", "nodes") => (&NODE_COLUMNS, print_node),
        ("", "namespaces") => (&NAMESPACE_COLUMNS, print_namespace),
        ("", "configmaps") => (&CONFIGMAP_COLUMNS, print_configmap),
        ("", "secrets") => (&SECRET_COLUMNS, print_secret),
        ("", "serviceaccounts") => (&SERVICEACCOUNT_COLUMNS, print_serviceaccount),
        ("", "persistentvolumeclaims") => (&PVC_COLUMNS, print_pvc),
        ("", "persistentvolumes") => (&PV_COLUMNS, print_pv),
        ("", "events") => (&EVENT_COLUMNS, print_event),
        ("events.k8s.io", "events") => (&EVENT_COLUMNS, print_events_k8s_io_event),
        ("apps", "deployments") => (&DEPLOYMENT_COLUMNS, print_deployment),
        ("apps", "replicasets") => (&REPLICASET_COLUMNS, print_replicaset),
        ("apps", "statefulsets") => (&STATEFULSET_COLUMNS, print_statefulset),
        ("apps", "daemonsets") => (&DAEMONSET_COLUMNS, print_daemonset),
        ("apps", "controllerrevisions") => (&CONTROLLERREVISION_COLUMNS, print_controllerrevision),
        ("batch", "jobs") => (&JOB_COLUMNS, print_job),
        ("batch", "cronjobs") => (&CRONJOB_COLUMNS, print_cronjob),
        ("discovery.k8s.io", "endpointslices") => (&ENDPOINTSLICE_COLUMNS, print_endpointslice),
        ("coordination.k8s.io", "leases") => (&LEASE_COLUMNS, print_lease),
        ("networking.k8s.io", "networkpolicies") => (&NETWORKPOLICY_COLUMNS, print_networkpolicy),
        ("storage.k8s.io", "storageclasses") => (&STORAGECLASS_COLUMNS, print_storageclass),
        _ => (&DEFAULT_COLUMNS, print_default),
    };
    Printer { columns, row }
}

// ---------------------------------------------------------------------------------------------------------
// Reading JSON objects the way Go reads typed structs: a missing field is the zero value.

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, path: &[&str]) -> i64 {
    get(v, path).and_then(Value::as_i64).unwrap_or(0)
}

fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(Value::as_i64)
}

fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn obj_len(v: &Value, path: &[&str]) -> usize {
    get(v, path).and_then(Value::as_object).map(Map::len).unwrap_or(0)
}

fn name(v: &Value) -> Value {
    Value::String(s(v, &["metadata", "name"]).to_string())
}

fn str_or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

fn parse_time(value: &str) -> Option<Timestamp> {
    if value.is_empty() { None } else { value.parse().ok() }
}

fn is_deleting(v: &Value) -> bool {
    !s(v, &["metadata", "deletionTimestamp"]).is_empty()
}

// ---------------------------------------------------------------------------------------------------------
// Formatting helpers shared by the printers.

/// kubectl's `duration.HumanDuration`: a short, rounded-down age ("5s", "3m2s", "10m", "4h5m", "3d", "2y10d").
pub fn human_duration(nanos: i128) -> String {
    const SEC: i128 = 1_000_000_000;
    let seconds = nanos / SEC;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / (60 * SEC);
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / (3600 * SEC);
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        format!("{hours}h{m}m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        format!("{}d{h}h", hours / 24)
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        format!("{}y{dy}d", hours / 24 / 365)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn since(now: Timestamp, then: Timestamp) -> String {
    human_duration(now.as_nanosecond() - then.as_nanosecond())
}

/// `translateTimestampSince`: the age of a timestamp field, "<unknown>" when it is unset.
fn age_of(now: Timestamp, value: &str) -> String {
    match parse_time(value) {
        Some(then) => since(now, then),
        None => "<unknown>".into(),
    }
}

fn age(v: &Value, now: Timestamp) -> Value {
    Value::String(age_of(now, s(v, &["metadata", "creationTimestamp"])))
}

/// `labels.FormatLabels`: `k=v` pairs sorted by key, "<none>" when empty.
fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object).filter(|m| !m.is_empty()) else {
        return "<none>".into();
    };
    let mut pairs: Vec<(&String, &str)> = map.iter().map(|(k, v)| (k, v.as_str().unwrap_or(""))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`: requirements sorted by key; `Err` for an operator
/// Kubernetes would reject. A missing or empty selector gives "".
fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else { return Ok(String::new()) };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key.clone(), format!("{key}={}", value.as_str().unwrap_or(""))));
        }
    }
    for expr in arr(selector, &["matchExpressions"]) {
        let key = s(expr, &["key"]).to_string();
        let mut values: Vec<&str> = arr(expr, &["values"]).iter().filter_map(Value::as_str).collect();
        values.sort_unstable();
        values.dedup();
        let text = match s(expr, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        requirements.push((key, text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements.into_iter().map(|(_, text)| text).collect::<Vec<_>>().join(","))
}

/// `metav1.FormatLabelSelector`: like [`selector_string`] but "<none>" when empty and "<error>" when invalid.
fn format_label_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(text) if text.is_empty() => "<none>".into(),
        Ok(text) => text,
        Err(()) => "<error>".into(),
    }
}

/// `layoutContainerCells`: container names and images, each comma-joined.
fn container_cells(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, &["image"])).collect();
    (Value::String(names.join(",")), Value::String(images.join(",")))
}

fn template_containers(v: &Value) -> &[Value] {
    arr(v, &["spec", "template", "spec", "containers"])
}

/// `replicas` as the API server stores it: defaulted to 1 when a client left it out.
fn desired_replicas(v: &Value) -> i64 {
    opt_int(v, &["spec", "replicas"]).unwrap_or(1)
}

fn bool_ptr(v: Option<&Value>) -> &'static str {
    match v.and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pods.

const POD_COLUMNS: [Column; 9] = [
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", D_POD_IP),
    wide("Node", "string", D_POD_NODE),
    wide("Nominated Node", "string", D_POD_NOMINATED),
    wide("Readiness Gates", "string", D_POD_GATES),
];

fn condition_true(conditions: &[Value], ty: &str) -> bool {
    conditions.iter().any(|c| s(c, &["type"]) == ty && s(c, &["status"]) == "True")
}

/// The latest `lastState.terminated.finishedAt` seen so far.
fn later(current: Option<Timestamp>, status: &Value) -> Option<Timestamp> {
    match parse_time(s(status, &["lastState", "terminated", "finishedAt"])) {
        Some(t) if current.is_none_or(|c| c < t) => Some(t),
        _ => current,
    }
}

/// kube-apiserver's `printPod`: READY counts ready containers (and started restartable init containers,
/// i.e. sidecars); STATUS is the most telling reason among the pod's and its containers' states.
fn print_pod(pod: &Value, now: Timestamp) -> Row {
    let init_specs = arr(pod, &["spec", "initContainers"]);
    let is_sidecar =
        |name: &str| init_specs.iter().any(|c| s(c, &["name"]) == name && s(c, &["restartPolicy"]) == "Always");
    let mut total = arr(pod, &["spec", "containers"]).len();
    total += init_specs.iter().filter(|c| s(c, &["restartPolicy"]) == "Always").count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let phase = s(pod, &["status", "phase"]);
    let mut reason = str_or(s(pod, &["status", "reason"]), phase).to_string();
    let conditions = arr(pod, &["status", "conditions"]);
    if conditions.iter().any(|c| s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated") {
        reason = "SchedulingGated".into();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod has completed successfully."}])),
        "Failed" => Some(json!([{"type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod failed."}])),
        _ => None,
    };

    let mut initializing = false;
    for (i, status) in arr(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        let cname = s(status, &["name"]);
        restarts += int(status, &["restartCount"]);
        last_restart = later(last_restart, status);
        let sidecar = is_sidecar(cname);
        if sidecar {
            sidecar_restarts += int(status, &["restartCount"]);
            last_sidecar_restart = later(last_sidecar_restart, status);
        }
        let terminated = get(status, &["state", "terminated"]);
        let waiting_reason = s(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && get(status, &["started"]).and_then(Value::as_bool) == Some(true) {
            if get(status, &["ready"]).and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let treason = s(t, &["reason"]);
            reason = if treason.is_empty() {
                let signal = int(t, &["signal"]);
                if signal != 0 {
                    format!("Init:Signal:{signal}")
                } else {
                    format!("Init:ExitCode:{}", int(t, &["exitCode"]))
                }
            } else {
                format!("Init:{treason}")
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in arr(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(status, &["restartCount"]);
            last_restart = later(last_restart, status);
            let waiting_reason = s(status, &["state", "waiting", "reason"]);
            let terminated = get(status, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let treason = s(t, &["reason"]);
                reason = if !treason.is_empty() {
                    treason.to_string()
                } else if int(t, &["signal"]) != 0 {
                    format!("Signal:{}", int(t, &["signal"]))
                } else {
                    format!("ExitCode:{}", int(t, &["exitCode"]))
                };
            } else if get(status, &["ready"]).and_then(Value::as_bool) == Some(true)
                && get(status, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose last container completed but another still runs is Running (or NotReady), not Completed.
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }

    if is_deleting(pod) && s(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if is_deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", since(now, t)),
        _ => restarts.to_string(),
    };

    let mut pod_ip = arr(pod, &["status", "podIPs"]).first().map(|ip| s(ip, &["ip"])).unwrap_or("");
    if pod_ip.is_empty() {
        // Tolerate writers that set only the singular field.
        pod_ip = s(pod, &["status", "podIP"]);
    }
    let gates = arr(pod, &["spec", "readinessGates"]);
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|gate| {
                let ty = s(gate, &["conditionType"]);
                conditions.iter().find(|c| s(c, &["type"]) == ty).is_some_and(|c| s(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };

    Row {
        cells: vec![
            name(pod),
            Value::String(format!("{ready}/{total}")),
            Value::String(reason),
            Value::String(restarts_text),
            age(pod, now),
            Value::String(str_or(pod_ip, "<none>").into()),
            Value::String(str_or(s(pod, &["spec", "nodeName"]), "<none>").into()),
            Value::String(str_or(s(pod, &["status", "nominatedNodeName"]), "<none>").into()),
            Value::String(gates_text),
        ],
        conditions: row_conditions,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Services, endpoints, endpoint slices.

const SERVICE_COLUMNS: [Column; 7] = [
    NAME,
    col("Type", "string", D_SVC_TYPE),
    col("Cluster-IP", "string", D_SVC_CLUSTER_IP),
    col("External-IP", "string", D_SVC_EXTERNAL_IPS),
    col("Port(s)", "string", D_SVC_PORTS),
    AGE,
    wide("Selector", "string", D_SVC_SELECTOR),
];

fn string_list<'a>(v: &'a Value, path: &[&str]) -> Vec<&'a str> {
    arr(v, path).iter().filter_map(Value::as_str).collect()
}

/// `getServiceExternalIP` (wide form, as the server always prints it).
fn service_external_ip(svc: &Value, ty: &str) -> String {
    let external = string_list(svc, &["spec", "externalIPs"]);
    match ty {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let mut lb: Vec<&str> = arr(svc, &["status", "loadBalancer", "ingress"])
                .iter()
                .map(|i| str_or(s(i, &["ip"]), s(i, &["hostname"])))
                .filter(|a| !a.is_empty())
                .collect();
            lb.sort_unstable();
            lb.dedup();
            if !external.is_empty() {
                lb.extend(external);
                return lb.join(",");
            }
            if lb.is_empty() { "<pending>".into() } else { lb.join(",") }
        }
        "ExternalName" => s(svc, &["spec", "externalName"]).into(),
        _ => "<unknown>".into(),
    }
}

fn print_service(svc: &Value, now: Timestamp) -> Row {
    // The API server defaults `type` to ClusterIP and `protocol` to TCP; print what it would have stored.
    let ty = str_or(s(svc, &["spec", "type"]), "ClusterIP");
    let cluster_ip = match arr(svc, &["spec", "clusterIPs"]).first().and_then(Value::as_str) {
        Some(ip) => ip,
        None => str_or(s(svc, &["spec", "clusterIP"]), "<none>"),
    };
    let ports: Vec<String> = arr(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let protocol = str_or(s(p, &["protocol"]), "TCP");
            let node_port = int(p, &["nodePort"]);
            if node_port > 0 {
                format!("{}:{node_port}/{protocol}", int(p, &["port"]))
            } else {
                format!("{}/{protocol}", int(p, &["port"]))
            }
        })
        .collect();
    let ports = if ports.is_empty() { "<none>".to_string() } else { ports.join(",") };
    Row::new(vec![
        name(svc),
        Value::String(ty.into()),
        Value::String(cluster_ip.into()),
        Value::String(service_external_ip(svc, ty)),
        Value::String(ports),
        age(svc, now),
        Value::String(format_labels(get(svc, &["spec", "selector"]))),
    ])
}

const ENDPOINTS_COLUMNS: [Column; 3] = [NAME, col("Endpoints", "string", D_EP_SUBSETS), AGE];

/// `formatEndpoints`: up to three `ip:port` pairs, then "+ N more...".
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for subset in subsets {
        let addresses = arr(subset, &["addresses"]);
        let ports = arr(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(s(address, &["ip"]), int(port, &["port"])));
            }
        }
    }
    let text = list.join(",");
    if more { format!("{text} + {} more...", count - MAX) } else { text }
}

/// Go's `net.JoinHostPort`: IPv6 addresses are bracketed.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

fn print_endpoints(ep: &Value, now: Timestamp) -> Row {
    Row::new(vec![name(ep), Value::String(format_endpoints(ep)), age(ep, now)])
}

const ENDPOINTSLICE_COLUMNS: [Column; 5] = [
    NAME,
    col("AddressType", "string", D_ES_TYPE),
    col("Ports", "string", D_ES_PORTS),
    col("Endpoints", "string", D_ES_ENDPOINTS),
    AGE,
];

fn list_with_more(list: Vec<String>, more: bool, count: usize, max: usize) -> String {
    let text = list.join(",");
    if more {
        return format!("{text} + {} more...", count - max);
    }
    if text.is_empty() { "<unset>".into() } else { text }
}

fn print_endpointslice(slice: &Value, now: Timestamp) -> Row {
    const MAX: usize = 3;
    let (mut ports, mut more, mut count) = (Vec::new(), false, 0);
    for port in arr(slice, &["ports"]) {
        if ports.len() < MAX {
            let text = match opt_int(port, &["port"]) {
                Some(p) => p.to_string(),
                None => get(port, &["name"]).and_then(Value::as_str).unwrap_or("*").to_string(),
            };
            ports.push(text);
        } else if ports.len() == MAX {
            more = true;
        }
        count += 1;
    }
    let ports = list_with_more(ports, more, count, MAX);
    let (mut addresses, mut more, mut count) = (Vec::new(), false, 0);
    for endpoint in arr(slice, &["endpoints"]) {
        for address in arr(endpoint, &["addresses"]).iter().filter_map(Value::as_str) {
            if addresses.len() < MAX {
                addresses.push(address.to_string());
            } else if addresses.len() == MAX {
                more = true;
            }
            count += 1;
        }
    }
    let addresses = list_with_more(addresses, more, count, MAX);
    Row::new(vec![
        name(slice),
        Value::String(s(slice, &["addressType"]).into()),
        Value::String(ports),
        Value::String(addresses),
        age(slice, now),
    ])
}

// ---------------------------------------------------------------------------------------------------------
// Nodes and namespaces.

const NODE_COLUMNS: [Column; 10] = [
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", D_NODE_KUBELET),
    wide("Internal-IP", "string", D_NODE_ADDRESSES),
    wide("External-IP", "string", D_NODE_ADDRESSES),
    wide("OS-Image", "string", D_NODE_OS),
    wide("Kernel-Version", "string", D_NODE_KERNEL),
    wide("Container-Runtime", "string", D_NODE_RUNTIME),
];

fn node_address<'a>(node: &'a Value, ty: &str) -> &'a str {
    arr(node, &["status", "addresses"])
        .iter()
        .find(|a| s(a, &["type"]) == ty)
        .map(|a| s(a, &["address"]))
        .unwrap_or("<none>")
}

fn print_node(node: &Value, now: Timestamp) -> Row {
    let mut status: Vec<String> = Vec::new();
    // Only the Ready condition is shown, as in kube-apiserver.
    if let Some(ready) = arr(node, &["status", "conditions"]).iter().rev().find(|c| s(c, &["type"]) == "Ready") {
        status.push(if s(ready, &["status"]) == "True" { "Ready".into() } else { "NotReady".into() });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if get(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    // Roles come from `node-role.kubernetes.io/<role>` labels and the older `kubernetes.io/role=<role>`.
    let mut roles: Vec<&str> = Vec::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role);
                }
            } else if key == "kubernetes.io/role" && value.as_str().is_some_and(|v| !v.is_empty()) {
                roles.push(value.as_str().unwrap_or_default());
            }
        }
    }
    roles.sort_unstable();
    roles.dedup();
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
    let info = |field: &str| Value::String(str_or(s(node, &["status", "nodeInfo", field]), "<unknown>").into());
    Row::new(vec![
        name(node),
        Value::String(status.join(",")),
        Value::String(roles),
        age(node, now),
        Value::String(s(node, &["status", "nodeInfo", "kubeletVersion"]).into()),
        Value::String(node_address(node, "InternalIP").into()),
        Value::String(node_address(node, "ExternalIP").into()),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ])
}

const NAMESPACE_COLUMNS: [Column; 3] = [NAME, col("Status", "string", "The status of the namespace"), AGE];

fn print_namespace(ns: &Value, now: Timestamp) -> Row {
    Row::new(vec![name(ns), Value::String(s(ns, &["status", "phase"]).into()), age(ns, now)])
}

// ---------------------------------------------------------------------------------------------------------
// Config and storage.

const CONFIGMAP_COLUMNS: [Column; 3] = [NAME, col("Data", "string", D_CM_DATA), AGE];

fn print_configmap(cm: &Value, now: Timestamp) -> Row {
    let count = obj_len(cm, &["data"]) + obj_len(cm, &["binaryData"]);
    Row::new(vec![name(cm), json!(count), age(cm, now)])
}

const SECRET_COLUMNS: [Column; 4] =
    [NAME, col("Type", "string", D_SECRET_TYPE), col("Data", "string", D_SECRET_DATA), AGE];

fn print_secret(secret: &Value, now: Timestamp) -> Row {
    Row::new(vec![
        name(secret),
        Value::String(s(secret, &["type"]).into()),
        json!(obj_len(secret, &["data"])),
        age(secret, now),
    ])
}

const SERVICEACCOUNT_COLUMNS: [Column; 3] = [NAME, col("Secrets", "string", D_SA_SECRETS), AGE];

fn print_serviceaccount(sa: &Value, now: Timestamp) -> Row {
    Row::new(vec![name(sa), json!(arr(sa, &["secrets"]).len()), age(sa, now)])
}

/// `GetAccessModesAsString`: the distinct modes in a fixed order.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(mode, _)| has(mode))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

const PVC_COLUMNS: [Column; 9] = [
    NAME,
    col("Status", "string", D_PVC_PHASE),
    col("Volume", "string", D_PVC_VOLUME),
    col("Capacity", "string", D_PVC_CAPACITY),
    col("Access Modes", "string", D_PVC_ACCESS),
    col("StorageClass", "string", "StorageClass of the pvc"),
    col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
    AGE,
    wide("VolumeMode", "string", D_PVC_MODE),
];

fn print_pvc(pvc: &Value, now: Timestamp) -> Row {
    let phase = if is_deleting(pvc) { "Terminating" } else { s(pvc, &["status", "phase"]) };
    let volume = s(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (s(pvc, &["status", "capacity", "storage"]).to_string(), access_modes(arr(pvc, &["status", "accessModes"])))
    };
    // The beta annotation wins over the field, as in Kubernetes' storage helpers.
    let class = get(pvc, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"])
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(pvc, &["spec", "storageClassName"]));
    Row::new(vec![
        name(pvc),
        Value::String(phase.into()),
        Value::String(volume.into()),
        Value::String(capacity),
        Value::String(modes),
        Value::String(class.into()),
        Value::String(str_or(s(pvc, &["spec", "volumeAttributesClassName"]), "<unset>").into()),
        age(pvc, now),
        Value::String(str_or(s(pvc, &["spec", "volumeMode"]), "<unset>").into()),
    ])
}

const PV_COLUMNS: [Column; 11] = [
    NAME,
    col("Capacity", "string", "capacity is the description of the persistent volume's resources and capacity."),
    col("Access Modes", "string", "accessModes contains all ways the volume can be mounted."),
    col(
        "Reclaim Policy",
        "string",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
    ),
    col("Status", "string", "phase indicates if a volume is available, bound to a claim, or released by a claim."),
    col(
        "Claim",
        "string",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
    ),
    col("StorageClass", "string", "StorageClass of the pv"),
    col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
    col(
        "Reason",
        "string",
        "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
    ),
    AGE,
    wide(
        "VolumeMode",
        "string",
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
    ),
];

fn print_pv(pv: &Value, now: Timestamp) -> Row {
    let claim = match get(pv, &["spec", "claimRef"]) {
        Some(r) if r.is_object() => format!("{}/{}", s(r, &["namespace"]), s(r, &["name"])),
        _ => String::new(),
    };
    let phase = if is_deleting(pv) { "Terminating" } else { s(pv, &["status", "phase"]) };
    let class = get(pv, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"])
        .and_then(Value::as_str)
        .unwrap_or_else(|| s(pv, &["spec", "storageClassName"]));
    Row::new(vec![
        name(pv),
        Value::String(str_or(s(pv, &["spec", "capacity", "storage"]), "0").into()),
        Value::String(access_modes(arr(pv, &["spec", "accessModes"]))),
        Value::String(s(pv, &["spec", "persistentVolumeReclaimPolicy"]).into()),
        Value::String(phase.into()),
        Value::String(claim),
        Value::String(class.into()),
        Value::String(str_or(s(pv, &["spec", "volumeAttributesClassName"]), "<unset>").into()),
        Value::String(s(pv, &["status", "reason"]).into()),
        age(pv, now),
        Value::String(str_or(s(pv, &["spec", "volumeMode"]), "<unset>").into()),
    ])
}

const STORAGECLASS_COLUMNS: [Column; 6] = [
    NAME,
    col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
    col(
        "ReclaimPolicy",
        "string",
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.",
    ),
    col(
        "VolumeBindingMode",
        "string",
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.",
    ),
    col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
    AGE,
];

fn print_storageclass(sc: &Value, now: Timestamp) -> Row {
    let annotation = |key: &str| get(sc, &["metadata", "annotations", key]).and_then(Value::as_str) == Some("true");
    let mut display = s(sc, &["metadata", "name"]).to_string();
    if annotation("storageclass.kubernetes.io/is-default-class")
        || annotation("storageclass.beta.kubernetes.io/is-default-class")
    {
        display.push_str(" (default)");
    }
    Row::new(vec![
        Value::String(display),
        Value::String(s(sc, &["provisioner"]).into()),
        Value::String(str_or(s(sc, &["reclaimPolicy"]), "Delete").into()),
        Value::String(str_or(s(sc, &["volumeBindingMode"]), "Immediate").into()),
        Value::Bool(get(sc, &["allowVolumeExpansion"]).and_then(Value::as_bool).unwrap_or(false)),
        age(sc, now),
    ])
}

// ---------------------------------------------------------------------------------------------------------
// Workloads.

const DEPLOYMENT_COLUMNS: [Column; 8] = [
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", D_DEPLOY_UPDATED),
    col("Available", "string", D_DEPLOY_AVAILABLE),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_DEPLOY_SELECTOR),
];

fn print_deployment(d: &Value, now: Timestamp) -> Row {
    let (names, images) = container_cells(template_containers(d));
    let selector = selector_string(get(d, &["spec", "selector"])).unwrap_or_else(|()| "<invalid>".into());
    Row::new(vec![
        name(d),
        Value::String(format!("{}/{}", int(d, &["status", "readyReplicas"]), desired_replicas(d))),
        json!(int(d, &["status", "updatedReplicas"])),
        json!(int(d, &["status", "availableReplicas"])),
        age(d, now),
        names,
        images,
        Value::String(selector),
    ])
}

const REPLICASET_COLUMNS: [Column; 8] = [
    NAME,
    col("Desired", "integer", D_RS_REPLICAS),
    col("Current", "integer", D_RS_CURRENT),
    col("Ready", "integer", D_RS_READY),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_RS_SELECTOR),
];

fn print_replicaset(rs: &Value, now: Timestamp) -> Row {
    let (names, images) = container_cells(template_containers(rs));
    Row::new(vec![
        name(rs),
        json!(desired_replicas(rs)),
        json!(int(rs, &["status", "replicas"])),
        json!(int(rs, &["status", "readyReplicas"])),
        age(rs, now),
        names,
        images,
        Value::String(format_label_selector(get(rs, &["spec", "selector"]))),
    ])
}

const STATEFULSET_COLUMNS: [Column; 5] =
    [NAME, col("Ready", "string", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES];

fn print_statefulset(sts: &Value, now: Timestamp) -> Row {
    let (names, images) = container_cells(template_containers(sts));
    Row::new(vec![
        name(sts),
        Value::String(format!("{}/{}", int(sts, &["status", "readyReplicas"]), desired_replicas(sts))),
        age(sts, now),
        names,
        images,
    ])
}

const DAEMONSET_COLUMNS: [Column; 11] = [
    NAME,
    col("Desired", "integer", D_DS_DESIRED),
    col("Current", "integer", D_DS_CURRENT),
    col("Ready", "integer", D_DS_READY),
    col("Up-to-date", "integer", D_DS_UPDATED),
    col("Available", "integer", D_DS_AVAILABLE),
    col("Node Selector", "string", D_NODE_SELECTOR),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_DS_SELECTOR),
];

fn print_daemonset(ds: &Value, now: Timestamp) -> Row {
    let (names, images) = container_cells(template_containers(ds));
    let status = |field: &str| json!(int(ds, &["status", field]));
    Row::new(vec![
        name(ds),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        Value::String(format_labels(get(ds, &["spec", "template", "spec", "nodeSelector"]))),
        age(ds, now),
        names,
        images,
        Value::String(format_label_selector(get(ds, &["spec", "selector"]))),
    ])
}

const CONTROLLERREVISION_COLUMNS: [Column; 4] = [
    NAME,
    col("Controller", "string", "Controller of the object"),
    col("Revision", "string", "Revision indicates the revision of the state represented by Data."),
    AGE,
];

fn print_controllerrevision(cr: &Value, now: Timestamp) -> Row {
    let owner = arr(cr, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| get(r, &["controller"]).and_then(Value::as_bool) == Some(true));
    let controller = match owner {
        Some(r) => {
            // `kind.group/name` in lower case, the group taken from the owner's apiVersion.
            let api_version = s(r, &["apiVersion"]);
            let kind = s(r, &["kind"]).to_lowercase();
            match api_version.split_once('/') {
                Some((group, _)) if !group.is_empty() => format!("{kind}.{group}/{}", s(r, &["name"])),
                _ => format!("{kind}/{}", s(r, &["name"])),
            }
        }
        None => "<none>".into(),
    };
    Row::new(vec![name(cr), Value::String(controller), json!(int(cr, &["revision"])), age(cr, now)])
}

const JOB_COLUMNS: [Column; 8] = [
    NAME,
    col("Status", "string", "Status of the job."),
    col("Completions", "string", D_JOB_SUCCEEDED),
    col("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_JOB_SELECTOR),
];

fn print_job(job: &Value, now: Timestamp) -> Row {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = int(job, &["spec", "parallelism"]);
            if parallelism > 1 { format!("{succeeded}/1 of {parallelism}") } else { format!("{succeeded}/1") }
        }
    };
    let start = parse_time(s(job, &["status", "startTime"]));
    let end = parse_time(s(job, &["status", "completionTime"]));
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(start), None) => since(now, start),
        (Some(start), Some(end)) => since(end, start),
    };
    let conditions = arr(job, &["status", "conditions"]);
    // Only the first condition of a type counts, as in `hasJobCondition`.
    let has = |ty: &str| conditions.iter().find(|c| s(c, &["type"]) == ty).is_some_and(|c| s(c, &["status"]) == "True");
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if is_deleting(job) {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(template_containers(job));
    Row::new(vec![
        name(job),
        Value::String(status.into()),
        Value::String(completions),
        Value::String(duration),
        age(job, now),
        names,
        images,
        Value::String(format_label_selector(get(job, &["spec", "selector"]))),
    ])
}

const CRONJOB_COLUMNS: [Column; 10] = [
    NAME,
    col("Schedule", "string", D_CJ_SCHEDULE),
    col("Timezone", "string", D_CJ_TIMEZONE),
    col("Suspend", "boolean", D_CJ_SUSPEND),
    col("Active", "integer", D_CJ_ACTIVE),
    col("Last Schedule", "string", D_CJ_LAST),
    AGE,
    CONTAINERS,
    IMAGES,
    wide("Selector", "string", D_JOB_SELECTOR),
];

fn print_cronjob(cj: &Value, now: Timestamp) -> Row {
    let last = match parse_time(s(cj, &["status", "lastScheduleTime"])) {
        Some(t) => since(now, t),
        None => "<none>".into(),
    };
    let (names, images) = container_cells(arr(cj, &["spec", "jobTemplate", "spec", "template", "spec", "containers"]));
    Row::new(vec![
        name(cj),
        Value::String(s(cj, &["spec", "schedule"]).into()),
        Value::String(str_or(s(cj, &["spec", "timeZone"]), "<none>").into()),
        Value::String(bool_ptr(get(cj, &["spec", "suspend"])).into()),
        json!(arr(cj, &["status", "active"]).len()),
        Value::String(last),
        age(cj, now),
        names,
        images,
        Value::String(format_label_selector(get(cj, &["spec", "jobTemplate", "spec", "selector"]))),
    ])
}

// ---------------------------------------------------------------------------------------------------------
// Events, leases, network policies.

const EVENT_COLUMNS: [Column; 10] = [
    col("Last Seen", "string", D_EV_LAST),
    col("Type", "string", D_EV_TYPE),
    col("Reason", "string", D_EV_REASON),
    col("Object", "string", D_EV_OBJECT),
    wide("Subobject", "string", D_REF_FIELD_PATH),
    wide("Source", "string", D_EV_SOURCE),
    col("Message", "string", D_EV_MESSAGE),
    wide("First Seen", "string", D_EV_FIRST),
    wide("Count", "string", D_EV_COUNT),
    Column { name: "Name", ty: "string", format: "name", description: D_NAME, priority: 1 },
];

/// The fields of a core/v1 Event that the printer reads, whichever API group the event came from.
struct EventView<'a> {
    first: &'a str,
    last: &'a str,
    event_time: &'a str,
    series_last: Option<&'a str>,
    series_count: Option<i64>,
    count: i64,
    ty: &'a str,
    reason: &'a str,
    object: Option<&'a Value>,
    component: &'a str,
    host: &'a str,
    reporting_controller: &'a str,
    reporting_instance: &'a str,
    message: &'a str,
}

fn print_event(ev: &Value, now: Timestamp) -> Row {
    let series = get(ev, &["series"]).filter(|v| v.is_object());
    print_event_view(
        ev,
        EventView {
            first: s(ev, &["firstTimestamp"]),
            last: s(ev, &["lastTimestamp"]),
            event_time: s(ev, &["eventTime"]),
            series_last: series.map(|v| s(v, &["lastObservedTime"])),
            series_count: series.map(|v| int(v, &["count"])),
            count: int(ev, &["count"]),
            ty: s(ev, &["type"]),
            reason: s(ev, &["reason"]),
            object: get(ev, &["involvedObject"]),
            component: s(ev, &["source", "component"]),
            host: s(ev, &["source", "host"]),
            reporting_controller: s(ev, &["reportingComponent"]),
            reporting_instance: s(ev, &["reportingInstance"]),
            message: s(ev, &["message"]),
        },
        now,
    )
}

/// events.k8s.io/v1 Events carry the same data under other names (`regarding`, `note`, `deprecated*`);
/// kube-apiserver converts them to the core shape before printing, and so do we.
fn print_events_k8s_io_event(ev: &Value, now: Timestamp) -> Row {
    let series = get(ev, &["series"]).filter(|v| v.is_object());
    print_event_view(
        ev,
        EventView {
            first: s(ev, &["deprecatedFirstTimestamp"]),
            last: s(ev, &["deprecatedLastTimestamp"]),
            event_time: s(ev, &["eventTime"]),
            series_last: series.map(|v| s(v, &["lastObservedTime"])),
            series_count: series.map(|v| int(v, &["count"])),
            count: int(ev, &["deprecatedCount"]),
            ty: s(ev, &["type"]),
            reason: s(ev, &["reason"]),
            object: get(ev, &["regarding"]),
            component: s(ev, &["deprecatedSource", "component"]),
            host: s(ev, &["deprecatedSource", "host"]),
            reporting_controller: s(ev, &["reportingController"]),
            reporting_instance: s(ev, &["reportingInstance"]),
            message: s(ev, &["note"]),
        },
        now,
    )
}

fn print_event_view(ev: &Value, view: EventView<'_>, now: Timestamp) -> Row {
    let first = if view.first.is_empty() { age_of(now, view.event_time) } else { age_of(now, view.first) };
    let mut last = if view.last.is_empty() { first.clone() } else { age_of(now, view.last) };
    let mut count = view.count;
    if let Some(series_last) = view.series_last {
        last = age_of(now, series_last);
        count = view.series_count.unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let object = view.object.unwrap_or(&Value::Null);
    let kind = s(object, &["kind"]).to_lowercase();
    let target = match s(object, &["name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let component = str_or(view.component, view.reporting_controller);
    let host = str_or(view.host, view.reporting_instance);
    let source = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    Row::new(vec![
        Value::String(last),
        Value::String(view.ty.into()),
        Value::String(view.reason.into()),
        Value::String(target),
        Value::String(s(object, &["fieldPath"]).into()),
        Value::String(source),
        Value::String(view.message.trim().into()),
        Value::String(first),
        json!(count),
        name(ev),
    ])
}

const LEASE_COLUMNS: [Column; 3] = [NAME, col("Holder", "string", D_LEASE_HOLDER), AGE];

fn print_lease(lease: &Value, now: Timestamp) -> Row {
    Row::new(vec![name(lease), Value::String(s(lease, &["spec", "holderIdentity"]).into()), age(lease, now)])
}

const NETWORKPOLICY_COLUMNS: [Column; 3] = [NAME, col("Pod-Selector", "string", D_NP_SELECTOR), AGE];

fn print_networkpolicy(np: &Value, now: Timestamp) -> Row {
    Row::new(vec![
        name(np),
        Value::String(format_label_selector(Some(get(np, &["spec", "podSelector"]).unwrap_or(&json!({}))))),
        age(np, now),
    ])
}

// ---------------------------------------------------------------------------------------------------------
// Everything else: NAME and AGE, the default columns of a custom resource.

const DEFAULT_COLUMNS: [Column; 2] = [NAME, AGE];

fn print_default(v: &Value, now: Timestamp) -> Row {
    Row::new(vec![name(v), age(v, now)])
}

// ---------------------------------------------------------------------------------------------------------
// Column descriptions: the OpenAPI field documentation, as kube-apiserver's `SwaggerDoc()` returns it.
const D_NAME: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const D_CREATED: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const D_POD_IP: &str =
    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const D_POD_NOMINATED: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const D_POD_NODE: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const D_POD_GATES: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";
const D_NODE_SELECTOR: &str = "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/";
const D_RS_REPLICAS: &str = "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const D_RS_SELECTOR: &str = "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_RS_CURRENT: &str = "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset";
const D_RS_READY: &str = "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.";
const D_DS_DESIRED: &str = "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const D_DS_CURRENT: &str = "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/";
const D_DS_READY: &str = "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.";
const D_DS_UPDATED: &str = "The total number of nodes that are running updated daemon pod";
const D_DS_AVAILABLE: &str = "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)";
const D_DS_SELECTOR: &str = "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_DEPLOY_UPDATED: &str =
    "Total number of non-terminating pods targeted by this deployment that have the desired template spec.";
const D_DEPLOY_AVAILABLE: &str =
    "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.";
const D_DEPLOY_SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.";
const D_JOB_SUCCEEDED: &str = "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.";
const D_JOB_SELECTOR: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const D_CJ_SCHEDULE: &str = "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.";
const D_CJ_TIMEZONE: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
const D_CJ_SUSPEND: &str = "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.";
const D_CJ_ACTIVE: &str = "A list of pointers to currently running jobs.";
const D_CJ_LAST: &str = "Information when was the last time the job was successfully scheduled.";
const D_SVC_TYPE: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const D_SVC_CLUSTER_IP: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const D_SVC_EXTERNAL_IPS: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const D_SVC_PORTS: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const D_SVC_SELECTOR: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";
const D_EP_SUBSETS: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";
const D_NODE_KUBELET: &str = "Kubelet Version reported by the node.";
const D_NODE_OS: &str = "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
const D_NODE_KERNEL: &str = "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
const D_NODE_RUNTIME: &str =
    "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";
const D_NODE_ADDRESSES: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
const D_EV_LAST: &str = "The time at which the most recent occurrence of this event was recorded.";
const D_EV_TYPE: &str = "Type of this event (Normal, Warning), new types could be added in the future";
const D_EV_REASON: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
const D_EV_OBJECT: &str = "The object that this event is about.";
const D_EV_SOURCE: &str = "The component reporting this event. Should be a short machine understandable string.";
const D_EV_MESSAGE: &str = "A human-readable description of the status of this operation.";
const D_EV_FIRST: &str = "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
const D_EV_COUNT: &str = "The number of times this event has occurred.";
const D_REF_FIELD_PATH: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
const D_SECRET_TYPE: &str = "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types";
const D_SECRET_DATA: &str = "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4";
const D_SA_SECRETS: &str = "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret";
const D_CM_DATA: &str = "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.";
const D_PVC_PHASE: &str = "phase represents the current phase of PersistentVolumeClaim.";
const D_PVC_CAPACITY: &str = "capacity represents the actual resources of the underlying volume.";
const D_PVC_ACCESS: &str = "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1";
const D_PVC_VOLUME: &str = "volumeName is the binding reference to the PersistentVolume backing this claim.";
const D_PVC_MODE: &str = "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.";
const D_NP_SELECTOR: &str = "podSelector selects the pods to which this NetworkPolicy object applies. The array of ingress rules is applied to any pods selected by this field. Multiple network policies can select the same set of pods. In this case, the ingress rules for each are combined additively. This field is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods in this namespace.";
const D_LEASE_HOLDER: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";
const D_ES_TYPE: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
const D_ES_PORTS: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
const D_ES_ENDPOINTS: &str =
    "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    /// The cells of the single row of a one-object table. A printer with [`RowPrinter::paths`] must give
    /// the same row from only those paths.
    fn cells(group: &str, plural: &str, object: Value) -> Vec<Value> {
        let printer = RowPrinter::new(group, plural);
        if let Some(paths) = printer.paths() {
            let bytes = serde_json::to_vec(&object).unwrap();
            let narrow = crate::api::stored::Sparse::from_paths(paths.iter().copied()).decode(&bytes).unwrap();
            assert_eq!(printer.row(&narrow, now()), printer.row(&object, now()), "{narrow}");
        }
        let table = to_table_at(group, plural, &[object], json!({}), IncludeObject::None, now());
        table["rows"][0]["cells"].as_array().unwrap().clone()
    }

    fn column_names(group: &str, plural: &str) -> Vec<(String, i64)> {
        let table = to_table_at(group, plural, &[], json!({}), IncludeObject::None, now());
        table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["priority"].as_i64().unwrap()))
            .collect()
    }

    fn meta(name: &str, created: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": created, "uid": "u1", "resourceVersion": "7"})
    }

    #[test]
    fn human_duration_matches_kubectl() {
        let sec = 1_000_000_000i128;
        for (seconds, want) in [
            (-3, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (4 * 3600 + 5 * 60 + 7, "4h5m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (3 * 86400, "3d"),
            (3 * 86400 + 5 * 3600, "3d5h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 10 * 86400, "3y10d"),
            (10 * 365 * 86400, "10y"),
        ] {
            assert_eq!(human_duration(seconds * sec), want, "{seconds}s");
        }
        // Sub-second remainders round down, like Go's integer division.
        assert_eq!(human_duration(5 * sec + sec / 2), "5s");
    }

    #[test]
    fn table_shape_and_include_object() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web", "2026-01-01T11:59:00Z"),
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}, "status": {"phase": "Pending"}});
        let list_meta = json!({"resourceVersion": "42", "continue": "abc"});
        let table = to_table("", "pods", std::slice::from_ref(&pod), list_meta.clone(), "");
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"], list_meta);
        let first = &table["columnDefinitions"][0];
        assert_eq!(first["name"], "Name");
        assert_eq!(first["type"], "string");
        assert_eq!(first["format"], "name");
        assert_eq!(first["priority"], 0);
        assert!(first["description"].as_str().unwrap().starts_with("Name must be unique within a namespace."));
        let object = &table["rows"][0]["object"];
        assert_eq!(object["kind"], "PartialObjectMetadata");
        assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(object["metadata"], pod["metadata"]);
        assert!(object.get("spec").is_none());

        let full = to_table("", "pods", std::slice::from_ref(&pod), json!({}), "Object");
        assert_eq!(full["rows"][0]["object"], pod);
        let none = to_table("", "pods", std::slice::from_ref(&pod), Value::Null, "None");
        assert!(none["rows"][0].get("object").is_none());
        assert_eq!(none["metadata"], json!({}));
        assert_eq!(to_table("", "pods", &[], json!({}), "")["rows"], json!([]));
    }

    #[test]
    fn wants_table_parses_kubectl_accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(wants_table("application/json; as=Table; v=v1; g=meta.k8s.io"));
        assert!(!wants_table("application/json"));
        assert!(!wants_table("application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"));
        assert!(!wants_table("application/yaml;as=Table;v=v1;g=meta.k8s.io"));
        assert!(!wants_table(""));
    }

    #[test]
    fn pod_columns_and_wide_columns() {
        assert_eq!(
            column_names("", "pods"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("web-1", "2026-01-01T11:57:00Z"), "spec": spec, "status": status})
    }

    fn one_container() -> Value {
        json!({"containers": [{"name": "app", "image": "busybox"}], "nodeName": "node1"})
    }

    #[test]
    fn running_pod_with_restarts() {
        let p = pod(
            one_container(),
            json!({"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}], "podIP": "10.42.0.5",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 2,
                    "state": {"running": {"startedAt": "2026-01-01T11:59:55Z"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:59:55Z"}}}]}),
        );
        assert_eq!(
            cells("", "pods", p),
            json!(["web-1", "1/1", "Running", "2 (5s ago)", "3m", "10.42.0.5", "node1", "<none>", "<none>"])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn pod_statuses_like_kubectl() {
        let waiting = |reason: &str| {
            pod(
                one_container(),
                json!({"phase": "Pending", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                    "state": {"waiting": {"reason": reason}}}]}),
            )
        };
        assert_eq!(cells("", "pods", waiting("ContainerCreating"))[2], "ContainerCreating");
        assert_eq!(cells("", "pods", waiting("ErrImageNeverPull"))[2], "ErrImageNeverPull");
        assert_eq!(cells("", "pods", waiting("CrashLoopBackOff"))[2], "CrashLoopBackOff");

        let unscheduled = pod(json!({"containers": [{"name": "app"}]}), json!({"phase": "Pending"}));
        let c = cells("", "pods", unscheduled);
        assert_eq!((c[1].as_str(), c[2].as_str(), c[3].as_str()), (Some("0/1"), Some("Pending"), Some("0")));
        assert_eq!((c[5].as_str(), c[6].as_str()), (Some("<none>"), Some("<none>")));

        let completed = pod(
            one_container(),
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        let table = to_table_at("", "pods", &[completed], json!({}), IncludeObject::None, now());
        assert_eq!(table["rows"][0]["cells"][2], "Completed");
        assert_eq!(table["rows"][0]["conditions"][0]["type"], "Completed");
        assert_eq!(table["rows"][0]["conditions"][0]["reason"], "Succeeded");

        let exit_code = pod(
            one_container(),
            json!({"phase": "Failed", "containerStatuses": [{"name": "app", "restartCount": 0,
                "state": {"terminated": {"exitCode": 3}}}]}),
        );
        assert_eq!(cells("", "pods", exit_code)[2], "ExitCode:3");

        let mut terminating = pod(
            one_container(),
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                "state": {"running": {}}}]}),
        );
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T12:00:30Z");
        assert_eq!(cells("", "pods", terminating)[2], "Terminating");

        // A completed container next to a running one: Running when the pod is ready, else NotReady.
        let two = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        let mixed = |ready: &str| {
            pod(
                two.clone(),
                json!({"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
                    "containerStatuses": [
                        {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                        {"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            )
        };
        assert_eq!(cells("", "pods", mixed("True"))[1..3], [json!("1/2"), json!("Running")]);
        assert_eq!(cells("", "pods", mixed("False"))[2], "NotReady");
    }

    #[test]
    fn pod_init_containers() {
        let spec = json!({"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]});
        let running_init = pod(
            spec.clone(),
            json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        );
        assert_eq!(cells("", "pods", running_init)[1..3], [json!("0/1"), json!("Init:0/1")]);

        let crashing_init = pod(
            spec.clone(),
            json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "init", "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T11:58:00Z"}}}]}),
        );
        assert_eq!(cells("", "pods", crashing_init)[2..4], [json!("Init:CrashLoopBackOff"), json!("4 (2m ago)")]);

        let failed_init = pod(
            spec.clone(),
            json!({"phase": "Pending",
                "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]}),
        );
        assert_eq!(cells("", "pods", failed_init)[2], "Init:ExitCode:2");

        // A started sidecar (restartable init container) counts towards READY.
        let sidecar = pod(
            json!({"initContainers": [{"name": "side", "restartPolicy": "Always"}], "containers": [{"name": "app"}]}),
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "side", "restartCount": 0, "started": true, "ready": true, "state": {"running": {}}}],
                "containerStatuses": [{"name": "app", "restartCount": 0, "ready": true, "state": {"running": {}}}]}),
        );
        assert_eq!(cells("", "pods", sidecar)[1..3], [json!("2/2"), json!("Running")]);
    }

    #[test]
    fn pod_readiness_gates() {
        let p = pod(
            json!({"containers": [{"name": "app"}], "readinessGates": [{"conditionType": "x"}, {"conditionType": "y"}]}),
            json!({"phase": "Running", "conditions": [{"type": "x", "status": "True"}, {"type": "y", "status": "False"}]}),
        );
        assert_eq!(cells("", "pods", p)[8], "1/2");
    }

    #[test]
    fn services() {
        assert_eq!(
            column_names("", "services").iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
        );
        let svc = |spec: Value, status: Value| json!({"metadata": meta("web", "2025-12-29T12:00:00Z"), "spec": spec, "status": status});
        let cluster_ip = svc(
            json!({"type": "ClusterIP", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"b": "2", "a": "1"}}),
            json!({}),
        );
        assert_eq!(
            cells("", "services", cluster_ip),
            json!(["web", "ClusterIP", "10.43.0.10", "<none>", "80/TCP,53/UDP", "3d", "a=1,b=2"])
                .as_array()
                .unwrap()
                .clone()
        );
        let lb = svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.43.0.11"], "ports": [{"port": 8080, "nodePort": 30080}]}),
            json!({"loadBalancer": {}}),
        );
        assert_eq!(
            cells("", "services", lb)[2..7],
            [json!("10.43.0.11"), json!("<pending>"), json!("8080:30080/TCP"), json!("3d"), json!("<none>")]
        );
        let lb_ready = svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.43.0.11"], "ports": [{"port": 8080, "nodePort": 30080}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "192.168.1.5"}]}}),
        );
        assert_eq!(cells("", "services", lb_ready)[3], "192.168.1.5");
        let headless = svc(json!({"clusterIP": "None", "clusterIPs": ["None"]}), json!({}));
        assert_eq!(
            cells("", "services", headless)[1..5],
            [json!("ClusterIP"), json!("None"), json!("<none>"), json!("<none>")]
        );
        let external = svc(json!({"type": "ExternalName", "externalName": "example.com"}), json!({}));
        assert_eq!(cells("", "services", external)[2..4], [json!("<none>"), json!("example.com")]);
    }

    #[test]
    fn workloads() {
        let template =
            json!({"spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "log", "image": "busybox"}]}});
        let deploy = json!({"metadata": meta("web", "2026-01-01T08:00:00Z"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}, "template": template},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        assert_eq!(
            cells("apps", "deployments", deploy),
            json!(["web", "2/3", 3, 2, "4h", "web,log", "nginx,busybox", "app=web,tier in (a,b)"])
                .as_array()
                .unwrap()
                .clone()
        );
        assert_eq!(
            column_names("apps", "deployments"),
            [
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        let unset =
            json!({"metadata": meta("web", "2026-01-01T11:00:00Z"), "spec": {"template": template}, "status": {}});
        assert_eq!(cells("apps", "deployments", unset.clone())[1..4], [json!("0/1"), json!(0), json!(0)]);

        let rs = json!({"metadata": meta("web-abc", "2026-01-01T11:59:00Z"),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}}, "template": template},
            "status": {"replicas": 2, "readyReplicas": 1}});
        assert_eq!(
            cells("apps", "replicasets", rs),
            json!(["web-abc", 2, 2, 1, "60s", "web,log", "nginx,busybox", "app=web,pod-template-hash=abc"])
                .as_array()
                .unwrap()
                .clone()
        );
        assert_eq!(cells("apps", "replicasets", unset.clone())[7], "<none>");

        let sts = json!({"metadata": meta("db", "2026-01-01T11:59:58Z"), "spec": {"replicas": 1, "template": template},
            "status": {"readyReplicas": 1}});
        assert_eq!(
            cells("apps", "statefulsets", sts),
            json!(["db", "1/1", "2s", "web,log", "nginx,busybox"]).as_array().unwrap().clone()
        );

        let ds = json!({"metadata": meta("agent", "2026-01-01T11:00:00Z"),
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {"nodeSelector": {"os": "linux"}, "containers": [{"name": "a", "image": "i"}]}}},
            "status": {"desiredNumberScheduled": 1, "currentNumberScheduled": 1, "numberReady": 1, "updatedNumberScheduled": 1, "numberAvailable": 0}});
        assert_eq!(
            cells("apps", "daemonsets", ds),
            json!(["agent", 1, 1, 1, 1, 0, "os=linux", "60m", "a", "i", "app=agent"]).as_array().unwrap().clone()
        );
    }

    #[test]
    fn jobs_and_cronjobs() {
        assert_eq!(
            column_names("batch", "jobs").iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]
        );
        let template = json!({"spec": {"containers": [{"name": "migrate", "image": "app"}]}});
        let done = json!({"metadata": meta("migrate", "2026-01-01T11:50:00Z"),
            "spec": {"completions": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}, "template": template},
            "status": {"succeeded": 1, "startTime": "2026-01-01T11:50:00Z", "completionTime": "2026-01-01T11:50:12Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            cells("batch", "jobs", done),
            json!([
                "migrate",
                "Complete",
                "1/1",
                "12s",
                "10m",
                "migrate",
                "app",
                "batch.kubernetes.io/controller-uid=u1"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let running = json!({"metadata": meta("work", "2026-01-01T11:59:00Z"),
            "spec": {"parallelism": 3, "template": template}, "status": {"succeeded": 1, "startTime": "2026-01-01T11:59:30Z"}});
        assert_eq!(cells("batch", "jobs", running)[1..4], [json!("Running"), json!("1/1 of 3"), json!("30s")]);
        let failed = json!({"metadata": meta("bad", "2026-01-01T11:59:00Z"), "spec": {"template": template},
            "status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(cells("batch", "jobs", failed)[1..4], [json!("Failed"), json!("0/1"), json!("")]);

        let cj = json!({"metadata": meta("nightly", "2025-12-31T12:00:00Z"),
            "spec": {"schedule": "0 3 * * *", "suspend": false, "jobTemplate": {"spec": {"template": template}}},
            "status": {"active": [{"name": "x"}], "lastScheduleTime": "2026-01-01T03:00:00Z"}});
        assert_eq!(
            cells("batch", "cronjobs", cj),
            json!(["nightly", "0 3 * * *", "<none>", "False", 1, "9h", "24h", "migrate", "app", "<none>"])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn nodes() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T07:55:00Z",
                "labels": {"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "true"}},
            "spec": {"podCIDR": "10.42.0.0/24"},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}, {"type": "Hostname", "address": "n1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-flotilla", "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "docker://20.10.24"}}});
        assert_eq!(
            cells("", "nodes", node),
            json!([
                "n1",
                "Ready",
                "control-plane,master",
                "4h5m",
                "v1.33.0-flotilla",
                "192.168.1.2",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0",
                "docker://20.10.24"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let cordoned = json!({"metadata": {"name": "n2"}, "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(
            cells("", "nodes", cordoned),
            json!([
                "n2",
                "NotReady,SchedulingDisabled",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        assert_eq!(cells("", "nodes", json!({"metadata": {"name": "n3"}}))[1], "Unknown");
    }

    #[test]
    fn config_storage_and_namespaces() {
        let ns = json!({"metadata": {"name": "shop", "creationTimestamp": "2026-01-01T11:59:50Z"}, "status": {"phase": "Active"}});
        assert_eq!(cells("", "namespaces", ns), json!(["shop", "Active", "10s"]).as_array().unwrap().clone());
        let cm = json!({"metadata": meta("cfg", "2026-01-01T11:00:00Z"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(cells("", "configmaps", cm), json!(["cfg", 3, "60m"]).as_array().unwrap().clone());
        let secret =
            json!({"metadata": meta("db", "2026-01-01T11:00:00Z"), "type": "Opaque", "data": {"password": "cA=="}});
        assert_eq!(cells("", "secrets", secret), json!(["db", "Opaque", 1, "60m"]).as_array().unwrap().clone());
        let sa = json!({"metadata": meta("default", "2026-01-01T11:00:00Z")});
        assert_eq!(cells("", "serviceaccounts", sa), json!(["default", 0, "60m"]).as_array().unwrap().clone());

        let pending = json!({"metadata": meta("data", "2026-01-01T11:00:00Z"),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "local"},
            "status": {"phase": "Pending"}});
        assert_eq!(
            cells("", "persistentvolumeclaims", pending),
            json!(["data", "Pending", "", "", "", "local", "<unset>", "60m", "<unset>"]).as_array().unwrap().clone()
        );
        let bound = json!({"metadata": meta("data", "2026-01-01T11:00:00Z"),
            "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-1", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "capacity": {"storage": "1Gi"}}});
        assert_eq!(
            cells("", "persistentvolumeclaims", bound),
            json!(["data", "Bound", "pv-1", "1Gi", "RWO,RWX", "", "<unset>", "60m", "Filesystem"])
                .as_array()
                .unwrap()
                .clone()
        );
    }

    #[test]
    fn endpoints_and_slices() {
        let ep = json!({"metadata": meta("web", "2026-01-01T11:00:00Z"), "subsets": [
            {"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(cells("", "endpoints", ep)[1], "10.42.0.5:80,10.42.0.6:80,10.42.0.5:443 + 1 more...");
        assert_eq!(
            cells("", "endpoints", json!({"metadata": meta("e", "")}))[1..3],
            [json!("<none>"), json!("<unknown>")]
        );

        let slice = json!({"metadata": meta("web-abcde", "2026-01-01T11:00:00Z"), "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.0.5"]}, {"addresses": ["10.42.0.6"]}]});
        assert_eq!(
            cells("discovery.k8s.io", "endpointslices", slice),
            json!(["web-abcde", "IPv4", "80", "10.42.0.5,10.42.0.6", "60m"]).as_array().unwrap().clone()
        );
        let empty = json!({"metadata": meta("web-x", "2026-01-01T11:00:00Z"), "addressType": "IPv4", "endpoints": []});
        assert_eq!(cells("discovery.k8s.io", "endpointslices", empty)[2..4], [json!("<unset>"), json!("<unset>")]);
    }

    #[test]
    fn events_leases_policies_and_default() {
        assert_eq!(
            column_names("", "events"),
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        let ev = json!({"metadata": meta("web-1.abc", "2026-01-01T11:59:00Z"), "type": "Normal", "reason": "Scheduled",
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "source": {"component": "default-scheduler"}, "message": "Successfully assigned default/web-1 to n1\n",
            "firstTimestamp": "2026-01-01T11:59:00Z", "lastTimestamp": "2026-01-01T11:59:30Z", "count": 2});
        assert_eq!(
            cells("", "events", ev),
            json!([
                "30s",
                "Normal",
                "Scheduled",
                "pod/web-1",
                "spec.containers{app}",
                "default-scheduler",
                "Successfully assigned default/web-1 to n1",
                "60s",
                2,
                "web-1.abc"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        let new_api = json!({"metadata": meta("x", "2026-01-01T11:59:00Z"), "type": "Warning", "reason": "BackOff",
            "regarding": {"kind": "Pod", "name": "web-2"}, "note": "Back-off restarting", "eventTime": "2026-01-01T11:59:50.123456Z",
            "reportingController": "flotilla-agent", "reportingInstance": "n1"});
        assert_eq!(
            cells("events.k8s.io", "events", new_api),
            json!([
                "9s",
                "Warning",
                "BackOff",
                "pod/web-2",
                "",
                "flotilla-agent, n1",
                "Back-off restarting",
                "9s",
                1,
                "x"
            ])
            .as_array()
            .unwrap()
            .clone()
        );

        let lease = json!({"metadata": meta("n1", "2026-01-01T11:00:00Z"), "spec": {"holderIdentity": "n1"}});
        assert_eq!(
            cells("coordination.k8s.io", "leases", lease),
            json!(["n1", "n1", "60m"]).as_array().unwrap().clone()
        );
        let np = json!({"metadata": meta("deny", "2026-01-01T11:00:00Z"), "spec": {"podSelector": {}}});
        assert_eq!(cells("networking.k8s.io", "networkpolicies", np)[1], "<none>");
        let np2 = json!({"metadata": meta("web", "2026-01-01T11:00:00Z"),
            "spec": {"podSelector": {"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}, {"key": "app", "operator": "Exists"}]}}});
        assert_eq!(cells("networking.k8s.io", "networkpolicies", np2)[1], "app,!x");

        assert_eq!(column_names("example.com", "widgets"), [("Name".to_string(), 0), ("Age".to_string(), 0)]);
        let widget = json!({"metadata": meta("w", "2026-01-01T11:00:00Z")});
        assert_eq!(cells("example.com", "widgets", widget), json!(["w", "60m"]).as_array().unwrap().clone());
    }
}
