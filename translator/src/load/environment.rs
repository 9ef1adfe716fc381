//! Bare variable names in `environment` lists, and secrets/configs taken from the environment, given
//! their values; follows compose-go `loader/environment.go`. Run on the merged model, after paths.

use super::tree::{as_string, insert, str_node};
use super::yaml::{Node, Value};

/// Resolves, from `env` (the project's environment: OS, `.env`, `--env-file`):
/// - `services.*.environment` as a list: an item that is exactly a variable's name becomes
///   `NAME=value`; other items stay, and items that are not strings are dropped;
/// - `secrets.*.environment: NAME` sets the secret's content (compose's `x-#value`);
/// - `configs.*.environment: NAME` sets the config's `content`.
///
/// Mapping-form `environment` is left for [`super::normalize`].
pub fn resolve_environment(root: &mut Node, env: &dyn Fn(&str) -> Option<String>) {
    if let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) {
        for entry in services.values_mut() {
            let Some(Value::Seq(items)) = entry.node.get_mut("environment").map(|n| &mut n.value) else { continue };
            let resolved = items
                .drain(..)
                .filter_map(|item| {
                    let name = as_string(&item)?;
                    Some(match env(name) {
                        Some(value) => str_node(format!("{name}={value}"), &item.loc),
                        // Unknown, or already `NAME=value`: interpolation had its chance.
                        None => item,
                    })
                })
                .collect();
            *items = resolved;
        }
    }
    resolve_content(root, "secrets", "x-#value", env);
    resolve_content(root, "configs", "content", env);
}

fn resolve_content(root: &mut Node, section: &str, key: &str, env: &dyn Fn(&str) -> Option<String>) {
    let Some(resources) = root.get_mut(section).and_then(Node::as_map_mut) else { return };
    for entry in resources.values_mut() {
        let Some(resource) = entry.node.as_map_mut() else { continue };
        let Some(source) = resource.get("environment") else { continue };
        let Some(name) = as_string(&source.node) else { continue };
        let loc = source.node.loc.clone();
        if let Some(value) = env(name) {
            insert(resource, key, str_node(value, &loc), &loc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn resolves_names_from_the_environment() {
        let yaml = r#"
services:
  web:
    environment: [FOO, BAR=1, MISSING, 42]
  api:
    environment: {FOO: null}
secrets:
  token: {environment: TOKEN}
  other: {environment: NOPE}
configs:
  conf: {environment: FOO}
"#;
        let mut root = parse(yaml, &Arc::from("c.yaml")).unwrap();
        let env = |name: &str| match name {
            "FOO" => Some("foo".to_owned()),
            "TOKEN" => Some("s3cret".to_owned()),
            _ => None,
        };
        resolve_environment(&mut root, &env);
        assert_eq!(
            root.to_json(),
            json!({
                "services": {"web": {"environment": ["FOO=foo", "BAR=1", "MISSING"]}, "api": {"environment": {"FOO": null}}},
                "secrets": {"token": {"environment": "TOKEN", "x-#value": "s3cret"}, "other": {"environment": "NOPE"}},
                "configs": {"conf": {"environment": "FOO", "content": "foo"}}
            })
        );
    }
}
