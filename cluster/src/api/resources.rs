//! The table of served resources: group, version, kind, plural, scope, short names and subresources.
//! Handlers, discovery and storage keys are all driven from it, so adding a resource is one line here
//! (plus defaulting, if it needs any).

/// One served resource.
#[derive(Debug)]
pub struct Resource {
    /// API group; "" for core.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Has a `/status` subresource (the main resource then ignores status changes).
    pub status: bool,
    /// Has a `/scale` subresource (autoscaling/v1 Scale over `spec.replicas`).
    pub scale: bool,
    /// In the `all` category (`kubectl get all`).
    pub all: bool,
}

// One positional constructor keeps the table below to one readable line per resource.
#[allow(clippy::too_many_arguments)]
const fn r(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    status: bool,
    scale: bool,
    all: bool,
) -> Resource {
    Resource { group, version, kind, plural, singular, namespaced, short_names, status, scale, all }
}

/// Every served resource, in discovery order.
pub static RESOURCES: &[Resource] = &[
    r("", "v1", "Namespace", "namespaces", "namespace", false, &["ns"], true, false, false),
    r("", "v1", "Pod", "pods", "pod", true, &["po"], true, false, true),
    r("", "v1", "Service", "services", "service", true, &["svc"], true, false, true),
    r("", "v1", "Endpoints", "endpoints", "endpoints", true, &["ep"], false, false, false),
    r("", "v1", "Node", "nodes", "node", false, &["no"], true, false, false),
    r("", "v1", "Event", "events", "event", true, &["ev"], false, false, false),
    r("", "v1", "ConfigMap", "configmaps", "configmap", true, &["cm"], false, false, false),
    r("", "v1", "Secret", "secrets", "secret", true, &[], false, false, false),
    r(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        true,
        false,
        false,
    ),
    r("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", false, &["pv"], true, false, false),
    r("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true, &["sa"], false, false, false),
    r("apps", "v1", "Deployment", "deployments", "deployment", true, &["deploy"], true, true, true),
    r("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true, &["rs"], true, true, true),
    r("apps", "v1", "StatefulSet", "statefulsets", "statefulset", true, &["sts"], true, true, true),
    r("apps", "v1", "DaemonSet", "daemonsets", "daemonset", true, &["ds"], true, false, true),
    r("batch", "v1", "Job", "jobs", "job", true, &[], true, false, true),
    r("batch", "v1", "CronJob", "cronjobs", "cronjob", true, &["cj"], true, false, true),
    r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", true, &[], false, false, false),
    r(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        "networkpolicy",
        true,
        &["netpol"],
        false,
        false,
        false,
    ),
    r("coordination.k8s.io", "v1", "Lease", "leases", "lease", true, &[], false, false, false),
    r("events.k8s.io", "v1", "Event", "events", "event", true, &["ev"], false, false, false),
];

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The plural as kube-apiserver names it in messages: `pods`, `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.to_string() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// The storage key prefix of every object of this resource: `/registry/<group>/<plural>/`.
    pub fn prefix(&self) -> String {
        let group = if self.group.is_empty() { "core" } else { self.group };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// The storage key prefix for one namespace (or every object, when `namespace` is None).
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }

    /// The `kind` of the list: `PodList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// The resource served at `group`/`version` under `plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of `kind` in `group` (any version).
pub fn find_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.kind == kind)
}

/// The groups (other than core) in discovery order, each with its one version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&'static str, &'static str)> = Vec::new();
    for res in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !groups.iter().any(|(g, _)| *g == res.group) {
            groups.push((res.group, res.version));
        }
    }
    groups
}
