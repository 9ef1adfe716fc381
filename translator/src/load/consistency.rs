//! Whole-project checks made once every file is merged and normalised, on the located tree so each
//! error names the line that causes it. Follows compose-go `loader/validate.go` (`checkConsistency`) and
//! `graph/cycle.go`; the messages keep compose's wording and add where and what to do.

use std::collections::BTreeSet;

use crate::diag::Diagnostic;
use crate::load::yaml::{Map, Node, Value};

/// Checks `root` (after profiles are applied; `disabled` are the services profiles turned off).
pub fn check(root: &Node, disabled: &[String]) -> Result<(), Diagnostic> {
    let empty = Map::new();
    let services = root.get("services").and_then(Node::as_map).unwrap_or(&empty);
    let top = |key: &str| root.get(key).and_then(Node::as_map).unwrap_or(&empty);
    let (networks, volumes, secrets, configs, models) =
        (top("networks"), top("volumes"), top("secrets"), top("configs"), top("models"));

    for (name, entry) in services {
        let service = &entry.node;
        let at = |key: &str| service.get(key).map(|n| n.loc.clone()).or_else(|| Some(entry.key_loc.clone()));
        let err = |key: &str, message: String| Diagnostic::error(at(key), format!("services.{name}.{key}"), message);

        if service.get("image").is_none() && service.get("build").is_none() && service.get("provider").is_none() {
            return Err(Diagnostic::error(
                Some(entry.key_loc.clone()),
                format!("services.{name}"),
                format!("service \"{name}\" has neither an image nor a build context specified"),
            )
            .with_hint("add `image:` or `build:`"));
        }
        if let Some(build) = service.get("build")
            && build.get("dockerfile").is_some()
            && build.get("dockerfile_inline").is_some()
        {
            return Err(err(
                "build",
                format!("service \"{name}\" declares mutualy exclusive dockerfile and dockerfile_inline"),
            ));
        }
        let service_networks = service.get("networks").and_then(Node::as_map);
        if service.get("network_mode").is_some() && service_networks.is_some_and(|n| !n.is_empty()) {
            return Err(err(
                "network_mode",
                format!("service {name} declares mutually exclusive `network_mode` and `networks`"),
            )
            .with_hint("a service either joins networks or shares another network namespace, not both"));
        }
        for (network, e) in service_networks.into_iter().flatten() {
            if !networks.contains_key(network) {
                return Err(Diagnostic::error(
                    Some(e.key_loc.clone()),
                    format!("services.{name}.networks"),
                    format!("service \"{name}\" refers to undefined network {network}"),
                )
                .with_hint("declare it under the top-level `networks:` key, or remove it here"));
            }
        }
        if let Some(test) = service.get("healthcheck").and_then(|h| h.get("test")).and_then(Node::as_seq)
            && let Some(first) = test.first().and_then(Node::as_str)
            && !matches!(first, "CMD" | "CMD-SHELL" | "NONE")
        {
            return Err(err(
                "healthcheck",
                "healthcheck.test must start either by \"CMD\", \"CMD-SHELL\" or \"NONE\"".into(),
            ));
        }
        for (dependency, e) in service.get("depends_on").and_then(Node::as_map).into_iter().flatten() {
            if services.contains_key(dependency) {
                continue;
            }
            let required = e.node.get("required").and_then(Node::as_str) != Some("false");
            if disabled.contains(dependency) && !required {
                continue;
            }
            let why = if disabled.contains(dependency) { " (it is in a profile that is not enabled)" } else { "" };
            return Err(Diagnostic::error(
                Some(e.key_loc.clone()),
                format!("services.{name}.depends_on"),
                format!("service \"{name}\" depends on undefined service \"{dependency}\"{why}"),
            )
            .with_hint("check the service name, or enable its profile with --profile"));
        }
        if let Some(mode) = service.get("network_mode").and_then(Node::as_str)
            && let Some(target) = mode.strip_prefix("service:")
            && !services.contains_key(target)
        {
            return Err(err(
                "network_mode",
                format!("service \"{target}\" not found for network_mode 'service:{target}'"),
            ));
        }
        let references: [(&str, &Map, &str); 3] =
            [("configs", configs, "config"), ("secrets", secrets, "secret"), ("models", models, "model")];
        for (key, declared, what) in references {
            for item in service.get(key).map(refs).unwrap_or_default() {
                if !declared.contains_key(&item.0) {
                    return Err(Diagnostic::error(
                        Some(item.1),
                        format!("services.{name}.{key}"),
                        format!("service \"{name}\" refers to undefined {what} {}", item.0),
                    )
                    .with_hint(format!("declare it under the top-level `{key}:` key")));
                }
            }
        }
        let mut mounts: Vec<(String, String)> = Vec::new();
        for (i, tmpfs) in service.get("tmpfs").and_then(Node::as_seq).into_iter().flatten().enumerate() {
            let path = tmpfs.as_str().unwrap_or_default().split(':').next().unwrap_or_default().to_owned();
            let here = format!("services.{name}.tmpfs[{i}]");
            if let Some((_, first)) = mounts.iter().find(|(p, _)| *p == path) {
                return Err(Diagnostic::error(
                    Some(tmpfs.loc.clone()),
                    here.clone(),
                    format!("target {path} already mounted as {first}"),
                ));
            }
            mounts.push((path, here));
        }
        for (i, volume) in service.get("volumes").and_then(Node::as_seq).into_iter().flatten().enumerate() {
            let here = format!("services.{name}.volumes[{i}]");
            if volume.get("type").and_then(Node::as_str) == Some("volume")
                && let Some(source) = volume.get("source").and_then(Node::as_str)
                && !volumes.contains_key(source)
            {
                return Err(Diagnostic::error(
                    Some(volume.loc.clone()),
                    here,
                    format!("service \"{name}\" refers to undefined volume {source}"),
                )
                .with_hint("declare it under the top-level `volumes:` key"));
            }
            let target = volume.get("target").and_then(Node::as_str).unwrap_or_default().to_owned();
            if let Some((_, first)) = mounts.iter().find(|(p, _)| *p == target) {
                return Err(Diagnostic::error(
                    Some(volume.loc.clone()),
                    here,
                    format!("target {target} already mounted as {first}"),
                ));
            }
            mounts.push((target, here));
        }
        check_distinct(name, service)?;
    }
    for (name, entry) in secrets {
        let secret = &entry.node;
        let external = secret.get("external").and_then(Node::as_str) == Some("true");
        if !external && secret.get("file").is_none() && secret.get("environment").is_none() {
            return Err(Diagnostic::error(
                Some(entry.key_loc.clone()),
                format!("secrets.{name}"),
                format!("secret \"{name}\" must declare either `file` or `environment`"),
            ));
        }
    }
    check_cycles(services)
}

/// `(source, location)` of each entry of a service's `configs`/`secrets` list or `models` map.
fn refs(node: &Node) -> Vec<(String, crate::source::Location)> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| {
                let source = i.get("source").and_then(Node::as_str).or_else(|| i.as_str())?;
                Some((source.to_owned(), i.loc.clone()))
            })
            .collect(),
        Value::Map(map) => map.iter().map(|(k, e)| (k.clone(), e.key_loc.clone())).collect(),
        _ => Vec::new(),
    }
}

/// Compose refuses two spellings of one setting with different values (`cpus` and
/// `deploy.resources.limits.cpus`, ...).
fn check_distinct(name: &str, service: &Node) -> Result<(), Diagnostic> {
    let deploy = service.get("deploy");
    let pairs: [(&str, &[&str]); 4] = [
        ("cpus", &["resources", "limits", "cpus"]),
        ("mem_limit", &["resources", "limits", "memory"]),
        ("mem_reservation", &["resources", "reservations", "memory"]),
        ("pids_limit", &["resources", "limits", "pids"]),
    ];
    for (flat, nested) in pairs {
        // As compose-go's `checkConsistency`: a flat value other than zero must equal the nested one
        // whenever `limits`/`reservations` is there, an absent nested value counting as zero.
        let Some(a) = service.get(flat).filter(|a| scalar_number(a).is_some_and(|n| n != 0.0)) else { continue };
        let parent = deploy.and_then(|d| d.get(nested[0])).and_then(|r| r.get(nested[1]));
        let Some(parent) = parent.filter(|p| !p.is_null()) else { continue };
        let b = parent.get(nested[2]).and_then(scalar_number).unwrap_or(0.0);
        if scalar_number(a) != Some(b) {
            return Err(Diagnostic::error(
                Some(a.loc.clone()),
                format!("services.{name}"),
                format!("can't set distinct values on '{flat}' and 'deploy.{}'", nested.join(".")),
            )
            .with_hint("keep one of the two"));
        }
    }
    let replicas = deploy.and_then(|d| d.get("replicas"));
    for (node, key) in [(service.get("scale"), "scale"), (replicas, "deploy.replicas")] {
        if let Some(node) = node
            && node.as_str().and_then(|s| s.parse::<f64>().ok()).is_some_and(|n| n < 0.0)
        {
            return Err(Diagnostic::error(
                Some(node.loc.clone()),
                format!("services.{name}.{key}"),
                "must be greater than or equal to 0",
            ));
        }
    }
    // compose-go `GetScale`: `scale`, else `deploy.replicas`, else 1.
    let (attribute, count) = match (service.get("scale"), replicas) {
        (Some(scale), _) => ("scale", scale),
        (None, Some(replicas)) => ("deploy.replicas", replicas),
        (None, None) => ("", service),
    };
    if count.as_str().and_then(|s| s.parse::<f64>().ok()).is_some_and(|n| n > 1.0)
        && let Some(container_name) =
            service.get("container_name").filter(|n| n.as_str().is_some_and(|s| !s.is_empty()))
    {
        return Err(Diagnostic::error(
            Some(container_name.loc.clone()),
            format!("services.{name}"),
            format!("can't set container_name and {attribute} as container name must be unique"),
        )
        .with_hint("remove container_name, or run a single replica"));
    }
    if let (Some(scale), Some(replicas)) = (service.get("scale"), deploy.and_then(|d| d.get("replicas")))
        && scale.as_str() != replicas.as_str()
    {
        return Err(Diagnostic::error(
            Some(scale.loc.clone()),
            format!("services.{name}"),
            "can't set distinct values on 'scale' and 'deploy.replicas'".to_string(),
        ));
    }
    Ok(())
}

fn scalar_number(node: &Node) -> Option<f64> {
    let text = node.as_str()?;
    text.parse::<f64>().ok().or_else(|| crate::load::units::parse_bytes(text).ok().map(|b| b as f64))
}

/// A `depends_on` cycle is an error; the first one in name order is reported, as compose does.
fn check_cycles(services: &Map) -> Result<(), Diagnostic> {
    let children = |name: &str| -> BTreeSet<String> {
        services
            .get(name)
            .and_then(|e| e.node.get("depends_on"))
            .and_then(Node::as_map)
            .map(|m| m.keys().filter(|k| services.contains_key(*k)).cloned().collect())
            .unwrap_or_default()
    };
    /// The cycle as the path of services, ending with the one that closes it.
    fn search(path: &mut Vec<String>, children: &dyn Fn(&str) -> BTreeSet<String>) -> Option<Vec<String>> {
        let last = path.last()?.clone();
        for child in children(&last) {
            if let Some(i) = path.iter().position(|p| *p == child) {
                let mut cycle = path[i..].to_vec();
                cycle.push(child);
                return Some(cycle);
            }
            path.push(child);
            if let Some(cycle) = search(path, children) {
                return Some(cycle);
            }
            path.pop();
        }
        None
    }
    let names: BTreeSet<&String> = services.keys().collect();
    for name in names {
        if let Some(cycle) = search(&mut vec![name.clone()], &children) {
            // Point at the first dependency of the cycle as the message spells it.
            let (from, to) = (&cycle[0], &cycle[1]);
            let entry = &services[from.as_str()];
            let depends_on = entry.node.get("depends_on");
            let loc = depends_on
                .and_then(Node::as_map)
                .and_then(|m| m.get(to.as_str()))
                .map(|e| e.key_loc.clone())
                .or_else(|| depends_on.map(|d| d.loc.clone()))
                .unwrap_or_else(|| entry.key_loc.clone());
            return Err(Diagnostic::error(
                Some(loc),
                format!("services.{from}.depends_on"),
                format!("dependency cycle detected: {}", cycle.join(" -> ")),
            )
            .with_hint("services cannot wait for each other; remove one of the dependencies"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;

    fn run(text: &str) -> Result<(), Diagnostic> {
        check(&parse(text, &"c.yaml".into()).unwrap(), &[])
    }

    #[test]
    fn finds_cycles_in_name_order() {
        let e = run("services:\n  web: {image: a, depends_on: {db: {}}}\n  db: {image: b, depends_on: {web: {}}}\n")
            .unwrap_err();
        assert_eq!(e.message, "dependency cycle detected: db -> web -> db");
        // The first edge of the cycle: db's dependency on web.
        assert_eq!(e.location.map(|l| l.line), Some(3));
    }

    #[test]
    fn unknown_dependency_points_at_its_name() {
        let e = run("services:\n  web:\n    image: a\n    depends_on:\n      dbb: {condition: service_started}\n")
            .unwrap_err();
        assert!(e.message.contains("undefined service \"dbb\""), "{e}");
        assert_eq!(e.location.map(|l| (l.line, l.column)), Some((5, 7)));
    }

    #[test]
    fn a_flat_limit_must_match_an_absent_nested_one() {
        let e =
            run("services:\n  web:\n    image: a\n    cpus: 0.7\n    deploy: {resources: {limits: {memory: 1g}}}\n")
                .unwrap_err();
        assert_eq!(e.message, "can't set distinct values on 'cpus' and 'deploy.resources.limits.cpus'");
        run("services:\n  web:\n    image: a\n    cpus: 0.7\n    deploy: {resources: {reservations: {memory: 1g}}}\n")
            .unwrap();
        run("services:\n  web:\n    image: a\n    cpus: 0\n    deploy: {resources: {limits: {memory: 1g}}}\n").unwrap();
        run("services:\n  web:\n    image: a\n    cpus: 0.5\n    deploy: {resources: {limits: {cpus: '0.50'}}}\n")
            .unwrap();
    }

    #[test]
    fn replicas_and_scale_are_not_negative() {
        let e = run("services:\n  web: {image: a, deploy: {replicas: -1}}\n").unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            ("services.web.deploy.replicas", "must be greater than or equal to 0")
        );
        let e = run("services:\n  web: {image: a, scale: -2}\n").unwrap_err();
        assert_eq!(e.key, "services.web.scale");
        run("services:\n  web: {image: a, scale: 0}\n").unwrap();
        let e = run("services:\n  web: {image: a, container_name: w, deploy: {replicas: 2}}\n").unwrap_err();
        assert_eq!(e.message, "can't set container_name and deploy.replicas as container name must be unique");
        run("services:\n  web: {image: a, container_name: w, scale: 1}\n").unwrap();
    }

    #[test]
    fn needs_an_image_or_build() {
        assert!(run("services:\n  web: {command: [x]}\n").unwrap_err().message.contains("neither an image"));
        run("services:\n  web: {image: x}\n").unwrap();
    }

    #[test]
    fn undefined_volume_and_duplicate_mounts() {
        let e = run("services:\n  web:\n    image: a\n    volumes: [{type: volume, source: data, target: /d}]\n")
            .unwrap_err();
        assert!(e.message.contains("undefined volume data"), "{e}");
        let e = run(
            "services:\n  web:\n    image: a\n    tmpfs: [/d]\n    volumes: [{type: bind, source: /x, target: /d}]\n",
        )
        .unwrap_err();
        assert!(e.message.contains("already mounted"), "{e}");
    }
}
