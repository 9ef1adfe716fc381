//! Labels and annotations: ours, Kompose's, and the `x-flotilla` extension.
//!
//! Every object carries `app.kubernetes.io/part-of` (the project) and `app.kubernetes.io/managed-by:
//! flotilla`; a service's objects also `app.kubernetes.io/name` and `compose.flotilla.dev/service`, the
//! label its Services select on. Kompose users keep their `kompose.*` service labels: the ones with a
//! meaning here are honoured ([`Kompose`]), the rest get a warning, and none is copied into annotations.
//!
//! `x-flotilla` carries settings that only make sense on Kubernetes. On a service:
//!
//! ```yaml
//! x-flotilla:
//!   controller: statefulset   # deployment | statefulset | daemonset | job (default: chosen from compose)
//!   liveness: true            # healthcheck also becomes a livenessProbe (default false)
//!   startup: true             # healthcheck also becomes a startupProbe covering start_period (default false)
//!   bind_mounts: hostpath     # configmap | hostpath: this service's bind mounts (default: --bind-mounts)
//!   service_type: NodePort    # type of the `<name>-published` Service (default LoadBalancer)
//! ```
//!
//! On a top-level volume:
//!
//! ```yaml
//! x-flotilla: {size: 5Gi, access_mode: ReadWriteMany, storage_class: fast}
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Ctx;
use crate::model::{Service, Volume};

pub const PREFIX: &str = "compose.flotilla.dev/";
pub const SERVICE_LABEL: &str = "compose.flotilla.dev/service";
pub const SERVICE_NAME: &str = "compose.flotilla.dev/service-name";
pub const DEPENDS_ON: &str = "compose.flotilla.dev/depends-on";
pub const ALIASES: &str = "compose.flotilla.dev/aliases";
pub const BUILD: &str = "compose.flotilla.dev/build";
pub const HOST_IPS: &str = "compose.flotilla.dev/host-ips";
/// Label of the pods on a compose network; NetworkPolicies select on it.
pub const NETWORK_PREFIX: &str = "network.compose.flotilla.dev/";

pub fn project_labels(project: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/part-of".to_string(), project.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), "flotilla".to_string()),
    ])
}

pub fn service_labels(project: &str, name: &str) -> BTreeMap<String, String> {
    let mut labels = project_labels(project);
    labels.insert("app.kubernetes.io/name".into(), name.into());
    labels.insert(SERVICE_LABEL.into(), name.into());
    labels
}

/// What a Service and a workload select: one label, stable for the life of the service.
pub fn selector(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(SERVICE_LABEL.to_string(), name.to_string())])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Controller {
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMountSetting {
    /// Kompose spells the volume types in camel case (`kompose.volume.type: hostPath`); both are accepted.
    #[serde(alias = "configMap")]
    ConfigMap,
    #[serde(alias = "hostPath")]
    HostPath,
}

/// `x-flotilla` on a service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlotillaExtension {
    pub controller: Option<Controller>,
    pub liveness: Option<bool>,
    pub startup: Option<bool>,
    pub bind_mounts: Option<BindMountSetting>,
    pub service_type: Option<String>,
}

/// `x-flotilla` at the top level of the project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlotillaProject {
    /// The namespace for every object (`--namespace` wins).
    pub namespace: Option<String>,
    /// The image of the init containers that wait for dependencies (`--wait-image` wins).
    pub wait_image: Option<String>,
}

/// `x-flotilla` on a top-level volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlotillaVolume {
    pub size: Option<String>,
    pub access_mode: Option<String>,
    pub storage_class: Option<String>,
}

fn parse_ext<T: for<'de> Deserialize<'de> + Default>(
    ctx: &mut Ctx,
    path: &[&str],
    value: Option<&serde_json::Value>,
) -> T {
    let Some(value) = value else { return T::default() };
    match serde_json::from_value(value.clone()) {
        Ok(ext) => ext,
        Err(e) => {
            let mut at = path.to_vec();
            at.push("x-flotilla");
            ctx.warn(
                &at,
                format!("ignored: {}", e.to_string().to_lowercase()),
                "see the x-flotilla section of README.md",
            );
            T::default()
        }
    }
}

pub(crate) fn project_ext(ctx: &mut Ctx) -> FlotillaProject {
    let value = ctx.project.extensions.get("x-flotilla").cloned();
    parse_ext(ctx, &[], value.as_ref())
}

pub(crate) fn service_ext(ctx: &mut Ctx, compose: &str, svc: &Service) -> FlotillaExtension {
    parse_ext(ctx, &["services", compose], svc.extensions.get("x-flotilla"))
}

pub(crate) fn volume_ext(ctx: &mut Ctx, key: &str, volume: &Volume) -> FlotillaVolume {
    parse_ext(ctx, &["volumes", key], volume.extensions.get("x-flotilla"))
}

/// Kompose's service labels that mean something here.
#[derive(Clone, Debug, Default)]
pub struct Kompose {
    pub service_type: Option<String>,
    pub controller: Option<Controller>,
    pub volume_size: Option<String>,
    pub storage_class: Option<String>,
    pub volume_type: Option<String>,
    pub volume_subpath: Option<String>,
    pub image_pull_policy: Option<String>,
    pub image_pull_secret: Option<String>,
    pub service_account: Option<String>,
    pub fs_group: Option<i64>,
    pub node_port: Option<i32>,
    pub external_traffic_policy: Option<String>,
    pub readiness_disable: bool,
}

/// Reads the `kompose.*` labels of a service, warning about the ones without an equivalent here.
pub(crate) fn kompose(ctx: &mut Ctx, compose: &str, svc: &Service) -> Kompose {
    let mut k = Kompose::default();
    let Some(labels) = &svc.labels else { return k };
    for (key, value) in labels {
        if !key.starts_with("kompose.") {
            continue;
        }
        let path = ["services", compose, "labels", key.as_str()];
        let value = super::unescape(value);
        match key.as_str() {
            "kompose.service.type" => match value.to_ascii_lowercase().as_str() {
                "nodeport" | "clusterip" | "loadbalancer" | "headless" => {
                    k.service_type = Some(value.to_ascii_lowercase())
                }
                _ => ctx.warn(
                    &path,
                    format!("unknown service type {value:?}"),
                    "use nodeport, clusterip, loadbalancer or headless",
                ),
            },
            "kompose.controller.type" => match value.to_ascii_lowercase().as_str() {
                "deployment" => k.controller = Some(Controller::Deployment),
                "statefulset" => k.controller = Some(Controller::StatefulSet),
                "daemonset" => k.controller = Some(Controller::DaemonSet),
                "replicationcontroller" => {
                    k.controller = Some(Controller::Deployment);
                    ctx.warn(&path, "replication controllers are obsolete; made a deployment", "");
                }
                _ => ctx.warn(
                    &path,
                    format!("unknown controller type {value:?}"),
                    "use deployment, statefulset or daemonset",
                ),
            },
            "kompose.volume.size" => k.volume_size = Some(value),
            "kompose.volume.storage-class-name" => k.storage_class = Some(value),
            "kompose.volume.type" => match value.as_str() {
                "persistentVolumeClaim" | "emptyDir" | "hostPath" | "configMap" => k.volume_type = Some(value),
                _ => ctx.warn(
                    &path,
                    format!("unknown volume type {value:?}"),
                    "use persistentVolumeClaim, emptyDir, hostPath or configMap",
                ),
            },
            "kompose.volume.subpath" => k.volume_subpath = Some(value),
            "kompose.image-pull-policy" => match value.as_str() {
                "Always" | "IfNotPresent" | "Never" => k.image_pull_policy = Some(value),
                _ => ctx.warn(&path, format!("unknown pull policy {value:?}"), "use Always, IfNotPresent or Never"),
            },
            "kompose.image-pull-secret" => k.image_pull_secret = Some(value),
            "kompose.serviceaccount-name" => k.service_account = Some(value),
            "kompose.security-context.fsgroup" => match value.parse() {
                Ok(n) => k.fs_group = Some(n),
                Err(_) => ctx.warn(&path, format!("{value:?} is not a group id"), "use a number"),
            },
            "kompose.service.nodeport.port" => match value.parse() {
                Ok(n) => k.node_port = Some(n),
                Err(_) => ctx.warn(&path, format!("{value:?} is not a port"), "use a number in the node port range"),
            },
            "kompose.service.external-traffic-policy" => match value.to_ascii_lowercase().as_str() {
                "local" => k.external_traffic_policy = Some("Local".into()),
                "cluster" => k.external_traffic_policy = Some("Cluster".into()),
                _ => ctx.warn(&path, format!("unknown traffic policy {value:?}"), "use local or cluster"),
            },
            "kompose.service.healthcheck.readiness.disable" => k.readiness_disable = value == "true",
            _ => {
                let hint = if key.starts_with("kompose.service.healthcheck") {
                    "write a compose healthcheck; it becomes the readiness probe"
                } else if key.starts_with("kompose.service.expose") {
                    "flotilla makes no Ingress; the <name>-published LoadBalancer Service carries published ports"
                } else {
                    "remove it, or set the field on the generated objects"
                };
                ctx.warn(&path, "this kompose label has no equivalent in flotilla and is ignored", hint);
            }
        }
    }
    k
}
