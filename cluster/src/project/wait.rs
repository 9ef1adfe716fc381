//! What "started", "healthy" and "completed" mean for a compose service running as a workload, read
//! from its pods, and why a service is not there yet or never will be (a missing image, a crash loop, a
//! failing probe, nowhere to schedule it).
//!
//! Healthy is the pods' Ready condition: the translator turns a compose healthcheck into a readiness
//! probe, and a pod without one is Ready once its containers run, which is what compose's `--wait`
//! accepts for a service without a healthcheck.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use super::POLL_MAX;
use super::{Error, Result, SERVICE_LABEL, api_err};

/// Waiting reasons that will not go away by waiting.
const FATAL_REASONS: &[&str] = &[
    "ErrImageNeverPull",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// Where a service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started yet; the text says what it waits for.
    NotYet(String),
    /// Every wanted pod has its containers running (or the job's pod ran).
    Started,
    /// Every wanted pod is Ready.
    Healthy,
    /// A Job finished successfully.
    Completed,
    /// It will not get further by waiting; the text names the pod and the reason.
    Failed { pod: String, reason: String, crashed_container: Option<String> },
}

impl State {
    /// Whether the state satisfies `condition`.
    pub fn satisfies(&self, condition: super::Condition) -> bool {
        use super::Condition::*;
        matches!(
            (self, condition),
            (State::Completed, _) | (State::Healthy, Started | Healthy) | (State::Started, Started)
        )
    }
}

/// The state of a service from its workload (live JSON) and its pods.
pub fn evaluate(workload: &Value, pods: &[Pod]) -> State {
    let kind = workload["kind"].as_str().unwrap_or_default();
    let live: Vec<&Pod> = pods.iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
    for pod in &live {
        if let Some((container, reason)) = fatal(pod) {
            return State::Failed {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                reason,
                crashed_container: Some(container),
            };
        }
        if let Some(message) = unschedulable(pod) {
            return State::Failed {
                pod: pod.metadata.name.clone().unwrap_or_default(),
                reason: format!("cannot be scheduled: {message}"),
                crashed_container: None,
            };
        }
    }
    if kind == "Job" {
        return job_state(workload, &live);
    }
    let wanted = match kind {
        "DaemonSet" => workload["status"]["desiredNumberScheduled"].as_i64().unwrap_or(1).max(1),
        _ => workload["spec"]["replicas"].as_i64().unwrap_or(1),
    };
    if wanted == 0 {
        return State::Healthy;
    }
    let ready = live.iter().filter(|p| is_ready(p) && settled(p)).count() as i64;
    let running = live.iter().filter(|p| is_running(p)).count() as i64;
    if ready >= wanted {
        State::Healthy
    } else if running >= wanted {
        State::Started
    } else {
        let pending: Vec<String> = live.iter().filter(|p| !is_running(p)).map(|p| pod_progress(p)).collect();
        State::NotYet(if pending.is_empty() {
            format!("{running} of {wanted} pods running")
        } else {
            format!("{running} of {wanted} pods running; {}", pending.join(", "))
        })
    }
}

fn job_state(job: &Value, pods: &[&Pod]) -> State {
    let conditions = job["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let has = |t: &str| conditions.iter().any(|c| c["type"] == t && c["status"] == "True");
    if has("Complete") {
        return State::Completed;
    }
    if has("Failed") {
        let pod = pods.iter().find(|p| phase(p) == "Failed");
        return State::Failed {
            pod: pod.and_then(|p| p.metadata.name.clone()).unwrap_or_else(|| "-".into()),
            reason: "the job failed (backoffLimit reached)".into(),
            crashed_container: pod.and_then(|p| first_container(p)),
        };
    }
    if pods.iter().any(|p| phase(p) == "Succeeded") {
        return State::Completed;
    }
    if pods.iter().any(|p| is_running(p)) {
        return State::Started;
    }
    State::NotYet(pods.iter().map(|p| pod_progress(p)).collect::<Vec<_>>().join(", "))
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending")
}

fn first_container(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| c.name.clone())
}

/// How long a container without a readiness probe must have run before it counts as healthy: a
/// container that exits at once would otherwise look ready for an instant (compose's `--wait` fails on
/// a container that exits; so do we). `startedAt` has whole seconds (metav1.Time), so an age of 2 s
/// means at least 1 s of real running, which gives the agent time to report an exit.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a Ready pod is past the point where it could still be a container exiting at start.
fn settled(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else { return true };
    if spec.containers.iter().all(|c| c.readiness_probe.is_some()) {
        return true;
    }
    let now = jiff::Timestamp::now();
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    statuses.is_some_and(|cs| {
        cs.iter().all(|c| {
            let started = c.state.as_ref().and_then(|s| s.running.as_ref()).and_then(|r| r.started_at.as_ref());
            started.is_some_and(|t| now.duration_since(t.0).unsigned_abs() >= SETTLE)
        })
    })
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_running(pod: &Pod) -> bool {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
    phase(pod) == "Running"
        && statuses.is_some_and(|cs| {
            !cs.is_empty() && cs.iter().all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
        || phase(pod) == "Succeeded"
}

/// The container and reason of a waiting state that waiting will not fix.
fn fatal(pod: &Pod) -> Option<(String, String)> {
    let status = pod.status.as_ref()?;
    let all = status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for c in all {
        let Some(waiting) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else { continue };
        let reason = waiting.reason.clone().unwrap_or_default();
        if FATAL_REASONS.contains(&reason.as_str()) {
            let message = waiting.message.as_deref().filter(|m| !m.is_empty());
            let text = match message {
                Some(m) => format!("{reason}: {m}"),
                None => reason,
            };
            return Some((c.name.clone(), text));
        }
    }
    None
}

fn unschedulable(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    (c.reason.as_deref() == Some("Unschedulable")).then(|| c.message.clone().unwrap_or_default())
}

/// One pod's progress in a few words, for "still waiting" messages.
fn pod_progress(pod: &Pod) -> String {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let waiting = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    let what = if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none() {
        "not scheduled yet".to_owned()
    } else if let Some(reason) = waiting {
        reason
    } else if phase(pod) == "Running" && !is_ready(pod) {
        "running, readiness probe not passing yet".to_owned()
    } else {
        phase(pod).to_owned()
    };
    format!("pod {name}: {what}")
}

/// Reads a service's workload and pods and evaluates them.
pub async fn state(client: &Client, namespace: &str, workload: &Value) -> Result<State> {
    let name = workload["metadata"]["name"].as_str().unwrap_or_default();
    let api = super::objects::api_for(client, workload, namespace)?;
    let live = api.get_opt(name).await.map_err(api_err(format!("reading {name}")))?;
    let Some(live) = live else { return Ok(State::NotYet(format!("{name} is not created yet"))) };
    let live = serde_json::to_value(live).map_err(|e| Error::Invalid(e.to_string()))?;
    let pods = service_pods(client, namespace, name).await?;
    Ok(evaluate(&live, &pods))
}

/// The pods of a service (by the translator's service label).
pub async fn service_pods(client: &Client, namespace: &str, service: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default().labels(&format!("{SERVICE_LABEL}={service}"));
    Ok(pods.list(&lp).await.map_err(api_err(format!("listing the pods of {service}")))?.items)
}

/// The last lines a crashed container printed (its previous run when it restarted), for error messages.
pub async fn last_log_lines(client: &Client, namespace: &str, pod: &str, container: &str, lines: i64) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for previous in [true, false] {
        let lp = LogParams {
            container: Some(container.to_owned()),
            previous,
            tail_lines: Some(lines),
            ..Default::default()
        };
        if let Ok(text) = pods.logs(pod, &lp).await
            && !text.trim().is_empty()
        {
            return text;
        }
    }
    String::new()
}

/// Waits until the service satisfies `condition`, failing at once when it cannot, or at `deadline`.
pub async fn until(
    client: &Client,
    namespace: &str,
    service: &str,
    workload: &Value,
    condition: super::Condition,
    deadline: Option<Instant>,
) -> Result<State> {
    let mut delay = Duration::from_millis(50);
    loop {
        let state = state(client, namespace, workload).await?;
        if state.satisfies(condition) {
            return Ok(state);
        }
        if let State::Failed { pod, reason, crashed_container } = &state {
            let mut message = format!("service {service:?} failed: pod {pod}: {reason}");
            if let Some(container) = crashed_container
                && reason.starts_with("CrashLoopBackOff")
            {
                let logs = last_log_lines(client, namespace, pod, container, 10).await;
                if !logs.trim().is_empty() {
                    message.push_str("\nlast log lines:\n");
                    for line in logs.lines() {
                        message.push_str(&format!("  {line}\n"));
                    }
                }
            }
            return Err(Error::Service(message.trim_end().to_owned()));
        }
        if let Some(deadline) = deadline
            && Instant::now() >= deadline
        {
            let why = match state {
                State::NotYet(why) => why,
                State::Started => "running, but not healthy: its readiness probe (healthcheck) is failing".into(),
                other => format!("{other:?}"),
            };
            return Err(Error::Service(format!("service {service:?} is not ready: {why}")));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(POLL_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn running(ready: bool) -> Pod {
        pod(json!({"metadata": {"name": "web-1"}, "spec": {"nodeName": "n", "containers": [{"name": "web"}]},
            "status": {"phase": "Running",
              "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
              "containerStatuses": [{"name": "web", "ready": ready, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"running": {"startedAt": "2020-01-01T00:00:00Z"}}}]}}))
    }

    #[test]
    fn deployment_states() {
        let d = json!({"kind": "Deployment", "spec": {"replicas": 1}});
        assert_eq!(evaluate(&d, &[running(true)]), State::Healthy);
        assert_eq!(evaluate(&d, &[running(false)]), State::Started);
        assert!(matches!(evaluate(&d, &[]), State::NotYet(_)));
        let two = json!({"kind": "Deployment", "spec": {"replicas": 2}});
        assert!(matches!(evaluate(&two, &[running(true)]), State::NotYet(_)));
    }

    #[test]
    fn a_container_that_just_started_is_not_yet_healthy() {
        let mut p = running(true);
        let now = jiff::Timestamp::now().to_string();
        let status = p.status.as_mut().unwrap().container_statuses.as_mut().unwrap();
        status[0].state = serde_json::from_value(json!({"running": {"startedAt": now}})).unwrap();
        let d = json!({"kind": "Deployment", "spec": {"replicas": 1}});
        assert_eq!(evaluate(&d, &[p]), State::Started);
    }

    #[test]
    fn missing_image_fails_at_once() {
        let p = pod(json!({"metadata": {"name": "web-1"}, "spec": {"nodeName": "n", "containers": [{"name": "web"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
              "image": "x", "imageID": "", "state": {"waiting": {"reason": "ErrImageNeverPull",
              "message": "image \"x\" is not present"}}}]}}));
        let d = json!({"kind": "Deployment", "spec": {"replicas": 1}});
        match evaluate(&d, &[p]) {
            State::Failed { pod, reason, .. } => {
                assert_eq!(pod, "web-1");
                assert!(reason.starts_with("ErrImageNeverPull"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conditions() {
        use crate::project::Condition::*;
        assert!(State::Healthy.satisfies(Started));
        assert!(!State::Started.satisfies(Healthy));
        assert!(State::Completed.satisfies(CompletedSuccessfully));
        assert!(!State::Healthy.satisfies(CompletedSuccessfully));
    }
}
