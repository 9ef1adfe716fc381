//! `flotilla restart [SERVICE...]`: a rolling restart of the services' pods.

use std::path::PathBuf;

use anyhow::anyhow;

use crate::args::RestartArgs;
use crate::cluster::{connect, runtime, target};
use crate::commands::Failure;

pub fn run(args: &RestartArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    let target = target(&args.project, true)?;
    let (Some(loaded), Some(conversion)) = (&target.loaded, &target.conversion) else {
        return Err(Failure::Runtime(anyhow!("no compose project")));
    };
    let spec = super::up::project_spec(&target.name, &target.namespace, loaded, conversion)?;
    let mut services = super::service_names(&target, &args.services)?;
    if services.is_empty() {
        services = spec.services.iter().map(|s| s.name.clone()).collect();
    }
    runtime()?.block_on(async {
        let client = connect(kubeconfig, false).await?;
        let progress = crate::progress::Lines::new();
        for service in &services {
            cluster::project::control::restart(&client, &spec, service, &progress).await?;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}
