//! `include:` (compose-spec `14-include.md`, compose-go `loader/include.go`): each entry is a whole compose
//! project of its own (its own directory for relative paths, its own `.env`), loaded completely and
//! then imported; resources it defines are merged under the including file's own definitions of the
//! same name. An include cycle is an error.

use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::load::discover::Environment;
use crate::load::yaml::{Node, Value};
use crate::source::Location;

/// Loads the files of one include entry with its project directory and environment, recording the
/// chain of files being included so cycles can be found.
pub type LoadProject<'a> =
    dyn FnMut(&[PathBuf], &Path, &Environment, &mut Vec<PathBuf>) -> Result<Node, Diagnostic> + 'a;

/// Applies and removes the `include` key of `root` (one file's tree, not yet merged).
pub fn apply(
    root: &mut Node,
    working_dir: &Path,
    environment: &Environment,
    included: &[PathBuf],
    load: &mut LoadProject<'_>,
) -> Result<(), Diagnostic> {
    let Some(map) = root.as_map_mut() else { return Ok(()) };
    let Some(entry) = map.shift_remove("include") else { return Ok(()) };
    let items = match entry.node.value {
        Value::Seq(items) => items,
        Value::Null => return Ok(()),
        _ => {
            return Err(Diagnostic::error(Some(entry.node.loc), "include", "`include` must be a list")
                .with_hint("write `include: [path/to/compose.yaml]`"));
        }
    };
    for item in items {
        let spec = IncludeSpec::read(&item, working_dir)?;
        let main = &spec.paths[0];
        if let Some(start) = included.iter().position(|f| f == main) {
            let chain: Vec<String> = included[start..].iter().chain([main]).map(|p| p.display().to_string()).collect();
            return Err(Diagnostic::error(
                Some(item.loc.clone()),
                "include",
                format!("include cycle detected:\n{}", chain.join("\n include ")),
            ));
        }
        for path in &spec.paths {
            if !path.is_file() {
                return Err(Diagnostic::error(
                    Some(item.loc.clone()),
                    "include",
                    format!("failed to read {}: no such file or directory", path.display()),
                )
                .with_hint("check the path; it is relative to the including file's project directory"));
            }
        }
        let env = crate::load::discover::read_env_files(environment.clone(), &spec.env_files).map_err(|mut e| {
            // A file that cannot be read has no position of its own: point at the include entry.
            if e.location.is_none() {
                e.location = Some(item.loc.clone());
                e.key = "include.env_file".into();
            }
            e
        })?;
        let mut chain = included.to_vec();
        let imported = load(&spec.paths, &spec.project_directory, &env, &mut chain)?;
        import(root, imported)?;
    }
    Ok(())
}

struct IncludeSpec {
    paths: Vec<PathBuf>,
    project_directory: PathBuf,
    env_files: Vec<PathBuf>,
}

impl IncludeSpec {
    fn read(item: &Node, working_dir: &Path) -> Result<IncludeSpec, Diagnostic> {
        let absolute = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() { p.to_path_buf() } else { working_dir.join(p) }
        };
        let strings = |node: Option<&Node>| -> Vec<String> {
            match node.map(|n| &n.value) {
                Some(Value::Scalar { text, .. }) => vec![text.clone()],
                Some(Value::Seq(items)) => items.iter().filter_map(Node::as_str).map(str::to_owned).collect(),
                _ => Vec::new(),
            }
        };
        let paths: Vec<PathBuf> = match &item.value {
            Value::Scalar { text, .. } => vec![absolute(text)],
            Value::Map(_) => strings(item.get("path")).iter().map(|p| absolute(p)).collect(),
            _ => Vec::new(),
        };
        if paths.is_empty() {
            return Err(Diagnostic::error(Some(item.loc.clone()), "include", "an include entry needs a path")
                .with_hint("write `- path/to/compose.yaml` or `- path: path/to/compose.yaml`"));
        }
        let project_directory = match item.get("project_directory").and_then(Node::as_str) {
            Some(dir) => absolute(dir),
            None => paths[0].parent().map(Path::to_path_buf).unwrap_or_else(|| working_dir.to_path_buf()),
        };
        let written_env_files = strings(item.get("env_file"));
        let env_files = if written_env_files.is_empty() {
            let default = project_directory.join(".env");
            if default.is_file() { vec![default] } else { Vec::new() }
        } else {
            written_env_files.iter().filter(|f| *f != "/dev/null").map(|f| absolute(f)).collect()
        };
        Ok(IncludeSpec { paths, project_directory, env_files })
    }
}

/// Resources of the included project go under the including file's; a name defined in both is merged
/// with the including file's definition winning.
fn import(root: &mut Node, imported: Node) -> Result<(), Diagnostic> {
    let Value::Map(imported) = imported.value else { return Ok(()) };
    let Some(target) = root.as_map_mut() else { return Ok(()) };
    for section in ["services", "volumes", "networks", "secrets", "configs", "models"] {
        let Some(from) = imported.get(section) else { continue };
        let Value::Map(from) = &from.node.value else { continue };
        let entry = target.entry(section.to_owned()).or_insert_with(|| crate::load::yaml::Entry {
            key_loc: from.values().next().map(|e| e.key_loc.clone()).unwrap_or_else(|| root_loc(from)),
            node: Node::new(Value::Map(Default::default()), root_loc(from)),
        });
        if entry.node.is_null() {
            entry.node.value = Value::Map(Default::default());
        }
        let Value::Map(to) = &mut entry.node.value else { continue };
        for (name, resource) in from {
            match to.shift_remove(name) {
                None => {
                    to.insert(name.clone(), resource.clone());
                }
                Some(existing) => {
                    let merged = crate::load::merge::merge(resource.node.clone(), existing.node)?;
                    to.insert(name.clone(), crate::load::yaml::Entry { key_loc: existing.key_loc, node: merged });
                }
            }
        }
    }
    Ok(())
}

fn root_loc(map: &crate::load::yaml::Map) -> Location {
    map.values().next().map(|e| e.key_loc.clone()).unwrap_or(Location {
        file: "".into(),
        line: 0,
        column: 0,
        end_line: 0,
    })
}
