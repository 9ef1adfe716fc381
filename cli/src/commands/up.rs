//! `flotilla up`: translate the project, check everything, then bring the cluster to it (see
//! `cluster::project::up`). Without `-d` it then follows the logs, and Ctrl-C stops the project.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use cluster::project::{self, BuildSpec, Condition, Dependency, ProjectSpec, ServiceSpec};
use translator::convert::{Conversion, unescape};
use translator::load::Loaded;

use crate::args::UpArgs;
use crate::cluster::{connect, runtime, target};
use crate::commands::Failure;

pub fn run(args: &UpArgs, kubeconfig: Option<PathBuf>) -> Result<(), Failure> {
    let target = target(&args.project, true)?;
    let (Some(loaded), Some(conversion)) = (&target.loaded, &target.conversion) else {
        return Err(Failure::Runtime(anyhow!("no compose project to start")));
    };
    let spec = project_spec(&target.name, &target.namespace, loaded, conversion)?;
    let options = project::up::UpOptions {
        build: args.build,
        wait: args.wait,
        wait_timeout: args.wait_timeout.map(Duration::from_secs),
        remove_orphans: args.remove_orphans,
        services: args.services.clone(),
    };
    let detach = args.detach || args.wait;
    runtime()?.block_on(async {
        let client = connect(kubeconfig, true).await?;
        let progress = crate::progress::Lines::new();
        project::up::up(&client, &spec, &options, &progress).await.map_err(anyhow::Error::from)?;
        drop(progress);
        if let Some(url) = first_url(&spec) {
            eprintln!("The project answers on {url}");
        }
        if detach {
            return Ok(());
        }
        let request = crate::logs::Request {
            namespace: spec.namespace.clone(),
            project: spec.name.clone(),
            services: Vec::new(),
            follow: true,
            tail: None,
        };
        crate::logs::show(&client, request, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
        eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
        let progress = crate::progress::Lines::new();
        tokio::select! {
            r = project::control::stop(&client, &spec, args.timeout, &progress) => r.map_err(anyhow::Error::from)?,
            _ = tokio::signal::ctrl_c() => return Err(anyhow!("stopping interrupted; the project is partly stopped")),
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

/// The first published port, as a URL to print (compose prints nothing; a learner wants the address).
fn first_url(spec: &ProjectSpec) -> Option<String> {
    spec.objects.iter().find_map(|o| {
        let name = o["metadata"]["name"].as_str()?;
        if o["kind"] != "Service" || !name.ends_with("-published") {
            return None;
        }
        let port = o["spec"]["ports"][0]["port"].as_i64()?;
        Some(format!("http://127.0.0.1:{port}"))
    })
}

/// The translation, as the project client takes it: objects as JSON, services with their dependencies
/// and builds.
pub fn project_spec(
    name: &str,
    namespace: &str,
    loaded: &Loaded,
    conversion: &Conversion,
) -> Result<ProjectSpec, Failure> {
    let objects: Vec<serde_json::Value> = conversion
        .objects
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::Runtime(anyhow!("serialising objects: {e}")))?;
    let mut services = Vec::new();
    for origin in &conversion.services {
        let Some(svc) = loaded.project.services.get(&origin.compose_name) else { continue };
        let depends_on = svc
            .depends_on
            .iter()
            .flatten()
            .map(|(dep, how)| Dependency {
                service: dep.clone(),
                condition: Condition::from_compose(how.condition.as_deref().unwrap_or("service_started")),
            })
            .collect();
        let build = svc.build.as_ref().and_then(|b| {
            let image = workload_image(&objects, &origin.name)?;
            let context = b.context.as_deref().map(unescape).unwrap_or_else(|| ".".into());
            let context = loaded.working_dir.join(context);
            Some(BuildSpec {
                image,
                context,
                dockerfile: b.dockerfile.as_deref().map(unescape),
                args: b.args.iter().flatten().filter_map(|(k, v)| Some((k.clone(), unescape(v.as_deref()?)))).collect(),
                target: b.target.as_deref().map(unescape),
            })
        });
        services.push(ServiceSpec {
            compose_name: origin.compose_name.clone(),
            name: origin.name.clone(),
            depends_on,
            build,
        });
    }
    Ok(ProjectSpec { name: name.to_owned(), namespace: namespace.to_owned(), objects, services })
}

/// The image of the main container of a service's workload.
fn workload_image(objects: &[serde_json::Value], service: &str) -> Option<String> {
    objects.iter().find_map(|o| {
        if o["metadata"]["labels"][project::SERVICE_LABEL] != service || o["spec"]["template"].is_null() {
            return None;
        }
        o["spec"]["template"]["spec"]["containers"][0]["image"].as_str().map(str::to_owned)
    })
}
