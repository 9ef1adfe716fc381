//! Relative paths made absolute against the project directory, and `~` expanded; follows compose-go
//! `paths/resolve.go`, `paths/home.go`, `paths/unix.go`, `paths/context.go`, `paths/extends.go` and
//! the `IsWindowsAbs` test of `paths/windows_path.go`. Linux semantics only.
//!
//! What compose does, and what surprises:
//! - a relative path is joined to the working directory and cleaned (`./a/../b` → `/proj/b`), but an
//!   absolute one is kept exactly as written (`/a//b/../c` stays);
//! - `~` is replaced by `$HOME` followed by the rest of the text, so `~user/x` is `$HOME/user/x`;
//! - bind mount sources, secret/config `file`s, `build.ssh` keys and local-driver `device`s also count
//!   Windows paths (`C:\x`, `\\host\share`) as absolute, so they are left alone;
//! - build contexts that are URLs, git references or `service:` references are left alone;
//! - `develop.watch.*.path` has its first symbolic link resolved, which reads the file system.
//!
//! compose-go also lists `include.path`, `include.project_directory` and `include.env_file`, but
//! those patterns never match an include entry (they lack the list level), so include paths are
//! resolved by the include loader instead; we keep the same patterns for the same result.

use super::tree::{Path as TreePath, as_string, go_type, str_node};
use super::yaml::{Node, Value};
use crate::diag::Diagnostic;

/// A resolver rewrites the node at a matched path.
type Resolver = fn(&Resolve, &mut Node, &TreePath) -> Result<(), Diagnostic>;

const RESOLVERS: &[(&str, Resolver)] = &[
    ("services.*.build.context", Resolve::context_path),
    ("services.*.build.additional_contexts.*", Resolve::context_path),
    ("services.*.build.ssh.*", Resolve::maybe_unix_path),
    ("services.*.env_file.*.path", Resolve::abs_path),
    ("services.*.label_file.*", Resolve::abs_path),
    ("services.*.extends.file", Resolve::extends_path),
    ("services.*.develop.watch.*.path", Resolve::symbolic_link),
    ("services.*.volumes.*", Resolve::volume_mount),
    ("configs.*.file", Resolve::maybe_unix_path),
    ("secrets.*.file", Resolve::maybe_unix_path),
    ("include.path", Resolve::abs_path),
    ("include.project_directory", Resolve::abs_path),
    ("include.env_file", Resolve::abs_path),
    ("volumes.*", Resolve::volume_driver_opts),
];

static RESOLVERS_BY_DEPTH: std::sync::LazyLock<super::tree::Patterns<Resolver>> =
    std::sync::LazyLock::new(|| super::tree::Patterns::new(RESOLVERS));

/// Makes the relative paths of a canonical model absolute against `working_dir`
/// (`paths.ResolveRelativePaths`). `home` is `$HOME`, for `~`; without it `~` is left as written
/// (compose logs a warning then).
pub fn resolve_relative_paths(
    root: &mut Node,
    working_dir: &std::path::Path,
    home: Option<&str>,
) -> Result<(), Diagnostic> {
    let resolve = Resolve { working_dir: working_dir.to_string_lossy().into_owned(), home: home.map(str::to_owned) };
    resolve.walk(root, &TreePath::root())
}

struct Resolve {
    working_dir: String,
    home: Option<String>,
}

impl Resolve {
    fn walk(&self, node: &mut Node, path: &TreePath) -> Result<(), Diagnostic> {
        if let Some(resolver) = RESOLVERS_BY_DEPTH.find(path) {
            return resolver(self, node, path);
        }
        if !RESOLVERS_BY_DEPTH.below(path) {
            return Ok(());
        }
        match &mut node.value {
            Value::Map(map) => {
                for (key, entry) in map.iter_mut() {
                    self.walk(&mut entry.node, &path.key(key))?;
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.walk(item, &path.index(i))?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `~` replaced by the home directory (`paths.ExpandUser`).
    fn expand_user(&self, path: &str) -> String {
        match (path.strip_prefix('~'), &self.home) {
            (Some(rest), Some(home)) => join(home, rest),
            _ => path.to_owned(),
        }
    }

    /// A relative path joined to the working directory (`absPath`); lists are resolved item by item.
    fn abs_path(&self, node: &mut Node, path: &TreePath) -> Result<(), Diagnostic> {
        if let Value::Seq(items) = &mut node.value {
            for (i, item) in items.iter_mut().enumerate() {
                self.abs_path(item, &path.index(i))?;
            }
            return Ok(());
        }
        let Some(text) = as_string(node) else {
            return Err(Diagnostic::error(
                Some(node.loc.clone()),
                path.to_string(),
                format!("unexpected type {}", go_type(node)),
            ));
        };
        let expanded = self.expand_user(text);
        let resolved = if expanded.starts_with('/') || expanded.is_empty() {
            expanded
        } else {
            join(&self.working_dir, &expanded)
        };
        *node = str_node(resolved, &node.loc);
        Ok(())
    }

    /// Like [`Self::abs_path`], but a Windows absolute path counts as absolute too, so a compose file
    /// written for a Windows host keeps its paths; anything but a string is left alone.
    fn maybe_unix_path(&self, node: &mut Node, _: &TreePath) -> Result<(), Diagnostic> {
        let Some(text) = as_string(node) else { return Ok(()) };
        let expanded = self.expand_user(text);
        let resolved = if !expanded.starts_with('/') && !is_windows_abs(&expanded) {
            join(&self.working_dir, &expanded)
        } else {
            expanded
        };
        *node = str_node(resolved, &node.loc);
        Ok(())
    }

    /// A build context, unless it names something other than a local directory.
    fn context_path(&self, node: &mut Node, path: &TreePath) -> Result<(), Diagnostic> {
        let Some(text) = as_string(node) else { return Ok(()) };
        if text.contains("://") || text.starts_with("service:") || is_remote_context(text) {
            return Ok(());
        }
        self.abs_path(node, path)
    }

    /// `extends.file`, unless a remote loader (git, OCI) takes it.
    fn extends_path(&self, node: &mut Node, path: &TreePath) -> Result<(), Diagnostic> {
        match as_string(node) {
            Some(text) if is_remote_resource(text) => Ok(()),
            Some(_) => self.abs_path(node, path),
            None => Ok(()),
        }
    }

    /// A watched path, absolute, with its first symbolic link resolved (`utils.ResolveSymbolicLink`).
    fn symbolic_link(&self, node: &mut Node, path: &TreePath) -> Result<(), Diagnostic> {
        self.abs_path(node, path)?;
        let Some(text) = as_string(node) else { return Ok(()) };
        match resolve_first_symlink(text) {
            Ok(Some(resolved)) => *node = str_node(resolved, &node.loc),
            Ok(None) => {}
            Err(why) => return Err(Diagnostic::error(Some(node.loc.clone()), path.to_string(), why)),
        }
        Ok(())
    }

    /// A bind mount's source, absolute; other mounts and short syntax left as they are.
    fn volume_mount(&self, node: &mut Node, path: &TreePath) -> Result<(), Diagnostic> {
        let Some(mount) = node.as_map_mut() else { return Ok(()) };
        if mount.get("type").and_then(|e| as_string(&e.node)) != Some("bind") {
            return Ok(());
        }
        let Some(source) = mount.get_mut("source") else {
            return Err(Diagnostic::error(
                Some(node.loc.clone()),
                path.to_string(),
                "invalid mount config for type \"bind\": field Source must not be empty",
            ));
        };
        self.maybe_unix_path(&mut source.node, path)
    }

    /// A local-driver volume with `o: bind` is a bind mount of `device`, which is then a host path.
    fn volume_driver_opts(&self, node: &mut Node, path: &TreePath) -> Result<(), Diagnostic> {
        let Some(volume) = node.as_map_mut() else { return Ok(()) };
        if volume.get("driver").and_then(|e| as_string(&e.node)) != Some("local") {
            return Ok(());
        }
        let Some(options) = volume.get_mut("driver_opts").and_then(|e| e.node.as_map_mut()) else { return Ok(()) };
        if options.get("o").and_then(|e| as_string(&e.node)) != Some("bind") {
            return Ok(());
        }
        if let Some(device) = options.get_mut("device") {
            self.maybe_unix_path(&mut device.node, path)?;
        }
        Ok(())
    }
}

/// Git references and URLs a builder fetches itself (the list buildkit's dockerui uses).
fn is_remote_context(context: &str) -> bool {
    ["https://", "http://", "git://", "ssh://", "github.com/", "git@"].iter().any(|p| context.starts_with(p))
}

/// What docker compose's remote loaders accept for `extends.file` and `include`: OCI artifacts and
/// git repositories. Approximated by prefix; compose asks each loader.
fn is_remote_resource(path: &str) -> bool {
    path.starts_with("oci://") || is_remote_context(path)
}

/// `filepath.Join`: the parts joined by `/`, then cleaned; empty parts are skipped.
pub fn join(base: &str, rest: &str) -> String {
    match (base.is_empty(), rest.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(rest),
        (false, true) => clean(base),
        (false, false) => clean(&format!("{base}/{rest}")),
    }
}

/// Go's `path.Clean`: the shortest path naming the same file, by lexical processing only. Repeated
/// slashes collapse, `.` disappears, `..` removes the element before it (never above `/`), no trailing
/// slash; the empty path is `.`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    // `..` elements a relative path cannot drop, kept at its front.
    let mut leading_up = 0usize;
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() && !rooted {
                    leading_up += 1;
                }
            }
            _ => parts.push(element),
        }
    }
    let mut out: Vec<&str> = std::iter::repeat_n("..", leading_up).collect();
    out.extend(parts);
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn is_separator(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

/// Whether a path is absolute on Windows (`C:\x`, `\\host\share`, `\\?\C:\x`), as compose-go decides
/// it on any platform.
pub fn is_windows_abs(path: &str) -> bool {
    let b = path.as_bytes();
    let volume = volume_name_len(b);
    if volume == 0 {
        return false;
    }
    if b.len() >= 2 && is_separator(b[0]) && is_separator(b[1]) {
        return true;
    }
    b.get(volume).is_some_and(|c| is_separator(*c))
}

/// The length of the leading volume name of a Windows path: `C:`, `\\host\share`, `\\.\device`.
fn volume_name_len(b: &[u8]) -> usize {
    if b.len() >= 2 && b[1] == b':' {
        return 2;
    }
    if b.is_empty() || !is_separator(b[0]) {
        return 0;
    }
    if has_prefix_fold(b, br"\\.\UNC") {
        return unc_len(b, br"\\.\UNC\".len());
    }
    if has_prefix_fold(b, br"\\.") || has_prefix_fold(b, br"\\?") || has_prefix_fold(b, br"\??") {
        if b.len() == 3 {
            return 3;
        }
        return match b[4..].iter().position(|c| is_separator(*c)) {
            Some(i) => 4 + i,
            None => b.len(),
        };
    }
    if b.len() >= 2 && is_separator(b[1]) {
        return unc_len(b, 2);
    }
    0
}

/// Whether `b` starts with `prefix`, ignoring ASCII case and which slash, and the prefix ends an element.
fn has_prefix_fold(b: &[u8], prefix: &[u8]) -> bool {
    if b.len() < prefix.len() {
        return false;
    }
    let same =
        prefix.iter().zip(b).all(|(p, c)| if is_separator(*p) { is_separator(*c) } else { p.eq_ignore_ascii_case(c) });
    same && (b.len() == prefix.len() || is_separator(b[prefix.len()]))
}

/// The length of `\\host\share` from `prefix_len` on: up to the second separator.
fn unc_len(b: &[u8], prefix_len: usize) -> usize {
    let mut count = 0;
    for (i, c) in b.iter().enumerate().skip(prefix_len) {
        if is_separator(*c) {
            count += 1;
            if count == 2 {
                return i;
            }
        }
    }
    b.len()
}

/// The path with its first symbolic-link prefix replaced by that link's resolved target, or `None`
/// when no prefix is a link. Missing files are not an error: they are simply not links.
fn resolve_first_symlink(path: &str) -> Result<Option<String>, String> {
    let mut current = if path.starts_with('/') { "/".to_owned() } else { String::new() };
    for part in path.split('/').filter(|p| !p.is_empty()) {
        current = join(&current, part);
        let is_link = std::fs::symlink_metadata(&current).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            let target = std::fs::canonicalize(&current).map_err(|e| format!("lstat {current}: {e}"))?;
            return Ok(Some(path.replacen(&current, &target.to_string_lossy(), 1)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml::parse;
    use serde_json::json;
    use std::sync::Arc;

    fn resolved(yaml: &str) -> serde_json::Value {
        let mut root = parse(yaml, &Arc::from("compose.yaml")).unwrap_or_else(|e| panic!("{e}"));
        resolve_relative_paths(&mut root, std::path::Path::new("/proj"), Some("/home/me"))
            .unwrap_or_else(|e| panic!("{e}"));
        root.to_json()
    }

    #[test]
    fn cleans_like_go() {
        let cases = [
            ("", "."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
            ("/../a", "/a"),
            ("../../a/./b//", "../../a/b"),
            ("a/..", "."),
            ("/dst/./a/", "/dst/a"),
            ("a/../../b", "../b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input}");
        }
    }

    #[test]
    fn windows_absolute_paths() {
        for p in [r"C:\x", "c:/x", r"\\host\share\x", r"\\?\C:\x", "//host/share"] {
            assert!(is_windows_abs(p), "{p}");
        }
        for p in ["C:", "C:x", "/x", "x", r"\x", ""] {
            assert!(!is_windows_abs(p), "{p}");
        }
    }

    #[test]
    fn resolves_service_paths() {
        let got = resolved(
            r#"
services:
  web:
    build: {context: ./ctx, additional_contexts: {a: ../a, b: "docker-image://x", c: "https://github.com/x.git"}, ssh: {k: ./key, default: null}}
    env_file: [{path: .env, required: true}, {path: /abs/.env, required: false}]
    label_file: [~/labels]
    extends: {file: ./base.yaml, service: x}
    volumes:
      - {type: bind, source: ./src, target: /src}
      - {type: bind, source: /abs//x/../y, target: /y}
      - {type: bind, source: 'C:\data', target: /d}
      - {type: bind, source: ~user/x, target: /u}
      - {type: volume, source: data, target: /data}
      - "short:/syntax"
secrets:
  s: {file: ./s.txt}
configs:
  c: {file: /etc/c}
volumes:
  v: {driver: local, driver_opts: {o: bind, device: ./dev, type: none}}
  w: {driver: other, driver_opts: {o: bind, device: ./dev}}
  x:
"#,
        );
        assert_eq!(
            got,
            json!({
                "services": {"web": {
                    "build": {"context": "/proj/ctx", "additional_contexts": {"a": "/a", "b": "docker-image://x", "c": "https://github.com/x.git"}, "ssh": {"k": "/proj/key", "default": null}},
                    "env_file": [{"path": "/proj/.env", "required": true}, {"path": "/abs/.env", "required": false}],
                    "label_file": ["/home/me/labels"],
                    "extends": {"file": "/proj/base.yaml", "service": "x"},
                    "volumes": [
                        {"type": "bind", "source": "/proj/src", "target": "/src"},
                        {"type": "bind", "source": "/abs//x/../y", "target": "/y"},
                        {"type": "bind", "source": "C:\\data", "target": "/d"},
                        {"type": "bind", "source": "/home/me/user/x", "target": "/u"},
                        {"type": "volume", "source": "data", "target": "/data"},
                        "short:/syntax"
                    ]
                }},
                "secrets": {"s": {"file": "/proj/s.txt"}},
                "configs": {"c": {"file": "/etc/c"}},
                "volumes": {
                    "v": {"driver": "local", "driver_opts": {"o": "bind", "device": "/proj/dev", "type": "none"}},
                    "w": {"driver": "other", "driver_opts": {"o": "bind", "device": "./dev"}},
                    "x": null
                }
            })
        );
    }

    #[test]
    fn bind_without_source_is_refused() {
        let mut root =
            parse("services:\n  web:\n    volumes:\n      - {type: bind, target: /x}\n", &Arc::from("c.yaml")).unwrap();
        let e = resolve_relative_paths(&mut root, std::path::Path::new("/proj"), None).unwrap_err();
        assert_eq!(e.message, "invalid mount config for type \"bind\": field Source must not be empty");
        assert_eq!(e.key, "services.web.volumes[0]");
    }

    #[test]
    fn without_home_tilde_stays() {
        let mut root = parse("secrets:\n  s: {file: ~/s}\n", &Arc::from("c.yaml")).unwrap();
        resolve_relative_paths(&mut root, std::path::Path::new("/proj"), None).unwrap();
        assert_eq!(root.to_json(), json!({"secrets": {"s": {"file": "/proj/~/s"}}}));
    }

    #[test]
    fn resolves_the_first_symlink_of_a_watch_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let yaml = "services:\n  web:\n    develop:\n      watch:\n        - {path: ./link/sub, action: sync}\n";
        let mut root = parse(yaml, &Arc::from("c.yaml")).unwrap();
        resolve_relative_paths(&mut root, &base, None).unwrap();
        let got =
            root.get("services").unwrap().get("web").unwrap().get("develop").unwrap().get("watch").unwrap().to_json();
        assert_eq!(got, json!([{"path": format!("{}/real/sub", base.display()), "action": "sync"}]));
    }
}
