//! The last pass over the located tree: every value converted to the shape `docker compose config
//! --format json` prints it in.
//!
//! compose-go does this by decoding its `map[string]any` into Go structs (`loader.Transform`, a
//! mapstructure decode with the `DecodeMapstructure` hooks of `types/*.go` and the string casts of
//! `loader/mapstructure.go`) and marshalling those structs back to JSON. Both halves leave marks on the
//! output, and this pass reproduces them from a description of the Go types ([`Ty`], one [`Field`] per
//! struct field):
//! - decoding converts: `labels: [A=1]` becomes a map, `command: echo hi` a list, `mem_limit: 1g` the
//!   byte count, `stop_grace_period: 90s` Go's `1m30s`, `extra_hosts` a sorted `host=ip` list, numbers
//!   in string fields strings and strings in number fields numbers;
//! - marshalling drops zero values of `omitempty` fields (`privileged: false`, `mem_swappiness: 0`),
//!   prints struct fields that are not pointers even when absent (`ipam: {}`, `deploy.placement: {}`)
//!   and fields without `omitempty` always (`command: null`, `depends_on.*.required: false`).
//!
//! Keys the Go types have no field for are dropped, as mapstructure drops them; `x-*` keys are kept
//! wherever they are (compose keeps them as extensions; only the top-level ones are
//! printed, which [`super::Loaded::config_json`] takes care of). Every node keeps the location of the
//! value it was made from.

use super::tree::{Path, as_int, bool_node, go_sprint, go_type, null_node, plain_node, str_node};
use super::units::{format_duration_nanos, parse_bytes, parse_duration_nanos, shell_split};
use super::yaml::{Entry, Map, Node, Value};
use crate::diag::Diagnostic;
use crate::source::Location;

/// A Go type of compose-go's model, as far as decoding and marshalling it shows in the output.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Str,
    Bool,
    /// `int`, `int64`: a string is parsed (`strconv.Atoi`), a float truncated.
    Int,
    /// `uint16`, `uint32`, `uint64`, by width in bits: a larger number wraps around as Go's
    /// `reflect.Value.SetUint` truncates it (`blkio_config.weight: 70000` is 4464), a negative one is
    /// an error.
    Uint(u32),
    /// `float32`.
    Float,
    /// A pointer: null stays null (and an `omitempty` field is dropped), anything else is kept even
    /// when it is the zero value.
    Ptr(&'static Ty),
    Slice(&'static Ty),
    Map(&'static Ty),
    Struct(&'static [Field]),
    /// `UnitBytes`: a byte count, printed as a string of digits.
    UnitBytes,
    /// `Duration`: parsed by str2duration, printed by Go's `time.Duration.String`.
    Duration,
    /// `NanoCPUs`: a float32 from a number or a string.
    NanoCpus,
    /// `ShellCommand`: a string is split like a shell would.
    ShellCommand,
    /// `HealthCheckTest`: a string `s` is `["CMD-SHELL", s]`.
    HealthTest,
    /// `HostsList`: printed as the sorted list of `host=ip`.
    HostsList,
    /// `Labels` and `Mapping`: `map[string]string`, from a map or a list of `k=v` (`k` alone is `k: ""`).
    Labels,
    /// `MappingWithEquals`: `map[string]*string`; `k` alone and `k: null` stay null.
    MappingWithEquals,
    /// `Options`: `map[string]string` from a map only.
    Options,
    /// `MultiOptions`: every value a list of strings.
    MultiOptions,
    /// `StringList`: a string is a list of one; items must be strings.
    StringList,
    /// `StringOrNumberList`: a string is a list of one; items are printed as strings.
    StringOrNumberList,
    /// `SSHConfig`: `{id: path}` printed as a list of ids.
    Ssh,
    /// `FileMode`: an octal string or a number, printed as `"0440"`.
    FileMode,
    /// `UlimitsConfig`: a number, or `{soft, hard}`.
    Ulimit,
    /// `DeviceCount`: a number, or `all` (-1).
    DeviceCount,
}

/// When an absent or zero field is left out of the JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Omit {
    /// `omitempty`: false, 0, "", null and empty lists and maps are left out; structs never are.
    Empty,
    /// An `OptOut` (a boolean that defaults to true) that compose never prints, kept for the converter
    /// when false (`env_file.required`): `true` is left out, and so is an absent one (compose-go's
    /// canonical pass always sets it). `bind.create_host_path` is an `OptOut` too, but compose v2.40
    /// prints it like any `omitempty` boolean, `true` included.
    OptOut,
    /// No `omitempty`: always printed, null when absent.
    Never,
}

#[derive(Clone, Copy, Debug)]
struct Field {
    key: &'static str,
    ty: Ty,
    omit: Omit,
}

const fn f(key: &'static str, ty: Ty) -> Field {
    Field { key, ty, omit: Omit::Empty }
}

const fn always(key: &'static str, ty: Ty) -> Field {
    Field { key, ty, omit: Omit::Never }
}

const fn opt_out(key: &'static str) -> Field {
    Field { key, ty: Ty::Bool, omit: Omit::OptOut }
}

use Ty::*;

const STRINGS: Ty = Slice(&Str);

// types/types.go and friends, field by field.

const PROJECT: &[Field] = &[
    always("name", Str),
    always("services", Map(&Struct(SERVICE))),
    f("networks", Map(&Struct(NETWORK))),
    f("volumes", Map(&Struct(VOLUME))),
    f("secrets", Map(&Struct(FILE_OBJECT))),
    f("configs", Map(&Struct(FILE_OBJECT))),
    f("models", Map(&Struct(MODEL))),
];

const SERVICE: &[Field] = &[
    f("profiles", STRINGS),
    f("annotations", Labels),
    f("attach", Ptr(&Bool)),
    f("build", Ptr(&Struct(BUILD))),
    f("develop", Ptr(&Struct(DEVELOP))),
    f("blkio_config", Ptr(&Struct(BLKIO))),
    f("cap_add", STRINGS),
    f("cap_drop", STRINGS),
    f("cgroup_parent", Str),
    f("cgroup", Str),
    f("cpu_count", Int),
    f("cpu_percent", Float),
    f("cpu_period", Int),
    f("cpu_quota", Int),
    f("cpu_rt_period", Int),
    f("cpu_rt_runtime", Int),
    f("cpus", Float),
    f("cpuset", Str),
    f("cpu_shares", Int),
    always("command", ShellCommand),
    f("configs", Slice(&Struct(FILE_REFERENCE))),
    f("container_name", Str),
    f("credential_spec", Ptr(&Struct(CREDENTIAL_SPEC))),
    f("depends_on", Map(&Struct(DEPENDENCY))),
    f("deploy", Ptr(&Struct(DEPLOY))),
    f("device_cgroup_rules", STRINGS),
    f("devices", Slice(&Struct(DEVICE_MAPPING))),
    f("dns", StringList),
    f("dns_opt", STRINGS),
    f("dns_search", StringList),
    f("dockerfile", Str),
    f("domainname", Str),
    always("entrypoint", ShellCommand),
    f("provider", Ptr(&Struct(PROVIDER))),
    f("environment", MappingWithEquals),
    f("env_file", Slice(&Struct(ENV_FILE))),
    f("expose", StringOrNumberList),
    f("extends", Ptr(&Struct(EXTENDS))),
    f("external_links", STRINGS),
    f("extra_hosts", HostsList),
    f("group_add", STRINGS),
    f("gpus", Slice(&Struct(DEVICE_REQUEST))),
    f("hostname", Str),
    f("healthcheck", Ptr(&Struct(HEALTHCHECK))),
    f("image", Str),
    f("init", Ptr(&Bool)),
    f("ipc", Str),
    f("isolation", Str),
    f("labels", Labels),
    f("label_file", STRINGS),
    f("links", STRINGS),
    f("logging", Ptr(&Struct(LOGGING))),
    f("log_driver", Str),
    f("log_opt", Map(&Str)),
    f("mem_limit", UnitBytes),
    f("mem_reservation", UnitBytes),
    f("memswap_limit", UnitBytes),
    f("mem_swappiness", UnitBytes),
    f("mac_address", Str),
    f("models", Map(&Ptr(&Struct(SERVICE_MODEL)))),
    f("net", Str),
    f("network_mode", Str),
    f("networks", Map(&Ptr(&Struct(SERVICE_NETWORK)))),
    f("oom_kill_disable", Bool),
    f("oom_score_adj", Int),
    f("pid", Str),
    f("pids_limit", Int),
    f("platform", Str),
    f("ports", Slice(&Struct(PORT))),
    f("privileged", Bool),
    f("pull_policy", Str),
    f("read_only", Bool),
    f("restart", Str),
    f("runtime", Str),
    f("scale", Ptr(&Int)),
    f("secrets", Slice(&Struct(FILE_REFERENCE))),
    f("security_opt", STRINGS),
    f("shm_size", UnitBytes),
    f("stdin_open", Bool),
    f("stop_grace_period", Ptr(&Duration)),
    f("stop_signal", Str),
    f("storage_opt", Map(&Str)),
    f("sysctls", Labels),
    f("tmpfs", StringList),
    f("tty", Bool),
    f("ulimits", Map(&Ptr(&Ulimit))),
    f("use_api_socket", Bool),
    f("user", Str),
    f("userns_mode", Str),
    f("uts", Str),
    f("volume_driver", Str),
    f("volumes", Slice(&Struct(SERVICE_VOLUME))),
    f("volumes_from", STRINGS),
    f("working_dir", Str),
    f("pre_start", Slice(&Struct(HOOK))),
    f("post_start", Slice(&Struct(HOOK))),
    f("pre_stop", Slice(&Struct(HOOK))),
];

const PROVIDER: &[Field] = &[f("type", Str), f("options", MultiOptions)];

const BUILD: &[Field] = &[
    f("context", Str),
    f("dockerfile", Str),
    f("dockerfile_inline", Str),
    f("entitlements", STRINGS),
    f("args", MappingWithEquals),
    f("provenance", Str),
    f("sbom", Str),
    f("ssh", Ssh),
    f("labels", Labels),
    f("cache_from", StringList),
    f("cache_to", StringList),
    f("no_cache", Bool),
    f("no_cache_filter", StringList),
    f("additional_contexts", Labels),
    f("pull", Bool),
    f("extra_hosts", HostsList),
    f("isolation", Str),
    f("network", Str),
    f("target", Str),
    f("secrets", Slice(&Struct(FILE_REFERENCE))),
    f("shm_size", UnitBytes),
    f("tags", StringList),
    f("ulimits", Map(&Ptr(&Ulimit))),
    f("platforms", StringList),
    f("privileged", Bool),
];

const DEVELOP: &[Field] = &[f("watch", Slice(&Struct(TRIGGER)))];

const TRIGGER: &[Field] = &[
    always("path", Str),
    always("action", Str),
    f("target", Str),
    f("exec", Struct(HOOK)),
    f("include", STRINGS),
    f("ignore", STRINGS),
    f("initial_sync", Bool),
];

const HOOK: &[Field] = &[
    always("command", ShellCommand),
    f("image", Str),
    f("user", Str),
    f("privileged", Bool),
    f("working_dir", Str),
    f("environment", MappingWithEquals),
    f("per_replica", Bool),
];

// `WeightDevice` and `ThrottleDevice` have no tags: mapstructure matches their keys case-insensitively
// and encoding/json prints the Go field names.
const BLKIO: &[Field] = &[
    f("weight", Uint(16)),
    f("weight_device", Slice(&Struct(WEIGHT_DEVICE))),
    f("device_read_bps", Slice(&Struct(THROTTLE_DEVICE))),
    f("device_read_iops", Slice(&Struct(THROTTLE_DEVICE))),
    f("device_write_bps", Slice(&Struct(THROTTLE_DEVICE))),
    f("device_write_iops", Slice(&Struct(THROTTLE_DEVICE))),
];

const WEIGHT_DEVICE: &[Field] = &[always("Path", Str), always("Weight", Uint(16))];

const THROTTLE_DEVICE: &[Field] = &[always("Path", Str), always("Rate", UnitBytes)];

const DEVICE_MAPPING: &[Field] = &[f("source", Str), f("target", Str), f("permissions", Str)];

const LOGGING: &[Field] = &[f("driver", Str), f("options", Options)];

const DEPLOY: &[Field] = &[
    f("mode", Str),
    f("replicas", Ptr(&Int)),
    f("labels", Labels),
    f("update_config", Ptr(&Struct(UPDATE_CONFIG))),
    f("rollback_config", Ptr(&Struct(UPDATE_CONFIG))),
    f("resources", Struct(RESOURCES)),
    f("restart_policy", Ptr(&Struct(RESTART_POLICY))),
    f("placement", Struct(PLACEMENT)),
    f("endpoint_mode", Str),
];

const UPDATE_CONFIG: &[Field] = &[
    f("parallelism", Ptr(&Uint(64))),
    f("delay", Duration),
    f("failure_action", Str),
    f("monitor", Duration),
    f("max_failure_ratio", Float),
    f("order", Str),
];

const RESOURCES: &[Field] = &[f("limits", Ptr(&Struct(RESOURCE))), f("reservations", Ptr(&Struct(RESOURCE)))];

const RESOURCE: &[Field] = &[
    f("cpus", NanoCpus),
    f("memory", UnitBytes),
    f("pids", Int),
    f("devices", Slice(&Struct(DEVICE_REQUEST))),
    f("generic_resources", Slice(&Struct(GENERIC_RESOURCE))),
];

const GENERIC_RESOURCE: &[Field] = &[f("discrete_resource_spec", Ptr(&Struct(DISCRETE_RESOURCE)))];

const DISCRETE_RESOURCE: &[Field] = &[always("kind", Str), always("value", Int)];

const DEVICE_REQUEST: &[Field] = &[
    f("capabilities", STRINGS),
    f("driver", Str),
    f("count", DeviceCount),
    f("device_ids", STRINGS),
    f("options", Labels),
];

const RESTART_POLICY: &[Field] =
    &[f("condition", Str), f("delay", Ptr(&Duration)), f("max_attempts", Ptr(&Uint(64))), f("window", Ptr(&Duration))];

const PLACEMENT: &[Field] = &[
    f("constraints", STRINGS),
    f("preferences", Slice(&Struct(PLACEMENT_PREFERENCE))),
    f("max_replicas_per_node", Uint(64)),
];

const PLACEMENT_PREFERENCE: &[Field] = &[f("spread", Str)];

const SERVICE_NETWORK: &[Field] = &[
    f("aliases", STRINGS),
    f("driver_opts", Options),
    f("gw_priority", Int),
    f("interface_name", Str),
    f("ipv4_address", Str),
    f("ipv6_address", Str),
    f("link_local_ips", STRINGS),
    f("mac_address", Str),
    f("priority", Int),
];

const PORT: &[Field] = &[
    f("name", Str),
    f("mode", Str),
    f("host_ip", Str),
    f("target", Uint(32)),
    f("published", Str),
    f("protocol", Str),
    f("app_protocol", Str),
];

const SERVICE_VOLUME: &[Field] = &[
    f("type", Str),
    f("source", Str),
    f("target", Str),
    f("read_only", Bool),
    f("consistency", Str),
    f("bind", Ptr(&Struct(VOLUME_BIND))),
    f("volume", Ptr(&Struct(VOLUME_VOLUME))),
    f("tmpfs", Ptr(&Struct(VOLUME_TMPFS))),
    f("image", Ptr(&Struct(VOLUME_IMAGE))),
];

const VOLUME_BIND: &[Field] =
    &[f("selinux", Str), f("propagation", Str), f("create_host_path", Bool), f("recursive", Str)];

const VOLUME_VOLUME: &[Field] = &[f("labels", Labels), f("nocopy", Bool), f("subpath", Str)];

const VOLUME_TMPFS: &[Field] = &[f("size", UnitBytes), f("mode", Uint(32))];

const VOLUME_IMAGE: &[Field] = &[f("subpath", Str)];

const FILE_REFERENCE: &[Field] =
    &[f("source", Str), f("target", Str), f("uid", Str), f("gid", Str), f("mode", Ptr(&FileMode))];

const CREDENTIAL_SPEC: &[Field] = &[f("config", Str), f("file", Str), f("registry", Str)];

const DEPENDENCY: &[Field] = &[f("condition", Str), f("restart", Bool), always("required", Bool)];

const EXTENDS: &[Field] = &[f("file", Str), f("service", Str)];

const ENV_FILE: &[Field] = &[f("path", Str), opt_out("required"), f("format", Str)];

const HEALTHCHECK: &[Field] = &[
    f("test", HealthTest),
    f("timeout", Ptr(&Duration)),
    f("interval", Ptr(&Duration)),
    f("retries", Ptr(&Uint(64))),
    f("start_period", Ptr(&Duration)),
    f("start_interval", Ptr(&Duration)),
    f("disable", Bool),
];

const SERVICE_MODEL: &[Field] = &[f("endpoint_var", Str), f("model_var", Str)];

const NETWORK: &[Field] = &[
    f("name", Str),
    f("driver", Str),
    f("driver_opts", Options),
    f("ipam", Struct(IPAM)),
    f("external", Bool),
    f("internal", Bool),
    f("attachable", Bool),
    f("labels", Labels),
    f("enable_ipv4", Ptr(&Bool)),
    f("enable_ipv6", Ptr(&Bool)),
];

// compose-go v2.9.1 has no `options` here (the schema allows it; compose-go added the field later), so
// compose drops it.
const IPAM: &[Field] = &[f("driver", Str), f("config", Slice(&Ptr(&Struct(IPAM_POOL))))];

const IPAM_POOL: &[Field] = &[f("subnet", Str), f("gateway", Str), f("ip_range", Str), f("aux_addresses", Labels)];

const VOLUME: &[Field] =
    &[f("name", Str), f("driver", Str), f("driver_opts", Options), f("external", Bool), f("labels", Labels)];

/// `FileObjectConfig`, behind both `secrets` and `configs`.
const FILE_OBJECT: &[Field] = &[
    f("name", Str),
    f("file", Str),
    f("environment", Str),
    f("content", Str),
    f("external", Bool),
    f("labels", Labels),
    f("driver", Str),
    f("driver_opts", Map(&Str)),
    f("template_driver", Str),
];

const MODEL: &[Field] = &[f("name", Str), f("model", Str), f("context_size", Int), f("runtime_flags", STRINGS)];

/// Removes from the decoded project what `docker compose config` does not print although the project
/// holds it: `x-*` keys inside services, networks, volumes, ... (`Extensions` are `json:"-"`; the
/// project's own are printed), a secret's `content` (never printed) and a config's when it came from
/// `environment`, and the top-level `models` (`Project.MarshalJSON` leaves them out).
pub fn hide_unprinted(json: &mut serde_json::Value) {
    let Some(project) = json.as_object_mut() else { return };
    prune_unused(project);
    project.remove("models");
    if let Some(secrets) = project.get_mut("secrets").and_then(serde_json::Value::as_object_mut) {
        secrets.values_mut().filter_map(serde_json::Value::as_object_mut).for_each(|s| {
            s.remove("content");
        });
    }
    if let Some(configs) = project.get_mut("configs").and_then(serde_json::Value::as_object_mut) {
        for config in configs.values_mut().filter_map(serde_json::Value::as_object_mut) {
            if config.get("environment").and_then(serde_json::Value::as_str).is_some_and(|e| !e.is_empty()) {
                config.remove("content");
            }
        }
    }
    for field in PROJECT {
        if let Some(value) = project.get_mut(field.key) {
            hide_extensions(value, field.ty);
        }
    }
}

/// compose-go's `WithoutUnnecessaryResources`, which the `config` command applies: the networks,
/// volumes, secrets and configs no enabled service uses are left out (a section left empty goes).
fn prune_unused(project: &mut serde_json::Map<String, serde_json::Value>) {
    use std::collections::HashSet;
    let mut used: [HashSet<String>; 4] = Default::default();
    let [networks, volumes, secrets, configs] = &mut used;
    let services = project.get("services").and_then(serde_json::Value::as_object);
    for service in services.into_iter().flat_map(|s| s.values()) {
        let sources = |key: &str| -> Vec<String> {
            let list = service.get(key).and_then(serde_json::Value::as_array).into_iter().flatten();
            list.filter_map(|v| v.get("source")?.as_str().map(str::to_owned)).collect()
        };
        if let Some(names) = service.get("networks").and_then(serde_json::Value::as_object) {
            networks.extend(names.keys().cloned());
        }
        for volume in service.get("volumes").and_then(serde_json::Value::as_array).into_iter().flatten() {
            if volume.get("type").and_then(serde_json::Value::as_str) == Some("volume")
                && let Some(source) = volume.get("source").and_then(serde_json::Value::as_str).filter(|s| !s.is_empty())
            {
                volumes.insert(source.to_owned());
            }
        }
        secrets.extend(sources("secrets"));
        if let Some(build) = service.get("build") {
            let list = build.get("secrets").and_then(serde_json::Value::as_array).into_iter().flatten();
            secrets.extend(list.filter_map(|v| v.get("source")?.as_str().map(str::to_owned)));
        }
        configs.extend(sources("configs"));
    }
    for (key, used) in ["networks", "volumes", "secrets", "configs"].into_iter().zip(used) {
        if let Some(serde_json::Value::Object(section)) = project.get_mut(key) {
            section.retain(|name, _| used.contains(name));
            if section.is_empty() {
                project.remove(key);
            }
        }
    }
}

fn hide_extensions(json: &mut serde_json::Value, ty: Ty) {
    match (ty, json) {
        (Ptr(inner), json) => hide_extensions(json, *inner),
        (Slice(item), serde_json::Value::Array(items)) => items.iter_mut().for_each(|i| hide_extensions(i, *item)),
        (Map(value), serde_json::Value::Object(map)) => map.values_mut().for_each(|v| hide_extensions(v, *value)),
        (Struct(fields), serde_json::Value::Object(map)) => {
            map.retain(|key, _| !key.starts_with("x-"));
            for field in fields {
                if let Some(value) = map.get_mut(field.key) {
                    hide_extensions(value, field.ty);
                }
            }
        }
        _ => {}
    }
}

/// Converts every value of the project in `root` to the shape compose prints.
pub fn decode(root: &mut Node) -> Result<(), Diagnostic> {
    let taken = std::mem::replace(root, null_node(&root.loc));
    *root = decode_struct(taken, PROJECT, &Path::root())?;
    Ok(())
}

fn decode_node(node: Node, ty: Ty, path: &Path) -> Result<Node, Diagnostic> {
    let loc = node.loc.clone();
    let error = |message: String| Diagnostic::error(Some(loc.clone()), path.to_string(), message);
    if node.is_null() {
        return Ok(match ty {
            // A null decodes to the zero value, which is printed for structs (and nothing else).
            Struct(fields) => decode_struct(node, fields, path)?,
            _ => node,
        });
    }
    Ok(match ty {
        Ptr(inner) => decode_node(node, *inner, path)?,
        Str => match &node.value {
            Value::Scalar { .. } => str_node(go_sprint(&node), &loc),
            _ => return Err(error(format!("expected type 'string', got unconvertible type '{}'", go_type(&node)))),
        },
        Bool => match node.to_json() {
            serde_json::Value::Bool(b) => bool_node(b, &loc),
            serde_json::Value::String(s) => match s.to_lowercase().as_str() {
                "true" | "y" | "yes" | "on" => bool_node(true, &loc),
                "false" | "n" | "no" | "off" => bool_node(false, &loc),
                _ => return Err(error(format!("invalid boolean: {s}"))),
            },
            _ => return Err(error(format!("expected type 'bool', got unconvertible type '{}'", go_type(&node)))),
        },
        Int | Uint(_) => {
            let value = match node.to_json() {
                serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                serde_json::Value::String(s) => {
                    Some(s.parse::<i64>().map_err(|_| error(format!("strconv.Atoi: parsing {s:?}: invalid syntax")))?)
                }
                _ => None,
            };
            let Some(value) = value else {
                return Err(error(format!("expected type 'int', got unconvertible type '{}'", go_type(&node))));
            };
            match ty {
                Uint(bits) if value < 0 => {
                    return Err(error(format!("cannot parse value as 'uint{bits}': {value} overflows uint")));
                }
                Uint(bits) if bits < 64 => plain_node((value & ((1i64 << bits) - 1)).to_string(), &loc),
                _ => plain_node(value.to_string(), &loc),
            }
        }
        Float | NanoCpus => {
            let value = match node.to_json() {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => Some(
                    s.parse::<f64>()
                        .map_err(|_| error(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")))?,
                ),
                _ => None,
            };
            let Some(value) = value else {
                return Err(error(format!("unexpected value type {} for cpus", go_type(&node))));
            };
            float32_node(value, &loc)
        }
        Slice(item) => match node.value {
            Value::Seq(items) => {
                let items = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| decode_node(n, *item, &path.index(i)))
                    .collect::<Result<_, _>>()?;
                Node::new(Value::Seq(items), loc)
            }
            _ => return Err(error(format!("source data must be an array or slice, got {}", go_type(&node)))),
        },
        Map(value) => match node.value {
            Value::Map(map) => {
                let mut out = Map::new();
                for (key, entry) in map {
                    let node = decode_node(entry.node, *value, &path.key(&key))?;
                    out.insert(key, Entry { key_loc: entry.key_loc, node });
                }
                Node::new(Value::Map(out), loc)
            }
            _ => return Err(error(format!("expected a map, got '{}'", go_kind(&node)))),
        },
        Struct(fields) => decode_struct(node, fields, path)?,
        UnitBytes => match node.to_json() {
            serde_json::Value::Number(n) if n.is_i64() => str_node(n.to_string(), &loc),
            serde_json::Value::String(s) => str_node(parse_bytes(&s).map_err(error)?.to_string(), &loc),
            // Anything else leaves the zero value.
            _ => str_node("0", &loc),
        },
        Duration => {
            let nanos = parse_duration_nanos(&go_sprint(&node)).map_err(error)?;
            str_node(format_duration_nanos(nanos), &loc)
        }
        ShellCommand => match node.value {
            Value::Seq(items) => string_seq(items.into_iter().map(|n| str_node(go_sprint(&n), &n.loc)).collect(), &loc),
            _ => {
                let words = shell_split(&go_sprint(&node)).map_err(error)?;
                string_seq(words.into_iter().map(|w| str_node(w, &loc)).collect(), &loc)
            }
        },
        HealthTest => match node.value {
            Value::Seq(items) => string_seq(items.into_iter().map(|n| str_node(go_sprint(&n), &n.loc)).collect(), &loc),
            Value::Scalar { .. } => {
                string_seq(vec![str_node("CMD-SHELL", &loc), str_node(go_sprint(&node), &loc)], &loc)
            }
            _ => return Err(error(format!("unexpected value type {} for healthcheck.test", go_type(&node)))),
        },
        HostsList => hosts_list(node, path)?,
        Labels => mapping(node, path, MapKind::Labels)?,
        MappingWithEquals => mapping(node, path, MapKind::WithEquals)?,
        Options => match node.value {
            Value::Map(_) => mapping(node, path, MapKind::Labels)?,
            _ => return Err(error(format!("invalid type {} for options", go_type(&node)))),
        },
        MultiOptions => match node.value {
            Value::Map(map) => {
                let mut out = Map::new();
                for (key, entry) in map {
                    let values = match entry.node.value {
                        Value::Seq(items) => items.iter().map(|n| str_node(go_sprint(n), &n.loc)).collect(),
                        _ => vec![str_node(go_sprint(&entry.node), &entry.node.loc)],
                    };
                    let node = string_seq(values, &entry.node.loc);
                    out.insert(key, Entry { key_loc: entry.key_loc, node });
                }
                Node::new(Value::Map(out), loc)
            }
            _ => return Err(error(format!("invalid type {} for options", go_type(&node)))),
        },
        StringList | StringOrNumberList => match node.value {
            Value::Seq(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if matches!(ty, StringList) && super::tree::as_string(&item).is_none() {
                        return Err(error("invalid type []interface {} for string list".to_owned()));
                    }
                    out.push(str_node(go_sprint(&item), &item.loc));
                }
                string_seq(out, &loc)
            }
            _ if super::tree::as_string(&node).is_some() => string_seq(vec![str_node(go_sprint(&node), &loc)], &loc),
            _ => return Err(error(format!("invalid type {} for string list", go_type(&node)))),
        },
        Ssh => match node.value {
            // Only the ids survive: compose prints a key with a path as invalid JSON, and refuses it.
            Value::Map(map) => {
                if let Some((_, entry)) = map.iter().find(|(_, e)| !e.node.is_null()) {
                    return Err(Diagnostic::error(
                        Some(entry.node.loc.clone()),
                        path.to_string(),
                        "json: error calling MarshalJSON for type types.SSHKey: invalid character ':' after array element",
                    ));
                }
                string_seq(map.into_iter().map(|(k, e)| str_node(k, &e.key_loc)).collect(), &loc)
            }
            Value::Seq(_) => node,
            _ => return Err(error(format!("invalid ssh config type {}", go_type(&node)))),
        },
        FileMode => {
            let mode = match node.to_json() {
                serde_json::Value::Number(n) if n.is_i64() => n.as_i64().unwrap_or_default(),
                serde_json::Value::String(s) => i64::from_str_radix(&s, 8)
                    .map_err(|_| error(format!("strconv.ParseInt: parsing {s:?}: invalid syntax")))?,
                _ => return Err(error(format!("unexpected value type {} for mode", go_type(&node)))),
            };
            let text = if mode < 0 { format!("0-{:o}", mode.unsigned_abs()) } else { format!("0{mode:o}") };
            str_node(text, &loc)
        }
        Ulimit => match &node.value {
            Value::Map(map) => {
                let mut out = Map::new();
                for key in ["soft", "hard"] {
                    if let Some(entry) = map.get(key) {
                        let value = as_int(&entry.node).ok_or_else(|| {
                            Diagnostic::error(
                                Some(entry.node.loc.clone()),
                                path.key(key).to_string(),
                                format!("unexpected value type {} for ulimit", go_type(&entry.node)),
                            )
                        })?;
                        if value != 0 {
                            out.insert(
                                key.to_owned(),
                                Entry {
                                    key_loc: entry.key_loc.clone(),
                                    node: plain_node(value.to_string(), &entry.node.loc),
                                },
                            );
                        }
                    }
                }
                Node::new(Value::Map(out), loc)
            }
            _ => match as_int(&node) {
                Some(0) => Node::new(Value::Map(Map::new()), loc),
                Some(single) => plain_node(single.to_string(), &loc),
                None => return Err(error(format!("unexpected value type {} for ulimit", go_type(&node)))),
            },
        },
        DeviceCount => match node.to_json() {
            serde_json::Value::Number(n) if n.is_i64() => plain_node(n.to_string(), &loc),
            serde_json::Value::String(s) if s.eq_ignore_ascii_case("all") => plain_node("-1", &loc),
            serde_json::Value::String(s) => match s.parse::<i64>() {
                Ok(n) => plain_node(n.to_string(), &loc),
                Err(_) => {
                    return Err(error(format!("invalid value {s:?}, the only value allowed is 'all' or a number")));
                }
            },
            _ => return Err(error(format!("invalid type {} for device count", go_type(&node)))),
        },
    })
}

/// A mapping decoded into a Go struct and marshalled back: known keys converted, zero values of
/// `omitempty` fields dropped, fields printed even when absent added, `x-*` keys kept. `top` is the
/// project itself, whose other keys (top-level extensions) are kept too.
fn decode_struct(node: Node, fields: &'static [Field], path: &Path) -> Result<Node, Diagnostic> {
    let loc = node.loc.clone();
    let map = match node.value {
        Value::Map(map) => map,
        Value::Null => Map::new(),
        _ => {
            return Err(Diagnostic::error(
                Some(loc),
                path.to_string(),
                format!("expected a map, got '{}'", go_kind(&node)),
            ));
        }
    };
    let mut out = Map::new();
    for (key, entry) in map {
        let Some(field) = fields.iter().find(|f| f.key.eq_ignore_ascii_case(&key)) else {
            // Extensions are kept as written; a key the Go struct has no field for is dropped, as
            // mapstructure drops it (the schema allows a few: `ipam.options`).
            if key.starts_with("x-") {
                out.insert(key, entry);
            }
            continue;
        };
        let node = decode_node(entry.node, field.ty, &path.key(field.key))?;
        if !omitted(field, &node) {
            out.insert(field.key.to_owned(), Entry { key_loc: entry.key_loc, node });
        }
    }
    for field in fields {
        if out.contains_key(field.key) {
            continue;
        }
        let zero = match field.ty {
            Struct(inner) => decode_struct(null_node(&loc), inner, &path.key(field.key))?,
            _ => null_node(&loc),
        };
        if field.omit == Omit::Never || matches!(field.ty, Struct(_)) {
            let zero = match (field.ty, zero.is_null()) {
                (Str, true) => str_node("", &loc),
                (Bool, true) => bool_node(false, &loc),
                (Int | Uint(_), true) => plain_node("0", &loc),
                // The project prints its services as `{}` even when there are none (its own MarshalJSON).
                (Map(_), true) if field.key == "services" => Node::new(Value::Map(Map::new()), loc.clone()),
                _ => zero,
            };
            out.insert(field.key.to_owned(), Entry { key_loc: loc.clone(), node: zero });
        }
    }
    Ok(Node::new(Value::Map(out), loc))
}

/// Whether encoding/json leaves the field out, given its decoded value.
fn omitted(field: &Field, node: &Node) -> bool {
    match field.omit {
        Omit::Never => false,
        Omit::OptOut => node.to_json() != serde_json::Value::Bool(false),
        Omit::Empty => match field.ty {
            Ptr(_) => node.is_null(),
            Struct(_) => false,
            _ => match node.to_json() {
                serde_json::Value::Null => true,
                serde_json::Value::Bool(b) => !b,
                serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
                serde_json::Value::String(s) => s.is_empty() || (matches!(field.ty, UnitBytes) && s == "0"),
                serde_json::Value::Array(a) => a.is_empty(),
                serde_json::Value::Object(o) => o.is_empty(),
            },
        },
    }
}

/// A float32 as encoding/json prints it: the shortest decimal that reads back as the same float32.
fn float32_node(value: f64, loc: &Location) -> Node {
    plain_node(format!("{}", value as f32), loc)
}

fn string_seq(items: Vec<Node>, loc: &Location) -> Node {
    Node::new(Value::Seq(items), loc.clone())
}

/// Go's reflect kind of a decoded YAML value, as mapstructure names it in errors.
fn go_kind(node: &Node) -> &'static str {
    match &node.value {
        Value::Seq(_) => "slice",
        Value::Map(_) => "map",
        _ => go_type(node),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum MapKind {
    /// `Labels`, `Mapping`, `Options`: a null or missing value is "".
    Labels,
    /// `MappingWithEquals`: a null or missing value stays null.
    WithEquals,
}

/// `Labels`/`Mapping`/`MappingWithEquals` from a map or a list of `key=value`.
fn mapping(node: Node, path: &Path, kind: MapKind) -> Result<Node, Diagnostic> {
    let loc = node.loc.clone();
    let value_node = |value: Option<&Node>, loc: &Location| match value {
        Some(n) if !n.is_null() => str_node(go_sprint(n), &n.loc),
        _ if kind == MapKind::Labels => str_node("", loc),
        _ => null_node(loc),
    };
    let mut out = Map::new();
    match node.value {
        Value::Map(map) => {
            for (key, entry) in map {
                let node = value_node(Some(&entry.node), &entry.node.loc);
                out.insert(key, Entry { key_loc: entry.key_loc, node });
            }
        }
        Value::Seq(items) => {
            for item in items {
                let text = go_sprint(&item);
                let (key, value) = match text.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(str_node(v, &item.loc))),
                    None => (text.clone(), None),
                };
                if kind == MapKind::WithEquals && key.ends_with(char::is_whitespace) {
                    return Err(Diagnostic::error(
                        Some(item.loc.clone()),
                        path.to_string(),
                        format!("environment variable {key} is declared with a trailing space"),
                    ));
                }
                let node = value_node(value.as_ref(), &item.loc);
                out.insert(key, Entry { key_loc: item.loc.clone(), node });
            }
        }
        _ => {
            return Err(Diagnostic::error(
                Some(loc),
                path.to_string(),
                format!("unexpected value type {} for mapping", go_type(&node)),
            ));
        }
    }
    Ok(Node::new(Value::Map(out), loc))
}

/// `HostsList`: `{host: ip}`, `{host: [ip, ...]}` or `[host=ip, host:ip, ...]` (several IPs separated
/// by commas), printed as the sorted list of `host=ip` with brackets around IPv6 addresses removed.
fn hosts_list(node: Node, path: &Path) -> Result<Node, Diagnostic> {
    let loc = node.loc.clone();
    let mut hosts: Vec<(String, Node)> = Vec::new();
    let error = |loc: &Location, message: String| Diagnostic::error(Some(loc.clone()), path.to_string(), message);
    match node.value {
        Value::Map(map) => {
            for (host, entry) in map {
                let ips: Vec<(String, Location)> = match &entry.node.value {
                    Value::Null => vec![(String::new(), entry.node.loc.clone())],
                    Value::Seq(items) => items.iter().map(|n| (go_sprint(n), n.loc.clone())).collect(),
                    _ if super::tree::as_string(&entry.node).is_some() => {
                        vec![(go_sprint(&entry.node), entry.node.loc.clone())]
                    }
                    _ => {
                        return Err(error(
                            &entry.node.loc,
                            "unexpected value type map[string]interface {} for extra_hosts entry".into(),
                        ));
                    }
                };
                for (ip, at) in ips {
                    hosts.push((host.clone(), str_node(ip, &at)));
                }
            }
        }
        Value::Seq(items) => {
            for item in items {
                let text = go_sprint(&item);
                let Some((host, ips)) = text.split_once('=').or_else(|| text.split_once(':')) else {
                    return Err(error(&item.loc, format!("invalid additional host, missing IP: {text}")));
                };
                for ip in ips.split(',') {
                    hosts.push((host.to_owned(), str_node(ip, &item.loc)));
                }
            }
        }
        _ => return Err(error(&loc, format!("unexpected value type {} for extra_hosts", go_type(&node)))),
    }
    let mut list = Vec::with_capacity(hosts.len());
    for (host, ip) in hosts {
        if host.is_empty() || host.contains([':', '=']) {
            return Err(error(&ip.loc, format!("bad host name '{host}'")));
        }
        let text = ip.as_str().unwrap_or_default();
        let text = match text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            Some(inner) if text.len() > 2 => inner,
            _ => text,
        };
        list.push(str_node(format!("{host}={text}"), &ip.loc));
    }
    list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    Ok(string_seq(list, &loc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;
    use serde_json::json;

    fn run(text: &str) -> Result<serde_json::Value, Diagnostic> {
        let mut node = parse(text, &"compose.yaml".into()).unwrap();
        decode(&mut node)?;
        Ok(node.to_json())
    }

    /// The decoded service `web` of a project whose services are `services`.
    fn service(services: &str) -> serde_json::Value {
        let json = run(&format!("name: p\nservices:\n  web:\n{services}")).unwrap();
        json["services"]["web"].clone()
    }

    #[test]
    fn commands_are_split_and_always_printed() {
        assert_eq!(service("    command: echo \"a b\"\n"), json!({"command": ["echo", "a b"], "entrypoint": null}));
        assert_eq!(service("    entrypoint: ''\n"), json!({"command": null, "entrypoint": []}));
        assert_eq!(service("    command: [sh, -c]\n")["command"], json!(["sh", "-c"]));
    }

    #[test]
    fn mappings_from_lists() {
        let web = service("    environment: [A=1, B, C=]\n    labels: [x=1, y]\n    sysctls: {a: 1}\n");
        assert_eq!(web["environment"], json!({"A": "1", "B": null, "C": ""}));
        assert_eq!(web["labels"], json!({"x": "1", "y": ""}));
        assert_eq!(web["sysctls"], json!({"a": "1"}));
        let web = service("    environment: {A: 1, B: null, C: true}\n");
        assert_eq!(web["environment"], json!({"A": "1", "B": null, "C": "true"}));
        let e = run("services:\n  web:\n    environment: ['A =1']\n").unwrap_err();
        assert_eq!(e.message, "environment variable A  is declared with a trailing space");
    }

    #[test]
    fn hosts_become_a_sorted_list() {
        let web = service("    extra_hosts: ['b:10.0.0.2', 'a=[::1]', 'c=1.1.1.1,2.2.2.2']\n");
        assert_eq!(web["extra_hosts"], json!(["a=::1", "b=10.0.0.2", "c=1.1.1.1", "c=2.2.2.2"]));
        let web = service("    extra_hosts: {z: 1.2.3.4, y: [5.6.7.8]}\n");
        assert_eq!(web["extra_hosts"], json!(["y=5.6.7.8", "z=1.2.3.4"]));
        let e = run("services:\n  web:\n    extra_hosts: [nohost]\n").unwrap_err();
        assert_eq!(e.message, "invalid additional host, missing IP: nohost");
    }

    #[test]
    fn units_durations_and_cpus() {
        let web = service(
            "    mem_limit: 512m\n    shm_size: 1024\n    mem_swappiness: 0\n    cpus: '0.50'\n    stop_grace_period: 90s\n    healthcheck: {test: curl x, interval: 0s, retries: 0}\n",
        );
        assert_eq!(web["mem_limit"], json!("536870912"));
        assert_eq!(web["shm_size"], json!("1024"));
        assert!(web.get("mem_swappiness").is_none());
        assert_eq!(web["cpus"], json!(0.5));
        assert_eq!(web["stop_grace_period"], json!("1m30s"));
        assert_eq!(web["healthcheck"], json!({"test": ["CMD-SHELL", "curl x"], "interval": "0s", "retries": 0}));
        let e = run("services:\n  web:\n    stop_grace_period: 10 seconds\n").unwrap_err();
        assert_eq!(e.message, "time: unknown unit \" seconds\" in duration \"10 seconds\"");
        assert_eq!(e.key, "services.web.stop_grace_period");
        assert_eq!(e.location.map(|l| (l.line, l.column)), Some((3, 24)));
    }

    #[test]
    fn structs_that_are_not_pointers_are_always_printed() {
        let web = service("    deploy: {replicas: 0}\n    develop: {watch: [{path: ., action: rebuild}]}\n");
        assert_eq!(web["deploy"], json!({"replicas": 0, "resources": {}, "placement": {}}));
        assert_eq!(web["develop"]["watch"][0]["exec"], json!({"command": null}));
        let json =
            run("name: p\nservices: {}\nnetworks: {n: null, m: {ipam: {config: [{subnet: x}], options: {a: b}}}}\n")
                .unwrap();
        assert_eq!(json["networks"], json!({"n": {"ipam": {}}, "m": {"ipam": {"config": [{"subnet": "x"}]}}}));
    }

    #[test]
    fn zero_values_are_dropped_and_strings_and_numbers_converted() {
        let web = service(
            "    privileged: false\n    read_only: 'yes'\n    expose: [80, '90']\n    dns: 8.8.8.8\n    ports: [{target: 80, published: 8080}]\n    depends_on: {db: {condition: service_started, restart: false}}\n",
        );
        assert!(web.get("privileged").is_none());
        assert_eq!(web["read_only"], json!(true));
        assert_eq!(web["expose"], json!(["80", "90"]));
        assert_eq!(web["dns"], json!(["8.8.8.8"]));
        assert_eq!(web["ports"], json!([{"target": 80, "published": "8080"}]));
        assert_eq!(web["depends_on"], json!({"db": {"condition": "service_started", "required": false}}));
    }

    #[test]
    fn unsigned_fields_wrap_like_go() {
        let web = service("    blkio_config: {weight: 70000}\n    ports: [{target: 70000}]\n");
        assert_eq!(web["blkio_config"], json!({"weight": 4464}));
        assert_eq!(web["ports"], json!([{"target": 70000}]));
        let e = run("services:\n  web:\n    healthcheck: {retries: -1}\n").unwrap_err();
        assert_eq!(e.message, "cannot parse value as 'uint64': -1 overflows uint");
    }

    #[test]
    fn modes_ulimits_and_device_counts() {
        let web = service(
            "    secrets: [{source: s, mode: 0440}, {source: t, mode: '600'}]\n    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 10, core: 0}\n    gpus: [{count: all}]\n",
        );
        assert_eq!(web["secrets"], json!([{"source": "s", "mode": "0440"}, {"source": "t", "mode": "0600"}]));
        assert_eq!(web["ulimits"], json!({"nofile": {"soft": 1, "hard": 2}, "nproc": 10, "core": {}}));
        assert_eq!(web["gpus"], json!([{"count": -1}]));
    }

    #[test]
    fn the_printed_view_hides_what_compose_does_not_print() {
        let mut json = json!({
            "name": "p",
            "x-top": 1,
            "services": {"web": {
                "x-own": 1,
                "labels": {"x-label": "kept"},
                "networks": {"front": null},
                "volumes": [{"type": "volume", "source": "data", "target": "/d"}, {"type": "bind", "source": "/h", "target": "/h"}],
                "secrets": [{"source": "s"}],
                "build": {"context": ".", "secrets": [{"source": "b"}]},
            }},
            "networks": {"front": {"x-n": 1}, "back": {}},
            "volumes": {"data": {}, "/h": {}, "unused": {}},
            "secrets": {"s": {"content": "hidden", "x-#value": "hidden"}, "b": {}, "unused": {}},
            "configs": {"unused": {}},
            "models": {"m": {}},
        });
        hide_unprinted(&mut json);
        assert_eq!(
            json,
            json!({
                "name": "p",
                "x-top": 1,
                "services": {"web": {
                    "labels": {"x-label": "kept"},
                    "networks": {"front": null},
                    "volumes": [{"type": "volume", "source": "data", "target": "/d"}, {"type": "bind", "source": "/h", "target": "/h"}],
                    "secrets": [{"source": "s"}],
                    "build": {"context": ".", "secrets": [{"source": "b"}]},
                }},
                "networks": {"front": {}},
                "volumes": {"data": {}},
                "secrets": {"s": {}, "b": {}},
            })
        );
    }

    #[test]
    fn extensions_are_kept_and_locations_too() {
        let text = "name: p\nx-top: {a: 1}\nservices:\n  web:\n    x-own: 1\n    labels: [a=b]\n";
        let mut node = parse(text, &"compose.yaml".into()).unwrap();
        decode(&mut node).unwrap();
        let json = node.to_json();
        assert_eq!(json["x-top"], json!({"a": 1}));
        assert_eq!(json["services"]["web"]["x-own"], json!(1));
        let label =
            node.get("services").and_then(|s| s.get("web")).and_then(|w| w.get("labels")).and_then(|l| l.get("a"));
        assert_eq!(label.map(|n| (n.loc.line, n.loc.column)), Some((6, 14)));
    }
}
