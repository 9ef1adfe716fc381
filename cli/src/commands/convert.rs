//! `flotilla convert`: the project as Kubernetes objects, as multi-document YAML on stdout, a JSON `List`,
//! or one file per object with `-o DIR`. Warnings go to stderr; with `--strict` they are errors and nothing
//! is written.

use std::io::Write;
use std::path::Path;

use translator::convert::{BindMounts, Conversion, Object, Options, render};
use translator::diag::{Errors, Severity};

use crate::args::{self, ConvertArgs, Format};
use crate::commands::Failure;

pub fn run(args: &ConvertArgs) -> Result<(), Failure> {
    let options = Options {
        namespace: args.namespace.clone(),
        bind_mounts: match args.bind_mounts {
            args::BindMounts::Configmap => BindMounts::ConfigMap,
            args::BindMounts::Hostpath => BindMounts::HostPath,
        },
        wait_image: args.wait_image.clone(),
        ..Options::default()
    };
    let conversion = convert(&args.project, &options, args.strict)?;
    match &args.out {
        None => {
            let text = render_all(&conversion.objects, args.format);
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        Some(dir) => write_dir(dir, &conversion.objects, args.format)?,
    }
    std::mem::forget(conversion);
    Ok(())
}

/// Loads and converts; prints the warnings, or refuses them all under `strict`.
pub fn convert(project: &args::ProjectArgs, options: &Options, strict: bool) -> Result<Conversion, Failure> {
    let loaded = crate::project::load(project)?;
    let conversion = translator::project::convert_loaded(&loaded, options)?;
    // The process ends soon after; letting the OS reclaim a large project is faster than freeing it.
    std::mem::forget(loaded);
    if strict && !conversion.diagnostics.is_empty() {
        let errors = conversion.diagnostics.into_iter().map(|mut d| {
            d.severity = Severity::Error;
            d
        });
        return Err(Errors(errors.collect()).into());
    }
    let mut stderr = std::io::stderr().lock();
    for warning in &conversion.diagnostics {
        let _ = writeln!(stderr, "{warning}");
    }
    Ok(conversion)
}

fn render(object: &Object, format: Format) -> String {
    match format {
        Format::Yaml => render::object_to_yaml(object),
        Format::Json => render::object_to_json(object),
    }
}

fn render_all(objects: &[Object], format: Format) -> String {
    match format {
        Format::Yaml => render::to_yaml(objects),
        Format::Json => render::to_json(objects),
    }
}

/// One file per object, named `<kind>-<name>.<ext>`; the folder is created if needed.
fn write_dir(dir: &Path, objects: &[Object], format: Format) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let extension = match format {
        Format::Yaml => "yaml",
        Format::Json => "json",
    };
    for object in objects {
        let file = dir.join(format!("{}-{}.{extension}", object.kind().to_lowercase(), object.name()));
        std::fs::write(file, render(object, format))?;
    }
    Ok(())
}
