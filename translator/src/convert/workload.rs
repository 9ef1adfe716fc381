//! The controller that runs a service's pod, and the settings that belong to it: replicas, restarts,
//! rolling updates, placement.
//!
//! A compose service is long-running: a Deployment by default; a DaemonSet for `deploy.mode: global`;
//! a StatefulSet when asked (`x-flotilla: {controller: statefulset}` or `kompose.controller.type`); a
//! Job for a service another waits on with `service_completed_successfully`, for `deploy.mode:
//! replicated-job`, or when asked. Compose's `restart` alone never makes a Job: `no` is its default.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, DaemonSetUpdateStrategy, Deployment, DeploymentSpec, DeploymentStrategy,
    RollingUpdateDaemonSet, RollingUpdateDeployment, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, PodAntiAffinity,
    PodTemplateSpec, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::depends::completed_by_others;
use super::labels::{self, Controller};
use super::unit::Unit;
use super::{Ctx, Object};
use crate::model::Service;

pub fn choose(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let deploy = svc.deploy.as_ref();
    let mode = deploy.and_then(|d| d.mode.as_deref());
    let from_mode = match mode {
        Some("global") => Some(Controller::DaemonSet),
        Some("replicated-job") => Some(Controller::Job),
        Some("global-job") => {
            ctx.warn(
                &["services", &compose, "deploy", "mode"],
                "kubernetes has no job that runs once per node; made one job",
                "",
            );
            Some(Controller::Job)
        }
        _ => None,
    };
    let waited_on = completed_by_others(ctx, &compose).then_some(Controller::Job);
    u.controller =
        u.ext.controller.or(u.kompose.controller).or(from_mode).or(waited_on).unwrap_or(Controller::Deployment);

    let replicas = deploy.and_then(|d| d.replicas.as_ref()).or(svc.scale.as_ref()).and_then(|r| r.as_i64());
    u.replicas = replicas.and_then(|r| i32::try_from(r).ok()).filter(|r| *r >= 0);
    if u.controller == Controller::DaemonSet && u.replicas.is_some() {
        ctx.warn(
            &["services", &compose, "deploy", "replicas"],
            "a daemonset runs one pod per node; replicas is ignored",
            "",
        );
    }
    restart(ctx, u, svc);
    updates(ctx, u, svc);
    placement(ctx, u, svc);
}

fn restart(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let policy = svc.deploy.as_ref().and_then(|d| d.restart_policy.as_ref());
    let (value, path): (Option<String>, Vec<&str>) = match (policy.and_then(|p| p.condition.clone()), &svc.restart) {
        (Some(c), _) => (Some(c), vec!["services", &compose, "deploy", "restart_policy", "condition"]),
        (None, Some(r)) => (Some(r.clone()), vec!["services", &compose, "restart"]),
        (None, None) => (None, vec![]),
    };
    let (kind, max) = match value.as_deref() {
        None => (None, None),
        Some(v) => {
            let (kind, max) = v.split_once(':').unwrap_or((v, ""));
            (Some(kind.to_string()), max.parse::<i32>().ok())
        }
    };
    let max = max.or_else(|| {
        policy.and_then(|p| p.max_attempts.as_ref()).and_then(|m| m.as_i64()).and_then(|m| i32::try_from(m).ok())
    });
    if let Some(p) = policy
        && (p.delay.is_some() || p.window.is_some())
    {
        ctx.warn(
            &["services", &compose, "deploy", "restart_policy"],
            "kubernetes restarts with its own back-off; delay and window are ignored",
            "",
        );
    }
    if u.controller == Controller::Job {
        match kind.as_deref() {
            None | Some("no") | Some("none") => {
                u.restart.job_policy = Some("Never".into());
                u.restart.backoff_limit = Some(0);
            }
            Some("on-failure") => {
                u.restart.job_policy = Some("OnFailure".into());
                u.restart.backoff_limit = max;
            }
            Some(other) => {
                u.restart.job_policy = Some("OnFailure".into());
                ctx.warn(&path, format!("a job ends when it succeeds; restart {other:?} becomes on-failure"), "");
            }
        }
        return;
    }
    match kind.as_deref() {
        None | Some("always") | Some("unless-stopped") | Some("any") => {}
        Some(other) => ctx.warn(
            &path,
            format!(
                "restart {other:?}: kubernetes restarts the containers of a {} whatever their exit status",
                kind_name(u.controller)
            ),
            "use x-flotilla: {controller: job} for a service that runs once",
        ),
    }
}

fn kind_name(c: Controller) -> &'static str {
    match c {
        Controller::Deployment => "Deployment",
        Controller::StatefulSet => "StatefulSet",
        Controller::DaemonSet => "DaemonSet",
        Controller::Job => "Job",
    }
}

fn updates(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let Some(deploy) = &svc.deploy else { return };
    if deploy.rollback_config.is_some() {
        ctx.warn(
            &["services", &compose, "deploy", "rollback_config"],
            "kubernetes does not roll back by itself",
            "use kubectl rollout undo",
        );
    }
    let Some(update) = &deploy.update_config else { return };
    let path = ["services", compose.as_str(), "deploy", "update_config"];
    let ignored: Vec<&str> = [
        ("delay", update.delay.is_some()),
        ("failure_action", update.failure_action.is_some()),
        ("monitor", update.monitor.is_some()),
        ("max_failure_ratio", update.max_failure_ratio.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if !ignored.is_empty() {
        ctx.warn(
            &path,
            format!("{} have no kubernetes equivalent and are ignored", ignored.join(", ")),
            "see minReadySeconds and progressDeadlineSeconds",
        );
    }
    if matches!(u.controller, Controller::StatefulSet | Controller::Job) {
        ctx.warn(&path, format!("a {} updates one pod at a time; ignored", kind_name(u.controller)), "");
        return;
    }
    let parallelism = update
        .parallelism
        .as_ref()
        .and_then(|p| p.as_i64())
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
        .unwrap_or(1);
    u.rolling = Some(match update.order.as_deref() {
        Some("start-first") => (parallelism, 0),
        _ => (0, parallelism),
    });
}

/// Swarm's placement in Kubernetes terms: constraints → required node affinity, spread preferences →
/// topology spread, `max_replicas_per_node: 1` → pod anti-affinity.
fn placement(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let Some(placement) = svc.deploy.as_ref().and_then(|d| d.placement.as_ref()) else { return };
    let mut requirements = Vec::new();
    for (i, c) in placement.constraints.iter().flatten().enumerate() {
        let path = ["services", compose.as_str(), "deploy", "placement", "constraints", &i.to_string()];
        let (left, op, right) = match (c.split_once("!="), c.split_once("==")) {
            (Some((l, r)), _) => (l.trim(), "NotIn", r.trim()),
            (None, Some((l, r))) => (l.trim(), "In", r.trim()),
            _ => {
                ctx.warn(&path, format!("{c:?} is not a == or != constraint; ignored"), "");
                continue;
            }
        };
        let key = match left {
            "node.hostname" => Some("kubernetes.io/hostname".to_string()),
            "node.platform.os" | "engine.labels.operatingsystem" => Some("kubernetes.io/os".to_string()),
            "node.platform.arch" => Some("kubernetes.io/arch".to_string()),
            "node.role" => {
                // Control-plane nodes carry this label; swarm managers are their counterpart.
                let manager = right == "manager";
                let exists = (op == "In") == manager;
                requirements.push(NodeSelectorRequirement {
                    key: "node-role.kubernetes.io/control-plane".into(),
                    operator: if exists { "Exists".into() } else { "DoesNotExist".into() },
                    values: None,
                });
                continue;
            }
            other => {
                other.strip_prefix("node.labels.").or_else(|| other.strip_prefix("engine.labels.")).map(str::to_string)
            }
        };
        match key {
            Some(key) => requirements.push(NodeSelectorRequirement {
                key,
                operator: op.into(),
                values: Some(vec![right.to_string()]),
            }),
            None => ctx.warn(
                &path,
                format!("{left} has no kubernetes node label; ignored"),
                "constrain on node.hostname, node.labels.* or node.platform.*",
            ),
        }
    }
    let mut affinity = Affinity::default();
    if !requirements.is_empty() {
        affinity.node_affinity = Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(requirements),
                    match_fields: None,
                }],
            }),
            ..Default::default()
        });
    }
    let selector = LabelSelector { match_labels: Some(labels::selector(&u.name)), ..Default::default() };
    let mut spread = Vec::new();
    for (i, p) in placement.preferences.iter().flatten().enumerate() {
        let Some(s) = &p.spread else { continue };
        let key = s
            .strip_prefix("node.labels.")
            .or_else(|| s.strip_prefix("engine.labels."))
            .map(str::to_string)
            .or_else(|| (s == "node.hostname").then(|| "kubernetes.io/hostname".into()));
        match key {
            Some(key) => spread.push(TopologySpreadConstraint {
                max_skew: 1,
                topology_key: key,
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(selector.clone()),
                ..Default::default()
            }),
            None => ctx.warn(
                &["services", &compose, "deploy", "placement", "preferences", &i.to_string()],
                format!("cannot spread over {s}"),
                "spread over node.labels.<label>",
            ),
        }
    }
    if !spread.is_empty() {
        u.pod.topology_spread_constraints = Some(spread);
    }
    match placement.max_replicas_per_node.as_ref().and_then(|m| m.as_i64()) {
        None => {}
        Some(1) => {
            affinity.pod_anti_affinity = Some(PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(selector),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
        Some(_) => ctx.warn(
            &["services", &compose, "deploy", "placement", "max_replicas_per_node"],
            "kubernetes can limit a node to one replica, not to n; ignored",
            "use 1, or a topology spread",
        ),
    }
    if affinity != Affinity::default() {
        u.pod.affinity = Some(affinity);
    }
}

pub fn make(ctx: &mut Ctx, u: &mut Unit) {
    let mut pod_labels = labels::service_labels(&ctx.part_of, &u.name);
    pod_labels.extend(u.pod_labels.clone());
    let mut spec = u.pod.clone();
    let mut containers = vec![u.container.clone()];
    containers.append(&mut spec.containers);
    spec.containers = containers;
    spec.init_containers = (!u.init.is_empty()).then(|| u.init.clone());
    spec.volumes = (!u.volumes.is_empty()).then(|| u.volumes.clone());
    if u.controller == Controller::Job {
        spec.restart_policy = u.restart.job_policy.clone().or(Some("Never".into()));
    }
    let template = PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: (!u.pod_annotations.is_empty()).then(|| u.pod_annotations.clone()),
            ..Default::default()
        }),
        spec: Some(spec),
    };
    let mut meta = ctx.meta(&u.name);
    meta.labels = Some(labels::service_labels(&ctx.part_of, &u.name));
    meta.annotations = (!u.annotations.is_empty()).then(|| u.annotations.clone());
    let selector = LabelSelector { match_labels: Some(labels::selector(&u.name)), ..Default::default() };
    let uses_claims = u.volumes.iter().any(|v| v.persistent_volume_claim.is_some());
    let replicas = u.replicas.map_or(String::new(), |r| format!(" ({r} replica{})", if r == 1 { "" } else { "s" }));
    let (object, why) = match u.controller {
        Controller::Deployment => {
            let strategy = match u.rolling {
                Some((surge, unavailable)) => Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                // A new pod cannot attach a ReadWriteOnce claim the old one holds on another node; compose
                // also stops the old container before starting the new one.
                None if uses_claims => {
                    Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None })
                }
                None => None,
            };
            let d = Deployment {
                metadata: meta,
                spec: Some(DeploymentSpec { replicas: u.replicas, selector, template, strategy, ..Default::default() }),
                ..Default::default()
            };
            (
                Object::Deployment(d),
                format!(
                    "runs the service's container{replicas} and replaces it if it stops, as compose keeps a service up"
                ),
            )
        }
        Controller::StatefulSet => {
            let s = StatefulSet {
                metadata: meta,
                spec: Some(StatefulSetSpec {
                    replicas: u.replicas,
                    selector,
                    template,
                    service_name: Some(u.name.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            (
                Object::StatefulSet(s),
                format!(
                    "runs the service's container{replicas} with a stable identity, as asked (x-flotilla or kompose.controller.type)"
                ),
            )
        }
        Controller::DaemonSet => {
            let update_strategy = u.rolling.map(|(surge, unavailable)| DaemonSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDaemonSet {
                    max_surge: Some(IntOrString::Int(surge)),
                    max_unavailable: Some(IntOrString::Int(unavailable.max(if surge == 0 { 1 } else { 0 }))),
                }),
            });
            let d = DaemonSet {
                metadata: meta,
                spec: Some(DaemonSetSpec { selector, template, update_strategy, ..Default::default() }),
                ..Default::default()
            };
            (Object::DaemonSet(d), "runs one pod on every node, as deploy.mode: global does".to_string())
        }
        Controller::Job => {
            let j = Job {
                metadata: meta,
                spec: Some(JobSpec {
                    template,
                    backoff_limit: u.restart.backoff_limit,
                    completions: u.replicas,
                    parallelism: u.replicas,
                    ..Default::default()
                }),
                ..Default::default()
            };
            (Object::Job(j), "runs the container to completion once: another service waits for it to finish, or it was asked to be a job".to_string())
        }
    };
    let kind = object.kind();
    ctx.objects.push(object);
    u.note(kind, &u.name.clone(), why);
    // The workload first in the explanation: it is what the service is.
    if let Some(last) = u.notes.pop() {
        u.notes.insert(0, last);
    }
}
