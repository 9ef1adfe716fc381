//! Which files make the project, where it lives, what it is called, and which variables it sees.
//!
//! Follows Docker Compose v2's command line (compose-go `cli/options.go`):
//! - files: `-f` (repeatable), else `COMPOSE_FILE` (split on `COMPOSE_PATH_SEPARATOR`, default `:`), else
//!   the first of `compose.yaml`, `compose.yml`, `docker-compose.yml`, `docker-compose.yaml` found in the
//!   working directory or the nearest parent, plus the first `*.override.*` file beside it;
//! - project directory: `--project-directory`, else the folder of the first file;
//! - variables: the process environment, then `--env-file`s (or `.env` in the project directory, unless
//!   `COMPOSE_DISABLE_ENV_FILE` is true) for what the environment does not set;
//! - name: `-p`, else `COMPOSE_PROJECT_NAME`, else a top-level `name:`, else the project directory's name,
//!   lowercased with everything but `[a-z0-9_-]` removed.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use crate::diag::Diagnostic;
use crate::load::dotenv;

/// The variables interpolation and `environment` resolution see.
pub type Environment = IndexMap<String, String>;

pub const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"];
pub const DEFAULT_OVERRIDE_FILES: [&str; 4] =
    ["compose.override.yml", "compose.override.yaml", "docker-compose.override.yml", "docker-compose.override.yaml"];

/// What the user asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `-f`, in order.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--profile`, in order; empty means `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// `--env-file`, in order; empty means `.env` in the project directory.
    pub env_files: Vec<PathBuf>,
    /// The directory relative paths on the command line are relative to.
    pub cwd: PathBuf,
    /// The process environment.
    pub environment: Environment,
}

/// The answer: everything the loader needs before it reads a compose file.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// Absolute paths of the compose files, in merge order.
    pub files: Vec<PathBuf>,
    pub working_dir: PathBuf,
    pub environment: Environment,
    pub profiles: Vec<String>,
    /// Set when the name came from `-p` or `COMPOSE_PROJECT_NAME`; a top-level `name:` is read later.
    pub explicit_name: Option<String>,
    /// The fallback: the project directory's name, normalised.
    pub directory_name: String,
}

fn error(message: impl Into<String>) -> Diagnostic {
    Diagnostic::error(None, "", message)
}

pub fn discover(request: &Request) -> Result<Discovered, Diagnostic> {
    let cwd = &request.cwd;
    let absolute = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) };
    // Compose reads `.env` before it knows the files (so `.env` can set COMPOSE_FILE): from the project
    // directory, else the folder of the first `-f` file, else the current directory.
    let mut files: Vec<PathBuf> = request.files.iter().map(|f| absolute(f)).collect();
    let env_dir = match (&request.project_directory, files.first()) {
        (Some(dir), _) => absolute(dir),
        (None, Some(first)) => first.parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.clone()),
        (None, None) => cwd.clone(),
    };
    let environment = with_env_files(request.environment.clone(), request, &env_dir, &absolute)?;

    if files.is_empty()
        && let Some(list) = environment.get("COMPOSE_FILE").filter(|l| !l.is_empty())
    {
        let separator = environment.get("COMPOSE_PATH_SEPARATOR").map(String::as_str).unwrap_or(":");
        files = list.split(separator).filter(|f| !f.is_empty()).map(|f| absolute(Path::new(f))).collect();
    }
    if files.is_empty() {
        let start = request.project_directory.as_deref().map(absolute).unwrap_or_else(|| cwd.clone());
        files = find_default_files(&start).ok_or_else(|| {
            error(format!("no configuration file provided: not found in {} or any parent folder", start.display()))
                .with_hint("create compose.yaml there, or name the file with -f")
        })?;
    }
    for file in &files {
        if !file.is_file() {
            return Err(error(format!("open {}: no such file or directory", file.display()))
                .with_hint("check the path given with -f or COMPOSE_FILE"));
        }
    }

    let working_dir = match &request.project_directory {
        Some(dir) => absolute(dir),
        None => files[0].parent().map(Path::to_path_buf).unwrap_or_else(|| cwd.clone()),
    };

    // compose-go `WithDefaultProfiles` splits the variable as Go's `strings.Split` does, so an unset or
    // empty COMPOSE_PROFILES selects the profile "" (a service with `profiles: [""]` is enabled).
    let profiles = if request.profiles.is_empty() {
        let variable = environment.get("COMPOSE_PROFILES").map(String::as_str).unwrap_or_default();
        variable.split(',').map(|s| s.trim().to_owned()).collect()
    } else {
        request.profiles.clone()
    };

    let explicit_name = match &request.project_name {
        Some(name) => Some(name.clone()),
        None => environment.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()).cloned(),
    };
    if let Some(name) = &explicit_name
        && normalize_project_name(name) != *name
    {
        return Err(invalid_project_name(name));
    }
    let directory_name =
        normalize_project_name(&working_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());

    Ok(Discovered { files, working_dir, environment, profiles, explicit_name, directory_name })
}

pub fn invalid_project_name(name: &str) -> Diagnostic {
    error(format!(
        "invalid project name \"{name}\": must consist only of lowercase alphanumeric characters, hyphens, and underscores as well as start with a letter or number"
    ))
    .with_hint("pass a valid name with -p, or set `name:` in the compose file")
}

/// The first default compose file in `dir` or its nearest parent that has one, plus its override file.
fn find_default_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let mut dir = Some(dir);
    while let Some(current) = dir {
        if let Some(main) = DEFAULT_FILES.iter().map(|n| current.join(n)).find(|p| p.is_file()) {
            let mut files = vec![main];
            files.extend(DEFAULT_OVERRIDE_FILES.iter().map(|n| current.join(n)).find(|p| p.is_file()));
            return Some(files);
        }
        dir = current.parent();
    }
    None
}

/// Adds the variables of the env files; the process environment wins, as in Compose.
fn with_env_files(
    environment: Environment,
    request: &Request,
    working_dir: &Path,
    absolute: &dyn Fn(&Path) -> PathBuf,
) -> Result<Environment, Diagnostic> {
    let files: Vec<PathBuf> = if !request.env_files.is_empty() {
        request.env_files.iter().map(|f| absolute(f)).collect()
    } else if environment.get("COMPOSE_DISABLE_ENV_FILE").is_some_and(|v| parse_bool(v) == Some(true)) {
        Vec::new()
    } else {
        let default = working_dir.join(".env");
        if default.is_file() { vec![default] } else { Vec::new() }
    };
    read_env_files(environment, &files).map_err(|e| e.with_hint("check the path given with --env-file"))
}

/// `environment` plus the variables of `files` that it does not set (the process environment wins, and a
/// later file wins over an earlier one, as in Compose); `${VAR}` in a file sees the environment and the
/// files read before it.
pub fn read_env_files(mut environment: Environment, files: &[PathBuf]) -> Result<Environment, Diagnostic> {
    let mut from_files = Environment::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| error(format!("couldn't read env file {}: {e}", file.display())))?;
        let lookup = |key: &str| environment.get(key).or_else(|| from_files.get(key)).cloned();
        let parsed = dotenv::parse(&text, &lookup).map_err(|e| e.into_diagnostic(&file.display().to_string()))?;
        from_files.extend(parsed);
    }
    for (key, value) in from_files {
        environment.entry(key).or_insert(value);
    }
    Ok(environment)
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Lowercase, keep `[a-z0-9_-]`, drop leading `_` and `-` (compose-go's `NormalizeProjectName`).
pub fn normalize_project_name(name: &str) -> String {
    let kept: String = name
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    kept.trim_start_matches(['_', '-']).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &Path) -> Request {
        Request { cwd: dir.to_path_buf(), ..Request::default() }
    }

    #[test]
    fn normalises_folder_names_like_compose() {
        assert_eq!(normalize_project_name("My_App"), "my_app");
        assert_eq!(normalize_project_name("_-x.y z"), "xyz");
        assert_eq!(normalize_project_name("Ünïcode-1"), "ncode-1");
    }

    #[test]
    fn finds_the_main_file_and_its_override_in_a_parent() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), "services: {}\n").unwrap();
        std::fs::write(dir.path().join("compose.override.yaml"), "services: {}\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let found = discover(&request(&dir.path().join("sub"))).unwrap();
        let names: Vec<_> = found.files.iter().map(|f| f.file_name().unwrap().to_str().unwrap().to_owned()).collect();
        assert_eq!(names, ["docker-compose.yml", "compose.override.yaml"]);
        assert_eq!(found.working_dir, dir.path());
    }

    #[test]
    fn compose_file_variable_and_dotenv() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "services: {}\n").unwrap();
        std::fs::write(dir.path().join("b.yaml"), "services: {}\n").unwrap();
        std::fs::write(dir.path().join(".env"), "TAG=1\nHOME=from-dotenv\nCOMPOSE_PROFILES=x, y\n").unwrap();
        let mut req = request(dir.path());
        req.environment.insert("COMPOSE_FILE".into(), "a.yaml:b.yaml".into());
        req.environment.insert("HOME".into(), "/root".into());
        let found = discover(&req).unwrap();
        assert_eq!(found.files.len(), 2);
        assert_eq!(found.environment["TAG"], "1");
        assert_eq!(found.environment["HOME"], "/root", "the process environment wins over .env");
        assert_eq!(found.profiles, ["x", "y"]);
        std::fs::write(dir.path().join(".env"), "COMPOSE_PROFILES=\n").unwrap();
        assert_eq!(discover(&req).unwrap().profiles, [""]);
        std::fs::remove_file(dir.path().join(".env")).unwrap();
        assert_eq!(discover(&req).unwrap().profiles, [""]);
    }

    #[test]
    fn refuses_an_invalid_explicit_name_and_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yaml"), "services: {}\n").unwrap();
        let mut req = request(dir.path());
        req.project_name = Some("My App".into());
        assert!(discover(&req).unwrap_err().message.contains("invalid project name"));
        let mut req = request(dir.path());
        req.files = vec!["nope.yaml".into()];
        assert!(discover(&req).unwrap_err().message.contains("no such file"));
        let empty = tempfile::tempdir().unwrap();
        // A temp dir's parents hold no compose file on these machines, so discovery fails.
        if find_default_files(empty.path()).is_none() {
            assert!(discover(&request(empty.path())).unwrap_err().message.contains("no configuration file"));
        }
    }
}
