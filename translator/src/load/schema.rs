//! Validation against the Compose JSON schema (`compose-spec.json`, the copy compose-go embeds).
//!
//! Compose validates each file's merged tree before the canonical transform; so do we, on the located
//! tree, so an unknown key or a wrong type is reported at the line and column where it was written.
//! Like compose-go (`schema/schema.go`), when several alternatives of a `oneOf`/`anyOf` fail we report the
//! most specific failure: the deepest one, an unknown key counting one level deeper.

use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};

use crate::diag::Diagnostic;
use crate::load::yaml::Node;

static SCHEMA_JSON: LazyLock<serde_json::Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("compose-spec.json")).expect("the embedded schema is valid JSON")
});

static SCHEMA: LazyLock<Validator> =
    LazyLock::new(|| jsonschema::validator_for(&SCHEMA_JSON).expect("the embedded schema compiles"));

/// Checks `root` against the schema; the first (most specific) violation is the error.
pub fn validate(root: &Node) -> Result<(), Diagnostic> {
    let instance = root.to_json();
    // The common case, a valid file, takes the validator's fast path; errors are collected only on failure.
    if SCHEMA.is_valid(&instance) {
        return Ok(());
    }
    let errors: Vec<ValidationError<'static>> = SCHEMA.iter_errors(&instance).map(ValidationError::to_owned).collect();
    let Some(worst) = errors.iter().map(most_specific).max_by_key(|e| specificity(e)) else {
        return Ok(());
    };
    Err(describe(root, worst))
}

fn segments(error: &ValidationError<'_>) -> Vec<String> {
    let pointer = error.instance_path().to_string();
    pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect()
}

fn specificity(error: &ValidationError<'_>) -> usize {
    let depth = segments(error).len();
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { .. } => depth + 1,
        _ => depth,
    }
}

fn most_specific<'a>(error: &'a ValidationError<'static>) -> &'a ValidationError<'static> {
    let context = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => context,
        _ => return error,
    };
    let deeper = context.iter().flatten().map(most_specific).max_by_key(|e| specificity(e));
    match deeper {
        Some(d) if specificity(d) > specificity(error) => d,
        _ => error,
    }
}

fn describe(root: &Node, error: &ValidationError<'_>) -> Diagnostic {
    let path = segments(error);
    let node = find(root, &path);
    let dotted = path.join(".");
    let loc = node.map(|n| n.loc.clone());
    match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let key = unexpected.first().cloned().unwrap_or_default();
            let key_loc = node.and_then(|n| n.as_map()).and_then(|m| m.get(&key)).map(|e| e.key_loc.clone());
            let full = if dotted.is_empty() { key.clone() } else { format!("{dotted}.{key}") };
            Diagnostic::error(key_loc.or(loc), full, format!("additional property '{key}' is not allowed"))
                .with_hint(unknown_key_hint(&path, &key))
        }
        ValidationErrorKind::Type { kind } => {
            let want = match kind {
                TypeKind::Single(t) => human_type(&t.to_string()),
                TypeKind::Multiple(set) => {
                    let mut names: Vec<String> = set.iter().map(|t| human_type(&t.to_string())).collect();
                    names.sort();
                    match names.split_last() {
                        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
                        _ => names.join(""),
                    }
                }
            };
            Diagnostic::error(loc, dotted, format!("must be a {want}"))
        }
        _ => Diagnostic::error(loc, dotted, lowercase_first(&error.to_string())),
    }
}

/// The keys the schema allows where `path` points, for the places people type keys by hand.
fn allowed_keys(path: &[String]) -> Vec<String> {
    let properties = match path {
        [] => SCHEMA_JSON.get("properties"),
        [s, _] if s == "services" => SCHEMA_JSON.pointer("/$defs/service/properties"),
        _ => None,
    };
    properties.and_then(|p| p.as_object()).map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

/// Levenshtein distance, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb { previous } else { 1 + previous.min(row[j]).min(current) };
            previous = current;
        }
    }
    row[b.len()]
}

fn unknown_key_hint(path: &[String], key: &str) -> String {
    let closest =
        allowed_keys(path).into_iter().map(|k| (distance(key, &k), k)).filter(|(d, k)| *d <= 2.max(k.len() / 4)).min();
    if let Some((_, suggestion)) = closest {
        return format!("did you mean `{suggestion}`?");
    }
    let what = match path {
        [] => {
            "the top level allows name, services, networks, volumes, secrets, configs, models, include and x- extensions"
        }
        [s, _] if s == "services" => {
            "check the spelling against the Compose specification; keys of your own start with x-"
        }
        _ => "check the spelling against the Compose specification",
    };
    if key.starts_with("x-") {
        "extensions (x-) are allowed only at the top level and in mappings that list them".into()
    } else {
        what.into()
    }
}

fn human_type(name: &str) -> String {
    match name {
        "object" => "mapping".into(),
        "array" => "list".into(),
        other => other.into(),
    }
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The node at `path`, or the deepest existing ancestor.
fn find<'a>(root: &'a Node, path: &[String]) -> Option<&'a Node> {
    let mut node = root;
    for segment in path {
        let next = match &node.value {
            crate::load::yaml::Value::Map(m) => m.get(segment).map(|e| &e.node),
            crate::load::yaml::Value::Seq(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => break,
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;

    fn check(text: &str) -> Result<(), Diagnostic> {
        validate(&parse(text, &"compose.yaml".into()).unwrap())
    }

    #[test]
    fn accepts_valid_files() {
        check("services:\n  web:\n    image: nginx\n    ports: ['80:80', 5000]\nx-any: {a: 1}\n").unwrap();
    }

    #[test]
    fn unknown_service_key_points_at_the_key() {
        let e = check("services:\n  web:\n    image: nginx\n    imagee: x\n").unwrap_err();
        assert_eq!(e.key, "services.web.imagee");
        assert_eq!(e.location.as_ref().map(|l| (l.line, l.column)), Some((4, 5)));
        assert!(e.message.contains("'imagee'"), "{e}");
        assert_eq!(e.hint.as_deref(), Some("did you mean `image`?"));
    }

    #[test]
    fn wrong_type_is_named() {
        let e = check("services:\n  web:\n    image: nginx\n    ports: 80\n").unwrap_err();
        assert_eq!(e.key, "services.web.ports");
        assert_eq!(e.message, "must be a list");
        let e = check("services:\n  web:\n    image: [a]\n").unwrap_err();
        assert_eq!(e.message, "must be a string");
    }

    #[test]
    fn unknown_top_level_key() {
        let e = check("services: {}\nservice: {}\n").unwrap_err();
        assert_eq!(e.key, "service");
        assert_eq!(e.location.as_ref().map(|l| l.line), Some(2));
    }
}
