//! The outcome of every compose key: converted (by which module), resolved by the loader, or not
//! carried over (with why and what to do instead). [`SERVICE_KEYS`] and [`TOP_LEVEL_KEYS`] are the one
//! table of this; a test checks that every key of the model is in it, so a new key cannot be dropped
//! silently. Keys converted only in part warn about the rest where they are converted.

use super::Ctx;
use crate::model::Service;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Converted; the text says into what.
    Converted(&'static str),
    /// Already applied by the loader (nothing left to convert).
    Loader(&'static str),
    /// Not carried over: a warning with this reason and hint.
    Unsupported { why: &'static str, hint: &'static str },
}

use Outcome::{Converted, Loader, Unsupported};

const NO_DEVICES: Outcome = Unsupported {
    why: "kubernetes gives containers devices through device plugins, not by path",
    hint: "install a device plugin for the device, or use a privileged container with a hostPath",
};
const WINDOWS: Outcome = Unsupported { why: "a windows container setting; ignored", hint: "" };
const SWAP: Outcome =
    Unsupported { why: "kubernetes manages swap per node, not per container", hint: "configure swap on the kubelet" };

pub const SERVICE_KEYS: &[(&str, Outcome)] = &[
    ("annotations", Converted("pod template annotations")),
    ("attach", Unsupported { why: "only decides which logs `compose up` prints; ignored", hint: "" }),
    (
        "blkio_config",
        Unsupported {
            why: "kubernetes has no block-io weights or limits",
            hint: "use a storage class with the io limits you need",
        },
    ),
    ("build", Converted("image name plus the compose.flotilla.dev/build annotation; `flotilla up` builds it")),
    ("cap_add", Converted("securityContext.capabilities.add")),
    ("cap_drop", Converted("securityContext.capabilities.drop")),
    ("cgroup", Unsupported { why: "kubernetes gives every container a private cgroup namespace", hint: "" }),
    ("cgroup_parent", Unsupported { why: "the kubelet decides the cgroup hierarchy of pods", hint: "" }),
    ("command", Converted("container args ($ doubled before $ and ( for the kubelet)")),
    ("configs", Converted("ConfigMap mounted at the config's target")),
    ("container_name", Converted("an extra Service named after it, so the name resolves")),
    ("cpu_count", WINDOWS),
    ("cpu_percent", WINDOWS),
    ("cpu_period", Converted("with cpu_quota: limits.cpu = quota / period")),
    ("cpu_quota", Converted("with cpu_period: limits.cpu = quota / period")),
    ("cpu_rt_period", Unsupported { why: "kubernetes has no real-time cpu scheduling settings", hint: "" }),
    ("cpu_rt_runtime", Unsupported { why: "kubernetes has no real-time cpu scheduling settings", hint: "" }),
    (
        "cpu_shares",
        Unsupported {
            why: "kubernetes derives cpu shares from the cpu request",
            hint: "set deploy.resources.reservations.cpus",
        },
    ),
    ("cpus", Converted("limits.cpu")),
    (
        "cpuset",
        Unsupported {
            why: "kubernetes pins cpus only through the kubelet's cpu manager",
            hint: "use the static cpu manager policy and whole-cpu requests equal to limits",
        },
    ),
    ("credential_spec", WINDOWS),
    ("depends_on", Converted("compose.flotilla.dev/depends-on annotation plus init containers that wait")),
    ("deploy", Converted("replicas, controller, resources, rolling update, placement, restart policy")),
    (
        "develop",
        Unsupported {
            why: "compose watch is a local development loop; nothing runs it on a cluster",
            hint: "use `docker compose watch` while developing",
        },
    ),
    ("device_cgroup_rules", NO_DEVICES),
    ("devices", NO_DEVICES),
    ("dns", Converted("dnsConfig.nameservers")),
    ("dns_opt", Converted("dnsConfig.options")),
    ("dns_search", Converted("dnsConfig.searches")),
    ("domainname", Converted("pod subdomain")),
    ("entrypoint", Converted("container command ($ doubled before $ and ( for the kubelet)")),
    ("env_file", Converted("a ConfigMap per file, read with envFrom")),
    ("environment", Converted("container env ($ doubled before $ and ( for the kubelet)")),
    ("expose", Converted("container ports and ports of the <name> Service")),
    ("extends", Loader("merged into the service by the loader")),
    (
        "external_links",
        Unsupported {
            why: "containers outside the project are not on the cluster",
            hint: "make an ExternalName Service for what they point to",
        },
    ),
    ("extra_hosts", Converted("hostAliases")),
    ("gpus", Converted("limits of nvidia.com/gpu")),
    ("group_add", Converted("supplementalGroups (numeric ids)")),
    ("healthcheck", Converted("readinessProbe (liveness and startup probes when asked in x-flotilla)")),
    ("hostname", Converted("pod hostname")),
    ("image", Converted("container image with imagePullPolicy IfNotPresent")),
    ("init", Converted("shareProcessNamespace, so the pause container reaps zombies as pid 1")),
    ("ipc", Converted("hostIPC for host")),
    ("isolation", WINDOWS),
    ("label_file", Loader("merged into labels by the loader")),
    ("labels", Converted("annotations of the workload, pod and Services; kompose.* labels are settings")),
    ("links", Converted("an extra Service named after the alias")),
    (
        "logging",
        Unsupported {
            why: "kubernetes keeps container logs on the node; log drivers do not carry over",
            hint: "ship logs with the cluster's logging agent",
        },
    ),
    ("mac_address", Unsupported { why: "the cluster's network chooses pod interfaces", hint: "" }),
    ("mem_limit", Converted("limits.memory")),
    ("mem_reservation", Converted("requests.memory")),
    ("mem_swappiness", SWAP),
    ("memswap_limit", SWAP),
    (
        "models",
        Unsupported {
            why: "docker model runner does not run on a cluster",
            hint: "run the model as a service of its own",
        },
    ),
    ("network_mode", Converted("host: hostNetwork; service:x: a container in x's pod")),
    ("networks", Converted("pod labels selected by one NetworkPolicy per network; aliases become Services")),
    (
        "oom_kill_disable",
        Unsupported { why: "kubernetes does not let a container opt out of the oom killer", hint: "" },
    ),
    (
        "oom_score_adj",
        Unsupported {
            why: "the kubelet sets oom scores from the pod's qos class",
            hint: "set requests equal to limits for the guaranteed class",
        },
    ),
    ("pid", Converted("hostPID for host")),
    (
        "pids_limit",
        Unsupported {
            why: "kubernetes limits pids per node, not per container",
            hint: "set --pod-max-pids on the kubelet",
        },
    ),
    ("platform", Converted("nodeSelector kubernetes.io/os and kubernetes.io/arch")),
    ("ports", Converted("container ports; published ones on the <name>-published LoadBalancer Service")),
    ("post_start", Converted("lifecycle.postStart")),
    ("pre_start", Converted("init containers")),
    ("pre_stop", Converted("lifecycle.preStop")),
    ("privileged", Converted("securityContext.privileged")),
    ("profiles", Loader("applied by the loader: only active services remain")),
    (
        "provider",
        Unsupported {
            why: "providers are plugins compose runs on the host; nothing runs them on a cluster",
            hint: "create what the provider makes by other means",
        },
    ),
    ("pull_policy", Converted("imagePullPolicy")),
    (
        "pull_refresh_after",
        Unsupported { why: "kubernetes pulls when a pod starts, by imagePullPolicy", hint: "use pull_policy: always" },
    ),
    ("read_only", Converted("securityContext.readOnlyRootFilesystem")),
    ("restart", Converted("controllers always restart; Jobs: restartPolicy and backoffLimit")),
    ("runtime", Converted("runtimeClassName")),
    ("scale", Converted("replicas")),
    ("secrets", Converted("Secret mounted at /run/secrets/<name>")),
    ("security_opt", Converted("securityContext: no-new-privileges, seccomp, apparmor, selinux labels")),
    ("shm_size", Converted("a memory emptyDir at /dev/shm")),
    ("stdin_open", Converted("container stdin")),
    ("stop_grace_period", Converted("terminationGracePeriodSeconds")),
    ("stop_signal", Converted("lifecycle.stopSignal")),
    ("storage_opt", Converted("size: limits.ephemeral-storage")),
    ("sysctls", Converted("pod securityContext.sysctls")),
    ("tmpfs", Converted("memory emptyDir")),
    ("tty", Converted("container tty")),
    (
        "ulimits",
        Unsupported {
            why: "kubernetes has no per-container ulimits",
            hint: "raise them in the image's entrypoint (ulimit) or in the node's container runtime defaults",
        },
    ),
    ("use_api_socket", Unsupported { why: "a pod has no docker engine socket", hint: "" }),
    ("user", Converted("runAsUser/runAsGroup (numeric ids)")),
    ("userns_mode", Converted("hostUsers")),
    (
        "uts",
        Unsupported {
            why: "a pod has its own uts namespace",
            hint: "network_mode: host also shares the host's hostname",
        },
    ),
    ("volumes", Converted("PVC, ConfigMap or hostPath, emptyDir")),
    ("volumes_from", Converted("the other service's volumes mounted at the same paths")),
    ("working_dir", Converted("container workingDir")),
];

pub const TOP_LEVEL_KEYS: &[(&str, Outcome)] = &[
    ("version", Loader("obsolete; compose ignores it")),
    ("name", Converted("the namespace")),
    ("include", Loader("merged by the loader")),
    ("services", Converted("workloads and Services")),
    ("networks", Converted("one NetworkPolicy per network")),
    ("volumes", Converted("one PersistentVolumeClaim per volume")),
    ("secrets", Converted("one Secret per secret")),
    ("configs", Converted("one ConfigMap per config")),
    (
        "models",
        Unsupported {
            why: "docker model runner does not run on a cluster",
            hint: "run the model as a service of its own",
        },
    ),
];

pub fn outcome(table: &[(&str, Outcome)], key: &str) -> Option<Outcome> {
    table.iter().find(|(k, _)| *k == key).map(|(_, o)| *o)
}

/// Warnings for a service's keys that do not carry over, and for keys nobody knows.
pub fn service(ctx: &mut Ctx, compose: &str, svc: &Service) {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(svc) else { return };
    for key in map.keys() {
        let path = ["services", compose, key.as_str()];
        match outcome(SERVICE_KEYS, key) {
            Some(Unsupported { why, hint }) => {
                // `uts: host` is what a pod on the host network has anyway.
                if key == "uts" && svc.network_mode.as_deref() == Some("host") {
                    continue;
                }
                ctx.warn(&path, why, hint);
            }
            Some(_) => {}
            None if key.starts_with("x-") => {}
            None => ctx.warn(&path, "unknown key; ignored", "check the spelling against the compose specification"),
        }
    }
    if svc.cpu_quota.is_some() != svc.cpu_period.is_some() {
        ctx.warn(
            &["services", compose, "cpu_quota"],
            "cpu_quota and cpu_period only mean a limit together; ignored",
            "set deploy.resources.limits.cpus",
        );
    }
    for key in svc.storage_opt.iter().flatten().map(|(k, _)| k).filter(|k| *k != "size") {
        ctx.warn(
            &["services", compose, "storage_opt", key],
            "only size carries over (as an ephemeral-storage limit)",
            "",
        );
    }
}

pub fn top_level(ctx: &mut Ctx) {
    // The keys the project sets, without serialising its services (they are judged one by one).
    let p = ctx.project;
    let fixed = [
        ("version", p.version.is_some()),
        ("name", p.name.is_some()),
        ("include", p.include.is_some()),
        ("services", true),
        ("networks", p.networks.is_some()),
        ("volumes", p.volumes.is_some()),
        ("secrets", p.secrets.is_some()),
        ("configs", p.configs.is_some()),
        ("models", p.models.is_some()),
    ];
    let present: Vec<String> = fixed
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| k.to_string())
        .chain(p.extensions.0.keys().cloned())
        .collect();
    for key in &present {
        match outcome(TOP_LEVEL_KEYS, key) {
            Some(Unsupported { why, hint }) => ctx.warn(&[key.as_str()], why, hint),
            Some(_) => {}
            None if key.starts_with("x-") => {}
            None => ctx.warn(
                &[key.as_str()],
                "unknown key; ignored",
                "check the spelling against the compose specification",
            ),
        }
    }
}
