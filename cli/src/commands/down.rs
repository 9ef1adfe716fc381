//! `flotilla down [-v] [-t SECS]`: removes the project, keeping named volumes unless `-v`.

use std::path::PathBuf;

use cluster::project;

use crate::args::DownArgs;
use crate::cluster::{connect, runtime, target};
use crate::commands::Failure;

pub fn run(args: &DownArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    let target = target(&args.project, false)?;
    let options = project::down::DownOptions { volumes: args.volumes, timeout: args.timeout };
    runtime()?.block_on(async {
        let client = connect(kubeconfig, false).await?;
        let progress = crate::progress::Lines::new();
        project::down::down(&client, &target.name, &target.namespace, &options, &progress).await?;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
