//! The merged model completed with what compose implies; follows compose-go `loader/normalize.go`.
//!
//! Run last on the tree, after merging, `extends`, `include`, defaults and paths, with the project
//! `name` already set at the root:
//! - services without `networks` (and without `network_mode` or `provider`) join the `default`
//!   network, which is then declared at the top level if nobody declared it;
//! - `pull_policy: if_not_present` is `missing`;
//! - `build` gets `context: .` and `dockerfile: Dockerfile`; bare names in `build.args` take their
//!   value from the environment or are dropped; bare names in `environment` take their value or stay;
//! - `links`, `service:` references in `network_mode`/`ipc`/`pid`/`uts`/`cgroup`, and `volumes_from`
//!   other services add `depends_on` entries (never overriding one that is written);
//! - mount targets are cleaned (`/data/` → `/data`);
//! - `pre_start` hooks without an image run in the service's image;
//! - top-level networks, volumes, configs and secrets without a `name` are named `<project>_<key>`,
//!   or just `<key>` when external.

use super::paths::clean;
use super::tree::{as_string, bool_node, go_sprint, has_value, insert, map_node, null_node, str_node};
use super::yaml::{Map, Node, Value};
use crate::diag::Diagnostic;
use crate::source::Location;

/// Completes the model as compose's `loader.Normalize` does. `env` is the project's environment.
/// Never fails today; the `Result` matches compose-go's signature so a future check has a place.
pub fn normalize(root: &mut Node, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Diagnostic> {
    normalize_networks(root);
    if let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) {
        for entry in services.values_mut() {
            if entry.node.as_map().is_some() {
                normalize_service(&mut entry.node, env);
            }
        }
    }
    set_name_from_key(root);
    Ok(())
}

fn normalize_service(service: &mut Node, env: &dyn Fn(&str) -> Option<String>) {
    let loc = service.loc.clone();
    let Some(map) = service.as_map_mut() else { return };

    if let Some(policy) = map.get_mut("pull_policy")
        && as_string(&policy.node) == Some("if_not_present")
    {
        policy.node = str_node("missing", &policy.node.loc);
    }

    if let Some(build) = map.get_mut("build") {
        let build_loc = build.node.loc.clone();
        if let Some(build) = build.node.as_map_mut() {
            if !has_value(build, "context") {
                insert(build, "context", str_node(".", &build_loc), &build_loc);
            }
            if !has_value(build, "dockerfile") && !has_value(build, "dockerfile_inline") {
                insert(build, "dockerfile", str_node("Dockerfile", &build_loc), &build_loc);
            }
            if let Some(args) = build.get_mut("args") {
                resolve(&mut args.node, env, false);
            }
        }
    }

    if let Some(environment) = map.get_mut("environment") {
        resolve(&mut environment.node, env, true);
    }

    let mut depends_on = match map.get("depends_on").and_then(|e| e.node.as_map()) {
        Some(existing) => existing.clone(),
        None => Map::new(),
    };

    if let Some(links) = map.get("links").and_then(|e| e.node.as_seq()) {
        for link in links {
            let Some(text) = link.as_str() else { continue };
            // `service:alias` depends on `service`; anything else is taken whole, as compose does.
            let name = match text.split(':').collect::<Vec<_>>().as_slice() {
                [service, _alias] => *service,
                _ => text,
            };
            add_dependency(&mut depends_on, name, true, &link.loc);
        }
    }

    for namespace in ["network_mode", "ipc", "pid", "uts", "cgroup"] {
        let Some(entry) = map.get(namespace) else { continue };
        if let Some(shared) = entry.node.as_str().and_then(|r| r.strip_prefix("service:")) {
            add_dependency(&mut depends_on, shared, true, &entry.node.loc);
        }
    }

    if let Some(volumes) = map.get_mut("volumes").and_then(|e| seq_mut(&mut e.node)) {
        for volume in volumes.iter_mut() {
            let Some(target) = volume.as_map_mut().and_then(|m| m.get_mut("target")) else { continue };
            if let Some(text) = as_string(&target.node) {
                target.node = str_node(clean(text), &target.node.loc);
            }
        }
    }

    if let Some(volumes_from) = map.get("volumes_from").and_then(|e| e.node.as_seq()) {
        for source in volumes_from {
            let Some(text) = source.as_str() else { continue };
            if !text.starts_with("container:") {
                let service = text.split(':').next().unwrap_or(text);
                // Sharing volumes needs the other container created, not restarted with it.
                add_dependency(&mut depends_on, service, false, &source.loc);
            }
        }
    }

    if !depends_on.is_empty() {
        let at = map.get("depends_on").map_or(loc.clone(), |e| e.node.loc.clone());
        let node = Node::new(Value::Map(depends_on), at.clone());
        match map.get_mut("depends_on") {
            Some(entry) => entry.node = node,
            None => insert(map, "depends_on", node, &at),
        }
    }

    inherit_pre_start_image(map);
}

fn seq_mut(node: &mut Node) -> Option<&mut Vec<Node>> {
    match &mut node.value {
        Value::Seq(items) => Some(items),
        _ => None,
    }
}

/// An implied dependency, unless `depends_on` already names the service.
fn add_dependency(depends_on: &mut Map, service: &str, restart: bool, loc: &Location) {
    if depends_on.contains_key(service) {
        return;
    }
    let dependency = map_node(
        vec![
            ("condition", str_node("service_started", loc)),
            ("restart", bool_node(restart, loc)),
            ("required", bool_node(true, loc)),
        ],
        loc,
    );
    insert(depends_on, service, dependency, loc);
}

/// A `pre_start` hook without `image` runs in its service's image (compose-spec #647).
fn inherit_pre_start_image(service: &mut Map) {
    let Some(image) = service.get("image").and_then(|e| as_string(&e.node)).filter(|i| !i.is_empty()) else {
        return;
    };
    let image = image.to_owned();
    let Some(hooks) = service.get_mut("pre_start").and_then(|e| seq_mut(&mut e.node)) else { return };
    for hook in hooks.iter_mut() {
        let loc = hook.loc.clone();
        if let Some(hook) = hook.as_map_mut()
            && !hook.contains_key("image")
        {
            insert(hook, "image", str_node(&image, &loc), &loc);
        }
    }
}

/// The implicit `default` network, for services that say nothing about networks.
fn normalize_networks(root: &mut Node) {
    let mut uses_default = false;
    if let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) {
        for entry in services.values_mut() {
            let loc = entry.node.loc.clone();
            let Some(service) = entry.node.as_map_mut() else { continue };
            if service.contains_key("provider") || service.contains_key("network_mode") {
                continue;
            }
            let default_only = || map_node(vec![("default", null_node(&loc))], &loc);
            match service.get_mut("networks") {
                None => {
                    insert(service, "networks", default_only(), &loc);
                    uses_default = true;
                }
                // `networks:` written but empty (or null) is the same as not written.
                Some(networks) if networks.node.as_map().is_none_or(|m| m.is_empty()) => {
                    let at = networks.node.loc.clone();
                    networks.node = map_node(vec![("default", null_node(&at))], &at);
                    uses_default = true;
                }
                Some(networks) => {
                    uses_default |= networks.node.as_map().is_some_and(|m| m.contains_key("default"));
                }
            }
        }
    }
    let root_loc = root.loc.clone();
    let Some(top) = root.as_map_mut() else { return };
    let declared = top.get("networks").and_then(|e| e.node.as_map()).is_some_and(|m| m.contains_key("default"));
    if uses_default && !declared {
        match top.get_mut("networks") {
            Some(entry) if entry.node.as_map().is_some() => {
                let at = entry.node.loc.clone();
                if let Some(networks) = entry.node.as_map_mut() {
                    insert(networks, "default", null_node(&at), &at);
                }
            }
            _ => {
                let networks = map_node(vec![("default", null_node(&root_loc))], &root_loc);
                insert(top, "networks", networks, &root_loc);
            }
        }
    }
}

/// Bare names given their value from `env` (compose-go's `resolve`). In a list, `NAME` becomes
/// `NAME=value`; in a mapping, `NAME: null` becomes `NAME: value`. A name the environment lacks
/// stays as it is when `keep_empty`, else it is dropped. Non-string list items are dropped.
fn resolve(node: &mut Node, env: &dyn Fn(&str) -> Option<String>, keep_empty: bool) {
    match &mut node.value {
        Value::Seq(items) => {
            items.retain_mut(|item| resolve_item(item, env, keep_empty));
        }
        Value::Map(map) => {
            map.retain(|key, entry| {
                if !entry.node.is_null() {
                    return true;
                }
                match env(key) {
                    Some(value) => {
                        entry.node = str_node(value, &entry.node.loc);
                        true
                    }
                    None => keep_empty,
                }
            });
        }
        _ => {}
    }
}

/// One list item; false when it is to be dropped.
fn resolve_item(item: &mut Node, env: &dyn Fn(&str) -> Option<String>, keep_empty: bool) -> bool {
    match &item.value {
        Value::Seq(_) | Value::Map(_) => {
            resolve(item, env, keep_empty);
            true
        }
        _ => {
            let Some(text) = as_string(item) else { return false };
            if text.contains('=') {
                return true;
            }
            match env(text) {
                Some(value) => {
                    *item = str_node(format!("{text}={value}"), &item.loc);
                    true
                }
                None => keep_empty,
            }
        }
    }
}

/// Top-level resources without a `name` are named after their key (`<project>_<key>`, or `<key>` when
/// external), a null resource becoming a mapping.
fn set_name_from_key(root: &mut Node) {
    let project = match root.get("name") {
        Some(name) if !name.is_null() => go_sprint(name),
        // Go formats the missing name as `%!s(<nil>)`; the loader always sets one first.
        _ => "%!s(<nil>)".to_owned(),
    };
    let Some(top) = root.as_map_mut() else { return };
    for section in ["networks", "volumes", "configs", "secrets"] {
        let Some(resources) = top.get_mut(section).and_then(|e| e.node.as_map_mut()) else { continue };
        for (key, entry) in resources.iter_mut() {
            if entry.node.is_null() {
                entry.node = Node::new(Value::Map(Map::new()), entry.node.loc.clone());
            }
            let loc = entry.node.loc.clone();
            let Some(resource) = entry.node.as_map_mut() else { continue };
            if has_value(resource, "name") {
                continue;
            }
            let external = resource.get("external").is_some_and(|e| is_true(&e.node));
            let name = if external { key.clone() } else { format!("{project}_{key}") };
            insert(resource, "name", str_node(name, &loc), &loc);
        }
    }
}

/// Go's `strconv.ParseBool(fmt.Sprint(x))`, errors counting as false.
fn is_true(node: &Node) -> bool {
    matches!(go_sprint(node).as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;
    use std::sync::Arc;

    /// Normalizes `input` with `env` and compares with `expected`, both YAML.
    fn check(input: &str, env: &[(&str, &str)], expected: &str) {
        let file: Arc<str> = Arc::from("compose.yaml");
        let mut root = parse(input, &file).unwrap_or_else(|e| panic!("{e}"));
        let lookup = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        normalize(&mut root, &lookup).unwrap_or_else(|e| panic!("{e}"));
        let want = parse(expected, &file).unwrap_or_else(|e| panic!("{e}")).to_json();
        assert_eq!(root.to_json(), want);
    }

    #[test]
    fn network_names() {
        check(
            r#"
name: myProject
services:
  foo:
    build:
      context: ./testdata
      args:
        FOO: null
        ZOT: null
networks:
  myExternalnet:
    external: true
  myNamedNet:
    name: CustomName
  mynet: {}
"#,
            &[("FOO", "BAR")],
            r#"
name: myProject
services:
  foo:
    build:
      context: ./testdata
      args:
        FOO: BAR
      dockerfile: Dockerfile
    networks:
      default: null
networks:
  myExternalnet:
    external: true
    name: myExternalnet
  myNamedNet:
    name: CustomName
  mynet:
    name: myProject_mynet
  default:
    name: myProject_default
"#,
        );
    }

    #[test]
    fn volume_names() {
        check(
            "name: myProject\nvolumes:\n  myExternalVol:\n    external: true\n  myvol: {}\n  myNamedVol:\n    name: CustomName\n",
            &[],
            "name: myProject\nvolumes:\n  myExternalVol:\n    external: true\n    name: myExternalVol\n  myvol:\n    name: myProject_myvol\n  myNamedVol:\n    name: CustomName\n",
        );
    }

    #[test]
    fn depends_on_from_network_mode_and_volumes_from() {
        check(
            r#"
name: myProject
services:
  foo:
    depends_on:
      bar:
        condition: service_healthy
        required: true
        restart: true
    network_mode: service:zot
  bar:
    volumes_from:
      - zot
      - container:xxx
  zot: {}
"#,
            &[],
            r#"
name: myProject
services:
  foo:
    depends_on:
      bar:
        condition: service_healthy
        required: true
        restart: true
      zot:
        condition: service_started
        restart: true
        required: true
    network_mode: service:zot
  bar:
    volumes_from:
      - zot
      - container:xxx
    networks:
      default: null
    depends_on:
      zot:
        condition: service_started
        restart: false
        required: true
  zot:
    networks:
      default: null
networks:
  default:
    name: myProject_default
"#,
        );
    }

    #[test]
    fn implicit_dependencies_never_override_written_ones() {
        check(
            r#"
name: myProject
services:
  test:
    ipc: service:foo
    cgroup: service:bar
    uts: service:baz
    pid: service:qux
    volumes_from: [quux]
    links: [corge, "grault:alias"]
    depends_on:
      foo:
        condition: service_healthy
"#,
            &[],
            r#"
name: myProject
services:
  test:
    ipc: service:foo
    cgroup: service:bar
    uts: service:baz
    pid: service:qux
    volumes_from: [quux]
    links: [corge, "grault:alias"]
    depends_on:
      foo:
        condition: service_healthy
      corge: {condition: service_started, restart: true, required: true}
      grault: {condition: service_started, restart: true, required: true}
      bar: {condition: service_started, restart: true, required: true}
      baz: {condition: service_started, restart: true, required: true}
      qux: {condition: service_started, restart: true, required: true}
      quux: {condition: service_started, restart: false, required: true}
    networks:
      default: null
networks:
  default:
    name: myProject_default
"#,
        );
    }

    #[test]
    fn implicit_build_context_and_dockerfile() {
        check(
            "name: myProject\nservices:\n  test:\n    build: {}\n",
            &[],
            "name: myProject\nservices:\n  test:\n    build:\n      context: .\n      dockerfile: Dockerfile\n    networks:\n      default: null\nnetworks:\n  default:\n    name: myProject_default\n",
        );
        check(
            "name: p\nservices:\n  test:\n    build: {dockerfile_inline: FROM x}\n    network_mode: host\n",
            &[],
            "name: p\nservices:\n  test:\n    build: {dockerfile_inline: FROM x, context: .}\n    network_mode: host\n",
        );
    }

    #[test]
    fn custom_network_only() {
        check(
            "name: myProject\nservices:\n  test:\n    networks:\n      my_network: null\nnetworks:\n  my_network: null\n",
            &[],
            "name: myProject\nservices:\n  test:\n    networks:\n      my_network: null\nnetworks:\n  my_network:\n    name: myProject_my_network\n",
        );
    }

    #[test]
    fn environment_and_args() {
        check(
            "name: p\nservices:\n  test:\n    environment: [FOO, BAR, ZOT=QIX]\n    build: {context: ., args: [A, B, C=1]}\n    pull_policy: if_not_present\n    network_mode: none\n",
            &[("BAR", "bar"), ("ZOT", "zot"), ("B", "b")],
            "name: p\nservices:\n  test:\n    environment: [FOO, BAR=bar, ZOT=QIX]\n    build: {context: ., args: [B=b, C=1], dockerfile: Dockerfile}\n    pull_policy: missing\n    network_mode: none\n",
        );
    }

    #[test]
    fn targets_cleaned_and_pre_start_images() {
        check(
            r#"
name: p
services:
  app:
    image: alpine
    network_mode: host
    volumes: [{type: volume, source: v, target: /data/./x/}]
    pre_start:
      - command: [migrate]
      - image: busybox
        command: [chown]
"#,
            &[],
            r#"
name: p
services:
  app:
    image: alpine
    network_mode: host
    volumes: [{type: volume, source: v, target: /data/x}]
    pre_start:
      - command: [migrate]
        image: alpine
      - image: busybox
        command: [chown]
"#,
        );
    }

    #[test]
    fn provider_services_and_empty_networks() {
        check(
            "name: p\nservices:\n  ai:\n    provider: {type: model}\n  web:\n    networks: {}\n",
            &[],
            "name: p\nservices:\n  ai:\n    provider: {type: model}\n  web:\n    networks: {default: null}\nnetworks:\n  default:\n    name: p_default\n",
        );
    }
}
