//! Pod volumes as host directories bind-mounted into the containers: emptyDir under the pod directory
//! (`medium: Memory` mounts a tmpfs there, shared by all the pod's containers), hostPath, configMap and
//! secret (files written from the API with items, paths and modes), downwardAPI, and
//! persistentVolumeClaim (a node directory `<agent-dir>/volumes/<namespace>/<claim>` that outlives pods
//! and `flotilla down`; a Pending claim is marked Bound).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::env::{EnvError, Sources, pod_field};
use super::network::run_cmd;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume}: {message}")]
    Setup { volume: String, message: String },
    #[error("volume {volume}: {source}")]
    Env { volume: String, source: EnvError },
    #[error("volume mount {0}: no volume with that name in the pod")]
    UnknownMount(String),
    #[error("volume {volume}: subPath {sub_path:?} must be a relative path inside the volume")]
    BadSubPath { volume: String, sub_path: String },
}

fn setup_err(volume: &str, message: impl std::fmt::Display) -> VolumeError {
    VolumeError::Setup { volume: volume.to_string(), message: message.to_string() }
}

/// Whether `p` is relative and stays inside its base (no `..`, no root).
fn is_safe_relative(p: &str) -> bool {
    !p.is_empty() && Path::new(p).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Writes `data` as files into `dir` (replacing what was there), following `items` when given.
fn write_files(
    volume: &str,
    dir: &Path,
    data: &HashMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    optional: bool,
) -> Result<(), VolumeError> {
    // The directory may already be bind-mounted into running containers (an adopted pod): update it in
    // place, never replace it, or the containers would keep seeing the old, deleted directory.
    std::fs::create_dir_all(dir).map_err(|e| setup_err(volume, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(|e| setup_err(volume, e))?;
    let entries: Vec<(String, String, i32)> = match items {
        Some(items) if !items.is_empty() => {
            let mut out = Vec::new();
            for item in items {
                if !data.contains_key(&item.key) {
                    if optional {
                        continue;
                    }
                    return Err(setup_err(volume, format!("configured to use key {} but it does not exist", item.key)));
                }
                out.push((item.key.clone(), item.path.clone(), item.mode.unwrap_or(default_mode)));
            }
            out
        }
        _ => data.keys().map(|k| (k.clone(), k.clone(), default_mode)).collect(),
    };
    let wanted: std::collections::HashSet<PathBuf> = entries.iter().map(|(_, path, _)| dir.join(path)).collect();
    remove_unwanted(dir, &wanted);
    for (key, path, mode) in entries {
        if !is_safe_relative(&path) {
            return Err(setup_err(volume, format!("item path {path:?} must be relative and must not contain '..'")));
        }
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| setup_err(volume, e))?;
        }
        std::fs::write(&target, &data[&key]).map_err(|e| setup_err(volume, e))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode as u32 & 0o7777))
            .map_err(|e| setup_err(volume, e))?;
    }
    Ok(())
}

/// Removes files under `dir` that are not in `wanted` (keys dropped from a ConfigMap or Secret), and
/// directories left empty by that.
fn remove_unwanted(dir: &Path, wanted: &std::collections::HashSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir {
            remove_unwanted(&path, wanted);
            if !wanted.iter().any(|w| w.starts_with(&path)) {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if !wanted.contains(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Gives `fs_group` ownership of a volume's files as the kubelet does for `securityContext.fsGroup`:
/// group owner set, group read (and write for writable volumes) added, setgid on directories.
fn apply_fs_group(volume: &str, root: &Path, gid: u32, writable: bool) -> Result<(), VolumeError> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| setup_err(volume, e))?;
        if meta.file_type().is_symlink() {
            continue;
        }
        std::os::unix::fs::chown(&path, None, Some(gid)).map_err(|e| setup_err(volume, e))?;
        let mut mode = meta.permissions().mode() & 0o7777;
        mode |= if writable { 0o060 } else { 0o040 };
        if meta.is_dir() {
            mode |= 0o2010;
            for entry in std::fs::read_dir(&path).map_err(|e| setup_err(volume, e))?.flatten() {
                stack.push(entry.path());
            }
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|e| setup_err(volume, e))?;
    }
    Ok(())
}

async fn is_mountpoint(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let p = path.to_string_lossy();
    text.lines().any(|l| l.split_whitespace().nth(4) == Some(p.as_ref()))
}

/// Prepares every volume of `pod` under `pod_dir`; returns volume name -> host path.
pub async fn prepare(
    client: &kube::Client,
    sources: &mut Sources,
    pod: &Pod,
    pod_dir: &Path,
    agent_dir: &Path,
    pod_ip: &str,
    host_ip: &str,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let fs_group = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.fs_group);
    let mut out = HashMap::new();
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
    for v in volumes {
        let name = v.name.clone();
        let own_dir = pod_dir.join("volumes").join(&name);
        let path = if let Some(ed) = &v.empty_dir {
            std::fs::create_dir_all(&own_dir).map_err(|e| setup_err(&name, e))?;
            if ed.medium.as_deref() == Some("Memory") && !is_mountpoint(&own_dir).await {
                let mut opts = "mode=0777".to_string();
                if let Some(limit) = ed.size_limit.as_ref().and_then(|q| super::env::parse_memory(&q.0)) {
                    opts.push_str(&format!(",size={limit}"));
                }
                let dir = own_dir.to_string_lossy().into_owned();
                run_cmd("mount", &["-t", "tmpfs", "-o", &opts, "tmpfs", &dir], None)
                    .await
                    .map_err(|e| setup_err(&name, e))?;
            }
            std::fs::set_permissions(&own_dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| setup_err(&name, e))?;
            own_dir
        } else if let Some(hp) = &v.host_path {
            let p = PathBuf::from(&hp.path);
            match hp.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => {
                    std::fs::create_dir_all(&p).map_err(|e| setup_err(&name, e))?;
                }
                "FileOrCreate" if !p.exists() => {
                    if let Some(parent) = p.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| setup_err(&name, e))?;
                    }
                    std::fs::write(&p, b"").map_err(|e| setup_err(&name, e))?;
                }
                "Directory" if !p.is_dir() => {
                    return Err(setup_err(&name, format!("hostPath {} is not a directory", hp.path)));
                }
                "File" if !p.is_file() => return Err(setup_err(&name, format!("hostPath {} is not a file", hp.path))),
                _ => {}
            }
            p
        } else if let Some(cm) = &v.config_map {
            let optional = cm.optional.unwrap_or(false);
            let data = match sources
                .configmap_bytes(&cm.name)
                .await
                .map_err(|e| VolumeError::Env { volume: name.clone(), source: e })?
            {
                Some(d) => d,
                None if optional => HashMap::new(),
                None => return Err(setup_err(&name, format!("configmap \"{}\" not found", cm.name))),
            };
            write_files(&name, &own_dir, &data, cm.items.as_ref(), cm.default_mode.unwrap_or(0o644), optional)?;
            own_dir
        } else if let Some(s) = &v.secret {
            let secret_name = s.secret_name.clone().unwrap_or_default();
            let optional = s.optional.unwrap_or(false);
            let data = match sources
                .secret_bytes(&secret_name)
                .await
                .map_err(|e| VolumeError::Env { volume: name.clone(), source: e })?
            {
                Some(d) => d,
                None if optional => HashMap::new(),
                None => return Err(setup_err(&name, format!("secret \"{secret_name}\" not found"))),
            };
            write_files(&name, &own_dir, &data, s.items.as_ref(), s.default_mode.unwrap_or(0o644), optional)?;
            own_dir
        } else if let Some(d) = &v.downward_api {
            let mut data = HashMap::new();
            let mut items = Vec::new();
            for item in d.items.iter().flatten() {
                if let Some(f) = &item.field_ref {
                    let value = pod_field(pod, &f.field_path, pod_ip, host_ip)
                        .map_err(|e| VolumeError::Env { volume: name.clone(), source: e })?;
                    data.insert(item.path.clone(), value.into_bytes());
                    items.push(KeyToPath { key: item.path.clone(), path: item.path.clone(), mode: item.mode });
                }
            }
            write_files(&name, &own_dir, &data, Some(&items), d.default_mode.unwrap_or(0o644), false)?;
            own_dir
        } else if let Some(claim) = &v.persistent_volume_claim {
            if !is_safe_relative(&claim.claim_name) || claim.claim_name.contains('/') {
                return Err(setup_err(&name, format!("invalid claim name {:?}", claim.claim_name)));
            }
            // Bind first: a directory is only made for a claim that exists (the claim watcher removes the
            // directories of deleted claims).
            bind_claim(client, &namespace, &claim.claim_name).await.map_err(|e| setup_err(&name, e))?;
            let dir = agent_dir.join("volumes").join(&namespace).join(&claim.claim_name);
            if !dir.exists() {
                std::fs::create_dir_all(&dir).map_err(|e| setup_err(&name, e))?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                    .map_err(|e| setup_err(&name, e))?;
            }
            dir
        } else {
            // Volume kinds this node cannot provide (projected tokens, cloud disks): an empty directory keeps
            // the pod running; the mount is then empty, which is logged once here.
            tracing::warn!(volume = %name, "unsupported volume type; using an empty directory");
            std::fs::create_dir_all(&own_dir).map_err(|e| setup_err(&name, e))?;
            own_dir
        };
        // hostPath volumes stay as the host has them, as in Kubernetes.
        if let Some(gid) = fs_group.and_then(|g| u32::try_from(g).ok())
            && v.host_path.is_none()
        {
            let writable = v.empty_dir.is_some() || v.persistent_volume_claim.is_some();
            apply_fs_group(&name, &path, gid, writable)?;
        }
        out.insert(name, path);
    }
    Ok(out)
}

/// Marks a claim Bound (this node provides its storage as a directory).
async fn bind_claim(client: &kube::Client, namespace: &str, claim: &str) -> Result<(), String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let pvc = api
        .get_opt(claim)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolumeclaim \"{claim}\" not found"))?;
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") {
        return Ok(());
    }
    let spec = pvc.spec.unwrap_or_default();
    let storage = spec.resources.and_then(|r| r.requests).and_then(|r| r.get("storage").cloned());
    let mut status = json!({"phase": "Bound", "accessModes": spec.access_modes.unwrap_or_default()});
    if let Some(storage) = storage {
        status["capacity"] = json!({"storage": storage});
    }
    api.patch_status(claim, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Docker bind specs (`host:container[:ro]`) for a container's volumeMounts.
pub fn binds(container: &Container, volumes: &HashMap<String, PathBuf>) -> Result<Vec<String>, VolumeError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let base = volumes.get(&m.name).ok_or_else(|| VolumeError::UnknownMount(m.name.clone()))?;
        let mut host = base.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if !is_safe_relative(sub) {
                return Err(VolumeError::BadSubPath { volume: m.name.clone(), sub_path: sub.to_string() });
            }
            host = base.join(sub);
            if !host.exists() {
                std::fs::create_dir_all(&host).map_err(|e| setup_err(&m.name, e))?;
                let _ = std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777));
            }
        }
        let mut spec = format!("{}:{}", host.display(), m.mount_path);
        if m.read_only.unwrap_or(false) {
            spec.push_str(":ro");
        }
        out.push(spec);
    }
    Ok(out)
}

/// Unmounts tmpfs emptyDirs and removes the pod directory.
pub async fn cleanup(pod_dir: &Path) {
    tracing::debug!(dir = %pod_dir.display(), "removing pod files");
    let volumes = pod_dir.join("volumes");
    if let Ok(entries) = std::fs::read_dir(&volumes) {
        for entry in entries.flatten() {
            let p = entry.path();
            if is_mountpoint(&p).await
                && let Err(e) = run_cmd("umount", &[&p.to_string_lossy()], None).await
            {
                tracing::warn!(dir = %p.display(), error = %e, "cannot unmount a memory volume");
            }
        }
    }
    let _ = std::fs::remove_dir_all(pod_dir);
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn files_are_updated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("v");
        let mut data: HashMap<String, Vec<u8>> = HashMap::new();
        data.insert("a".into(), b"1".to_vec());
        data.insert("b".into(), b"2".to_vec());
        let items = vec![
            KeyToPath { key: "a".into(), path: "a".into(), mode: None },
            KeyToPath { key: "b".into(), path: "sub/b".into(), mode: Some(0o600) },
        ];
        write_files("v", &vol, &data, Some(&items), 0o644, false).unwrap();
        let inode = std::fs::metadata(&vol).unwrap().ino();
        assert_eq!(std::fs::read(vol.join("sub/b")).unwrap(), b"2");
        assert_eq!(std::fs::metadata(vol.join("sub/b")).unwrap().permissions().mode() & 0o777, 0o600);
        data.insert("a".into(), b"3".to_vec());
        write_files("v", &vol, &data, Some(&items[..1].to_vec()), 0o644, false).unwrap();
        assert_eq!(std::fs::metadata(&vol).unwrap().ino(), inode, "the directory was replaced");
        assert_eq!(std::fs::read(vol.join("a")).unwrap(), b"3");
        assert!(!vol.join("sub").exists());
        let bad = vec![KeyToPath { key: "a".into(), path: "../x".into(), mode: None }];
        assert!(write_files("v", &vol, &data, Some(&bad), 0o644, false).is_err());
        let missing = vec![KeyToPath { key: "zz".into(), path: "zz".into(), mode: None }];
        assert!(write_files("v", &vol, &data, Some(&missing), 0o644, false).is_err());
        assert!(write_files("v", &vol, &data, Some(&missing), 0o644, true).is_ok());
    }
}
