//! `flotilla kubeconfig`: prints the embedded cluster's admin kubeconfig, for kubectl.

use std::io::Write;

use anyhow::anyhow;

use crate::args::KubeconfigArgs;
use crate::commands::Failure;

pub fn run(args: &KubeconfigArgs) -> Result<(), Failure> {
    let dir = args.data_dir.clone().unwrap_or_else(cluster::server::default_data_dir);
    let path = dir.join("kubeconfig.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow!(
            "no kubeconfig at {}: {e}; hint: `flotilla up` or `flotilla server` starts the cluster that writes it",
            path.display()
        )
    })?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
