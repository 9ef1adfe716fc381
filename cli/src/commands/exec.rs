//! `flotilla exec SERVICE CMD...`: runs a command in the first running pod of a service (over the API's
//! exec WebSocket) and exits with the command's exit code.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::AsyncWriteExt;

use crate::args::ExecArgs;
use crate::cluster::{connect, runtime, target};
use crate::commands::Failure;

pub fn run(args: &ExecArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    let target = target(&args.project, false)?;
    let service = super::service_names(&target, std::slice::from_ref(&args.service))?.remove(0);
    let tty = !args.no_tty && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let code = runtime()?.block_on(async {
        let client = connect(kubeconfig, false).await?;
        let pods = cluster::project::wait::service_pods(&client, &target.namespace, &service).await?;
        let pod = pods
            .iter()
            .find(|p| {
                cluster::project::wait::is_ready(p)
                    || p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
            .ok_or_else(|| anyhow!("service {:?} has no running pod; hint: `flotilla up` it first", args.service))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
        let params = AttachParams::default().stdin(true).stdout(true).stderr(!tty).tty(tty);
        let mut process =
            api.exec(&name, args.command.clone(), &params).await.with_context(|| format!("exec in pod {name}"))?;
        let mut stdout = process.stdout().ok_or_else(|| anyhow!("no stdout"))?;
        let stderr = process.stderr();
        let mut stdin = process.stdin();
        let status = process.take_status();
        let input = tokio::spawn(async move {
            if let Some(remote) = stdin.as_mut() {
                let _ = tokio::io::copy(&mut tokio::io::stdin(), remote).await;
                let _ = remote.shutdown().await;
            }
        });
        let out = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut stdout, &mut tokio::io::stdout()).await;
        });
        let err = tokio::spawn(async move {
            if let Some(mut e) = stderr {
                let _ = tokio::io::copy(&mut e, &mut tokio::io::stderr()).await;
            }
        });
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        let _ = out.await;
        let _ = err.await;
        input.abort();
        let code = status
            .and_then(|s| {
                if s.status.as_deref() == Some("Success") {
                    return Some(0);
                }
                s.details?
                    .causes?
                    .into_iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))?
                    .message?
                    .parse::<u8>()
                    .ok()
            })
            .unwrap_or(1);
        Ok::<u8, anyhow::Error>(code)
    })?;
    if code == 0 { Ok(()) } else { Err(Failure::Exit(code)) }
}
