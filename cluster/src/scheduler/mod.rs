//! The scheduler: binds pending pods to nodes (the `pods/binding` subresource) after a resource check.
//! Owned by the controllers work stream.
//!
//! Pods and Nodes are mirrored by two reflectors; any change to either (and a 10 s tick) starts a pass over
//! the pods with no `spec.nodeName` whose schedulerName is ours. The choice is [`filter::schedule`], pure.
//! Bindings made in this process are remembered ("assumed", as kube-scheduler calls it) until the pod
//! store shows them, so a pass never counts a node's resources without the pods it just placed there.
//! A pod that fits nowhere gets `PodScheduled=False`, reason `Unschedulable`, and a FailedScheduling event.

pub mod filter;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Event, EventSource, Node, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::Notify;

/// Bindings in flight at once.
const BIND_CONCURRENCY: usize = 16;

/// The schedulerName this scheduler serves.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Runs the scheduler until the process ends.
pub async fn run(client: kube::Client) {
    let notify = Arc::new(Notify::new());
    let pods = mirror::<Pod>(Api::all(client.clone()), notify.clone());
    let nodes = mirror::<Node>(Api::all(client.clone()), notify.clone());
    let _ = pods.wait_until_ready().await;
    let _ = nodes.wait_until_ready().await;
    let mut scheduler = Scheduler { client, pods, nodes, assumed: HashMap::new(), reported: HashMap::new() };
    loop {
        scheduler.pass().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), notify.notified()).await;
    }
}

/// Starts a reflector for `api`, poking `notify` on every change; returns its store.
fn mirror<K>(api: Api<K>, notify: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff());
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitApply(_)) | Ok(watcher::Event::Init) => {}
                Ok(_) => notify.notify_one(),
                Err(err) => tracing::debug!(%err, "scheduler watch error"),
            }
        }
    });
    reader
}

struct Scheduler {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Pod uid → node, for bindings the store does not show yet.
    assumed: HashMap<String, (String, Arc<Pod>)>,
    /// Pod uid → the last unschedulable message written, so it is written once.
    reported: HashMap<String, String>,
}

/// Whether this scheduler should place `pod`.
pub fn wants(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty)
        && spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

impl Scheduler {
    async fn pass(&mut self) {
        let pods = self.pods.state();
        let nodes = self.nodes.state();
        let by_uid: HashMap<String, &Arc<Pod>> = pods.iter().filter_map(|p| Some((p.uid()?, p))).collect();
        // Forget assumptions the store has caught up with (or whose pod is gone).
        self.assumed.retain(|uid, _| by_uid.get(uid).is_some_and(|p| wants(p)));
        self.reported.retain(|uid, _| by_uid.get(uid).is_some_and(|p| wants(p)));

        let mut on_node: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        for p in &pods {
            let node = p.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
            let finished = matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
            if !node.is_empty() && !finished {
                on_node.entry(node).or_default().push(p.clone());
            }
        }
        for (node, pod) in self.assumed.values() {
            on_node.entry(node.clone()).or_default().push(pod.clone());
        }

        let mut pending: Vec<&Arc<Pod>> =
            pods.iter().filter(|p| wants(p) && p.uid().is_some_and(|u| !self.assumed.contains_key(&u))).collect();
        pending.sort_by_key(|p| {
            let prio = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            (std::cmp::Reverse(prio), p.metadata.creation_timestamp.clone(), p.name_any())
        });
        let node_refs: Vec<&Node> = nodes.iter().map(|n| &**n).collect();
        // Decide every pending pod first (each placement counts for the next), then bind them all at once:
        // the bindings are independent writes, and the store commits concurrent writes together.
        let mut placed: Vec<(Arc<Pod>, String)> = vec![];
        let mut unschedulable: Vec<(Arc<Pod>, String)> = vec![];
        for pod in pending {
            let view: BTreeMap<String, Vec<&Pod>> =
                on_node.iter().map(|(n, ps)| (n.clone(), ps.iter().map(|p| &**p).collect())).collect();
            match filter::schedule(pod, &node_refs, &view) {
                Ok(node) => {
                    on_node.entry(node.clone()).or_default().push(pod.clone());
                    placed.push((pod.clone(), node));
                }
                Err(message) => unschedulable.push((pod.clone(), message)),
            }
        }
        let binds = placed.into_iter().map(|(pod, node)| {
            let client = self.client.clone();
            async move {
                let result = bind(client, &pod, &node).await;
                (pod, node, result)
            }
        });
        let results: Vec<_> = futures::stream::iter(binds).buffer_unordered(BIND_CONCURRENCY).collect().await;
        for (pod, node, result) in results {
            match result {
                Ok(()) => {
                    self.assumed.insert(pod.uid().unwrap_or_default(), (node, pod));
                }
                Err(err) => tracing::warn!(pod = %pod.name_any(), %err, "binding failed; retrying"),
            }
        }
        for (pod, message) in unschedulable {
            let uid = pod.uid().unwrap_or_default();
            if self.reported.get(&uid) != Some(&message) {
                match self.report_unschedulable(&pod, &message).await {
                    Ok(()) => {
                        self.reported.insert(uid, message);
                    }
                    Err(err) => tracing::warn!(pod = %pod.name_any(), %err, "cannot record unschedulable pod"),
                }
            }
        }
    }

    async fn report_unschedulable(&self, pod: &Pod, message: &str) -> Result<(), kube::Error> {
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let now = Time(jiff::Timestamp::now());
        let mut conditions: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.type_ != "PodScheduled")
            .collect();
        conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(message.to_string()),
            last_transition_time: Some(now.clone()),
            last_probe_time: None,
            observed_generation: None,
        });
        let patch = json!({"status": {"conditions": conditions}});
        api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
        tracing::info!(pod = %pod.name_any(), namespace = %ns, message, "pod unschedulable");
        // The event is for humans (`kubectl get events`); a server without events is not an error.
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", pod.name_any())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..Default::default()
            },
            reason: Some("FailedScheduling".into()),
            message: Some(message.to_string()),
            type_: Some("Warning".into()),
            source: Some(EventSource { component: Some(SCHEDULER_NAME.into()), host: None }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some(SCHEDULER_NAME.into()),
            ..Default::default()
        };
        if let Err(err) =
            Api::<Event>::namespaced(self.client.clone(), &ns).create(&PostParams::default(), &event).await
        {
            tracing::debug!(%err, "cannot record FailedScheduling event");
        }
        Ok(())
    }
}

/// Binds `pod` to `node` through the `pods/binding` subresource, as kube-scheduler does.
async fn bind(client: kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let binding = Binding {
        metadata: ObjectMeta { name: pod.metadata.name.clone(), namespace: Some(ns.clone()), ..Default::default() },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    match api
        .create_subresource::<_, serde_json::Value>("binding", &pod.name_any(), &PostParams::default(), &binding)
        .await
    {
        Ok(_) => {
            tracing::debug!(pod = %pod.name_any(), namespace = %ns, node, "bound");
            Ok(())
        }
        // Already bound or gone: nothing left to do for this pod.
        Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wants_only_unbound_default_pods() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        assert!(wants(&pod(json!({"metadata": {"name": "a"}, "spec": {"containers": []}}))));
        assert!(!wants(&pod(json!({"metadata": {"name": "a"}, "spec": {"containers": [], "nodeName": "n"}}))));
        assert!(!wants(&pod(json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "other"}}))));
        assert!(wants(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": [], "schedulerName": "default-scheduler"}})
        )));
        assert!(!wants(&pod(
            json!({"metadata": {"name": "a"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}})
        )));
    }
}
