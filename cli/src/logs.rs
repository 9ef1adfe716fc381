//! Logs of a project's pods with compose's coloured `name  | line` prefixes: once (`logs`), or followed
//! until stopped (`logs -f`, and `up` without `-d`), picking up pods as they appear.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

use cluster::project::{MANAGED_BY, PART_OF, SERVICE_LABEL};

const COLOURS: &[&str] = &["36", "33", "32", "35", "34", "96", "93", "92", "95", "94"];

/// What to show.
pub struct Request {
    pub namespace: String,
    pub project: String,
    /// Kubernetes service names; empty for all.
    pub services: Vec<String>,
    pub follow: bool,
    pub tail: Option<i64>,
}

/// Prints the logs; with `follow`, until `stop` resolves.
pub async fn show(
    client: &Client,
    request: Request,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &request.namespace);
    let selector = format!("{PART_OF}={},{MANAGED_BY}=flotilla", request.project);
    let colour = std::io::stdout().is_terminal();
    let request = Arc::new(request);
    let mut streaming: HashSet<(String, String, i32)> = HashSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut width = 0usize;
    tokio::pin!(stop);
    loop {
        let list = pods.list(&ListParams::default().labels(&selector)).await?;
        let mut items = list.items;
        items.sort_by_key(|p| p.metadata.name.clone());
        width = width.max(items.iter().filter_map(|p| p.metadata.name.as_ref().map(String::len)).max().unwrap_or(0));
        for pod in &items {
            let service = pod.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_LABEL)).cloned().unwrap_or_default();
            if !request.services.is_empty() && !request.services.contains(&service) {
                continue;
            }
            let name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
            let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
            for c in &containers {
                let status = statuses.iter().find(|s| s.name == c.name);
                let started = status.is_some_and(|s| s.state.as_ref().is_some_and(|st| st.waiting.is_none()));
                let restarts = status.map_or(0, |s| s.restart_count);
                if !started || !streaming.insert((name.clone(), c.name.clone(), restarts)) {
                    continue;
                }
                let mut label = name.clone();
                if containers.len() > 1 {
                    label = format!("{label}/{}", c.name);
                }
                let paint = COLOURS[streaming.len() % COLOURS.len()];
                let line_prefix = if colour {
                    format!("\x1b[{paint}m{label:<width$} |\x1b[0m ")
                } else {
                    format!("{label:<width$} | ")
                };
                let lp = LogParams {
                    container: Some(c.name.clone()),
                    follow: request.follow,
                    tail_lines: if restarts > 0 && request.follow { Some(0) } else { request.tail },
                    ..Default::default()
                };
                let pods = pods.clone();
                let name = name.clone();
                tasks.spawn(async move {
                    let Ok(stream) = pods.log_stream(&name, &lp).await else { return };
                    let mut lines = stream.lines();
                    while let Some(Ok(line)) = lines.next().await {
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "{line_prefix}{line}").is_err() {
                            return;
                        }
                    }
                });
            }
        }
        if !request.follow {
            while tasks.join_next().await.is_some() {}
            return Ok(());
        }
        tokio::select! {
            _ = &mut stop => {
                tasks.abort_all();
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
