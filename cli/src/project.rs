//! Turns the shared project flags into a loader request and prints what loading reports.

use translator::diag::Errors;
use translator::load::{Loaded, Request};

use crate::args::ProjectArgs;

pub fn load(args: &ProjectArgs) -> Result<Loaded, Errors> {
    let request = Request {
        files: args.files.clone(),
        project_name: args.project_name.clone(),
        project_directory: args.project_directory.clone(),
        profiles: args.profiles.clone(),
        env_files: args.env_files.clone(),
        cwd: std::env::current_dir().unwrap_or_default(),
        environment: std::env::vars().collect(),
    };
    let loaded = translator::load::load(&request)?;
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    Ok(loaded)
}
