//! `env_file`, and top-level `configs` and `secrets` with the service entries that mount them.
//!
//! An `env_file` becomes a ConfigMap the container reads with `envFrom`, so the file stays one
//! object to edit; `environment` entries that only repeat the file's value are left out of `env`
//! (entries that override it stay, and win, as in compose). A config becomes a ConfigMap and a secret a
//! Secret, each mounted as a single file where compose puts it: a config at its `target` (default
//! `/<name>`), a secret at `/run/secrets/<target or name>`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, EnvFromSource, KeyToPath, Secret, SecretVolumeSource, Volume,
    VolumeMount,
};

use super::unit::Unit;
use super::{Ctx, Object, names, unescape};
use crate::model::{FileRef, Service};

pub fn env_files(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let files = svc.env_files();
    if files.is_empty() {
        return;
    }
    let mut from = Vec::new();
    let mut provided: BTreeMap<String, String> = BTreeMap::new();
    let count = files.len();
    for (i, file) in files.iter().enumerate() {
        let path = ["services", u.compose.as_str(), "env_file", &i.to_string()];
        let vars = match ctx.files.env_file(&file.path, file.format.as_deref() == Some("raw")) {
            Ok(vars) => vars,
            Err(_) if file.required == Some(false) => continue,
            Err(e) => {
                ctx.error(
                    &path,
                    format!("cannot read {}: {e}", file.path),
                    "create the file or mark it required: false",
                );
                continue;
            }
        };
        let name = if count == 1 { names::join(&u.name, "env") } else { names::join(&u.name, &format!("env-{i}")) };
        let mut data = BTreeMap::new();
        for (k, v) in vars {
            provided.insert(k.clone(), v.clone());
            data.insert(k, v);
        }
        let cm = ConfigMap { metadata: ctx.meta(&name), data: Some(data), ..Default::default() };
        ctx.add_shared(Object::ConfigMap(cm));
        from.push(EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource { name: name.clone(), optional: None }),
            ..Default::default()
        });
        u.note(
            "ConfigMap",
            &name,
            format!("holds the variables of env_file {}; the container reads them all through envFrom", file.path),
        );
    }
    if let Some(env) = &mut u.container.env {
        // Compose merged the files into `environment`; what the ConfigMap already gives, env repeats.
        let repeated: BTreeSet<&String> = svc
            .environment
            .iter()
            .flatten()
            .filter(|(k, v)| v.as_deref().map(unescape).as_ref() == provided.get(*k))
            .map(|(k, _)| k)
            .collect();
        env.retain(|var| !repeated.contains(&var.name));
        if env.is_empty() {
            u.container.env = None;
        }
    }
    if !from.is_empty() {
        u.container.env_from = Some(from);
    }
}

/// The data of a config or secret: `file`, `content` or `environment`. `None` (after a diagnostic) if
/// there is none.
fn data(ctx: &mut Ctx, top: &str, key: &str, def: &crate::model::Secret) -> Option<Vec<u8>> {
    let path = [top, key];
    if let Some(file) = &def.file {
        return match ctx.files.read(file) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                ctx.error(&[top, key, "file"], format!("cannot read {file}: {e}"), "create the file or fix the path");
                None
            }
        };
    }
    if let Some(content) = &def.content {
        return Some(unescape(content).into_bytes());
    }
    if let Some(var) = &def.environment {
        return match ctx.files.variable(var) {
            Some(value) => Some(value.into_bytes()),
            None => {
                ctx.warn(
                    &path,
                    format!("variable {var} is not set; the object is empty"),
                    "set it where you run flotilla",
                );
                Some(Vec::new())
            }
        };
    }
    None
}

/// The octal mode compose prints as a string (`"0440"`); a number is taken as written in decimal.
fn mode(ctx: &mut Ctx, path: &[&str], entry: &FileRef) -> Option<i32> {
    let mode = entry.mode.as_ref()?;
    let parsed = match mode {
        crate::model::Scalar::Str(s) => i32::from_str_radix(s.trim_start_matches("0o"), 8).ok(),
        other => other.as_i64().and_then(|n| i32::try_from(n).ok()),
    };
    if parsed.is_none() {
        ctx.warn(path, format!("{mode} is not a file mode; using the default"), "write it in octal, e.g. \"0440\"");
    }
    parsed.filter(|m| (0..=0o777).contains(m))
}

pub fn mounts(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    for (kind, list) in [("configs", &svc.configs), ("secrets", &svc.secrets)] {
        for (i, entry) in list.iter().flatten().enumerate() {
            mount(ctx, u, kind, i, entry);
        }
    }
}

fn mount(ctx: &mut Ctx, u: &mut Unit, kind: &'static str, i: usize, entry: &FileRef) {
    let compose = u.compose.clone();
    let index = i.to_string();
    let path = ["services", compose.as_str(), kind, index.as_str()];
    let secret = kind == "secrets";
    let project = ctx.project;
    let Some(def) = (if secret { project.secret(&entry.source) } else { project.config(&entry.source) }) else {
        ctx.error(
            &path,
            format!("{:?} is not defined under top-level {kind}", entry.source),
            format!("define it under {kind}:"),
        );
        return;
    };
    let target = match &entry.target {
        Some(t) if t.starts_with('/') => t.clone(),
        Some(t) if secret => format!("/run/secrets/{t}"),
        Some(t) => format!("/{t}"),
        None if secret => format!("/run/secrets/{}", entry.source),
        None => format!("/{}", entry.source),
    };
    if entry.uid.is_some() || entry.gid.is_some() {
        ctx.warn(
            &path,
            "kubernetes cannot set the owner of a mounted file; uid and gid are ignored",
            "set the pod's fsGroup (kompose.security-context.fsgroup) or make the file world-readable",
        );
    }
    let file_mode = mode(ctx, &path, entry);
    let external = def.external.as_ref().is_some_and(|e| e.is_external());
    let object_name = if external {
        let name = def.name.clone().unwrap_or_else(|| entry.source.clone());
        ctx.warn(
            &[kind, &entry.source],
            format!(
                "external: the {} {:?} must exist in the namespace before the pods start",
                if secret { "Secret" } else { "ConfigMap" },
                names::k8s_name(&name)
            ),
            "create it with kubectl, with a key named like the compose entry",
        );
        names::k8s_name(&name)
    } else if secret {
        names::k8s_name(&entry.source)
    } else {
        names::join("config", &names::k8s_name(&entry.source))
    };
    let data_key = names::data_key(&entry.source);
    if !external {
        let Some(bytes) = data(ctx, kind, &entry.source, def) else { return };
        let mut meta = ctx.meta(&object_name);
        meta.annotations = Some(BTreeMap::from([(
            format!("{}{}", super::labels::PREFIX, &kind[..kind.len() - 1]),
            entry.source.clone(),
        )]));
        let object = if secret {
            Object::Secret(Secret {
                metadata: meta,
                data: Some(BTreeMap::from([(data_key.clone(), ByteString(bytes))])),
                type_: Some("Opaque".into()),
                ..Default::default()
            })
        } else {
            match String::from_utf8(bytes) {
                Ok(text) => Object::ConfigMap(ConfigMap {
                    metadata: meta,
                    data: Some(BTreeMap::from([(data_key.clone(), text)])),
                    ..Default::default()
                }),
                Err(e) => Object::ConfigMap(ConfigMap {
                    metadata: meta,
                    binary_data: Some(BTreeMap::from([(data_key.clone(), ByteString(e.into_bytes()))])),
                    ..Default::default()
                }),
            }
        };
        if ctx.add_shared(object) {
            for extra in ["labels", "driver", "driver_opts", "template_driver"] {
                let set = match extra {
                    "labels" => def.labels.is_some(),
                    "driver" => def.driver.is_some(),
                    "driver_opts" => def.driver_opts.is_some(),
                    _ => def.template_driver.is_some(),
                };
                if set {
                    ctx.warn(&[kind, &entry.source, extra], "has no kubernetes equivalent and is ignored", "");
                }
            }
        }
    }
    let volume_name = names::join(if secret { "secret" } else { "config" }, &names::k8s_name(&entry.source));
    let items = Some(vec![KeyToPath { key: data_key.clone(), path: data_key.clone(), mode: file_mode }]);
    let volume = if secret {
        Volume {
            name: volume_name.clone(),
            secret: Some(SecretVolumeSource { secret_name: Some(object_name.clone()), items, ..Default::default() }),
            ..Default::default()
        }
    } else {
        Volume {
            name: volume_name.clone(),
            config_map: Some(ConfigMapVolumeSource { name: object_name.clone(), items, ..Default::default() }),
            ..Default::default()
        }
    };
    u.add_volume(volume);
    u.container.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
        name: volume_name,
        mount_path: target.clone(),
        sub_path: Some(data_key),
        read_only: Some(true),
        ..Default::default()
    });
    let (k8s_kind, what) = if secret { ("Secret", "secret") } else { ("ConfigMap", "config") };
    u.note(
        k8s_kind,
        &object_name,
        format!("holds {what} {:?}, mounted read-only at {target} as compose does", entry.source),
    );
}
