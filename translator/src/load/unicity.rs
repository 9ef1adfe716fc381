//! Removing repeated entries from the lists that merging concatenates.
//!
//! Follows compose-go `override/uncity.go`. Merging appends an override's list to the base's, so
//! `environment: [A=1]` over `[A=0]` gives `[A=0, A=1]`; here every list at a known path is indexed by
//! what identifies an entry (the variable name, the mount target, the port mapping...) and a later
//! entry replaces an earlier one with the same index, in the earlier one's place. Lists elsewhere are
//! left alone, and so are lists inside lists: compose-go does not look into them either.

use std::collections::HashMap;

use super::tree::{Path, as_int, as_string, go_sprint, go_type};
use super::yaml::{Map, Node, Value};
use crate::diag::Diagnostic;

/// Drops the entries that a later entry with the same index redefines, in every list compose-go
/// indexes (`environment`, `ports`, `volumes`, `dns`...).
pub fn enforce_unicity(root: &mut Node) -> Result<(), Diagnostic> {
    walk(root, &Path::root())
}

/// How an entry of a list is identified.
#[derive(Clone, Copy)]
enum Indexer {
    /// `KEY=VALUE` strings by `KEY`.
    KeyValue,
    /// Service volumes by target.
    Volume,
    /// Devices by the path inside the container.
    Device,
    Expose,
    /// Secrets and configs by target, with the default directory for the short form.
    Mount(&'static str),
    Port,
    EnvFile,
}

const UNIQUE: &[(&str, Indexer)] = &[
    ("networks.*.labels", Indexer::KeyValue),
    ("networks.*.ipam.options", Indexer::KeyValue),
    ("services.*.annotations", Indexer::KeyValue),
    ("services.*.build.args", Indexer::KeyValue),
    ("services.*.build.additional_contexts", Indexer::KeyValue),
    ("services.*.build.platform", Indexer::KeyValue),
    ("services.*.build.tags", Indexer::KeyValue),
    ("services.*.build.labels", Indexer::KeyValue),
    ("services.*.cap_add", Indexer::KeyValue),
    ("services.*.cap_drop", Indexer::KeyValue),
    // compose-go registers `devices` twice; the second registration, by target, is the one in force.
    ("services.*.devices", Indexer::Device),
    ("services.*.configs", Indexer::Mount("")),
    ("services.*.deploy.labels", Indexer::KeyValue),
    ("services.*.dns", Indexer::KeyValue),
    ("services.*.dns_opt", Indexer::KeyValue),
    ("services.*.dns_search", Indexer::KeyValue),
    ("services.*.environment", Indexer::KeyValue),
    ("services.*.env_file", Indexer::EnvFile),
    ("services.*.expose", Indexer::Expose),
    ("services.*.labels", Indexer::KeyValue),
    ("services.*.links", Indexer::KeyValue),
    ("services.*.networks.*.aliases", Indexer::KeyValue),
    ("services.*.networks.*.link_local_ips", Indexer::KeyValue),
    ("services.*.ports", Indexer::Port),
    ("services.*.profiles", Indexer::KeyValue),
    ("services.*.secrets", Indexer::Mount("/run/secrets")),
    ("services.*.sysctls", Indexer::KeyValue),
    ("services.*.tmpfs", Indexer::KeyValue),
    ("services.*.volumes", Indexer::Volume),
];

static UNIQUE_BY_DEPTH: std::sync::LazyLock<super::tree::Patterns<Indexer>> =
    std::sync::LazyLock::new(|| super::tree::Patterns::new(UNIQUE));

fn walk(node: &mut Node, path: &Path) -> Result<(), Diagnostic> {
    match &mut node.value {
        Value::Map(_) if !UNIQUE_BY_DEPTH.below(path) => {}
        Value::Map(map) => {
            for (key, entry) in map.iter_mut() {
                walk(&mut entry.node, &path.key(key))?;
            }
        }
        Value::Seq(items) => {
            if let Some(indexer) = UNIQUE_BY_DEPTH.find(path) {
                let mut kept: Vec<Node> = Vec::with_capacity(items.len());
                let mut seen: HashMap<String, usize> = HashMap::new();
                for (i, item) in std::mem::take(items).into_iter().enumerate() {
                    let key = index(*indexer, &item, &path.index(i))?;
                    match seen.get(&key) {
                        Some(&j) => kept[j] = item,
                        None => {
                            seen.insert(key, kept.len());
                            kept.push(item);
                        }
                    }
                }
                *items = kept;
            }
        }
        _ => {}
    }
    Ok(())
}

fn error(item: &Node, path: &Path, message: String) -> Diagnostic {
    Diagnostic::error(Some(item.loc.clone()), path.to_string(), message)
}

fn index(indexer: Indexer, item: &Node, path: &Path) -> Result<String, Diagnostic> {
    match indexer {
        Indexer::KeyValue => match as_string(item) {
            Some(s) => Ok(s.split_once('=').map_or(s, |(k, _)| k).to_owned()),
            None => Err(error(item, path, format!("unexpected type {}", go_type(item)))
                .with_hint("write each entry as a string, `KEY=VALUE` or `VALUE`")),
        },
        Indexer::Volume => match &item.value {
            Value::Map(map) => target(map).ok_or_else(|| {
                error(item, path, format!("service volume {path} is missing a mount target"))
                    .with_hint("add `target:`, the path inside the container")
            }),
            _ => match as_string(item) {
                Some(spec) => volume_target(spec).map_err(|e| {
                    error(item, path, e).with_hint("write `SOURCE:TARGET[:MODE]`, for example `./data:/data:ro`")
                }),
                None => Ok(String::new()),
            },
        },
        Indexer::Device => match &item.value {
            Value::Map(map) => target(map).ok_or_else(|| {
                error(item, path, format!("service device {path} is missing a mount target"))
                    .with_hint("add `target:`, the device path inside the container")
            }),
            _ => Ok(as_string(item)
                .map(|s| {
                    let mut parts = s.split(':');
                    let first = parts.next().unwrap_or_default();
                    parts.next().unwrap_or(first).to_owned()
                })
                .unwrap_or_default()),
        },
        Indexer::Expose => {
            if let Some(s) = as_string(item) {
                Ok(s.to_owned())
            } else if let Some(i) = as_int(item) {
                Ok(i.to_string())
            } else {
                Err(error(item, path, format!("unsupported expose value {}", go_percent_s(item)))
                    .with_hint("write a port number or a range such as `3000-3005`"))
            }
        }
        Indexer::Mount(default_dir) => match &item.value {
            Value::Map(map) => Ok(match map.get("target") {
                Some(t) => go_sprint(&t.node),
                None => format!(
                    "{default_dir}/{}",
                    map.get("source").map_or("%!s(<nil>)".to_owned(), |s| go_percent_s(&s.node))
                ),
            }),
            _ => match as_string(item) {
                Some(s) => Ok(format!("{default_dir}/{s}")),
                // compose-go's message says "expose" here too.
                None => Err(error(item, path, format!("unsupported expose value {}", go_percent_s(item)))
                    .with_hint("write the name of a top-level entry, or a mapping with `source:`")),
            },
        },
        Indexer::Port => {
            if let Some(i) = as_int(item) {
                return Ok(i.to_string());
            }
            match &item.value {
                Value::Map(map) => {
                    let Some(target) = map.get("target") else {
                        return Err(error(item, path, format!("service ports {path} is missing a target port"))
                            .with_hint("add `target:`, the port inside the container"));
                    };
                    let field = |key: &str, default: &str| match map.get(key) {
                        Some(e) => go_percent_s(&e.node),
                        None => default.to_owned(),
                    };
                    Ok(format!(
                        "{}:{}:{}/{}",
                        field("host_ip", "0.0.0.0"),
                        field("published", "%!s(<nil>)"),
                        go_percent_d(&target.node),
                        field("protocol", "tcp")
                    ))
                }
                _ => Ok(as_string(item).unwrap_or_default().to_owned()),
            }
        }
        Indexer::EnvFile => match &item.value {
            Value::Map(map) => match map.get("path") {
                Some(p) => Ok(go_sprint(&p.node)),
                None => Err(error(item, path, format!("environment path attribute {path} is missing"))
                    .with_hint("add `path:`, the file to read")),
            },
            _ => Ok(as_string(item).unwrap_or_default().to_owned()),
        },
    }
}

/// A mount's `target` when it is a string.
fn target(map: &Map) -> Option<String> {
    map.get("target").and_then(|e| as_string(&e.node)).map(str::to_owned)
}

/// Go's `%s` of a decoded value: a string as is, anything else flagged with its type. Only the identity
/// of the result matters: an integer `8080` and a string `"8080"` must index differently, as in Go.
fn go_percent_s(node: &Node) -> String {
    match as_string(node) {
        Some(s) => s.to_owned(),
        None if node.is_null() => "%!s(<nil>)".to_owned(),
        None => format!("%!s({}={})", go_type(node), go_sprint(node)),
    }
}

/// Go's `%d`: an integer's digits, anything else flagged with its type.
fn go_percent_d(node: &Node) -> String {
    match as_int(node) {
        Some(i) => i.to_string(),
        None if node.is_null() => "%!d(<nil>)".to_owned(),
        None => format!("%!d({}={})", go_type(node), go_sprint(node)),
    }
}

/// The container path of a short-syntax volume (`SOURCE:TARGET[:MODE]` or a lone `TARGET`), parsed by
/// the canonical transform's own parser so both read a spec the same way.
pub(crate) fn volume_target(spec: &str) -> Result<String, String> {
    crate::load::canonical::parse_volume(spec).map(|v| v.target)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::load::yaml::parse;

    fn yaml(text: &str) -> Node {
        parse(text, &Arc::from("test.yaml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn check(before: &str, expected: &str) {
        let mut node = yaml(before);
        enforce_unicity(&mut node).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(node.to_json(), yaml(expected).to_json());
    }

    fn check_err(before: &str, message: &str) {
        let mut node = yaml(before);
        let e = enforce_unicity(&mut node).expect_err("should fail");
        assert_eq!(format!("{}: {}", e.key, e.message), message);
    }

    #[test]
    fn environment_keeps_the_last_value_in_the_first_place() {
        check(
            "services:\n  test:\n    image: foo\n    environment:\n      - FOO=BAR\n      - BAR=QIX\n      - QIX=\n      - ZOT\n      - FOO=ZOT\n      - QIX\n      - ZOT=\n",
            "services:\n  test:\n    image: foo\n    environment:\n      - FOO=ZOT\n      - BAR=QIX\n      - QIX\n      - ZOT=\n",
        );
    }

    #[test]
    fn volumes_by_target() {
        check(
            "services:\n  test:\n    image: foo\n    volumes:\n      - .:/foo\n      - foo:/bar\n      - src:/foo\n",
            "services:\n  test:\n    image: foo\n    volumes:\n      - src:/foo\n      - foo:/bar\n",
        );
    }

    #[test]
    fn short_ports_by_text() {
        check(
            r#"
services:
  test:
    image: foo
    ports:
      - "9080:80"
      - "9081:81"
      - "9080:80"
      - "5000"
      - "6060:6060/udp"
      - "9080:6060/udp"
"#,
            r#"
services:
  test:
    image: foo
    ports:
      - "9080:80"
      - "9081:81"
      - "5000"
      - "6060:6060/udp"
      - "9080:6060/udp"
"#,
        );
    }

    #[test]
    fn long_ports_by_host_published_target_protocol() {
        check(
            r#"
services:
  test:
    image: foo
    ports:
      - target: 80
        host_ip: 127.0.0.1
        published: "8080"
        protocol: tcp
        mode: host
      - target: 81
        published: "8080"
        protocol: tcp
      - target: 80
        host_ip: 127.0.0.2
        published: "8080"
        protocol: tcp
      - target: 81
        published: "8080"
        protocol: tcp
"#,
            r#"
services:
  test:
    image: foo
    ports:
      - target: 80
        host_ip: 127.0.0.1
        published: "8080"
        protocol: tcp
        mode: host
      - target: 81
        published: "8080"
        protocol: tcp
      - target: 80
        host_ip: 127.0.0.2
        published: "8080"
        protocol: tcp
"#,
        );
    }

    #[test]
    fn integer_and_string_ports_index_alike() {
        check("services:\n  t:\n    ports: [8080, \"8080\"]\n", "services:\n  t:\n    ports: [\"8080\"]\n");
    }

    #[test]
    fn secrets_devices_env_files_and_expose() {
        check(
            "services:\n  t:\n    secrets: [a, {source: b, target: /run/secrets/a}, {source: c}]\n",
            "services:\n  t:\n    secrets: [{source: b, target: /run/secrets/a}, {source: c}]\n",
        );
        check(
            "services:\n  t:\n    devices: [/dev/a:/dev/x, /dev/b:/dev/x:rwm, /dev/c]\n",
            "services:\n  t:\n    devices: [/dev/b:/dev/x:rwm, /dev/c]\n",
        );
        check(
            "services:\n  t:\n    env_file: [a.env, {path: a.env, required: false}, b.env]\n",
            "services:\n  t:\n    env_file: [{path: a.env, required: false}, b.env]\n",
        );
        check("services:\n  t:\n    expose: [80, \"80\", 81-82]\n", "services:\n  t:\n    expose: [\"80\", 81-82]\n");
    }

    #[test]
    fn lists_elsewhere_are_left_alone() {
        check(
            "services:\n  t:\n    command: [a, a]\nx-list: [a, a]\n",
            "services:\n  t:\n    command: [a, a]\nx-list: [a, a]\n",
        );
    }

    #[test]
    fn reports_bad_entries_like_compose() {
        check_err("services:\n  t:\n    dns: [1]\n", "services.t.dns[0]: unexpected type int");
        check_err(
            "services:\n  t:\n    volumes: [{source: a}]\n",
            "services.t.volumes[0]: service volume services.t.volumes[0] is missing a mount target",
        );
        check_err(
            "services:\n  t:\n    ports: [{published: 80}]\n",
            "services.t.ports[0]: service ports services.t.ports[0] is missing a target port",
        );
        check_err(
            "services:\n  t:\n    volumes: [\"/a::b\"]\n",
            "services.t.volumes[0]: invalid spec: /a::b: empty section between colons",
        );
        check_err(
            "services:\n  t:\n    volumes: [\"/a:/b:ro:x\"]\n",
            "services.t.volumes[0]: invalid spec: /a:/b:ro:x: too many colons",
        );
        // A single letter before a colon is a drive, as in compose-go.
        assert_eq!(volume_target("a::b").as_deref(), Ok("b"));
        check_err(
            "services:\n  t:\n    expose: [1.5]\n",
            "services.t.expose[0]: unsupported expose value %!s(float64=1.5)",
        );
    }

    #[test]
    fn parses_volume_targets() {
        assert_eq!(volume_target("/data").as_deref(), Ok("/data"));
        assert_eq!(volume_target("./a:/b:ro").as_deref(), Ok("/b"));
        assert_eq!(volume_target("C:\\data:/b").as_deref(), Ok("/b"));
        assert_eq!(volume_target("${A:-x}:/b").as_deref(), Ok("/b"));
        assert_eq!(volume_target("ab").as_deref(), Ok("ab"));
    }
}
