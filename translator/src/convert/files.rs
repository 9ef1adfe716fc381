//! Access to the files a project refers to (`env_file`s, config and secret files, bound host paths).
//!
//! Conversion reads nothing itself: it asks a [`ProjectFiles`]. The binary passes [`DiskFiles`]; tests
//! pass a [`MemoryFiles`], so they run without touching the disk. Paths are the absolute paths the
//! model holds (compose resolves them against the project directory).

use std::collections::BTreeMap;

use crate::load::dotenv;

/// A file or folder inside a bound directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

pub trait ProjectFiles {
    /// The bytes of a regular file; `Err` with a lowercase reason if it cannot be read.
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;

    /// The entries of a directory, sorted by name; `None` if `path` is not a directory.
    fn list_dir(&self, path: &str) -> Option<Vec<DirEntry>>;

    /// The variables an `env_file` defines, in file order, read with the loader's dotenv reader (`raw`:
    /// lines taken literally); `${VAR}` in values is looked up with [`ProjectFiles::variable`].
    fn env_file(&self, path: &str, raw: bool) -> Result<Vec<(String, String)>, String> {
        let bytes = self.read(path)?;
        let text = String::from_utf8_lossy(&bytes);
        let lookup = |name: &str| self.variable(name);
        let parsed = if raw { dotenv::parse_raw(&text, &lookup) } else { dotenv::parse(&text, &lookup) };
        parsed.map(|vars| vars.into_iter().collect()).map_err(|e| format!("{path}: {e}"))
    }

    /// The value of a variable of the environment the project was loaded in (for `configs`/`secrets`
    /// with `environment:`); `None` if unset or unknown.
    fn variable(&self, _name: &str) -> Option<String> {
        None
    }
}

/// Reads the real file system (only the paths the project names).
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskFiles;

impl ProjectFiles for DiskFiles {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| e.to_string().to_lowercase())
    }

    fn list_dir(&self, path: &str) -> Option<Vec<DirEntry>> {
        let mut entries: Vec<DirEntry> = std::fs::read_dir(path)
            .ok()?
            .flatten()
            .map(|e| DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir: e.file_type().is_ok_and(|t| t.is_dir()),
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Some(entries)
    }

    fn variable(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Files held in memory: path to contents. A path is a directory when another path starts with it and
/// a `/`.
#[derive(Clone, Debug, Default)]
pub struct MemoryFiles {
    pub files: BTreeMap<String, Vec<u8>>,
    pub variables: BTreeMap<String, String>,
}

impl MemoryFiles {
    pub fn with(mut self, path: &str, contents: &str) -> Self {
        self.files.insert(path.to_string(), contents.as_bytes().to_vec());
        self
    }
}

impl ProjectFiles for MemoryFiles {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.files.get(path).cloned().ok_or_else(|| "no such file or directory".to_string())
    }

    fn list_dir(&self, path: &str) -> Option<Vec<DirEntry>> {
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let mut entries: BTreeMap<String, bool> = BTreeMap::new();
        for file in self.files.keys() {
            if let Some(rest) = file.strip_prefix(&prefix) {
                match rest.split_once('/') {
                    Some((dir, _)) => entries.insert(dir.to_string(), true),
                    None => entries.insert(rest.to_string(), false),
                };
            }
        }
        (!entries.is_empty()).then(|| entries.into_iter().map(|(name, is_dir)| DirEntry { name, is_dir }).collect())
    }

    fn variable(&self, name: &str) -> Option<String> {
        self.variables.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_and_memory_dirs() {
        let files =
            MemoryFiles::default().with("/p/app.env", "# c\nexport A=1\nB=\"x y\"\nC='$z'\nD=v # note\nE=${A}\n");
        let vars = files.env_file("/p/app.env", false).unwrap();
        assert_eq!(
            vars,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "x y".into()),
                ("C".into(), "$z".into()),
                ("D".into(), "v".into()),
                ("E".into(), "1".into())
            ]
        );
        let files = MemoryFiles::default().with("/p/conf/a", "1").with("/p/conf/sub/b", "2");
        let entries = files.list_dir("/p/conf").unwrap();
        assert_eq!(
            entries,
            vec![DirEntry { name: "a".into(), is_dir: false }, DirEntry { name: "sub".into(), is_dir: true }]
        );
        assert!(files.list_dir("/p/conf/a").is_none());
    }
}
