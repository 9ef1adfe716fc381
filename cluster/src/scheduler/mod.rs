//! The scheduler: binds pending pods to nodes (the `pods/binding` subresource) after a resource check.
//! Owned by the controllers work stream.
//!
//! Pods and Nodes are followed by two watches feeding an incremental cache, the shape of kube-scheduler's:
//! per node, the requests, pod count and host ports of the pods placed there ([`filter::NodeUsage`]),
//! updated from each pod event; the pods themselves are not kept, except those waiting to be placed. So the
//! cost of placing a pod does not grow with the number of pods in the cluster, and the scheduler's memory is
//! a few dozen bytes per bound pod. The choice itself is [`filter::schedule`], pure.
//!
//! Bindings made in this process are "assumed" (kube-scheduler's word): the pod counts on its node at once,
//! before the watch shows the binding, so the next decision never misses the pods just placed.
//! A pod that fits nowhere gets `PodScheduled=False`, reason `Unschedulable`, and a FailedScheduling event,
//! and is retried when something that could make room changes (a node, a pod leaving a node, the pod
//! itself) and every [`RETRY_PERIOD`].

pub mod affinity;
pub mod filter;
mod volumes;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Event, EventSource, Node, ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use serde_json::json;

use filter::{Candidate, NodeInfo, NodeUsage, PodUsage};

/// Bindings in flight at once.
const BIND_CONCURRENCY: usize = 64;

/// How often unschedulable pods are retried when nothing prompts it.
const RETRY_PERIOD: Duration = Duration::from_secs(10);

/// Events applied at most before a pass, so a long burst still gets pods placed as it goes.
const MAX_EVENTS_PER_PASS: usize = 4096;

/// The schedulerName this scheduler serves.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// Runs the scheduler until the process ends.
pub async fn run(client: kube::Client) {
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| Change::Pod(Box::new(e)));
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| Change::Node(Box::new(e)));
    let changes = futures::stream::select(pods, nodes);
    futures::pin_mut!(changes);
    let mut scheduler = Scheduler { client, cache: Cache::default(), next_start: 0 };
    let mut retry = tokio::time::interval(RETRY_PERIOD);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.next() => {
                let Some(change) = change else { return };
                scheduler.cache.apply(change);
                // Take whatever else is already there, so a burst is one pass, not one per event.
                let mut taken = 1;
                while taken < MAX_EVENTS_PER_PASS {
                    match futures::FutureExt::now_or_never(changes.next()) {
                        Some(Some(change)) => scheduler.cache.apply(change),
                        Some(None) => return,
                        None => break,
                    }
                    taken += 1;
                }
            }
            _ = retry.tick() => scheduler.cache.retry_unschedulable(),
        }
        if scheduler.cache.ready() {
            scheduler.pass().await;
        }
    }
}

/// One watch event of either kind (boxed: a Pod is large, and most events are pods anyway).
enum Change {
    Pod(Box<Result<watcher::Event<Pod>, watcher::Error>>),
    Node(Box<Result<watcher::Event<Node>, watcher::Error>>),
}

/// Where a known pod stands for the scheduler.
#[derive(Debug)]
enum PodEntry {
    /// On a node (bound, or assumed: bound by us, the watch not showing it yet), not finished.
    Placed { node: String, usage: PodUsage, assumed: bool },
    /// Ours to place.
    Pending(Pending),
    /// Nothing to do and nothing counted (another scheduler's, finished, or terminating unbound).
    Ignored,
}

#[derive(Debug)]
struct Pending {
    pod: Arc<Pod>,
    /// The unschedulable message last written for this pod, so it is written once.
    reported: Option<String>,
}

/// The scheduler's view of the cluster, kept up to date from watch events.
#[derive(Default)]
struct Cache {
    /// Pod uid → entry.
    pods: HashMap<String, PodEntry>,
    /// Node name → what is placed there (also for nodes not seen yet).
    usage: HashMap<String, NodeUsage>,
    /// Node name → the node as the filters see it.
    nodes: HashMap<String, NodeInfo>,
    /// The same nodes in a stable order (by name), rebuilt when a node changes.
    node_list: Vec<NodeInfo>,
    node_list_stale: bool,
    /// Pending pods (uid) to try at the next pass.
    queue: HashSet<String>,
    /// Pending pods tried and found unschedulable, waiting for a change.
    unschedulable: HashSet<String>,
    /// Relists in progress: the entries seen so far (pods) or nodes seen so far.
    pod_relist: Option<HashMap<String, PodEntry>>,
    node_relist: Option<HashMap<String, NodeInfo>>,
    pods_synced: bool,
    nodes_synced: bool,
}

/// Whether this scheduler should place `pod`.
pub fn wants(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty)
        && spec.and_then(|s| s.scheduler_name.as_deref()).is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
        && pod.metadata.deletion_timestamp.is_none()
        && !matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// The entry a pod event makes, before taking the previous entry into account.
fn entry_of(pod: Pod) -> PodEntry {
    let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or_default();
    let finished = matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
    if !node.is_empty() {
        if finished {
            return PodEntry::Ignored;
        }
        return PodEntry::Placed { node: node.to_string(), usage: PodUsage::of(&pod), assumed: false };
    }
    if wants(&pod) {
        return PodEntry::Pending(Pending { pod: Arc::new(pod), reported: None });
    }
    PodEntry::Ignored
}

impl Cache {
    fn ready(&self) -> bool {
        self.pods_synced && self.nodes_synced
    }

    fn apply(&mut self, change: Change) {
        let result = match change {
            Change::Pod(event) => (*event).map(|e| self.apply_pod(e)),
            Change::Node(event) => (*event).map(|e| self.apply_node(e)),
        };
        if let Err(err) = result {
            tracing::debug!(%err, "scheduler watch error");
        }
    }

    fn apply_pod(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pod_relist = Some(HashMap::new()),
            watcher::Event::InitApply(pod) => {
                let Some(uid) = pod.uid() else { return };
                let entry = entry_of(pod);
                if let Some(relist) = self.pod_relist.as_mut() {
                    relist.insert(uid, entry);
                }
            }
            watcher::Event::InitDone => {
                let relist = self.pod_relist.take().unwrap_or_default();
                // Start over from the list, keeping our assumptions for pods it still shows unbound.
                let old: Vec<String> = self.pods.keys().filter(|uid| !relist.contains_key(*uid)).cloned().collect();
                for uid in old {
                    self.set_pod(&uid, None);
                }
                for (uid, entry) in relist {
                    self.set_pod(&uid, Some(entry));
                }
                self.pods_synced = true;
            }
            watcher::Event::Apply(pod) => {
                let Some(uid) = pod.uid() else { return };
                self.set_pod(&uid, Some(entry_of(pod)));
            }
            watcher::Event::Delete(pod) => {
                let Some(uid) = pod.uid() else { return };
                self.set_pod(&uid, None);
            }
        }
    }

    /// Replaces what is known of one pod, keeping the node sums and queues in step.
    fn set_pod(&mut self, uid: &str, new: Option<PodEntry>) {
        let old = self.pods.remove(uid);
        // A pod we bound that the watch still shows unbound (an event older than the binding): keep it
        // where we put it.
        if let (Some(PodEntry::Placed { assumed: true, .. }), Some(PodEntry::Pending(_))) = (&old, &new) {
            self.pods.insert(uid.to_string(), old.unwrap_or(PodEntry::Ignored));
            return;
        }
        let mut freed = false;
        let mut reported = None;
        match old {
            Some(PodEntry::Placed { node, usage, .. }) => {
                // Room is made unless the pod stays where it was, asking for the same (a status update).
                freed = !matches!(&new, Some(PodEntry::Placed { node: n, usage: u, .. }) if *n == node && *u == usage);
                if let Some(sum) = self.usage.get_mut(&node) {
                    sum.remove(&usage);
                    if sum.is_empty() {
                        self.usage.remove(&node);
                    }
                }
            }
            Some(PodEntry::Pending(p)) => reported = p.reported,
            Some(PodEntry::Ignored) | None => {}
        }
        self.queue.remove(uid);
        self.unschedulable.remove(uid);
        match new {
            Some(PodEntry::Placed { node, usage, assumed }) => {
                self.usage.entry(node.clone()).or_default().add(&usage);
                self.pods.insert(uid.to_string(), PodEntry::Placed { node, usage, assumed });
            }
            Some(PodEntry::Pending(mut p)) => {
                // A change to the pod itself is a reason to try it again (kube-scheduler does the same).
                p.reported = reported;
                self.queue.insert(uid.to_string());
                self.pods.insert(uid.to_string(), PodEntry::Pending(p));
            }
            Some(PodEntry::Ignored) => {
                self.pods.insert(uid.to_string(), PodEntry::Ignored);
            }
            None => {}
        }
        if freed {
            // Room was made (or a pod moved): what did not fit may fit now.
            self.retry_unschedulable();
        }
    }

    fn apply_node(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Init => self.node_relist = Some(HashMap::new()),
            watcher::Event::InitApply(node) => {
                let info = NodeInfo::of(&node);
                if let Some(relist) = self.node_relist.as_mut() {
                    relist.insert(info.name.clone(), info);
                }
            }
            watcher::Event::InitDone => {
                self.nodes = self.node_relist.take().unwrap_or_default();
                self.nodes_synced = true;
                self.node_changed();
            }
            watcher::Event::Apply(node) => {
                let info = NodeInfo::of(&node);
                self.nodes.insert(info.name.clone(), info);
                self.node_changed();
            }
            watcher::Event::Delete(node) => {
                self.nodes.remove(&node.name_any());
                self.node_changed();
            }
        }
    }

    fn node_changed(&mut self) {
        self.node_list_stale = true;
        self.retry_unschedulable();
    }

    fn retry_unschedulable(&mut self) {
        self.queue.extend(self.unschedulable.drain());
    }

    fn node_list(&mut self) -> &[NodeInfo] {
        if self.node_list_stale {
            let mut list: Vec<NodeInfo> = self.nodes.values().cloned().collect();
            list.sort_by(|a, b| a.name.cmp(&b.name));
            self.node_list = list;
            self.node_list_stale = false;
        }
        &self.node_list
    }

    /// Takes the queued pods, in the order kube-scheduler's queue gives them: priority, then age, then name.
    fn take_queue(&mut self) -> Vec<(String, Arc<Pod>)> {
        let mut pods: Vec<(String, Arc<Pod>)> = self
            .queue
            .drain()
            .filter_map(|uid| match self.pods.get(&uid) {
                Some(PodEntry::Pending(p)) => Some((uid, p.pod.clone())),
                _ => None,
            })
            .collect();
        pods.sort_by_cached_key(|(_, p)| {
            let prio = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            (std::cmp::Reverse(prio), p.metadata.creation_timestamp.clone(), p.name_any())
        });
        pods
    }
}

struct Scheduler {
    client: kube::Client,
    cache: Cache,
    /// Where the next node search starts (see [`filter::schedule`]).
    next_start: usize,
}

impl Scheduler {
    async fn pass(&mut self) {
        let queued = self.cache.take_queue();
        if queued.is_empty() {
            return;
        }
        // Decide every queued pod first (each placement counts for the next, assumed at once), then bind
        // them all: the bindings are independent writes, and the store commits concurrent writes together.
        let mut placed: Vec<(String, Arc<Pod>, String)> = vec![];
        let mut unschedulable: Vec<(String, Arc<Pod>, String)> = vec![];
        self.cache.node_list();
        for (uid, pod) in queued {
            let mut candidate = Candidate::new(&pod);
            let claims = volumes::claims_of(&self.client, &pod).await;
            candidate.volume_nodes = claims.iter().filter_map(|c| c.node.clone()).collect();
            let nodes = &self.cache.node_list;
            let start = if nodes.is_empty() { 0 } else { self.next_start % nodes.len() };
            match filter::schedule(&candidate, nodes, &self.cache.usage, start) {
                Ok(node) => {
                    let node = node.to_string();
                    // Unplaced claims get their data where the pod goes (WaitForFirstConsumer).
                    volumes::select_node(&self.client, &claims, &node).await;
                    self.next_start = start + 1;
                    let entry = PodEntry::Placed { node: node.clone(), usage: candidate.usage, assumed: true };
                    self.cache.set_pod(&uid, Some(entry));
                    placed.push((uid, pod, node));
                }
                Err(message) => unschedulable.push((uid, pod, message)),
            }
        }
        let binds = placed.into_iter().map(|(uid, pod, node)| {
            let client = self.client.clone();
            async move {
                let result = bind(client, &pod, &node).await;
                (uid, pod, result)
            }
        });
        let results: Vec<_> = futures::stream::iter(binds).buffer_unordered(BIND_CONCURRENCY).collect().await;
        for (uid, pod, result) in results {
            if let Err(err) = result {
                tracing::warn!(pod = %pod.name_any(), %err, "binding failed; retrying");
                // Undo the assumption (unless the watch has moved on) and try again at the next pass.
                if matches!(self.cache.pods.get(&uid), Some(PodEntry::Placed { assumed: true, .. })) {
                    self.cache.set_pod(&uid, None);
                    let entry = PodEntry::Pending(Pending { pod, reported: None });
                    self.cache.set_pod(&uid, Some(entry));
                }
            }
        }
        for (uid, pod, message) in unschedulable {
            let Some(PodEntry::Pending(pending)) = self.cache.pods.get(&uid) else { continue };
            if !self.cache.queue.contains(&uid) {
                self.cache.unschedulable.insert(uid.clone());
            }
            if pending.reported.as_deref() == Some(message.as_str()) {
                continue;
            }
            match self.report_unschedulable(&pod, &message).await {
                Ok(()) => {
                    if let Some(PodEntry::Pending(pending)) = self.cache.pods.get_mut(&uid) {
                        pending.reported = Some(message);
                    }
                }
                Err(err) => tracing::warn!(pod = %pod.name_any(), %err, "cannot record unschedulable pod"),
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
        let event = pod_event(pod, "Warning", "FailedScheduling", message);
        if let Err(err) =
            Api::<Event>::namespaced(self.client.clone(), &ns).create(&PostParams::default(), &event).await
        {
            tracing::debug!(%err, "cannot record FailedScheduling event");
        }
        Ok(())
    }
}

/// An event about `pod` from the scheduler.
fn pod_event(pod: &Pod, type_: &str, reason: &str, message: &str) -> Event {
    let now = Time(jiff::Timestamp::now());
    let ns = pod.namespace().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", pod.name_any())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: Some(ns),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.to_string()),
        type_: Some(type_.into()),
        source: Some(EventSource { component: Some(SCHEDULER_NAME.into()), host: None }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        reporting_component: Some(SCHEDULER_NAME.into()),
        ..Default::default()
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
            // `kubectl describe pod` starts with this event; recording it never holds up the next binding.
            let message = format!("Successfully assigned {ns}/{} to {node}", pod.name_any());
            let event = pod_event(pod, "Normal", "Scheduled", &message);
            let events: Api<Event> = Api::namespaced(api.into_client(), &ns);
            tokio::spawn(async move {
                if let Err(err) = events.create(&PostParams::default(), &event).await {
                    tracing::debug!(%err, "cannot record Scheduled event");
                }
            });
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

    fn pod(uid: &str, node: Option<&str>, cpu: &str) -> Pod {
        let mut spec = json!({"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        serde_json::from_value(json!({"metadata": {"name": uid, "namespace": "d", "uid": uid}, "spec": spec})).unwrap()
    }

    fn node(name: &str, cpu: &str) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {
            "allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]}}))
        .unwrap()
    }

    fn synced(nodes: &[Node], pods: &[Pod]) -> Cache {
        let mut cache = Cache::default();
        cache.apply_node(watcher::Event::Init);
        for n in nodes {
            cache.apply_node(watcher::Event::InitApply(n.clone()));
        }
        cache.apply_node(watcher::Event::InitDone);
        cache.apply_pod(watcher::Event::Init);
        for p in pods {
            cache.apply_pod(watcher::Event::InitApply(p.clone()));
        }
        cache.apply_pod(watcher::Event::InitDone);
        cache
    }

    #[test]
    fn cache_sums_bound_pods_per_node_and_queues_pending_ones() {
        let mut cache = synced(&[node("n1", "1")], &[pod("a", Some("n1"), "300m"), pod("b", None, "100m")]);
        assert!(cache.ready());
        assert_eq!(cache.usage["n1"].requested.milli_cpu, 300);
        assert_eq!(cache.usage["n1"].requested.pods, 1);
        let queued = cache.take_queue();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].0, "b");
        // The binding shows up: b counts on n1 and is no longer pending.
        cache.apply_pod(watcher::Event::Apply(pod("b", Some("n1"), "100m")));
        assert_eq!(cache.usage["n1"].requested.milli_cpu, 400);
        assert!(cache.take_queue().is_empty());
        // A pod moving through phases is counted once; deletions take it off.
        cache.apply_pod(watcher::Event::Apply(pod("b", Some("n1"), "100m")));
        assert_eq!(cache.usage["n1"].requested.pods, 2);
        cache.apply_pod(watcher::Event::Delete(pod("a", Some("n1"), "300m")));
        cache.apply_pod(watcher::Event::Delete(pod("b", Some("n1"), "100m")));
        assert!(!cache.usage.contains_key("n1"));
        assert!(cache.pods.is_empty());
    }

    #[test]
    fn assumed_pods_stay_placed_until_the_watch_catches_up() {
        let mut cache = synced(&[node("n1", "1")], &[pod("a", None, "600m")]);
        let (uid, p) = cache.take_queue().remove(0);
        let usage = PodUsage::of(&p);
        cache.set_pod(&uid, Some(PodEntry::Placed { node: "n1".into(), usage, assumed: true }));
        assert_eq!(cache.usage["n1"].requested.milli_cpu, 600);
        // An event older than the binding (still unbound) does not undo the assumption.
        cache.apply_pod(watcher::Event::Apply(pod("a", None, "600m")));
        assert_eq!(cache.usage["n1"].requested.milli_cpu, 600);
        assert!(cache.take_queue().is_empty());
        // Nor does a relist that still shows it unbound.
        cache.apply_pod(watcher::Event::Init);
        cache.apply_pod(watcher::Event::InitApply(pod("a", None, "600m")));
        cache.apply_pod(watcher::Event::InitDone);
        assert_eq!(cache.usage["n1"].requested.milli_cpu, 600);
        // The binding event replaces it, counted once.
        cache.apply_pod(watcher::Event::Apply(pod("a", Some("n1"), "600m")));
        assert_eq!(cache.usage["n1"].requested.milli_cpu, 600);
        assert!(matches!(cache.pods["a"], PodEntry::Placed { assumed: false, .. }));
    }

    #[test]
    fn unschedulable_pods_are_retried_when_room_is_made_or_nodes_change() {
        let mut cache = synced(&[node("n1", "1")], &[pod("a", Some("n1"), "800m"), pod("b", None, "500m")]);
        let queued = cache.take_queue();
        let candidate = Candidate::new(&queued[0].1);
        assert!(
            {
                cache.node_list();
                filter::schedule(&candidate, &cache.node_list, &cache.usage, 0)
            }
            .is_err()
        );
        cache.unschedulable.insert(queued[0].0.clone());
        // Unrelated pending pods do not retry it, nor does a bound pod's status update.
        cache.apply_pod(watcher::Event::Apply(pod("c", None, "1")));
        cache.apply_pod(watcher::Event::Apply(pod("a", Some("n1"), "800m")));
        assert_eq!(cache.take_queue().len(), 1);
        // The pod on n1 goes: b is queued again, and now fits.
        cache.apply_pod(watcher::Event::Delete(pod("a", Some("n1"), "800m")));
        let queued = cache.take_queue();
        assert_eq!(queued.len(), 1);
        let candidate = Candidate::new(&queued[0].1);
        assert_eq!(
            {
                cache.node_list();
                filter::schedule(&candidate, &cache.node_list, &cache.usage, 0)
            }
            .unwrap(),
            "n1"
        );
        // A node change retries too.
        cache.unschedulable.insert("b".into());
        cache.apply_node(watcher::Event::Apply(node("n2", "4")));
        assert!(cache.take_queue().iter().any(|(uid, _)| uid == "b"));
        assert_eq!(cache.node_list().len(), 2);
    }
}
