//! `flotilla explain`: for people learning how compose maps to Kubernetes. Per service: its compose
//! lines, with line numbers, beside the objects it became and one sentence on why each exists and how it
//! connects; then the warnings.

use std::fmt::Write as _;
use std::io::Write as _;

use translator::convert::Conversion;
use translator::load::Loaded;

use crate::args::{ExplainArgs, ExplainFormat};
use crate::commands::Failure;

pub fn run(args: &ExplainArgs) -> Result<(), Failure> {
    let loaded = crate::project::load(&args.project)?;
    let conversion = translator::project::convert_loaded(&loaded, &Default::default())?;
    let text = render(&loaded, &conversion, args.format);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// The lines of the compose file that define `service`, numbered.
fn compose_lines(loaded: &Loaded, service: &str) -> Option<(String, Vec<(u32, String)>)> {
    let key = loaded.sources.get(&format!("services/{service}/@key"))?;
    let value = loaded.sources.get(&format!("services/{service}"))?;
    let text = std::fs::read_to_string(&*key.file).ok()?;
    let last = value.end_line.max(key.line);
    let lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u32 + 1, l.to_owned()))
        .filter(|(n, _)| *n >= key.line && *n <= last)
        .collect();
    Some((key.file.to_string(), lines))
}

fn render(loaded: &Loaded, conversion: &Conversion, format: ExplainFormat) -> String {
    let markdown = format == ExplainFormat::Markdown;
    let mut out = String::new();
    let name = loaded.project.name.as_deref().unwrap_or_default();
    if markdown {
        let _ = writeln!(out, "# Project `{name}`\n");
    } else {
        let _ = writeln!(out, "project {name}\n");
    }
    // In the order the services are written, which is how people read their compose file.
    let mut origins: Vec<_> = conversion.services.iter().collect();
    origins.sort_by_key(|o| loaded.sources.get(&format!("services/{}/@key", o.compose_name)).cloned());
    for origin in origins {
        let renamed = if origin.name != origin.compose_name {
            format!(" (Kubernetes name `{}`)", origin.name)
        } else {
            String::new()
        };
        let lines = compose_lines(loaded, &origin.compose_name);
        if markdown {
            let _ = writeln!(out, "## Service `{}`{renamed}\n", origin.compose_name);
            if let Some((file, lines)) = &lines {
                let _ = writeln!(out, "From `{file}`:\n\n```yaml");
                for (n, line) in lines {
                    let _ = writeln!(out, "{n:>4} | {line}");
                }
                let _ = writeln!(out, "```\n");
            }
            let _ = writeln!(out, "| object | why |\n| --- | --- |");
            for note in &origin.objects {
                let _ = writeln!(out, "| {} `{}` | {} |", note.kind, note.name, note.why.replace('|', "\\|"));
            }
            out.push('\n');
        } else {
            let _ = writeln!(out, "service {}{renamed}", origin.compose_name);
            if let Some((file, lines)) = &lines {
                let _ = writeln!(out, "  {file}:");
                for (n, line) in lines {
                    let _ = writeln!(out, "  {n:>4} | {line}");
                }
            }
            let _ = writeln!(out, "  becomes:");
            for note in &origin.objects {
                let _ = writeln!(out, "    {} {}: {}", note.kind, note.name, note.why);
            }
            out.push('\n');
        }
    }
    let warnings = &conversion.diagnostics;
    if markdown {
        let _ = writeln!(out, "## Warnings\n");
        if warnings.is_empty() {
            let _ = writeln!(out, "None: every key carried over.");
        }
        for w in warnings {
            let _ = writeln!(out, "- `{w}`");
        }
    } else {
        let _ = writeln!(out, "warnings ({}):", warnings.len());
        for w in warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}
