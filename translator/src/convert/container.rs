//! The container and the pod-level settings of one service: image, command, environment, user and
//! security, resources, DNS and hosts, lifecycle hooks, scheduling by platform.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Capabilities, Container, EnvVar, ExecAction, HostAlias, Lifecycle, LifecycleHandler,
    LocalObjectReference, PodDNSConfig, PodDNSConfigOption, PodOS, PodSecurityContext, ResourceRequirements,
    SELinuxOptions, SeccompProfile, SecurityContext, Sysctl,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::unit::Unit;
use super::{Ctx, kubelet_escape, labels, unescape};
use crate::model::{Hook, Service};

pub fn apply(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    image(ctx, u, svc);
    command(u, svc);
    environment(ctx, u, svc);
    let c = &mut u.container;
    c.working_dir = svc.working_dir.as_ref().map(|d| unescape(d));
    c.stdin = svc.stdin_open.filter(|b| *b);
    c.tty = svc.tty.filter(|b| *b);
    security(ctx, u, svc);
    pod_settings(ctx, u, svc);
    resources(ctx, u, svc);
    hooks(ctx, u, svc);
    metadata(ctx, u, svc);
}

/// The image compose would build for a service without `image:`: `<project>-<service>`.
pub fn image_name(ctx: &Ctx, compose: &str, svc: &Service) -> Option<String> {
    if let Some(image) = &svc.image {
        return Some(unescape(image));
    }
    svc.build.as_ref()?;
    Some(format!("{}-{}", ctx.project.name.as_deref().unwrap_or(&ctx.namespace), compose))
}

fn image(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let image = image_name(ctx, &compose, svc);
    if let Some(build) = &svc.build {
        if let Ok(text) = serde_json::to_string(build) {
            u.annotations.insert(labels::BUILD.into(), text);
        }
        if svc.image.is_none() {
            ctx.warn(
                &["services", &compose, "build"],
                format!(
                    "`flotilla up` builds {:?} on the cluster; another cluster cannot pull it",
                    image.as_deref().unwrap_or_default()
                ),
                "set image: to a registry reference and push the built image there",
            );
        }
    }
    match image {
        Some(image) => u.container.image = Some(image),
        None => {
            ctx.warn(&["services", &compose], "the service has neither image nor build", "add image:");
            u.container.image = Some(u.name.clone());
        }
    }
    // Always written: Kubernetes defaults to Always for untagged and `:latest` images, compose to "pull
    // if missing".
    let policy = match svc.pull_policy.as_deref() {
        Some("always") => "Always",
        Some("never") => "Never",
        None | Some("missing") | Some("if_not_present") | Some("build") => "IfNotPresent",
        Some(other) => {
            ctx.warn(
                &["services", &compose, "pull_policy"],
                format!("kubernetes has no pull policy like {other:?}; using IfNotPresent"),
                "use always, never or missing",
            );
            "IfNotPresent"
        }
    };
    u.container.image_pull_policy = Some(u.kompose.image_pull_policy.clone().unwrap_or_else(|| policy.into()));
    if let Some(secret) = &u.kompose.image_pull_secret {
        u.pod.image_pull_secrets = Some(vec![LocalObjectReference { name: secret.clone() }]);
    }
    if let Some(account) = &u.kompose.service_account {
        u.pod.service_account_name = Some(account.clone());
    }
}

/// Compose's `entrypoint` is Kubernetes' `command`, its `command` is `args`.
fn command(u: &mut Unit, svc: &Service) {
    let words = |list: &Vec<String>| list.iter().map(|w| kubelet_escape(&unescape(w))).collect::<Vec<_>>();
    u.container.command = svc.entrypoint().map(words).filter(|w| !w.is_empty());
    u.container.args = svc.command().map(words).filter(|w| !w.is_empty());
}

fn environment(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let Some(env) = &svc.environment else { return };
    let mut vars = Vec::new();
    for (name, value) in env {
        match value {
            Some(value) => vars.push(EnvVar {
                name: name.clone(),
                value: Some(kubelet_escape(&unescape(value))),
                ..Default::default()
            }),
            None => ctx.warn(
                &["services", &u.compose, "environment", name],
                "the variable has no value where the project was loaded, so the container does not get it",
                "give it a value, or set it in .env",
            ),
        }
    }
    u.container.env = (!vars.is_empty()).then_some(vars);
}

fn security(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let mut sc = SecurityContext::default();
    let cap = |list: &Option<Vec<String>>| {
        list.as_ref().map(|l| l.iter().map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase()).collect::<Vec<_>>())
    };
    if svc.cap_add.is_some() || svc.cap_drop.is_some() {
        sc.capabilities = Some(Capabilities { add: cap(&svc.cap_add), drop: cap(&svc.cap_drop) });
    }
    sc.privileged = svc.privileged.filter(|p| *p);
    sc.read_only_root_filesystem = svc.read_only.filter(|r| *r);
    if let Some(user) = &svc.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        match (uid.parse::<i64>(), gid.map(str::parse::<i64>)) {
            (Ok(uid), None) => sc.run_as_user = Some(uid),
            (Ok(uid), Some(Ok(gid))) => {
                sc.run_as_user = Some(uid);
                sc.run_as_group = Some(gid);
            }
            _ => ctx.warn(
                &["services", &compose, "user"],
                format!("kubernetes takes numeric ids only; {user:?} is ignored and the image's user runs"),
                "write the numeric uid[:gid] (see /etc/passwd in the image)",
            ),
        }
    }
    for (i, opt) in svc.security_opt.iter().flatten().enumerate() {
        let path = ["services", compose.as_str(), "security_opt", &i.to_string()];
        let (key, value) = opt.split_once([':', '=']).unwrap_or((opt.as_str(), ""));
        match (key, value) {
            ("no-new-privileges", "" | "true") => sc.allow_privilege_escalation = Some(false),
            ("no-new-privileges", "false") => {}
            ("seccomp", "unconfined") => {
                sc.seccomp_profile = Some(SeccompProfile { type_: "Unconfined".into(), ..Default::default() })
            }
            ("apparmor", "unconfined") => {
                sc.app_armor_profile = Some(AppArmorProfile { type_: "Unconfined".into(), ..Default::default() })
            }
            ("apparmor", profile) if !profile.is_empty() => {
                sc.app_armor_profile = Some(AppArmorProfile {
                    type_: "Localhost".into(),
                    localhost_profile: Some(profile.into()),
                })
            }
            ("label", label) if label.contains(':') => {
                let (part, v) = label.split_once(':').unwrap_or_default();
                let se = sc.se_linux_options.get_or_insert_with(SELinuxOptions::default);
                match part {
                    "user" => se.user = Some(v.into()),
                    "role" => se.role = Some(v.into()),
                    "type" => se.type_ = Some(v.into()),
                    "level" => se.level = Some(v.into()),
                    _ => ctx.warn(&path, format!("unknown selinux label part {part:?}"), "use user, role, type or level"),
                }
            }
            _ => ctx.warn(
                &path,
                format!("{opt:?} has no kubernetes equivalent and is ignored"),
                "kubernetes supports no-new-privileges, seccomp/apparmor unconfined or a localhost apparmor profile, and label:user|role|type|level",
            ),
        }
    }
    if sc != SecurityContext::default() {
        u.container.security_context = Some(sc);
    }

    let mut psc = PodSecurityContext::default();
    let mut groups = Vec::new();
    for g in svc.group_add.iter().flatten() {
        match g.parse::<i64>() {
            Ok(n) => groups.push(n),
            Err(_) => ctx.warn(
                &["services", &compose, "group_add"],
                format!("kubernetes takes numeric group ids only; {g:?} is ignored"),
                "write the numeric gid",
            ),
        }
    }
    psc.supplemental_groups = (!groups.is_empty()).then_some(groups);
    psc.fs_group = u.kompose.fs_group;
    if let Some(sysctls) = &svc.sysctls {
        // The ones the kubelet allows without --allowed-unsafe-sysctls (Kubernetes 1.33).
        const SAFE: &[&str] = &[
            "kernel.shm_rmid_forced",
            "net.ipv4.ip_local_port_range",
            "net.ipv4.tcp_syncookies",
            "net.ipv4.ping_group_range",
            "net.ipv4.ip_unprivileged_port_start",
            "net.ipv4.ip_local_reserved_ports",
            "net.ipv4.tcp_keepalive_time",
            "net.ipv4.tcp_fin_timeout",
            "net.ipv4.tcp_keepalive_intvl",
            "net.ipv4.tcp_keepalive_probes",
        ];
        let mut list = Vec::new();
        for (name, value) in sysctls {
            if !SAFE.contains(&name.as_str()) {
                ctx.warn(
                    &["services", &compose, "sysctls", name],
                    "kubernetes calls this sysctl unsafe; pods using it stay pending unless the kubelet allows it",
                    format!("start the kubelet with --allowed-unsafe-sysctls={name}"),
                );
            }
            list.push(Sysctl { name: name.clone(), value: value.clone() });
        }
        psc.sysctls = Some(list);
    }
    if psc != PodSecurityContext::default() {
        u.pod.security_context = Some(psc);
    }
}

fn pod_settings(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    if let Some(hostname) = &svc.hostname {
        let valid = super::names::k8s_name(hostname);
        if &valid != hostname {
            ctx.warn(&["services", &compose, "hostname"], format!("not a valid pod hostname; using {valid:?}"), "");
        }
        u.pod.hostname = Some(valid);
    }
    if let Some(domain) = &svc.domainname {
        u.pod.subdomain = Some(super::names::k8s_name(domain));
    }
    let mut aliases: Vec<HostAlias> = Vec::new();
    for entry in svc.extra_hosts.iter().flatten() {
        let Some((host, ip)) = entry.split_once('=').or_else(|| entry.split_once(':')) else {
            ctx.warn(&["services", &compose, "extra_hosts"], format!("{entry:?} is not host=ip"), "");
            continue;
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
        match aliases.iter_mut().find(|a| a.ip == ip) {
            Some(a) => a.hostnames.get_or_insert_with(Vec::new).push(host.into()),
            None => aliases.push(HostAlias { ip, hostnames: Some(vec![host.into()]) }),
        }
    }
    u.pod.host_aliases = (!aliases.is_empty()).then_some(aliases);
    // Added to the cluster's resolver settings (dnsPolicy stays ClusterFirst), so service names keep
    // resolving, as Docker's embedded DNS keeps answering container names when `dns:` is set.
    let options: Vec<PodDNSConfigOption> = svc
        .dns_opt
        .iter()
        .flatten()
        .map(|o| match o.split_once(':') {
            Some((n, v)) => PodDNSConfigOption { name: Some(n.into()), value: Some(v.into()) },
            None => PodDNSConfigOption { name: Some(o.clone()), value: None },
        })
        .collect();
    if svc.dns.is_some() || svc.dns_search.is_some() || !options.is_empty() {
        u.pod.dns_config = Some(PodDNSConfig {
            nameservers: svc.dns.clone(),
            searches: svc.dns_search.clone(),
            options: (!options.is_empty()).then_some(options),
        });
    }
    if let Some(grace) = &svc.stop_grace_period {
        match grace.seconds() {
            Some(s) => u.pod.termination_grace_period_seconds = Some(s),
            None => ctx.warn(&["services", &compose, "stop_grace_period"], "not a duration; ignored", "write e.g. 30s"),
        }
    }
    if let Some(signal) = &svc.stop_signal {
        let signal = if signal.starts_with("SIG") { signal.clone() } else { format!("SIG{signal}") };
        u.container.lifecycle.get_or_insert_with(Lifecycle::default).stop_signal = Some(signal);
        // Kubernetes requires the pod's OS for a stop signal.
        u.pod.os = Some(PodOS { name: "linux".into() });
    }
    match svc.pid.as_deref() {
        None => {}
        Some("host") => u.pod.host_pid = Some(true),
        Some(other) => ctx.warn(
            &["services", &compose, "pid"],
            format!("pid {other:?} has no kubernetes equivalent"),
            "containers of one pod can share their pid namespace: use network_mode: service:x to put them in one pod",
        ),
    }
    match svc.ipc.as_deref() {
        None | Some("private") | Some("shareable") => {}
        Some("host") => u.pod.host_ipc = Some(true),
        Some(other) => ctx.warn(
            &["services", &compose, "ipc"],
            format!("ipc {other:?} has no kubernetes equivalent"),
            "containers of one pod share ipc: use network_mode: service:x to put them in one pod",
        ),
    }
    if svc.init == Some(true) {
        // With a shared process namespace the pause container is pid 1 and reaps zombies, which is what
        // compose's `init` (tini) is for.
        u.pod.share_process_namespace = Some(true);
    }
    match svc.runtime.as_deref() {
        None | Some("runc") => {}
        Some(runtime) => {
            u.pod.runtime_class_name = Some(super::names::k8s_name(runtime));
            ctx.warn(
                &["services", &compose, "runtime"],
                format!("becomes runtimeClassName {runtime:?}"),
                "create a RuntimeClass of that name on the cluster",
            );
        }
    }
    match svc.userns_mode.as_deref() {
        None | Some("host") | Some("") => {}
        Some(other) => {
            u.pod.host_users = Some(false);
            ctx.warn(
                &["services", &compose, "userns_mode"],
                format!("{other:?} becomes hostUsers: false (a user namespace chosen by the kubelet)"),
                "",
            );
        }
    }
    if let Some(platform) = &svc.platform {
        let mut parts = platform.split('/');
        let mut selector = BTreeMap::new();
        if let Some(os) = parts.next().filter(|s| !s.is_empty()) {
            selector.insert("kubernetes.io/os".to_string(), os.to_string());
        }
        if let Some(arch) = parts.next().filter(|s| !s.is_empty()) {
            selector.insert("kubernetes.io/arch".to_string(), arch.to_string());
        }
        u.pod.node_selector = Some(selector);
    }
}

/// Cores as a CPU quantity: `0.5` → `500m`.
pub fn cpu(cores: f64) -> Quantity {
    let milli = (cores * 1000.0).round() as i64;
    if milli % 1000 == 0 { Quantity((milli / 1000).to_string()) } else { Quantity(format!("{milli}m")) }
}

/// Bytes as a memory quantity, in the largest binary unit that divides it.
pub fn memory(bytes: u64) -> Quantity {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return Quantity(format!("{}{unit}", bytes / size));
        }
    }
    Quantity(bytes.to_string())
}

fn resources(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let mut limits: BTreeMap<String, Quantity> = BTreeMap::new();
    let mut requests: BTreeMap<String, Quantity> = BTreeMap::new();
    let res = svc.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let lim = res.and_then(|r| r.limits.as_ref());
    let req = res.and_then(|r| r.reservations.as_ref());
    if let Some(cores) = lim.and_then(|l| l.cpus.as_ref()).or(svc.cpus.as_ref()).and_then(|c| c.as_f64()) {
        if cores > 0.0 {
            limits.insert("cpu".into(), cpu(cores));
        }
    } else if let (Some(quota), Some(period)) =
        (svc.cpu_quota.as_ref().and_then(|q| q.as_f64()), svc.cpu_period.as_ref().and_then(|p| p.as_f64()))
        && quota > 0.0
        && period > 0.0
    {
        limits.insert("cpu".into(), cpu(quota / period));
    }
    if let Some(bytes) = lim.and_then(|l| l.memory.as_ref()).or(svc.mem_limit.as_ref()).and_then(|m| m.bytes()) {
        limits.insert("memory".into(), memory(bytes));
    }
    if let Some(cores) = req.and_then(|r| r.cpus.as_ref()).and_then(|c| c.as_f64()) {
        requests.insert("cpu".into(), cpu(cores));
    }
    if let Some(bytes) = req.and_then(|r| r.memory.as_ref()).or(svc.mem_reservation.as_ref()).and_then(|m| m.bytes()) {
        requests.insert("memory".into(), memory(bytes));
    }
    if let Some(size) = svc.storage_opt.as_ref().and_then(|o| o.get("size")) {
        match crate::model::parse_bytes(size) {
            Some(bytes) => {
                limits.insert("ephemeral-storage".into(), memory(bytes));
            }
            None => ctx.warn(&["services", &compose, "storage_opt", "size"], "not a size; ignored", "write e.g. 10G"),
        }
    }
    if lim.and_then(|l| l.pids.as_ref()).is_some() {
        ctx.warn(
            &["services", &compose, "deploy", "resources", "limits", "pids"],
            "kubernetes sets pid limits per node, not per container",
            "set --pod-max-pids on the kubelet",
        );
    }
    // GPUs: NVIDIA's device plugin resource, the one way to ask for a GPU on most clusters.
    let mut gpu_requests: Vec<(Vec<&str>, &crate::model::DeviceRequest)> = Vec::new();
    for d in svc.gpus.iter().flatten() {
        gpu_requests.push((vec!["services", &compose, "gpus"], d));
    }
    for d in req.and_then(|r| r.devices.as_ref()).into_iter().flatten() {
        gpu_requests.push((vec!["services", &compose, "deploy", "resources", "reservations", "devices"], d));
    }
    for (path, d) in gpu_requests {
        let is_gpu = d.capabilities.iter().flatten().any(|c| c == "gpu") || d.capabilities.is_none();
        let nvidia = d.driver.as_deref().is_none_or(|drv| drv == "nvidia");
        let count = d.count.as_ref().and_then(|c| c.as_i64()).or(d.device_ids.as_ref().map(|ids| ids.len() as i64));
        if !(is_gpu && nvidia) {
            ctx.warn(
                &path,
                "only nvidia gpus have a standard kubernetes resource; this device is ignored",
                "request the device plugin's resource on the generated container",
            );
            continue;
        }
        let n = match count {
            Some(n) if n > 0 => n,
            _ => {
                ctx.warn(&path, "kubernetes cannot ask for all gpus of a node; asking for one", "set count:");
                1
            }
        };
        if d.device_ids.is_some() {
            ctx.warn(&path, "kubernetes cannot pick gpus by id; asking for a count", "");
        }
        limits.insert("nvidia.com/gpu".into(), Quantity(n.to_string()));
    }
    if req.and_then(|r| r.generic_resources.as_ref()).is_some() {
        ctx.warn(
            &["services", &compose, "deploy", "resources", "reservations", "generic_resources"],
            "swarm generic resources have no kubernetes equivalent",
            "use extended resources of a device plugin",
        );
    }
    if !limits.is_empty() || !requests.is_empty() {
        u.container.resources = Some(ResourceRequirements {
            limits: (!limits.is_empty()).then_some(limits),
            requests: (!requests.is_empty()).then_some(requests),
            ..Default::default()
        });
    }
}

fn hook_command(hook: &Hook) -> Option<Vec<String>> {
    hook.command.as_ref()?.as_ref().map(|c| c.iter().map(|w| unescape(w)).collect())
}

fn hooks(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    for (key, list) in [("post_start", &svc.post_start), ("pre_stop", &svc.pre_stop)] {
        let Some(list) = list else { continue };
        let Some(first) = list.first() else { continue };
        if list.len() > 1 {
            ctx.warn(
                &["services", &compose, key, "1"],
                "kubernetes runs one hook per event; only the first is kept",
                "join the commands into one script",
            );
        }
        if first.user.is_some()
            || first.privileged.is_some()
            || first.working_dir.is_some()
            || first.environment.is_some()
        {
            ctx.warn(
                &["services", &compose, key, "0"],
                "a kubernetes hook runs as the container does; user, privileged, working_dir and environment are ignored",
                "set them in the command (cd, env) or on the container",
            );
        }
        let handler =
            LifecycleHandler { exec: Some(ExecAction { command: hook_command(first) }), ..Default::default() };
        let lifecycle = u.container.lifecycle.get_or_insert_with(Lifecycle::default);
        if key == "post_start" {
            lifecycle.post_start = Some(handler);
        } else {
            lifecycle.pre_stop = Some(handler);
        }
    }
    for (i, hook) in svc.pre_start.iter().flatten().enumerate() {
        let mut c = Container {
            name: format!("pre-start-{i}"),
            image: hook.image.clone().or_else(|| u.container.image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: hook_command(hook),
            working_dir: hook.working_dir.clone(),
            env: hook.environment.as_ref().map(|env| {
                env.iter()
                    .filter_map(|(k, v)| {
                        Some(EnvVar {
                            name: k.clone(),
                            value: Some(kubelet_escape(&unescape(v.as_ref()?))),
                            ..Default::default()
                        })
                    })
                    .collect()
            }),
            ..Default::default()
        };
        if hook.privileged == Some(true) {
            c.security_context = Some(SecurityContext { privileged: Some(true), ..Default::default() });
        }
        if hook.user.is_some() {
            ctx.warn(
                &["services", &compose, "pre_start", &i.to_string(), "user"],
                "ignored in the init container",
                "use a numeric user on the image",
            );
        }
        u.init.push(c);
    }
}

/// Compose `labels` become annotations (their values need not be valid label values); `kompose.*`
/// labels are settings, not data, and stay out. `annotations` go on the pod, `deploy.labels` on the
/// workload.
fn metadata(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    let valid = |ctx: &mut Ctx, key: &str, at: &[&str]| {
        let ok = super::names::valid_key(key);
        if !ok {
            let path: Vec<&str> =
                ["services", compose.as_str()].into_iter().chain(at.iter().copied()).chain([key]).collect();
            ctx.warn(
                &path,
                "not a valid kubernetes annotation key; left out",
                "use letters, digits, '-', '_' and '.', with an optional dns prefix and '/'",
            );
        }
        ok
    };
    for (k, v) in svc.labels.iter().flatten() {
        if !k.starts_with("kompose.") && valid(ctx, k, &["labels"]) {
            u.annotations.insert(k.clone(), unescape(v));
            u.pod_annotations.insert(k.clone(), unescape(v));
        }
    }
    for (k, v) in svc.annotations.iter().flatten() {
        if valid(ctx, k, &["annotations"]) {
            u.pod_annotations.insert(k.clone(), unescape(v));
        }
    }
    for (k, v) in svc.deploy.iter().filter_map(|d| d.labels.as_ref()).flatten() {
        if valid(ctx, k, &["deploy", "labels"]) {
            u.annotations.insert(k.clone(), unescape(v));
        }
    }
}
