//! `flotilla ps [-a]`: the project's pods with compose's columns.

use std::io::Write;
use std::path::PathBuf;

use crate::args::PsArgs;
use crate::cluster::{connect, runtime, target};
use crate::commands::Failure;

pub fn run(args: &PsArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    let target = target(&args.project, false)?;
    let rows = runtime()?.block_on(async {
        let client = connect(kubeconfig, false).await?;
        Ok::<_, anyhow::Error>(cluster::project::status::rows(&client, &target.name, &target.namespace).await?)
    })?;
    let rows: Vec<_> = rows.into_iter().filter(|r| args.all || r.running).collect();
    let header = ["SERVICE", "POD", "STATUS", "PORTS"];
    let cells: Vec<[String; 4]> =
        rows.iter().map(|r| [r.service.clone(), r.pod.clone(), r.status.clone(), r.ports.clone()]).collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cols: [&str; 4]| {
        format!(
            "{:<w0$}   {:<w1$}   {:<w2$}   {}",
            cols[0],
            cols[1],
            cols[2],
            cols[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    writeln!(out, "{}", line(header).trim_end())?;
    for row in &cells {
        writeln!(out, "{}", line([&row[0], &row[1], &row[2], &row[3]]).trim_end())?;
    }
    Ok(())
}
