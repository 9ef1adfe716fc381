//! `flotilla up`: check everything, then change the cluster.
//!
//! 1. Preflight, before any change: the cluster answers, every image is present or buildable, builds
//!    succeed. A failure here leaves the cluster as it was.
//! 2. The namespace and the objects pods need (network policies, config, secrets, volumes, Services).
//! 3. Workloads in `depends_on` order: a service's workload is written only once each dependency
//!    satisfies its condition (started, healthy, completed), as compose starts containers.
//! 4. With `wait`, until every service is healthy (or completed); otherwise until each has started.
//!
//! Objects whose hash matches the live object's are left alone, so a second `up` after an edit changes
//! only what changed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use serde_json::Value;

use super::objects::{self, Applied};
use super::wait::{self, State};
use super::{Condition, Error, MANAGED_BY, PART_OF, Progress, ProjectSpec, Result, Step, api_err, images};

/// Compose's `up` flags that change what `up` does.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// `--build`: build images even when present.
    pub build: bool,
    /// `--wait`: return only when every service is healthy.
    pub wait: bool,
    /// `--wait-timeout`.
    pub wait_timeout: Option<Duration>,
    /// `--remove-orphans`.
    pub remove_orphans: bool,
    /// `SERVICE...`: only these and what they depend on; empty for all.
    pub services: Vec<String>,
}

/// Runs `up`. See the module documentation for the order.
pub async fn up(client: &Client, project: &ProjectSpec, options: &UpOptions, progress: &dyn Progress) -> Result<()> {
    let started = jiff::Timestamp::now();
    let selected = select(project, &options.services)?;
    // 1. Preflight.
    client.apiserver_version().await.map_err(api_err("a version request (is the server running?)"))?;
    let docker = images::docker().await?;
    let builds = images::plan(&docker, project, options.build).await?;
    for spec in &builds {
        let what = format!("Image {}", spec.image);
        progress.step(&what, Step::Building);
        images::build(&docker, spec).await?;
        progress.step(&what, Step::Built);
    }
    images::ship(client, &docker, project, progress).await?;

    // 2. Everything but the workloads, in dependency order of kinds.
    let ns = &project.namespace;
    let mut workloads: HashMap<String, &Value> = HashMap::new();
    for kind in objects::APPLY_ORDER {
        for obj in project.objects.iter().filter(|o| objects::kind(o) == *kind) {
            if objects::is_workload(kind) {
                workloads.insert(service_of(obj), obj);
                continue;
            }
            let applied = objects::apply(client, obj, ns).await?;
            if *kind == "PersistentVolumeClaim" && applied == Applied::Created {
                progress.step(&format!("Volume {}", objects::name(obj)), Step::Created);
            }
        }
    }
    orphans(client, project, options.remove_orphans, progress).await?;

    // 3. Workloads, each once its dependencies are where compose would have them.
    let order = start_order(project, &selected)?;
    let by_compose: HashMap<&str, &str> =
        project.services.iter().map(|s| (s.compose_name.as_str(), s.name.as_str())).collect();
    let deadline = options.wait_timeout.map(|t| Instant::now() + t);
    let mut reached: BTreeMap<String, State> = BTreeMap::new();
    for service in &order {
        let Some(workload) = workloads.get(&service.name) else { continue };
        for dep in &service.depends_on {
            let Some(dep_name) = by_compose.get(dep.service.as_str()) else { continue };
            let Some(dep_workload) = workloads.get(*dep_name) else { continue };
            if reached.get(*dep_name).is_some_and(|s| s.satisfies(dep.condition)) {
                continue;
            }
            progress.step(&format!("Service {}", service.compose_name), Step::Waiting(dep.service.clone()));
            let state = wait::until(client, ns, dep_name, dep_workload, dep.condition, deadline).await?;
            report(progress, &dep.service, &state, reached.get(*dep_name));
            reached.insert(dep_name.to_string(), state);
        }
        let step = match objects::apply(client, workload, ns).await? {
            Applied::Created => Step::Created,
            Applied::Updated => Step::Updated,
            Applied::Unchanged => Step::Unchanged,
        };
        progress.step(&format!("Service {}", service.compose_name), step);
    }

    // 4. Started, or healthy with --wait.
    let target = if options.wait { Condition::Healthy } else { Condition::Started };
    let started_deadline = deadline.or_else(|| (!options.wait).then(|| Instant::now() + Duration::from_secs(120)));
    for service in &order {
        let Some(workload) = workloads.get(&service.name) else { continue };
        let condition =
            if objects::kind(workload) == "Job" && options.wait { Condition::CompletedSuccessfully } else { target };
        if reached.get(&service.name).is_some_and(|s| s.satisfies(condition)) {
            continue;
        }
        let state = wait::until(client, ns, &service.name, workload, condition, started_deadline).await?;
        report(progress, &service.compose_name, &state, reached.get(&service.name));
        reached.insert(service.name.clone(), state);
    }
    ports_in_use(client, ns, started).await
}

/// Fails when the node could not publish a port of this project (another program holds it): the agent
/// reports that as a `PortInUse` Warning Event on the Service, as Docker refuses `port is already
/// allocated`.
async fn ports_in_use(client: &Client, namespace: &str, since: jiff::Timestamp) -> Result<()> {
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await.map_err(api_err("listing events"))?;
    let since = since - jiff::SignedDuration::from_secs(1);
    let conflicts: Vec<String> = list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("PortInUse"))
        .filter(|e| e.last_timestamp.as_ref().is_some_and(|t| t.0 >= since))
        .map(|e| {
            format!(
                "service {}: {}",
                e.involved_object.name.as_deref().unwrap_or("?"),
                e.message.as_deref().unwrap_or("a published port is in use")
            )
        })
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(Error::Service(format!(
        "{}; hint: stop what holds the port, or publish another one (`ports:`)",
        conflicts.join("; ")
    )))
}

fn report(progress: &dyn Progress, service: &str, state: &State, before: Option<&State>) {
    let what = format!("Service {service}");
    match state {
        State::Healthy => {
            if !matches!(before, Some(State::Started)) {
                progress.step(&what, Step::Started);
            }
            progress.step(&what, Step::Healthy);
        }
        State::Started => progress.step(&what, Step::Started),
        State::Completed => progress.step(&what, Step::Completed),
        _ => {}
    }
}

/// The compose services to start: the named ones and, transitively, what they depend on.
fn select(project: &ProjectSpec, names: &[String]) -> Result<BTreeSet<String>> {
    let all: BTreeSet<String> = project.services.iter().map(|s| s.compose_name.clone()).collect();
    if names.is_empty() {
        return Ok(all);
    }
    let mut selected = BTreeSet::new();
    let mut todo: Vec<String> = Vec::new();
    for n in names {
        if !all.contains(n) {
            return Err(Error::Invalid(format!(
                "no such service: {n}; hint: the project's services are {}",
                all.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        todo.push(n.clone());
    }
    while let Some(n) = todo.pop() {
        if !selected.insert(n.clone()) {
            continue;
        }
        if let Some(s) = project.services.iter().find(|s| s.compose_name == n) {
            todo.extend(s.depends_on.iter().filter(|d| all.contains(&d.service)).map(|d| d.service.clone()));
        }
    }
    Ok(selected)
}

/// The selected services, dependencies first; ties keep file order. Cycles were refused by the loader.
fn start_order<'a>(project: &'a ProjectSpec, selected: &BTreeSet<String>) -> Result<Vec<&'a super::ServiceSpec>> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    let services: Vec<&super::ServiceSpec> =
        project.services.iter().filter(|s| selected.contains(&s.compose_name)).collect();
    while order.len() < services.len() {
        let before = order.len();
        for s in &services {
            if done.contains(s.compose_name.as_str()) {
                continue;
            }
            let ready =
                s.depends_on.iter().all(|d| done.contains(d.service.as_str()) || !selected.contains(&d.service));
            if ready {
                done.insert(&s.compose_name);
                order.push(*s);
            }
        }
        if order.len() == before {
            return Err(Error::Invalid("depends_on has a cycle".into()));
        }
    }
    Ok(order)
}

fn service_of(obj: &Value) -> String {
    obj["metadata"]["labels"][super::SERVICE_LABEL].as_str().unwrap_or_else(|| objects::name(obj)).to_owned()
}

/// Kinds `up` may leave behind when the compose file changes.
const ORPHAN_KINDS: &[(&str, &str, &str)] = &[
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("apps", "v1", "DaemonSet"),
    ("batch", "v1", "Job"),
    ("", "v1", "Service"),
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
];

/// Objects of the project in the cluster that the compose file no longer has: reported, and removed with
/// `--remove-orphans` (compose does the same with containers).
async fn orphans(client: &Client, project: &ProjectSpec, remove: bool, progress: &dyn Progress) -> Result<()> {
    let wanted: BTreeSet<(String, String)> =
        project.objects.iter().map(|o| (objects::kind(o).to_owned(), objects::name(o).to_owned())).collect();
    let selector = format!("{PART_OF}={},{MANAGED_BY}=flotilla", project.name);
    for (group, version, kind) in ORPHAN_KINDS {
        let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &project.namespace, &ar);
        let list = match api.list(&ListParams::default().labels(&selector)).await {
            Ok(l) => l,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(api_err(format!("listing {kind}s"))(e)),
        };
        for obj in list.items {
            let name = obj.metadata.name.clone().unwrap_or_default();
            if wanted.contains(&(kind.to_string(), name.clone())) {
                continue;
            }
            let what = format!("{kind} {name}");
            if remove {
                api.delete(&name, &DeleteParams::background()).await.map_err(api_err(format!("deleting {what}")))?;
                progress.step(&what, Step::Removed);
            } else if objects::is_workload(kind) {
                progress.step(&what, Step::Orphan);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::{Dependency, ServiceSpec};

    fn svc(name: &str, deps: &[&str]) -> ServiceSpec {
        ServiceSpec {
            compose_name: name.into(),
            name: name.into(),
            depends_on: deps
                .iter()
                .map(|d| Dependency { service: (*d).into(), condition: Condition::Started })
                .collect(),
            build: None,
        }
    }

    fn project(services: Vec<ServiceSpec>) -> ProjectSpec {
        ProjectSpec { name: "p".into(), namespace: "p".into(), objects: vec![], services }
    }

    #[test]
    fn dependencies_start_first_and_file_order_breaks_ties() {
        let p = project(vec![svc("web", &["api"]), svc("api", &["db"]), svc("db", &[]), svc("cache", &[])]);
        let all = select(&p, &[]).unwrap();
        let order: Vec<&str> = start_order(&p, &all).unwrap().iter().map(|s| s.compose_name.as_str()).collect();
        assert_eq!(order, ["db", "cache", "api", "web"]);
    }

    #[test]
    fn naming_a_service_brings_its_dependencies() {
        let p = project(vec![svc("web", &["api"]), svc("api", &["db"]), svc("db", &[]), svc("cache", &[])]);
        let s = select(&p, &["api".into()]).unwrap();
        assert_eq!(s.into_iter().collect::<Vec<_>>(), ["api", "db"]);
        assert!(select(&p, &["nope".into()]).is_err());
    }
}
