//! Job controller: runs up to `parallelism` pods until `completions` have succeeded (Complete) or more than
//! `backoffLimit` have failed (Failed), with `activeDeadlineSeconds`; pods keep the template's restartPolicy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{
    Ctx, Error, PodName, controlled_by, controller_ref, drain, error_policy, now, pod_from_template, pod_phase,
    pod_ready,
};

/// Runs the Job controller until the process ends.
pub async fn run(client: kube::Client) {
    let ctx = Arc::new(Ctx { client: client.clone() });
    let stream = Controller::new(Api::<Job>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Pod>::all(client), watcher::Config::default())
        .run(reconcile, error_policy, ctx);
    drain("job", stream).await;
}

/// Counts from the Job's pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub active: i32,
    pub succeeded: i32,
    pub failed: i32,
}

/// The Job's verdict for this round.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Create this many pods (may be 0).
    Run(i32),
    Complete,
    /// Failed with a reason and message, as kube-controller-manager words them.
    Failed(&'static str, &'static str),
}

/// Decides what the Job does next from its spec and counts.
pub fn decide(
    completions: Option<i32>,
    parallelism: i32,
    backoff_limit: i32,
    deadline_passed: bool,
    suspended: bool,
    c: Counts,
) -> Verdict {
    if c.failed > backoff_limit {
        return Verdict::Failed("BackoffLimitExceeded", "Job has reached the specified backoff limit");
    }
    if deadline_passed {
        return Verdict::Failed("DeadlineExceeded", "Job was active longer than specified deadline");
    }
    match completions {
        Some(n) if c.succeeded >= n => return Verdict::Complete,
        // Without completions, any success ends the Job once nothing else runs.
        None if c.succeeded > 0 && c.active == 0 => return Verdict::Complete,
        _ => {}
    }
    if suspended {
        return Verdict::Run(0);
    }
    let want = match completions {
        Some(n) => parallelism.min(n - c.succeeded),
        None if c.succeeded > 0 => 0,
        None => parallelism,
    };
    Verdict::Run((want - c.active).max(0))
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now()),
        last_transition_time: Some(now()),
    }
}

fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True"))
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let uid = job.uid().ok_or_else(|| Error::Missing(name.clone(), "metadata.uid"))?;
    let spec = job.spec.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned: Vec<Pod> = pods
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| controlled_by(&p.metadata, &uid))
        .collect();
    let active: Vec<&Pod> = owned
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !matches!(pod_phase(p), "Succeeded" | "Failed"))
        .collect();
    let old = job.status.clone().unwrap_or_default();
    let on_failure = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) == Some("OnFailure");
    // With OnFailure the pod restarts in place: its container restarts count as failures, as upstream.
    let restarts: i32 = if on_failure {
        active
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .map(|c| c.restart_count)
            .sum()
    } else {
        0
    };
    let counts = Counts {
        active: active.len() as i32,
        succeeded: (owned.iter().filter(|p| pod_phase(p) == "Succeeded").count() as i32)
            .max(old.succeeded.unwrap_or(0)),
        failed: (owned.iter().filter(|p| pod_phase(p) == "Failed").count() as i32 + restarts)
            .max(old.failed.unwrap_or(0)),
    };

    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    if finished(&job) {
        for p in &active {
            super::delete_ignore_missing(&pods, &p.name_any(), &DeleteParams::default()).await?;
        }
        return Ok(Action::await_change());
    }

    let start = old.start_time.clone().unwrap_or_else(now);
    let deadline = spec.active_deadline_seconds.map(|s| start.0 + jiff::SignedDuration::from_secs(s));
    let deadline_passed = deadline.is_some_and(|d| jiff::Timestamp::now() >= d);
    let suspended = spec.suspend == Some(true);
    let verdict = decide(
        spec.completions,
        spec.parallelism.unwrap_or(1),
        spec.backoff_limit.unwrap_or(6),
        deadline_passed,
        suspended,
        counts,
    );
    let mut status = JobStatus {
        active: Some(counts.active),
        succeeded: Some(counts.succeeded),
        failed: Some(counts.failed),
        ready: Some(active.iter().filter(|p| pod_ready(p)).count() as i32),
        start_time: if suspended && old.start_time.is_none() { None } else { Some(start) },
        conditions: old.conditions.clone(),
        ..old.clone()
    };
    match verdict {
        Verdict::Run(n) => {
            let labels = BTreeMap::from([
                ("batch.kubernetes.io/job-name".to_string(), name.clone()),
                ("job-name".to_string(), name.clone()),
                ("batch.kubernetes.io/controller-uid".to_string(), uid.clone()),
                ("controller-uid".to_string(), uid.clone()),
            ]);
            let pod =
                pod_from_template(&spec.template, &ns, PodName::Generate(name.clone()), &labels, controller_ref(&*job));
            let pp = PostParams::default();
            futures::future::try_join_all((0..n).map(|_| pods.create(&pp, &pod))).await?;
            status.active = Some(counts.active + n);
            if suspended {
                for p in &active {
                    super::delete_ignore_missing(&pods, &p.name_any(), &DeleteParams::default()).await?;
                }
            }
        }
        Verdict::Complete => {
            let conds = status.conditions.get_or_insert_with(Vec::new);
            conds.push(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ));
            conds.push(condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods"));
            status.completion_time = Some(now());
        }
        Verdict::Failed(reason, message) => {
            let conds = status.conditions.get_or_insert_with(Vec::new);
            conds.push(condition("FailureTarget", reason, message));
            conds.push(condition("Failed", reason, message));
            for p in &active {
                super::delete_ignore_missing(&pods, &p.name_any(), &DeleteParams::default()).await?;
            }
            status.active = Some(0);
        }
    }
    if job.status.as_ref() != Some(&status) {
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    }
    Ok(match deadline {
        Some(d) if !deadline_passed => {
            let left = d.duration_since(jiff::Timestamp::now()).as_secs().max(1) as u64;
            Action::requeue(Duration::from_secs(left.min(300)))
        }
        _ => Action::requeue(Duration::from_secs(300)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(active: i32, succeeded: i32, failed: i32) -> Counts {
        Counts { active, succeeded, failed }
    }

    #[test]
    fn runs_up_to_parallelism_and_completes() {
        assert_eq!(decide(Some(3), 2, 6, false, false, c(0, 0, 0)), Verdict::Run(2));
        assert_eq!(decide(Some(3), 2, 6, false, false, c(1, 2, 0)), Verdict::Run(0));
        assert_eq!(decide(Some(3), 2, 6, false, false, c(0, 2, 0)), Verdict::Run(1));
        assert_eq!(decide(Some(3), 2, 6, false, false, c(0, 3, 0)), Verdict::Complete);
        assert_eq!(decide(None, 1, 6, false, false, c(0, 0, 0)), Verdict::Run(1));
        assert_eq!(decide(None, 2, 6, false, false, c(1, 1, 0)), Verdict::Run(0));
        assert_eq!(decide(None, 2, 6, false, false, c(0, 1, 0)), Verdict::Complete);
    }

    #[test]
    fn fails_past_the_backoff_limit_or_deadline() {
        assert_eq!(decide(Some(1), 1, 2, false, false, c(0, 0, 2)), Verdict::Run(1));
        assert!(matches!(decide(Some(1), 1, 2, false, false, c(0, 0, 3)), Verdict::Failed("BackoffLimitExceeded", _)));
        assert!(matches!(decide(Some(1), 1, 0, false, false, c(0, 0, 1)), Verdict::Failed(..)));
        assert!(matches!(decide(Some(1), 1, 6, true, false, c(1, 0, 0)), Verdict::Failed("DeadlineExceeded", _)));
        assert_eq!(decide(Some(1), 1, 6, false, true, c(0, 0, 0)), Verdict::Run(0));
    }
}
