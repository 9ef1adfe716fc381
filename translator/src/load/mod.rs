//! Loading a compose project the way Docker Compose v2 (compose-go) does.
//!
//! The pipeline, in compose-go's order (`loader/loader.go`):
//! 1. [`discover`]: which files, which project directory, which variables, which name;
//! 2. per file: [`yaml`] parses it into a located [`yaml::Node`] tree (anchors resolved, `<<` merged,
//!    `!reset`/`!override` kept); [`substitute`] interpolates every string; [`include`] and [`extends`]
//!    pull in other files; [`merge`] folds it into what earlier files said and [`unicity`] removes
//!    duplicates; [`schema`] validates the result; [`canonical`] rewrites short syntax to the long form;
//! 3. once: defaults, relative paths resolved ([`paths`]), `environment` entries without a value looked
//!    up ([`environment`]), names and implicit dependencies added ([`normalize`]), [`profiles`] applied,
//!    and the whole project checked ([`consistency`]);
//! 4. [`sourcemap`] turns the tree into JSON plus a [`SourceMap`], and the JSON is decoded into the typed
//!    [`Project`].
//!
//! Errors come back as [`Diagnostic`]s at `file:line:col`; nothing is printed here.

pub mod canonical;
pub mod consistency;
pub mod decode;
pub mod discover;
pub mod dotenv;
pub mod env_files;
pub mod environment;
pub mod extends;
pub mod include;
pub mod interpolate;
pub mod merge;
pub mod normalize;
pub mod paths;
pub mod profiles;
pub mod schema;
pub mod sourcemap;
pub mod substitute;
pub mod tree;
pub mod unicity;
pub mod units;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Errors};
use crate::model::Project;
use crate::source::SourceMap;
pub use discover::{Environment, Request};
use yaml::{Node, Value};

/// A loaded project: the typed model, the canonical JSON it was decoded from, and where every value
/// came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub project: Project,
    /// The canonical model, with `env_file` entries kept (the converter turns them into ConfigMaps). As in
    /// compose's canonical form, every literal `$` of a value is written `$$`.
    pub json: serde_json::Value,
    pub sources: SourceMap,
    /// The compose files, in merge order.
    pub files: Vec<PathBuf>,
    pub working_dir: PathBuf,
    /// The variables interpolation saw.
    pub environment: Environment,
    /// Per service, the variables its `env_file`s define (later files winning), read once at load.
    pub env_file_values: IndexMap<String, IndexMap<String, String>>,
    /// Services that the selected profiles left out.
    pub disabled_services: Vec<String>,
    /// Things compose accepts but warns about (an obsolete `version:`, ...).
    pub warnings: Vec<Diagnostic>,
}

impl Loaded {
    /// What `docker compose config --format json` prints: `env_file` contents merged into
    /// `environment` and `label_file` contents into `labels` (service values win), both keys dropped,
    /// and what compose holds but never prints removed ([`decode::hide_unprinted`]).
    pub fn config_json(&self) -> Result<serde_json::Value, Errors> {
        let mut json = self.json.clone();
        env_files::merge_into_environment(&mut json, &self.env_file_values);
        env_files::merge_label_files(&mut json, &self.sources)?;
        decode::hide_unprinted(&mut json);
        Ok(json)
    }
}

/// Compose's canonical form writes every literal `$` as `$$`, so the output can be loaded again.
pub fn escape_dollars(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        serde_json::Value::Object(map) => map.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Loads the project `request` describes.
pub fn load(request: &Request) -> Result<Loaded, Errors> {
    let found = discover::discover(request)?;
    let mut environment = found.environment.clone();
    let name = match &found.explicit_name {
        Some(name) => name.clone(),
        None => {
            name_from_files(&found.files, &environment, &request.cwd)?.unwrap_or_else(|| found.directory_name.clone())
        }
    };
    if name.is_empty() {
        return Err(Diagnostic::error(None, "name", "project name must not be empty")
            .with_hint("pass one with -p or set `name:` in the compose file")
            .into());
    }
    environment.insert("COMPOSE_PROJECT_NAME".into(), name.clone());

    let mut loader = FileLoader { environment: environment.clone(), warnings: Vec::new(), cwd: request.cwd.clone() };
    let mut root = loader.load_model(&found.files, &found.working_dir, &mut Vec::new())?;
    if root.as_map().is_none_or(|m| m.is_empty()) {
        let file = found.files[0].display().to_string();
        return Err(Diagnostic::error(None, "", format!("empty compose file {file}"))
            .with_hint("a compose file needs at least a `services:` key")
            .into());
    }
    let name_loc = root.loc.clone();
    if let Some(map) = root.as_map_mut() {
        // The resolved name replaces whatever `name:` said; it goes first, like compose prints it.
        map.shift_remove("name");
        map.shift_insert(
            0,
            "name".into(),
            yaml::Entry { key_loc: name_loc.clone(), node: Node::string(name.clone(), name_loc) },
        );
    }
    let lookup = |k: &str| environment.get(k).cloned();
    normalize::normalize(&mut root, &lookup)?;
    let disabled_services = profiles::apply(&mut root, &found.profiles);
    consistency::check(&root, &disabled_services)?;

    decode::decode(&mut root)?;
    let (mut json, sources) = sourcemap::to_json(root);
    // Env files are read once, here: a missing required one is a load error, as in compose, and `config`
    // prints their variables.
    let mut env_file_values = IndexMap::new();
    let mut unreadable = Vec::new();
    for (service, value) in json.get("services").and_then(serde_json::Value::as_object).into_iter().flatten() {
        if value.get("env_file").is_none() {
            continue;
        }
        match env_files::read_all(value, &environment, &sources, &format!("services/{service}")) {
            Ok(values) => {
                env_file_values.insert(service.clone(), values);
            }
            Err(e) => unreadable.push(e),
        }
    }
    if !unreadable.is_empty() {
        return Err(Errors(unreadable));
    }
    escape_dollars(&mut json);
    let project = crate::model::from_json_ref(&json).map_err(|e| {
        Diagnostic::error(None, "", format!("internal error: the canonical model does not decode: {e}"))
            .with_hint("this is a bug in flotilla; please report it with the compose file")
    })?;
    Ok(Loaded {
        project,
        json,
        sources,
        files: found.files,
        working_dir: found.working_dir,
        environment,
        env_file_values,
        disabled_services,
        warnings: loader.warnings,
    })
}

/// The last non-empty top-level `name:` of the files, interpolated and normalised.
fn name_from_files(files: &[PathBuf], environment: &Environment, cwd: &Path) -> Result<Option<String>, Diagnostic> {
    let mut name = None;
    for file in files {
        let node = parse_file(file, cwd)?;
        if let Some(n) = node.get("name").filter(|n| n.as_str().is_some_and(|s| !s.is_empty())) {
            name = Some(n.clone());
        }
    }
    let Some(mut node) = name else { return Ok(None) };
    let lookup = |k: &str| environment.get(k).cloned();
    substitute::substitute(&mut node, &lookup)?;
    let written = node.as_str().unwrap_or_default();
    let normalized = discover::normalize_project_name(written);
    Ok((!normalized.is_empty()).then_some(normalized))
}

/// Reads and parses one compose file; messages name it relative to `cwd` when it lies below.
fn parse_file(file: &Path, cwd: &Path) -> Result<Node, Diagnostic> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string().to_lowercase(),
        };
        Diagnostic::error(None, "", format!("failed to read {}: {reason}", file.display()))
            .with_hint("check the path and its permissions")
    })?;
    let name: Arc<str> = Arc::from(display_path(file, cwd));
    yaml::parse(&text, &name)
}

/// Paths in messages are relative to the caller's directory when they are below it, as people typed them.
pub fn display_path(file: &Path, cwd: &Path) -> String {
    file.strip_prefix(cwd).map(|p| p.display().to_string()).unwrap_or_else(|_| file.display().to_string())
}

/// Loads files into one merged tree. Kept as a struct because `include` and `extends` load other files
/// recursively with the same rules.
struct FileLoader {
    environment: Environment,
    warnings: Vec<Diagnostic>,
    /// The caller's directory, for the file names in messages.
    cwd: PathBuf,
}

impl FileLoader {
    /// compose-go's `loadYamlModel`: every file merged in order, then defaults, paths and `environment`.
    fn load_model(
        &mut self,
        files: &[PathBuf],
        working_dir: &Path,
        included: &mut Vec<PathBuf>,
    ) -> Result<Node, Diagnostic> {
        let mut root = None;
        for file in files {
            root = Some(self.load_file(file, working_dir, root, included)?);
        }
        let mut root = root.unwrap_or_else(|| Node::new(Value::Map(Default::default()), empty_location()));
        canonical::set_default_values(&mut root);
        paths::resolve_relative_paths(&mut root, working_dir, self.environment.get("HOME").map(String::as_str))?;
        let lookup = |k: &str| self.environment.get(k).cloned();
        environment::resolve_environment(&mut root, &lookup);
        Ok(root)
    }

    /// compose-go's `loadYamlFile`: one file interpolated, its includes and extends applied, merged into
    /// `base`, validated and made canonical.
    fn load_file(
        &mut self,
        file: &Path,
        working_dir: &Path,
        base: Option<Node>,
        included: &mut Vec<PathBuf>,
    ) -> Result<Node, Diagnostic> {
        let mut node = parse_file(file, &self.cwd)?;
        if node.is_null() {
            return Ok(base.unwrap_or(node));
        }
        if node.as_map().is_none() {
            return Err(Diagnostic::error(Some(node.loc.clone()), "", "top-level object must be a mapping")
                .with_hint("a compose file starts with keys such as `services:`"));
        }
        let environment = self.environment.clone();
        let cwd = self.cwd.clone();
        let lookup = |k: &str| environment.get(k).cloned();
        substitute::substitute(&mut node, &lookup)?;
        canonical::fix_empty_not_null(&mut node);

        included.push(file.to_path_buf());
        let mut nested_warnings = Vec::new();
        include::apply(&mut node, working_dir, &environment, included, &mut |files, dir, env, included| {
            let mut nested = FileLoader { environment: env.clone(), warnings: Vec::new(), cwd: cwd.clone() };
            let result = nested.load_model(files, dir, included);
            nested_warnings.append(&mut nested.warnings);
            result
        })?;
        self.warnings.append(&mut nested_warnings);
        // compose-go loads the file another service extends with interpolation only; `extends` does its
        // own recursion (and cycle detection) over what this returns.
        let mut load_other = |path: &Path| -> Result<Node, Diagnostic> {
            let mut other = parse_file(path, &cwd)?;
            substitute::substitute(&mut other, &lookup)?;
            canonical::fix_empty_not_null(&mut other);
            Ok(other)
        };
        extends::apply_extends_in(&mut node, file, working_dir, &mut load_other)?;

        let mut merged = match base {
            Some(base) => merge::merge(base, node)?,
            None => merge::merge(Node::new(Value::Map(Default::default()), node.loc.clone()), node)?,
        };
        unicity::enforce_unicity(&mut merged)?;
        schema::validate(&merged)?;
        if let Some(map) = merged.as_map_mut()
            && let Some(version) = map.shift_remove("version")
        {
            self.warnings.push(
                Diagnostic::warning(
                    Some(version.key_loc),
                    "version",
                    "the attribute `version` is obsolete, it will be ignored",
                )
                .with_hint("remove it to avoid potential confusion"),
            );
        }
        canonical::canonical(&mut merged)?;
        canonical::omit_empty(&mut merged);
        unicity::enforce_unicity(&mut merged)?;
        Ok(merged)
    }
}

fn empty_location() -> crate::source::Location {
    crate::source::Location { file: Arc::from(""), line: 0, column: 0, end_line: 0 }
}
