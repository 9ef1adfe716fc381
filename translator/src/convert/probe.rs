//! `healthcheck` → readinessProbe, and liveness/startup probes only when asked.
//!
//! Compose uses health to order startup (`depends_on: service_healthy`) and to report status; it never
//! restarts a container for failing it. A readiness probe has the same effect in Kubernetes (the pod
//! leaves its Services' endpoints, nothing restarts), so that is the default. `start_period` needs no
//! counterpart: a failing readiness probe harms nothing while the service starts. A liveness probe
//! (which restarts) and a startup probe come only from `x-flotilla: {liveness: true, startup: true}`.

use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::unit::Unit;
use super::{Ctx, unescape};
use crate::model::{Healthcheck, Service};

/// Compose's defaults, written out because Kubernetes' differ (10s period, 1s timeout).
const INTERVAL: i32 = 30;
const TIMEOUT: i32 = 30;
const RETRIES: i32 = 3;

pub fn apply(ctx: &mut Ctx, u: &mut Unit, svc: &Service) {
    let compose = u.compose.clone();
    // Kompose's probe labels first: they are explicit Kubernetes settings.
    let label = |k: &str| svc.label(&format!("kompose.service.healthcheck.{k}")).map(str::to_string);
    if let Some(p) =
        label_probe(label("liveness.http_get_path"), label("liveness.http_get_port"), label("liveness.tcp_port"))
    {
        u.container.liveness_probe = Some(p);
    }
    let readiness_label =
        label_probe(label("readiness.http_get_path"), label("readiness.http_get_port"), label("readiness.tcp_port"));
    let Some(hc) = &svc.healthcheck else {
        if !u.kompose.readiness_disable {
            u.container.readiness_probe = readiness_label;
        }
        return;
    };
    let Some(mut probe) = exec_probe(ctx, &compose, hc) else { return };
    if let Some(p) = readiness_label {
        probe.exec = None;
        probe.http_get = p.http_get;
        probe.tcp_socket = p.tcp_socket;
    }
    if u.ext.liveness == Some(true) {
        let mut live = probe.clone();
        if u.ext.startup != Some(true) {
            live.initial_delay_seconds =
                hc.start_period.as_ref().and_then(|d| d.seconds()).and_then(|s| i32::try_from(s).ok());
        }
        u.container.liveness_probe = Some(live);
    }
    if u.ext.startup == Some(true) {
        let mut start = probe.clone();
        let period = hc
            .start_interval
            .as_ref()
            .and_then(|d| d.seconds())
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(probe.period_seconds.unwrap_or(INTERVAL))
            .max(1);
        let window =
            hc.start_period.as_ref().and_then(|d| d.seconds()).and_then(|s| i32::try_from(s).ok()).unwrap_or(0);
        start.period_seconds = Some(period);
        start.failure_threshold = Some(window / period + probe.failure_threshold.unwrap_or(RETRIES));
        u.container.startup_probe = Some(start);
    }
    if !u.kompose.readiness_disable {
        u.container.readiness_probe = Some(probe);
    }
}

fn label_probe(path: Option<String>, port: Option<String>, tcp: Option<String>) -> Option<Probe> {
    let port_of = |p: String| p.parse::<i32>().map(IntOrString::Int).unwrap_or(IntOrString::String(p));
    if let (Some(path), Some(port)) = (path, port) {
        return Some(Probe {
            http_get: Some(HTTPGetAction { path: Some(path), port: port_of(port), ..Default::default() }),
            ..Default::default()
        });
    }
    tcp.map(|p| Probe { tcp_socket: Some(TCPSocketAction { port: port_of(p), host: None }), ..Default::default() })
}

fn exec_probe(ctx: &mut Ctx, compose: &str, hc: &Healthcheck) -> Option<Probe> {
    let path = ["services", compose, "healthcheck"];
    if hc.disable == Some(true) {
        return None;
    }
    let Some(test) = &hc.test else {
        ctx.warn(
            &path,
            "no test: the image's own HEALTHCHECK cannot be seen from here, so no probe is made",
            "write test: in the healthcheck",
        );
        return None;
    };
    let test: Vec<String> = test.iter().map(|w| unescape(w)).collect();
    let command = match test.split_first() {
        Some((first, rest)) if first == "CMD" && !rest.is_empty() => rest.to_vec(),
        Some((first, rest)) if first == "CMD-SHELL" && !rest.is_empty() => {
            vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
        }
        Some((first, _)) if first == "NONE" => return None,
        _ => {
            ctx.warn(
                &[&path[..], &["test"]].concat(),
                "the test is empty or malformed; no probe is made",
                "write test: [\"CMD\", ...] or a shell string",
            );
            return None;
        }
    };
    let seconds = |d: &Option<crate::model::Duration>, key: &str, ctx: &mut Ctx| -> Option<i32> {
        let d = d.as_ref()?;
        let s = d.seconds().and_then(|s| i32::try_from(s).ok());
        if s.is_none() {
            ctx.warn(&[&path[..], &[key]].concat(), "not a duration; using compose's default", "write e.g. 10s");
        }
        s.map(|s| s.max(1))
    };
    let period = seconds(&hc.interval, "interval", ctx).unwrap_or(INTERVAL);
    let timeout = seconds(&hc.timeout, "timeout", ctx).unwrap_or(TIMEOUT);
    let retries = hc
        .retries
        .as_ref()
        .and_then(|r| r.as_i64())
        .and_then(|r| i32::try_from(r).ok())
        .filter(|r| *r > 0)
        .unwrap_or(RETRIES);
    Some(Probe {
        exec: Some(ExecAction { command: Some(command) }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(retries),
        ..Default::default()
    })
}
