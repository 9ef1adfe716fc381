//! The two Services of a compose service, because compose has two ways in.
//!
//! - `<name>` (ClusterIP) with the container ports: other services call `web:80`, not the published
//!   port, and every service needs one so that its name resolves (Kompose makes none without `ports:`).
//!   Headless when the service declares no port, or asks for `endpoint_mode: dnsrr`.
//! - `<name>-published` (LoadBalancer) when `ports:` publishes: the published ports, answered on every
//!   node by flotilla's runtime, like `docker compose` on its host.
//!
//! Network aliases, links and `container_name` add Services named after the extra name, with the same
//! selector and ports, so the extra names resolve on any cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerPort, Service as K8sService, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels;
use super::unit::{PortSpec, Published, Unit};
use super::{Ctx, Object, names};
use crate::model::Service;

fn protocol(p: Option<&str>) -> String {
    p.unwrap_or("tcp").to_ascii_uppercase()
}

/// `"3000"`, `"4000-4001/udp"` → ports.
fn expose_ports(entry: &str) -> Vec<(i32, String)> {
    let (range, proto) = entry.split_once('/').unwrap_or((entry, "tcp"));
    let (lo, hi) = range.split_once('-').unwrap_or((range, range));
    match (lo.trim().parse::<i32>(), hi.trim().parse::<i32>()) {
        (Ok(lo), Ok(hi)) if lo <= hi && hi - lo < 1000 => (lo..=hi).map(|p| (p, protocol(Some(proto)))).collect(),
        _ => Vec::new(),
    }
}

/// The container ports of a service: `ports` targets, then `expose`, without duplicates.
pub fn container_ports(svc: &Service) -> Vec<PortSpec> {
    let mut out: Vec<PortSpec> = Vec::new();
    let mut push = |spec: PortSpec| {
        if !out.iter().any(|p| p.port == spec.port && p.protocol == spec.protocol) {
            out.push(spec);
        }
    };
    for p in svc.ports.iter().flatten() {
        let Some(port) = p.target.as_ref().and_then(|t| t.as_i64()).and_then(|t| i32::try_from(t).ok()) else {
            continue;
        };
        if !(1..=65535).contains(&port) {
            continue;
        }
        push(PortSpec {
            port,
            protocol: protocol(p.protocol.as_deref()),
            name: p.name.as_deref().and_then(names::port_name),
            app_protocol: p.app_protocol.clone(),
        });
    }
    for e in svc.expose.iter().flatten() {
        for (port, protocol) in expose_ports(&e.to_string()) {
            push(PortSpec { port, protocol, name: None, app_protocol: None });
        }
    }
    out
}

pub fn ports(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    for (i, e) in svc.expose.iter().flatten().enumerate() {
        if expose_ports(&e.to_string()).is_empty() {
            ctx.warn(
                &["services", &compose, "expose", &i.to_string()],
                format!("{e} is not a port or range"),
                "write e.g. \"3000\" or \"4000-4001/udp\"",
            );
        }
    }
    u.ports = container_ports(svc);
    let mut host_ports: Vec<ContainerPort> = Vec::new();
    for (i, p) in svc.ports.iter().flatten().enumerate() {
        let path = ["services", compose.as_str(), "ports", &i.to_string()];
        let Some(target) = p
            .target
            .as_ref()
            .and_then(|t| t.as_i64())
            .and_then(|t| i32::try_from(t).ok())
            .filter(|t| (1..=65535).contains(t))
        else {
            ctx.warn(&path, "the port has no valid target and is skipped", "");
            continue;
        };
        let proto = protocol(p.protocol.as_deref());
        let published_text = p.published.as_ref().map(|x| x.to_string());
        let published = match published_text.as_deref() {
            None | Some("") => {
                ctx.warn(
                    &path,
                    format!("no published port: compose picks a free one; the LoadBalancer uses {target}"),
                    "write the host port you want",
                );
                target
            }
            Some(text) => {
                let (lo, hi) = text.split_once('-').unwrap_or((text, text));
                match lo.parse::<i32>() {
                    Ok(lo) if (1..=65535).contains(&lo) => {
                        if hi != lo.to_string() {
                            ctx.warn(&path, format!("a range of host ports ({text}) for one container port: kubernetes publishes one, {lo}"), "");
                        }
                        lo
                    }
                    _ => {
                        ctx.warn(&path, format!("{text:?} is not a port; skipped"), "");
                        continue;
                    }
                }
            }
        };
        let host_ip = p.host_ip.clone().filter(|ip| ip != "0.0.0.0" && ip != "::" && !ip.is_empty());
        if p.mode.as_deref() == Some("host") {
            // Swarm's host mode publishes on the node running the task: a hostPort.
            host_ports.push(ContainerPort {
                container_port: target,
                host_port: Some(published),
                host_ip: host_ip.clone(),
                protocol: Some(proto.clone()),
                ..Default::default()
            });
            continue;
        }
        if let Some(ip) = &host_ip {
            ctx.warn(&path, format!("a LoadBalancer cannot bind to {ip} only; flotilla's runtime honours it, other clusters publish on every address"), "use mode: host for a hostPort bound to that address");
        }
        if u.published.iter().any(|q| q.port == published && q.protocol == proto) {
            ctx.warn(&path, format!("{published}/{proto} is published twice; the first wins"), "");
            continue;
        }
        u.published.push(Published {
            port: published,
            target,
            protocol: proto,
            host_ip,
            app_protocol: p.app_protocol.clone(),
        });
    }
    let mut container_ports: Vec<ContainerPort> = u
        .ports
        .iter()
        .map(|p| ContainerPort {
            container_port: p.port,
            protocol: Some(p.protocol.clone()),
            name: p.name.clone(),
            ..Default::default()
        })
        .collect();
    for hp in host_ports {
        match container_ports.iter_mut().find(|c| c.container_port == hp.container_port && c.protocol == hp.protocol) {
            Some(c) => {
                c.host_port = hp.host_port;
                c.host_ip = hp.host_ip;
            }
            None => container_ports.push(hp),
        }
    }
    u.container.ports = (!container_ports.is_empty()).then_some(container_ports);
    let dnsrr = svc.deploy.as_ref().and_then(|d| d.endpoint_mode.as_deref()) == Some("dnsrr");
    u.headless = u.ports.is_empty() || dnsrr || u.kompose.service_type.as_deref() == Some("headless");
}

fn service_port(name: Option<String>, port: i32, target: i32, protocol: &str, app: Option<String>) -> ServicePort {
    ServicePort {
        name: Some(name.unwrap_or_else(|| format!("{}-{port}", protocol.to_ascii_lowercase()))),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some(protocol.into()),
        app_protocol: app,
        ..Default::default()
    }
}

fn annotations(u: &Unit) -> BTreeMap<String, String> {
    u.annotations
        .iter()
        .filter(|(k, _)| k.as_str() != labels::BUILD && k.as_str() != labels::DEPENDS_ON)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn make(ctx: &mut Ctx, u: &mut Unit) {
    let project_labels = labels::service_labels(&ctx.part_of, &u.name);
    let ports: Vec<ServicePort> = u
        .ports
        .iter()
        .map(|p| service_port(p.name.clone(), p.port, p.port, &p.protocol, p.app_protocol.clone()))
        .collect();
    let mut meta = ctx.meta(&u.name);
    meta.labels = Some(project_labels.clone());
    let mut ann = annotations(u);
    if !u.aliases.is_empty() {
        ann.insert(labels::ALIASES.into(), u.aliases.join(","));
    }
    meta.annotations = Some(ann.clone());
    let spec = ServiceSpec {
        selector: Some(labels::selector(&u.name)),
        ports: (!ports.is_empty()).then_some(ports),
        cluster_ip: u.headless.then(|| "None".to_string()),
        type_: Some("ClusterIP".into()),
        // A headless Service lists pods before they are ready only if asked; dependants wait for ready.
        ..Default::default()
    };
    let main = K8sService { metadata: meta, spec: Some(spec.clone()), ..Default::default() };
    ctx.objects.push(Object::Service(main));
    let why = if u.headless {
        format!(
            "headless Service: the name {:?} resolves to the pod's address (no ports declared), so other services can reach it by name",
            u.compose
        )
    } else {
        let list: Vec<String> =
            u.ports.iter().map(|p| format!("{}/{}", p.port, p.protocol.to_ascii_lowercase())).collect();
        format!(
            "ClusterIP Service selecting this service's pods: other services reach {:?} at {}",
            u.compose,
            list.join(", ")
        )
    };
    u.note("Service", &u.name.clone(), why);

    for alias in u.aliases.clone() {
        let name = names::k8s_name(&alias);
        if ctx.names.values().any(|n| n == &name) {
            ctx.warn(
                &["services", &u.compose, "networks"],
                format!("alias {alias:?} is also a service's name; the service keeps it"),
                "choose another alias",
            );
            continue;
        }
        if ctx.made.contains(&("Service", name.clone())) {
            continue;
        }
        ctx.made.insert(("Service", name.clone()));
        let mut meta = ctx.meta(&name);
        meta.labels = Some(project_labels.clone());
        meta.annotations = Some(BTreeMap::from([
            (labels::SERVICE_NAME.to_string(), u.compose.clone()),
            (format!("{}alias-of", labels::PREFIX), u.name.clone()),
        ]));
        ctx.objects.push(Object::Service(K8sService {
            metadata: meta,
            spec: Some(spec.clone()),
            ..Default::default()
        }));
        u.note(
            "Service",
            &name,
            format!("the extra name {alias:?} (network alias, link or container_name) for the same pods"),
        );
    }

    if u.published.is_empty() {
        return;
    }
    let name = names::join(&u.name, "published");
    let type_ = match (u.ext.service_type.as_deref(), u.kompose.service_type.as_deref()) {
        (Some(t), _) => t.to_string(),
        (None, Some("nodeport")) => "NodePort".into(),
        (None, Some("clusterip")) => "ClusterIP".into(),
        _ => "LoadBalancer".into(),
    };
    let mut ports: Vec<ServicePort> =
        u.published.iter().map(|p| service_port(None, p.port, p.target, &p.protocol, p.app_protocol.clone())).collect();
    if type_ == "NodePort" && ports.len() == 1 {
        ports[0].node_port = u.kompose.node_port;
    }
    let host_ips: Vec<String> = u
        .published
        .iter()
        .filter_map(|p| Some(format!("{}/{}={}", p.port, p.protocol.to_ascii_lowercase(), p.host_ip.as_ref()?)))
        .collect();
    let mut meta = ctx.meta(&name);
    meta.labels = Some(project_labels);
    let mut ann = annotations(u);
    if !host_ips.is_empty() {
        ann.insert(labels::HOST_IPS.into(), host_ips.join(","));
    }
    meta.annotations = Some(ann);
    let external = matches!(type_.as_str(), "LoadBalancer" | "NodePort");
    let published = K8sService {
        metadata: meta,
        spec: Some(ServiceSpec {
            selector: Some(labels::selector(&u.name)),
            ports: Some(ports),
            type_: Some(type_.clone()),
            external_traffic_policy: if external { u.kompose.external_traffic_policy.clone() } else { None },
            ..Default::default()
        }),
        ..Default::default()
    };
    ctx.objects.push(Object::Service(published));
    let list: Vec<String> =
        u.published.iter().map(|p| format!("{}->{}/{}", p.port, p.target, p.protocol.to_ascii_lowercase())).collect();
    u.note("Service", &name, format!("{type_} Service for the published ports ({}): reachable from outside the cluster like `ports:` on the host", list.join(", ")));
}
