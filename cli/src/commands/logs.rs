//! `flotilla logs [-f] [--tail N] [SERVICE...]`.

use std::path::PathBuf;

use crate::args::LogsArgs;
use crate::cluster::{connect, runtime, target};
use crate::commands::Failure;

pub fn run(args: &LogsArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    let target = target(&args.project(), false)?;
    let services = super::service_names(&target, &args.services)?;
    runtime()?.block_on(async {
        let client = connect(kubeconfig, false).await?;
        let request = crate::logs::Request {
            namespace: target.namespace.clone(),
            project: target.name.clone(),
            services,
            follow: args.follow,
            tail: args.tail,
        };
        crate::logs::show(&client, request, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(())
}
