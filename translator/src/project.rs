//! The two halves joined: a [`Loaded`] project converted with the files and variables it was loaded with.
//! Env files are read by the trait's default, the loader's dotenv reader.

use crate::convert::{self, Conversion, DirEntry, DiskFiles, Options, ProjectFiles};
use crate::diag::Errors;
use crate::load::Loaded;

/// Converts a loaded project, reading the files it names from disk and its env files with the loader's
/// own dotenv reader and variables.
pub fn convert_loaded(loaded: &Loaded, options: &Options) -> Result<Conversion, Errors> {
    let mut options = options.clone();
    options.project_dir.get_or_insert_with(|| loaded.working_dir.clone());
    convert::convert(&loaded.project, &loaded.sources, &LoadedFiles { loaded }, &options)
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

    fn variable(&self, name: &str) -> Option<String> {
        self.loaded.environment.get(name).cloned()
    }
}
