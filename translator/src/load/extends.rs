//! `extends`: a service built on another one, from the same file or from another file.
//!
//! Follows compose-go `loader/extends.go` (resolution, recursion, cycle detection and its messages),
//! `override/extends.go` (the merge, with the service rules of [`super::merge`]) and the part of
//! `paths/resolve.go` + `paths/extends.go` that rebases the relative paths of a service taken from a file
//! in another directory.
//!
//! What compose does, and so what we do:
//! - every key of the base service is inherited and merged by the usual rules, `depends_on`, `links`,
//!   `volumes_from` and `network_mode: service:...` included: compose-spec lists them as restrictions,
//!   compose-go does not enforce them, and a reference to a service the extending file lacks is caught
//!   later by the consistency check ("depends on undefined service");
//! - `!reset` / `!override` on the extending service apply to the base service, and stay on the result
//!   so the file-level merge applies them to earlier files too (see [`super::merge::merge_service`]);
//! - `extends.file` is relative to the project's working directory (not to the file that names it),
//!   and the paths of a service loaded from it are rebased onto the directory of that file, relative to
//!   the working directory; a nested `extends.file` is rebased the same way, so every file reference
//!   stays relative to the working directory;
//! - a service extended from another file is resolved inside that file first; a service found in the
//!   same file is resolved once and the result reused;
//! - a base service that is null leaves the extending service as written (with its `extends` key).
//!
//! Deliberately not ported: remote `extends.file` (git or OCI references go to the local loader, which
//! cannot read them) and the `extends` listener events compose-go emits for telemetry. compose-go loads
//! the other file through its whole per-file pipeline (so its services are in the canonical form); we
//! take whatever `load_file` returns, and rebase both the short and the long syntax.

use std::path::{Path, PathBuf};

use super::merge::merge_service;
use super::tree::as_string;
use super::yaml::{Map, Node, Tag, Value};
use crate::diag::Diagnostic;

/// Deeper than any sensible chain; stops symlinked directories from making an endless one.
const MAX_DEPTH: usize = 200;

/// Resolves every `extends` in `root` (one compose file, interpolated), taking `extends.file` relative to
/// the directory of `file`. Equivalent to [`apply_extends_in`] with that directory as working directory,
/// which is what compose does for the first compose file of a project.
pub fn apply_extends(
    root: &mut Node,
    file: &Path,
    load_file: &mut dyn FnMut(&Path) -> Result<Node, Diagnostic>,
) -> Result<(), Diagnostic> {
    let working_dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    apply_extends_in(root, file, &working_dir, load_file)
}

/// Resolves every `extends` in `root`, the compose file `file`, with `extends.file` and the rebased paths
/// relative to the project's `working_dir`, as compose-go does for every file of a project.
/// `load_file` reads, parses and interpolates another compose file.
pub fn apply_extends_in(
    root: &mut Node,
    file: &Path,
    working_dir: &Path,
    load_file: &mut dyn FnMut(&Path) -> Result<Node, Diagnostic>,
) -> Result<(), Diagnostic> {
    let Some(services) = root.get_mut("services") else { return Ok(()) };
    let loc = services.loc.clone();
    let Value::Map(services) = &mut services.value else {
        return Err(Diagnostic::error(Some(loc), "services", "services must be a mapping")
            .with_hint("write `services:` followed by one indented entry per service"));
    };
    let mut resolver = Resolver { file: file.display().to_string(), working_dir, load_file };
    let names: Vec<String> = services.keys().cloned().collect();
    for name in names {
        resolver.resolve(&name, services, &[], 0)?;
    }
    Ok(())
}

struct Resolver<'a> {
    /// The file being loaded, as compose names it in messages. compose-go keeps this name while it
    /// recurses into other files, so same-file references there are reported under it too.
    file: String,
    working_dir: &'a Path,
    load_file: &'a mut dyn FnMut(&Path) -> Result<Node, Diagnostic>,
}

/// The chain of (file, service) pairs being extended, to detect cycles.
type Chain = [(String, String)];

impl Resolver<'_> {
    /// Resolves `name` in `services` and replaces it with the merged service.
    fn resolve(&mut self, name: &str, services: &mut Map, chain: &Chain, depth: usize) -> Result<(), Diagnostic> {
        let Some(entry) = services.get(name) else { return Ok(()) };
        let service = &entry.node;
        // A `!reset` service is gone before compose-go looks for `extends`.
        if service.is_null() || service.tag == Tag::Reset {
            return Ok(());
        }
        let key = format!("services.{name}");
        let Value::Map(map) = &service.value else {
            return Err(Diagnostic::error(Some(service.loc.clone()), key.clone(), format!("{key} must be a mapping"))
                .with_hint("a service is a mapping of keys such as `image:`"));
        };
        let Some(extends) = map.get("extends").map(|e| e.node.clone()) else { return Ok(()) };
        let key = format!("{key}.extends");
        if depth >= MAX_DEPTH {
            return Err(Diagnostic::error(Some(extends.loc.clone()), key, "extends chain is too deep")
                .with_hint(format!("a service extends a service that extends another, {MAX_DEPTH} times")));
        }
        let (reference, file) = reference(&extends, name, &key)?;

        let base = match &file {
            Some(file) => {
                let mut other = self.services_from_file(name, &reference, file, &extends, &key)?;
                let chain = add(chain, file, name, &extends, &key)?;
                self.resolve(&reference, &mut other, &chain, depth + 1)?;
                other.get(&reference).map(|e| e.node.clone())
            }
            None => {
                if services.get(&reference).is_none_or(|e| e.node.tag == Tag::Reset) {
                    return Err(Diagnostic::error(
                        Some(extends.loc.clone()),
                        key,
                        format!("cannot extend service {name:?} in {}: service {reference:?} not found", self.file),
                    )
                    .with_hint("name a service defined in this file, or add `file:` to take it from another"));
                }
                let chain = add(chain, &self.file.clone(), name, &extends, &key)?;
                self.resolve(&reference, services, &chain, depth + 1)?;
                services.get(&reference).map(|e| e.node.clone())
            }
        };
        let Some(base) = base.filter(|b| !b.is_null()) else { return Ok(()) };
        let Some(entry) = services.get_mut(name) else { return Ok(()) };
        let service = std::mem::replace(&mut entry.node, Node::new(Value::Null, entry.key_loc.clone()));
        // A tag on the service itself concerns earlier files; the file-level merge still needs it.
        let tag = service.tag;
        let mut merged = merge_service(base, service)?;
        merged.tag = tag;
        if let Some(map) = merged.as_map_mut() {
            map.shift_remove("extends");
        }
        entry.node = merged;
        Ok(())
    }

    /// compose-go's `getExtendsBaseFromFile`: the services of `file`, with their relative paths rebased.
    fn services_from_file(
        &mut self,
        name: &str,
        reference: &str,
        file: &str,
        extends: &Node,
        key: &str,
    ) -> Result<Map, Diagnostic> {
        let local = self.working_dir.join(file);
        let root = (self.load_file)(&local).map_err(|mut e| {
            // A file that cannot be read has no position of its own: point at the `extends` that names it.
            if e.location.is_none() {
                let at = extends.get("file").unwrap_or(extends);
                e.location = Some(at.loc.clone());
                e.key = format!("{key}.file");
            }
            e
        })?;
        let fail = |message: String| {
            Diagnostic::error(Some(extends.loc.clone()), key.to_owned(), message)
                .with_hint("`extends.file` names a compose file with the service under `services:`")
        };
        let local = local.display();
        let Some(services) = root.get("services") else {
            return Err(fail(format!("cannot extend service {name:?} in {local}: no services section")));
        };
        let Value::Map(services) = &services.value else {
            return Err(fail(format!("cannot extend service {name:?} in {local}: services must be a mapping")));
        };
        if services.get(reference).is_none_or(|e| e.node.tag == Tag::Reset) {
            return Err(fail(format!(
                "cannot extend service {name:?} in {}: service {reference:?} not found in {file}",
                self.file
            )));
        }
        let mut services = services.clone();
        let dir = Path::new(file).parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        for entry in services.values_mut() {
            rebase_service(&mut entry.node, &dir)?;
        }
        Ok(services)
    }
}

/// The service and file an `extends` names: `extends: base` or `extends: {service: base, file: f}`.
/// A value of another type names the service `""`, which is then not found, as in compose-go.
fn reference(extends: &Node, name: &str, key: &str) -> Result<(String, Option<String>), Diagnostic> {
    match &extends.value {
        Value::Map(map) => {
            let Some(service) = map.get("service").and_then(|e| as_string(&e.node)) else {
                return Err(Diagnostic::error(
                    Some(extends.loc.clone()),
                    key.to_owned(),
                    format!("extends.{name}.service is required"),
                )
                .with_hint("add `service:`, the name of the service to extend"));
            };
            let file = match map.get("file").map(|e| &e.node).filter(|n| !n.is_null()) {
                None => None,
                Some(node) => match as_string(node) {
                    Some(f) => Some(f.to_owned()),
                    // compose-go crashes on this; the schema would refuse it later anyway.
                    None => {
                        return Err(Diagnostic::error(
                            Some(node.loc.clone()),
                            format!("{key}.file"),
                            "must be a string",
                        )
                        .with_hint("`file:` is the path of a compose file"));
                    }
                },
            };
            Ok((service.to_owned(), file))
        }
        _ => Ok((as_string(extends).unwrap_or_default().to_owned(), None)),
    }
}

/// compose-go's `cycleTracker.Add`: the chain extended by (file, service), or the "Circular reference"
/// error when the pair is already in it.
fn add(chain: &Chain, file: &str, service: &str, at: &Node, key: &str) -> Result<Vec<(String, String)>, Diagnostic> {
    let pair = (file.to_owned(), service.to_owned());
    if chain.contains(&pair) {
        let mut lines = vec!["Circular reference:".to_owned()];
        for (i, (f, s)) in chain.iter().chain(std::iter::once(&pair)).enumerate() {
            lines.push(if i == 0 { format!("  {s} in {f}") } else { format!("  extends {s} in {f}") });
        }
        return Err(Diagnostic::error(Some(at.loc.clone()), key.to_owned(), lines.join("\n"))
            .with_hint("break the cycle: a service cannot extend itself, directly or through others"));
    }
    let mut chain = chain.to_vec();
    chain.push(pair);
    Ok(chain)
}

/// compose-go's `ResolveRelativePaths` for the keys of a service that hold host paths, rebasing the
/// relative ones onto `dir`. Both syntaxes are handled because the service may not be canonical yet.
fn rebase_service(service: &mut Node, dir: &Path) -> Result<(), Diagnostic> {
    let Some(map) = service.as_map_mut() else { return Ok(()) };
    if let Some(build) = map.get_mut("build").map(|e| &mut e.node) {
        match &mut build.value {
            Value::Scalar { .. } => rebase_with(build, dir, rebase_context),
            Value::Map(build) => {
                if let Some(context) = build.get_mut("context") {
                    rebase_with(&mut context.node, dir, rebase_context);
                }
                if let Some(contexts) = build.get_mut("additional_contexts") {
                    rebase_entries(&mut contexts.node, dir, rebase_context);
                }
                if let Some(ssh) = build.get_mut("ssh") {
                    rebase_entries(&mut ssh.node, dir, rebase_unix);
                }
            }
            _ => {}
        }
    }
    for key in ["env_file", "label_file"] {
        let Some(node) = map.get_mut(key).map(|e| &mut e.node) else { continue };
        match &mut node.value {
            Value::Seq(items) => {
                for item in items {
                    match item.as_map_mut().and_then(|m| m.get_mut("path")) {
                        Some(path) => rebase_with(&mut path.node, dir, rebase_abs),
                        None => rebase_with(item, dir, rebase_abs),
                    }
                }
            }
            _ => rebase_with(node, dir, rebase_abs),
        }
    }
    if let Some(file) = map.get_mut("extends").and_then(|e| e.node.as_map_mut()).and_then(|m| m.get_mut("file")) {
        rebase_with(&mut file.node, dir, rebase_abs);
    }
    if let Some(Value::Seq(watches)) = map
        .get_mut("develop")
        .and_then(|e| e.node.as_map_mut())
        .and_then(|m| m.get_mut("watch"))
        .map(|e| &mut e.node.value)
    {
        for watch in watches {
            if let Some(path) = watch.as_map_mut().and_then(|m| m.get_mut("path")) {
                rebase_with(&mut path.node, dir, rebase_abs);
            }
        }
    }
    if let Some(Value::Seq(volumes)) = map.get_mut("volumes").map(|e| &mut e.node.value) {
        for volume in volumes {
            rebase_volume(volume, dir)?;
        }
    }
    Ok(())
}

/// Rebases a string node with `rule`; other nodes are left for the schema to refuse.
fn rebase_with(node: &mut Node, dir: &Path, rule: fn(&str, &Path) -> Option<String>) {
    if let Some(rebased) = as_string(node).and_then(|p| rule(p, dir)) {
        *node = Node::string(rebased, node.loc.clone());
    }
}

/// A `NAME: path` mapping or a `NAME=path` list (`additional_contexts`, `ssh`).
fn rebase_entries(node: &mut Node, dir: &Path, rule: fn(&str, &Path) -> Option<String>) {
    match &mut node.value {
        Value::Map(map) => map.values_mut().for_each(|e| rebase_with(&mut e.node, dir, rule)),
        Value::Seq(items) => {
            for item in items {
                let Some((name, path)) = as_string(item).and_then(|s| s.split_once('=')) else { continue };
                if let Some(rebased) = rule(path, dir) {
                    *item = Node::string(format!("{name}={rebased}"), item.loc.clone());
                }
            }
        }
        _ => {}
    }
}

/// A service volume: a bind mount's source, in the long syntax or in `SOURCE:TARGET[:MODE]`.
fn rebase_volume(volume: &mut Node, dir: &Path) -> Result<(), Diagnostic> {
    if let Some(map) = volume.as_map_mut() {
        if map.get("type").and_then(|e| as_string(&e.node)) != Some("bind") {
            return Ok(());
        }
        return match map.get_mut("source") {
            Some(source) => {
                rebase_with(&mut source.node, dir, rebase_unix);
                Ok(())
            }
            None => Err(Diagnostic::error(
                Some(volume.loc.clone()),
                "volumes",
                "invalid mount config for type \"bind\": field Source must not be empty",
            )
            .with_hint("add `source:`, the host path to mount")),
        };
    }
    let Some(spec) = as_string(volume) else { return Ok(()) };
    // A short-syntax source is a host path when it starts with `.`; `/`, `~` and drives need nothing.
    let Some((source, rest)) = spec.split_once(':').filter(|(s, _)| s.starts_with('.')) else { return Ok(()) };
    let Some(mut rebased) = rebase_unix(source, dir) else { return Ok(()) };
    // A cleaned relative path loses its `./`, which would turn the bind mount into a named volume.
    if !rebased.starts_with(['.', '/']) {
        rebased.insert_str(0, "./");
    }
    *volume = Node::string(format!("{rebased}:{rest}"), volume.loc.clone());
    Ok(())
}

/// compose-go's `absPath`: a relative path joined to `dir`. `~` is left for the final path resolution,
/// which expands it the same way.
fn rebase_abs(path: &str, dir: &Path) -> Option<String> {
    if path.is_empty() || path.starts_with('~') || Path::new(path).is_absolute() {
        return None;
    }
    Some(clean(&dir.join(path)))
}

/// compose-go's `absContextPath`: URLs, git references and `service:` contexts are not paths.
fn rebase_context(path: &str, dir: &Path) -> Option<String> {
    const REMOTE: [&str; 6] = ["https://", "http://", "git://", "ssh://", "github.com/", "git@"];
    if path.contains("://") || path.starts_with("service:") || REMOTE.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    rebase_abs(path, dir)
}

/// compose-go's `maybeUnixPath`: Windows absolute paths are absolute too.
fn rebase_unix(path: &str, dir: &Path) -> Option<String> {
    let bytes = path.as_bytes();
    let windows_abs = path.starts_with("\\\\")
        || (bytes.len() >= 3 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' && matches!(bytes[2], b'\\' | b'/'));
    if windows_abs {
        return None;
    }
    rebase_abs(path, dir)
}

/// Go's `filepath.Clean`, lexically: `.` segments dropped, `..` applied where it can be.
fn clean(path: &Path) -> String {
    let text = path.to_string_lossy();
    let rooted = text.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::load::merge::merge;
    use crate::load::yaml::parse;

    fn yaml(name: &str, text: &str) -> Node {
        parse(text, &Arc::from(name)).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Loads `main` from a set of in-memory files (paths relative to the working directory `/p`),
    /// resolves its `extends`, and resolves the tags as the file-level merge would.
    fn load(files: &[(&str, &str)], main: &str) -> Result<serde_json::Value, Diagnostic> {
        let files: HashMap<PathBuf, &str> = files.iter().map(|(p, t)| (Path::new("/p").join(p), *t)).collect();
        let main_path = Path::new("/p").join(main);
        let mut root = yaml(main, files[&main_path]);
        let mut load_file = |path: &Path| -> Result<Node, Diagnostic> {
            let text = files.get(path).ok_or_else(|| {
                Diagnostic::error(None, "", format!("open {}: no such file or directory", path.display()))
            })?;
            Ok(yaml(&path.display().to_string(), text))
        };
        apply_extends_in(&mut root, &main_path, Path::new("/p"), &mut load_file)?;
        let empty = Node::new(Value::Map(Map::new()), root.loc.clone());
        Ok(merge(empty, root)?.to_json())
    }

    fn service(files: &[(&str, &str)], main: &str, name: &str) -> serde_json::Value {
        let all = load(files, main).unwrap_or_else(|e| panic!("{e}"));
        all["services"][name].clone()
    }

    fn error(files: &[(&str, &str)], main: &str) -> String {
        load(files, main).expect_err("should fail").message
    }

    // compose-go loader/testdata/extends, as far as our tests use them.
    const BASE: &str = "services:
  base:
    image: base

  another:
    extends: base

  with-port:
    ports:
      - 8000:8000

  withUlimits:
    image: test
    ulimits:
      nproc: 65535
      nofile:
        soft: 20000
        hard: 40000

  with-build:
    extends:
      file: sibling.yaml
      service: test

  nil: #left intentionally empty
";
    const SIBLING: &str = "services:\n  test:\n    build: .\n";

    fn testdata(main: &'static str) -> Vec<(&'static str, &'static str)> {
        vec![
            ("compose.yaml", main),
            ("testdata/extends/base.yaml", BASE),
            ("testdata/extends/sibling.yaml", SIBLING),
            (
                "testdata/extends/nested.yaml",
                "services:\n  with-build:\n    extends:\n      file: sibling.yaml\n      service: test\n",
            ),
            ("testdata/extends/ports.yaml", "services:\n  test:\n    image: test\n    ports:\n      - 8080:8080"),
            (
                "testdata/extends/reset.yaml",
                "services:\n  init:\n    image: alpine:latest\n    command: \"sleep infinity\"\n  base:\n    extends: { service: init }\n    command: !reset",
            ),
            (
                "testdata/extends/depends_on.yaml",
                "services:\n  with_depends_on:\n    image: foo\n    depends_on:\n      - zot\n  with_volumes_from:\n    image: foo\n    volumes_from:\n      - zot\n  with_ipc:\n    image: foo\n    ipc: \"service:zot\"\n  zot:\n    image: hidden\n",
            ),
        ]
    }

    #[test]
    fn extends_from_another_file_keeps_local_keys() {
        let files = testdata(
            "services:
  test1:
    extends:
      file: testdata/extends/base.yaml
      service: base
    hostname: test1
  test3:
    extends:
      file: testdata/extends/base.yaml
      service: another
    hostname: test3
",
        );
        assert_eq!(service(&files, "compose.yaml", "test1"), serde_json::json!({"image": "base", "hostname": "test1"}));
        assert_eq!(service(&files, "compose.yaml", "test3"), serde_json::json!({"image": "base", "hostname": "test3"}));
    }

    #[test]
    fn extends_port_ulimits_and_nil() {
        let files = testdata(
            "services:
  test:
    image: test
    extends: {file: testdata/extends/base.yaml, service: with-port}
  limits:
    extends: {file: testdata/extends/base.yaml, service: withUlimits}
  nil:
    image: test
    extends: {file: testdata/extends/base.yaml, service: nil}
",
        );
        assert_eq!(service(&files, "compose.yaml", "test")["ports"], serde_json::json!(["8000:8000"]));
        assert_eq!(service(&files, "compose.yaml", "limits")["ulimits"]["nproc"], 65535);
        // A null base leaves the service as written.
        assert_eq!(
            service(&files, "compose.yaml", "nil"),
            serde_json::json!({"image": "test", "extends": {"file": "testdata/extends/base.yaml", "service": "nil"}})
        );
    }

    #[test]
    fn relative_paths_are_rebased_onto_the_extended_file() {
        let files =
            testdata("services:\n  test:\n    extends: {file: testdata/extends/base.yaml, service: with-build}\n");
        assert_eq!(service(&files, "compose.yaml", "test"), serde_json::json!({"build": "testdata/extends"}));
        let files = testdata(
            "services:\n  with-build:\n    extends: {file: testdata/extends/nested.yaml, service: with-build}\n",
        );
        assert_eq!(service(&files, "compose.yaml", "with-build"), serde_json::json!({"build": "testdata/extends"}));
    }

    #[test]
    fn extends_in_the_same_file_of_another_directory() {
        let files = [
            (
                "sub/compose.yaml",
                "services:\n  base:\n    build:\n      context: ..\n  service:\n    extends: base\n    build:\n      target: target\n",
            ),
            (
                "compose.yaml",
                "services:\n  out-base:\n    extends: {file: sub/compose.yaml, service: base}\n  out-service:\n    extends: {file: sub/compose.yaml, service: service}\n",
            ),
        ];
        assert_eq!(service(&files, "compose.yaml", "out-base"), serde_json::json!({"build": {"context": "."}}));
        assert_eq!(
            service(&files, "compose.yaml", "out-service"),
            serde_json::json!({"build": {"context": ".", "target": "target"}})
        );
    }

    #[test]
    fn rebases_every_kind_of_path() {
        let files = [
            (
                "sub/other.yaml",
                "services:
  o:
    build: {context: ctx, additional_contexts: {foo: ./foo, bar: \"docker-image://x\"}, ssh: [default, \"k=./id\"]}
    env_file: [a.env, {path: b.env, required: false}, /abs.env]
    label_file: l.txt
    volumes: [\"./data:/data\", \"named:/n\", \"/abs:/abs\", {type: bind, source: ./x, target: /x}, \"~/h:/h\", \"..:/up\"]
    develop: {watch: [{path: src, action: sync}]}
    extends: {file: deeper.yaml, service: d}
  git:
    build: https://github.com/docker/compose.git
",
            ),
            ("sub/deeper.yaml", "services:\n  d:\n    image: deep\n    volumes: [\"./deep:/deep\"]\n"),
            ("compose.yaml", "services:\n  x:\n    extends: {file: sub/other.yaml, service: o}\n  g:\n    extends: {file: sub/other.yaml, service: git}\n"),
        ];
        assert_eq!(
            service(&files, "compose.yaml", "x"),
            serde_json::json!({
                "image": "deep",
                "volumes": ["./sub/deep:/deep", "./sub/data:/data", "named:/n", "/abs:/abs", {"type": "bind", "source": "sub/x", "target": "/x"}, "~/h:/h", ".:/up"],
                "build": {"context": "sub/ctx", "additional_contexts": {"foo": "sub/foo", "bar": "docker-image://x"}, "ssh": ["default", "k=sub/id"]},
                "env_file": ["sub/a.env", {"path": "sub/b.env", "required": false}, "/abs.env"],
                "label_file": "sub/l.txt",
                "develop": {"watch": [{"path": "sub/src", "action": "sync"}]},
            })
        );
        assert_eq!(
            service(&files, "compose.yaml", "g"),
            serde_json::json!({"build": "https://github.com/docker/compose.git"})
        );
    }

    #[test]
    fn extends_file_is_relative_to_the_working_directory() {
        let files = [
            ("compose.yaml", "services:\n  a:\n    image: a\n"),
            ("o/over.yaml", "services:\n  b:\n    extends: {file: base.yaml, service: x}\n"),
            ("base.yaml", "services:\n  x:\n    image: ROOT\n"),
            ("o/base.yaml", "services:\n  x:\n    image: SUB\n"),
        ];
        assert_eq!(service(&files, "o/over.yaml", "b"), serde_json::json!({"image": "ROOT"}));
    }

    #[test]
    fn reset_in_the_extending_service_and_in_the_extended_file() {
        let files = testdata("services:\n  test:\n    extends: {file: testdata/extends/reset.yaml, service: base}\n");
        assert_eq!(service(&files, "compose.yaml", "test"), serde_json::json!({"image": "alpine:latest"}));
        let files = [(
            "compose.yaml",
            "services:\n  base:\n    image: b\n    ports: [\"90:90\"]\n    depends_on: [db]\n  web:\n    extends: base\n    ports: !reset []\n  db: {image: pg}\n",
        )];
        assert_eq!(service(&files, "compose.yaml", "web"), serde_json::json!({"image": "b", "depends_on": ["db"]}));
    }

    #[test]
    fn tags_on_an_extending_service_reach_earlier_files() {
        let earlier =
            yaml("a.yaml", "services:\n  web:\n    image: x\n    environment: {A: \"1\"}\n    labels: {l1: a}\n");
        let mut root = yaml(
            "b.yaml",
            "services:\n  base:\n    image: y\n    environment: {B: \"2\"}\n  web:\n    extends: base\n    environment: !override {C: \"3\"}\n    labels:\n      l1: !reset\n",
        );
        let mut no_files = |p: &Path| -> Result<Node, Diagnostic> {
            Err(Diagnostic::error(None, "", format!("unexpected read of {}", p.display())))
        };
        apply_extends_in(&mut root, Path::new("/p/b.yaml"), Path::new("/p"), &mut no_files).unwrap();
        let all = merge(earlier, root).unwrap().to_json();
        // As `docker compose config` shows it: `environment` replaced, the label gone.
        assert_eq!(
            all["services"]["web"],
            serde_json::json!({"image": "y", "environment": {"C": "3"}, "labels": null})
        );
    }

    #[test]
    fn an_override_service_with_extends_replaces_the_earlier_one() {
        let earlier = yaml("a.yaml", "services:\n  web:\n    image: x\n    environment: {A: \"1\"}\n");
        let mut root = yaml(
            "b.yaml",
            "services:\n  base:\n    image: y\n    user: u\n  web: !override\n    extends: base\n    cpus: 1.50\n  gone: !reset {}\n  uses-gone:\n    extends: gone\n",
        );
        let mut no_files = |p: &Path| -> Result<Node, Diagnostic> {
            Err(Diagnostic::error(None, "", format!("unexpected read of {}", p.display())))
        };
        let e = apply_extends_in(&mut root, Path::new("/p/b.yaml"), Path::new("/p"), &mut no_files).unwrap_err();
        assert_eq!(e.message, "cannot extend service \"uses-gone\" in /p/b.yaml: service \"gone\" not found");
        root.get_mut("services").and_then(|s| s.as_map_mut()).map(|m| m.shift_remove("uses-gone"));
        apply_extends_in(&mut root, Path::new("/p/b.yaml"), Path::new("/p"), &mut no_files).unwrap();
        let all = merge(earlier, root).unwrap().to_json();
        assert_eq!(all["services"]["web"], serde_json::json!({"image": "y", "user": "u", "cpus": 1.5}));
    }

    #[test]
    fn override_replaces_an_inherited_key() {
        let files = [(
            "compose.yaml",
            "services:\n  service_a:\n    image: a\n    depends_on:\n      - service_c\n  service_b:\n    extends: service_a\n    depends_on: !override\n      - service_a\n  service_c:\n    image: c\n",
        )];
        assert_eq!(service(&files, "compose.yaml", "service_b")["depends_on"], serde_json::json!(["service_a"]));
    }

    #[test]
    fn keys_naming_other_services_are_inherited() {
        let files = testdata(
            "services:\n  bar:\n    extends: {file: ./testdata/extends/depends_on.yaml, service: with_depends_on}\n  baz:\n    extends: {file: ./testdata/extends/depends_on.yaml, service: with_volumes_from}\n  ipc:\n    extends: {file: ./testdata/extends/depends_on.yaml, service: with_ipc}\n",
        );
        assert_eq!(service(&files, "compose.yaml", "bar"), serde_json::json!({"image": "foo", "depends_on": ["zot"]}));
        assert_eq!(
            service(&files, "compose.yaml", "baz"),
            serde_json::json!({"image": "foo", "volumes_from": ["zot"]})
        );
        assert_eq!(service(&files, "compose.yaml", "ipc")["ipc"], "service:zot");
    }

    #[test]
    fn chains_in_one_file() {
        let files = [(
            "compose.yaml",
            "services:\n  foo:\n    image: busybox\n    extends: bar\n  bar:\n    image: alpine\n    command: echo\n    extends: wee\n  wee:\n    extends: last\n    command: echo\n  last:\n    image: python\n",
        )];
        assert_eq!(service(&files, "compose.yaml", "foo"), serde_json::json!({"image": "busybox", "command": "echo"}));
        assert_eq!(service(&files, "compose.yaml", "wee"), serde_json::json!({"image": "python", "command": "echo"}));
    }

    #[test]
    fn cycles_are_reported_like_compose() {
        let files = [("compose.yaml", "services:\n  a:\n    extends: b\n  b:\n    extends: c\n  c:\n    extends: a\n")];
        assert_eq!(
            error(&files, "compose.yaml"),
            "Circular reference:\n  a in /p/compose.yaml\n  extends b in /p/compose.yaml\n  extends c in /p/compose.yaml\n  extends a in /p/compose.yaml"
        );
        let files = [("self.yaml", "services:\n  a:\n    extends: a\n")];
        assert_eq!(error(&files, "self.yaml"), "Circular reference:\n  a in /p/self.yaml\n  extends a in /p/self.yaml");
        let files = [
            ("x.yaml", "services:\n  a:\n    extends: {file: other.yaml, service: b}\n"),
            ("other.yaml", "services:\n  b:\n    extends: {file: x.yaml, service: a}\n"),
        ];
        assert_eq!(
            error(&files, "x.yaml"),
            "Circular reference:\n  a in other.yaml\n  extends b in x.yaml\n  extends a in other.yaml"
        );
    }

    #[test]
    fn missing_services_and_files() {
        let files = [("miss.yaml", "services:\n  a:\n    extends: zz\n")];
        assert_eq!(error(&files, "miss.yaml"), "cannot extend service \"a\" in /p/miss.yaml: service \"zz\" not found");
        let files = [
            ("m.yaml", "services:\n  a:\n    extends: {file: other.yaml, service: zz}\n"),
            ("other.yaml", "services:\n  b: {}\n"),
        ];
        assert_eq!(
            error(&files, "m.yaml"),
            "cannot extend service \"a\" in /p/m.yaml: service \"zz\" not found in other.yaml"
        );
        let files =
            [("m.yaml", "services:\n  a:\n    extends: {file: other.yaml}\n"), ("other.yaml", "services: {}\n")];
        assert_eq!(error(&files, "m.yaml"), "extends.a.service is required");
        let files = [("m.yaml", "services:\n  a:\n    extends: {file: nope.yaml, service: b}\n")];
        assert_eq!(error(&files, "m.yaml"), "open /p/nope.yaml: no such file or directory");
        let files =
            [("m.yaml", "services:\n  a:\n    extends: {file: other.yaml, service: b}\n"), ("other.yaml", "name: x\n")];
        assert_eq!(error(&files, "m.yaml"), "cannot extend service \"a\" in /p/other.yaml: no services section");
        let files = [("m.yaml", "services: [a]\n")];
        assert_eq!(error(&files, "m.yaml"), "services must be a mapping");
        let files = [("m.yaml", "services:\n  a: [x]\n")];
        assert_eq!(error(&files, "m.yaml"), "services.a must be a mapping");
    }

    #[test]
    fn long_chains_stop() {
        // Every file extends a service of a file one directory further down: no cycle, no end.
        let mut files = Vec::new();
        for i in 0..210 {
            let text = "services:\n  s:\n    extends: {file: d/f.yaml, service: s}\n".to_owned();
            files.push((format!("{}f.yaml", "d/".repeat(i)), text));
        }
        let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        assert_eq!(error(&files, "f.yaml"), "extends chain is too deep");
    }

    #[test]
    fn cleans_paths_like_go() {
        assert_eq!(clean(Path::new("sub/../x")), "x");
        assert_eq!(clean(Path::new("./a/./b/")), "a/b");
        assert_eq!(clean(Path::new("../../a")), "../../a");
        assert_eq!(clean(Path::new("/../a")), "/a");
        assert_eq!(clean(Path::new("sub/..")), ".");
    }
}
