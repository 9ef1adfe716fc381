//! `depends_on`: an annotation for `flotilla up`, and init containers that wait for dependencies.
//!
//! `flotilla up` orders startup from the `compose.flotilla.dev/depends-on` annotation (all three
//! conditions). On any other cluster the pod itself waits: one init container per dependency that is
//! `service_started` or `service_healthy`, looping until the dependency's Service answers — a TCP connect
//! to its first port (which only succeeds once a ready endpoint exists, and readiness is the
//! healthcheck), or a DNS answer for a headless Service (which lists only ready pods).
//! `service_completed_successfully` cannot be observed from inside a pod without API access: it gets the
//! annotation and a warning, and the dependency becomes a Job.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

use super::labels;
use super::unit::Unit;
use super::{Ctx, names};
use crate::model::Service;

pub const COMPLETED: &str = "service_completed_successfully";

/// The first port of a service's `<name>` Service, or `None` if it is headless. Computed from the model
/// so it does not depend on the order units are built in.
pub fn first_port(svc: &Service) -> Option<i32> {
    let headless = svc.deploy.as_ref().and_then(|d| d.endpoint_mode.as_deref()) == Some("dnsrr")
        || svc.label("kompose.service.type").is_some_and(|t| t.eq_ignore_ascii_case("headless"));
    if headless {
        return None;
    }
    super::service::container_ports(svc).first().map(|p| p.port)
}

pub fn apply(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let Some(deps) = &svc.depends_on else { return };
    if deps.is_empty() {
        return;
    }
    let compose = u.compose.clone();
    let mut annotation: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let project = ctx.project;
    for (dep, how) in deps {
        let path = ["services", compose.as_str(), "depends_on", dep.as_str()];
        let condition = how.condition.clone().unwrap_or_else(|| "service_started".into());
        let mut entry = serde_json::json!({ "condition": condition });
        if let Some(r) = how.required {
            entry["required"] = r.into();
        }
        if let Some(r) = how.restart {
            entry["restart"] = r.into();
        }
        annotation.insert(dep.clone(), entry);
        let Some(dep_svc) = project.services.get(dep) else {
            if how.required != Some(false) {
                ctx.error(
                    &path,
                    format!("service {dep:?} does not exist"),
                    "name a service of this project, or set required: false",
                );
            }
            continue;
        };
        let Some(dep_name) = ctx.names.get(dep).cloned() else { continue };
        if condition == COMPLETED {
            ctx.warn(
                &path,
                format!("a pod cannot see from inside that {dep:?} completed; `flotilla up` waits for it, other clusters start both at once"),
                "make the service retry until what the job prepares is there",
            );
            continue;
        }
        // A dependency in the same pod (network_mode: service:x) starts with it; waiting would deadlock.
        let same_pod = svc.network_mode.as_deref() == Some(&format!("service:{dep}"))
            || dep_svc.network_mode.as_deref() == Some(&format!("service:{compose}"));
        if same_pod || !ctx.options.wait_init_containers {
            continue;
        }
        // A service that joins another's pod answers through that service's Service.
        let (target, port) = match dep_svc.network_mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
            Some(owner) => match (ctx.names.get(owner).cloned(), project.services.get(owner)) {
                (Some(n), Some(o)) => (n, first_port(o)),
                _ => (dep_name.clone(), first_port(dep_svc)),
            },
            None => (dep_name.clone(), first_port(dep_svc)),
        };
        let script = match port {
            Some(port) => {
                format!("until nc -z -w 2 {target} {port}; do echo waiting for {target}:{port}; sleep 2; done")
            }
            None => format!("until nslookup {target}; do echo waiting for {target}; sleep 2; done"),
        };
        let how_text = match port {
            Some(port) => format!("until a TCP connection to {target}:{port} succeeds"),
            None => format!("until the headless Service {target} has a ready pod in DNS"),
        };
        let wait_kind = if condition == "service_healthy" { "healthy" } else { "started" };
        let init_name = names::join("wait-for", &dep_name);
        u.init.push(Container {
            name: init_name.clone(),
            image: Some(ctx.wait_image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(vec!["sh".into(), "-c".into(), script]),
            ..Default::default()
        });
        u.note("InitContainer", &init_name, format!("depends_on {dep} ({wait_kind}): the pod waits {how_text}"));
    }
    if let Ok(text) = serde_json::to_string(&annotation) {
        u.annotations.insert(labels::DEPENDS_ON.into(), text);
    }
}

/// Services another service waits for with `service_completed_successfully`: they run once, as Jobs.
pub fn completed_by_others(ctx: &Ctx, compose: &str) -> bool {
    ctx.project.services.values().any(|s| {
        s.depends_on.as_ref().and_then(|d| d.get(compose)).is_some_and(|d| d.condition.as_deref() == Some(COMPLETED))
    })
}
