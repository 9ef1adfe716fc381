//! The two halves joined: a [`Loaded`] project converted with the files and variables it was loaded with.

use crate::convert::{self, Conversion, DirEntry, DiskFiles, Options, ProjectFiles};
use crate::diag::Errors;
use crate::load::{Loaded, env_files};

/// Converts a loaded project, reading the files it names from disk and its env files with the loader's
/// own dotenv reader and variables.
pub fn convert_loaded(loaded: &Loaded, options: &Options) -> Result<Conversion, Errors> {
    convert::convert(&loaded.project, &loaded.sources, &LoadedFiles { loaded }, options)
}

struct LoadedFiles<'a> {
    loaded: &'a Loaded,
}

impl ProjectFiles for LoadedFiles<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        DiskFiles.read(path)
    }

    fn list_dir(&self, path: &str) -> Option<Vec<DirEntry>> {
        DiskFiles.list_dir(path)
    }

    fn env_file(&self, path: &str, raw: bool) -> Result<Vec<(String, String)>, String> {
        let file = env_files::EnvFileRef {
            path: path.to_owned(),
            required: true,
            format: raw.then(|| "raw".to_owned()),
        };
        let lookup = |k: &str| self.loaded.environment.get(k).cloned();
        match env_files::read(&file, &lookup, None) {
            Ok(values) => Ok(values.unwrap_or_default().into_iter().collect()),
            Err(e) => Err(e.message),
        }
    }

    fn variable(&self, name: &str) -> Option<String> {
        self.loaded.environment.get(name).cloned()
    }
}
