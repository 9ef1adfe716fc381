//! Compose model to Kubernetes objects.
//!
//! [`convert`] walks every service of a resolved [`Project`] and turns it into a workload (Deployment,
//! StatefulSet, DaemonSet or Job), its Services, and the ConfigMaps, Secrets, PVCs and NetworkPolicies it
//! needs. Every key of every service and top-level element has a defined outcome: it is converted, or it
//! produces a warning at `file:line:col` naming the key, saying why and what to do instead (the table of
//! outcomes is [`keys`]). Output is deterministic: Namespace first, then by kind, then by name.
//!
//! One module per concern, each with a function that adds to a [`unit::Unit`] (what one compose service
//! becomes) or to the shared object list:
//! - [`names`]: valid Kubernetes names, collisions; [`labels`]: our labels, Kompose's labels, `x-flotilla`;
//! - [`container`]: the container and pod-level settings; [`probe`]: `healthcheck`;
//! - [`volumes`]: `volumes`, `tmpfs`, `volumes_from`, `shm_size`; [`config`]: `configs`, `secrets`,
//!   `env_file`;
//! - [`depends`]: `depends_on`; [`network`]: `networks`, `network_mode`, aliases, links, NetworkPolicies;
//! - [`service`]: the two Services; [`workload`]: the controller; [`keys`]: warnings for the rest.
//!
//! Strings in the model are compose's canonical form, where every literal `$` is written `$$` (that is
//! how `docker-compose config` prints them); [`unescape`] gives the value compose hands to the container.

mod config;
mod container;
mod depends;
pub mod files;
mod keys;
pub mod labels;
mod names;
mod network;
mod probe;
pub mod render;
mod service;
mod unit;
mod volumes;
mod workload;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::diag::{Diagnostic, Errors, Severity};
use crate::model::Project;
use crate::source::SourceMap;

pub use files::{DirEntry, DiskFiles, MemoryFiles, ProjectFiles};
pub use labels::FlotillaExtension;

/// How bind mounts of host files and folders become volumes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BindMounts {
    /// A ConfigMap holding the files as they are at convert time (works on any cluster; read-only).
    #[default]
    ConfigMap,
    /// A hostPath volume (live and writable, but only on the machine that holds the path).
    HostPath,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// The namespace for every object; default: the project name made a valid name.
    pub namespace: Option<String>,
    pub bind_mounts: BindMounts,
    /// Image of the init containers that wait for dependencies; needs `sh`, `nc` and `nslookup`.
    /// Default: the project's `x-flotilla: {wait_image}`, else [`DEFAULT_WAIT_IMAGE`].
    pub wait_image: Option<String>,
    /// Size of a PVC when neither a label nor `x-flotilla` sets one.
    pub volume_size: String,
    /// The project directory. Bind mounts of paths outside it are host resources (`/proc`, a socket, the
    /// node's logs) and become hostPath volumes whatever `bind_mounts` says; `None` treats every path
    /// as the project's.
    pub project_dir: Option<std::path::PathBuf>,
    /// Whether `depends_on` becomes init containers that wait for the dependency. On for manifests meant
    /// for any cluster; `flotilla up` turns it off because it orders startup itself.
    pub wait_init_containers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            namespace: None,
            bind_mounts: BindMounts::ConfigMap,
            wait_image: None,
            volume_size: "100Mi".into(),
            project_dir: None,
            wait_init_containers: true,
        }
    }
}

/// The image of the init containers that wait for dependencies when nothing else is said.
pub const DEFAULT_WAIT_IMAGE: &str = "busybox:1.36";

/// One Kubernetes object of the output. Serialises as the object itself (with `apiVersion` and `kind`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Namespace(Namespace),
    NetworkPolicy(NetworkPolicy),
    ConfigMap(ConfigMap),
    Secret(Secret),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Service(Service),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    Job(Job),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::NetworkPolicy(_) => "NetworkPolicy",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::Service(_) => "Service",
            Object::Deployment(_) => "Deployment",
            Object::StatefulSet(_) => "StatefulSet",
            Object::DaemonSet(_) => "DaemonSet",
            Object::Job(_) => "Job",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::DaemonSet(o) => &o.metadata,
            Object::Job(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// Position of the kind in the output: what others depend on comes first (as `kubectl apply` of a
    /// directory and Helm order them).
    fn rank(&self) -> u8 {
        match self {
            Object::Namespace(_) => 0,
            Object::NetworkPolicy(_) => 1,
            Object::ConfigMap(_) => 2,
            Object::Secret(_) => 3,
            Object::PersistentVolumeClaim(_) => 4,
            Object::Service(_) => 5,
            Object::Deployment(_) => 6,
            Object::StatefulSet(_) => 7,
            Object::DaemonSet(_) => 8,
            Object::Job(_) => 9,
        }
    }
}

/// What one compose service became, for `flotilla explain`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceOrigin {
    /// The service's name in the compose file.
    pub compose_name: String,
    /// Its Kubernetes name.
    pub name: String,
    pub objects: Vec<ObjectNote>,
}

/// One object a service produced or uses, and one sentence on why it exists and how it connects.
/// `kind` is an object kind, or `InitContainer`, `Container` or `Volume` for a part of the pod worth
/// explaining (a dependency wait, a service sharing the pod, an emptyDir or hostPath).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectNote {
    pub kind: String,
    pub name: String,
    pub why: String,
}

#[derive(Clone, Debug)]
pub struct Conversion {
    pub objects: Vec<Object>,
    /// Warnings, in the order of the services and keys they are about.
    pub diagnostics: Vec<Diagnostic>,
    pub services: Vec<ServiceOrigin>,
}

/// Converts a resolved project. Errors (invalid names that collide, unreadable files a key needs) stop
/// the conversion and nothing is returned; everything else is a warning beside the objects.
pub fn convert(
    project: &Project,
    sources: &SourceMap,
    files: &dyn ProjectFiles,
    options: &Options,
) -> Result<Conversion, Errors> {
    let mut ctx = Ctx::new(project, sources, files, options);
    ctx.run();
    ctx.finish()
}

/// The conversion's state: inputs, the objects made so far, and diagnostics.
pub(crate) struct Ctx<'a> {
    pub project: &'a Project,
    pub sources: &'a SourceMap,
    pub files: &'a dyn ProjectFiles,
    pub options: &'a Options,
    pub namespace: String,
    /// The image of the init containers that wait for dependencies.
    pub wait_image: String,
    /// The value of `app.kubernetes.io/part-of`: the project's name, made a valid label value.
    pub part_of: String,
    /// Compose service name to Kubernetes name.
    pub names: BTreeMap<String, String>,
    pub objects: Vec<Object>,
    /// `(kind, name)` of shared objects already made (a config used by two services is one ConfigMap).
    pub made: BTreeSet<(&'static str, String)>,
    /// The services that mount each named volume, in file order (found once, not per volume).
    pub volume_users: BTreeMap<String, Vec<String>>,
    pub diagnostics: Vec<Diagnostic>,
    pub origins: Vec<ServiceOrigin>,
    /// `(service, alias)` from `links: [service:alias]`, added to the linked service's names.
    pub link_aliases: Vec<(String, String)>,
}

impl<'a> Ctx<'a> {
    fn new(project: &'a Project, sources: &'a SourceMap, files: &'a dyn ProjectFiles, options: &'a Options) -> Self {
        Ctx {
            project,
            sources,
            files,
            options,
            namespace: String::new(),
            wait_image: String::new(),
            part_of: String::new(),
            names: BTreeMap::new(),
            objects: Vec::new(),
            made: BTreeSet::new(),
            volume_users: volume_users(project),
            diagnostics: Vec::new(),
            origins: Vec::new(),
            link_aliases: Vec::new(),
        }
    }

    /// A diagnostic about the value at `path` (segments of the canonical document), keyed as the user
    /// writes it (`services.web.ulimits`).
    pub fn diag(&mut self, severity: Severity, path: &[&str], message: impl Into<String>, hint: Option<String>) {
        // `@key` addresses the key itself rather than its value (see `load::sourcemap`); it is not part of
        // the key's name.
        // A warning is about a key (what does not carry over) and points at it; an error is about a value
        // (a file that cannot be read, a name that collides) and points at the value, or at `@key`.
        let on_key = severity == Severity::Warning
            && path.last().is_some_and(|last| *last != "@key" && last.parse::<usize>().is_err());
        let location =
            if on_key { self.sources.at(&[path, &["@key"]].concat()) } else { self.sources.at(path) }.cloned();
        let key = path.iter().filter(|s| **s != "@key").copied().collect::<Vec<_>>().join(".");
        let mut d = match severity {
            Severity::Warning => Diagnostic::warning(location, key, message),
            Severity::Error => Diagnostic::error(location, key, message),
        };
        d.hint = hint;
        self.diagnostics.push(d);
    }

    pub fn warn(&mut self, path: &[&str], message: impl Into<String>, hint: impl Into<String>) {
        let hint = hint.into();
        self.diag(Severity::Warning, path, message, (!hint.is_empty()).then_some(hint));
    }

    pub fn error(&mut self, path: &[&str], message: impl Into<String>, hint: impl Into<String>) {
        let hint = hint.into();
        self.diag(Severity::Error, path, message, (!hint.is_empty()).then_some(hint));
    }

    /// Adds a shared object once; returns false if one of that kind and name was already there.
    pub fn add_shared(&mut self, object: Object) -> bool {
        let key = (object.kind(), object.name().to_string());
        if self.made.contains(&key) {
            return false;
        }
        self.made.insert(key);
        self.objects.push(object);
        true
    }

    /// Metadata every object gets: name, namespace and the project's labels.
    pub fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels::project_labels(&self.part_of)),
            ..Default::default()
        }
    }

    fn run(&mut self) {
        let project = labels::project_ext(self);
        self.wait_image =
            (self.options.wait_image.clone().or(project.wait_image)).unwrap_or_else(|| DEFAULT_WAIT_IMAGE.to_owned());
        self.namespace = names::namespace(self, project.namespace.as_deref());
        self.part_of = match self.project.name.as_deref() {
            Some(name) if !name.is_empty() => names::k8s_name(name),
            _ => self.namespace.clone(),
        };
        names::service_names(self);
        if self.diagnostics.iter().any(Diagnostic::is_error) {
            return;
        }
        keys::top_level(self);
        let mut units = unit::build_all(self);
        network::policies(self, &mut units);
        for u in units {
            unit::emit(self, u);
        }
        let mut ns = Namespace { metadata: self.meta(&self.namespace.clone()), ..Default::default() };
        ns.metadata.namespace = None;
        self.objects.push(Object::Namespace(ns));
        names::check_unique(self);
    }

    fn finish(self) -> Result<Conversion, Errors> {
        let (errors, warnings): (Vec<_>, Vec<_>) = self.diagnostics.into_iter().partition(Diagnostic::is_error);
        if !errors.is_empty() {
            return Err(Errors(errors));
        }
        // Kubernetes objects are large; sort their positions and move each object once.
        let mut order: Vec<usize> = (0..self.objects.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&self.objects[a], &self.objects[b]);
            (a.rank(), a.name()).cmp(&(b.rank(), b.name()))
        });
        let mut slots: Vec<Option<Object>> = self.objects.into_iter().map(Some).collect();
        let objects = order.into_iter().filter_map(|i| slots[i].take()).collect();
        Ok(Conversion { objects, diagnostics: warnings, services: self.origins })
    }
}

fn volume_users(project: &Project) -> BTreeMap<String, Vec<String>> {
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, service) in &project.services {
        for volume in service.volumes.iter().flatten() {
            if let (true, Some(source)) = (volume.kind == "volume", volume.source.as_deref()) {
                let list = users.entry(source.to_owned()).or_default();
                if !list.contains(name) {
                    list.push(name.clone());
                }
            }
        }
    }
    users
}

/// The value compose hands over for a canonical-form string: `$$` is one literal `$`.
pub fn unescape(text: &str) -> String {
    text.replace("$$", "$")
}

/// A value as the kubelet must receive it to pass `value` on unchanged: it turns `$$` into `$` and
/// expands `$(VAR)`, so every `$` followed by `$` or `(` is doubled; a `$VAR` for the shell stays.
pub fn kubelet_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' && matches!(chars.peek(), Some('$') | Some('(')) {
            out.push('$');
        }
    }
    out
}
