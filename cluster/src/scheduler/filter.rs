//! The scheduler's decision, pure: filter nodes as kube-scheduler's default plugins do (NodeUnschedulable,
//! TaintToleration with the not-ready taint, NodeAffinity, NodePorts, NodeResourcesFit, and the rules about
//! other pods in `affinity.rs`), score the survivors by least allocated plus `affinity.rs`'s spreading and
//! preferences, and word a failure the way kube-scheduler does
//! ("0/1 nodes are available: 1 Insufficient memory.").

use super::affinity::{self, Context, PodMeta};
use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Parses a Kubernetes quantity into thousandths of its unit ("100m" cpu = 100, "1Gi" memory = 1024³·1000),
/// rounding up as apimachinery does. None when it does not parse.
pub fn parse_milli(q: &str) -> Option<i128> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    // A decimal exponent ("1e3", "2E-1") is part of the number, not a suffix.
    let exponent = suffix.strip_prefix(['e', 'E']).and_then(|r| r.parse::<i32>().ok());
    let (suffix, exp10) = match exponent {
        Some(e) => ("", e),
        None => (suffix, 0),
    };
    let value: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    let milli = value * mult * 10f64.powi(exp10) * 1000.0;
    // Guard against float noise ("0.1" * 1000 = 100.00000000000001) before rounding up.
    Some((milli - 1e-6).ceil() as i128)
}

/// Resource amounts the scheduler compares: cpu in millicores, memory in bytes, plus pod count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i128,
    pub memory: i128,
    pub pods: i128,
}

fn from_map(map: Option<&BTreeMap<String, Quantity>>) -> Resources {
    let get = |k: &str| map.and_then(|m| m.get(k)).and_then(|q| parse_milli(&q.0));
    Resources {
        milli_cpu: get("cpu").unwrap_or(0),
        memory: get("memory").map(|m| m / 1000).unwrap_or(0),
        pods: get("pods").map(|p| p / 1000).unwrap_or(0),
    }
}

/// A pod's effective requests: the larger of the sum over its containers and the largest init container,
/// plus overhead (kube-scheduler's `computePodResourceRequest`).
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else { return Resources::default() };
    let mut sum = Resources::default();
    for c in &spec.containers {
        let r = from_map(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
        sum.milli_cpu += r.milli_cpu;
        sum.memory += r.memory;
    }
    for c in spec.init_containers.iter().flatten() {
        let r = from_map(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
        sum.milli_cpu = sum.milli_cpu.max(r.milli_cpu);
        sum.memory = sum.memory.max(r.memory);
    }
    let overhead = from_map(spec.overhead.as_ref());
    sum.milli_cpu += overhead.milli_cpu;
    sum.memory += overhead.memory;
    sum.pods = 1;
    sum
}

/// What the node offers: allocatable, else capacity; a missing figure means no limit.
pub fn node_allocatable(node: &Node) -> (Option<i128>, Option<i128>, Option<i128>) {
    let status = node.status.as_ref();
    let map = status.and_then(|s| s.allocatable.as_ref()).or_else(|| status.and_then(|s| s.capacity.as_ref()));
    let get = |k: &str| map.and_then(|m| m.get(k)).and_then(|q| parse_milli(&q.0));
    (get("cpu"), get("memory").map(|m| m / 1000), get("pods").map(|p| p / 1000))
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t.effect.as_deref().is_none_or(|e| e.is_empty() || e == taint.effect);
        let key_ok = t.key.as_deref().is_none_or(|k| k.is_empty()) && t.operator.as_deref() == Some("Exists")
            || t.key.as_deref() == Some(taint.key.as_str());
        let value_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        };
        effect_ok && key_ok && value_ok
    })
}

/// A host port a pod asks for: (protocol, hostIP, port).
pub type HostPort = (String, String, i32);

/// Host ports a pod asks for.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else { return vec![] };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let hp = p.host_port.filter(|hp| *hp > 0)?;
            let ip = p.host_ip.clone().filter(|ip| !ip.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
            Some((p.protocol.clone().unwrap_or_else(|| "TCP".into()), ip, hp))
        })
        .collect()
}

fn ports_conflict(a: &HostPort, b: &HostPort) -> bool {
    a.0 == b.0 && a.2 == b.2 && (a.1 == b.1 || a.1 == "0.0.0.0" || b.1 == "0.0.0.0")
}

/// Requests counted for scoring: a pod without requests counts as 100m cpu / 200Mi memory, as in
/// kube-scheduler's least-allocated scoring.
fn nonzero(r: &Resources) -> (i128, i128) {
    const DEFAULT_CPU: i128 = 100;
    const DEFAULT_MEM: i128 = 200 * 1024 * 1024;
    (if r.milli_cpu == 0 { DEFAULT_CPU } else { r.milli_cpu }, if r.memory == 0 { DEFAULT_MEM } else { r.memory })
}

/// What the scheduler needs of one pod placed on a node; kept instead of the pod itself, so the cache of
/// bound pods costs a few dozen bytes per pod (kube-scheduler's `PodInfo`, reduced).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodUsage {
    pub requests: Resources,
    pub host_ports: Vec<HostPort>,
    /// Namespace, labels and controller, for the rules about other pods.
    pub meta: std::sync::Arc<PodMeta>,
}

impl PodUsage {
    pub fn of(pod: &Pod) -> Self {
        Self { requests: pod_requests(pod), host_ports: host_ports(pod), meta: PodMeta::of(pod) }
    }
}

/// The sum over the pods placed on one node (kube-scheduler's `NodeInfo.Requested`, `NonZeroRequested`,
/// `UsedPorts`), updated as pods come and go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeUsage {
    /// Requests summed; `pods` counts the pods.
    pub requested: Resources,
    /// Requests summed with the scoring defaults for pods without any.
    pub nonzero_cpu: i128,
    pub nonzero_memory: i128,
    /// Host ports in use, one entry per pod using it.
    pub host_ports: Vec<HostPort>,
    /// Who the pods are (affinity, spread).
    pub pods: Vec<std::sync::Arc<PodMeta>>,
}

impl NodeUsage {
    /// The usage of these pods (tests, and callers holding pods rather than a cache).
    pub fn of_pods(pods: &[&Pod]) -> Self {
        let mut usage = Self::default();
        for p in pods {
            usage.add(&PodUsage::of(p));
        }
        usage
    }

    pub fn add(&mut self, pod: &PodUsage) {
        let (cpu, mem) = nonzero(&pod.requests);
        self.requested.milli_cpu += pod.requests.milli_cpu;
        self.requested.memory += pod.requests.memory;
        self.requested.pods += 1;
        self.nonzero_cpu += cpu;
        self.nonzero_memory += mem;
        self.host_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod.meta.clone());
    }

    pub fn remove(&mut self, pod: &PodUsage) {
        let (cpu, mem) = nonzero(&pod.requests);
        self.requested.milli_cpu -= pod.requests.milli_cpu;
        self.requested.memory -= pod.requests.memory;
        self.requested.pods -= 1;
        self.nonzero_cpu -= cpu;
        self.nonzero_memory -= mem;
        for port in &pod.host_ports {
            if let Some(i) = self.host_ports.iter().position(|p| p == port) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(i) = self.pods.iter().position(|p| *p == pod.meta) {
            self.pods.swap_remove(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requested.pods == 0
    }
}

/// A node as the filters see it, parsed once per node change rather than once per pod and node.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub unschedulable: bool,
    /// NoSchedule/NoExecute taints, plus the not-ready taint when the node is not Ready.
    pub taints: Vec<Taint>,
    pub labels: BTreeMap<String, String>,
    pub cpu: Option<i128>,
    pub memory: Option<i128>,
    pub pods: Option<i128>,
}

impl NodeInfo {
    pub fn of(node: &Node) -> Self {
        let mut taints: Vec<Taint> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .collect();
        if !node_ready(node) {
            taints.push(Taint {
                key: "node.kubernetes.io/not-ready".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
        let (cpu, memory, pods) = node_allocatable(node);
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true),
            taints,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            cpu,
            memory,
            pods,
        }
    }
}

/// What the filters need of the pod being scheduled, computed once per scheduling attempt.
pub struct Candidate<'a> {
    pub pod: &'a Pod,
    pub usage: PodUsage,
    /// The nodes holding the data of the pod's PersistentVolumeClaims (their `selected-node`): the pod
    /// can run only there (a claim is a directory on one node).
    pub volume_nodes: Vec<String>,
}

impl<'a> Candidate<'a> {
    pub fn new(pod: &'a Pod) -> Self {
        Self { pod, usage: PodUsage::of(pod), volume_nodes: Vec::new() }
    }

    fn tolerations(&self) -> &[Toleration] {
        self.pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or_default()
    }
}

/// Why a node does not fit the pod: the reasons kube-scheduler prints (one plugin's, the first that fails).
pub fn filter(pod: &Candidate<'_>, ctx: &Context, node: &NodeInfo, used: &NodeUsage) -> Vec<String> {
    let tolerations = pod.tolerations();
    if node.unschedulable {
        let taint =
            Taint { key: "node.kubernetes.io/unschedulable".into(), effect: "NoSchedule".into(), ..Default::default() };
        if !tolerates(tolerations, &taint) {
            return vec!["node(s) were unschedulable".into()];
        }
    }
    for taint in &node.taints {
        if !tolerates(tolerations, taint) {
            return vec![format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or("")
            )];
        }
    }
    if !affinity::node_matches(pod.pod, node) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    if let Some(reason) = ctx.filter(node) {
        return vec![reason];
    }
    if pod.volume_nodes.iter().any(|n| *n != node.name) {
        return vec!["node(s) had volume node affinity conflict".into()];
    }
    let wanted = &pod.usage.host_ports;
    if wanted.iter().any(|w| used.host_ports.iter().any(|u| ports_conflict(w, u))) {
        return vec!["node(s) didn't have free ports for the requested pod ports".into()];
    }
    let req = &pod.usage.requests;
    let used = &used.requested;
    let mut reasons = vec![];
    if node.pods.is_some_and(|max| used.pods + 1 > max) {
        reasons.push("Too many pods".to_string());
    }
    if req.milli_cpu > 0 && node.cpu.is_some_and(|max| used.milli_cpu + req.milli_cpu > max) {
        reasons.push("Insufficient cpu".to_string());
    }
    if req.memory > 0 && node.memory.is_some_and(|max| used.memory + req.memory > max) {
        reasons.push("Insufficient memory".to_string());
    }
    reasons
}

/// Least-allocated score (0–100) of placing `pod` on `node`: the mean free share of cpu and memory after
/// placement, counting pods without requests as 100m cpu / 200Mi memory as kube-scheduler does.
pub fn score(pod: &Candidate<'_>, node: &NodeInfo, used: &NodeUsage) -> i64 {
    let (cpu, mem) = nonzero(&pod.usage.requests);
    let (cpu, mem) = (cpu + used.nonzero_cpu, mem + used.nonzero_memory);
    let part = |used: i128, cap: Option<i128>| match cap {
        Some(cap) if cap > 0 => (((cap - used).max(0)) * 100 / cap) as i64,
        _ => 100,
    };
    (part(cpu, node.cpu) + part(mem, node.memory)) / 2
}

/// How many feasible nodes a search stops at (kube-scheduler's adaptive `percentageOfNodesToScore`):
/// every node up to 100, then a share falling from 50% to 5% as the cluster grows, so placing a pod in a
/// cluster of thousands of nodes costs a bounded number of node checks.
pub fn feasible_nodes_to_find(total: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if total <= MIN_FEASIBLE {
        return total;
    }
    let percent = 50usize.saturating_sub(total / 125).max(5);
    (total * percent / 100).max(MIN_FEASIBLE)
}

/// Picks the node for `pod`, or returns kube-scheduler's message for why none fits. `usage` gives what is
/// already placed on each node (by name). The search starts at `start` (rotated by the caller between pods,
/// as kube-scheduler does, so a partial search does not always favour the same nodes) and stops after
/// [`feasible_nodes_to_find`] fitting nodes; a pod that fits nowhere has looked at every node.
pub fn schedule<'n>(
    pod: &Candidate<'_>,
    nodes: &'n [NodeInfo],
    usage: &HashMap<String, NodeUsage>,
    start: usize,
) -> Result<&'n str, String> {
    static EMPTY: std::sync::LazyLock<NodeUsage> = std::sync::LazyLock::new(NodeUsage::default);
    let wanted = feasible_nodes_to_find(nodes.len());
    let mut best: Option<(i64, &str)> = None;
    let mut found = 0;
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let ctx = Context::new(pod.pod, &pod.usage.meta, nodes, usage);
    let n = nodes.len();
    for i in 0..n {
        let node = &nodes[(start + i) % n];
        let here = usage.get(&node.name).unwrap_or(&EMPTY);
        let failed = filter(pod, &ctx, node, here);
        if failed.is_empty() {
            let s = score(pod, node, here) + ctx.score(pod.pod, node, here);
            // Highest score wins; ties go to the first name, so the choice is reproducible.
            if best.is_none_or(|(bs, bn)| s > bs || (s == bs && node.name.as_str() < bn)) {
                best = Some((s, &node.name));
            }
            found += 1;
            if found >= wanted {
                break;
            }
        } else {
            for r in failed {
                *reasons.entry(r).or_default() += 1;
            }
        }
    }
    match best {
        Some((_, name)) => Ok(name),
        None => Err(unschedulable_message(nodes.len(), &reasons)),
    }
}

/// [`schedule`] over plain objects: nodes, and the pods on each node by name (tests and one-off callers).
pub fn schedule_pods(pod: &Pod, nodes: &[&Node], on_node: &BTreeMap<String, Vec<&Pod>>) -> Result<String, String> {
    let infos: Vec<NodeInfo> = nodes.iter().map(|n| NodeInfo::of(n)).collect();
    let usage: HashMap<String, NodeUsage> = on_node.iter().map(|(n, ps)| (n.clone(), NodeUsage::of_pods(ps))).collect();
    schedule(&Candidate::new(pod), &infos, &usage, 0).map(str::to_string)
}

/// "0/N nodes are available: 1 Insufficient cpu, 1 Insufficient memory." (reasons sorted as kube-scheduler
/// sorts them, by their full text).
pub fn unschedulable_message(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cpu: &str, mem: &str, ready: bool) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "disk": "ssd"}},
            "status": {
                "allocatable": {"cpu": cpu, "memory": mem, "pods": "110"},
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]
            }
        }))
        .unwrap()
    }

    fn pod(cpu: Option<&str>, mem: Option<&str>) -> Pod {
        let mut req = serde_json::Map::new();
        if let Some(c) = cpu {
            req.insert("cpu".into(), json!(c));
        }
        if let Some(m) = mem {
            req.insert("memory".into(), json!(m));
        }
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": req}}]}
        }))
        .unwrap()
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_milli("100m"), Some(100));
        assert_eq!(parse_milli("1"), Some(1000));
        assert_eq!(parse_milli("0.1"), Some(100));
        assert_eq!(parse_milli("1.5"), Some(1500));
        assert_eq!(parse_milli("1Ki"), Some(1024 * 1000));
        assert_eq!(parse_milli("128Mi"), Some(128 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("1G"), Some(1_000_000_000_000));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("12x"), None);
        assert_eq!(parse_milli("1Ei"), Some(1024i128.pow(6) * 1000));
        assert_eq!(parse_milli("2E"), Some(2 * 10i128.pow(18) * 1000));
    }

    #[test]
    fn requests_take_the_larger_of_containers_and_init() {
        let mut p = pod(Some("100m"), Some("64Mi"));
        let init: k8s_openapi::api::core::v1::Container =
            serde_json::from_value(json!({"name": "i", "image": "i", "resources": {"requests": {"cpu": "500m"}}}))
                .unwrap();
        p.spec.as_mut().unwrap().init_containers = Some(vec![init]);
        let r = pod_requests(&p);
        assert_eq!(r.milli_cpu, 500);
        assert_eq!(r.memory, 64 * 1024 * 1024);
    }

    #[test]
    fn insufficient_memory_message_like_kube_scheduler() {
        let n = node("n1", "2", "1Gi", true);
        let p = pod(None, Some("2Gi"));
        let err = schedule_pods(&p, &[&n], &BTreeMap::new()).unwrap_err();
        assert_eq!(err, "0/1 nodes are available: 1 Insufficient memory.");
        let p = pod(Some("3"), Some("2Gi"));
        let err = schedule_pods(&p, &[&n], &BTreeMap::new()).unwrap_err();
        assert_eq!(err, "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.");
    }

    #[test]
    fn counts_pods_already_on_the_node() {
        let n = node("n1", "1", "1Gi", true);
        let running = pod(Some("800m"), None);
        let p = pod(Some("300m"), None);
        let on = BTreeMap::from([("n1".to_string(), vec![&running])]);
        assert!(schedule_pods(&p, &[&n], &on).is_err());
        assert_eq!(schedule_pods(&p, &[&n], &BTreeMap::new()).unwrap(), "n1");
    }

    #[test]
    fn not_ready_unschedulable_selector_and_ports() {
        let not_ready = node("a", "1", "1Gi", false);
        let mut cordoned = node("b", "1", "1Gi", true);
        cordoned.spec = Some(k8s_openapi::api::core::v1::NodeSpec { unschedulable: Some(true), ..Default::default() });
        let p = pod(None, None);
        let err = schedule_pods(&p, &[&not_ready, &cordoned], &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable."
        );
        let ok = node("c", "1", "1Gi", true);
        let mut sel = pod(None, None);
        sel.spec.as_mut().unwrap().node_selector = Some(BTreeMap::from([("disk".to_string(), "hdd".to_string())]));
        assert_eq!(
            schedule_pods(&sel, &[&ok], &BTreeMap::new()).unwrap_err(),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        );
        let with_port = |hp: i32| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {"containers": [
                {"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": hp}]}]}}))
            .unwrap()
        };
        let a = with_port(8080);
        let on = BTreeMap::from([("c".to_string(), vec![&a])]);
        assert!(schedule_pods(&with_port(8080), &[&ok], &on).unwrap_err().contains("free ports"));
        assert_eq!(schedule_pods(&with_port(8081), &[&ok], &on).unwrap(), "c");
    }

    #[test]
    fn partial_search_on_large_clusters() {
        assert_eq!(feasible_nodes_to_find(3), 3);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        assert_eq!(feasible_nodes_to_find(100_000), 5000);
    }

    #[test]
    fn least_allocated_wins() {
        let big = node("big", "4", "8Gi", true);
        let small = node("small", "1", "1Gi", true);
        let p = pod(Some("500m"), Some("256Mi"));
        assert_eq!(schedule_pods(&p, &[&small, &big], &BTreeMap::new()).unwrap(), "big");
        let tolerant: Pod = serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {
            "containers": [{"name": "c", "image": "i"}],
            "tolerations": [{"operator": "Exists"}]}}))
        .unwrap();
        let not_ready = node("nr", "1", "1Gi", false);
        assert_eq!(schedule_pods(&tolerant, &[&not_ready], &BTreeMap::new()).unwrap(), "nr");
    }

    #[test]
    fn a_pod_follows_its_claims_data() {
        let nodes: Vec<NodeInfo> = ["a", "b"].iter().map(|n| NodeInfo::of(&node(n, "4", "8Gi", true))).collect();
        let p = pod(None, None);
        let mut candidate = Candidate::new(&p);
        candidate.volume_nodes = vec!["b".into()];
        assert_eq!(schedule(&candidate, &nodes, &HashMap::new(), 0), Ok("b"));
        candidate.volume_nodes = vec!["a".into(), "b".into()];
        assert_eq!(
            schedule(&candidate, &nodes, &HashMap::new(), 0),
            Err("0/2 nodes are available: 2 node(s) had volume node affinity conflict.".into())
        );
    }
}
