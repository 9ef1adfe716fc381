//! A container's environment as the kubelet builds it: `envFrom` sources first (ConfigMaps and Secrets, with
//! `prefix`, `optional` honoured), then `env` in order, each literal value `$(VAR)`-expanded against the
//! variables defined before it; `valueFrom` reads ConfigMap/Secret keys and pod fields.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use super::expand::expand;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{kind} \"{name}\" not found")]
    Missing { kind: &'static str, name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    MissingKey { kind: &'static str, namespace: String, name: String, key: String },
    #[error("unsupported fieldRef {0}")]
    Field(String),
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// Reads ConfigMaps and Secrets of one namespace once per container start.
pub struct Sources {
    configmaps: Api<ConfigMap>,
    secrets: Api<Secret>,
    cm_cache: HashMap<String, Option<HashMap<String, String>>>,
    secret_cache: HashMap<String, Option<HashMap<String, String>>>,
}

impl Sources {
    pub fn new(client: &kube::Client, namespace: &str) -> Self {
        Self {
            configmaps: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client.clone(), namespace),
            cm_cache: HashMap::new(),
            secret_cache: HashMap::new(),
        }
    }

    /// A ConfigMap's data (binaryData decoded lossily), or None when it does not exist.
    pub async fn configmap(&mut self, name: &str) -> Result<Option<HashMap<String, String>>, EnvError> {
        if let Some(v) = self.cm_cache.get(name) {
            return Ok(v.clone());
        }
        let value = self.configmaps.get_opt(name).await?.map(|cm| {
            let mut data: HashMap<String, String> = cm.data.unwrap_or_default().into_iter().collect();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
            }
            data
        });
        self.cm_cache.insert(name.to_string(), value.clone());
        Ok(value)
    }

    /// A Secret's data (stringData merged), or None when it does not exist.
    pub async fn secret(&mut self, name: &str) -> Result<Option<HashMap<String, String>>, EnvError> {
        if let Some(v) = self.secret_cache.get(name) {
            return Ok(v.clone());
        }
        let value = self.secrets.get_opt(name).await?.map(|s| {
            let mut data: HashMap<String, String> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            data.extend(s.string_data.unwrap_or_default());
            data
        });
        self.secret_cache.insert(name.to_string(), value.clone());
        Ok(value)
    }

    /// Raw bytes of a ConfigMap or Secret for volumes (keys -> bytes).
    pub async fn configmap_bytes(&self, name: &str) -> Result<Option<HashMap<String, Vec<u8>>>, EnvError> {
        Ok(self.configmaps.get_opt(name).await?.map(|cm| {
            let mut data: HashMap<String, Vec<u8>> =
                cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            for (k, v) in cm.binary_data.unwrap_or_default() {
                data.insert(k, v.0);
            }
            data
        }))
    }

    pub async fn secret_bytes(&self, name: &str) -> Result<Option<HashMap<String, Vec<u8>>>, EnvError> {
        Ok(self.secrets.get_opt(name).await?.map(|s| {
            let mut data: HashMap<String, Vec<u8>> =
                s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            data
        }))
    }
}

/// Pod field values for `fieldRef`.
pub fn pod_field(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&std::collections::BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key).cloned()).unwrap_or_default())
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.podIP" | "status.podIPs" => pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        _ => {
            if let Some(v) = keyed("metadata.labels['", meta.labels.as_ref()) {
                v
            } else if let Some(v) = keyed("metadata.annotations['", meta.annotations.as_ref()) {
                v
            } else {
                return Err(EnvError::Field(path.to_string()));
            }
        }
    })
}

/// Builds the environment of `container` (ordered; later definitions of a name win, as in the kubelet).
pub async fn container_env(
    sources: &mut Sources,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut order: Vec<String> = Vec::new();
    let mut vars: HashMap<String, String> = HashMap::new();
    let set = |order: &mut Vec<String>, vars: &mut HashMap<String, String>, k: String, v: String| {
        if !vars.contains_key(&k) {
            order.push(k.clone());
        }
        vars.insert(k, v);
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, kind, name) = if let Some(cm) = &from.config_map_ref {
            (sources.configmap(&cm.name).await?, cm.optional.unwrap_or(false), "configmap", cm.name.clone())
        } else if let Some(s) = &from.secret_ref {
            (sources.secret(&s.name).await?, s.optional.unwrap_or(false), "secret", s.name.clone())
        } else {
            continue;
        };
        match data {
            Some(data) => {
                let mut keys: Vec<_> = data.into_iter().collect();
                keys.sort();
                for (k, v) in keys {
                    set(&mut order, &mut vars, format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => return Err(EnvError::Missing { kind, name }),
        }
    }
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    for env in container.env.iter().flatten() {
        let value = if let Some(from) = &env.value_from {
            if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match sources.configmap(&r.name).await? {
                    Some(data) => match data.get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::MissingKey {
                                kind: "configmap",
                                namespace,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            });
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::Missing { kind: "configmap", name: r.name.clone() }),
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match sources.secret(&r.name).await? {
                    Some(data) => match data.get(&r.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError::MissingKey {
                                kind: "secret",
                                namespace,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            });
                        }
                    },
                    None if optional => continue,
                    None => return Err(EnvError::Missing { kind: "secret", name: r.name.clone() }),
                }
            } else if let Some(r) = &from.field_ref {
                pod_field(pod, &r.field_path, pod_ip, host_ip)?
            } else if let Some(r) = &from.resource_field_ref {
                resource_field(container, &r.resource)
            } else {
                String::new()
            }
        } else {
            expand(env.value.as_deref().unwrap_or(""), &[&vars])
        };
        set(&mut order, &mut vars, env.name.clone(), value);
    }
    Ok(order
        .into_iter()
        .map(|k| {
            let v = vars.get(&k).cloned().unwrap_or_default();
            (k, v)
        })
        .collect())
}

fn resource_field(container: &Container, resource: &str) -> String {
    let res = container.resources.as_ref();
    let (section, name) = resource.split_once('.').unwrap_or(("limits", resource));
    let map = match section {
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => res.and_then(|r| r.limits.as_ref()),
    };
    match map.and_then(|m| m.get(name)) {
        Some(q) if name == "cpu" => {
            parse_cpu_nanos(&q.0).map(|n| ((n + 999_999_999) / 1_000_000_000).to_string()).unwrap_or_default()
        }
        Some(q) => parse_memory(&q.0).map(|b| b.to_string()).unwrap_or_default(),
        None => String::new(),
    }
}

/// Parses a CPU quantity ("500m", "1", "0.25") into nano-CPUs.
pub fn parse_cpu_nanos(q: &str) -> Option<i64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().ok().map(|v| (v * 1_000_000.0) as i64);
    }
    q.parse::<f64>().ok().map(|v| (v * 1_000_000_000.0) as i64)
}

/// Parses a memory quantity ("512Mi", "1G", "1000", "1e3", "128974848") into bytes.
pub fn parse_memory(q: &str) -> Option<i64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 13] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("m", 1e-3),
    ];
    for (s, mult) in suffixes {
        if let Some(n) = q.strip_suffix(s) {
            return n.parse::<f64>().ok().map(|v| (v * mult) as i64);
        }
    }
    q.parse::<f64>().ok().map(|v| v as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_cpu_nanos("500m"), Some(500_000_000));
        assert_eq!(parse_cpu_nanos("2"), Some(2_000_000_000));
        assert_eq!(parse_cpu_nanos("0.25"), Some(250_000_000));
        assert_eq!(parse_memory("512Mi"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory("1G"), Some(1_000_000_000));
        assert_eq!(parse_memory("1e3"), Some(1000));
        assert_eq!(parse_memory("128974848"), Some(128974848));
    }
}
