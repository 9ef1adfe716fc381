//! Defaulting on create (and update), as kube-apiserver does for the fields our components and clients
//! rely on. Pure functions over the JSON object; allocation of cluster IPs and node ports is in
//! `registry.rs` because it needs the store.

use serde_json::{Value, json};

/// Sets `obj[key]` to `value` when it is absent, null or "" (Go's zero value reads as unset).
fn default(obj: &mut Value, key: &str, value: Value) {
    if let Some(map) = obj.as_object_mut() {
        let slot = map.entry(key.to_string()).or_insert(Value::Null);
        if slot.is_null() || slot.as_str() == Some("") {
            *slot = value;
        }
    }
}

/// The object at `obj[key]`, created as `{}` when absent.
fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    default(obj, key, json!({}));
    &mut obj[key]
}

/// Applies the defaults for `kind` (in `group`) to a new or updated object.
pub fn apply(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => {
            let spec = child(obj, "spec");
            pod_spec(spec);
            let status = child(obj, "status");
            default(status, "phase", json!("Pending"));
            default(status, "qosClass", json!("BestEffort"));
        }
        ("", "Service") => service(obj),
        ("", "Namespace") => {
            default(child(obj, "spec"), "finalizers", json!(["kubernetes"]));
            default(child(obj, "status"), "phase", json!("Active"));
        }
        ("", "PersistentVolumeClaim") => {
            let spec = child(obj, "spec");
            default(spec, "volumeMode", json!("Filesystem"));
            default(child(obj, "status"), "phase", json!("Pending"));
        }
        ("", "Secret") => default(obj, "type", json!("Opaque")),
        ("apps", "Deployment") => {
            let spec = child(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = child(spec, "strategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
            template(spec);
        }
        ("apps", "ReplicaSet") => {
            let spec = child(obj, "spec");
            default(spec, "replicas", json!(1));
            template(spec);
        }
        ("apps", "StatefulSet") => {
            let spec = child(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                default(child(strategy, "rollingUpdate"), "partition", json!(0));
            }
            template(spec);
        }
        ("apps", "DaemonSet") => {
            let spec = child(obj, "spec");
            default(spec, "revisionHistoryLimit", json!(10));
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!(1));
                default(ru, "maxSurge", json!(0));
            }
            template(spec);
        }
        ("batch", "Job") => {
            let spec = child(obj, "spec");
            default(spec, "backoffLimit", json!(6));
            default(spec, "completions", json!(1));
            default(spec, "parallelism", json!(1));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            let tpl = child(spec, "template");
            let pod = child(tpl, "spec");
            // A Job's pods must not restart forever; Never is what kubectl create job picks too.
            default(pod, "restartPolicy", json!("Never"));
            pod_spec(pod);
        }
        ("batch", "CronJob") => {
            let spec = child(obj, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
        }
        _ => {}
    }
}

/// Defaults of the pod template inside a workload spec.
fn template(spec: &mut Value) {
    let tpl = child(spec, "template");
    pod_spec(child(tpl, "spec"));
}

/// The pod spec defaults of kube-apiserver.
pub fn pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for container in containers {
                container_defaults(container);
            }
        }
    }
}

fn container_defaults(container: &mut Value) {
    let image = container.get("image").and_then(Value::as_str).unwrap_or_default().to_string();
    default(container, "imagePullPolicy", json!(image_pull_policy(&image)));
    default(container, "terminationMessagePath", json!("/dev/termination-log"));
    default(container, "terminationMessagePolicy", json!("File"));
    default(container, "resources", json!({}));
    if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default(port, "protocol", json!("TCP"));
        }
    }
}

/// Always for `:latest` or no tag (and no digest), else IfNotPresent.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn service(obj: &mut Value) {
    let spec = child(obj, "spec");
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "ipFamilies", json!(["IPv4"]));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default(port, "protocol", json!("TCP"));
            let p = port.get("port").cloned().unwrap_or(Value::Null);
            default(port, "targetPort", p);
        }
    }
    default(child(obj, "status"), "loadBalancer", json!({}));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy() {
        assert_eq!(image_pull_policy("busybox"), "Always");
        assert_eq!(image_pull_policy("busybox:latest"), "Always");
        assert_eq!(image_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(image_pull_policy("redis:7"), "IfNotPresent");
        assert_eq!(image_pull_policy("x@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn service_target_port() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        apply("", "Service", &mut svc);
        assert_eq!(svc["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(svc["spec"]["type"], "ClusterIP");
    }
}
