//! `volumes`, `tmpfs`, `volumes_from` and `shm_size`.
//!
//! - a named volume is a PersistentVolumeClaim named after the volume, shared by every service that
//!   mounts it (size and access mode from `x-flotilla`, Kompose's labels, or defaults);
//! - an anonymous volume is an `emptyDir` (it lives as long as the pod, as compose's lives as long as
//!   the container);
//! - a bind mount is, by default, a ConfigMap holding a copy of the file or folder made at convert time
//!   (works on any cluster; read-only), or a `hostPath` when asked (`--bind-mounts hostpath`,
//!   `x-flotilla: {bind_mounts: hostpath}`, `kompose.volume.type: hostPath`); a warning either way,
//!   since neither is what compose does;
//! - `tmpfs` and `shm_size` are memory-backed `emptyDir`s;
//! - `volumes_from: [x]` mounts x's volumes at the same paths.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, ImageVolumeSource,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::container::memory;
use super::labels::{self, BindMountSetting};
use super::unit::Unit;
use super::{BindMounts, Ctx, Object, names};
use crate::model::{Service, ServiceVolume};

/// A ConfigMap holds at most 1 MiB; beyond that a bind mount falls back to hostPath.
const CONFIGMAP_LIMIT: usize = 1 << 20;

pub fn apply(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    for (i, v) in svc.volumes.iter().flatten().enumerate() {
        mount(ctx, u, &compose, i, v, false);
    }
    for (i, entry) in svc.tmpfs.iter().flatten().enumerate() {
        let mut parts = entry.split(':');
        let target = parts.next().unwrap_or_default().to_string();
        let mut size = None;
        for opt in parts.next().unwrap_or_default().split(',').filter(|o| !o.is_empty()) {
            match opt.split_once('=') {
                Some(("size", s)) => size = crate::model::parse_bytes(s),
                _ => ctx.warn(
                    &["services", &compose, "tmpfs", &i.to_string()],
                    format!("option {opt:?} is ignored"),
                    "only size= carries over",
                ),
            }
        }
        let name = names::join("tmpfs", &format!("{}-t{i}", u.name));
        memory_dir(u, &name, &target, size);
    }
    if let Some(size) = &svc.shm_size {
        // Kubernetes gives /dev/shm 64 MiB, like Docker; a memory emptyDir there is the usual way to
        // grow it.
        let bytes = size.bytes();
        memory_dir(u, &names::join("shm", &u.name.clone()), "/dev/shm", bytes);
    }
    for (i, from) in svc.volumes_from.iter().flatten().enumerate() {
        volumes_from(ctx, u, i, from);
    }
}

fn memory_dir(u: &mut Unit, name: &str, target: &str, size: Option<u64>) {
    u.add_volume(Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: size.map(memory) }),
        ..Default::default()
    });
    push_mount(u, VolumeMount { name: name.into(), mount_path: target.into(), ..Default::default() });
}

fn push_mount(u: &mut Unit, m: VolumeMount) {
    let mounts = u.container.volume_mounts.get_or_insert_with(Vec::new);
    if !mounts.iter().any(|x| x.mount_path == m.mount_path) {
        mounts.push(m);
    }
}

/// Mounts volume `i` of service `owner` (the unit's own service, or one named in `volumes_from`).
fn mount(ctx: &mut Ctx, u: &mut Unit, owner: &str, i: usize, v: &ServiceVolume, force_ro: bool) {
    let index = i.to_string();
    let path = ["services", owner, "volumes", index.as_str()];
    let Some(target) = v.target.clone() else {
        ctx.warn(&path, "the volume has no target and is ignored", "add target:");
        return;
    };
    let read_only = force_ro || v.read_only == Some(true);
    let mut m = VolumeMount {
        name: String::new(),
        mount_path: target.clone(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    if v.consistency.is_some() {
        ctx.warn(&path, "consistency only matters to docker desktop on macos; ignored", "");
    }
    let tag = names::k8s_name(owner);
    match v.kind.as_str() {
        "volume" => {
            m.sub_path = v.volume.as_ref().and_then(|o| o.subpath.clone()).or_else(|| u.kompose.volume_subpath.clone());
            match &v.source {
                Some(key) if u.kompose.volume_type.as_deref() != Some("emptyDir") => {
                    let Some(claim) = claim(ctx, u, key, &path) else { return };
                    m.name = names::join("pvc", &names::k8s_name(key));
                    u.add_volume(Volume {
                        name: m.name.clone(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: claim,
                            read_only: None,
                        }),
                        ..Default::default()
                    });
                }
                _ => {
                    m.name = names::join("anon", &format!("{tag}-v{i}"));
                    u.add_volume(Volume {
                        name: m.name.clone(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    });
                    u.note(
                        "Volume",
                        &m.name,
                        format!("emptyDir at {target}: a volume without a name lives as long as the pod"),
                    );
                }
            }
        }
        "bind" => {
            if !bind(ctx, u, owner, i, v, &mut m) {
                return;
            }
        }
        "tmpfs" => {
            m.name = names::join("tmpfs", &format!("{tag}-v{i}"));
            let size = v.tmpfs.as_ref().and_then(|t| t.size.as_ref()).and_then(|s| s.bytes());
            if v.tmpfs.as_ref().is_some_and(|t| t.mode.is_some()) {
                ctx.warn(
                    &path,
                    "kubernetes cannot set the mode of an emptyDir; tmpfs.mode is ignored",
                    "chmod it in the entrypoint",
                );
            }
            u.add_volume(Volume {
                name: m.name.clone(),
                empty_dir: Some(EmptyDirVolumeSource { medium: Some("Memory".into()), size_limit: size.map(memory) }),
                ..Default::default()
            });
        }
        "image" => {
            m.name = names::join("image", &format!("{tag}-v{i}"));
            m.sub_path = v.image.as_ref().and_then(|o| o.subpath.clone());
            m.read_only = Some(true);
            u.add_volume(Volume {
                name: m.name.clone(),
                image: Some(ImageVolumeSource {
                    reference: v.source.clone(),
                    pull_policy: Some("IfNotPresent".into()),
                }),
                ..Default::default()
            });
            ctx.warn(
                &path,
                "image volumes need the ImageVolume feature gate (beta, off by default in kubernetes 1.33)",
                "enable the gate, or copy the files into the service's image",
            );
        }
        other => {
            ctx.warn(
                &path,
                format!("{other} volumes have no kubernetes equivalent; the mount is skipped"),
                "use a named volume or a bind mount",
            );
            return;
        }
    }
    push_mount(u, m);
}

/// The claim for named volume `key`, making the PVC the first time. `None` after an error.
fn claim(ctx: &mut Ctx, u: &mut Unit, key: &str, path: &[&str]) -> Option<String> {
    let project = ctx.project;
    let Some(def) = project.volume(key) else {
        ctx.error(path, format!("volume {key:?} is not defined under top-level volumes"), "define it under volumes:");
        return None;
    };
    if def.external.as_ref().is_some_and(|e| e.is_external()) {
        let name = names::k8s_name(def.name.as_deref().unwrap_or(key));
        if ctx.made.insert(("ExternalClaim", name.clone())) {
            ctx.warn(
                &["volumes", key, "external"],
                format!("the PersistentVolumeClaim {name:?} must exist in the namespace"),
                "create it before applying",
            );
        }
        u.note("PersistentVolumeClaim", &name, format!("external volume {key:?}: an existing claim the pod mounts"));
        return Some(name);
    }
    let name = names::k8s_name(key);
    let ext = labels::volume_ext(ctx, key, def);
    let vlabel = |k: &str| def.labels.as_ref().and_then(|l| l.get(k)).cloned();
    let size = ext
        .size
        .clone()
        .or_else(|| vlabel("kompose.volume.size"))
        .or_else(|| u.kompose.volume_size.clone())
        .unwrap_or_else(|| ctx.options.volume_size.clone());
    let class = ext
        .storage_class
        .clone()
        .or_else(|| vlabel("kompose.volume.storage-class-name"))
        .or_else(|| u.kompose.storage_class.clone());
    let users: Vec<String> = ctx.volume_users.get(key).cloned().unwrap_or_default();
    let access = ext.access_mode.clone().unwrap_or_else(|| "ReadWriteOnce".into());
    let mut annotations = BTreeMap::from([(format!("{}volume", labels::PREFIX), key.to_string())]);
    for (k, v) in def.labels.iter().flatten() {
        if !k.starts_with("kompose.") {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let mut meta = ctx.meta(&name);
    meta.annotations = Some(annotations);
    let pvc = PersistentVolumeClaim {
        metadata: meta,
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![access.clone()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size.clone()))])),
                ..Default::default()
            }),
            storage_class_name: class,
            ..Default::default()
        }),
        ..Default::default()
    };
    if ctx.add_shared(Object::PersistentVolumeClaim(pvc)) {
        if users.len() > 1 && access == "ReadWriteOnce" {
            let list: Vec<&str> = users.iter().map(|s| s.as_str()).collect();
            ctx.warn(
                &["volumes", key],
                format!("shared by {}: with ReadWriteOnce their pods must run on one node", list.join(", ")),
                "set x-flotilla: {access_mode: ReadWriteMany} if the storage class supports it",
            );
        }
        if def.driver.as_deref().is_some_and(|d| d != "local") || def.driver_opts.is_some() {
            ctx.warn(
                &["volumes", key, "driver"],
                "volume drivers do not carry over; the claim uses the cluster's storage class",
                "choose a class with x-flotilla: {storage_class: ...}",
            );
        }
    }
    u.note(
        "PersistentVolumeClaim",
        &name,
        format!("named volume {key:?}: {size} of {access} storage that outlives the pod, as a compose volume outlives its container"),
    );
    Some(name)
}

/// Fills in a bind mount; false if it is skipped.
fn bind(ctx: &mut Ctx, u: &mut Unit, owner: &str, i: usize, v: &ServiceVolume, m: &mut VolumeMount) -> bool {
    let index = i.to_string();
    let path = ["services", owner, "volumes", index.as_str()];
    let Some(source) = v.source.clone() else {
        ctx.warn(&path, "the bind mount has no source and is skipped", "");
        return false;
    };
    let target = m.mount_path.clone();
    let tag = names::k8s_name(owner);
    m.name = names::join("bind", &format!("{tag}-v{i}"));
    let setting = match (u.ext.bind_mounts, u.kompose.volume_type.as_deref()) {
        (Some(BindMountSetting::HostPath), _) | (None, Some("hostPath")) => BindMounts::HostPath,
        (Some(BindMountSetting::ConfigMap), _) | (None, Some("configMap")) => BindMounts::ConfigMap,
        (None, Some("emptyDir")) => {
            u.add_volume(Volume {
                name: m.name.clone(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
            ctx.warn(
                &path,
                format!("kompose.volume.type emptyDir: {target} starts empty, without the files of {source}"),
                "",
            );
            return true;
        }
        // Files of the project are its configuration and travel as ConfigMaps; a path outside the project
        // (`/`, `/proc`, `/var/log`, a device) is a resource of the host and can only stay a host path.
        _ if outside_project(ctx, &source) => BindMounts::HostPath,
        _ => ctx.options.bind_mounts,
    };
    if let Some(b) = &v.bind {
        if b.selinux.is_some() {
            ctx.warn(
                &path,
                "selinux relabelling (:z, :Z) is not done by kubernetes; ignored",
                "set seLinuxOptions on the pod if your nodes enforce selinux",
            );
        }
        if b.recursive.as_deref().is_some_and(|r| r != "enabled") {
            ctx.warn(&path, "bind.recursive is ignored", "");
        }
    }
    if source.ends_with(".sock") && setting == BindMounts::ConfigMap {
        ctx.warn(
            &path,
            format!("{source} is a socket of the host; it cannot be copied into a ConfigMap, so the mount is skipped"),
            "use --bind-mounts hostpath if every node has the socket",
        );
        return false;
    }
    if setting == BindMounts::ConfigMap
        && let Some(done) = bind_configmap(ctx, u, &path, &source, m)
    {
        return done;
    }
    // hostPath, asked for or as the fallback for content a ConfigMap cannot hold.
    // Only the project's own files are looked at: what exists elsewhere on this machine says nothing
    // about the node that will run the pod, and would make the output depend on where it was made.
    let create = v.bind.as_ref().and_then(|b| b.create_host_path).unwrap_or(false);
    let missing =
        !outside_project(ctx, &source) && ctx.files.list_dir(&source).is_none() && ctx.files.read(&source).is_err();
    let kind = if missing && create { Some("DirectoryOrCreate".to_string()) } else { None };
    if let Some(p) = v.bind.as_ref().and_then(|b| b.propagation.as_deref()) {
        m.mount_propagation = match p {
            "rshared" | "shared" => Some("Bidirectional".into()),
            "rslave" | "slave" => Some("HostToContainer".into()),
            _ => Some("None".into()),
        };
        if m.mount_propagation.as_deref() == Some("Bidirectional")
            && u.container.security_context.as_ref().and_then(|s| s.privileged) != Some(true)
        {
            m.mount_propagation = Some("HostToContainer".into());
            ctx.warn(
                &path,
                "kubernetes allows shared propagation only in privileged containers; using rslave",
                "set privileged: true if you need rshared",
            );
        }
    }
    u.add_volume(Volume {
        name: m.name.clone(),
        host_path: Some(HostPathVolumeSource { path: source.clone(), type_: kind }),
        ..Default::default()
    });
    ctx.warn(
        &path,
        format!("bind mount of {source} becomes a hostPath: the pod sees that path on whichever node it runs on"),
        "keep the files on every node, pin the pod to one node, or use a named volume",
    );
    u.note("Volume", &m.name, format!("hostPath {source} mounted at {target}, as the bind mount in compose"));
    true
}

fn outside_project(ctx: &Ctx, source: &str) -> bool {
    ctx.options.project_dir.as_deref().is_some_and(|dir| !std::path::Path::new(source).starts_with(dir))
}

/// A bind mount as a ConfigMap. `None` to fall back to hostPath.
fn bind_configmap(ctx: &mut Ctx, u: &mut Unit, path: &[&str], source: &str, m: &mut VolumeMount) -> Option<bool> {
    let target = m.mount_path.clone();
    let cm_name = names::join(&u.name, &names::k8s_name(&target));
    let mut text: BTreeMap<String, String> = BTreeMap::new();
    let mut binary: BTreeMap<String, ByteString> = BTreeMap::new();
    let mut size = 0;
    let mut add = |key: String, bytes: Vec<u8>| {
        size += bytes.len();
        match String::from_utf8(bytes) {
            Ok(t) => text.insert(key, t),
            Err(e) => binary.insert(key, ByteString(e.into_bytes())).map(|_| String::new()),
        };
    };
    let single_key;
    if let Some(entries) = ctx.files.list_dir(source) {
        let mut skipped = Vec::new();
        for e in entries {
            let file = format!("{}/{}", source.trim_end_matches('/'), e.name);
            match (e.is_dir, ctx.files.read(&file)) {
                (false, Ok(bytes)) if names::data_key(&e.name) == e.name => add(e.name, bytes),
                _ => skipped.push(e.name),
            }
        }
        if !skipped.is_empty() {
            ctx.warn(
                path,
                format!("a ConfigMap holds only regular files with simple names; {} left out", skipped.join(", ")),
                "use --bind-mounts hostpath or a named volume for nested folders",
            );
        }
        single_key = None;
    } else {
        match ctx.files.read(source) {
            Ok(bytes) => {
                let base = source.rsplit('/').next().unwrap_or(source);
                let key = names::data_key(base);
                add(key.clone(), bytes);
                single_key = Some(key);
            }
            Err(_) => {
                u.add_volume(Volume {
                    name: m.name.clone(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                });
                ctx.warn(
                    path,
                    format!("{source} does not exist; compose would create it empty, so an empty emptyDir is mounted"),
                    "create the folder, or use a named volume",
                );
                return Some(true);
            }
        }
    }
    if size > CONFIGMAP_LIMIT {
        ctx.warn(path, format!("{source} holds more than a ConfigMap's 1 MiB; falling back to hostPath"), "");
        return None;
    }
    let mut meta = ctx.meta(&cm_name);
    meta.annotations = Some(BTreeMap::from([(format!("{}bind-source", labels::PREFIX), source.to_string())]));
    let cm = ConfigMap {
        metadata: meta,
        data: (!text.is_empty()).then_some(text),
        binary_data: (!binary.is_empty()).then_some(binary),
        ..Default::default()
    };
    ctx.add_shared(Object::ConfigMap(cm));
    u.add_volume(Volume {
        name: m.name.clone(),
        config_map: Some(ConfigMapVolumeSource { name: cm_name.clone(), ..Default::default() }),
        ..Default::default()
    });
    m.sub_path = single_key;
    let writable = if m.read_only == Some(true) { "" } else { ", and the container cannot write to it" };
    m.read_only = Some(true);
    ctx.warn(
        path,
        format!("bind mount of {source} becomes ConfigMap {cm_name:?}, a copy made now: edits on the host do not reach the pod{writable}"),
        "for a live mount on one machine use --bind-mounts hostpath or x-flotilla: {bind_mounts: hostpath}",
    );
    u.note(
        "ConfigMap",
        &cm_name,
        format!("a copy of {source}, mounted read-only at {target} in place of the bind mount"),
    );
    Some(true)
}

fn volumes_from(ctx: &mut Ctx, u: &mut Unit, i: usize, from: &str) {
    let compose = u.compose.clone();
    let path = ["services", compose.as_str(), "volumes_from", &i.to_string()];
    let (name, mode) = match from.strip_prefix("container:") {
        Some(_) => {
            ctx.warn(
                &path,
                "volumes of a container outside the project cannot be reached",
                "declare the volume in this project",
            );
            return;
        }
        None => from.split_once(':').unwrap_or((from, "rw")),
    };
    let project = ctx.project;
    let Some(other) = project.services.get(name) else {
        ctx.error(&path, format!("service {name:?} does not exist"), "name a service of this project");
        return;
    };
    for (j, v) in other.volumes.iter().flatten().enumerate() {
        let shareable = v.kind == "bind" || (v.kind == "volume" && v.source.is_some());
        if !shareable {
            ctx.warn(
                &path,
                format!(
                    "the {} volume at {} of {name:?} cannot be shared between pods and is skipped",
                    v.kind,
                    v.target.as_deref().unwrap_or("?")
                ),
                "give it a name under top-level volumes",
            );
            continue;
        }
        mount(ctx, u, name, j, v, mode == "ro");
    }
}
