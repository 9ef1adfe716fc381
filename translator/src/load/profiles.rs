//! Profiles (compose-spec `15-profiles.md`, compose-go `Project.WithProfiles`): a service with
//! `profiles:` is active only when one of its profiles is selected (`*` selects all); a service without
//! profiles is always active. Inactive services leave the model; a required `depends_on` on one is
//! reported by [`super::consistency`], an optional one is dropped there too.

use crate::load::yaml::{Node, Value};

/// Removes the services of `root` that the selected `profiles` do not activate, and returns their names.
pub fn apply(root: &mut Node, profiles: &[String]) -> Vec<String> {
    let Some(services) = root.get_mut("services").and_then(Node::as_map_mut) else { return Vec::new() };
    let inactive: Vec<String> =
        services.iter().filter(|(_, entry)| !is_active(&entry.node, profiles)).map(|(name, _)| name.clone()).collect();
    for name in &inactive {
        services.shift_remove(name);
    }
    inactive
}

fn is_active(service: &Node, selected: &[String]) -> bool {
    let own: Vec<&str> = match service.get("profiles").map(|p| &p.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(Node::as_str).collect(),
        _ => Vec::new(),
    };
    own.is_empty() || selected.iter().any(|s| s == "*" || own.contains(&s.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;

    #[test]
    fn keeps_unprofiled_and_selected_services() {
        let text = "services:\n  a: {}\n  b: {profiles: [debug]}\n  c: {profiles: [tools, ops]}\n";
        let mut root = parse(text, &"c.yaml".into()).unwrap();
        assert_eq!(apply(&mut root, &["ops".into()]), ["b"]);
        let names: Vec<_> = root.get("services").unwrap().as_map().unwrap().keys().cloned().collect();
        assert_eq!(names, ["a", "c"]);

        let mut root = parse(text, &"c.yaml".into()).unwrap();
        assert!(apply(&mut root, &["*".into()]).is_empty());
    }
}
