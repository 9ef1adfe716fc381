//! `flotilla config`: the resolved compose model, in the shape `docker compose config` prints it.

use std::io::Write;

use crate::args::{ConfigArgs, Format};
use crate::commands::Failure;

pub fn run(args: &ConfigArgs) -> Result<(), Failure> {
    let loaded = crate::project::load(&args.project)?;
    let json = loaded.config_json()?;
    let text = match args.format {
        Format::Json => serde_json::to_string_pretty(&json).expect("JSON values always serialise") + "\n",
        Format::Yaml => serde_saphyr::to_string(&json).expect("JSON values always serialise as YAML"),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    // The process ends now; letting the OS reclaim a large project is faster than freeing it.
    std::mem::forget((loaded, json, text));
    Ok(())
}
