//! Interpolation of a whole file: every string value of the tree goes through
//! [`super::interpolate::interpolate`], keys never do, and values at the paths compose-go types
//! (`deploy.replicas`, `read_only`, `ports[].target`, ...) are cast to numbers or booleans afterwards,
//! so `replicas: ${N}` is a number in the model. Follows compose-go `interpolation/interpolation.go` and
//! the cast table of `loader/interpolate.go`.

use crate::diag::Diagnostic;
use crate::load::interpolate::{InterpolationErrorKind, interpolate};
use crate::load::yaml::{Node, Value};

#[derive(Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// `*` matches any key, `[]` any list item.
const CASTS: &[(&[&str], Cast)] = &[
    (&["services", "*", "cpu_count"], Cast::Int),
    (&["services", "*", "cpu_percent"], Cast::Float),
    (&["services", "*", "cpu_period"], Cast::Int),
    (&["services", "*", "cpu_quota"], Cast::Int),
    (&["services", "*", "cpu_rt_period"], Cast::Int),
    (&["services", "*", "cpu_rt_runtime"], Cast::Int),
    (&["services", "*", "cpus"], Cast::Float),
    (&["services", "*", "cpu_shares"], Cast::Int),
    (&["services", "*", "init"], Cast::Bool),
    (&["services", "*", "depends_on", "*", "required"], Cast::Bool),
    (&["services", "*", "depends_on", "*", "restart"], Cast::Bool),
    (&["services", "*", "deploy", "replicas"], Cast::Int),
    (&["services", "*", "deploy", "update_config", "parallelism"], Cast::Int),
    (&["services", "*", "deploy", "update_config", "max_failure_ratio"], Cast::Float),
    (&["services", "*", "deploy", "rollback_config", "parallelism"], Cast::Int),
    (&["services", "*", "deploy", "rollback_config", "max_failure_ratio"], Cast::Float),
    (&["services", "*", "deploy", "restart_policy", "max_attempts"], Cast::Int),
    (&["services", "*", "deploy", "placement", "max_replicas_per_node"], Cast::Int),
    (&["services", "*", "healthcheck", "retries"], Cast::Int),
    (&["services", "*", "healthcheck", "disable"], Cast::Bool),
    (&["services", "*", "oom_kill_disable"], Cast::Bool),
    (&["services", "*", "oom_score_adj"], Cast::Int),
    (&["services", "*", "pids_limit"], Cast::Int),
    (&["services", "*", "ports", "[]", "target"], Cast::Int),
    (&["services", "*", "privileged"], Cast::Bool),
    (&["services", "*", "read_only"], Cast::Bool),
    (&["services", "*", "scale"], Cast::Int),
    (&["services", "*", "stdin_open"], Cast::Bool),
    (&["services", "*", "tty"], Cast::Bool),
    (&["services", "*", "ulimits", "*"], Cast::Int),
    (&["services", "*", "ulimits", "*", "hard"], Cast::Int),
    (&["services", "*", "ulimits", "*", "soft"], Cast::Int),
    (&["services", "*", "volumes", "[]", "read_only"], Cast::Bool),
    (&["services", "*", "volumes", "[]", "volume", "nocopy"], Cast::Bool),
    (&["networks", "*", "external"], Cast::Bool),
    (&["networks", "*", "internal"], Cast::Bool),
    (&["networks", "*", "attachable"], Cast::Bool),
    (&["networks", "*", "enable_ipv4"], Cast::Bool),
    (&["networks", "*", "enable_ipv6"], Cast::Bool),
    (&["volumes", "*", "external"], Cast::Bool),
    (&["secrets", "*", "external"], Cast::Bool),
    (&["configs", "*", "external"], Cast::Bool),
];

/// Interpolates every string in `root` with `lookup`.
pub fn substitute(root: &mut Node, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), Diagnostic> {
    let mut path = Vec::new();
    walk(root, &mut path, lookup)
}

fn walk<'a>(
    node: &'a mut Node,
    path: &mut Vec<String>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Diagnostic> {
    match &mut node.value {
        Value::Map(map) => {
            for (key, entry) in map.iter_mut() {
                path.push(key.clone());
                walk(&mut entry.node, path, lookup)?;
                path.pop();
            }
        }
        Value::Seq(items) => {
            for item in items {
                path.push("[]".into());
                walk(item, path, lookup)?;
                path.pop();
            }
        }
        Value::Scalar { text, plain } => {
            let is_string = !*plain || crate::load::yaml::plain_scalar(text).is_string();
            if !is_string {
                return Ok(());
            }
            let dotted = || path.iter().map(String::as_str).collect::<Vec<_>>().join(".");
            let replaced = interpolate(text, lookup).map_err(|e| {
                let hint = match &e.kind {
                    InterpolationErrorKind::MissingRequired { variable, .. } => {
                        format!("set {variable} in the environment or in .env (or pass --env-file)")
                    }
                    InterpolationErrorKind::InvalidFormat { .. } => {
                        "write `${NAME}`; a literal $ is written $$".to_owned()
                    }
                    InterpolationErrorKind::TooDeep => "nest fewer `${...}` inside each other".to_owned(),
                };
                Diagnostic::error(Some(node.loc.clone()), dotted(), e.message).with_hint(hint)
            })?;
            match cast_for(path) {
                None => {
                    *text = replaced;
                    // An interpolated value is a string even when it reads like a number: `image: ${TAG}`
                    // with TAG=1.27 stays "1.27".
                    *plain = false;
                }
                Some(cast) => {
                    let typed = apply(cast, &replaced).ok_or_else(|| {
                        Diagnostic::error(
                            Some(node.loc.clone()),
                            dotted(),
                            format!("failed to cast to expected type: invalid value {replaced:?}"),
                        )
                    })?;
                    *text = typed;
                    *plain = true;
                }
            }
        }
        Value::Null => {}
    }
    Ok(())
}

fn cast_for(path: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        (pattern.len() == path.len() && pattern.iter().zip(path).all(|(p, s)| *p == "*" || p == s)).then_some(*cast)
    })
}

/// The cast value, written as the plain scalar the core schema types correctly.
fn apply(cast: Cast, value: &str) -> Option<String> {
    match cast {
        Cast::Int => value.parse::<i64>().ok().map(|i| i.to_string()),
        // `1` types as an integer rather than a float; compose prints both as `1`.
        Cast::Float => value.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f.to_string()),
        Cast::Bool => match value.to_lowercase().as_str() {
            "true" | "y" | "yes" | "on" => Some("true".into()),
            "false" | "n" | "no" | "off" => Some("false".into()),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;
    use serde_json::json;

    fn run(text: &str, vars: &[(&str, &str)]) -> Result<serde_json::Value, Diagnostic> {
        let mut node = parse(text, &"compose.yaml".into()).unwrap();
        let lookup = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        substitute(&mut node, &lookup)?;
        Ok(node.to_json())
    }

    #[test]
    fn interpolates_strings_and_casts_typed_paths() {
        let got = run(
            "services:\n  web:\n    image: nginx:${TAG}\n    read_only: ${RO}\n    deploy:\n      replicas: ${N}\n    environment: {V: $TAG}\n    ports: [{target: '${P}'}]\n",
            &[("TAG", "1.27"), ("RO", "yes"), ("N", "3"), ("P", "80")],
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"services": {"web": {"image": "nginx:1.27", "read_only": true, "deploy": {"replicas": 3}, "environment": {"V": "1.27"}, "ports": [{"target": 80}]}}})
        );
    }

    #[test]
    fn numbers_from_variables_stay_strings_off_typed_paths() {
        let got = run("x: $V\n", &[("V", "1.5")]).unwrap();
        assert_eq!(got, json!({"x": "1.5"}));
    }

    #[test]
    fn keys_are_not_interpolated() {
        let got = run("${K}: v\n", &[("K", "x")]).unwrap();
        assert_eq!(got, json!({"${K}": "v"}));
    }

    #[test]
    fn reports_the_position_of_the_failing_value() {
        let e = run("services:\n  web:\n    deploy: {replicas: '${N}'}\n", &[("N", "many")]).unwrap_err();
        assert_eq!(e.location.as_ref().map(|l| (l.line, l.column)), Some((3, 24)));
        assert_eq!(e.key, "services.web.deploy.replicas");
    }
}
