//! A service's `env_file`s: reading them (compose-go `types/project.go`, `WithServicesEnvironmentResolved`)
//! and folding them into `environment` for the view `docker compose config` prints.
//!
//! In an env file, `${VAR}` is looked up in the project's variables first, then in the service's own
//! `environment`; a later file overrides an earlier one, and the service's `environment` overrides them all.
//! A missing file is an error unless the entry says `required: false`.

use std::path::Path;

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Errors};
use crate::load::discover::Environment;
use crate::load::dotenv;
use crate::source::{Location, SourceMap};

/// One `env_file` entry in canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvFileRef {
    pub path: String,
    pub required: bool,
    /// `raw` takes lines literally; anything else is the dotenv format.
    pub format: Option<String>,
}

impl EnvFileRef {
    fn from_json(value: &serde_json::Value) -> Option<EnvFileRef> {
        Some(EnvFileRef {
            path: value.get("path")?.as_str()?.to_owned(),
            required: value.get("required").and_then(serde_json::Value::as_bool).unwrap_or(true),
            format: value.get("format").and_then(serde_json::Value::as_str).map(str::to_owned),
        })
    }
}

/// Reads one env file. `Ok(None)` for a missing optional file.
pub fn read(
    file: &EnvFileRef,
    lookup: &dyn Fn(&str) -> Option<String>,
    at: Option<&Location>,
) -> Result<Option<IndexMap<String, String>>, Diagnostic> {
    let path = Path::new(&file.path);
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !file.required => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Diagnostic::error(at.cloned(), "env_file", format!("env file {} not found", file.path))
                .with_hint("create the file, fix the path, or mark the entry `required: false`"));
        }
        Err(e) => return Err(Diagnostic::error(at.cloned(), "env_file", format!("couldn't read {}: {e}", file.path))),
    };
    let parsed = match file.format.as_deref() {
        Some("raw") => dotenv::parse_raw(&text, lookup),
        None | Some("") => dotenv::parse(&text, lookup),
        Some(other) => {
            return Err(Diagnostic::error(at.cloned(), "env_file", format!("unsupported env_file format {other:?}"))
                .with_hint("leave `format` out, or use `raw`"));
        }
    };
    parsed.map(Some).map_err(|e| e.into_diagnostic(&file.path))
}

/// The variables all of a service's env files define, in order, later files winning. `service` is the
/// service's JSON before `$` is escaped.
pub fn read_all(
    service: &serde_json::Value,
    environment: &Environment,
    sources: &SourceMap,
    service_path: &str,
) -> Result<IndexMap<String, String>, Diagnostic> {
    let own: IndexMap<String, Option<String>> = service
        .get("environment")
        .and_then(serde_json::Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned))).collect())
        .unwrap_or_default();
    let lookup = |k: &str| environment.get(k).cloned().or_else(|| own.get(k).cloned().flatten());
    let mut values = IndexMap::new();
    let files = service.get("env_file").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
    for (i, file) in files.iter().enumerate() {
        let Some(file) = EnvFileRef::from_json(file) else { continue };
        let at = sources.get(&format!("{service_path}/env_file/{i}"));
        if let Some(read) = read(&file, &lookup, at)? {
            values.extend(read);
        }
    }
    Ok(values)
}

/// For every service: `environment` = env file variables (`values`, read once by the loader) overridden by
/// the service's own, `env_file` removed. This is the `docker compose config` view; `json` is in canonical
/// form (`$` written `$$`).
pub fn merge_into_environment(json: &mut serde_json::Value, values: &IndexMap<String, IndexMap<String, String>>) {
    let Some(services) = json.get_mut("services").and_then(serde_json::Value::as_object_mut) else { return };
    for (name, service) in services.iter_mut() {
        let Some(object) = service.as_object_mut() else { continue };
        if object.remove("env_file").is_none() {
            continue;
        }
        let own = object.remove("environment");
        let mut merged: serde_json::Map<String, serde_json::Value> = values
            .get(name)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.replace('$', "$$"))))
            .collect();
        if let Some(serde_json::Value::Object(own)) = own {
            merged.extend(own);
        }
        if !merged.is_empty() {
            object.insert("environment".into(), serde_json::Value::Object(merged));
        }
    }
}

/// For every service: `labels` = the `label_file`s' labels (later files winning) overridden by the
/// service's own, `label_file` removed (compose-go `WithServicesLabelsResolved`). In a label file,
/// `${VAR}` is looked up in the labels read before it, never in the project's variables. `json` is in
/// canonical form, so the files' `$` are written `$$`.
pub fn merge_label_files(json: &mut serde_json::Value, sources: &SourceMap) -> Result<(), Errors> {
    let Some(services) = json.get_mut("services").and_then(serde_json::Value::as_object_mut) else { return Ok(()) };
    let mut errors = Vec::new();
    for (name, service) in services.iter_mut() {
        let Some(object) = service.as_object_mut() else { continue };
        let Some(files) = object.remove("label_file") else { continue };
        let mut labels: IndexMap<String, String> = IndexMap::new();
        for (i, file) in files.as_array().into_iter().flatten().enumerate() {
            let Some(path) = file.as_str() else { continue };
            let at = sources.get(&format!("services/{name}/label_file/{i}"));
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) => {
                    let message = if e.kind() == std::io::ErrorKind::NotFound {
                        format!("label file {path} not found")
                    } else {
                        format!("couldn't read {path}: {e}")
                    };
                    errors.push(
                        Diagnostic::error(at.cloned(), "label_file", message)
                            .with_hint("create the file or fix the path"),
                    );
                    continue;
                }
            };
            let previous = labels.clone();
            let lookup = |k: &str| previous.get(k).cloned();
            match dotenv::parse(&text, &lookup) {
                Ok(read) => labels.extend(read),
                Err(e) => errors.push(e.into_diagnostic(path)),
            }
        }
        let mut merged: serde_json::Map<String, serde_json::Value> =
            labels.into_iter().map(|(k, v)| (k, serde_json::Value::String(v.replace('$', "$$")))).collect();
        if let Some(serde_json::Value::Object(own)) = object.remove("labels") {
            merged.extend(own);
        }
        if !merged.is_empty() {
            object.insert("labels".into(), serde_json::Value::Object(merged));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Errors(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_files_are_merged_under_the_service_labels() {
        let dir = std::env::temp_dir().join(format!("flotilla-label-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("a.labels");
        let second = dir.join("b.labels");
        std::fs::write(&first, "A=1\nB=2\n").unwrap();
        std::fs::write(&second, "B=${A}0\nC=3\n").unwrap();
        let mut json = json!({"services": {"web": {
            "label_file": [first.display().to_string(), second.display().to_string()],
            "labels": {"C": "own"},
        }}});
        merge_label_files(&mut json, &SourceMap::default()).unwrap();
        assert_eq!(json["services"]["web"], json!({"labels": {"A": "1", "B": "10", "C": "own"}}));
        std::fs::remove_dir_all(&dir).unwrap();

        let mut json = json!({"services": {"web": {"label_file": ["/nonexistent/l"]}}});
        let e = merge_label_files(&mut json, &SourceMap::default()).unwrap_err();
        assert_eq!(e.0[0].message, "label file /nonexistent/l not found");
    }
}
