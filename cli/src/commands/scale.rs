//! `flotilla scale SERVICE=N...`: sets services' replica counts (the next `up` puts compose's back).

use std::path::PathBuf;

use anyhow::anyhow;

use crate::args::ScaleArgs;
use crate::cluster::{connect, runtime, target};
use crate::commands::Failure;

pub fn run(args: &ScaleArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    let mut wanted = Vec::new();
    for item in &args.scales {
        let (service, n) = item
            .split_once('=')
            .and_then(|(s, n)| Some((s.to_owned(), n.parse::<i64>().ok().filter(|n| *n >= 0)?)))
            .ok_or_else(|| anyhow!("invalid scale {item:?}; hint: write SERVICE=REPLICAS, e.g. web=3"))?;
        wanted.push((service, n));
    }
    let target = target(&args.project, true)?;
    let (Some(loaded), Some(conversion)) = (&target.loaded, &target.conversion) else {
        return Err(Failure::Runtime(anyhow!("no compose project")));
    };
    let spec = super::up::project_spec(&target.name, &target.namespace, loaded, conversion)?;
    let mut names = Vec::new();
    for (service, n) in &wanted {
        names.push((super::service_names(&target, std::slice::from_ref(service))?.remove(0), *n));
    }
    runtime()?.block_on(async {
        let client = connect(kubeconfig, false).await?;
        let progress = crate::progress::Lines::new();
        for (name, n) in &names {
            cluster::project::control::scale(&client, &spec, name, *n, &progress).await?;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
