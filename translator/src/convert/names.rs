//! Valid Kubernetes names for compose names, and the checks that keep them unique.
//!
//! Compose accepts service names Kubernetes refuses (`front_end`, `NGINX`, `appFoo`, `1st`) and project
//! names taken from folders (`my_app`). We lowercase, turn anything else into `-`, make sure a name
//! starts with a letter (Services need an RFC 1035 label), and cut long names with a stable hash so two
//! long names stay apart. Two compose names that become the same Kubernetes name are an error, not a
//! silent merge; the original name travels in the `compose.flotilla.dev/service-name` annotation.

use std::collections::BTreeMap;

use super::Ctx;

/// Longest DNS label.
pub const MAX: usize = 63;

/// `front_end` → `front-end`, `NGINX` → `nginx`, `1st` → `s-1st`, `` → `x`.
pub fn k8s_name(text: &str) -> String {
    let out: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    let trimmed = out.trim_matches('-');
    let mut out = if trimmed.is_empty() { "x".to_string() } else { trimmed.to_string() };
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "s-");
    }
    fit(&out, MAX)
}

/// `name` if it is at most `max` long, else its head plus a hash of the whole, so it stays unique.
pub fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = format!("{:08x}", fnv(name) as u32);
    let head: String = name.chars().take(max.saturating_sub(hash.len() + 1)).collect();
    format!("{}-{hash}", head.trim_end_matches('-'))
}

/// `base` + `-` + `suffix`, shortened as a whole.
pub fn join(base: &str, suffix: &str) -> String {
    fit(&format!("{base}-{suffix}"), MAX)
}

/// FNV-1a: a stable hash with no dependency (std's hasher may change between releases).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

/// A ConfigMap/Secret data key: letters, digits, `-`, `_`, `.`.
pub fn data_key(text: &str) -> String {
    let key: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if key.is_empty() || key == "." || key == ".." { "data".into() } else { key }
}

/// Whether `key` is a valid label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name at
/// most 63 letters, digits, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn valid_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    name_ok && prefix_ok
}

/// A port name (IANA service name): at most 15 lowercase letters, digits and `-`, with a letter.
pub fn port_name(text: &str) -> Option<String> {
    let name = text.to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 15
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    valid.then_some(name)
}

/// The namespace: `--namespace`, else the project name made valid.
/// `--namespace`, else the project's `x-flotilla: {namespace}`, else the project name, made valid.
pub fn namespace(ctx: &mut Ctx, from_project: Option<&str>) -> String {
    if let Some(ns) = ctx.options.namespace.clone().or(from_project.map(str::to_owned)) {
        let ns = &ns;
        let valid = k8s_name(ns);
        if &valid != ns {
            ctx.warn(&["name"], format!("namespace {ns:?} is not a valid kubernetes name; using {valid:?}"), "");
        }
        return valid;
    }
    let name = ctx.project.name.clone().unwrap_or_default();
    if name.is_empty() {
        ctx.warn(&["name"], "the project has no name; using namespace \"default\"", "set `name:` or pass -p");
        return "default".into();
    }
    k8s_name(&name)
}

/// Fills `ctx.names`; two services with the same Kubernetes name are an error.
pub fn service_names(ctx: &mut Ctx) {
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    let services: Vec<String> = ctx.project.services.keys().cloned().collect();
    for compose in services {
        // Room for `-published`, so the second Service's name is the first's plus a suffix.
        let name = fit(&k8s_name(&compose), MAX - "-published".len());
        if let Some(other) = taken.get(&name) {
            let message = format!("services {other:?} and {compose:?} both become {name:?} in kubernetes");
            ctx.error(&["services", &compose, "@key"], message, "rename one of them");
            continue;
        }
        taken.insert(name.clone(), compose.clone());
        ctx.names.insert(compose, name);
    }
}

/// Two objects of one kind with one name (an alias named like a service, a service called
/// `web-published` beside `web`'s published ports) are an error.
pub fn check_unique(ctx: &mut Ctx) {
    let mut seen: BTreeMap<(&'static str, String), usize> = BTreeMap::new();
    for object in &ctx.objects {
        *seen.entry((object.kind(), object.name().to_string())).or_default() += 1;
    }
    for ((kind, name), count) in seen {
        if count > 1 {
            ctx.error(
                &["services"],
                format!("two {kind} objects would be named {name:?}"),
                "rename a service, alias or volume",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_valid() {
        assert_eq!(k8s_name("front_end"), "front-end");
        assert_eq!(k8s_name("NGINX"), "nginx");
        assert_eq!(k8s_name("appFoo"), "appfoo");
        assert_eq!(k8s_name("my_app"), "my-app");
        assert_eq!(k8s_name("1st"), "s-1st");
        assert_eq!(k8s_name("__"), "x");
        assert_eq!(k8s_name("a.b"), "a-b");
        let long = k8s_name(&"a".repeat(80));
        assert_eq!(long.len(), 63);
        assert_ne!(long, k8s_name(&"a".repeat(81)));
        assert_eq!(port_name("https"), Some("https".into()));
        assert_eq!(port_name("8080"), None);
        assert!(valid_key("com.example.team"));
        assert!(valid_key("example.com/Team_1"));
        assert!(!valid_key("has space"));
        assert!(!valid_key("a/b/c"));
    }
}
