//! What one compose service becomes before it is written out as objects, and the order in which the
//! concerns fill it in.
//!
//! A [`Unit`] holds one container plus everything around it (pod settings, volumes, ports, the
//! controller). Services with `network_mode: service:x` share x's network namespace, which in
//! Kubernetes means x's pod: their unit is folded into x's before objects are made.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use super::labels::{self, Controller, FlotillaExtension, Kompose};
use super::{Ctx, ObjectNote, ServiceOrigin};
use super::{config, container, depends, keys, network, probe, service, volumes, workload};
use crate::model::Service;

/// A container port: what the `<name>` Service exposes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortSpec {
    pub port: i32,
    pub protocol: String,
    pub name: Option<String>,
    pub app_protocol: Option<String>,
}

/// A published port: what the `<name>-published` Service exposes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub port: i32,
    pub target: i32,
    pub protocol: String,
    pub host_ip: Option<String>,
    pub app_protocol: Option<String>,
}

/// How the pod restarts, and for a Job how often it retries.
#[derive(Clone, Debug, Default)]
pub struct Restart {
    /// `Never` or `OnFailure` (Jobs only); controllers always restart.
    pub job_policy: Option<String>,
    pub backoff_limit: Option<i32>,
}

pub struct Unit {
    pub compose: String,
    pub name: String,
    pub ext: FlotillaExtension,
    pub kompose: Kompose,
    pub container: Container,
    /// Init containers: `pre_start` hooks, then waits for dependencies.
    pub init: Vec<Container>,
    /// Pod-level settings; `containers` and `volumes` are filled when the pod is written.
    pub pod: PodSpec,
    pub volumes: Vec<Volume>,
    /// Annotations of the workload and of the Services.
    pub annotations: BTreeMap<String, String>,
    pub pod_annotations: BTreeMap<String, String>,
    /// Labels of the pod beyond the service's own (compose networks).
    pub pod_labels: BTreeMap<String, String>,
    pub ports: Vec<PortSpec>,
    pub published: Vec<Published>,
    pub headless: bool,
    /// Extra names that must resolve to this service (network aliases, links, container_name).
    pub aliases: Vec<String>,
    pub controller: Controller,
    pub replicas: Option<i32>,
    /// `(maxSurge, maxUnavailable)` from `deploy.update_config`.
    pub rolling: Option<(i32, i32)>,
    pub restart: Restart,
    /// Compose names of the services whose containers joined this pod (`network_mode: service:x`).
    pub members: Vec<String>,
    /// Set for a unit that joins another service's pod.
    pub pod_owner: Option<String>,
    pub notes: Vec<ObjectNote>,
}

impl Unit {
    pub fn note(&mut self, kind: &str, name: &str, why: impl Into<String>) {
        self.notes.push(ObjectNote { kind: kind.into(), name: name.into(), why: why.into() });
    }

    /// Adds a pod volume unless one with the same name is there (two mounts of one PVC share it).
    pub fn add_volume(&mut self, volume: Volume) {
        if !self.volumes.iter().any(|v| v.name == volume.name) {
            self.volumes.push(volume);
        }
    }
}

fn build(ctx: &mut Ctx, compose: &str, svc: &Service) -> Unit {
    let name = ctx.names.get(compose).cloned().unwrap_or_else(|| compose.to_string());
    let ext = labels::service_ext(ctx, compose, svc);
    let kompose = labels::kompose(ctx, compose, svc);
    let mut u = Unit {
        compose: compose.to_string(),
        name: name.clone(),
        ext,
        kompose,
        container: Container { name, ..Default::default() },
        init: Vec::new(),
        pod: PodSpec::default(),
        volumes: Vec::new(),
        annotations: BTreeMap::new(),
        pod_annotations: BTreeMap::new(),
        pod_labels: BTreeMap::new(),
        ports: Vec::new(),
        published: Vec::new(),
        headless: false,
        aliases: Vec::new(),
        controller: Controller::Deployment,
        replicas: None,
        rolling: None,
        restart: Restart::default(),
        members: Vec::new(),
        pod_owner: None,
        notes: Vec::new(),
    };
    u.annotations.insert(labels::SERVICE_NAME.into(), compose.to_string());
    u.pod_annotations.insert(labels::SERVICE_NAME.into(), compose.to_string());
    container::apply(ctx, &mut u, svc);
    config::env_files(ctx, &mut u, svc);
    config::mounts(ctx, &mut u, svc);
    volumes::apply(ctx, &mut u, svc);
    probe::apply(ctx, &mut u, svc);
    network::apply(ctx, &mut u, svc);
    service::ports(ctx, &mut u, svc);
    depends::apply(ctx, &mut u, svc);
    workload::choose(ctx, &mut u, svc);
    keys::service(ctx, compose, svc);
    u
}

/// Builds every service's unit and folds `network_mode: service:x` units into x's.
pub fn build_all(ctx: &mut Ctx) -> Vec<Unit> {
    let project = ctx.project;
    let mut units: Vec<Unit> = project.services.iter().map(|(compose, svc)| build(ctx, compose, svc)).collect();
    let owners: BTreeMap<String, String> =
        units.iter().filter_map(|u| Some((u.compose.clone(), u.pod_owner.clone()?))).collect();
    let root_of = |start: &str| -> String {
        let mut at = start.to_string();
        for _ in 0..=owners.len() {
            match owners.get(&at) {
                Some(next) => at = next.clone(),
                None => return at,
            }
        }
        start.to_string()
    };
    let mut roots: Vec<Unit> = Vec::new();
    let mut joining: Vec<(String, Unit)> = Vec::new();
    for u in units.drain(..) {
        let root = root_of(&u.compose);
        if root == u.compose {
            roots.push(u);
        } else {
            joining.push((root, u));
        }
    }
    for (root, member) in joining {
        match roots.iter_mut().find(|r| r.compose == root) {
            Some(owner) => {
                let lost: Vec<&str> = [
                    ("pod settings (hostname, dns, hosts, sysctls, grace period...)", member.pod != PodSpec::default()),
                    ("ports", !member.ports.is_empty() || !member.published.is_empty()),
                    (
                        "replicas and controller",
                        member.replicas.is_some() || member.controller != Controller::Deployment,
                    ),
                ]
                .into_iter()
                .filter_map(|(what, set)| set.then_some(what))
                .collect();
                if !lost.is_empty() {
                    let message = format!(
                        "shares the pod of {root:?}, whose {} apply; this service's are ignored",
                        lost.join(", ")
                    );
                    ctx.warn(&["services", &member.compose, "network_mode"], message, format!("set them on {root:?}"));
                }
                join(owner, member)
            }
            // A cycle of network_mode references: give the service its own pod.
            None => {
                let mut member = member;
                member.pod_owner = None;
                roots.push(member);
            }
        }
    }
    roots
}

fn join(owner: &mut Unit, member: Unit) {
    let why = format!(
        "compose service {:?} shares this pod's network namespace (network_mode: service:{}), so it runs as a second container here",
        member.compose, owner.compose
    );
    owner.note("Container", &member.name, why);
    owner.pod_annotations.insert(format!("{}member.{}", labels::PREFIX, member.name), member.compose.clone());
    owner.members.push(member.compose.clone());
    for v in member.volumes {
        owner.add_volume(v);
    }
    for c in member.init {
        if !owner.init.iter().any(|i| i.name == c.name) {
            owner.init.push(c);
        }
    }
    owner.pod.containers.push(member.container);
    owner.notes.extend(member.notes);
}

/// Writes a unit's Services and workload, and its explanation.
pub fn emit(ctx: &mut Ctx, mut u: Unit) {
    service::make(ctx, &mut u);
    workload::make(ctx, &mut u);
    let members = u.members.clone();
    ctx.origins.push(ServiceOrigin { compose_name: u.compose.clone(), name: u.name.clone(), objects: u.notes });
    for m in members {
        let name = ctx.names.get(&m).cloned().unwrap_or_else(|| m.clone());
        let why =
            format!("runs as container {name:?} in the pod of {:?}, whose network namespace it shares", u.compose);
        ctx.origins.push(ServiceOrigin {
            compose_name: m,
            name,
            objects: vec![ObjectNote { kind: "Container".into(), name: u.name.clone(), why }],
        });
    }
    ctx.origins.sort_by(|a, b| a.compose_name.cmp(&b.compose_name));
}
